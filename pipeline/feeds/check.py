"""``escmon feeds check``: fetch one feed once and report what is wrong with it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.feeds.http import HttpLimits, fetch, make_client
from pipeline.feeds.ingest import read_feed
from pipeline.feeds.normalize import Entry, Rejection
from pipeline.feeds.xml_guard import ParsedFeed


@dataclass
class CheckReport:
    """The result of fetching one feed once: for ``escmon feeds check``."""

    status: str  # ok | warning | failed
    entries: int
    problems: list[str]
    elapsed: float
    http_status: int | None = None
    title: str | None = None
    final_url: str | None = None


def check_feed(
    url: str,
    settings: Settings,
    *,
    language: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckReport:
    """Fetch ``url`` once (no conditional GET), parse it and report what would be stored."""
    started = time.perf_counter()
    if settings.offline:
        return CheckReport("failed", 0, ["offline: not fetched (ESCMON_OFFLINE is set)"], 0.0)
    limits = HttpLimits.from_settings(settings)
    with make_client(limits) as client:
        fetched = fetch(client, url, limits, sleep=sleep)
    report = CheckReport("failed", 0, [], 0.0, fetched.status, final_url=fetched.final_url)
    if fetched.final_url != url:
        report.problems.append(f"redirected to {fetched.final_url}; consider registering that")
    if fetched.ok:
        parsed, entries, rejections = read_feed(
            fetched.body,
            url=fetched.final_url,
            headers=fetched.headers,
            name=url,
            language=language,
            fetched_at=dt.datetime.now(dt.UTC),
        )
        report.entries, report.title = len(parsed.entries), parsed.title
        report.problems += check_problems(parsed, entries, rejections)
        report.status = "failed" if parsed.error else "warning" if report.problems else "ok"
    else:
        report.problems.append(fetched.error or f"HTTP {fetched.status}")
    report.elapsed = time.perf_counter() - started
    return report


def check_problems(
    parsed: ParsedFeed, entries: Sequence[Entry], rejections: Sequence[Rejection]
) -> list[str]:
    """What an operator should know about a parsed feed."""
    first = parsed.error or parsed.warning
    problems = [first] if first else []
    if not parsed.error and not parsed.entries:
        problems.append("the feed has no entries")
    undated = sum(1 for entry in entries if entry.published_source == "fetched")
    if undated:
        problems.append(f"{undated} entries without a date (the fetch time will be used)")
    if rejections:
        reasons = sorted({r.reason for r in rejections})
        problems.append(f"{len(rejections)} entries would be rejected: {', '.join(reasons)}")
    return problems
