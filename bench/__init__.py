"""Benchmarks of the pipeline against the libraries underneath; ``python -m bench``.

See ``bench/README.md`` for what each figure measures and ``docs/benchmarks.md`` for the
latest results.
"""
