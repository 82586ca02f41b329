"""The ``ingest_feeds`` stage: due feeds fetched, parsed, normalized and stored."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.dedup import assign_story_ids, content_hash, normalize_for_hash
from pipeline.feeds.http import (
    PAGE_ACCEPT,
    FetchPolicy,
    FetchResult,
    HttpLimits,
    Resolver,
    fetch,
    make_client,
)
from pipeline.feeds.normalize import Entry, Rejection, detect_language, normalize_entries
from pipeline.feeds.xml_guard import ParsedFeed, parse_feed
from pipeline.fulltext import fetch_fulltext, wants_fulltext
from pipeline.registry import FeedSpec, load_registry
from pipeline.store import insert_ignore, session_scope, upsert
from pipeline.tables import Article, Feed, RejectedEntry, as_utc

log = logging.getLogger(__name__)

FAILURE_BACKOFF = dt.timedelta(minutes=15)  # doubles per consecutive failure ...
FAILURE_BACKOFF_MAX = dt.timedelta(hours=6)  # ... up to this, so a daily run always retries
MAX_FULLTEXT_PER_FEED = 50  # article pages fetched per feed and run


@dataclass
class FeedJob:
    """A due feed, as read from the ``feeds`` table."""

    id: int
    name: str
    url: str
    fulltext: str = "auto"
    language: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    consecutive_failures: int = 0


@dataclass
class FeedOutcome:
    job: FeedJob
    status: str  # ok | not_modified | failed
    fetched: FetchResult | None = None
    title: str | None = None
    warning: str | None = None
    error: str | None = None
    entries_seen: int = 0
    entries: list[Entry] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def read_feed(
    body: bytes,
    *,
    url: str,
    headers: dict[str, str],
    name: str,
    language: str | None,
    fetched_at: dt.datetime,
) -> tuple[ParsedFeed, list[Entry], list[Rejection]]:
    """Parse and normalize one fetched body (the CPU part of ingestion)."""
    parsed = parse_feed(
        body,
        url=url,
        content_type=headers.get("content-type"),
        content_language=headers.get("content-language"),
    )
    if parsed.error:
        return parsed, [], []
    entries, rejections = normalize_entries(
        parsed,
        feed_url=url,
        fetched_at=fetched_at,
        publisher=parsed.title or name,
        language_hint=language or parsed.language,
    )
    return parsed, entries, rejections


def process_feed(
    client: httpx.Client,
    job: FeedJob,
    limits: HttpLimits,
    *,
    now: dt.datetime,
    sleep: Callable[[float], None],
) -> FeedOutcome:
    """Fetch, parse and normalize one feed; every failure becomes ``status="failed"``."""
    try:
        fetched = fetch(
            client, job.url, limits, etag=job.etag, last_modified=job.last_modified, sleep=sleep
        )
        if fetched.not_modified:
            return FeedOutcome(job, "not_modified", fetched)
        if not fetched.ok:
            return FeedOutcome(job, "failed", fetched, error=fetched.error)
        parsed, entries, rejections = read_feed(
            fetched.body,
            url=fetched.final_url,
            headers=fetched.headers,
            name=job.name,
            language=job.language,
            fetched_at=now,
        )
        if parsed.error:
            return FeedOutcome(job, "failed", fetched, error=parsed.error, warning=parsed.warning)
        return FeedOutcome(
            job,
            "ok",
            fetched,
            title=parsed.title,
            warning=parsed.warning,
            entries_seen=len(parsed.entries),
            entries=entries,
            rejections=rejections,
        )
    except Exception as exc:  # a bug or a hostile feed must not take the run down
        log.exception("feed %s: unexpected error", job.name)
        return FeedOutcome(job, "failed", error=f"internal error: {type(exc).__name__}: {exc}")


def sync_registry(session: Session, specs: Sequence[FeedSpec]) -> None:
    """Make the ``feeds`` table match the registry (upsert by name).

    A changed URL drops the old HTTP validators; RSS feeds no longer in the
    registry are disabled, never deleted (their articles stay).
    """
    existing = {
        row.name: row for row in session.execute(select(Feed.name, Feed.url, Feed.kind)).all()
    }
    rows = [spec.feed_row() for spec in specs]
    upsert(
        session,
        Feed,
        rows,
        key=["name"],
        update=["kind", "url", "language", "tags", "enabled", "fulltext"],
    )
    moved = [
        spec.name for spec in specs if spec.name in existing and existing[spec.name].url != spec.url
    ]
    if moved:
        session.execute(
            update(Feed)
            .where(Feed.name.in_(moved))
            .values(etag=None, last_modified=None, consecutive_failures=0, next_attempt_at=None)
        )
    gone = [
        name
        for name, row in existing.items()
        if row.kind == "rss" and name not in {spec.name for spec in specs}
    ]
    if gone:
        session.execute(update(Feed).where(Feed.name.in_(gone)).values(enabled=False))


def due_jobs(
    session: Session,
    names: Iterable[str],
    now: dt.datetime,
    backing_off: list[str] | None = None,
) -> tuple[list[FeedJob], int]:
    """Enabled feeds among ``names`` whose next attempt is due, and how many are backing off
    (each named in ``backing_off`` with its last error: they are failing feeds too)."""
    rows = session.execute(select(Feed).where(Feed.name.in_(list(names)), Feed.enabled)).scalars()
    jobs, waiting = [], 0
    for feed in rows:
        next_at = as_utc(feed.next_attempt_at)
        if next_at is not None and next_at > now:
            waiting += 1
            if backing_off is not None:
                backing_off.append(
                    f"{feed.name}: {feed.last_error} (failed {feed.consecutive_failures} "
                    f"time(s); next try {next_at:%Y-%m-%d %H:%M} UTC)"
                )
            continue
        jobs.append(
            FeedJob(
                id=feed.id,
                name=feed.name,
                url=feed.url,
                fulltext=feed.fulltext,
                language=feed.language,
                etag=feed.etag,
                last_modified=feed.last_modified,
                consecutive_failures=feed.consecutive_failures,
            )
        )
    return sorted(jobs, key=lambda job: job.name), waiting


def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class _Seen:
    """Keys stored so far in this run, so duplicates across feeds are caught before insert."""

    urls: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)


def drop_known(session: Session, outcome: FeedOutcome) -> int:
    """Remove entries this feed already stored or rejected; returns how many were known."""
    keys = [entry.guid for entry in outcome.entries]
    known: set[str] = set()
    for chunk in _chunks(keys):
        known.update(
            session.execute(
                select(Article.guid).where(
                    Article.feed_id == outcome.job.id, Article.guid.in_(chunk)
                )
            ).scalars()
        )
        known.update(
            session.execute(
                select(RejectedEntry.entry_key).where(
                    RejectedEntry.feed_id == outcome.job.id, RejectedEntry.entry_key.in_(chunk)
                )
            ).scalars()
        )
    before = len(outcome.entries)
    outcome.entries = [entry for entry in outcome.entries if entry.guid not in known]
    outcome.rejections = [r for r in outcome.rejections if r.key not in known]
    return before - len(outcome.entries)


def _existing(session: Session, column: Any, values: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(list(values)):
        for value, id_ in session.execute(select(column, Article.id).where(column.in_(chunk))):
            found[value] = id_
    return found


def article_rows(
    outcome: FeedOutcome, session: Session, seen: _Seen, now: dt.datetime
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Rows to insert for the new entries, and the entries rejected as duplicates.

    ``seen`` holds the keys stored earlier in this run; this feed's keys are
    added to it (the caller keeps a copy in case the transaction fails).
    """
    entries = outcome.entries
    texts = {entry.guid: entry.text for entry in entries}
    hashes = {guid: content_hash(text) for guid, text in texts.items()}
    by_url = _existing(session, Article.url, [e.url for e in entries if e.url])
    by_hash = _existing(session, Article.content_hash, list(hashes.values()))
    rows, rejected = [], list(outcome.rejections)
    for entry in entries:
        digest = hashes[entry.guid]
        if entry.url and (entry.url in by_url or entry.url in seen.urls):
            where = f" of article {by_url[entry.url]}" if entry.url in by_url else ""
            rejected.append(Rejection(entry.guid, f"duplicate URL{where}: {entry.url}"))
            continue
        if digest in by_hash or digest in seen.hashes:
            where = f" of article {by_hash[digest]}" if digest in by_hash else ""
            rejected.append(Rejection(entry.guid, f"duplicate content{where}"))
            continue
        if entry.url:
            seen.urls.add(entry.url)
        seen.hashes.add(digest)
        text = texts[entry.guid]
        rows.append(
            {
                "feed_id": outcome.job.id,
                "url": entry.url,
                "guid": entry.guid,
                "title": entry.title,
                "publisher": entry.publisher,
                "summary": entry.summary,
                "text": text,
                "text_source": entry.text_source,
                "fulltext_error": entry.fulltext_error,
                "language": detect_language(text, entry.language_hint),
                "published_at": entry.published_at,
                "published_source": entry.published_source,
                "day": entry.published_at.date(),
                "content_hash": digest,
                "fetched_at": now,
            }
        )
    return rows, rejected


