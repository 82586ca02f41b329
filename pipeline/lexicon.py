"""CAMEO-derived cue features: which conflict or cooperation moves a sentence names, and how.

The lexicon (``pipeline/data/cameo_lexicon.tsv``, see ``LEXICON.md``) maps cue phrases to CAMEO
event codes. ``CueFeatures`` turns sentences into counts of cues per CAMEO root and polarity,
split by the state of each cue: affirmed, negated ("will not send troops"), hypothetical
("could close the border"), stopped ("halted strikes", "talks collapsed") or threatened
("threatened to expel"). Matching visits only the positions whose token can start a cue or
an actor name (found in one scan per sentence) and skips context checks that cannot succeed,
so the transformer keeps up with the TF-IDF part of the pipeline.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from pipeline.gctools import collector_paused

LEXICON_PATH = Path(__file__).parent / "data" / "cameo_lexicon.tsv"
ROOTS = tuple(f"{r:02d}" for r in range(1, 21))
POLARITIES = ("escalation", "escalation_weak", "deescalation", "cooperation", "neutral")
STATES = ("affirmed", "negated", "hypothetical", "stopped", "threat", "intent")

# Context words. Kept here, not in the TSV: they modify cues rather than name moves.
NEGATORS = frozenset(
    {
        "not",
        "n't",
        "no",
        "never",
        "without",
        "nor",
        "neither",
        "refused",
        "refuses",
        "refuse",
        "refusing",
        "declined",
        "declines",
        "decline",
        "denied",
        "denies",
        "deny",
        "denying",
        "rejected",
        "rejects",
        "reject",
        "rejecting",
        "ruled",
        "rules",
        "failed",
        "fails",
        "against",
        "avoid",
        "avoided",
        "avoids",
        "avoiding",
        "instead",
        "nothing",
        "none",
        "unwilling",
    }
)
STOPPERS = frozenset(
    {
        "halt",
        "halted",
        "halts",
        "halting",
        "stop",
        "stopped",
        "stops",
        "stopping",
        "end",
        "ended",
        "ends",
        "ending",
        "cease",
        "ceased",
        "ceases",
        "ceasing",
        "pause",
        "paused",
        "pauses",
        "suspend",
        "suspended",
        "suspends",
        "suspending",
        "cancel",
        "cancelled",
        "canceled",
        "cancels",
        "scrap",
        "scrapped",
        "scraps",
        "abandon",
        "abandoned",
        "abandons",
        "collapse",
        "collapsed",
        "collapses",
        "stalled",
        "stall",
        "stalls",
        "broke",
        "break",
        "breaks",
        "expired",
        "expires",
        "lifted",
        "lift",
        "lifts",
        "lifting",
        "eased",
        "easing",
        "ease",
        "wound",
        "winding",
        "freeze",
        "froze",
        "frozen",
        "postponed",
        "postpone",
        "postpones",
        "delayed",
        "violated",
        "violates",
        "violating",
        "breached",
        "breaches",
        "quit",
        "quits",
        "left",
        "leave",
        "leaves",
        "exit",
        "exited",
        "exits",
    }
)
# After a de-escalation cue these mean it failed ("talks collapsed"); "talks ended" is not.
BREAKDOWNS = frozenset(
    {
        "collapse",
        "collapsed",
        "collapses",
        "stalled",
        "stall",
        "stalls",
        "broke",
        "break",
        "breaks",
        "failed",
        "fails",
        "faltered",
        "falters",
        "derailed",
        "suspended",
        "frozen",
        "violated",
        "breached",
        "unravelled",
        "unraveled",
        "crumbled",
        "cut",
        "severed",
        "abandoned",
        "shattered",
        "expired",
    }
)
# Modal and conditional words: the move is only possible ("could close the border").
# After an escalation cue these mean it is being ended ("sanctions will be lifted").
ENDERS = frozenset(
    {
        "end",
        "ends",
        "ended",
        "ending",
        "lifted",
        "eased",
        "halted",
        "stopped",
        "ceased",
        "suspended",
        "scrapped",
        "removed",
        "withdrawn",
        "expire",
        "expired",
    }
)
HEDGES = frozenset(
    {
        "could",
        "might",
        "may",
        "would",
        "if",
        "unless",
        "whether",
        "possible",
        "possibly",
        "likely",
        "unlikely",
        "perhaps",
        "considering",
        "consider",
        "considers",
        "mulling",
        "mull",
        "weighing",
        "weigh",
        "weighs",
        "mooted",
        "should",
        "risk",
        "risks",
        "fear",
        "fears",
        "feared",
        "prospect",
        "prospects",
        "chance",
        "chances",
        "potential",
        "scenario",
        "whenever",
        "lest",
        "expect",
        "expected",
        "expects",
        "question",
        "debate",
        "speculation",
    }
)
# Intentions, offers and demands: the actor states the move ("ready to talk", "wants to
# reduce tensions", "plans to deploy"); the guide counts offers and commitments as moves.
INTENTS = frozenset(
    {
        "want",
        "wants",
        "wanted",
        "seek",
        "seeks",
        "seeking",
        "sought",
        "hope",
        "hopes",
        "hoped",
        "hoping",
        "plan",
        "plans",
        "planned",
        "planning",
        "ready",
        "prepared",
        "preparing",
        "willing",
        "open",
        "offer",
        "offered",
        "offers",
        "aim",
        "aims",
        "aimed",
        "try",
        "tries",
        "tried",
        "trying",
        "attempt",
        "attempts",
        "bid",
        "propose",
        "proposed",
        "proposes",
        "call",
        "calls",
        "urged",
        "urge",
        "urges",
        "urging",
        "demanded",
        "demand",
        "demands",
        "pressed",
        "push",
        "pushing",
        "pushed",
        "intend",
        "intends",
        "intended",
        "agreed",
        "agree",
        "agrees",
        "decided",
        "decides",
        "order",
        "ordered",
        "orders",
        "will",
        "set",
        "pledge",
        "pledges",
        "promised",
        "promises",
        "committed",
    }
)
THREATS = frozenset(
    {
        "threatened",
        "threatens",
        "threaten",
        "threatening",
        "threat",
        "threats",
        "warned",
        "warns",
        "warn",
        "warning",
        "warnings",
        "vowed",
        "vows",
        "vow",
        "pledged",
        "ultimatum",
        "unless",
    }
)
BREAKS = frozenset(
    {
        ",",
        ";",
        ":",
        "but",
        "while",
        "although",
        "though",
        "whereas",
        "as",
        "because",
        "after",
        "before",
        "since",
        "despite",
        "when",
        "which",
        "who",
        "that",
        "(",
        ")",
        "—",
        "–",
        "-",
    }
)
_STATE_WORDS = NEGATORS | STOPPERS | THREATS | HEDGES | INTENTS | BREAKS | {"."}
_AFTER_DEESC = BREAKS | BREAKDOWNS
_AFTER_ESC = BREAKS | ENDERS
NEGATION_WINDOW = 4
HEDGE_WINDOW = 6
CONTEXT_WINDOW = 6

# Possessive quantifiers: nothing follows in the alternative, so the match is the same as
# with greedy ones, without the backtracking bookkeeping. "’" is replaced before matching.
_TOKEN_RE = re.compile(r"n't|\w++(?:[-']\w++)*+|[^\w\s]")
_NT_RE = re.compile(r"(\w)n['’]t\b")


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens; "didn't" -> "did", "n't"; punctuation kept as tokens."""
    low = text.lower()
    if "n't" in low or "n’t" in low:  # the substitution is a no-op otherwise
        low = _NT_RE.sub(r"\1 n't", low)
    return _TOKEN_RE.findall(low.replace("’", "'"))


