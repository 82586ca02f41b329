"""Feeds: fetch (the only HTTP for feeds), parse, normalize, and the ``ingest_feeds`` stage.

Data flows one way: :func:`fetch` (httpx: timeouts, size cap, redirects,
retries, conditional GET) -> :func:`parse_feed` (feedparser on the bytes, after
:func:`strip_internal_subset`) -> :func:`normalize_entry` (plain data) ->
``ingest_feeds`` (the store). Everything between the HTTP response and the
database is pure and testable on bytes.

Entities: feedparser 6 removes ``<!ENTITY>`` lines from the prolog itself and
re-declares only "safe" ones (literal values without ``&``), and runs expat with
external general entities off, so nested billion-laughs and external entities
(XXE) are not expanded. But a single safe entity with a huge literal value,
referenced many times, is still expanded by expat and again, without limit,
by feedparser's loose fallback parser (measured: 100 KB in, 100 MB title out).
So :func:`strip_internal_subset` removes every DOCTYPE internal subset before
feedparser sees the bytes: no entity from the network is ever expanded.
"""

from __future__ import annotations

import calendar
import datetime as dt
import email.utils
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

import feedparser
import httpx
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.dedup import assign_story_ids, content_hash, normalize_for_hash
from pipeline.fulltext import fetch_fulltext, wants_fulltext
from pipeline.registry import FeedSpec, load_registry
from pipeline.store import insert_ignore, session_scope, upsert
from pipeline.tables import Article, Feed, RejectedEntry
from pipeline.text import html_to_text, normalize_whitespace

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
MAX_RETRY_WAIT = 30.0  # a longer Retry-After is not slept: the feed waits for a later run
FAILURE_BACKOFF = dt.timedelta(minutes=15)  # doubles per consecutive failure ...
FAILURE_BACKOFF_MAX = dt.timedelta(hours=6)  # ... up to this, so a daily run always retries
FUTURE_TOLERANCE = dt.timedelta(days=1)  # later "published" dates are not believed
MAX_FULLTEXT_PER_FEED = 50  # article pages fetched per feed and run
LANGID_CHARS = 160  # characters of title + body given to language detection
LANGID_MIN_CONFIDENCE = 0.9  # below this, a declared language wins over the detected one


# --- HTTP ---------------------------------------------------------------------------


def _setting_default(name: str) -> Any:
    """The default of a :class:`Settings` field: one source for the HTTP defaults."""
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class HttpLimits:
    connect_timeout: float = _setting_default("http_connect_timeout")
    read_timeout: float = _setting_default("http_read_timeout")
    max_bytes: int = _setting_default("http_max_bytes")
    max_redirects: int = _setting_default("http_max_redirects")
    retries: int = _setting_default("http_retries")
    backoff: float = _setting_default("http_backoff")
    concurrency: int = _setting_default("http_concurrency")
    user_agent: str = _setting_default("user_agent")

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            connect_timeout=settings.http_connect_timeout,
            read_timeout=settings.http_read_timeout,
            max_bytes=settings.http_max_bytes,
            max_redirects=settings.http_max_redirects,
            retries=settings.http_retries,
            backoff=settings.http_backoff,
            concurrency=max(1, settings.http_concurrency),
            user_agent=settings.user_agent,
        )


def make_client(limits: HttpLimits) -> httpx.Client:
    """One client for a run: shared connection pool, our timeouts, redirects and User-Agent."""
    return httpx.Client(
        timeout=httpx.Timeout(
            limits.read_timeout,
            connect=limits.connect_timeout,
            pool=limits.connect_timeout + limits.read_timeout,
        ),
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        headers={"User-Agent": limits.user_agent, "Accept-Encoding": "gzip, deflate"},
        limits=httpx.Limits(max_connections=limits.concurrency * 2),
    )


@dataclass
class FetchResult:
    """One GET after retries: the body, or why there is none (``error``)."""

    url: str
    final_url: str
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    retry_after: float | None = None
    attempts: int = 1
    elapsed: float = 0.0
    retryable: bool = False

    @property
    def not_modified(self) -> bool:
        return self.status == 304 and self.error is None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


class _TooLarge(Exception):
    pass


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _TooLarge(f"body of {int(declared)} bytes exceeds the cap of {max_bytes} bytes")
    chunks, size = [], 0
    for chunk in response.iter_bytes():  # decoded (gzip) bytes: the cap also stops gzip bombs
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge(f"body exceeds the cap of {max_bytes} bytes; download aborted")
        chunks.append(chunk)
    return b"".join(chunks)


