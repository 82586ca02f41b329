"""Pausing Python's cyclic garbage collector while large lookup tables are built."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector while many long-lived containers are created.

    CPython runs a collection every 700 new containers, and while a table of tens of
    thousands of them grows, the older generations are scanned again and again although
    nothing in them is garbage: compiling the cue lexicon spent more than half its time
    there. Reference counting still frees everything outside a cycle meanwhile. The
    collector resumes on exit if it was running. Usable as a decorator too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
