"""Duplicate detection: exact (URL, GUID), content hash, and near-duplicate story ids.

Exact duplicates never reach the store: ``articles`` has unique keys on the
canonical URL, on (feed, GUID) and on :func:`content_hash`, and ingestion
writes with insert-or-ignore. Near-duplicates (syndicated copies with small
edits) are stored, and grouped under one ``story_id``: the id of the group's
first article. Similarity is the Jaccard index of word-bigram sets; MinHash
LSH finds the candidates, the exact index decides. Bigrams are
held as sorted arrays of 64-bit hashes (:func:`shingle_hashes`, 8 bytes per
bigram instead of a ~100-byte string in a set). Bigrams rather
than longer shingles because feed texts are short (median ~30 words): on the
feed corpus, copies with a changed word, a byline or a cut sentence score
>= 0.5 in 99% of cases, while distinct articles never exceeded 0.32.

Grouping is near-linear in the number of new articles. Each article's MinHash (datasketch's
"affine64" permutations) is cut into :data:`BANDS` bands of :data:`ROWS` values (the split
``datasketch.MinHashLSH`` picks for :data:`LSH_THRESHOLD`), each band hashed to one 64-bit
key; the keys are stored once, when the article is grouped (``story_bands``), so a later run
MinHashes only its new articles and looks their keys up among the stored ones in the window.
Two bounds keep a huge group (a feed repeating one text 20,000 times) linear: only the
newest :data:`BUCKET_TAIL` members of a bucket are candidates, and at most
:data:`MAX_CHECKS` candidates are compared per article, oldest story first, newest copy
first within a story, stopping at the first at or above :data:`NEAR_DUP_JACCARD`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from pipeline.tables import Article, StoryBand

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

NEAR_DUP_JACCARD = 0.45  # bigram Jaccard at or above which two texts are one story
STORY_WINDOW_DAYS = 7  # only articles published this close are compared
LSH_THRESHOLD = 0.3  # candidate recall stays ~98% at the decision threshold
NUM_PERM = 128
MAX_TOKENS = 400  # leading words compared; copies differ mostly at the end
MIN_SHINGLES = 6  # shorter texts only group through an identical content hash
BANDS, ROWS = 37, 3  # datasketch.lsh._optimal_param(LSH_THRESHOLD, NUM_PERM): same recall
BUCKET_TAIL = 8  # newest members of an LSH bucket that are candidates
MAX_CHECKS = 50  # Jaccard comparisons per article at most
MARKER_BAND = -1  # every keyed article has one row (MARKER_BAND, 0): "keys written"


def normalize_for_hash(text: str) -> str:
    """Lower-case words joined by single spaces: punctuation and spacing edits vanish."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def content_hash(text: str) -> str:
    """SHA-256 of the normalized text: equal for copies that differ only in markup/spacing."""
    return hashlib.sha256(normalize_for_hash(text).encode("utf-8")).hexdigest()


def shingles(text: str, *, max_tokens: int = MAX_TOKENS) -> frozenset[str]:
    """The set of word bigrams of the first ``max_tokens`` normalized words."""
    tokens = normalize_for_hash(text).split()[:max_tokens]
    return frozenset(f"{a} {b}" for a, b in itertools.pairwise(tokens))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