def _fetch_once(client: httpx.Client, url: str, headers: dict[str, str],
                limits: HttpLimits) -> FetchResult:
    result = FetchResult(url=url, final_url=url)
    try:
        with client.stream("GET", url, headers=headers) as response:
            result.final_url = str(response.url)
            result.status = response.status_code
            result.headers = {key.lower(): value for key, value in response.headers.items()}
            status = response.status_code
            if status == 304:
                return result
            if status == 429 or status >= 500:
                result.error = f"HTTP {status} {response.reason_phrase}".strip()
                result.retry_after = parse_retry_after(response.headers.get("retry-after"))
                result.retryable = True
                return result
            if not 200 <= status < 300:
                result.error = f"HTTP {status} {response.reason_phrase}".strip()
                return result
            result.body = _read_capped(response, limits.max_bytes)
    except _TooLarge as exc:
        result.error = str(exc)
    except httpx.ConnectTimeout:  # an unreachable host: retrying now rarely helps
        result.error = f"timeout: no connect within {limits.connect_timeout:g} s"
    except httpx.TimeoutException as exc:
        kind = type(exc).__name__.replace("Timeout", "").lower() or "request"
        result.error = f"timeout: no {kind} within {limits.read_timeout:g} s"
        result.retryable = True
    except httpx.TooManyRedirects:
        result.error = f"too many redirects (more than {limits.max_redirects})"
    except httpx.ConnectError as exc:
        result.error = f"connection failed: {exc}"
    except httpx.RemoteProtocolError as exc:
        result.error = f"protocol error: {exc}"
        result.retryable = True
    except httpx.DecodingError as exc:
        result.error = f"undecodable body (content-encoding): {exc}"
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        result.error = f"invalid URL: {exc}"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def fetch(
    client: httpx.Client,
    url: str,
    limits: HttpLimits,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str = FEED_ACCEPT,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """GET ``url`` with retries on read timeouts, 429 and 5xx (backoff, Retry-After honoured).

    Never raises for network or HTTP problems: they come back as ``error``.
    Refused connections, DNS failures and connect timeouts are not retried, so
    a run without network finishes quickly.
    """
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    started = time.perf_counter()
    result = FetchResult(url=url, final_url=url)
    for attempt in range(limits.retries + 1):
        result = _fetch_once(client, url, headers, limits)
        result.attempts = attempt + 1
        if not result.retryable or attempt == limits.retries:
            break
        wait = result.retry_after
        if wait is None:
            wait = limits.backoff * 2**attempt
        if wait > MAX_RETRY_WAIT:
            break
        sleep(wait)
    result.elapsed = time.perf_counter() - started
    return result


# --- parsing ---------------------------------------------------------------------------

_DOCTYPE = re.compile(r"<!DOCTYPE", re.IGNORECASE)
_ENTITY_DECL = re.compile(r"<!ENTITY[^>]*>?", re.IGNORECASE)
# Where our prolog scan stops: a subset of feedparser's own "<\w" head boundary, so every
# declaration feedparser or expat could read is inside what we scan.
_NAME_START = re.compile(r"<[A-Za-z_]")
_XML_DECL_ENCODING = re.compile(rb"^<\?xml[^>]*encoding\s*=", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=", re.IGNORECASE)


def _sniff_codec(head: bytes) -> str:
    """The codec to read the prolog with; ``latin-1`` maps bytes 1:1 for ASCII-based charsets."""
    if head.startswith((b"\x00\x00\xfe\xff", b"\x00\x00\x00<")):
        return "utf-32-be"
    if head.startswith((b"\xff\xfe\x00\x00", b"<\x00\x00\x00")):
        return "utf-32-le"
    if head.startswith(b"\xfe\xff") or (len(head) >= 4 and not head[0] and not head[2]):
        return "utf-16-be"
    if head.startswith(b"\xff\xfe") or (len(head) >= 4 and not head[1] and not head[3]):
        return "utf-16-le"
    if head.startswith(b"\x4c\x6f\xa7\x94"):
        return "cp037"  # EBCDIC "<?xm"
    return "latin-1"


def _skip_quoted(text: str, pos: int) -> int:
    end = text.find(text[pos], pos + 1)
    return len(text) if end < 0 else end + 1


def _subset_span(text: str, start: int) -> tuple[int, int, int] | None:
    """For the DOCTYPE at ``start``: (subset start, subset end, declaration end), or None."""
    pos, n = start + len("<!DOCTYPE"), len(text)
    subset: tuple[int, int] | None = None
    while pos < n:
        char = text[pos]
        if char in "\"'":
            pos = _skip_quoted(text, pos)
        elif char == "[" and subset is None:
            begin = pos
            pos += 1
            while pos < n and text[pos] != "]":
                if text[pos] in "\"'":
                    pos = _skip_quoted(text, pos)
                elif text.startswith("<!--", pos):
                    close = text.find("-->", pos + 4)
                    pos = n if close < 0 else close + 3
                else:
                    pos += 1
            subset = (begin, min(pos + 1, n))
            pos += 1
        elif char == ">":
            return (subset[0], subset[1], pos + 1) if subset else None
        else:
            pos += 1
    return (subset or (start, n))[0], n, n  # unterminated: drop the rest


def _prolog_edits(text: str) -> tuple[str, int] | None:
    """The prolog with every DOCTYPE internal subset and stray ENTITY removed, and the count."""
    pos, n, out, removed = 0, len(text), [], 0
    while pos < n:
        lt = text.find("<", pos)
        if lt < 0:
            break
        if text.startswith("<!--", lt):
            close = text.find("-->", lt + 4)
            pos = n if close < 0 else close + 3
            continue
        if text.startswith("<?", lt):
            close = text.find("?>", lt + 2)
            pos = n if close < 0 else close + 2
            continue
        if _DOCTYPE.match(text, lt):
            span = _subset_span(text, lt)
            if span is not None:
                removed += len(_ENTITY_DECL.findall(text, span[0], span[1])) or 1
                out.append((span[0], span[1]))
                pos = span[2]
                continue
            pos = lt + 2
            continue
        if _NAME_START.match(text, lt):
            break  # the root element: the prolog ends here
        entity = _ENTITY_DECL.match(text, lt)
        if entity:  # an ENTITY outside any DOCTYPE (junk, but feedparser would read it)
            out.append(entity.span())
            removed += 1
            pos = entity.end()
            continue
        pos = lt + 1
    if not out:
        return None
    pieces, last = [], 0
    for begin, end in out:
        pieces.append(text[last:begin])
        last = end
    pieces.append(text[last:])
    return "".join(pieces), removed


def strip_internal_subset(body: bytes) -> tuple[bytes, str | None]:
    """Remove DOCTYPE internal subsets (entity declarations) so no entity is ever expanded.

    Returns the bytes to parse and a warning when something was removed. The
    bytes keep their encoding: ASCII-based charsets are edited byte for byte.
    """
    codec = _sniff_codec(body[:4])
    text = body.decode(codec, errors="replace")
    edited = _prolog_edits(text)
    if edited is None:
        return body, None
    new_text, removed = edited
    return (
        new_text.encode(codec, errors="replace"),
        f"DOCTYPE internal subset removed ({removed} declaration(s)); "
        "entity references are left unexpanded",
    )


def fallback_charset(body: bytes, content_type: str | None) -> str | None:
    """A charset for undeclared, non-UTF-8 feeds in non-Latin scripts (e.g. KOI8-R).

    feedparser falls back to windows-1252 when neither the HTTP header, a BOM
    nor the XML declaration names a charset and the bytes are not UTF-8. That
    is right for Latin-script text (few bytes >= 0x80) and mojibake for
    Cyrillic or Greek, where most letters are such bytes; only then guess.
    """
    if content_type and _CHARSET.search(content_type):
        return None
    if body.startswith((b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")) or _sniff_codec(
        body[:4]
    ) != "latin-1":
        return None
    if _XML_DECL_ENCODING.match(body[:400].lstrip()):
        return None
    try:
        body.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    high = len(body) - len(body.translate(None, bytes(range(128, 256))))
    letters = len(body) - len(body.translate(None, _ASCII_LETTERS))
    if high < 0.5 * letters:  # markup is ASCII, so this is a conservative test
        return None
    from charset_normalizer import from_bytes

    best = from_bytes(body).best()
    return best.encoding if best is not None else None


_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))


@dataclass
class ParsedFeed:
    """What a fetched body holds: channel facts, feedparser's entries and any warning."""

    title: str | None
    language: str | None
    entries: list[Any]
    warning: str | None
    version: str
    is_feed: bool
    error: str | None = None


def parse_feed(
    body: bytes,
    *,
    url: str,
    content_type: str | None = None,
    content_language: str | None = None,
) -> ParsedFeed:
    """Parse feed bytes with feedparser, with our entity guard and charset fallback.

    feedparser gets the HTTP headers (for its charset logic) but never the URL,
    so it does no I/O. HTML sanitizing and relative-URI rewriting are off: we
    keep only plain text (``html_to_text`` drops scripts and styles) and
    resolve entry links against ``url`` ourselves (:func:`canonical_url`).
    """
    body, warning = strip_internal_subset(body)
    headers: dict[str, str] = {}  # no content-location: we resolve links ourselves, faster
    if content_type:
        headers["content-type"] = content_type
    if content_language:
        headers["content-language"] = content_language
    charset = fallback_charset(body, content_type)
    if charset:
        base = (content_type or "application/xml").split(";")[0].strip()
        headers["content-type"] = f"{base}; charset={charset}"
    result = feedparser.parse(
        body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    problems = [warning] if warning else []
    if result.get("bozo"):
        exc = result.get("bozo_exception")
        problems.append(f"ill-formed feed: {type(exc).__name__}: {exc}")
    channel = result.get("feed", {})
    version = result.get("version") or ""
    entries = list(result.get("entries", []))
    is_feed = bool(entries) or bool(version)
    return ParsedFeed(
        title=_clean_title(channel.get("title")) or None,
        language=normalize_language(channel.get("language")),
        entries=entries,
        warning="; ".join(problems) or None,
        version=version,
        is_feed=is_feed,
        error=None if is_feed else f"not a feed ({'; '.join(problems) or 'no entries'})",
    )


# --- normalizing -------------------------------------------------------------------------

TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid",
    "mc_eid", "_ga", "_gl", "ocid", "cmpid", "icid", "maca", "traffic_source", "smid", "ito",
    "xtor", "ref_src",
})
TRACKING_PREFIXES = ("utm_", "at_", "ns_", "pk_", "hsa_")


