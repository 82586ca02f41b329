"""Worker processes for the sentence stages: how many, where none can run, and that a
forked worker runs work that closes over state loaded before the fork."""

from __future__ import annotations

import multiprocessing
import os
import select
import signal

from pipeline.parallel import (
    MAX_AUTO_WORKERS,
    forked_pool,
    submit_work,
    usable_cpus,
    worker_count,
)


def test_worker_count_takes_a_positive_setting_and_caps_the_automatic_one() -> None:
    assert worker_count(3) == 3
    assert worker_count(1) == 1
    assert worker_count(0) == max(1, min(usable_cpus(), MAX_AUTO_WORKERS))


def _count_into(queue) -> None:
    queue.put(worker_count(3))


def test_a_daemonic_process_forks_no_workers() -> None:
    """Celery's pool processes are daemonic, and a daemonic process may not have children."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_count_into, args=(queue,), daemon=True)
    child.start()
    try:
        assert queue.get(timeout=60) == 1
    finally:
        child.join(timeout=60)


def test_forked_workers_run_a_closure_over_state_loaded_before_the_fork() -> None:
    squares = {n: n * n for n in range(8)}  # stands in for a loaded model: inherited, not sent

    def work(batch: list[int]) -> tuple[int, list[int]]:
        return os.getpid(), [squares[n] for n in batch]

    with forked_pool(work, 2) as pool:
        assert pool is not None
        futures = [submit_work(pool, [n, n + 1]) for n in range(0, 8, 2)]
        results = [future.result(timeout=60) for future in futures]
    assert [values for _, values in results] == [[0, 1], [4, 9], [16, 25], [36, 49]]
    assert os.getpid() not in {pid for pid, _ in results}


def _pool_then_wait(queue) -> None:
    """A run that forks its workers, says who they are, and waits to be killed."""
    with forked_pool(lambda batch: batch, 2) as pool:
        assert pool is not None
        queue.put([child.pid for child in multiprocessing.active_children()])
        signal.pause()


def test_workers_die_with_a_killed_run() -> None:
    """An idle worker would otherwise outlive a run killed by SIGKILL (or the OOM killer)
    and keep the store's run lock open."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    run = context.Process(target=_pool_then_wait, args=(queue,))
    run.start()
    workers = queue.get(timeout=60)
    assert len(workers) == 2
    handles = [os.pidfd_open(pid) for pid in workers]
    try:
        os.kill(run.pid, signal.SIGKILL)
        run.join(timeout=60)
        for handle in handles:  # a pidfd turns readable when its process has exited
            readable, _, _ = select.select([handle], [], [], 60)
            assert readable, "a worker outlived its run"
    finally:
        for handle in handles:
            os.close(handle)
