"""Sentence-splitter throughput: ours vs pysbd vs syntok on the same texts.

Run ``.venv/bin/python bench/bench_split.py`` from the repository root; it reads the seed
article and every feed in ``../shared/corpora/feeds/real`` (titles and summaries, the latter
through ``html_to_text``) and prints a table. ``run(texts)`` is the reusable part.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from pipeline.text import html_to_text, split_sentences  # noqa: E402

Splitter = Callable[[str], int]  # text -> number of sentences


def _ours() -> Splitter:
    return lambda text: len(split_sentences(text))


def _pysbd() -> Splitter:
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False)
    return lambda text: len(segmenter.segment(text))


def _syntok() -> Splitter:
    from syntok import segmenter

    return lambda text: sum(1 for paragraph in segmenter.analyze(text) for _ in paragraph)


SPLITTERS: dict[str, Callable[[], Splitter]] = {"ours": _ours, "pysbd": _pysbd, "syntok": _syntok}


def _time(split: Splitter, texts: list[str], min_seconds: float) -> tuple[float, int, int]:
    """Seconds per pass over ``texts`` (passes repeat until ``min_seconds``), sentences, passes."""
    passes = sentences = 0
    started = time.perf_counter()
    while True:
        sentences = sum(split(text) for text in texts)
        passes += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return elapsed / passes, sentences, passes


def run(texts: list[str], min_seconds: float = 1.0) -> dict[str, dict[str, float]]:
    """Throughput of each splitter on ``texts``.

    Returns ``{name: {"sentences_per_s", "chars_per_s", "seconds", "sentences", "passes"}}``;
    ``sentences`` is the splitter's own count, so rates reflect its own segmentation.
    """
    texts = [text for text in texts if text.strip()]
    chars = sum(len(text) for text in texts)
    results: dict[str, dict[str, float]] = {}
    for name, make in SPLITTERS.items():
        split = make()
        split(texts[0] if texts else "warm up.")  # imports, caches, lazy regexes
        seconds, sentences, passes = _time(split, texts, min_seconds)
        results[name] = {
            "sentences_per_s": sentences / seconds if seconds else 0.0,
            "chars_per_s": chars / seconds if seconds else 0.0,
            "seconds": seconds,
            "sentences": sentences,
            "passes": passes,
        }
    return results


def corpus_texts() -> list[str]:
    """The seed article plus every real feed's entry titles and summaries (as text)."""
    import feedparser

    texts = [p.read_text(encoding="utf-8") for p in sorted((SHARED / "seeds").glob("*.txt"))]
    for path in sorted((SHARED / "corpora" / "feeds" / "real").glob("*.xml")):
        for entry in feedparser.parse(str(path)).entries:
            texts.append(entry.get("title", ""))
            texts.append(html_to_text(entry.get("summary", "")))
    return [text for text in texts if text.strip()]


def main() -> None:
    texts = corpus_texts()
    results = run(texts)
    chars = sum(len(text) for text in texts)
    print(f"{len(texts)} texts, {chars:,} chars")
    header = ("splitter", "sentences", "sent/s", "chars/s", "ms/pass", "ours is")
    print("{:<8} {:>9} {:>10} {:>12} {:>9} {:>8}".format(*header))
    ours = results["ours"]["sentences_per_s"]
    for name, r in results.items():
        print(
            f"{name:<8} {int(r['sentences']):>9} {r['sentences_per_s']:>10,.0f} "
            f"{r['chars_per_s']:>12,.0f} {r['seconds'] * 1000:>9.1f} "
            f"{ours / r['sentences_per_s'] if r['sentences_per_s'] else 0:>7.1f}x"
        )


if __name__ == "__main__":
    main()
