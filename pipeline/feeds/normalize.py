"""Feed entries to plain data: canonical URLs, plain text, dates, language."""

from __future__ import annotations

import calendar
import datetime as dt
import email.utils
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

from pipeline.language import article_language
from pipeline.text import html_to_text, normalize_whitespace

if TYPE_CHECKING:  # parse_feed builds ParsedFeed with this module's helpers
    from pipeline.feeds.xml_guard import ParsedFeed

FUTURE_TOLERANCE = dt.timedelta(days=1)  # later "published" dates are not believed

TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "ocid",
        "cmpid",
        "icid",
        "maca",
        "traffic_source",
        "smid",
        "ito",
        "xtor",
        "ref_src",
    }
)
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
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
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
_MOJIBAKE = re.compile(f"[\xc2-\xdf]{_CONT}|[\xe0-\xef]{_CONT}{{2}}|[\xf0-\xf4]{_CONT}{{3}}")


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


_DATE_KEYS = (
    ("published_parsed", "published"),
    ("updated_parsed", "updated"),
    ("created_parsed", "created"),
)
_PM_TIME = re.compile(r"\b(\d{1,2}):\d{2}(?::\d{2})?\s*[Pp]\.?[Mm]\b")
_LOCAL_DATE = re.compile(r"(\d{1,2})\.?\s+([^\W\d_]{3,})\.?,?\s+(\d{4}|\d{2})\b(.*)")
# Month names feedparser does not know (pt, it, es, fr, de, pl), by their first letters.
_MONTHS = {
    "jan": 1,
    "gen": 1,
    "ene": 1,
    "janv": 1,
    "sty": 1,
    "feb": 2,
    "fev": 2,
    "fév": 2,
    "févr": 2,
    "fevr": 2,
    "lut": 2,
    "mar": 3,
    "mär": 3,
    "mrz": 3,
    "apr": 4,
    "abr": 4,
    "avr": 4,
    "kwi": 4,
    "mai": 5,
    "mag": 5,
    "may": 5,
    "maj": 5,
    "jun": 6,
    "giu": 6,
    "juin": 6,
    "cze": 6,
    "jul": 7,
    "lug": 7,
    "juil": 7,
    "lip": 7,
    "aug": 8,
    "ago": 8,
    "aoû": 8,
    "aou": 8,
    "sie": 8,
    "sep": 9,
    "set": 9,
    "sept": 9,
    "wrz": 9,
    "oct": 10,
    "okt": 10,
    "out": 10,
    "ott": 10,
    "paź": 10,
    "paz": 10,
    "nov": 11,
    "lis": 11,
    "dec": 12,
    "dez": 12,
    "dic": 12,
    "déc": 12,
    "gru": 12,
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
            f"{day} {_EN_MONTHS[month - 1]} {year}{rest}".strip()
        )
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
        item = normalize_entry(
            raw,
            feed_url=feed_url,
            fetched_at=fetched_at,
            publisher=publisher,
            language_hint=language_hint,
        )
        if isinstance(item, Rejection):
            rejections.setdefault(item.key, item)
        else:
            entries.setdefault(item.guid, item)
    return list(entries.values()), [r for k, r in rejections.items() if k not in entries]


detect_language = article_language  # the feed stage's name for it
