"""Worker processes for the computing half of the sentence stages (split, classify).

Splitting, country tagging, language detection and the models' ``predict_proba`` are pure
Python or single-threaded NumPy: in one process they use one core. On Linux the stages
fork a few worker processes once the job is bigger than one batch. Forked workers inherit
what the parent has loaded (the models, the gazetteer, the language detector, the
compiled cue lexicon), so only the batches and their results cross between processes, and
the parent, free of computing, reads and writes the store meanwhile. Results are written
in batch order, so a run with workers stores exactly what a run without them stores.

``ESCMON_WORKERS`` sets the number (0, the default: the CPUs this process may use, at most
:data:`MAX_AUTO_WORKERS`; 1: no worker process). Where no process can be forked (no
``fork`` start method, or a daemonic process, which may not have children) the stages
compute in their own process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 4

# The work function of this worker process: set by the pool's initializer, which a forked
# worker receives as an object (not pickled), so closures over loaded models are fine.
_work: Callable[[Any], Any] | None = None


def can_fork() -> bool:
    """Whether worker processes can be forked here: Linux, and not a daemonic process."""
    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and not multiprocessing.current_process().daemon
    )


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(setting: int = 0) -> int:
    """Processes to compute in: ``setting`` if it is positive, else the usable CPUs (at most
    :data:`MAX_AUTO_WORKERS`); 1 wherever :func:`can_fork` says no."""
    if not can_fork():
        if setting != 1:
            log.info("computing in one process: this one cannot fork workers (ESCMON_WORKERS)")
        return 1
    if setting > 0:
        return setting
    return max(1, min(usable_cpus(), MAX_AUTO_WORKERS))


def _install(work: Callable[[Any], Any], parent: int) -> None:
    """A worker's start: die with the parent, fresh standard streams, the work function."""
    global _work
    _die_with(parent)
    # Each worker has a core of its own: the sentence encoder's OpenMP runtime, loaded here
    # for the first time, starts one thread, not one per CPU (pipeline/encoder.py).
    os.environ["OMP_NUM_THREADS"] = "1"
    # Another thread of the parent (a progress bar's refresher) may have held a stream's
    # lock at the fork; the inherited objects would then block this process's exit flush.
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (the process's own streams)
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    _work = work


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when ``parent`` dies (a worker idle on its queue
    would otherwise outlive a killed run and keep the store's run lock open)."""
    with contextlib.suppress(OSError, AttributeError):  # no prctl: the check below remains
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _run(batch: Any) -> Any:
    assert _work is not None, "worker process started without its work function"
    return _work(batch)


@contextlib.contextmanager
def forked_pool(work: Callable[[Any], Any], workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """``workers`` forked processes that each run ``work`` (submit :func:`submit_work`), or
    None when they cannot start (the caller then computes in its own process).

    Every worker is forked at once, before the pool's own threads start and before the
    caller submits anything; a thread of the caller's own (a progress bar's) may still run,
    which is why a worker reopens its standard streams (:func:`_install`). On exit, work
    not started is cancelled and the workers are joined.
    """
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_install,
        initargs=(work, os.getpid()),
    )
    try:
        pool.submit(int).result()  # fork the workers now (the fork start method forks all)
    except (AssertionError, OSError, BrokenProcessPool) as exc:
        log.warning("could not start %d worker processes (%s); computing in one", workers, exc)
        for child in set(multiprocessing.active_children()) - before:  # forked before it failed
            child.kill()
            child.join()
        pool.shutdown(wait=True, cancel_futures=True)
        yield None
        return
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def submit_work(pool: ProcessPoolExecutor, batch: Any) -> Any:
    """Run the pool's work function on ``batch`` in a worker; a future of its result."""
    return pool.submit(_run, batch)