def health_values(outcome: FeedOutcome, now: dt.datetime) -> dict[str, Any]:
    """The feed row's health columns after this outcome."""
    fetched = outcome.fetched
    values: dict[str, Any] = {"last_status": fetched.status if fetched else None}
    if outcome.status == "failed":
        failures = outcome.job.consecutive_failures + 1
        wait = min(FAILURE_BACKOFF * 2 ** (failures - 1), FAILURE_BACKOFF_MAX)
        if fetched is not None and fetched.retry_after:
            wait = max(wait, dt.timedelta(seconds=fetched.retry_after))
        return values | {
            "last_error": outcome.error,
            "consecutive_failures": failures,
            "next_attempt_at": now + wait,
            "last_warning": outcome.warning,
        }
    values |= {
        "last_error": None,
        "consecutive_failures": 0,
        "next_attempt_at": None,
        "last_fetched_at": now,
    }
    if fetched is not None:
        # Validators belong to the body we hold: replace on 200, keep unless resent on 304.
        for column, header in (("etag", "etag"), ("last_modified", "last-modified")):
            value = fetched.headers.get(header)
            if outcome.status == "ok" or value:
                values[column] = value
    if outcome.status == "ok":
        values["last_warning"] = outcome.warning
    return values


def store_outcome(
    engine: Engine, outcome: FeedOutcome, seen: _Seen, now: dt.datetime
) -> dict[str, int]:
    """Write one feed's articles, rejections and health in one transaction.

    The feed's row is written first, so the transaction holds a write lock from its start
    (the row's lock on PostgreSQL, the database's on SQLite) until it commits: a concurrent
    run storing the same feed waits, and then sees what this one stored. Entries whose
    article exists by then (stored by another run since the caller's :func:`drop_known`)
    are known, never rejected; so is an insert that collides with the entry's own article.
    Returns ``articles_new``, ``rejected`` and ``entries_known`` (known only now).
    """
    batch = _Seen(set(seen.urls), set(seen.hashes))
    with session_scope(engine) as session:
        session.execute(
            update(Feed).where(Feed.id == outcome.job.id).values(**health_values(outcome, now))
        )
        known = drop_known(session, outcome)
        rows, rejected = article_rows(outcome, session, batch, now)
        inserted = set(insert_ignore(session, Article, rows, returning="guid"))
        lost = [row["guid"] for row in rows if row["guid"] not in inserted]
        stored = _stored_guids(session, outcome.job.id, lost)
        known += len(stored)
        rejected += [
            Rejection(guid, "duplicate (unique key conflict on insert)")
            for guid in lost
            if guid not in stored
        ]
        rejection_rows = [
            {"feed_id": outcome.job.id, "entry_key": r.key, "reason": r.reason, "seen_at": now}
            for r in rejected
        ]
        new_rejections = insert_ignore(session, RejectedEntry, rejection_rows)
    seen.urls, seen.hashes = batch.urls, batch.hashes  # committed: now they are stored
    return {
        "articles_new": len(inserted),
        "rejected": len(new_rejections),
        "entries_known": known,
    }


