"""Where an audit's per-blob scans run: in this process, in local worker processes (``jobs``),
or on an existing Dask cluster (``scheduler``). One task, ``scan_blob``, for all three: it
reads one stored blob by its path (every worker must see the storage at the same path) and
returns the scan packed, or why the blob is bad, or that this worker could not open it.

A blob this worker could not open is tried again on another worker (the others may see the
storage), and a task whose worker died is rescheduled by Dask and, failing that, by us; a bad
blob (wrong digest, not a tar) is an answer, never retried. Imports no analyzer.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import CancelledError, as_completed
from dataclasses import dataclass

from slimmer.errors import ClusterError, SlimmerError
from slimmer.reader import blobs
from slimmer.reader.blobs import LayerScan
from slimmer.reader.store import ScanOptions, scan_file_range
from slimmer.workers import can_fork, process_pool

MAX_ATTEMPTS = 3  # a blob is tried on at most this many workers


@dataclass(frozen=True)
class BlobTask:
    """One stored layer blob to scan: its digest, where it lives, its size, its name in messages."""

    digest: str
    path: str
    size: int
    where: str


@dataclass(frozen=True)
class Outcome:
    """What scanning one blob gave: a scan, or an error; on which worker, after how many attempts."""

    task: BlobTask
    scan: LayerScan | None
    error: str = ""
    worker: str = ""
    attempts: int = 1


OK, BAD, UNREADABLE = "ok", "bad", "unreadable"


def scan_blob(task: BlobTask, options: ScanOptions, threads: bool = True) -> tuple:
    """The task: scan one blob; return (OK, packed scan, worker), (BAD, message, worker) for a
    blob that is not what it should be, or (UNREADABLE, message, worker) where this worker
    cannot open it."""
    try:
        return OK, scan_file_range(task.path, 0, task.size, task.where, options, threads), _worker()
    except SlimmerError as err:
        return BAD, str(err), _worker()
    except OSError as err:
        return UNREADABLE, f"cannot read {task.path}: {err.strerror or err}", _worker()


def _worker() -> str:
    """Return the address of the Dask worker running this, else this process's id."""
    if "distributed" in sys.modules:
        try:
            return sys.modules["distributed"].get_worker().address
        except ValueError:
            pass
    return f"pid {os.getpid()}"


def _outcome(task: BlobTask, result: tuple, attempts: int = 1) -> Outcome:
    kind, value, worker = result
    if kind == OK:
        return Outcome(task, blobs.unpack(value), worker=worker, attempts=attempts)
    return Outcome(task, None, value, worker, attempts)


Progress = Callable[[Outcome], None]


def run_local(tasks: list[BlobTask], options: ScanOptions, jobs: int,
              done: Progress | None = None) -> Iterator[Outcome]:
    """Scan ``tasks`` here (``jobs`` 1) or in ``jobs`` forked worker processes (``workers``:
    a Ctrl-C kills them at once), largest first; yield each outcome as it comes."""
    order = sorted(tasks, key=lambda t: -t.size)
    if jobs <= 1 or len(order) <= 1 or not can_fork():
        for task in order:
            out = _outcome(task, scan_blob(task, options, threads=jobs > 1))
            if done:
                done(out)
            yield out
        return
    with process_pool(min(jobs, len(order))) as pool:
        futures = {pool.submit(scan_blob, task, options): task for task in order}
        for future in as_completed(futures):
            out = _outcome(futures[future], future.result())
            if done:
                done(out)
            yield out


def connect(address: str):
    """Return a Dask client of the scheduler at ``address`` with at least one worker."""
    try:
        import distributed
    except ImportError as err:
        raise ClusterError("--scheduler needs the dask and distributed packages (pip install dask distributed)") \
            from err
    try:
        client = distributed.Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {err}") from err
    try:
        client.wait_for_workers(1, timeout=60)
    except (OSError, TimeoutError) as err:
        client.close()
        raise ClusterError(f"the Dask scheduler at {address} has no worker") from err
    return client


def run_dask(client, tasks: list[BlobTask], options: ScanOptions, done: Progress | None = None) -> Iterator[Outcome]:
    """Scan ``tasks`` on the workers of ``client``'s cluster, largest first; yield each outcome
    as it comes. A blob a worker cannot open is tried on another (MAX_ATTEMPTS in all)."""
    import distributed

    lost = (CancelledError, OSError, TimeoutError, distributed.scheduler.KilledWorker)
    pending: dict[str, tuple[BlobTask, int, frozenset[str]]] = {}
    shared = client.scatter(options, broadcast=True, hash=False)  # sent to each worker once

    def submit(task: BlobTask, attempt: int, avoid: frozenset[str]):
        live = set(workers_of(client)) - avoid if avoid else None
        if live is not None and not live:
            return None
        future = client.submit(scan_blob, task, shared, key=f"slimmer-scan-{task.digest[7:19]}-{uuid.uuid4().hex[:8]}",
                               pure=False, workers=sorted(live) if live else None)
        pending[future.key] = (task, attempt, avoid)
        return future

    first = [submit(task, 1, frozenset()) for task in sorted(tasks, key=lambda t: -t.size)]
    # results come back in batches gathered on the client's event loop, not one round trip each
    queue = distributed.as_completed(first, loop=client.loop, with_results=True, raise_errors=False)
    for future, result in queue:
        task, attempt, avoid = pending.pop(future.key)
        future.release()
        if isinstance(result, BaseException):
            if not isinstance(result, lost):
                raise result
            result = (UNREADABLE, f"the worker scanning {task.where} was lost: {result}", "")
        if result[0] == UNREADABLE and attempt < MAX_ATTEMPTS:
            again = submit(task, attempt + 1, avoid | {result[2]} if result[2] else avoid)
            if again is not None:
                queue.add(again)
                continue
        out = _outcome(task, result, attempt)
        if out.scan is None and result[0] == UNREADABLE:
            out = Outcome(task, None, f"{out.error} (tried on {attempt} worker{'s' if attempt > 1 else ''})",
                          out.worker, attempt)
        if done:
            done(out)
        yield out


def workers_of(client) -> list[str]:
    """Return the addresses of the cluster's workers."""
    return sorted(client.scheduler_info()["workers"])


def scan_all(tasks: Iterable[BlobTask], options: ScanOptions, jobs: int, client=None,
             done: Progress | None = None) -> Generator[Outcome, None, None]:
    """Scan ``tasks`` on ``client``'s Dask cluster if given, else locally with ``jobs``. Close
    the iterator (``contextlib.closing``) when not reading it to the end: that ends the scans
    still running."""
    tasks = list(tasks)
    if not tasks:
        return
    if client is not None:
        yield from run_dask(client, tasks, options, done)
    else:
        yield from run_local(tasks, options, jobs, done)
