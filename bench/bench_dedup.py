"""Near-duplicate story grouping on the syndicated variant of the corpus.

:func:`pipeline.dedup.group_stories` (MinHash LSH candidates, exact bigram Jaccard) runs
over the articles in memory, in arrival order, as ingestion feeds it. Besides throughput
it reports how well it recovers the generator's stories: ``accuracy`` is the share of
articles placed in the same story as the generator's first copy of that story.
"""

from __future__ import annotations

import time

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
