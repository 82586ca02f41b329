"""Feeds: fetch (the only HTTP for feeds), parse, normalize, and the ``ingest_feeds`` stage.

Data flows one way: :func:`fetch` (:mod:`.http`: timeouts, size cap, redirects,
retries, conditional GET) -> :func:`parse_feed` (:mod:`.xml_guard`: feedparser on the
bytes, after :func:`strip_internal_subset`) -> :func:`normalize_entry` (:mod:`.normalize`:
plain data) -> :func:`ingest_feeds` (:mod:`.ingest`: the store). :mod:`.check` is
``escmon feeds check``. Everything between the HTTP response and the database is pure
and testable on bytes.
"""

from pipeline.feeds.check import CheckReport, check_feed, check_problems
from pipeline.feeds.http import (
    FEED_ACCEPT,
    PAGE_ACCEPT,
    FetchResult,
    HttpLimits,
    fetch,
    make_client,
    parse_retry_after,
)
from pipeline.feeds.ingest import (
    COUNT_KEYS,
    FAILING_FEEDS_COMMAND,
    LOGGED_FEEDS_MAX,
    FeedJob,
    FeedOutcome,
    ingest_feeds,
    process_feed,
    read_feed,
    sync_registry,
)
from pipeline.feeds.normalize import (
    Entry,
    Rejection,
    canonical_url,
    detect_language,
    entry_key,
    entry_published,
    normalize_entries,
    normalize_entry,
    normalize_language,
    parse_localized_date,
    repair_mojibake,
)
from pipeline.feeds.xml_guard import (
    ParsedFeed,
    fallback_charset,
    parse_feed,
    strip_internal_subset,
)

__all__ = [
    "COUNT_KEYS",
    "FAILING_FEEDS_COMMAND",
    "FEED_ACCEPT",
    "LOGGED_FEEDS_MAX",
    "PAGE_ACCEPT",
    "CheckReport",
    "Entry",
    "FeedJob",
    "FeedOutcome",
    "FetchResult",
    "HttpLimits",
    "ParsedFeed",
    "Rejection",
    "canonical_url",
    "check_feed",
    "check_problems",
    "detect_language",
    "entry_key",
    "entry_published",
    "fallback_charset",
    "fetch",
    "ingest_feeds",
    "make_client",
    "normalize_entries",
    "normalize_entry",
    "normalize_language",
    "parse_feed",
    "parse_localized_date",
    "parse_retry_after",
    "process_feed",
    "read_feed",
    "repair_mojibake",
    "strip_internal_subset",
    "sync_registry",
]
