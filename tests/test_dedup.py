"""Duplicates: content hashes, and near-duplicate copies grouped under one story id."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import event, func, select, update

from pipeline.dedup import (
    BANDS,
    BUCKET_TAIL,
    MARKER_BAND,
    MAX_CHECKS,
    StoryDoc,
    assign_story_ids,
    content_hash,
    group_stories,
    hashed_jaccard,
    jaccard,
    normalize_for_hash,
    shingle_hashes,
    shingles,
)
from pipeline.store import insert_ignore, session_scope
from pipeline.tables import Article, Feed, StoryBand

DAY = dt.date(2024, 8, 10)

WIRE = (
    "Belarus moves troops to Ukrainian border after drone incident\n\n"
    "Belarus has deployed additional troops and air defence units to its border with Ukraine, "
    "the defence ministry in Minsk said on Saturday, a day after it accused Kyiv of violating "
    "its airspace with drones. Ukraine's border guard service said it had seen no unusual "
    "movement but was monitoring the situation closely. The deployment includes special "
    "operations forces and Iskander missile elements, according to the ministry's statement, "
    "which did not give numbers. Analysts said the move was intended as a signal to Kyiv and "
    "its Western backers rather than preparation for an attack."
)
OTHER = [
    "Poland signs deal for new air defence systems\n\nPoland's defence minister signed a "
    "contract worth several billion dollars for Patriot batteries on Friday, part of a "
    "rapid expansion of the armed forces since Russia's full-scale invasion of Ukraine.",
    "Moscow court jails journalist for seven years\n\nA Moscow court sentenced a journalist "
    "to seven years in a penal colony for articles criticising the war, his lawyer said, "
    "in the latest case under laws against discrediting the army.",
    "Ukraine and Russia swap prisoners of war\n\nUkraine and Russia exchanged dozens of "
    "prisoners of war in a deal mediated by the United Arab Emirates, officials in both "
    "countries said on Wednesday, the first swap in several weeks.",
]


def syndicated_copies(n: int = 20) -> list[str]:
    """``n`` copies of WIRE as outlets publish them: new headlines, bylines, small edits."""
    title, body = WIRE.split("\n\n")
    edits = [
        lambda t, b: (t, b),
        lambda t, b: (f"UPDATE 1-{t}", b),
        lambda t, b: (t + " - Reuters", "MINSK (Reuters) - " + b),
        lambda t, b: (t, b + " Reporting by Andrei Makhovsky; Editing by Mark Heinrich."),
        lambda t, b: (t.replace("moves", "sends"), b),
        lambda t, b: (t, b.rsplit(". ", 1)[0] + "."),  # last sentence cut
        lambda t, b: (t.upper(), b),
        lambda t, b: (t, b.replace("Saturday", "Sunday")),
        lambda t, b: (t, b.replace("Analysts", "Experts")),
        lambda t, b: ("Belarus deploys troops near Ukraine border", b),
    ]
    out = []
    for i in range(n):
        t, b = edits[i % len(edits)](title, body)
        if i >= len(edits):
            b = b.replace("closely", "very closely") + f" ({i})"
        out.append(f"{t}\n\n{b}")
    return out


def test_content_hash_ignores_case_punctuation_and_spacing() -> None:
    assert normalize_for_hash("  Hello,   WORLD!\n") == "hello world"
    assert content_hash("Hello, world") == content_hash("hello   world!!")
    assert content_hash("Hello, world") != content_hash("Hello, word")


def test_shingles_and_jaccard() -> None:
    assert shingles("The cat sat. The cat!") == {"the cat", "cat sat", "sat the"}
    assert jaccard(frozenset({"a"}), frozenset()) == 0.0
    assert jaccard(shingles("a b c d"), shingles("a b c e")) == 0.5


def test_shingle_hashes_agree_with_string_shingles() -> None:
    texts = [*syndicated_copies(6), *OTHER, "a b c d", "a b c e", "one", "", "x y x y x y"]
    cache: dict[str, int] = {}
    hashed = [shingle_hashes(text, cache=cache) for text in texts]
    for text, values in zip(texts, hashed, strict=True):
        assert values.dtype == np.uint64 and list(values) == sorted(set(values.tolist()))
        assert len(values) == len(shingles(text))
        assert np.array_equal(values, shingle_hashes(text))  # the word cache changes nothing
    for i, a in enumerate(texts):
        for j, b in enumerate(texts):
            assert hashed_jaccard(hashed[i], hashed[j]) == jaccard(shingles(a), shingles(b))


def test_twenty_syndicated_copies_make_one_story() -> None:
    copies = syndicated_copies(20)
    docs = [StoryDoc(id=10 + i, day=DAY, text=text) for i, text in enumerate(copies)]
    docs += [StoryDoc(id=100 + i, day=DAY, text=text) for i, text in enumerate(OTHER)]
    stories = group_stories(docs)
    assert {stories[10 + i] for i in range(20)} == {10}  # the first article's id
    assert [stories[100 + i] for i in range(len(OTHER))] == [100, 101, 102]


def test_existing_story_ids_are_kept_and_joined() -> None:
    copies = syndicated_copies(3)
    docs = [
        StoryDoc(id=5, day=DAY, text=copies[0], story_id=3),  # grouped by an earlier run
        StoryDoc(id=9, day=DAY + dt.timedelta(days=2), text=copies[1]),
        StoryDoc(id=11, day=DAY + dt.timedelta(days=8), text=copies[2]),  # 8 days after id 5
        StoryDoc(id=12, day=DAY, text=OTHER[0], story_id=12),
    ]
    assert group_stories(docs) == {9: 3, 11: 3}  # 11 is within 7 days of 9, which joined 3
    far = [docs[0], StoryDoc(id=11, day=DAY + dt.timedelta(days=8), text=copies[2])]
    assert group_stories(far) == {11: 11}


def test_short_texts_only_group_when_identical() -> None:
    docs = [StoryDoc(1, DAY, "Live updates"), StoryDoc(2, DAY, "Live updates: day 3")]
    assert group_stories(docs) == {1: 1, 2: 2}


def _articles(feed_id: int, texts: list[str], day: dt.date, tag: str) -> list[dict]:
    return [
        {
            "feed_id": feed_id,
            "guid": f"{tag}-{i}",
            "url": f"https://e.test/{tag}/{i}",
            "title": text.split("\n")[0],
            "text": text,
            "content_hash": content_hash(text),
            "published_at": dt.datetime.combine(day, dt.time(12), dt.UTC),
            "day": day,
        }
        for i, text in enumerate(texts)
    ]


def test_assign_story_ids_spans_feeds_and_runs(engine) -> None:
    copies = syndicated_copies(20)
    with session_scope(engine) as session:
        insert_ignore(
            session,
            Feed,
            [{"name": f"f{i}", "url": f"https://e.test/{i}", "tags": []} for i in range(4)],
        )
        feeds = session.execute(select(Feed.id).order_by(Feed.id)).scalars().all()
        for n, feed_id in enumerate(feeds):  # 5 copies per feed, plus one distinct story each
            texts = [*copies[5 * n : 5 * n + 5], OTHER[n % 3] + f" ({n})"]
            insert_ignore(session, Article, _articles(feed_id, texts, DAY, f"a{n}"))
        counts = assign_story_ids(session)
    with session_scope(engine) as session:
        rows = session.execute(select(Article.id, Article.guid, Article.story_id)).all()
    copy_rows = [row for row in rows if not row.guid.endswith("-5")]
    first = min(row.id for row in copy_rows)
    assert {row.story_id for row in copy_rows} == {first}
    assert counts["stories_joined"] == 19
    # A later run: one more copy two days later joins the story; nothing else changes.
    with session_scope(engine) as session:
        insert_ignore(
            session,
            Article,
            _articles(feeds[0], [copies[7] + " Updated."], DAY + dt.timedelta(days=2), "late"),
        )
        assert _grouping(assign_story_ids(session)) == {"stories_new": 0, "stories_joined": 1}
        late = session.execute(select(Article.story_id).where(Article.guid == "late-0")).scalar()
        assert late == first
    with session_scope(engine) as session, _statements(engine) as statements:
        assert assign_story_ids(session) == {
            "stories_new": 0,
            "stories_joined": 0,
            "stories_keyed": 0,
            "stories_compared": 0,
        }
    assert len(statements) == 1  # the rerun only asks for articles without a story


def _grouping(counts: dict[str, int]) -> dict[str, int]:
    return {key: counts[key] for key in ("stories_new", "stories_joined")}


class _statements:
    """The SQL statements ``engine`` runs inside the block."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def _record(self, _conn, _cursor, statement, *_args) -> None:
        self.seen.append(statement)

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self.seen

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def flood(n: int, start: int = 0) -> list[str]:
    """``n`` near-identical entries of one ticker feed: WIRE with three words changed by a
    fixed rule and a running number (pairwise bigram Jaccard ~0.7-0.9)."""
    title, body = WIRE.split("\n\n")
    words = body.split()
    fill = ("eastern", "local", "several", "military", "new", "two", "early", "late")
    out = []
    for i in range(start, start + n):
        edited = list(words)
        for j in range(3):
            edited[(i * 7 + j * 31) % len(edited)] = fill[(i + j) % len(fill)]
        out.append(f"{title} ({i})\n\n" + " ".join(edited) + f" Update {i}.")
    return out