def _stored_guids(session: Session, feed_id: int, guids: Sequence[str]) -> set[str]:
    """The ``guids`` of which this feed has an article (its own, not a duplicate)."""
    found: set[str] = set()
    for chunk in _chunks(list(guids)):
        found.update(
            session.execute(
                select(Article.guid).where(Article.feed_id == feed_id, Article.guid.in_(chunk))
            ).scalars()
        )
    return found


def mark_offline(engine: Engine, jobs: Sequence[FeedJob]) -> None:
    """Record that due feeds were not fetched; offline is not the feeds' fault (no backoff)."""
    if jobs:
        with session_scope(engine) as session:
            session.execute(
                update(Feed)
                .where(Feed.id.in_([job.id for job in jobs]))
                .values(last_error="offline: not fetched (ESCMON_OFFLINE is set)")
            )


def record_failure(engine: Engine, outcome: FeedOutcome, now: dt.datetime) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(Feed).where(Feed.id == outcome.job.id).values(**health_values(outcome, now))
        )


def add_fulltext(
    outcomes: Sequence[FeedOutcome],
    limits: HttpLimits,
    *,
    policy: FetchPolicy,
    sleep: Callable[[float], None],
    stage_end: float = float("inf"),
) -> dict[str, int]:
    """Fetch article pages for new entries that want them; failures keep the summary.

    Entry links come from feed content, so pages are fetched by a client of
    their own (no connection shared with the feeds) under ``policy``: public
    addresses only, checked on every redirect hop, unless allow-listed; a
    feed registered at an IP address may link to pages on that same address
    and port. Each page has ``limits.page_deadline``, cut to the stage's
    deadline (``stage_end``, ``time.monotonic()``); after it no page is fetched.
    """
    counts = {"fulltext_ok": 0, "fulltext_failed": 0, "fulltext_skipped": 0}
    work: list[tuple[Entry, str]] = []
    for outcome in outcomes:
        wanted = [e for e in outcome.entries if wants_fulltext(outcome.job.fulltext, e.body, e.url)]
        work += [(entry, outcome.job.url) for entry in wanted[:MAX_FULLTEXT_PER_FEED]]
    if not work:
        return counts
    dead_hosts: set[str] = set()

    def one(item: tuple[Entry, str], client: httpx.Client) -> str:
        entry, feed_url = item
        left = stage_end - time.monotonic()
        if left <= 0:
            entry.fulltext_error = "not fetched: the ingest stage deadline was reached"
            return "fulltext_skipped"

        def page(url: str) -> FetchResult:
            host = urlsplit(url).hostname or ""
            if host in dead_hosts:
                return FetchResult(url, url, error=f"skipped: {host} was unreachable earlier")
            result = fetch(
                client,
                url,
                limits,
                accept=PAGE_ACCEPT,
                sleep=sleep,
                deadline=min(limits.page_deadline, left),
                trusted_origin=feed_url,
            )
            if result.status is None and result.error and result.error.startswith("connection"):
                dead_hosts.add(host)
            return result

        result = fetch_fulltext(entry.url or "", page)
        text = _without_title(result.text or "", entry.title)
        if text and len(text) > len(entry.body):
            entry.body, entry.text_source = text, "fulltext"
            return "fulltext_ok"
        entry.fulltext_error = result.error or "page text not longer than the feed's text"
        return "fulltext_failed"

    with (
        make_client(limits, policy) as client,
        ThreadPoolExecutor(max_workers=limits.concurrency) as pool,
    ):
        for key in pool.map(lambda item: one(item, client), work):
            counts[key] += 1
    return counts