def canonical_url(link: str | None, base: str | None = None) -> str | None:
    """An absolute http(s) URL without fragment and tracking parameters, or None."""
    if not link:
        return None
    link = link.strip()
    if base and not link.startswith(("http://", "https://")):
        link = urljoin(base, link)
    try:
        parts = urlsplit(link)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        return None  # credentials in a link are never something we want to store
    query = "&".join(part for part in parts.query.split("&") if part and not _is_tracking(part))
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


def _is_tracking(param: str) -> bool:
    key = unquote_plus(param.split("=", 1)[0]).lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


def normalize_language(code: str | None) -> str | None:
    """``en-US``, ``en_us``, ``EN`` -> ``en``; None for empty or odd values."""
    if not code:
        return None
    primary = re.split(r"[-_\s]", code.strip().lower(), maxsplit=1)[0]
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None


_CP1252_HIGH = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
_CP1252_BYTE = {char: char.encode("cp1252")[0] for char in _CP1252_HIGH}
_CONT = "[\x80-\xbf" + _CP1252_HIGH + "]"
_MOJIBAKE_HINT = re.compile(f"[\\xc2-\\xf4]{_CONT}")
_MOJIBAKE = re.compile(
    f"[\xc2-\xdf]{_CONT}|[\xe0-\xef]{_CONT}{{2}}|[\xf0-\xf4]{_CONT}{{3}}"
)