def _feed_id(session) -> int:
    [feed_id] = insert_ignore(
        session, Feed, [{"name": "ticker", "url": "https://e.test/t", "tags": []}]
    )
    return feed_id


def test_a_flood_of_twenty_thousand_copies_is_one_story_in_linear_work(engine) -> None:
    n = 20_000
    with session_scope(engine) as session:
        feed_id = _feed_id(session)
        insert_ignore(session, Article, _articles(feed_id, flood(n), DAY, "t"), returning=None)
    with session_scope(engine) as session:
        counts = assign_story_ids(session)
    assert counts["stories_new"] == 1 and counts["stories_joined"] == n - 1
    assert counts["stories_keyed"] == n
    # each copy is compared with a copy of the story just before it: about one comparison
    # each, never more than MAX_CHECKS (the old code compared every pair: ~n**2 / 2)
    assert counts["stories_compared"] <= 2 * n
    with session_scope(engine) as session:
        stories = session.execute(select(func.count(func.distinct(Article.story_id)))).scalar()
        first = session.execute(select(func.min(Article.id))).scalar()
        story = session.execute(select(func.max(Article.story_id))).scalar()
        markers = session.execute(
            select(func.count()).where(StoryBand.band == MARKER_BAND)
        ).scalar()
        bands = session.execute(select(func.count()).where(StoryBand.band >= 0)).scalar()
        widest = session.execute(
            select(func.count())
            .group_by(StoryBand.band, StoryBand.key)
            .where(StoryBand.band >= 0)
            .order_by(func.count().desc())
            .limit(1)
        ).scalar()
    assert stories == 1 and story == first  # the story id is the first copy's id
    assert markers == n
    assert widest <= BUCKET_TAIL  # a bucket keeps a few rows a day, not one per copy
    assert bands < n * BANDS // 4  # copies share most buckets: far below a row per band
    # The next day: 200 more copies join the same story, again about one comparison each.
    with session_scope(engine) as session:
        insert_ignore(
            session,
            Article,
            _articles(feed_id, flood(200, start=n), DAY + dt.timedelta(days=1), "next"),
        )
        counts = assign_story_ids(session)
    assert _grouping(counts) == {"stories_new": 0, "stories_joined": 200}
    assert counts["stories_keyed"] == 200 and counts["stories_compared"] <= 2 * 200
    with session_scope(engine) as session:
        assert set(session.execute(select(Article.story_id)).scalars()) == {first}


