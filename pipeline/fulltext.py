"""Article pages to main text, for feed entries that carry only a short summary.

The page is fetched by the caller's ``fetch`` function (during ingestion a page
client from :mod:`pipeline.feeds.http`, with its timeouts, size cap, page deadline
and the outbound fetch policy: the link comes from feed content, so internal
addresses are refused and the refusal comes back as ``error``), so this module
does no HTTP of its own. Extraction uses trafilatura, imported on first use: it is
slow to import and does no network I/O when given the page.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pipeline.text import normalize_whitespace

MODES = ("auto", "always", "never")
AUTO_MIN_CHARS = 600  # in ``auto`` mode, a body shorter than this is "only a short summary"
MIN_TEXT_CHARS = 200  # an extraction shorter than this is treated as "no main text found"
HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


class PageFetch(Protocol):
    """What ``fetch(url)`` must return (``pipeline.feeds.FetchResult`` fits)."""

    @property
    def body(self) -> bytes: ...

    @property
    def error(self) -> str | None: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class FulltextResult:
    """The page's main text, or why there is none (``error``)."""

    text: str | None
    error: str | None = None


def wants_fulltext(mode: str, body: str, url: str | None) -> bool:
    """Whether an entry with this feed ``mode`` and ``body`` should have its page fetched."""
    if mode not in MODES:
        raise ValueError(f"fulltext mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not url or mode == "never":
        return False
    return mode == "always" or len(body) < AUTO_MIN_CHARS


def extract_main_text(html: bytes | str, url: str | None = None) -> str:
    """The main text of an HTML page: one paragraph per line, empty if none was found."""
    import trafilatura

    text = trafilatura.extract(
        html,
        url=url,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        deduplicate=False,
    )
    if not text:
        return ""
    lines = (normalize_whitespace(line) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def page_charset(headers: Mapping[str, str]) -> str | None:
    match = _CHARSET.search(headers.get("content-type", ""))
    return match.group(1) if match else None


def fetch_fulltext(url: str, fetch: Callable[[str], PageFetch]) -> FulltextResult:
    """Fetch ``url`` with ``fetch`` and extract its main text; failures become ``error``."""
    page = fetch(url)
    if page.error:
        return FulltextResult(None, page.error)
    content_type = page.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in HTML_TYPES:
        return FulltextResult(None, f"not an HTML page ({content_type})")
    html: bytes | str = page.body
    charset = page_charset(page.headers)
    if charset:
        with contextlib.suppress(LookupError):  # unknown charset: trafilatura guesses
            html = page.body.decode(charset, errors="replace")
    try:
        text = extract_main_text(html, url)
    except Exception as exc:  # trafilatura/lxml on hostile markup: record, never raise
        return FulltextResult(None, f"extraction failed: {type(exc).__name__}: {exc}")
    if len(text) < MIN_TEXT_CHARS:
        return FulltextResult(None, "no main text found on the page")
    return FulltextResult(text)