def _unmojibake(match: re.Match[str]) -> str:
    raw = bytes(_CP1252_BYTE.get(char, ord(char)) for char in match.group())
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return match.group()


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 that was read as windows-1252 ("Ã©" -> "é", "â€™" -> "’").

    Repairs only when there are two or more such sequences, or the telltale
    "â€" of mangled punctuation, so a lone "ß…" in real text stays as it is.
    """
    if text.isascii() or not _MOJIBAKE_HINT.search(text):
        return text
    matches = _MOJIBAKE.findall(text)
    if not matches or (len(matches) < 2 and not matches[0].startswith("â€")):
        return text
    return _MOJIBAKE.sub(_unmojibake, text)


def _plain(value: Any) -> str:
    """Plain text of an HTML/text field; mojibake is repaired before (raw bytes such as a
    mangled no-break space) and after (mangled text written as character references)."""
    if not isinstance(value, str) or not value:
        return ""
    return repair_mojibake(html_to_text(repair_mojibake(value)))


def _clean_title(value: Any) -> str:
    return normalize_whitespace(_plain(value))


_FULLTEXT_KEYS = ("full-text", "yandex_full-text", "fulltext")


def _content_text(raw: Any) -> str:
    """The longest of the entry's content blocks and full-text extensions, as plain text."""
    candidates = [block.get("value", "") for block in raw.get("content") or ()]
    candidates += [raw.get(key) for key in _FULLTEXT_KEYS]
    best = max((c for c in candidates if isinstance(c, str)), key=len, default="")
    return _plain(best)


