"""Pausing Python's cyclic garbage collector around allocation-heavy work."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector while many containers are created.

    CPython runs a collection every 700 net new containers, and every so often a full one
    that walks the whole heap: the loaded model, the lexicon, whatever else the process
    holds. Compiling the cue lexicon spent more than half its time there, and the sentence
    stages (split, classify, signals), which hold a batch of rows at a time, 7-18% of
    theirs, though none of it was garbage. Reference counting still frees everything
    outside a cycle meanwhile; cycles made while paused (a few per batch, from database
    sessions) wait for the next collection. The collector resumes on exit if it was
    running. Usable as a decorator too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
