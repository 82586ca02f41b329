"""Duplicates: content hashes, and near-duplicate copies grouped under one story id."""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import select

from pipeline.dedup import (
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
from pipeline.tables import Article, Feed

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
        {"feed_id": feed_id, "guid": f"{tag}-{i}", "url": f"https://e.test/{tag}/{i}",
         "title": text.split("\n")[0], "text": text, "content_hash": content_hash(text),
         "published_at": dt.datetime.combine(day, dt.time(12), dt.UTC), "day": day}
        for i, text in enumerate(texts)
    ]


def test_assign_story_ids_spans_feeds_and_runs(engine) -> None:
    copies = syndicated_copies(20)
    with session_scope(engine) as session:
        insert_ignore(session, Feed, [{"name": f"f{i}", "url": f"https://e.test/{i}", "tags": []}
                                      for i in range(4)])
        feeds = session.execute(select(Feed.id).order_by(Feed.id)).scalars().all()
        for n, feed_id in enumerate(feeds):  # 5 copies per feed, plus one distinct story each
            texts = [*copies[5 * n:5 * n + 5], OTHER[n % 3] + f" ({n})"]
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
        insert_ignore(session, Article, _articles(feeds[0], [copies[7] + " Updated."],
                                                  DAY + dt.timedelta(days=2), "late"))
        assert assign_story_ids(session) == {"stories_new": 0, "stories_joined": 1}
        late = session.execute(select(Article.story_id).where(Article.guid == "late-0")).scalar()
        assert late == first
        assert assign_story_ids(session) == {"stories_new": 0, "stories_joined": 0}