@dataclass(frozen=True)
class Cue:
    code: str
    polarity: str
    kind: str
    source: str
    block: str = ""

    @property
    def root(self) -> str:
        return self.code[:2]


@dataclass(frozen=True)
class CueMatch:
    """One matched cue, for ``--explain`` output."""

    text: str
    code: str
    root: str
    polarity: str
    kind: str
    state: str
    source: str


@dataclass
class Lexicon:
    """The TSV compiled into look-up tables (built once per lexicon text)."""

    sha256: str
    # first token -> [(phrase tokens, entries)], longest phrase first
    # first token -> ((phrase length, {phrase tokens: entries}), ...), longest first
    phrases: dict[str, tuple[tuple[int, dict[tuple[str, ...], list]], ...]]
    # (block, anchor) -> [(pre tokens, post tokens, cue, verbs it is limited to)]
    patterns: dict[
        tuple[str, str], list[tuple[tuple[str, ...], tuple[str, ...], Cue, frozenset[str]]]
    ]
    synsets_of: dict[str, frozenset[str]]
    # verb form -> ((block, lemma), ...)
    blocks_of: dict[tuple[str, ...], tuple[tuple[str, str], ...]]
    n_rows: int = 0
    blocks_with_patterns: frozenset[str] = field(default_factory=frozenset)
    # block -> (anchors of patterns after the verb, anchors of patterns before it)
    block_anchors: dict[str, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)
    # first token -> ((phrase length, {phrase tokens: (actor class, code)}), ...)
    actors: dict[str, tuple[tuple[int, dict[tuple[str, ...], tuple[str, str]]], ...]] = field(
        default_factory=dict
    )
    # rival pairs of actor codes, and every code that is a party to one
    dyads: frozenset[frozenset[str]] = field(default_factory=frozenset)
    parties: frozenset[str] = field(default_factory=frozenset)
    # Derived from ``phrases`` / ``actors`` / ``patterns`` (see ``_split_index``): the first
    # tokens as a set, to find candidate positions with one C-level set operation, and per
    # first token the multi-token tables, the set of their second tokens and the 1-token table.
    phrase_starts: frozenset[str] = field(default_factory=frozenset)
    phrase_index: dict[str, tuple] = field(default_factory=dict)
    actor_starts: frozenset[str] = field(default_factory=frozenset)
    actor_index: dict[str, tuple] = field(default_factory=dict)
    any_starts: frozenset[str] = field(default_factory=frozenset)
    # first token of a cue or an actor -> the tokens that may follow it for a match to be
    # possible there, or None when any may (it is a 1-token cue or actor itself)
    start_gates: dict[str, frozenset[str] | None] = field(default_factory=dict)
    # block -> (tokens that yield an anchor after the verb, tokens that yield one before it):
    # the anchors themselves plus every token whose synsets include one
    block_triggers: dict[str, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)
    # verb form -> the union of its blocks' triggers (after, before): no pattern can apply
    # when neither window holds one
    verb_triggers: dict[tuple[str, ...], tuple[frozenset[str], frozenset[str]]] = field(
        default_factory=dict
    )