def test_similar_texts_below_the_threshold_cost_at_most_max_checks_each() -> None:
    """Texts that share many LSH buckets but are not copies: every candidate fails, and the
    comparisons per article stay bounded by MAX_CHECKS."""
    rng = np.random.default_rng(7)
    common = WIRE.split()
    docs = []
    for i in range(600):
        # 40% of the words kept in order, the rest made up: Jaccard with others ~0.1-0.3
        words = [w if rng.random() < 0.4 else f"w{i}x{k}" for k, w in enumerate(common)]
        docs.append(StoryDoc(i + 1, DAY, " ".join(words)))
    stats: dict[str, int] = {}
    stories = group_stories(docs, stats=stats)
    assert stats["compared"] <= MAX_CHECKS * len(docs)
    assert len(set(stories.values())) >= 0.9 * len(docs)  # not copies: (almost) all apart


def test_articles_grouped_before_the_migration_are_keyed_once(engine) -> None:
    """Rows grouped without band keys (stored before story_bands existed, or by the seed
    loader) are keyed by the first run that needs them, and only once."""
    copies = syndicated_copies(6)
    with session_scope(engine) as session:
        feed_id = _feed_id(session)
        old = insert_ignore(session, Article, _articles(feed_id, [copies[0], OTHER[0]], DAY, "old"))
        session.execute(update(Article).where(Article.id.in_(old)).values(story_id=Article.id))
        insert_ignore(session, Article, _articles(feed_id, copies[1:3], DAY, "new"))
        counts = assign_story_ids(session)
    assert _grouping(counts) == {"stories_new": 0, "stories_joined": 2}
    assert counts["stories_keyed"] == 4  # the two new and, lazily, the two old
    with session_scope(engine) as session:
        keyed = set(
            session.execute(
                select(StoryBand.article_id).where(StoryBand.band == MARKER_BAND)
            ).scalars()
        )
        insert_ignore(session, Article, _articles(feed_id, copies[3:], DAY, "later"))
        counts = assign_story_ids(session)
        stories = set(
            session.execute(select(Article.story_id).where(Article.guid.like("later-%"))).scalars()
        )
    assert keyed == set(old) | {old[1] + 1, old[1] + 2}
    assert counts["stories_keyed"] == 3 and counts["stories_joined"] == 3
    assert stories == {min(old)}