def _without_title(text: str, title: str) -> str:
    """Page text minus a leading headline equal to the title (Article.text starts with it)."""
    first, _, rest = text.partition("\n")
    if title and normalize_for_hash(first) == normalize_for_hash(title):
        return rest.lstrip("\n")
    return text


COUNT_KEYS = (
    "feeds_total",
    "feeds_due",
    "feeds_ok",
    "feeds_not_modified",
    "feeds_failed",
    "feeds_waiting",
    "feeds_deferred",
    "entries_seen",
    "entries_known",
    "articles_new",
    "rejected",
    "fulltext_ok",
    "fulltext_failed",
    "fulltext_skipped",
    "stories_new",
    "stories_joined",
    "stories_keyed",
    "stories_compared",
)


def ingest_feeds(
    engine: Engine,
    settings: Settings,
    *,
    day: dt.date,
    progress: Any = None,
    now: dt.datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    resolve: Resolver | None = None,
    problems: list[str] | None = None,
) -> dict[str, int]:
    """Fetch every due, enabled registry feed and store what is new; returns counts.

    ``day`` is the run's logical date; feeds are always read as they are now
    (articles keep their own publication day). One feed failing never fails
    the run: its error is recorded on its ``feeds`` row. ``settings.offline``
    records every due feed as failed without any network I/O.

    ``settings.ingest_deadline`` bounds the fetching: once it has passed, no
    further feed or page download starts; the feeds not fetched are counted
    as ``feeds_deferred`` (their rows untouched, so they are due next run, and
    the stalest feeds are fetched first) and the stage ends normally.
    ``resolve`` maps a host name to addresses for the article-page policy
    (the system resolver by default). Every feed that could not be read is named,
    with its error, in one WARNING and appended to ``problems`` (``name: error``).
    """
    del day  # the stage contract passes it; a feed has no "as of" date
    stage_end = time.monotonic() + settings.ingest_deadline
    now = now or dt.datetime.now(dt.UTC)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    specs = load_registry(settings.active_feeds_file, missing_ok=settings.offline)
    counts["feeds_total"] = len(specs)
    if not specs:
        return counts
    with session_scope(engine) as session:
        sync_registry(session, specs)
        backing_off: list[str] = []
        jobs, counts["feeds_waiting"] = due_jobs(
            session, [spec.name for spec in specs if spec.enabled], now, backing_off
        )
        ids = [job.id for job in jobs]
        fetched_at: dict[int, dt.datetime | None] = {
            id_: last
            for id_, last in session.execute(
                select(Feed.id, Feed.last_fetched_at).where(Feed.id.in_(ids))
            )
        }
    # The stalest first: when the stage deadline defers feeds, the same ones are not always last.
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    jobs.sort(key=lambda job: (as_utc(fetched_at.get(job.id)) or epoch, job.name))
    counts["feeds_due"] = len(jobs)
    if settings.offline:
        mark_offline(engine, jobs)
        counts["feeds_failed"] = len(jobs)
        return counts
    limits = HttpLimits.from_settings(settings)
    if progress is not None:
        progress.start("feeds", len(jobs))
    with make_client(limits) as client:
        results = _fetch_all(
            client, jobs, limits, now=now, sleep=sleep, progress=progress, stage_end=stage_end
        )
    deferred = sorted(job.name for job, res in zip(jobs, results, strict=True) if res is None)
    if deferred:
        counts["feeds_deferred"] = len(deferred)
        log.warning(
            "ingest stage deadline of %g s (ESCMON_INGEST_DEADLINE) reached: %d of %d due "
            "feeds deferred to the next run: %s",
            settings.ingest_deadline,
            len(deferred),
            len(jobs),
            ", ".join(deferred[:20]) + (", ..." if len(deferred) > 20 else ""),
        )
    outcomes = sorted((o for o in results if o is not None), key=lambda o: o.job.name)  # by name
    with session_scope(engine) as session:
        for outcome in outcomes:
            counts["entries_known"] += drop_known(session, outcome)
    counts |= add_fulltext(
        outcomes,
        limits,
        policy=FetchPolicy.from_settings(settings, resolve),
        sleep=sleep,
        stage_end=stage_end,
    )
    seen = _Seen()
    failures: list[str] = []
    for outcome in outcomes:
        counts[f"feeds_{outcome.status}"] += 1
        counts["entries_seen"] += outcome.entries_seen
        try:
            if outcome.status == "failed":
                failures.append(f"{outcome.job.name}: {outcome.error}")
                record_failure(engine, outcome, now)
            else:
                stored = store_outcome(engine, outcome, seen, now)
                counts["articles_new"] += stored["articles_new"]
                counts["rejected"] += stored["rejected"]
                counts["entries_known"] += stored.get("entries_known", 0)
        except Exception as exc:  # e.g. a value the database refuses: fail this feed only
            log.exception("feed %s: could not store", outcome.job.name)
            counts[f"feeds_{outcome.status}"] -= 1
            counts["feeds_failed"] += 1
            failed = FeedOutcome(
                outcome.job,
                "failed",
                outcome.fetched,
                error=f"store error: {type(exc).__name__}: {exc}"[:2000],
            )
            failures.append(f"{outcome.job.name}: {failed.error}")
            record_failure(engine, failed, now)
    if failures:
        log.warning(
            "%d of %d feeds read could not be read: %s",
            len(failures),
            len(outcomes),
            _named_feeds(failures),
        )
    if backing_off:
        log.warning(
            "%d feed(s) not read, backing off after failing: %s",
            len(backing_off),
            _named_feeds(sorted(backing_off)),
        )
    if problems is not None:
        problems.extend(_one_line(failure) for failure in [*failures, *sorted(backing_off)])
    with session_scope(engine) as session:
        counts |= assign_story_ids(session)
    return counts