@collector_paused()
def parse_lexicon(text: str) -> Lexicon:
    """Compile the TSV text into look-up tables."""
    lines = text.splitlines()
    header = lines[0].split("\t")
    if header[:3] != ["kind", "cue", "context"]:
        raise ValueError("lexicon TSV must start with the header 'kind\\tcue\\tcontext\\t...'")
    idx = {name: i for i, name in enumerate(header)}
    entries: dict[tuple[str, ...], list[tuple[Cue, tuple[tuple[str, ...], ...]]]] = {}
    patterns: dict[tuple[str, str], list] = {}
    synsets: dict[str, set[str]] = {}
    blocks_of: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    actors: dict[str, dict[tuple[str, ...], tuple[str, str]]] = {}
    dyads: set[frozenset[str]] = set()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(header):
            raise ValueError(f"lexicon line {lineno}: expected {len(header)} columns")
        kind, cue, context = cols[idx["kind"]], cols[idx["cue"]], cols[idx["context"]]
        item = Cue(
            cols[idx["code"]], cols[idx["polarity"]], kind, cols[idx["source"]], cols[idx["block"]]
        )
        if kind == "actor":
            key = tuple(tokenize(cue))
            table = actors.setdefault(key[0], {}) if key else {}
            if key and (key not in table or item.source.startswith("supplement")):
                table[key] = (item.polarity, item.code)
            continue
        if kind == "dyad":
            dyads.add(frozenset((cue, context)))
            continue
        if kind == "synset":
            toks = tokenize(cue)
            if toks:
                synsets.setdefault(item.block, set()).add(toks[-1])
        elif kind == "pattern":
            _add_pattern(patterns, item, context, cue)
        else:
            key = tuple(tokenize(cue))
            if not key:
                continue
            if kind == "verb":  # context holds the verb's lemma
                blocks_of.setdefault(key, []).append((item.block, context))
                if item.code:
                    entries.setdefault(key, []).append((item, ()))
                continue
            ctx = tuple(tuple(tokenize(alt)) for alt in context.split("|") if alt.strip())
            entries.setdefault(key, []).append((item, ctx))
    synsets_of: dict[str, set[str]] = {}
    for name, members in synsets.items():
        for tok in members:
            synsets_of.setdefault(tok, set()).add(name)
    for key in blocks_of:
        entries.setdefault(key, [])
    for items in entries.values():
        items.sort(key=_priority)
    flat_actors = {k: v for table in actors.values() for k, v in table.items()}
    phrases, actor_phrases = _by_length(entries), _by_length(flat_actors)
    frozen_synsets = {t: frozenset(s) for t, s in synsets_of.items()}
    block_anchors = _block_anchors(patterns)
    block_triggers = _block_triggers(block_anchors, frozen_synsets)
    verb_blocks = {k: tuple(dict.fromkeys(v)) for k, v in blocks_of.items()}
    verb_triggers = _verb_triggers(verb_blocks, block_triggers)
    return Lexicon(
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        phrases=phrases,
        patterns=patterns,
        synsets_of=frozen_synsets,
        blocks_of=verb_blocks,
        n_rows=len(lines) - 1,
        blocks_with_patterns=frozenset(b for b, _ in patterns),
        block_anchors=block_anchors,
        actors=actor_phrases,
        dyads=frozenset(dyads),
        parties=frozenset(code for pair in dyads for code in pair),
        phrase_starts=frozenset(phrases),
        phrase_index=_phrase_index(phrases, verb_triggers),
        actor_starts=frozenset(actor_phrases),
        actor_index=_split_index(actor_phrases),
        any_starts=frozenset(phrases) | frozenset(actor_phrases),
        start_gates=_start_gates(_split_index(phrases), _split_index(actor_phrases)),
        block_triggers=block_triggers,
        verb_triggers=verb_triggers,
    )


def _split_index(by_length: dict) -> dict[str, tuple]:
    """first token -> (multi-token tables longest first, their second tokens, 1-token table).

    Lets the matchers skip building key tuples when the next token cannot continue a phrase.
    """
    out = {}
    for first, groups in by_length.items():
        multi = tuple((k, table) for k, table in groups if k > 1)
        seconds = frozenset(key[1] for _, table in multi for key in table)
        single = next((table[first,] for k, table in groups if k == 1), None)
        out[first] = (multi, seconds, single)
    return out


