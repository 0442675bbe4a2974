"""Pools of worker processes and threads that a Ctrl-C ends at once, and the Ctrl-C itself.

Workers are forked (they inherit the image; nothing is pickled but results) and ignore SIGINT:
a Ctrl-C on the terminal reaches the whole process group, and only the parent decides what it
means. When the block using a pool ends with an exception (an interrupt above all), the
processes are killed and queued work is dropped instead of waited for.

``catch_interrupts`` makes SIGINT raise ``Interrupted`` in the main process, which unwinds the
stack as KeyboardInterrupt does (outputs and scratch space are removed on the way) but is no
KeyboardInterrupt, which click would swallow into an Abort. An exception raised by a signal
handler can land where Python drops it (an at-fork hook while a worker is forked, a
finalizer) or inside a pool's own locks, so a watchdog thread ends the process itself
(``end_interrupted``: workers killed, one line, exit status 130) if the main thread has not
done so within ``GRACE`` seconds.

Imports nothing of slimmer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # imported when a pool is made: `slimmer --help` loads neither
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

__all__ = ["GRACE", "Interrupted", "can_fork", "catch_interrupts", "end_interrupted", "ignore_sigint",
           "process_pool", "thread_pool", "was_interrupted"]

GRACE = 2.0  # seconds the main thread has to unwind after a Ctrl-C


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) in the main process."""


_STATE = {"main_pid": 0, "interrupted": False, "forking": False, "pending": False, "hooks": False, "parent": 0}


def _on_sigint(_signum, _frame) -> None:
    if os.getpid() != _STATE["main_pid"]:
        return  # a worker just forked, before it set SIGINT aside: the parent handles the Ctrl-C
    if not _STATE["interrupted"]:
        _STATE["interrupted"] = True
        threading.Thread(target=_watchdog, args=(threading.main_thread().ident,), daemon=True).start()
    if _STATE["forking"]:
        # inside the at-fork hooks Python drops any exception: the watchdog raises it again
        # once the fork is done
        _STATE["pending"] = True
        return
    _STATE["pending"] = False
    raise Interrupted()


def _watchdog(main_thread: int | None) -> None:
    end = time.monotonic() + GRACE
    while time.monotonic() < end:
        time.sleep(0.01)
        if _STATE["pending"] and not _STATE["forking"] and main_thread is not None:
            signal.pthread_kill(main_thread, signal.SIGINT)
    end_interrupted()


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this forked worker when its parent ends (Linux), however it ends:
    a worker forked in the very moment of a Ctrl-C is not yet among the children the parent
    kills, and would live on holding the parent's standard output."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the request was made
        os._exit(1)


def _fork_hooks() -> None:
    """Mark the forks of workers: at-fork hooks run Python code (logging's), in which an
    interrupt's exception would be dropped; registered just before the first fork, after every
    module's own hooks, so that the marks span them all."""
    if _STATE["hooks"]:
        return
    _STATE["hooks"] = True

    def before() -> None:
        _STATE["forking"] = True
        _STATE["parent"] = os.getpid()

    def after_in_parent() -> None:
        _STATE["forking"] = False

    def after_in_child() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _STATE["forking"] = False
        _die_with_parent(_STATE["parent"])

    os.register_at_fork(before=before, after_in_parent=after_in_parent, after_in_child=after_in_child)


def catch_interrupts():
    """Make SIGINT raise Interrupted in this (main) process; return the handler it replaces.
    An Interrupted that Python drops (printing "Exception ignored in ...") is dropped quietly:
    the watchdog, or ``was_interrupted`` at the end of the run, still ends it as interrupted."""
    _STATE["main_pid"] = os.getpid()
    if not getattr(sys.unraisablehook, "_slimmer", False):
        previous_hook = sys.unraisablehook

        def hook(unraisable) -> None:
            if not isinstance(unraisable.exc_value, Interrupted):
                previous_hook(unraisable)

        hook._slimmer = True
        sys.unraisablehook = hook
    return signal.signal(signal.SIGINT, _on_sigint)


def was_interrupted() -> bool:
    """Return whether a Ctrl-C came, even if its exception was dropped where Python drops
    exceptions (an at-fork hook, a finalizer): the run must then still end as interrupted."""
    return bool(_STATE["interrupted"])


def end_interrupted() -> NoReturn:
    """End an interrupted run: worker processes killed, one line on standard error, exit status
    130, without waiting for threads that are still reading a layer (the thread pools would be
    joined at a normal exit)."""
    if "multiprocessing" in sys.modules:  # else no worker was ever made
        for child in sys.modules["multiprocessing"].active_children():
            child.kill()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        if sys.stderr.isatty():
            sys.stderr.write("\x1b[?25h")  # the cursor back, should a display have hidden it
        sys.stderr.write("slimmer: error: interrupted\n")
        sys.stderr.flush()
    os._exit(130)


def can_fork() -> bool:
    """Return whether worker processes can be forked here (and mark the forks for a Ctrl-C)."""
    import multiprocessing

    forkable = "fork" in multiprocessing.get_all_start_methods()
    if forkable:
        _fork_hooks()
    return forkable


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
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _fork_hooks()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=ignore_sigint)
    try:
        yield pool
    except BaseException:
        _kill(pool)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def thread_pool(workers: int, wait: bool = True) -> Iterator[ThreadPoolExecutor]:
    """Yield a pool of ``workers`` threads whose queued work is dropped, not waited for, when
    the block raises. When it ends, the work still running is waited for, unless ``wait`` is
    false: then it goes on, and its futures say when it is done."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=wait)
