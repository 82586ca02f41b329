"""Profile one stage of the daily job on the bench corpus with pyinstrument.

``python -m bench.profile split --articles 3000`` stores the articles in a throwaway SQLite
file (or a fresh schema of ``--postgres-url``), runs the stages before ``STAGE`` unprofiled,
then ``STAGE`` under pyinstrument, and prints the call tree. ``--html PATH`` writes the
interactive view instead. This is how the hot spots in ``docs/benchmarks.md`` were found.
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

from bench import corpus
from bench.e2e import E2E_STAGES, bench_settings
from bench.model import fit_model
from bench.stores import load_articles, postgres_url, sqlite_url


def profile_stage(stage: str, url: str, articles: int, work: Path, interval: float):
    """The pyinstrument session of ``stage`` run after the stages before it."""
    from pyinstrument import Profiler

    from pipeline.daily import STAGES, make_context, run_stage

    if stage not in STAGES:
        raise SystemExit(f"unknown stage {stage!r}; stages are: {', '.join(STAGES)}")
    fit_model(work / "models")
    load_articles(url, corpus.generate(articles))
    ctx = make_context(corpus.DAY, bench_settings(url, work / "models", work))
    try:
        for name in STAGES:
            if name == stage:
                break
            if name in E2E_STAGES:
                run_stage(ctx, name)
        profiler = Profiler(interval=interval)
        with profiler:
            result = run_stage(ctx, stage)
    finally:
        ctx.engine.dispose()
    print(f"{stage}: {result.counts} in {result.duration_s:.2f} s")
    return profiler.last_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("stage", help="a stage name from pipeline.daily.STAGES")
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--postgres-url", help="profile on a fresh schema of this server")
    parser.add_argument("--interval", type=float, default=0.001, help="sampling interval (s)")
    parser.add_argument("--html", type=Path, help="write pyinstrument's HTML view here")
    args = parser.parse_args(argv)
    from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer

    with tempfile.TemporaryDirectory(prefix="escmon-profile-") as tmp:
        work = Path(tmp)
        store: AbstractContextManager[str] = (
            postgres_url(args.postgres_url) if args.postgres_url else sqlite_url(work, "profile")
        )
        with store as url:
            session = profile_stage(args.stage, url, args.articles, work, args.interval)
    if args.html:
        args.html.write_text(HTMLRenderer().render(session), encoding="utf-8")
        print(f"wrote {args.html}")
    else:
        print(ConsoleRenderer(unicode=False, color=False, short_mode=True).render(session))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
