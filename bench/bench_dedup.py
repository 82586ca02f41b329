"""Near-duplicate story grouping on the syndicated variant of the corpus.

:func:`pipeline.dedup.group_stories` (MinHash LSH candidates, exact bigram Jaccard) runs
over the articles in memory, in arrival order, as ingestion feeds it. Besides throughput
it reports how well it recovers the generator's stories: ``accuracy`` is the share of
articles placed in the same story as the generator's first copy of that story.

Run alone (``python -m bench.bench_dedup``), it times :func:`pipeline.dedup.assign_story_ids`
on a fresh store, as ingestion runs it: one feed of near-identical entries in one run, then
a week of the syndicated variant one day at a time, then a rerun. It prints the figures;
nothing asserts a time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from bench.corpus import BenchArticle


def run(articles: list[BenchArticle]) -> dict[str, float]:
    """``articles_per_s``, ``stories`` found, ``true_stories`` and ``accuracy``."""
    from pipeline.dedup import StoryDoc, group_stories

    docs = [StoryDoc(i, a.published_at.date(), a.text) for i, a in enumerate(articles)]
    started = time.perf_counter()
    found = group_stories(docs)
    seconds = time.perf_counter() - started
    first: dict[int, int] = {}
    for i, article in enumerate(articles):
        first.setdefault(article.story, i)
    right = sum(1 for i, a in enumerate(articles) if found.get(i) == first[a.story])
    n = len(articles)
    return {
        "articles": float(n),
        "articles_per_s": n / seconds if seconds else 0.0,
        "stories": float(len(set(found.values()))),
        "true_stories": float(len(first)),
        "accuracy": right / n if n else 1.0,
    }


# --- stored grouping: pipeline.dedup.assign_story_ids on a real store -------------------------

_BASE = (
    "Air defence units were put on alert in the region overnight after officials reported "
    "drones approaching from the north, the regional administration said in a statement. "
    "Residents were told to stay in shelters until the all-clear, and schools will open late. "
    "Power was cut in several districts as a precaution, the grid operator said, adding that "
    "repair crews were standing by. There were no immediate reports of casualties or damage, "
    "and the military said it would give details once the operation was over."
)
_VOCABULARY = (
    "eastern",
    "southern",
    "western",
    "central",
    "local",
    "military",
    "city",
    "emergency",
    "early",
    "late",
    "several",
    "two",
    "three",
    "many",
    "new",
)


def similar_texts(n: int, *, seed: int = 0) -> list[str]:
    """``n`` near-identical entries of one feed (a ticker repeating one alert): the same text
    with three words changed and a running number; all one story."""
    import random

    rng = random.Random(seed)
    words = _BASE.split()
    out = []
    for i in range(n):
        edited = list(words)
        for _ in range(3):
            edited[rng.randrange(len(edited))] = rng.choice(_VOCABULARY)
        out.append(f"Alert update {i}\n\n" + " ".join(edited) + f" (update {i})")
    return out


def _store_days(
    url: str, days: list[list[str]], start: dt.date, report: Callable[[dict], None] = print
) -> list[dict[str, float]]:
    """Store ``days`` (texts per day, one feed) a day at a time, each followed by
    ``assign_story_ids`` as ingestion runs it; its counts and seconds per day (also passed to
    ``report`` as they come), then a rerun."""
    from sqlalchemy import func, select

    from pipeline.dedup import assign_story_ids, content_hash
    from pipeline.store import insert_columns, insert_ignore, make_engine, session_scope, upgrade
    from pipeline.tables import Article, Feed

    upgrade(url)
    engine = make_engine(url)
    out = []
    try:
        with session_scope(engine) as session:
            [feed_id] = insert_ignore(session, Feed, [{"name": "bench", "url": "https://x"}])
        for n, texts in enumerate(days):
            day = start + dt.timedelta(days=n)
            noon = dt.datetime.combine(day, dt.time(12), dt.UTC)
            with session_scope(engine) as session:
                insert_columns(
                    session,
                    Article,
                    {
                        "feed_id": feed_id,
                        "guid": [f"{day}-{i}" for i in range(len(texts))],
                        "url": [f"https://bench.invalid/{day}/{i}" for i in range(len(texts))],
                        "title": "",
                        "text": texts,
                        "content_hash": [content_hash(t) for t in texts],
                        "published_at": noon,
                        "day": day,
                    },
                )
            started = time.perf_counter()
            with session_scope(engine) as session:
                counts = assign_story_ids(session)
            out.append(
                {
                    "day": float(n),
                    "articles": float(len(texts)),
                    "seconds": time.perf_counter() - started,
                    **{k: float(v) for k, v in counts.items()},
                }
            )
            report(out[-1])
        started = time.perf_counter()
        with session_scope(engine) as session:
            counts = assign_story_ids(session)
        out.append(
            {
                "rerun": 1.0,
                "seconds": time.perf_counter() - started,
                **{k: float(v) for k, v in counts.items()},
            }
        )
        with session_scope(engine) as session:
            stories = session.execute(select(func.count(func.distinct(Article.story_id)))).scalar()
        out[-1]["stories_total"] = float(stories or 0)
    finally:
        engine.dispose()
    return out


def _week_texts(per_day: int, days: int) -> list[list[str]]:
    """``days`` days of ``per_day`` bench articles (30% syndicated copies), distinct per day."""
    from bench.corpus import DAY, generate

    out = []
    for n in range(days):
        day = DAY + dt.timedelta(days=n)
        out.append([a.text for a in generate(per_day, syndicated=0.3, seed=n, day=day)])
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse
    import os
    import tempfile
    from pathlib import Path

    from bench.stores import postgres_url, sqlite_url

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--similar",
        type=int,
        nargs="*",
        default=[2000, 4000, 20000],
        help="sizes of the one-feed similar-entries runs",
    )
    parser.add_argument("--per-day", type=int, default=20000, help="week run: articles a day")
    parser.add_argument("--days", type=int, default=7, help="week run: days (0: skip)")
    parser.add_argument("--postgres-url", default=os.environ.get("ESCMON_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="escmon-bench-dedup-"))
    backends = [("sqlite", lambda name: sqlite_url(folder, name))]
    if args.postgres_url:
        backends.append(("postgres", lambda _name: postgres_url(args.postgres_url)))
    start = dt.date(2026, 3, 2)
    for backend, make_url in backends:
        for n in args.similar:
            with make_url(f"similar{n}") as url:
                first, rerun = _store_days(url, [similar_texts(n)], start, lambda _: None)
            print(
                f"{backend}: {n:,} similar entries, one run: {first['seconds']:.2f} s "
                f"({n / first['seconds']:,.0f} articles/s), {rerun['stories_total']:.0f} "
                f"stories, {first['stories_compared']:,.0f} Jaccard comparisons "
                f"({first['stories_compared'] / n:.2f}/article); rerun "
                f"{rerun['seconds'] * 1000:.1f} ms",
                flush=True,
            )
        if args.days:

            def day_line(run: dict, backend: str = backend) -> None:
                print(
                    f"{backend}: week of {args.per_day:,}/day, day {run['day'] + 1:.0f}: "
                    f"{run['seconds']:.2f} s ({run['articles'] / run['seconds']:,.0f} "
                    f"articles/s), {run['stories_joined']:,.0f} joined, "
                    f"{run['stories_compared'] / run['articles']:.2f} comparisons/article",
                    flush=True,
                )

            week = _week_texts(args.per_day, args.days)
            with make_url("week") as url:
                runs = _store_days(url, week, start, day_line)
            print(
                f"{backend}: week rerun {runs[-1]['seconds'] * 1000:.1f} ms, "
                f"{runs[-1]['stories_total']:,.0f} stories",
                flush=True,
            )


if __name__ == "__main__":
    main()