LOGGED_FEEDS_MAX = 10  # failing feeds named in one warning (or run summary); the rest counted
FAILING_FEEDS_COMMAND = "escmon feeds status --failing"  # where all of them are listed


def _named_feeds(problems: Sequence[str]) -> str:
    """``problems`` joined for one log line: the first :data:`LOGGED_FEEDS_MAX`, then a count
    (45 unreachable feeds would make a line of 10,000 characters)."""
    shown = "; ".join(_one_line(problem) for problem in problems[:LOGGED_FEEDS_MAX])
    rest = len(problems) - LOGGED_FEEDS_MAX
    return f"{shown}; and {rest} more ({FAILING_FEEDS_COMMAND})" if rest > 0 else shown


def _one_line(text: str, limit: int = 300) -> str:
    """A feed's error for the log: one line, cut (errors come from the network)."""
    from pipeline.text import clean_text

    flat = " ".join(clean_text(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _fetch_all(
    client: httpx.Client,
    jobs: Sequence[FeedJob],
    limits: HttpLimits,
    *,
    now: dt.datetime,
    sleep: Callable[[float], None],
    progress: Any,
    stage_end: float = float("inf"),
) -> list[FeedOutcome | None]:
    """Each job's outcome, in order; None for a job not started before ``stage_end``."""

    def one(job: FeedJob) -> FeedOutcome | None:
        outcome = None
        if time.monotonic() < stage_end:
            outcome = process_feed(client, job, limits, now=now, sleep=sleep)
        if progress is not None:
            progress.advance(1)
        return outcome

    with ThreadPoolExecutor(max_workers=limits.concurrency) as pool:
        return list(pool.map(one, jobs))
