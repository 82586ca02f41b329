"""Country tagging: which countries does a sentence name?

The phrase list is ``pipeline/data/gazetteer.tsv`` (derived from the Phoenix/CAMEO country
actor dictionary by ``scripts/derive_gazetteer.py``; see ``pipeline/data/GAZETTEER.md``).

Matching works on word tokens, so it respects word boundaries by construction: "Minsky" does
not match "Minsk". A token is a run of letters/digits, possibly joined by apostrophes or dots
("d'Ivoire", "U.S"); hyphens and other punctuation separate tokens, so "Polish-Belarusian"
names both countries and "Guinea-Bissau" matches the phrase "Guinea Bissau". Possessives
("Belarus's", "Russia’s") are stripped. Comparison is case-sensitive on each word's first
letter and case-insensitive after it ("McCain" vs "Mccain"), except that listed acronyms
("US", "UK") must be upper case and all-caps words ("KYIV") also match their title-case form.
Name particles ("al", "de", "of", "the", ...) compare in lower case. The longest phrase
starting at a token wins, and "block" phrases ("New Mexico") consume their tokens without
naming a country.

A few names are also common given names or name another place; see ``_GUARDED`` and
``_VETOES`` below for the context rules that keep them precise.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Gazetteer", "GeoMatch", "country_name", "load_gazetteer"]

_TOKEN = re.compile(r"[^\W_]+(?:['.][^\W_]+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PARTICLES = _words(
    "al el ul ud bin ibn bint de da do dos das di du del della der den van von la le y e of "
    "the and upon on es sur"
)
_COLUMNS = ["phrase", "country_code", "country_name", "kind"]
_CACHE_LIMIT = 200_000  # distinct tokens remembered before the key cache starts afresh

# Country names that are also given names. They do not count when written as part of a
# person's name: followed by a capitalised word ("Jordan Bardella", "Chad Daybell",
# "Georgia Tech") or, after a capitalised word that is not a sentence opener, as a surname
# ("Jim Jordan", "Michael Jordan", "George Washington"). Values: which sides are checked.
_GUARDED: dict[str, tuple[bool, bool]] = {  # phrase: (check word before, check word after)
    "Chad": (True, True),
    "Jordan": (True, True),
    "Georgia": (True, True),
    "Washington": (True, False),
}
# Capitalised words that often open a sentence or clause before a country name.
_OPENERS = _words(
    """In From To And Of The With Across Unlike Like Neighbouring Neighboring While For By On
    At Including Both Meanwhile But Even Only As Until Into Against Between Via Over Near
    Outside Inside Within After Before Without Than Nor Or Because Since Where When Whereas
    Although Though If Unless Whether Towards Toward Through Throughout Under Beyond Besides
    Around Along Among Amid Amongst Despite Also Then Now Here Neither Either Not So Yet Why
    How What Which Who Whom Whose That This These Those Meanwhile However Moreover Indeed
    Still Thus Hence Already Northern Southern Eastern Western Central Neighbor Neighbour
    Only Post Pre Pro Anti Ex Former Independent Modern Today Tomorrow Yesterday"""
)
# Words that, anywhere in the same text, mean "Georgia" is the US state.
_VETOES: dict[str, frozenset[str]] = {
    "Georgia": _words(
        """Atlanta Savannah Macon Augusta Fulton Alabama Florida Tennessee Carolina Kemp
        Raffensperger Ossoff Warnock Bulldogs Ga Peach Dixie Braves Falcons Hawks"""
    ),
    "Turkey": frozenset({"Thanksgiving"}),
}


def _spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN.finditer(text)]


@dataclass(frozen=True)
class GeoMatch:
    """One phrase found in a text: ``text[start:end]`` names country ``code``."""

    phrase: str
    code: str
    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class _Entry:
    rest: tuple[str, ...]  # keys of the tokens after the first
    code: str  # "" for block phrases
    kind: str
    phrase: str


class Gazetteer:
    """Phrase -> country lookup over tokenised text (see the module docstring)."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        rows = list(rows)
        self._names: dict[str, str] = {}
        # Acronyms must match exactly; collect them before keying anything.
        self._acronyms = frozenset(
            tok
            for phrase, *_ in rows
            for tok in _TOKEN.findall(phrase)
            if tok.isupper() and len(tok) > 1
        )
        index: dict[str, list[_Entry]] = {}
        prefixes: dict[str, str] = {}
        for phrase, code, name, kind in rows:
            if code:
                self._names.setdefault(code, name)
            if kind == "prefix":
                prefixes[self._key(phrase.rstrip("-"))] = code
                continue
            keys = [self._key(t) for t in _TOKEN.findall(phrase)]
            if not keys:
                continue
            index.setdefault(keys[0], []).append(_Entry(tuple(keys[1:]), code, kind, phrase))
        for entries in index.values():
            entries.sort(key=lambda e: -len(e.rest))
        self._index = index
        self._prefixes = prefixes
        self._cache: dict[str, str] = {}

    def _key(self, token: str) -> str:
        if token.endswith("'s") and len(token) > 2:
            token = token[:-2]
        if token.isupper() and token in self._acronyms:
            return token
        low = token.lower()
        if low in _PARTICLES or low.startswith(("d'", "l'")):
            return low
        return token[0] + low[1:]

    def _keys(self, tokens: list[str]) -> list[str]:
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        keys = []
        for token in tokens:
            key = cache.get(token)
            if key is None:
                key = cache[token] = self._key(token)
            keys.append(key)
        return keys

    # ------------------------------------------------------------------ queries

    def countries(self, text: str) -> frozenset[str]:
        """ISO 3166 alpha-3 codes of the countries named in ``text``."""
        return frozenset(code for code, _, _, _ in self._scan(text)[0])

    def matches(self, text: str) -> list[GeoMatch]:
        """Every country-naming phrase in ``text``, left to right (longest match first)."""
        hits, normalized, spans = self._scan(text)
        if not hits:
            return []
        spans = spans or _spans(normalized)
        found = []
        for code, kind, i, j in hits:
            start, end = spans[i][0], spans[j - 1][1]
            found.append(GeoMatch(text[start:end], code, kind, start, end))
        return found

    def _scan(
        self, text: str
    ) -> tuple[list[tuple[str, str, int, int]], str, list[tuple[int, int]] | None]:
        """(code, kind, first token, end token) per hit, the text with apostrophes unified,
        and the token spans if they were needed (they are skipped when they are not)."""
        if "\u2019" in text:
            text = text.replace("\u2019", "'")  # same length: offsets stay valid
        tokens = _TOKEN.findall(text)
        keys = self._keys(tokens)
        index, prefixes = self._index, self._prefixes
        starts = [i for i, key in enumerate(keys) if key in index or key in prefixes]
        hits: list[tuple[str, str, int, int]] = []
        spans: list[tuple[int, int]] | None = None
        vocabulary: set[str] | None = None
        consumed = 0
        for i in starts:
            if i < consumed:
                continue
            entry = self._match_at(keys, i)
            if entry is None:
                code = prefixes.get(keys[i])
                if code:
                    spans = spans or _spans(text)
                    if text.startswith("-", spans[i][1]):
                        hits.append((code, "prefix", i, i + 1))
                continue
            consumed = i + 1 + len(entry.rest)
            if not entry.code:
                continue
            if entry.phrase in _GUARDED:
                spans = spans or _spans(text)
                if self._suppressed(entry, text, tokens, spans, i):
                    continue
            vetoes = _VETOES.get(entry.phrase)
            if vetoes:
                vocabulary = set(keys) if vocabulary is None else vocabulary
                if vocabulary & vetoes:
                    continue
            hits.append((entry.code, entry.kind, i, consumed))
        return hits, text, spans

    def _match_at(self, keys: list[str], i: int) -> _Entry | None:
        candidates = self._index.get(keys[i])
        if not candidates:
            return None
        for entry in candidates:
            size = len(entry.rest)
            if not size or tuple(keys[i + 1 : i + 1 + size]) == entry.rest:
                return entry
        return None

    @staticmethod
    def _suppressed(
        entry: _Entry, text: str, tokens: list[str], spans: list[tuple[int, int]], i: int
    ) -> bool:
        """Is a guarded single-word name part of a person's name here?"""
        sides = _GUARDED.get(entry.phrase)
        if sides is None:
            return False
        check_before, check_after = sides
        start, end = spans[i]
        if check_before and i > 0:
            prev = tokens[i - 1]
            if (
                prev[0].isupper()
                and prev not in _OPENERS
                and not prev.endswith("'s")
                and text[spans[i - 1][1] : start].isspace()
            ):
                return True
        if check_after and i + 1 < len(tokens) and not tokens[i].endswith("'s"):
            return tokens[i + 1][0].isupper() and text[end : spans[i + 1][0]].isspace()
        return False

    def country_name(self, code: str) -> str:
        """English short name of a country code used in the gazetteer (KeyError if unknown)."""
        try:
            return self._names[code]
        except KeyError:
            raise KeyError(f"unknown country code {code!r}") from None

    @property
    def codes(self) -> frozenset[str]:
        """Every country code the gazetteer can return."""
        return frozenset(self._names)


def _read_rows(handle: io.TextIOBase | Iterable[str], name: str) -> list[tuple[str, str, str, str]]:
    reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader, None)
    if header != _COLUMNS:
        raise ValueError(f"{name}, line 1: expected columns {_COLUMNS}, got {header}")
    rows = []
    for row in reader:
        if len(row) != 4 or not row[0]:
            raise ValueError(f"{name}, line {reader.line_num}: expected 4 tab-separated fields")
        rows.append((row[0], row[1], row[2], row[3]))
    return rows


@functools.lru_cache(maxsize=4)
def load_gazetteer(path: str | Path | None = None) -> Gazetteer:
    """The gazetteer from ``path``, or the one shipped in ``pipeline/data`` (cached)."""
    if path is None:
        resource = importlib.resources.files("pipeline") / "data" / "gazetteer.tsv"
        with resource.open("r", encoding="utf-8", newline="") as handle:
            return Gazetteer(_read_rows(handle, "pipeline/data/gazetteer.tsv"))
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return Gazetteer(_read_rows(handle, str(path)))


def country_name(code: str) -> str:
    """English short name of ``code`` from the shipped gazetteer."""
    return load_gazetteer().country_name(code)