@pytest.mark.parametrize("window_days", [1, 7])
def test_store_and_memory_group_alike(engine, window_days: int) -> None:
    """assign_story_ids over three daily runs finds the stories group_stories finds at once."""
    copies = syndicated_copies(20)
    days = [DAY, DAY + dt.timedelta(days=2), DAY + dt.timedelta(days=4)]
    with session_scope(engine) as session:
        feed_id = _feed_id(session)
    for n, day in enumerate(days):
        texts = [*copies[7 * n : 7 * n + 7], OTHER[n]]
        with session_scope(engine) as session:
            insert_ignore(session, Article, _articles(feed_id, texts, day, f"d{n}"))
            assign_story_ids(session, window_days=window_days)
    with session_scope(engine) as session:
        rows = session.execute(
            select(Article.id, Article.day, Article.text, Article.story_id).order_by(Article.id)
        ).all()
    expected = group_stories([StoryDoc(r.id, r.day, r.text) for r in rows], window_days=window_days)
    assert {r.id: r.story_id for r in rows} == expected


RU_REPORT = (
    "Российские войска ночью нанесли ракетный удар по Харькову, сообщил глава областной "
    "администрации. По его словам, повреждены жилые дома и объект энергетики, есть раненые. "
    "Воздушная тревога в области длилась более трёх часов, спасатели работают на месте."
)
UK_REPORT = (
    "Президент підписав закон про державний бюджет на наступний рік після тривалого "
    "обговорення у парламенті. Документ передбачає збільшення видатків на оборону та "
    "соціальні виплати, повідомили в Офісі президента."
)


def test_copies_in_russian_group_and_another_story_does_not() -> None:
    copy = RU_REPORT.replace("сообщил глава", "заявил глава").replace("ночью", "этой ночью")
    docs = [
        StoryDoc(id=1, day=DAY, text=RU_REPORT),
        StoryDoc(id=2, day=DAY, text=copy),
        StoryDoc(id=3, day=DAY, text=UK_REPORT),
    ]
    stories = group_stories(docs)
    assert stories[2] == stories[1] == 1
    assert stories[3] == 3
