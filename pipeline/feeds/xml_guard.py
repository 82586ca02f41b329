"""Parsing feed bytes safely: no entity from the network is ever expanded.

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

import re
from dataclasses import dataclass
from typing import Any

import feedparser

from pipeline.feeds.normalize import _clean_title, normalize_language

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
    if (
        body.startswith((b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe"))
        or _sniff_codec(body[:4]) != "latin-1"
    ):
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
