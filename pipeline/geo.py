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
from itertools import compress
from pathlib import Path

from pipeline.gctools import collector_paused

__all__ = ["Gazetteer", "GeoMatch", "country_name", "load_gazetteer"]

_TOKEN = re.compile(r"[^\W_]+(?:['.][^\W_]+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PARTICLES = _words(
    "al el ul ud bin ibn bint de da do dos das di du del della der den van von la le y e of "
    "the and upon on es sur"
)
_COLUMNS = ["phrase", "country_code", "country_name", "kind"]
_NONE: frozenset[str] = frozenset()
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

    @collector_paused()
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
        # Per first key: (rest length, {rest: entry}) from the longest rest down; among equal
        # rests the first row wins, as it did when the entries were tried in file order.
        self._index: dict[str, list[tuple[int, dict[tuple[str, ...], _Entry]]]] = {}
        for first, entries in index.items():
            by_size: dict[int, dict[tuple[str, ...], _Entry]] = {}
            for entry in entries:
                by_size.setdefault(len(entry.rest), {}).setdefault(entry.rest, entry)
            self._index[first] = sorted(by_size.items(), reverse=True)
        self._prefixes = prefixes
        # Particles that only start longer phrases ("the" of "The Hague", "al" of "al Qaeda")
        # are frequent words: they are tried only before a key that can continue them.
        self._lead_keys = frozenset(
            first
            for first, sizes in self._index.items()
            if first in _PARTICLES and sizes[-1][0] and first not in prefixes
        )
        self._second_keys = frozenset(
            rest[0]
            for first in self._lead_keys
            for _, entries in self._index[first]
            for rest in entries
        )
        # Raw token caches: its key, and which of the sets above its key belongs to.
        self._cache: dict[str, str] = {}
        self._known: set[str] = set()  # the keys of the cache, as a set for C-level checks
        self._starters: set[str] = set()  # tokens that may start a phrase on their own
        self._leaders: set[str] = set()  # tokens that start phrases only before a follower
        self._followers: set[str] = set()  # tokens that can follow a leader (rare words)
        self._interesting: set[str] = set()  # starters and followers

    def _key(self, token: str) -> str:
        if token.endswith("'s") and len(token) > 2:
            token = token[:-2]
        if token.isupper() and token in self._acronyms:
            return token
        low = token.lower()
        if low in _PARTICLES or low.startswith(("d'", "l'")):
            return low
        return token[0] + low[1:]

    def _learn(self, tokens: set[str]) -> None:
        """Cache the key of every token not seen yet, and what it may start."""
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            for memo in (
                cache,
                self._known,
                self._starters,
                self._leaders,
                self._followers,
                self._interesting,
            ):
                memo.clear()
        index, prefixes = self._index, self._prefixes
        for token in tokens.difference(self._known):
            key = cache[token] = self._key(token)
            self._known.add(token)
            if key in self._lead_keys:
                self._leaders.add(token)
            elif key in index or key in prefixes:
                self._starters.add(token)
                self._interesting.add(token)
            if key in self._second_keys:
                self._followers.add(token)
                self._interesting.add(token)

    # ------------------------------------------------------------------ queries

    def countries(self, text: str) -> frozenset[str]:
        """ISO 3166 alpha-3 codes of the countries named in ``text``."""
        hits = self._scan(text)[0]
        return frozenset([hit[0] for hit in hits]) if hits else _NONE

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
        starts = self._starts(tokens)
        if not starts:
            return [], text, None
        keys = list(map(self._cache.__getitem__, tokens))
        prefixes = self._prefixes
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

    def _starts(self, tokens: list[str]) -> list[int]:
        """Positions where a phrase may start. Set operations run in C: most tokens are
        known and start nothing, so most sentences cost no Python-level loop at all."""
        vocabulary = set(tokens)
        if not vocabulary.issubset(self._known):
            self._learn(vocabulary)
        starting = vocabulary.intersection(self._interesting)
        if not starting:
            return []
        following = starting.intersection(self._followers)
        if following:
            starting.difference_update(following - self._starters)
            leaders = self._leaders
            after = compress(range(1, len(tokens)), map(following.__contains__, tokens[1:]))
            starting.update(tokens[j - 1] for j in after if tokens[j - 1] in leaders)
        return list(compress(range(len(tokens)), map(starting.__contains__, tokens)))

    def _match_at(self, keys: list[str], i: int) -> _Entry | None:
        """The longest phrase starting at token ``i``."""
        for size, entries in self._index.get(keys[i], ()):
            entry = entries.get(tuple(keys[i + 1 : i + 1 + size]))
            if entry is not None:
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
        text = resource.read_text(encoding="utf-8")
        return Gazetteer(_read_rows(io.StringIO(text, newline=""), "pipeline/data/gazetteer.tsv"))
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return Gazetteer(_read_rows(handle, str(path)))


def country_name(code: str) -> str:
    """English short name of ``code`` from the shipped gazetteer."""
    return load_gazetteer().country_name(code)
