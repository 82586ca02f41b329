"""Ingestion overhead over bare ``feedparser.parse`` on the same bytes.

``bench_ingest(paths)`` times, on each feed file, (a) ``feedparser.parse(body)``
with its defaults and (b) everything ingestion does to a fetched body before
the database: our entity guard, feedparser, normalizing every entry, language
detection and the content hash. The target is ``ratio <= 1.2``. Run it with
``python -m bench.bench_ingest [FILES...]`` (default: ../shared/corpora/feeds/real).
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import feedparser

from pipeline.dedup import content_hash
from pipeline.feeds import detect_language, read_feed

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "feeds" / "real"


def _time(run: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def ingest_bodies(bodies: Sequence[tuple[str, bytes]], fetched_at: dt.datetime) -> int:
    """The CPU part of ingesting ``bodies``; returns the number of entries kept."""
    kept = 0
    for name, body in bodies:
        _, entries, _ = read_feed(
            body,
            url=f"http://127.0.0.1/{name}",
            headers={},
            name=name,
            language=None,
            fetched_at=fetched_at,
        )
        for entry in entries:
            text = entry.text
            detect_language(text, entry.language_hint)
            content_hash(text)
        kept += len(entries)
    return kept


def bench_ingest(paths: Sequence[Path], *, repeat: int = 7) -> dict[str, float]:
    """Best-of-``repeat`` seconds for feedparser alone and for our ingestion, and their ratio."""
    bodies = [(Path(path).name, Path(path).read_bytes()) for path in paths]
    fetched_at = dt.datetime.now(dt.UTC)
    entries = ingest_bodies(bodies, fetched_at)  # warm up: language model, lxml, caches
    baseline = ours = float("inf")
    for _ in range(repeat):  # interleaved, so a busy machine slows both alike
        baseline = min(baseline, _time(lambda: [feedparser.parse(body) for _, body in bodies]))
        ours = min(ours, _time(lambda: ingest_bodies(bodies, fetched_at)))
    return {
        "files": len(bodies),
        "bytes": sum(len(body) for _, body in bodies),
        "entries": entries,
        "feedparser_s": round(baseline, 4),
        "ingest_s": round(ours, 4),
        "ratio": round(ours / baseline, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    paths = [Path(arg) for arg in args] or sorted(DEFAULT_CORPUS.glob("*.xml"))
    if not paths:
        print(f"no feed files given and none found in {DEFAULT_CORPUS}", file=sys.stderr)
        return 2
    for key, value in bench_ingest(paths).items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
