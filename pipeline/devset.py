"""The hand-labelled development set, stored as references into the shared real feeds.

Each line of ``dev/devset_refs.jsonl`` names a feed file, an entry (its feedparser id, or
its link when it has no id), a field (``title`` or ``summary``) and a sentence index, plus
the first 10 hex digits of the SHA-1 of that sentence's text. The text itself is not
copied: it is recovered by parsing the feed bytes with feedparser, converting the field
with :func:`pipeline.text.html_to_text` and splitting it with
:func:`pipeline.text.split_sentences`. The hash catches a sentence that moved because the
splitter or the HTML conversion changed.

This is development data: it needs the shared feed corpus (``shared/corpora/feeds/real``)
and is never needed by the product at run time. Heavy imports (feedparser, lxml) happen
inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.errors import EscmonError

__all__ = [
    "DEFAULT_REFS",
    "FEEDS_SUBDIR",
    "FIELDS",
    "LABELS",
    "DevsetError",
    "LabelledSentence",
    "SentenceRef",
    "entry_key",
    "feed_sentences",
    "load_devset",
    "read_refs",
    "sentence_sha1",
]

DEFAULT_REFS = Path(__file__).resolve().parents[1] / "dev" / "devset_refs.jsonl"
FEEDS_SUBDIR = Path("corpora") / "feeds" / "real"
LABELS = ("escalation", "deescalation", "neutral")
FIELDS = ("title", "summary")
_MAX_REPORTED = 20


class DevsetError(EscmonError, ValueError):
    """A reference is malformed or no longer resolves; the message names the entry."""


class LabelledSentence(NamedTuple):
    text: str
    label: str
    feed: str
    reason: str


class SentenceRef(NamedTuple):
    feed: str
    entry_id: str
    field: str
    sentence: int
    sha1: str
    label: str
    reason: str


def sentence_sha1(text: str) -> str:
    """First 10 hex digits of the SHA-1 of the UTF-8 sentence text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def entry_key(entry: Any) -> str | None:
    """How a reference names an entry: its feedparser id, else its link."""
    return entry.get("id") or entry.get("link") or None


def feed_sentences(data: bytes) -> dict[tuple[str, str], list[str]]:
    """Sentence texts of every ``(entry key, field)`` of a feed, in document order.

    When several entries share a key, the first one wins, so a key always resolves to
    the same entry. Entries with neither id nor link cannot be referenced and are skipped.
    """
    import feedparser

    from pipeline.text import html_to_text, split_sentences

    out: dict[tuple[str, str], list[str]] = {}
    for entry in feedparser.parse(data).entries:
        key = entry_key(entry)
        if key is None:
            continue
        for field in FIELDS:
            if (key, field) in out:
                continue
            text = html_to_text(entry.get(field) or "")
            out[(key, field)] = [s.text for s in split_sentences(text)]
    return out


def read_refs(refs_path: Path) -> list[SentenceRef]:
    """Parse and validate the reference file (one JSON object per line)."""
    refs: list[SentenceRef] = []
    lines = refs_path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{refs_path}:{lineno}"
        try:
            raw = json.loads(line)
            ref = SentenceRef(
                feed=str(raw["feed"]),
                entry_id=str(raw["entry_id"]),
                field=str(raw["field"]),
                sentence=int(raw["sentence"]),
                sha1=str(raw["sha1"]),
                label=str(raw["label"]),
                reason=str(raw.get("reason", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DevsetError(f"{where}: malformed reference ({exc})") from exc
        if ref.label not in LABELS:
            raise DevsetError(f"{where}: label {ref.label!r} is not one of {LABELS}")
        if ref.field not in FIELDS:
            raise DevsetError(f"{where}: field {ref.field!r} is not one of {FIELDS}")
        refs.append(ref)
    return refs


def load_devset(shared_dir: Path, refs_path: Path = DEFAULT_REFS) -> list[LabelledSentence]:
    """Resolve every reference against the feeds under ``shared_dir`` and check its hash.

    Raises :class:`DevsetError` listing each reference whose feed, entry or sentence is
    missing, or whose text no longer has the recorded hash (the text moved).
    """
    refs = read_refs(refs_path)
    feeds_dir = Path(shared_dir) / FEEDS_SUBDIR
    resolved = _resolve_all(feeds_dir, {ref.feed for ref in refs})
    out: list[LabelledSentence] = []
    problems: list[str] = []
    for ref in refs:
        text, problem = _resolve(ref, resolved)
        if problem:
            problems.append(problem)
        else:
            out.append(LabelledSentence(text, ref.label, ref.feed, ref.reason))
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        more = len(problems) - _MAX_REPORTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DevsetError(
            f"{len(problems)} dev-set reference(s) in {refs_path} no longer resolve "
            f"(rebuild with scripts/build_devset.py):\n  {shown}{tail}"
        )
    return out


def _resolve_all(feeds_dir: Path, feeds: Iterable[str]) -> dict[str, Any]:
    """Feed name -> its sentence table, or the error message when it cannot be read."""
    tables: dict[str, Any] = {}
    for feed in sorted(feeds):
        # "name.xml" is a real/ feed; "pool/name.xml" names its folder under corpora/feeds.
        path = feeds_dir.parent / feed if "/" in feed else feeds_dir / feed
        try:
            tables[feed] = feed_sentences(path.read_bytes())
        except OSError as exc:
            tables[feed] = f"cannot read feed {path}: {exc.strerror or exc}"
    return tables


def _resolve(ref: SentenceRef, tables: dict[str, Any]) -> tuple[str, str | None]:
    """The referenced text, or an error message naming the entry."""
    where = f"{ref.feed} entry {ref.entry_id!r} {ref.field}[{ref.sentence}]"
    table = tables[ref.feed]
    if isinstance(table, str):
        return "", f"{where}: {table}"
    sentences = table.get((ref.entry_id, ref.field))
    if sentences is None:
        return "", f"{where}: no such entry in the feed"
    if not 0 <= ref.sentence < len(sentences):
        return "", f"{where}: the field now has {len(sentences)} sentence(s)"
    text = sentences[ref.sentence]
    if sentence_sha1(text) != ref.sha1:
        return "", f"{where}: text moved, sha1 {sentence_sha1(text)} != {ref.sha1}: {text[:80]!r}"
    return text, None