def _start_gates(*indexes: dict[str, tuple]) -> dict[str, frozenset[str] | None]:
    gates: dict[str, frozenset[str] | None] = {}
    for index in indexes:
        for first, (_, seconds, single) in index.items():
            if single is not None or (first in gates and gates[first] is None):
                gates[first] = None
            else:
                gates[first] = seconds | gates.get(first, frozenset())
    return gates


def _phrase_index(phrases: dict, verb_triggers: dict) -> dict[str, tuple]:
    """``_split_index`` plus, for the 1-token cue, its resolution when it needs no context.

    (multi, seconds, items, fixed, triggers): ``fixed`` is the cue ``_resolve`` returns
    whatever the context (the first entry is a plain non-verb one); ``triggers`` is set for a
    verb form without entries of its own, which resolves only through a pattern.
    """
    out = {}
    for first, (multi, seconds, items) in _split_index(phrases).items():
        fixed = trig = None
        if items:
            cue, ctx = items[0]
            if not ctx and cue.kind != "verb":
                fixed = cue
        elif items is not None:
            trig = verb_triggers.get((first,), (frozenset(), frozenset()))
        out[first] = (multi, seconds, items, fixed, trig)
    return out


def _verb_triggers(
    verb_blocks: dict[tuple[str, ...], tuple[tuple[str, str], ...]],
    block_triggers: dict[str, tuple[frozenset[str], frozenset[str]]],
) -> dict[tuple[str, ...], tuple[frozenset[str], frozenset[str]]]:
    out = {}
    for key, blocks in verb_blocks.items():
        after: set[str] = set()
        before: set[str] = set()
        for block, _ in blocks:
            if block in block_triggers:
                after |= block_triggers[block][0]
                before |= block_triggers[block][1]
        out[key] = (frozenset(after), frozenset(before))
    return out


