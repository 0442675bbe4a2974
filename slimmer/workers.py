"""Pools of worker processes and threads that a Ctrl-C ends at once.

Workers are forked (they inherit the image; nothing is pickled but results) and ignore SIGINT:
a Ctrl-C on the terminal reaches the whole process group, and only the parent decides what it
means. When the block using a pool ends with an exception (KeyboardInterrupt above all), the
processes are killed and queued work is dropped instead of waited for, so ``slimmer`` exits
with status 130 at once (the CLI's ``main`` then ends what threads are still reading).

Imports nothing of slimmer.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

__all__ = ["can_fork", "ignore_sigint", "process_pool", "thread_pool"]


def can_fork() -> bool:
    """Return whether worker processes can be forked here."""
    return "fork" in multiprocessing.get_all_start_methods()


def ignore_sigint() -> None:
    """Make this (worker) process ignore SIGINT: its parent handles the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _kill(pool: ProcessPoolExecutor) -> None:
    processes = list(getattr(pool, "_processes", {}).values())  # no public handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.kill()
    for proc in processes:
        proc.join(timeout=5)


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Yield a pool of ``workers`` forked processes that ignore SIGINT; killed, not waited
    for, when the block raises."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=ignore_sigint)
    try:
        yield pool
    except BaseException:
        _kill(pool)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def thread_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """Yield a pool of ``workers`` threads whose queued work is dropped, not waited for, when
    the block raises."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
