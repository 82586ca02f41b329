"""``python -m bench``: every benchmark in one process, a table, and ``latest.json``.

Each figure comes with its raw reference measured in the same run (see ``bench/README.md``).
Ratios are time ours / time reference on the same input: 1.0 is parity, above is overhead.
Benchmarks whose code has not landed yet are left out of the JSON with a printed note.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import bench_classify, bench_dedup, bench_split, bench_store, corpus
from bench.e2e import E2EResult, bench_settings, run_e2e, run_rerun
from bench.machine import machine, peak_rss_mb
from bench.model import fit_model
from bench.stores import load_articles, postgres_url, sqlite_url
from pipeline.parallel import worker_count

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
POSTGRES_ENV = "ESCMON_TEST_POSTGRES_URL"
ONE_PROCESS = "_one_process"  # key suffix of the SQLite run with ESCMON_WORKERS=1
SPLIT_ARTICLES = 500  # pysbd needs ~3 s a pass over these
STORE_ARTICLES = 3000
SYNDICATED = 0.3

REQUIRED_KEYS = (
    "split_sentences_per_s",
    "classify_sentences_per_s",
    "classify_ratio_to_raw",
    "classify_ratio_to_raw_one_process",
    "store_rows_per_s",
    "ingest_ratio_to_feedparser",
    "end_to_end_sentences_per_s",
    "end_to_end_sentences_per_s_one_process",
    "end_to_end_sentences_per_s_postgres",
    "end_to_end_sentences_per_s_mixed",
    "mixed_10k_articles_minutes",
    "classify_ru_sentences_per_s",
    "classify_pl_sentences_per_s",
    "language_detection_sentences_per_s",
    "rerun_seconds",
    "peak_rss_mb",
    "peak_rss_mb_worker",
    "articles",
    "machine",
)

# figure -> (comparison, limit); checked and shown, never asserted.
TARGETS: dict[str, tuple[str, float]] = {
    "end_to_end_sentences_per_s": (">=", 10_000),
    "mixed_10k_articles_minutes": ("<=", 10.0),
    "second_opinion_10k_articles_minutes": ("<=", 10.0),
    "second_opinion_mixed_10k_articles_minutes": ("<=", 10.0),
    # the stage's own overhead, so measured without worker processes (the reference is one)
    "classify_ratio_to_raw_one_process": ("<=", 1.3),
    "ingest_ratio_to_feedparser": ("<=", 1.2),
    "rerun_seconds": ("<=", 2.0),
    "peak_rss_mb": ("<=", 1024),
}


class Bench:
    """Collects figures, notes and the table rows of one run."""

    def __init__(self, log: Callable[[str], None] = print) -> None:
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []
        self.rows: list[tuple[str, str, str, str]] = []  # figure, value, reference, ratio
        self.log = log

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.log(f"note: {message}")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.log(f"-- {name} ...")
        started = time.perf_counter()
        yield
        peak = peak_rss_mb()
        self.results.setdefault("peak_rss_mb_after", {})[name] = peak
        self.log(f"   {name}: {time.perf_counter() - started:.1f} s, peak RSS {peak:,.0f} MiB")

    def row(self, figure: str, value: str, reference: str = "", ratio: str = "") -> None:
        self.rows.append((figure, value, reference, ratio))


def run(
    articles: int = 10_000,
    *,
    output: Path | None = RESULTS,
    postgres: str | None = None,
    min_seconds: float = 1.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every benchmark at ``articles`` articles; write ``output``; return the results."""
    bench = Bench(log)
    bench.results.update(articles=articles, machine=machine())
    with tempfile.TemporaryDirectory(prefix="escmon-bench-") as tmp:
        work = Path(tmp)
        with bench.step("corpus"):
            plain = corpus.generate(articles)
            syndicated = corpus.generate(articles, syndicated=SYNDICATED)
        with bench.step("model"):
            fit_model(work / "models")
        # First, so that the process's peak RSS so far is the daily job's (plus the corpus).
        with bench.step("end to end (SQLite)"), sqlite_url(work, "e2e") as url:
            _e2e(bench, url, plain, work, "")
        bench.results["peak_rss_mb"] = peak_rss_mb()
        bench.results["peak_rss_mb_worker"] = peak_rss_mb(resource.RUSAGE_CHILDREN)
        with bench.step("end to end, one process (SQLite)"), sqlite_url(work, "one") as url:
            _e2e(bench, url, plain, work, ONE_PROCESS, workers=1)
        with bench.step("end to end, mixed languages (SQLite)"), sqlite_url(work, "mixed") as url:
            _mixed(bench, url, articles, work)
        with bench.step("end to end with the second opinion (SQLite)"):
            _second_opinion(bench, articles, work)
        with bench.step("split"):
            _split(bench, plain, min_seconds)
        with bench.step("store (SQLite)"):
            _store(bench, plain, lambda name: sqlite_url(work, name), "")
        with bench.step("ingest"):
            _ingest(bench, min_seconds)
        with bench.step("dedup"):
            _dedup(bench, syndicated)
        if postgres:
            _postgres(bench, postgres, plain, work)
        else:
            bench.note(f"PostgreSQL skipped (set {POSTGRES_ENV} or pass --postgres-url)")
    bench.results["peak_rss_mb_process"] = peak_rss_mb()
    bench.row(
        "peak RSS after the end-to-end run (corpus + model + daily job)",
        f"{bench.results['peak_rss_mb']:,.0f} MiB",
        f"largest stage worker {bench.results['peak_rss_mb_worker']:,.0f} MiB (pages shared "
        f"with the parent counted in both); whole bench process: "
        f"{bench.results['peak_rss_mb_process']:,.0f} MiB",
    )
    bench.results["targets"] = _targets(bench.results)
    bench.results["notes"] = bench.notes
    bench.results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    bench.results["table"] = format_table(bench)
    log(bench.results["table"])
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(bench.results, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {output}")
    return bench.results


# --- the benchmarks -------------------------------------------------------------------


def _split(bench: Bench, articles: list[corpus.BenchArticle], min_seconds: float) -> None:
    texts = [a.text for a in articles[:SPLIT_ARTICLES]]
    found = bench_split.run(texts, min_seconds=min_seconds)
    ours = found["ours"]
    bench.results.update(
        split_sentences_per_s=ours["sentences_per_s"],
        split_chars_per_s=ours["chars_per_s"],
    )
    refs = []
    for name in ("pysbd", "syntok"):
        ref = found[name]
        bench.results[f"split_{name}_sentences_per_s"] = ref["sentences_per_s"]
        bench.results[f"split_ratio_to_{name}"] = ours["seconds"] / ref["seconds"]
        refs.append((name, ref))
    bench.row(
        f"split_sentences (pure, {len(texts)} articles)",
        f"{ours['sentences_per_s']:,.0f} sent/s",
        "; ".join(f"{n} {r['sentences_per_s']:,.0f} sent/s" for n, r in refs),
        "; ".join(f"{ours['seconds'] / r['seconds']:.3f}" for _, r in refs),
    )


def _store(bench: Bench, articles: list[corpus.BenchArticle], fresh, suffix: str) -> None:
    found = bench_store.run(articles[:STORE_ARTICLES], fresh)
    bench.results[f"store_rows_per_s{suffix}"] = found["rows_per_s"]
    bench.results[f"store_raw_rows_per_s{suffix}"] = found["raw_rows_per_s"]
    bench.results[f"store_ratio_to_raw{suffix}"] = found["ratio_to_raw"]
    backend = "PostgreSQL" if suffix else "SQLite"
    bench.row(
        f"store: insert_ignore sentences ({backend}, {found['rows']:,.0f} rows)",
        f"{found['rows_per_s']:,.0f} rows/s",
        f"executemany {found['raw_rows_per_s']:,.0f} rows/s",
        f"{found['ratio_to_raw']:.2f}",
    )


def _ingest(bench: Bench, min_seconds: float) -> None:
    """Parse + normalize (the feeds author's ``bench/bench_ingest.py``) against feedparser."""
    try:
        from bench.bench_ingest import bench_ingest
    except ImportError as exc:
        bench.note(f"ingest left out: {exc}")
        return
    found = bench_ingest(corpus.feed_paths(), repeat=max(1, round(min_seconds * 5)))
    entries = found["entries"]
    ours, reference = found["ingest_s"], found["feedparser_s"]
    bench.results["ingest_entries_per_s"] = entries / ours if ours else 0.0
    bench.results["ingest_feedparser_entries_per_s"] = entries / reference if reference else 0.0
    bench.results["ingest_ratio_to_feedparser"] = ours / reference if reference else 0.0
    bench.row(
        f"feed parse + normalize ({found['files']} real feeds, {entries:,} entries)",
        f"{entries / ours:,.0f} entries/s",
        f"feedparser.parse {entries / reference:,.0f} entries/s",
        f"{ours / reference:.2f}",
    )


def _dedup(bench: Bench, articles: list[corpus.BenchArticle]) -> None:
    found = bench_dedup.run(articles)
    bench.results["dedup_articles_per_s"] = found["articles_per_s"]
    bench.results["dedup_story_accuracy"] = found["accuracy"]
    bench.row(
        f"near-duplicate stories ({SYNDICATED:.0%} syndicated, {len(articles):,} articles)",
        f"{found['articles_per_s']:,.0f} articles/s",
        f"{found['stories']:,.0f} stories found of {found['true_stories']:,.0f}",
        f"accuracy {found['accuracy']:.4f}",
    )


def _e2e(
    bench: Bench,
    url: str,
    articles: list[corpus.BenchArticle],
    work: Path,
    suffix: str,
    workers: int = 0,
) -> E2EResult:
    """The daily job's sentence stages on ``url``, ``workers`` as ``ESCMON_WORKERS``."""
    loaded = load_articles(url, articles)
    bench.results[f"load_articles_per_s{suffix}"] = loaded["articles"] / loaded["seconds"]
    settings = bench_settings(url, work / "models", work, workers)
    processes = bench.results[f"workers{suffix}"] = worker_count(workers)
    result = run_e2e(settings)
    backend = _backend(suffix, processes)
    if result.seconds:
        bench.results[f"end_to_end_sentences_per_s{suffix}"] = result.sentences_per_s
        bench.results[f"end_to_end_sentences{suffix}"] = result.sentences
        bench.results[f"end_to_end_seconds{suffix}"] = result.seconds
        bench.results[f"stage_seconds{suffix}"] = result.stages
        stages = " + ".join(result.stages)
        bench.row(
            f"end to end: {stages} ({backend}, {len(articles):,} articles)",
            f"{result.sentences_per_s:,.0f} sent/s",
            f"{result.sentences:,} sentences in {result.seconds:.1f} s",
        )
        for name, seconds in result.stages.items():
            counts = result.counts.get(name, {})
            done = counts.get("sentences_new", counts.get("sentences_scored", result.sentences))
            rate = done / seconds if seconds else 0.0
            bench.results[f"{name}_stage_sentences_per_s{suffix}"] = rate
            bench.row(
                f"  stage {name} ({backend})",
                f"{rate:,.0f} sent/s",
                f"{done:,} sentences in {seconds:.2f} s",
            )
        if "classify" in result.stages:
            _classify(bench, url, work, result, suffix, backend)
        run_rerun(settings, result)
    for message in result.notes:
        bench.note(f"{backend}: {message}")
    if result.rerun_seconds is not None:
        bench.results[f"rerun_seconds{suffix}"] = result.rerun_seconds
        bench.results[f"rerun_stage_seconds{suffix}"] = result.rerun_stages
        bench.row(
            f"rerun of the finished day, run_daily ({backend})",
            f"{result.rerun_seconds:.2f} s",
            ", ".join(f"{k} {v:.2f}" for k, v in result.rerun_stages.items()),
        )
    return result


def _backend(suffix: str, processes: int) -> str:
    """``SQLite, 2 worker processes``: the store and how the sentence stages computed."""
    store = "PostgreSQL" if suffix == "_postgres" else "SQLite"
    return f"{store}, {processes} worker processes" if processes > 1 else f"{store}, one process"


def _classify(
    bench: Bench, url: str, work: Path, result: E2EResult, suffix: str, backend: str
) -> None:
    """The classify stage against raw ``predict_proba`` on the sentences it scored."""
    texts = bench_classify.scored_texts(url)
    found = bench_classify.run(work / "models", texts)
    stage = result.stages["classify"]
    n = len(texts)
    bench.results[f"classify_sentences_per_s{suffix}"] = n / stage if stage else 0.0
    bench.results[f"classify_ratio_to_raw{suffix}"] = stage / found["raw_seconds"]
    bench.results[f"classify_raw_sentences_per_s{suffix}"] = found["raw_sentences_per_s"]
    bench.row(
        f"classify stage ({backend}, {n:,} sentences)",
        f"{n / stage:,.0f} sent/s",
        f"predict_proba {found['raw_sentences_per_s']:,.0f} sent/s",
        f"{stage / found['raw_seconds']:.2f}",
    )
    if not suffix:
        cues = bench_classify.cue_features(texts)
        bench.results["cue_features_sentences_per_s"] = cues["sentences_per_s"]
        bench.row(
            "  of which the CAMEO cue features (CueFeatures.transform)",
            f"{cues['sentences_per_s']:,.0f} sent/s",
            f"{cues['sentences']:,.0f} sentences",
        )
        bench.results["classify_api_sentences_per_s"] = found["api_sentences_per_s"]
        bench.results["classify_api_ratio_to_raw"] = found["api_ratio_to_raw"]
        bench.row(
            "Classifier.predict (in memory, same sentences)",
            f"{found['api_sentences_per_s']:,.0f} sent/s",
            f"predict_proba {found['raw_sentences_per_s']:,.0f} sent/s",
            f"{found['api_ratio_to_raw']:.2f}",
        )


def _mixed(bench: Bench, url: str, n: int, work: Path) -> None:
    """The daily job on half English, an eighth each Russian, Ukrainian, Belarusian and
    Polish articles; then each language path's own speed on the sentences it scored."""
    models = work / "models-mixed"
    fit_model(models)
    fit_model(models, family="multi")
    articles = corpus.generate_mixed(n)
    load_articles(url, articles)
    result = run_e2e(bench_settings(url, models, work))
    if not result.seconds:
        bench.note("mixed languages: no stage ran")
        return
    bench.results["end_to_end_sentences_per_s_mixed"] = result.sentences_per_s
    bench.results["stage_seconds_mixed"] = result.stages
    minutes = result.seconds * 10_000 / max(n, 1) / 60
    bench.results["mixed_10k_articles_minutes"] = minutes
    bench.row(
        f"end to end, mixed languages (SQLite, {n:,} articles: half English, 1/8 each ru uk be pl)",
        f"{result.sentences_per_s:,.0f} sent/s",
        f"{result.sentences:,} sentences in {result.seconds:.1f} s; "
        f"10k articles ~{minutes:.1f} min",
    )
    for language, figures in bench_classify.language_paths(url, models).items():
        bench.results[f"classify_{language}_sentences_per_s"] = figures["sentences_per_s"]
        bench.row(
            f"  {language} path: predict_proba of its model ({figures['model']})",
            f"{figures['sentences_per_s']:,.0f} sent/s",
            f"{figures['sentences']:,} sentences",
        )
    detect = bench_classify.language_detection(url)
    bench.results["language_detection_sentences_per_s"] = detect["sentences_per_s"]
    bench.row(
        "  language per sentence (pipeline.language.sentence_language)",
        f"{detect['sentences_per_s']:,.0f} sent/s",
        f"{detect['sentences']:,} sentences",
    )


def _second_opinion(bench: Bench, n: int, work: Path) -> None:
    """The daily job with the second opinion on (``ESCMON_SECOND_OPINION``, the default),
    English then mixed languages, at a tenth of the articles: the embedding dominates and
    grows with the sentences, so the ten-thousand-article day is extrapolated from it as
    the mixed figure is. Then each language's share of sentences sent to the encoder and
    the encoder's speed on them. The fast path's figures above ran with it off."""
    from pipeline.classify import load_router

    models = work / "models-mixed"  # the release models (_mixed put them there)
    if not load_router(models).english.second_opinion:
        bench.note("second opinion: models/ holds no release with one for these labels")
        return
    articles = max(n // 10, 1)
    runs = (("", "English", corpus.generate), ("_mixed", "mixed languages", corpus.generate_mixed))
    for suffix, what, generate in runs:
        with sqlite_url(work, f"second-opinion{suffix}") as url:
            load_articles(url, generate(articles))
            result = run_e2e(bench_settings(url, models, work, second_opinion=True))
            if not result.seconds:
                bench.note(f"second opinion ({what}): no stage ran")
                continue
            minutes = result.seconds * 10_000 / articles / 60
            bench.results[f"end_to_end_sentences_per_s_second_opinion{suffix}"] = (
                result.sentences_per_s
            )
            bench.results[f"second_opinion{suffix}_10k_articles_minutes"] = minutes
            bench.row(
                f"end to end with the second opinion, {what} (SQLite, {articles:,} articles)",
                f"{result.sentences_per_s:,.0f} sent/s",
                f"{result.sentences:,} sentences in {result.seconds:.1f} s; "
                f"10k articles ~{minutes:.1f} min",
            )
            if suffix:
                _second_opinion_paths(bench, url, models)


def _second_opinion_paths(bench: Bench, url: str, models: Path) -> None:
    for language, figures in bench_classify.second_opinion_paths(url, models).items():
        bench.results[f"second_opinion_{language}_share"] = figures["share_consulted"]
        bench.results[f"second_opinion_{language}_sentences_per_s"] = figures["sentences_per_s"]
        bench.row(
            f"  {language}: sentences sent to the encoder, and its speed on them",
            f"{figures['share_consulted']:.1%}",
            f"{figures['sentences_per_s']:,.1f} sent/s embedded (one process), "
            f"of {figures['sentences']:,} sentences",
        )


def _postgres(bench: Bench, base: str, articles: list[corpus.BenchArticle], work: Path) -> None:
    try:
        with postgres_url(base) as _probe:
            pass
    except Exception as exc:  # unreachable server, bad credentials
        bench.note(f"PostgreSQL skipped: {str(exc).splitlines()[0]}")
        return

    @contextmanager
    def fresh(_name: str) -> Iterator[str]:
        with postgres_url(base) as url:
            yield url

    with bench.step("store (PostgreSQL)"):
        _store(bench, articles, fresh, "_postgres")
    with bench.step("end to end (PostgreSQL)"), postgres_url(base) as url:
        _e2e(bench, url, articles, work, "_postgres")


# --- output ---------------------------------------------------------------------------


def _targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for key, (op, limit) in TARGETS.items():
        value = results.get(key)
        met = None if value is None else (value >= limit if op == ">=" else value <= limit)
        out[key] = {"target": f"{op} {limit:g}", "value": value, "met": met}
    return out


def format_table(bench: Bench) -> str:
    """The figures as a Markdown table, then targets, notes and the machine."""
    lines = [
        "| figure | value | reference (same run) | time ratio ours/ref |",
        "|---|---|---|---|",
        *[f"| {f} | {v} | {r} | {x} |" for f, v, r, x in bench.rows],
        "",
        "| target | value | met |",
        "|---|---|---|",
    ]
    for key, target in _targets(bench.results).items():
        value = target["value"]
        shown = "not measured" if value is None else f"{value:,.2f}"
        met = {True: "yes", False: "**no**", None: "-"}[target["met"]]
        lines.append(f"| {key} {target['target']} | {shown} | {met} |")
    m = bench.results["machine"]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Python {m['python']}, {m['platform']}; {bench.results['articles']:,} articles.",
    ]
    lines += [f"Note: {note}" for note in bench.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Pipeline benchmarks against their raw references. "
        "Example: python -m bench --articles 2000 --skip-postgres",
    )
    parser.add_argument("--articles", type=int, default=10_000, help="corpus size (10000)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON path ({RESULTS})")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV),
        help=f"server for the PostgreSQL runs (default ${POSTGRES_ENV}); a fresh schema "
        "is created and dropped",
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=1.0,
        help="repeat each micro-benchmark for at least this long (1.0)",
    )
    args = parser.parse_args(argv)
    if args.articles < 1:
        parser.error("--articles must be at least 1")
    run(
        args.articles,
        output=args.output,
        postgres=None if args.skip_postgres else args.postgres_url,
        min_seconds=args.min_seconds,
    )
    return 0