# Splitmix64 finaliser constants: mixes a word-hash pair into one 64-bit bigram hash.
_MIX = tuple(np.uint64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def shingle_hashes(text: str, *, cache: dict[str, int] | None = None) -> np.ndarray:
    """The :func:`shingles` of ``text`` as sorted, distinct 64-bit hashes (``uint64``).

    8 bytes per bigram instead of a ~100-byte string in a set. Words are hashed once
    (blake2b, memoised in ``cache``), bigrams by mixing their two word hashes in numpy.
    Two different bigrams collide with probability ~2**-64, so Jaccard on these equals
    Jaccard on the strings in practice.
    """
    words = normalize_for_hash(text).split()[:MAX_TOKENS]
    if len(words) < 2:
        return np.empty(0, dtype=np.uint64)
    memo = {} if cache is None else cache
    for word in set(words).difference(memo):
        memo[word] = _word_hash(word)
    codes = np.fromiter(map(memo.__getitem__, words), dtype=np.uint64, count=len(words))
    golden, mul1, mul2 = _MIX
    with np.errstate(over="ignore"):
        mixed = (codes[:-1] * golden) ^ codes[1:]
        mixed ^= mixed >> np.uint64(30)
        mixed *= mul1
        mixed ^= mixed >> np.uint64(27)
        mixed *= mul2
        mixed ^= mixed >> np.uint64(31)
    return np.unique(mixed)


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def hashed_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index of two :func:`shingle_hashes` arrays."""
    if not a.size or not b.size:
        return 0.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)


@dataclass(frozen=True)
class StoryDoc:
    """An article as story grouping sees it; ``story_id`` is None until assigned."""

    id: int
    day: dt.date
    text: str
    story_id: int | None = None


class _Signer:
    """MinHash signatures and LSH band keys of :func:`shingle_hashes` arrays.

    The hashes are already uniformly mixed 64-bit values, so each permutation is datasketch's
    "affine64" ``a * h + b mod 2**64`` (its default seed: the same permutations every run),
    applied in numpy one article at a time (the shingles x permutations intermediate stays
    small).
    """

    def __init__(self) -> None:
        from datasketch import MinHash

        permutations = MinHash(num_perm=NUM_PERM, scheme="affine64").permutations
        self.a, self.b = (np.asarray(p, dtype=np.uint64) for p in permutations)

    def signature(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (values[:, None] * self.a + self.b).min(axis=0)

    def keys(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        """The ``(len(sets), BANDS)`` int64 band keys (the band is mixed into its key)."""
        if not sets:
            return np.empty((0, BANDS), dtype=np.int64)
        return band_keys(np.stack([self.signature(values) for values in sets]))


def band_keys(signatures: np.ndarray) -> np.ndarray:
    """``(n, NUM_PERM)`` MinHash values -> ``(n, BANDS)`` int64 keys, one per band of ``ROWS``
    values (the bands ``datasketch.MinHashLSH`` uses), salted by the band: keys of different
    bands never meet."""
    n = len(signatures)
    rows = signatures[:, : BANDS * ROWS].reshape(n, BANDS, ROWS)
    key = np.broadcast_to(_BAND_SALT, (n, BANDS)).copy()
    for j in range(ROWS):
        key = _mix(key ^ rows[:, :, j])
    return key.view(np.int64)


def _mix(x: np.ndarray) -> np.ndarray:
    golden, mul1, mul2 = _MIX
    with np.errstate(over="ignore"):
        x = x * golden
        x ^= x >> np.uint64(30)
        x *= mul1
        x ^= x >> np.uint64(27)
        x *= mul2
        x ^= x >> np.uint64(31)
    return x


_BAND_SALT = _mix(np.arange(1, BANDS + 1, dtype=np.uint64))


@dataclass
class _Grouper:
    """Places articles in stories in arrival order, comparing each with a bounded candidate set.

    ``known`` articles (already grouped, or placed earlier) are indexed by band key; a bucket
    keeps only its newest :data:`BUCKET_TAIL` members. ``texts`` are shingled on first use.
    ``rows`` holds the ``(band, key)`` rows to store for each placed article: a bucket gets at
    most :data:`BUCKET_TAIL` rows a day (``filled`` counts them), so a flood of copies stores
    few, and a lookup reads at most that many per day of the window.
    """

    threshold: float
    window_days: int
    day: dict[int, int] = field(default_factory=dict)  # article id -> day ordinal
    story: dict[int, int] = field(default_factory=dict)
    sets: dict[int, np.ndarray] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)
    buckets: dict[int, list[int]] = field(default_factory=dict)
    filled: dict[tuple[int, int], int] = field(default_factory=dict)  # (key, day) -> rows
    rows: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    compared: int = 0

    def know(self, id_: int, day: dt.date, story: int, keys: Iterable[int]) -> None:
        """Index an article that has a story (call in id order within each bucket)."""
        ordinal = self.day[id_] = day.toordinal()
        self.story[id_] = story
        filled = self.filled
        for key in keys:
            filled[key, ordinal] = filled.get((key, ordinal), 0) + 1
            bucket = self.buckets.get(key)
            if bucket is None:
                self.buckets[key] = [id_]
            else:
                bucket.append(id_)
                if len(bucket) > 2 * BUCKET_TAIL:
                    del bucket[:-BUCKET_TAIL]

    def place(self, id_: int, day: dt.date, values: np.ndarray, keys: list[int]) -> int:
        """The story of a new article (its own id if it matches none), and index it."""
        found = id_
        if keys:
            ordinal = day.toordinal()
            seen: set[int] = set()
            for key in keys:
                bucket = self.buckets.get(key)
                if bucket:
                    seen.update(bucket[-BUCKET_TAIL:])
            self.candidates += len(seen)
            near = sorted(
                (self.story[other], -other)
                for other in seen
                if abs(self.day[other] - ordinal) <= self.window_days
            )
            for story, other in near[:MAX_CHECKS]:
                self.compared += 1
                if hashed_jaccard(values, self._values(-other)) >= self.threshold:
                    found = story
                    break
            self.sets[id_] = values
            self.rows[id_] = [
                (band, key)
                for band, key in enumerate(keys)
                if self.filled.get((key, ordinal), 0) < BUCKET_TAIL
            ]
        else:
            self.rows[id_] = []
        self.know(id_, day, found, keys)
        return found

    def _values(self, id_: int) -> np.ndarray:
        values = self.sets.get(id_)
        if values is None:
            values = self.sets[id_] = shingle_hashes(self.texts.pop(id_), cache=self.words)
        return values


def _shingled(texts: Iterable[str], words: dict[str, int]) -> list[np.ndarray]:
    return [shingle_hashes(text, cache=words) for text in texts]


def _keys_of(signer: _Signer, sets: Sequence[np.ndarray]) -> list[list[int] | None]:
    """Band keys (as Python ints) of each set, None for a set too small to compare."""
    long = [i for i, values in enumerate(sets) if len(values) >= MIN_SHINGLES]
    keys = signer.keys([sets[i] for i in long]).tolist()
    out: list[list[int] | None] = [None] * len(sets)
    for i, row in zip(long, keys, strict=True):
        out[i] = row
    return out


def group_stories(
    docs: Sequence[StoryDoc],
    *,
    threshold: float = NEAR_DUP_JACCARD,
    window_days: int = STORY_WINDOW_DAYS,
    stats: dict[str, int] | None = None,
) -> dict[int, int]:
    """Story ids for the docs without one, in id order.

    A doc joins the oldest story among its near-duplicates in the window (already grouped
    docs and unassigned docs with smaller ids) that the bounded candidate search finds
    (module docstring), else it starts its own story (its own id). Existing story ids are
    never changed. ``stats``, if given, receives ``candidates`` and ``compared`` counts.
    """
    grouper = _Grouper(threshold, window_days)
    ordered = sorted(docs, key=lambda d: d.id)
    sets = _shingled((doc.text for doc in ordered), grouper.words)
    keys = _keys_of(_Signer(), sets)
    for doc, values, doc_keys in zip(ordered, sets, keys, strict=True):
        if doc.story_id is not None:
            grouper.sets[doc.id] = values
            grouper.know(doc.id, doc.day, doc.story_id, doc_keys or ())
    assigned = {
        doc.id: grouper.place(doc.id, doc.day, values, doc_keys or [])
        for doc, values, doc_keys in zip(ordered, sets, keys, strict=True)
        if doc.story_id is None
    }
    if stats is not None:
        stats["candidates"] = grouper.candidates
        stats["compared"] = grouper.compared
    return assigned


LOOKUP_CHUNK = 500  # band keys per lookup statement


def assign_story_ids(session: Session, *, window_days: int = STORY_WINDOW_DAYS) -> dict[str, int]:
    """Give every article without a story id one, comparing with recent stored articles.

    Works on all articles whose ``story_id`` is NULL, so an interrupted run is completed by
    the next one; their band keys are written with their story ids, in the same transaction.
    Only the new articles are shingled and MinHashed, plus, once, grouped articles in the
    window that have no band keys yet (stored before the ``story_bands`` table, or by the
    seed loader). Returns ``stories_new`` (articles that started a story),
    ``stories_joined`` (articles grouped under an existing one), ``stories_keyed`` (articles
    whose band keys were computed) and ``stories_compared`` (exact Jaccard comparisons).
    """
    counts = {"stories_new": 0, "stories_joined": 0, "stories_keyed": 0, "stories_compared": 0}
    pending = session.execute(
        select(Article.id, Article.day, Article.text)
        .where(Article.story_id.is_(None))
        .order_by(Article.id)
    ).all()
    if not pending:
        return counts
    window = dt.timedelta(days=window_days)
    low = min(row.day for row in pending) - window
    high = max(row.day for row in pending) + window
    grouper = _Grouper(NEAR_DUP_JACCARD, window_days)
    signer = _Signer()

    # Grouped articles in the window that were never keyed: key them once.
    unkeyed = session.execute(
        select(Article.id, Article.day, Article.text)
        .where(
            Article.story_id.is_not(None),
            Article.day.between(low, high),
            ~exists().where(
                StoryBand.band == MARKER_BAND,
                StoryBand.key == 0,
                StoryBand.article_id == Article.id,
            ),
        )
        .order_by(Article.id)
    ).all()
    if unkeyed:
        sets = _shingled((row.text for row in unkeyed), grouper.words)
        _write_bands(
            session,
            [
                (row.id, row.day, list(enumerate(row_keys or ())))
                for row, row_keys in zip(unkeyed, _keys_of(signer, sets), strict=True)
            ],
        )
        grouper.sets.update((row.id, values) for row, values in zip(unkeyed, sets, strict=True))

    sets = _shingled((row.text for row in pending), grouper.words)
    keys = _keys_of(signer, sets)
    _know_stored(session, grouper, keys, low, high, {row.id for row in pending})
    assigned = {
        row.id: grouper.place(row.id, row.day, values, row_keys or [])
        for row, values, row_keys in zip(pending, sets, keys, strict=True)
    }
    session.execute(
        update(Article), [{"id": id_, "story_id": story} for id_, story in assigned.items()]
    )
    _write_bands(session, [(row.id, row.day, grouper.rows[row.id]) for row in pending])
    new = sum(1 for id_, story in assigned.items() if id_ == story)
    counts.update(
        stories_new=new,
        stories_joined=len(assigned) - new,
        stories_keyed=len(pending) + len(unkeyed),
        stories_compared=grouper.compared,
    )
    return counts


def _know_stored(
    session: Session,
    grouper: _Grouper,
    keys: Sequence[list[int] | None],
    low: dt.date,
    high: dt.date,
    pending: set[int],
) -> None:
    """Index the stored articles sharing a band key with the new ones: per bucket the newest
    :data:`BUCKET_TAIL` between ``low`` and ``high``."""
    wanted = np.asarray([row for row in keys if row is not None], dtype=np.int64)
    if not wanted.size:
        return
    members: dict[int, list[tuple[int, dt.date]]] = {}
    for band in range(BANDS):
        distinct = np.unique(wanted[:, band]).tolist()
        for start in range(0, len(distinct), LOOKUP_CHUNK):
            chunk = distinct[start : start + LOOKUP_CHUNK]
            ranked = (
                select(
                    StoryBand.key,
                    StoryBand.article_id,
                    StoryBand.day,
                    func.row_number()
                    .over(partition_by=StoryBand.key, order_by=StoryBand.article_id.desc())
                    .label("rank"),
                )
                .where(
                    StoryBand.band == band,
                    StoryBand.key.in_(chunk),
                    StoryBand.day.between(low, high),
                )
                .subquery()
            )
            tails = session.execute(
                select(ranked.c.key, ranked.c.article_id, ranked.c.day).where(
                    ranked.c.rank <= BUCKET_TAIL
                )
            )
            for key, article_id, day in tails:
                if article_id not in pending:
                    members.setdefault(key, []).append((article_id, day))
    ids = sorted({article_id for rows in members.values() for article_id, _ in rows})
    stories: dict[int, int] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        for id_, story, text in session.execute(
            select(Article.id, Article.story_id, Article.text).where(Article.id.in_(chunk))
        ):
            if story is None:  # keyed, then its story id was cleared: it is pending again
                continue
            stories[id_] = story
            if id_ not in grouper.sets:
                grouper.texts[id_] = text
    by_article: dict[int, list[int]] = {}
    days: dict[int, dt.date] = {}
    for key, rows in members.items():
        for article_id, day in rows:
            if article_id in stories:
                by_article.setdefault(article_id, []).append(key)
                days[article_id] = day
    for article_id in sorted(by_article):  # id order: the newest end each bucket
        grouper.know(article_id, days[article_id], stories[article_id], by_article[article_id])


def _write_bands(
    session: Session, articles: Sequence[tuple[int, dt.date, Sequence[tuple[int, int]]]]
) -> None:
    """Store ``(article id, day, [(band, key), ...])``: those rows and the article's marker."""
    from pipeline.store import insert_columns

    band, key, article, day = [], [], [], []
    for id_, article_day, pairs in articles:
        band.append(MARKER_BAND)
        key.append(0)
        for pair in pairs:
            band.append(pair[0])
            key.append(pair[1])
        article.extend([id_] * (len(pairs) + 1))
        day.extend([article_day] * (len(pairs) + 1))
    if band:
        order = np.lexsort((article, key, band))  # in index order: B-tree pages stay hot
        insert_columns(
            session,
            StoryBand,
            {
                "band": np.asarray(band)[order],
                "key": np.asarray(key, dtype=np.int64)[order],
                "article_id": np.asarray(article)[order],
                "day": [day[i] for i in order],
            },
        )