def _struct_to_datetime(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(calendar.timegm((*value[:6], 0, 0, 0)), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


_DATE_KEYS = (("published_parsed", "published"), ("updated_parsed", "updated"),
              ("created_parsed", "created"))
_PM_TIME = re.compile(r"\b(\d{1,2}):\d{2}(?::\d{2})?\s*[Pp]\.?[Mm]\b")
_LOCAL_DATE = re.compile(r"(\d{1,2})\.?\s+([^\W\d_]{3,})\.?,?\s+(\d{4}|\d{2})\b(.*)")
# Month names feedparser does not know (pt, it, es, fr, de, pl), by their first letters.
_MONTHS = {
    "jan": 1, "gen": 1, "ene": 1, "janv": 1, "sty": 1,
    "feb": 2, "fev": 2, "fév": 2, "févr": 2, "fevr": 2, "lut": 2,
    "mar": 3, "mär": 3, "mrz": 3,
    "apr": 4, "abr": 4, "avr": 4, "kwi": 4,
    "mai": 5, "mag": 5, "may": 5, "maj": 5,
    "jun": 6, "giu": 6, "juin": 6, "cze": 6,
    "jul": 7, "lug": 7, "juil": 7, "lip": 7,
    "aug": 8, "ago": 8, "aoû": 8, "aou": 8, "sie": 8,
    "sep": 9, "set": 9, "sept": 9, "wrz": 9,
    "oct": 10, "okt": 10, "out": 10, "ott": 10, "paź": 10, "paz": 10,
    "nov": 11, "lis": 11,
    "dec": 12, "dez": 12, "dic": 12, "déc": 12, "gru": 12,
}
_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_localized_date(value: str) -> dt.datetime | None:
    """An RFC 822-like date with month names in another language ("Seg, 24 Set 2018 ...")."""
    match = _LOCAL_DATE.search(value)
    if not match:
        return None
    day, word, year, rest = match.groups()
    word = word.lower()
    month = _MONTHS.get(word[:4]) or _MONTHS.get(word[:3])
    if month is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(
            f"{day} {_EN_MONTHS[month - 1]} {year}{rest}".strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)


def entry_published(raw: Any, fetched_at: dt.datetime) -> tuple[dt.datetime, str]:
    """The entry's time in UTC and where it came from; the fetch time if it has none.

    feedparser reads pubDate/Atom published as ``published`` and dc:date/Atom
    updated as ``updated``. When it cannot parse a date (month names in
    Portuguese or Italian), :func:`parse_localized_date` tries. A "PM" time that
    feedparser read as AM is corrected. Dates more than a day ahead are ignored.
    """
    for key, source in _DATE_KEYS:
        # dict.get: FeedParserDict's own get() falls back from updated to published.
        text = dict.get(raw, source) or ""
        parsed = dict.get(raw, key)
        when = _struct_to_datetime(parsed) if parsed else None
        pm = _PM_TIME.search(text) if isinstance(text, str) else None
        if when is not None and pm and int(pm.group(1)) < 12 and when.hour < 12:
            when += dt.timedelta(hours=12)
        if when is None and isinstance(text, str) and text:
            when = parse_localized_date(text)
        if when is not None and when <= fetched_at + FUTURE_TOLERANCE:
            return when, source
    return fetched_at, "fetched"


@dataclass
class Entry:
    """A normalized feed entry; ``text``, ``language`` and ``content_hash`` follow from it."""

    guid: str
    url: str | None
    title: str
    summary: str
    body: str
    text_source: str  # summary | content | fulltext
    published_at: dt.datetime
    published_source: str
    publisher: str
    language_hint: str | None
    fulltext_error: str | None = None

    @property
    def text(self) -> str:
        """Title, a blank line, then the body: the title is sentence 0."""
        if self.title and self.body:
            return f"{self.title}\n\n{self.body}"
        return self.title or self.body


@dataclass(frozen=True)
class Rejection:
    key: str
    reason: str


def entry_key(raw: Any, url: str | None, title: str, body: str) -> str:
    """The entry's stable identity in its feed: its GUID, else its URL, else a text hash."""
    guid = raw.get("id")
    if isinstance(guid, str) and guid.strip():
        return guid.strip()
    if url:
        return url
    digest = hashlib.sha1(f"{title}\n{body}".encode(), usedforsecurity=False).hexdigest()
    return f"sha1:{digest}"


def normalize_entry(
    raw: Any,
    *,
    feed_url: str,
    fetched_at: dt.datetime,
    publisher: str,
    language_hint: str | None,
) -> Entry | Rejection:
    """One feedparser entry as plain data, or the reason it cannot be stored."""
    url = canonical_url(raw.get("link"), feed_url)
    title = _clean_title(raw.get("title"))
    summary = _plain(raw.get("summary"))
    content = _content_text(raw)
    body, source = (content, "content") if len(content) > len(summary) else (summary, "summary")
    if body == title:
        body = ""
    key = entry_key(raw, url, title, body)
    if not title and not body:
        return Rejection(key, "no title and no text")
    published_at, published_source = entry_published(raw, fetched_at)
    return Entry(
        guid=key,
        url=url,
        title=title,
        summary=summary,
        body=body,
        text_source=source,
        published_at=published_at,
        published_source=published_source,
        publisher=publisher,
        language_hint=normalize_language(raw.get("language")) or language_hint,
    )


def normalize_entries(
    parsed: ParsedFeed,
    *,
    feed_url: str,
    fetched_at: dt.datetime,
    publisher: str,
    language_hint: str | None,
) -> tuple[list[Entry], list[Rejection]]:
    """All entries of a parsed feed; repeats of one GUID within the feed count once."""
    entries: dict[str, Entry] = {}
    rejections: dict[str, Rejection] = {}
    for raw in parsed.entries:
        item = normalize_entry(raw, feed_url=feed_url, fetched_at=fetched_at,
                               publisher=publisher, language_hint=language_hint)
        if isinstance(item, Rejection):
            rejections.setdefault(item.key, item)
        else:
            entries.setdefault(item.guid, item)
    return list(entries.values()), [r for k, r in rejections.items() if k not in entries]


# --- language ---------------------------------------------------------------------------

_identifier: Any = None
_identifier_lock = threading.Lock()


def _langid() -> Any:
    global _identifier
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


_ENGLISH_WORDS = frozenset({
    "the", "and", "of", "to", "in", "is", "for", "that", "with", "on", "was", "said", "from",
    "by", "are", "has", "have", "its", "it", "as", "at", "be", "this", "will", "were",
})
_LATIN_WORD = re.compile(r"[a-z]+")


def detect_language(text: str, hint: str | None = None) -> str | None:
    """ISO 639-1 code of ``text`` (py3langid); a declared ``hint`` wins unless detection is sure.

    Shortcut: a sample with three or more distinct English function words is
    English (on the feed corpus this agrees with py3langid on 837 of 838 such
    entries, the other being its low-confidence "pcm") at a tenth of the cost.
    """
    sample = text[:LANGID_CHARS]
    if not sample.strip():
        return hint
    if hint in (None, "en") and len(_ENGLISH_WORDS.intersection(
            _LATIN_WORD.findall(sample.lower()))) >= 3:
        return "en"
    language, confidence = _langid().classify(sample)
    if hint and language != hint and confidence < LANGID_MIN_CONFIDENCE:
        return hint
    return language


# --- one feed, start to finish (no database) --------------------------------------------


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


def read_feed(body: bytes, *, url: str, headers: dict[str, str], name: str,
              language: str | None, fetched_at: dt.datetime) -> tuple[ParsedFeed, list[Entry],
                                                                       list[Rejection]]:
    """Parse and normalize one fetched body (the CPU part of ingestion)."""
    parsed = parse_feed(body, url=url, content_type=headers.get("content-type"),
                        content_language=headers.get("content-language"))
    if parsed.error:
        return parsed, [], []
    entries, rejections = normalize_entries(
        parsed, feed_url=url, fetched_at=fetched_at, publisher=parsed.title or name,
        language_hint=language or parsed.language,
    )
    return parsed, entries, rejections


def process_feed(client: httpx.Client, job: FeedJob, limits: HttpLimits, *,
                 now: dt.datetime, sleep: Callable[[float], None]) -> FeedOutcome:
    """Fetch, parse and normalize one feed; every failure becomes ``status="failed"``."""
    try:
        fetched = fetch(client, job.url, limits, etag=job.etag,
                        last_modified=job.last_modified, sleep=sleep)
        if fetched.not_modified:
            return FeedOutcome(job, "not_modified", fetched)
        if not fetched.ok:
            return FeedOutcome(job, "failed", fetched, error=fetched.error)
        parsed, entries, rejections = read_feed(
            fetched.body, url=fetched.final_url, headers=fetched.headers, name=job.name,
            language=job.language, fetched_at=now,
        )
        if parsed.error:
            return FeedOutcome(job, "failed", fetched, error=parsed.error,
                               warning=parsed.warning)
        return FeedOutcome(job, "ok", fetched, title=parsed.title, warning=parsed.warning,
                           entries_seen=len(parsed.entries), entries=entries,
                           rejections=rejections)
    except Exception as exc:  # a bug or a hostile feed must not take the run down
        log.exception("feed %s: unexpected error", job.name)
        return FeedOutcome(job, "failed", error=f"internal error: {type(exc).__name__}: {exc}")


# --- the store ---------------------------------------------------------------------------


def sync_registry(session: Session, specs: Sequence[FeedSpec]) -> None:
    """Make the ``feeds`` table match the registry (upsert by name).

    A changed URL drops the old HTTP validators; RSS feeds no longer in the
    registry are disabled, never deleted (their articles stay).
    """
    existing = {row.name: row for row in session.execute(
        select(Feed.name, Feed.url, Feed.kind)).all()}
    rows = [spec.feed_row() for spec in specs]
    upsert(session, Feed, rows, key=["name"],
           update=["kind", "url", "language", "tags", "enabled", "fulltext"])
    moved = [spec.name for spec in specs
             if spec.name in existing and existing[spec.name].url != spec.url]
    if moved:
        session.execute(update(Feed).where(Feed.name.in_(moved)).values(
            etag=None, last_modified=None, consecutive_failures=0, next_attempt_at=None))
    gone = [name for name, row in existing.items()
            if row.kind == "rss" and name not in {spec.name for spec in specs}]
    if gone:
        session.execute(update(Feed).where(Feed.name.in_(gone)).values(enabled=False))


def due_jobs(session: Session, names: Iterable[str], now: dt.datetime) -> tuple[list[FeedJob], int]:
    """Enabled feeds among ``names`` whose next attempt is due, and how many are backing off."""
    rows = session.execute(select(Feed).where(Feed.name.in_(list(names)), Feed.enabled)).scalars()
    jobs, waiting = [], 0
    for feed in rows:
        next_at = _aware(feed.next_attempt_at)
        if next_at is not None and next_at > now:
            waiting += 1
            continue
        jobs.append(FeedJob(id=feed.id, name=feed.name, url=feed.url, fulltext=feed.fulltext,
                            language=feed.language, etag=feed.etag,
                            last_modified=feed.last_modified,
                            consecutive_failures=feed.consecutive_failures))
    return sorted(jobs, key=lambda job: job.name), waiting


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # SQLite returns naive datetimes
    return value


def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
        known.update(session.execute(select(Article.guid).where(
            Article.feed_id == outcome.job.id, Article.guid.in_(chunk))).scalars())
        known.update(session.execute(select(RejectedEntry.entry_key).where(
            RejectedEntry.feed_id == outcome.job.id,
            RejectedEntry.entry_key.in_(chunk))).scalars())
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


def article_rows(outcome: FeedOutcome, session: Session, seen: _Seen,
                 now: dt.datetime) -> tuple[list[dict[str, Any]], list[Rejection]]:
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
        rows.append({
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
        })
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
        return values | {"last_error": outcome.error, "consecutive_failures": failures,
                         "next_attempt_at": now + wait, "last_warning": outcome.warning}
    values |= {"last_error": None, "consecutive_failures": 0, "next_attempt_at": None,
               "last_fetched_at": now}
    if fetched is not None:
        # Validators belong to the body we hold: replace on 200, keep unless resent on 304.
        for column, header in (("etag", "etag"), ("last_modified", "last-modified")):
            value = fetched.headers.get(header)
            if outcome.status == "ok" or value:
                values[column] = value
    if outcome.status == "ok":
        values["last_warning"] = outcome.warning
    return values


def store_outcome(engine: Engine, outcome: FeedOutcome, seen: _Seen,
                  now: dt.datetime) -> dict[str, int]:
    """Write one feed's articles, rejections and health in one transaction."""
    batch = _Seen(set(seen.urls), set(seen.hashes))
    with session_scope(engine) as session:
        rows, rejected = article_rows(outcome, session, batch, now)
        inserted = set(insert_ignore(session, Article, rows, returning="guid"))
        lost = [row["guid"] for row in rows if row["guid"] not in inserted]
        rejected += [Rejection(guid, "duplicate (unique key conflict on insert)")
                     for guid in lost]
        rejection_rows = [{"feed_id": outcome.job.id, "entry_key": r.key, "reason": r.reason,
                           "seen_at": now} for r in rejected]
        new_rejections = insert_ignore(session, RejectedEntry, rejection_rows)
        session.execute(update(Feed).where(Feed.id == outcome.job.id).values(
            **health_values(outcome, now)))
    seen.urls, seen.hashes = batch.urls, batch.hashes  # committed: now they are stored
    return {"articles_new": len(inserted), "rejected": len(new_rejections)}


def mark_offline(engine: Engine, jobs: Sequence[FeedJob]) -> None:
    """Record that due feeds were not fetched; offline is not the feeds' fault (no backoff)."""
    if jobs:
        with session_scope(engine) as session:
            session.execute(update(Feed).where(Feed.id.in_([job.id for job in jobs])).values(
                last_error="offline: not fetched (ESCMON_OFFLINE is set)"))


def record_failure(engine: Engine, outcome: FeedOutcome, now: dt.datetime) -> None:
    with session_scope(engine) as session:
        session.execute(update(Feed).where(Feed.id == outcome.job.id).values(
            **health_values(outcome, now)))


# --- full text -----------------------------------------------------------------------------


def add_fulltext(client: httpx.Client, outcomes: Sequence[FeedOutcome], limits: HttpLimits, *,
                 sleep: Callable[[float], None]) -> dict[str, int]:
    """Fetch article pages for new entries that want them; failures keep the summary."""
    work: list[Entry] = []
    for outcome in outcomes:
        wanted = [e for e in outcome.entries if wants_fulltext(outcome.job.fulltext, e.body, e.url)]
        work += wanted[:MAX_FULLTEXT_PER_FEED]
    if not work:
        return {"fulltext_ok": 0, "fulltext_failed": 0}
    dead_hosts: set[str] = set()

    def page(url: str) -> FetchResult:
        host = urlsplit(url).hostname or ""
        if host in dead_hosts:
            return FetchResult(url, url, error=f"skipped: {host} was unreachable earlier")
        result = fetch(client, url, limits, accept=PAGE_ACCEPT, sleep=sleep)
        if result.status is None and result.error and result.error.startswith("connection"):
            dead_hosts.add(host)
        return result

    def one(entry: Entry) -> bool:
        result = fetch_fulltext(entry.url or "", page)
        text = _without_title(result.text or "", entry.title)
        if text and len(text) > len(entry.body):
            entry.body, entry.text_source = text, "fulltext"
            return True
        entry.fulltext_error = result.error or "page text not longer than the feed's text"
        return False

    with ThreadPoolExecutor(max_workers=limits.concurrency) as pool:
        done = list(pool.map(one, work))
    return {"fulltext_ok": sum(done), "fulltext_failed": len(done) - sum(done)}


def _without_title(text: str, title: str) -> str:
    """Page text minus a leading headline equal to the title (Article.text starts with it)."""
    first, _, rest = text.partition("\n")
    if title and normalize_for_hash(first) == normalize_for_hash(title):
        return rest.lstrip("\n")
    return text


# --- the stage -----------------------------------------------------------------------------

COUNT_KEYS = ("feeds_total", "feeds_due", "feeds_ok", "feeds_not_modified", "feeds_failed",
              "feeds_waiting", "entries_seen", "entries_known", "articles_new", "rejected",
              "fulltext_ok", "fulltext_failed", "stories_new", "stories_joined")


def ingest_feeds(
    engine: Engine,
    settings: Settings,
    *,
    day: dt.date,
    progress: Any = None,
    now: dt.datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Fetch every due, enabled registry feed and store what is new; returns counts.

    ``day`` is the run's logical date; feeds are always read as they are now
    (articles keep their own publication day). One feed failing never fails
    the run: its error is recorded on its ``feeds`` row. ``settings.offline``
    records every due feed as failed without any network I/O.
    """
    del day  # the stage contract passes it; a feed has no "as of" date
    now = now or dt.datetime.now(dt.UTC)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    specs = load_registry(settings.feeds_file)
    counts["feeds_total"] = len(specs)
    if not specs:
        return counts
    with session_scope(engine) as session:
        sync_registry(session, specs)
        jobs, counts["feeds_waiting"] = due_jobs(
            session, [spec.name for spec in specs if spec.enabled], now)
    counts["feeds_due"] = len(jobs)
    if settings.offline:
        mark_offline(engine, jobs)
        counts["feeds_failed"] = len(jobs)
        return counts
    limits = HttpLimits.from_settings(settings)
    if progress is not None:
        progress.start("feeds", len(jobs))
    with make_client(limits) as client:
        outcomes = _fetch_all(client, jobs, limits, now=now, sleep=sleep, progress=progress)
        with session_scope(engine) as session:
            for outcome in outcomes:
                counts["entries_known"] += drop_known(session, outcome)
        counts |= add_fulltext(client, outcomes, limits, sleep=sleep)
    seen = _Seen()
    for outcome in outcomes:
        counts[f"feeds_{outcome.status}"] += 1
        counts["entries_seen"] += outcome.entries_seen
        try:
            if outcome.status == "failed":
                record_failure(engine, outcome, now)
            else:
                stored = store_outcome(engine, outcome, seen, now)
                counts["articles_new"] += stored["articles_new"]
                counts["rejected"] += stored["rejected"]
        except Exception as exc:  # e.g. a value the database refuses: fail this feed only
            log.exception("feed %s: could not store", outcome.job.name)
            counts[f"feeds_{outcome.status}"] -= 1
            counts["feeds_failed"] += 1
            failed = FeedOutcome(outcome.job, "failed", outcome.fetched,
                                 error=f"store error: {type(exc).__name__}: {exc}"[:2000])
            record_failure(engine, failed, now)
    with session_scope(engine) as session:
        counts |= assign_story_ids(session)
    return counts


def _fetch_all(client: httpx.Client, jobs: Sequence[FeedJob], limits: HttpLimits, *,
               now: dt.datetime, sleep: Callable[[float], None],
               progress: Any) -> list[FeedOutcome]:
    def one(job: FeedJob) -> FeedOutcome:
        outcome = process_feed(client, job, limits, now=now, sleep=sleep)
        if progress is not None:
            progress.advance(1)
        return outcome

    with ThreadPoolExecutor(max_workers=limits.concurrency) as pool:
        return list(pool.map(one, jobs))


# --- `escmon feeds check` -----------------------------------------------------------------


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


def check_feed(url: str, settings: Settings, *, language: str | None = None,
               sleep: Callable[[float], None] = time.sleep) -> CheckReport:
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
            fetched.body, url=fetched.final_url, headers=fetched.headers, name=url,
            language=language, fetched_at=dt.datetime.now(dt.UTC))
        report.entries, report.title = len(parsed.entries), parsed.title
        report.problems += check_problems(parsed, entries, rejections)
        report.status = "failed" if parsed.error else "warning" if report.problems else "ok"
    else:
        report.problems.append(fetched.error or f"HTTP {fetched.status}")
    report.elapsed = time.perf_counter() - started
    return report


def check_problems(parsed: ParsedFeed, entries: Sequence[Entry],
                   rejections: Sequence[Rejection]) -> list[str]:
    """What an operator should know about a parsed feed."""
    problems = [parsed.error or parsed.warning] if parsed.error or parsed.warning else []
    if not parsed.error and not parsed.entries:
        problems.append("the feed has no entries")
    undated = sum(1 for entry in entries if entry.published_source == "fetched")
    if undated:
        problems.append(f"{undated} entries without a date (the fetch time will be used)")
    if rejections:
        reasons = sorted({r.reason for r in rejections})
        problems.append(f"{len(rejections)} entries would be rejected: {', '.join(reasons)}")
    return problems


__all__ = [
    "CheckReport",
    "Entry",
    "FeedOutcome",
    "FetchResult",
    "HttpLimits",
    "ParsedFeed",
    "Rejection",
    "canonical_url",
    "check_feed",
    "detect_language",
    "fetch",
    "ingest_feeds",
    "normalize_entries",
    "normalize_entry",
    "parse_feed",
    "read_feed",
    "strip_internal_subset",
]