def _block_triggers(
    block_anchors: dict[str, tuple[frozenset[str], frozenset[str]]],
    synsets_of: dict[str, frozenset[str]],
) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Per block, the window tokens that can yield a wanted anchor (itself or a synset)."""

    def triggers(wanted: frozenset[str]) -> frozenset[str]:
        return wanted | {t for t, names in synsets_of.items() if not names.isdisjoint(wanted)}

    return {b: (triggers(after), triggers(before)) for b, (after, before) in block_anchors.items()}


def _block_anchors(patterns: dict) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    after: dict[str, set[str]] = {}
    before: dict[str, set[str]] = {}
    for (block, anchor), items in patterns.items():
        for _pre, post, _, _ in items:
            (after if post else before).setdefault(block, set()).add(anchor)
    return {
        b: (frozenset(after.get(b, ())), frozenset(before.get(b, ())))
        for b in set(after) | set(before)
    }


def _by_length(table: dict) -> dict:
    """Index phrases by first token, then by length (longest first) for greedy matching."""
    grouped: dict[str, dict[int, dict]] = {}
    for key, value in table.items():
        grouped.setdefault(key[0], {}).setdefault(len(key), {})[key] = value
    return {first: tuple(sorted(by_len.items(), reverse=True)) for first, by_len in grouped.items()}


def _priority(entry: tuple[Cue, tuple[tuple[str, ...], ...]]) -> tuple[int, int]:
    """Context-gated supplement first, then plain supplement, nouns, verbs."""
    cue, ctx = entry
    order = {"supplement": 0, "noun": 1, "verb": 2}.get(cue.kind, 3)
    return (order, 0 if ctx else 1)


def _add_pattern(patterns: dict, cue: Cue, context: str, only: str) -> None:
    """``context`` is ``post words`` or ``pre words * [post words]`` (``*`` = the verb)."""
    before, star, after = context.partition("*")
    if not star:
        before, after = "", context

    def words_of(text: str) -> tuple[str, ...]:
        return tuple(
            t for tok in text.split() for t in ([tok] if tok.startswith("&") else tokenize(tok))
        )

    pre, post = words_of(before), words_of(after)
    if not pre and not post:
        return
    anchor = post[-1] if post else pre[0]
    lemmas = frozenset(x for x in only.split("|") if x)
    patterns.setdefault((cue.block, anchor), []).append((pre, post, cue, lemmas))


@lru_cache(maxsize=4)
def _compiled(text: str) -> Lexicon:
    return parse_lexicon(text)


def read_lexicon_text(path: str | Path | None = None) -> str:
    return Path(path or LEXICON_PATH).read_text(encoding="utf-8")


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """The compiled lexicon (cached); the packaged TSV by default."""
    return _compiled(read_lexicon_text(path))


# ----------------------------------------------------------------------------- matching
class _Hit(NamedTuple):  # a tuple: cheaper to build than a frozen dataclass
    start: int
    end: int
    cue: Cue
    state: str


def match(tokens: Sequence[str], lex: Lexicon) -> list[_Hit]:
    """Greedy longest-match cues, each resolved by patterns/context and given a state."""
    starts = lex.phrase_starts
    if starts.isdisjoint(tokens):
        return []
    return _match_at(tokens, [i for i, t in enumerate(tokens) if t in starts], lex)


def _match_at(tokens: Sequence[str], positions: list[int], lex: Lexicon) -> list[_Hit]:
    """:func:`match`, visiting only ``positions`` (ascending; a superset of the positions of
    tokens that start a cue phrase; the others are skipped)."""
    hits: list[_Hit] = []
    index = lex.phrase_index
    n = len(tokens)
    nxt = 0  # the first position not covered by the previous match
    for i in positions:
        if i < nxt:
            continue
        tok = tokens[i]
        entry = index.get(tok)
        if entry is None:
            continue
        multi, seconds, single, fixed, trig = entry
        end = 0
        if multi and i + 1 < n and tokens[i + 1] in seconds:
            for k, table in multi:
                if i + k > n:
                    continue
                key = tuple(tokens[i : i + k])
                items = table.get(key)
                if items is None:
                    continue
                cue = _resolve(tokens, i, i + k, key, items, lex)
                if cue is not None:
                    end = i + k
                    break
        if not end and single is not None:
            if fixed is not None:
                cue, end = fixed, i + 1
            elif trig is not None and (
                trig[0].isdisjoint(tokens[i + 1 : i + 1 + CONTEXT_WINDOW])
                and trig[1].isdisjoint(tokens[max(0, i - CONTEXT_WINDOW) : i])
            ):
                pass  # a verb form that only resolves through a pattern, and none applies
            else:
                cue = _resolve(tokens, i, i + 1, (tok,), single, lex)
                if cue is not None:
                    end = i + 1
        if end and cue is not None:
            if cue.code:  # an empty code marks a name that merely contains cue words
                hits.append(_Hit(i, end, cue, _state(tokens, i, end, cue)))
            nxt = end
    return hits


def _resolve(
    tokens: Sequence[str],
    start: int,
    end: int,
    key: tuple[str, ...],
    items: list[tuple[Cue, tuple[tuple[str, ...], ...]]],
    lex: Lexicon,
) -> Cue | None:
    for cue, ctx in items:
        if ctx:
            if _context_near(tokens, start, end, ctx):
                return cue
            continue
        if cue.kind == "verb":
            break  # CAMEO patterns outrank the verb's own code
        return cue
    triggers = lex.verb_triggers.get(key)
    pattern_cue = None
    if triggers is not None and not (
        triggers[0].isdisjoint(tokens[end : end + CONTEXT_WINDOW])
        and triggers[1].isdisjoint(tokens[max(0, start - CONTEXT_WINDOW) : start])
    ):
        pattern_cue = _pattern_for(tokens, start, end, lex.blocks_of.get(key, ()), lex)
    if pattern_cue is not None:
        return pattern_cue if pattern_cue.code else None
    for cue, ctx in items:
        if not ctx and cue.kind == "verb":
            return cue
    return None


def _context_near(
    tokens: Sequence[str], start: int, end: int, ctx: tuple[tuple[str, ...], ...]
) -> bool:
    """Any context alternative within the window before or after the cue (plural-blind)."""
    lo, hi = max(0, start - CONTEXT_WINDOW), min(len(tokens), end + CONTEXT_WINDOW)
    # _singular inlined: this runs for every context-gated cue
    window = [
        t[:-1] if len(t) > 3 and t.endswith("s") and not t.endswith("ss") else t
        for t in (*tokens[lo:start], *tokens[end:hi])
    ]
    present = set(window)
    for alt in _singular_alts(ctx):
        if alt[-1] in present and (len(alt) == 1 or _in_order(window, alt)):
            return True
    return False


@lru_cache(maxsize=8192)
def _singular_alts(ctx: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(_singular(a) for a in alt) for alt in ctx)


def _singular(tok: str) -> str:
    return tok[:-1] if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss") else tok


def _in_order(window: Sequence[str], words: Sequence[str]) -> bool:
    it = iter(window)
    return all(any(w == t for t in it) for w in words)


def _pattern_for(
    tokens: Sequence[str], start: int, end: int, blocks: tuple[tuple[str, str], ...], lex: Lexicon
) -> Cue | None:
    if not blocks:
        return None
    after = tokens[end : end + CONTEXT_WINDOW]
    before = tokens[max(0, start - CONTEXT_WINDOW) : start]
    synsets_of = lex.synsets_of
    triggers = lex.block_triggers
    for block, lemma in blocks:
        anchors = lex.block_anchors.get(block)
        if anchors is None:
            continue
        trig_after, trig_before = triggers[block]
        for side, window, wanted, trig in (
            (1, after, anchors[0], trig_after),
            (0, before, anchors[1], trig_before),
        ):
            if not wanted or trig.isdisjoint(window):
                continue
            # synsets sorted: a frozenset's order depends on the hash seed
            for tok in window:
                for anchor in (tok, *sorted(synsets_of.get(tok, ()))):
                    if anchor not in wanted:
                        continue
                    for pre, post, cue, only in lex.patterns[block, anchor]:
                        if only and lemma not in only:
                            continue
                        words = post if side else pre
                        pre_ok = not pre or not side or _in_order_syn(before, pre, synsets_of)
                        if words and pre_ok and _in_order_syn(window, words, synsets_of):
                            return cue
    return None


def _in_order_syn(
    window: Sequence[str], words: Sequence[str], synsets_of: dict[str, frozenset[str]]
) -> bool:
    it = iter(window)
    for w in words:
        for t in it:
            if t == w or (w[0] == "&" and w in synsets_of.get(t, ())):
                break
        else:
            return False
    return True


def _state(tokens: Sequence[str], start: int, end: int, cue: Cue) -> str:
    """affirmed / negated / hypothetical / stopped / threat / intent, from nearby words."""
    negated = stopped = hedged = threat = intent = False
    if _STATE_WORDS.isdisjoint(tokens[max(0, start - HEDGE_WINDOW) : start]):
        lo = start  # no word before the cue can change its state: skip the loop
    else:
        lo = max(-1, start - HEDGE_WINDOW - 1)
    for j in range(start - 1, lo, -1):
        tok = tokens[j]
        if tok in BREAKS or tok == ".":
            break
        near = start - j <= NEGATION_WINDOW
        if near and tok in NEGATORS:
            negated = True
        elif near and tok in STOPPERS:
            stopped = True
        elif tok in THREATS:
            threat = True
        elif tok in HEDGES:
            hedged = True
        elif tok in INTENTS:
            intent = True
    if not stopped:
        # after the cue: "talks collapsed" (a breakdown), "sanctions will soon end" (lifted)
        deesc = cue.polarity == "deescalation"
        enders = BREAKDOWNS if deesc else ENDERS
        after = tokens[end : end + 5]
        if (_AFTER_DEESC if deesc else _AFTER_ESC).isdisjoint(after):
            after = ()
        for tok in after:
            if tok in BREAKS:
                break
            if tok in enders:
                stopped = True
                break
    if negated:
        return "negated"
    if stopped:
        return "stopped"
    if threat:
        return "threat"
    if hedged:
        return "hypothetical"
    if intent:
        return "intent"
    return "affirmed"


def explain(text: str, lexicon: Lexicon | None = None) -> list[CueMatch]:
    """The cues matched in ``text``, with CAMEO codes, polarity and state."""
    lex = lexicon or load_lexicon()
    tokens = tokenize(text)
    return [
        CueMatch(
            " ".join(tokens[h.start : h.end]),
            h.cue.code,
            h.cue.root,
            h.cue.polarity,
            h.cue.kind,
            h.state,
            h.cue.source,
        )
        for h in match(tokens, lex)
    ]


# ----------------------------------------------------------------------------- features
def match_actors(tokens: Sequence[str], lex: Lexicon) -> list[tuple[int, int, str, str]]:
    """Greedy longest-match actor mentions: (start, end, actor class, code)."""
    starts = lex.actor_starts
    if starts.isdisjoint(tokens):
        return []
    return _actors_at(tokens, [i for i, t in enumerate(tokens) if t in starts], lex)


def _actors_at(
    tokens: Sequence[str], positions: list[int], lex: Lexicon
) -> list[tuple[int, int, str, str]]:
    """:func:`match_actors`, visiting only ``positions`` (as in :func:`_match_at`)."""
    out: list[tuple[int, int, str, str]] = []
    index = lex.actor_index
    n = len(tokens)
    nxt = 0  # the first position not covered by the previous mention
    for i in positions:
        if i < nxt:
            continue
        entry = index.get(tokens[i])
        if entry is None:
            continue
        multi, seconds, single = entry
        if multi and i + 1 < n and tokens[i + 1] in seconds:
            for k, table in multi:
                found = table.get(tuple(tokens[i : i + k])) if i + k <= n else None
                if found is not None:
                    out.append((i, i + k, found[0], found[1]))
                    nxt = i + k
                    break
            else:
                found = None
            if found is not None:
                continue
        if single is not None:
            out.append((i, i + 1, single[0], single[1]))
            nxt = i + 1
    return out


# Words that open a subordinate or background clause: a cue after one of them is usually
# not the sentence's main move ("talks resumed after Washington deployed a carrier").
SUBORDINATORS = frozenset(
    {
        "amid",
        "after",
        "following",
        "despite",
        "as",
        "since",
        "while",
        "before",
        "ahead",
        "backdrop",
        "because",
        "when",
        "until",
        "over",
        "than",
        "which",
        "who",
        "whose",
    }
)
ACTOR_CLASSES = (
    "actor_military",
    "actor_armed_group",
    "actor_state",
    "actor_justice",
    "actor_economy",
    "actor_civil",
)
# Sentence-level flags. Only the two the guide speaks of (headings and questions) are kept:
# style flags (numbers, quotes, negators anywhere, country counts) learned from written
# examples did not transfer to real news on the development set.
FLAG_NAMES = ("question", "short")
MAIN_POLS = ("escalation", "escalation_weak", "deescalation")
# Who a sentence is about: both sides of a known rivalry, one party to one, some other
# state or armed actor, or nobody of the kind (domestic, business, sport...).
CONTEXTS = ("rival", "party", "anchored", "unanchored")


def feature_names() -> list[str]:
    names = [f"root{r}_{s}" for r in ROOTS for s in STATES]
    names += [f"{p}_{s}" for p in POLARITIES for s in STATES]
    names += ["restraint", "breakdown"]
    names += [f"{p}_{where}" for p in MAIN_POLS for where in ("main", "sub")]
    names += [f"first_{p}" for p in MAIN_POLS]
    names += [f"{p}_{ctx}" for p in (*MAIN_POLS, "cooperation") for ctx in CONTEXTS]
    names += list(ACTOR_CLASSES)
    names += ["net_escalation"]
    names += [f"flag_{f}" for f in FLAG_NAMES]
    return names


_NAMES = feature_names()
_INDEX = {name: i for i, name in enumerate(_NAMES)}
N_FEATURES = len(_NAMES)
_ROOT_INDEX = {(r, s): _INDEX[f"root{r}_{s}"] for r in ROOTS for s in STATES}
_POL_INDEX = {(p, s): _INDEX[f"{p}_{s}"] for p in POLARITIES for s in STATES}
_MAIN_INDEX = {(p, w): _INDEX[f"{p}_{w}"] for p in MAIN_POLS for w in ("main", "sub")}
_FIRST_INDEX = {p: _INDEX[f"first_{p}"] for p in MAIN_POLS}
_ANCHOR_INDEX = {(p, c): _INDEX[f"{p}_{c}"] for p in (*MAIN_POLS, "cooperation") for c in CONTEXTS}
_ANCHORS = frozenset({"actor_military", "actor_armed_group", "actor_state"})
_ACTOR_INDEX = {c: _INDEX[c] for c in ACTOR_CLASSES}
_RESTRAINT, _BREAKDOWN = _INDEX["restraint"], _INDEX["breakdown"]
_NET = _INDEX["net_escalation"]
_COUNTS_END = _INDEX["net_escalation"]  # everything before is a count, clipped to [0, 1]
_FLAG0 = _INDEX[f"flag_{FLAG_NAMES[0]}"]
_ESC = {"escalation": 1.0, "escalation_weak": 0.5}
_DEESC = {"deescalation": 1.0}


def sentence_entries(text: str, lex: Lexicon) -> dict[int, float]:
    """Non-zero features of one sentence, {column: value}.

    Counts are clipped at 2 and halved (values in [0, 1]); ``net_escalation`` is a tanh.
    Plain dicts rather than NumPy rows: per-sentence NumPy calls would dominate the cost.
    """
    row: dict[int, float] = {}
    tokens = tokenize(text)
    hits, actors = [], []
    if not lex.any_starts.isdisjoint(tokens):
        # one scan for the candidate positions of both matchers: a token that starts only
        # longer phrases counts when the next token can continue one
        gates = lex.start_gates
        last = len(tokens) - 1
        positions = [i for i, t in enumerate(tokens) if t in gates]
        positions = [
            i
            for i in positions
            if (g := gates[tokens[i]]) is None or (i < last and tokens[i + 1] in g)
        ]
        if positions:
            hits, actors = _match_at(tokens, positions, lex), _actors_at(tokens, positions, lex)
    net, affirmed = _add_hits(row, hits, tokens) if hits else (0.0, None)
    parties: set[str] = set()
    anchored = False
    for _, _, cls, code in actors:
        if code in lex.parties:
            parties.add(code)
        if cls == "actor_country":
            anchored = True
        elif cls in _ACTOR_INDEX:
            col = _ACTOR_INDEX[cls]
            row[col] = row.get(col, 0.0) + 1.0
            anchored = anchored or cls in _ANCHORS
    if affirmed:
        where = (
            "rival"
            if _rivals(parties, lex.dyads)
            else "party"
            if parties
            else "anchored"
            if anchored
            else "unanchored"
        )
        for pol, count in affirmed.items():
            anchor_col = _ANCHOR_INDEX.get((pol, where))
            if anchor_col is not None:
                row[anchor_col] = row.get(anchor_col, 0.0) + count
    for col, value in row.items():
        row[col] = min(value, 2.0) / 2.0
    if net:
        row[_NET] = math.tanh(net)
    if text.rstrip().endswith("?"):
        row[_FLAG0] = 1.0
    if len(tokens) <= 8:
        row[_FLAG0 + 1] = 1.0
    return row


def _rivals(parties: set[str], dyads: frozenset[frozenset[str]]) -> bool:
    return len(parties) > 1 and any(
        frozenset((a, b)) in dyads for a in parties for b in parties if a < b
    )


def _add_hits(
    row: dict[int, float], hits: list[_Hit], tokens: Sequence[str]
) -> tuple[float, dict[str, int]]:
    """Add the cue counts of ``hits`` to ``row``; return (net escalation, affirmed per polarity).

    ``affirmed`` counts the moves that are made (affirmed, threatened or intended), a halted
    escalation counting as a de-escalation.
    """
    get = row.get
    net = 0.0
    first_sub = len(tokens)
    if not SUBORDINATORS.isdisjoint(tokens):
        first_sub = next(i for i, t in enumerate(tokens) if t in SUBORDINATORS)
    first_pol = ""
    affirmed: dict[str, int] = {}
    for start, _, cue, state in hits:
        pol = cue.polarity
        col = _ROOT_INDEX.get((cue.code[:2], state))
        if col is not None:
            row[col] = get(col, 0.0) + 1.0
        col = _POL_INDEX.get((pol, state))
        if col is not None:
            row[col] = get(col, 0.0) + 1.0
        esc, de = _ESC.get(pol, 0.0), _DEESC.get(pol, 0.0)
        if state == "stopped" and esc:
            # halting a hostile move is a de-escalation ("halted strikes", "lifted sanctions")
            affirmed["deescalation"] = affirmed.get("deescalation", 0) + 1
            col = _MAIN_INDEX["deescalation", "main" if start < first_sub else "sub"]
            row[col] = get(col, 0.0) + 1.0
        if state == "negated" or state == "stopped":
            if esc:
                row[_RESTRAINT] = get(_RESTRAINT, 0.0) + 1.0
            if de and state == "stopped":  # "talks collapsed"; "denied a ceasefire" is neither
                row[_BREAKDOWN] = get(_BREAKDOWN, 0.0) + 1.0
            net += (de if state == "stopped" else 0.0) - esc
        elif state == "affirmed" or state == "threat" or state == "intent":
            net += esc - de
            affirmed[pol] = affirmed.get(pol, 0) + 1
            if pol in _FIRST_INDEX:
                col = _MAIN_INDEX[pol, "main" if start < first_sub else "sub"]
                row[col] = get(col, 0.0) + 1.0
                if not first_pol:
                    first_pol = pol
    if first_pol:
        row[_FIRST_INDEX[first_pol]] = 2.0  # halved to 1 below
    return net, affirmed


def sentence_features(text: str, lex: Lexicon | None = None) -> np.ndarray:
    """The dense feature row of one sentence (see :func:`feature_names`)."""
    row = np.zeros(N_FEATURES, dtype=np.float64)
    for col, value in sentence_entries(text, lex or load_lexicon()).items():
        row[col] = value
    return row


class CueFeatures(TransformerMixin, BaseEstimator):
    """Sentences -> CAMEO cue features (see ``feature_names()``), a sparse CSR matrix.

    ``X`` is an iterable of sentences, or a 2-D array with one text column (as a
    ``ColumnTransformer`` passes it). Numeric input is refused.

    Parameters
    ----------
    lexicon_path : path to a lexicon TSV, or None for the packaged ``cameo_lexicon.tsv``.
        ``fit`` stores the lexicon text in ``lexicon_text_`` so a saved model does not depend
        on the file it was trained with.
    """

    def __init__(self, lexicon_path: str | None = None):
        self.lexicon_path = lexicon_path

    def fit(self, X: Iterable[str], y=None):
        _as_texts(X)
        self.lexicon_text_ = read_lexicon_text(self.lexicon_path)
        self.lexicon_sha256_ = hashlib.sha256(self.lexicon_text_.encode("utf-8")).hexdigest()
        self.n_features_out_ = N_FEATURES
        return self

    def transform(self, X: Iterable[str]) -> sp.csr_matrix:
        check_is_fitted(self, "lexicon_text_")
        lex = _compiled(self.lexicon_text_)
        texts = _as_texts(X)
        indptr, indices, data = [0], [], []
        for text in texts:
            entries = sentence_entries(text, lex)
            if entries:
                cols = sorted(entries)
                indices += cols
                data += [entries[c] for c in cols]
            indptr.append(len(indices))
        return sp.csr_matrix(
            (
                np.asarray(data, dtype=np.float64),
                np.asarray(indices, dtype=np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(texts), N_FEATURES),
        )

    def explain(self, text: str) -> list[CueMatch]:
        check_is_fitted(self, "lexicon_text_")
        return explain(text, _compiled(self.lexicon_text_))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "lexicon_text_")
        return np.asarray(feature_names(), dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = True  # a single text column
        tags.requires_fit = True
        return tags


def _as_texts(X: Iterable[str]) -> list[str]:
    """A list of sentences; a (n, 1) array (one text column) is accepted too."""
    if isinstance(X, str):
        raise ValueError("CueFeatures expects an iterable of sentences, got a single string")
    if isinstance(X, list):
        items = X
    elif getattr(X, "ndim", 1) == 2:
        shape = np.shape(X)  # type: ignore[call-overload]
        if shape[1] != 1:
            raise ValueError(f"CueFeatures expects one text column, got shape {shape}")
        items = list(np.asarray(X, dtype=object)[:, 0])
    else:
        items = list(X)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise ValueError(f"CueFeatures expects strings; item {i} is {type(t).__name__}")
    return items
