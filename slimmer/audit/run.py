"""One audit: every image of a registry storage (or of a directory of archives), each layer blob
read and verified once, each image analyzed, the results kept in the audit database.

A registry audit goes in four steps:
1. list the tags (link files only) and skip those whose digest, content policy and images
   the database already holds: they need no blob read;
2. read the manifests and configs of the others (each blob once, verified), one image per
   platform;
3. scan every layer blob not yet in the database, once, wherever ``work`` runs scans (here,
   local processes, a Dask cluster), and keep each verified scan;
4. build each image from the scans of its layers (``registry.assemble_planned``: the same
   verification as any archive) and run the same ``analyze`` as ``slimmer analyze``: the
   figures are those of that image alone.
Parallelism is the caller's (``Settings.jobs``); nothing here forks unless asked.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fnmatch
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slimmer import fleet
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.report import Analysis, analyze
from slimmer.audit import work
from slimmer.audit.db import Database
from slimmer.audit.records import ImageRecord, error_record, record_of
from slimmer.errors import ClusterError, FormatError, SlimmerError
from slimmer.fleet import FleetRow
from slimmer.model import Image
from slimmer.reader import registry
from slimmer.reader.assemble import Options
from slimmer.reader.blobs import DEFAULT_MAX_LAYER_SIZE, LayerScan
from slimmer.reader.oci_layout import platform_matches
from slimmer.reader.registry import Planned, Storage, TagRef
from slimmer.reader.store import ScanOptions
from slimmer.workers import can_fork, process_pool

CHUNK = 64  # images built and analyzed together: bounds the scans held in memory
SCAN_BUDGET = 2_000_000  # entries of layer scans kept in memory between images


@dataclass(frozen=True)
class Progress:
    """How far an audit is: ``stage`` "scan" (``done`` of ``total`` blobs, ``bytes`` of
    ``total_bytes`` stored bytes) or "analyze" (``done`` of ``total`` images)."""

    stage: str
    done: int
    total: int
    bytes: int = 0
    total_bytes: int = 0


@dataclass(frozen=True)
class Settings:
    """What to audit and how: the selection, the content policy, where scans run."""

    repo_glob: str = "*"
    tag_glob: str = "*"
    platform: str | None = None
    read_content: bool = True
    rescan: bool = False  # read and verify every blob again, ignoring the scans kept
    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE
    jobs: int = 1
    scheduler: str | None = None
    progress: Callable[[Progress], None] | None = None


@dataclass
class Summary:
    """What an audit did. ``reads`` counts the times each blob was opened, by digest."""

    storage: str
    kind: str
    platform: str | None = None
    tags: int = 0
    images: int = 0
    failed: int = 0
    reused: int = 0
    left_out: list[str] = field(default_factory=list)
    layers_scanned: int = 0
    layers_known: int = 0
    retried: int = 0
    forgotten: int = 0
    scheduler: str = ""
    workers: list[str] = field(default_factory=list)
    reads: collections.Counter[str] = field(default_factory=collections.Counter)
    bytes_read: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # by step: tags, scans, analyses

    @property
    def blobs_read(self) -> int:
        return sum(self.reads.values())


@dataclass
class AuditResult:
    rows: list[FleetRow]
    summary: Summary


class ScanTable:
    """The layer scans an audit assembles images from, by blob digest: the ones made in this
    audit and, unless rescanning, the database's; a bounded number kept in memory."""

    def __init__(self, db: Database, policy: str, use_db: bool, budget: int = SCAN_BUDGET):
        self.db, self.policy, self.use_db, self.budget = db, policy, use_db, budget
        self.fresh: set[str] = set()
        self.errors: dict[str, SlimmerError] = {}
        self._held: collections.OrderedDict[str, LayerScan] = collections.OrderedDict()
        self._entries = 0

    def get(self, digest: str) -> LayerScan | SlimmerError | None:
        if digest in self.errors:
            return self.errors[digest]
        scan = self._held.get(digest)
        if scan is not None:
            self._held.move_to_end(digest)
            return scan
        if not (self.use_db or digest in self.fresh):
            return None
        scan = self.db.get_scan(digest, self.policy)
        if scan is not None:
            self._hold(scan)
        return scan

    def add(self, scan: LayerScan) -> None:
        self.fresh.add(scan.digest)
        self._hold(scan)

    def fail(self, digest: str, error: SlimmerError) -> None:
        self.errors[digest] = error

    def _hold(self, scan: LayerScan) -> None:
        self._held[scan.digest] = scan
        self._entries += len(scan.entries)
        while self._entries > self.budget and len(self._held) > 1:
            _, old = self._held.popitem(last=False)
            self._entries -= len(old.entries)


def audit_registry(root: str | os.PathLike, db: Database, settings: Settings) -> AuditResult:
    """Audit every tag of the registry storage at ``root`` that ``settings`` selects; keep the
    results in ``db`` and return the fleet rows of the tags selected (new and unchanged)."""
    storage = Storage(root)
    policy = AnalysisPolicy(settings.read_content)
    summary = Summary(storage.root, "registry", settings.platform,
                      scheduler=settings.scheduler or f"local, {settings.jobs} job{'s' * (settings.jobs > 1)}")
    clock = time.perf_counter()
    refs = registry.tags(storage, settings.repo_glob, settings.tag_glob)
    summary.tags = len(refs)
    audit_id = db.begin_audit(storage.root, "registry", policy.key, summary.scheduler)
    scans = ScanTable(db, policy.key, use_db=not settings.rescan)
    rows: dict[str, list[FleetRow]] = {}
    todo: list[tuple[TagRef, list[Planned], list[str]]] = []
    for ref in refs:
        kept = None if settings.rescan else _unchanged(db, storage.root, ref, policy.key, settings.platform, summary)
        if kept is not None:
            rows[ref.ref] = kept
            summary.reused += len(kept)
            continue
        items, left_out = registry.images_of(storage, ref, settings.platform, scans)
        summary.left_out.extend(left_out)
        todo.append((ref, items, left_out))
    clock = _lap(summary, "manifests", clock)
    _scan_layers(storage, [i for _, items, _ in todo for i in items], scans, policy, settings, summary, db, audit_id)
    clock = _lap(summary, "scans", clock)
    for ref, items, left_out, records in _analyzed(todo, policy, settings):
        _keep(db, storage.root, ref, items, left_out, records, policy.key, settings.platform, audit_id)
        rows[ref.ref] = [r.row for r in records]
    _lap(summary, "analyses", clock)
    present = {(r.repository, r.tag) for r in refs}
    gone = [k for k in db.known_tags(storage.root) if k not in present and _selected(k, settings)]
    summary.forgotten = db.forget(storage.root, gone)
    out = [row for ref in refs for row in rows.get(ref.ref, [])]
    summary.images = len(out)
    summary.failed = sum(1 for r in out if r.error)
    summary.reads.update(storage.reads)
    summary.bytes_read += storage.bytes_read
    db.finish_audit(audit_id, images=summary.images, failed=summary.failed, reused=summary.reused,
                    blobs_read=summary.blobs_read, bytes_read=summary.bytes_read,
                    layers_scanned=summary.layers_scanned, retried=summary.retried)
    return AuditResult(out, summary)


def _lap(summary: Summary, step: str, since: float) -> float:
    now = time.perf_counter()
    summary.seconds[step] = now - since
    return now


def _selected(key: tuple[str, str], settings: Settings) -> bool:
    return fnmatch.fnmatchcase(key[0], settings.repo_glob) and fnmatch.fnmatchcase(key[1], settings.tag_glob)


def _unchanged(db: Database, storage: str, ref: TagRef, policy: str, platform: str | None,
               summary: Summary) -> list[FleetRow] | None:
    """Return the rows the database holds for ``ref`` if the tag still points where it did,
    under the same content policy, and every image wanted of it has a row without error."""
    if not ref.digest:
        return None
    state = db.tag_state(storage, ref.repository, ref.tag)
    if state is None or state[0] != ref.digest or state[1] != policy:
        return None
    wanted = [p for p in state[2] if not platform or platform_matches(p, platform)]
    have = {row.platform: row for _id, _repo, _tag, pol, row in db.image_rows(storage, ref.repository, ref.tag)
            if pol == policy and not row.error}
    if not all(p in have for p in wanted):
        return None
    summary.left_out.extend(p for p in state[2] if p not in wanted)
    return [have[p] for p in wanted]


def _scan_layers(storage: Storage, items: list[Planned], scans: ScanTable, policy: AnalysisPolicy, settings: Settings,
                 summary: Summary, db: Database, audit_id: int) -> None:
    """Scan, once each, the layer blobs of ``items`` that ``scans`` does not know; keep the good ones."""
    wanted: dict[str, str] = {}  # digest: the repository naming it in messages
    for item in items:
        if item.chosen is not None:
            for name in item.chosen.layer_names:
                wanted.setdefault(item.store.digest_of(name), item.store.repository)
    known = scans.db.scanned(wanted, policy.key) if scans.use_db else set()
    summary.layers_known = len(known)
    tasks = []
    for digest, repository in wanted.items():
        path = storage.blob_file(digest) if digest not in known else None
        if path is not None:
            tasks.append(work.BlobTask(digest, path, os.stat(path).st_size, f"{storage.root}: {repository}: "
                                                                              f"layer {digest}"))
    if not tasks:
        return
    total, total_bytes, done = len(tasks), sum(t.size for t in tasks), [0, 0]

    def tick(out: work.Outcome) -> None:
        done[0] += 1
        done[1] += out.task.size
        if settings.progress:
            settings.progress(Progress("scan", done[0], total, done[1], total_bytes))

    if settings.progress:
        settings.progress(Progress("scan", 0, total, 0, total_bytes))
    options = ScanOptions(settings.max_layer_size, policy, settings.jobs)
    client = work.connect(settings.scheduler) if settings.scheduler else None
    try:
        if client is not None:
            summary.workers = work.workers_of(client)
        # closed however the loop ends (a Ctrl-C while a scan is kept): the scans still running end
        with contextlib.closing(work.scan_all(tasks, options, settings.jobs, client, tick)) as outcomes:
            for out in outcomes:
                _take(out, storage, scans, policy, summary, db, audit_id)
    finally:
        if client is not None:
            client.close()


def _take(out: work.Outcome, storage: Storage, scans: ScanTable, policy: AnalysisPolicy, summary: Summary,
          db: Database, audit_id: int) -> None:
    """Record one blob's outcome: a verified scan is kept (in memory and the database), anything
    else fails the images that use the blob."""
    digest = out.task.digest
    summary.retried += out.attempts - 1
    if out.scan is None and not out.worker:
        scans.fail(digest, FormatError(out.error))
        return
    storage.counted(digest, out.task.size)
    summary.layers_scanned += 1
    scan = out.scan
    if scan is None:
        scans.fail(digest, FormatError(out.error))
    elif scan.policy != policy.key:
        raise ClusterError(f"worker {out.worker} scanned with content policy {scan.policy}, this slimmer uses "
                           f"{policy.key}: run the same slimmer on every worker")
    elif scan.digest != digest:
        scans.fail(digest, FormatError(f"{out.task.where}: the blob's sha256 is {scan.digest}: the stored blob "
                                       f"is damaged"))
    else:
        db.put_scan(scan, audit_id)
        scans.add(scan)


# ---- step 4: images from scans, analyzed -----------------------------------------------------

_BATCH: list[tuple[Planned, Image | None, str]] = []  # the chunk forked analysis workers see
_CONTENT = [True]


def _analyzed(todo: list[tuple[TagRef, list[Planned], list[str]]], policy: AnalysisPolicy, settings: Settings):
    """Yield (tag, its images, platforms left out, their records) for each tag of ``todo``,
    building and analyzing its images a chunk at a time (in ``settings.jobs`` forked processes)."""
    options = Options(max_layer_size=settings.max_layer_size, policy=policy, jobs=1)
    queue = [(ref, item) for ref, items, _ in todo for item in items]
    total = len(queue)
    by_tag: dict[int, list[ImageRecord]] = {id(ref): [] for ref, _, _ in todo}
    waiting = {id(ref): len(items) for ref, items, _ in todo}
    tags = {id(ref): (ref, items, left) for ref, items, left in todo}
    for ref, items, left in todo:
        if not items:
            yield ref, items, left, []
    done = 0
    for start in range(0, total, CHUNK):
        chunk = queue[start:start + CHUNK]
        batch = [_built(item, options) for _ref, item in chunk]
        for (ref, _item), record in zip(chunk, _analyze_batch(batch, settings.read_content, settings.jobs)):
            by_tag[id(ref)].append(record)
            waiting[id(ref)] -= 1
            done += 1
            if settings.progress:
                settings.progress(Progress("analyze", done, total))
            if waiting[id(ref)] == 0:
                yield *tags[id(ref)], by_tag.pop(id(ref))


def _built(item: Planned, options: Options) -> tuple[Planned, Image | None, str]:
    if item.error:
        return item, None, item.error
    try:
        return item, registry.assemble_planned(item, options), ""
    except SlimmerError as err:
        return item, None, str(err)


def _analyze_batch(batch: list[tuple[Planned, Image | None, str]], read_content: bool, jobs: int) -> list[ImageRecord]:
    """Return the records of ``batch``, analyzing in ``jobs`` forked processes (``workers``:
    they inherit the images, only the records come back, a Ctrl-C kills them at once)."""
    analyzable = sum(1 for _item, image, _err in batch if image is not None)
    if jobs <= 1 or analyzable <= 1 or not can_fork():
        return [_record(b, read_content) for b in batch]
    _BATCH[:] = batch
    _CONTENT[0] = read_content
    try:
        with process_pool(min(jobs, analyzable)) as pool:
            futures = [pool.submit(_record_at, i) for i in range(len(batch))]
            return [f.result() for f in futures]
    finally:
        _BATCH.clear()


def _record_at(i: int) -> ImageRecord:
    return _record(_BATCH[i], _CONTENT[0])


def _record(built: tuple[Planned, Image | None, str], read_content: bool) -> ImageRecord:
    item, image, error = built
    tags = (item.ref,)
    if image is None:
        return error_record(item.ref, error, item.repository, item.tag, item.tag_digest, item.platform, tags)
    try:
        analysis: Analysis = analyze(image, read_content=read_content, jobs=1)
    except SlimmerError as err:
        return error_record(item.ref, str(err), item.repository, item.tag, item.tag_digest, item.platform, tags)
    record = record_of(item.ref, image, analysis, item.repository, item.tag, item.tag_digest, tags)
    return dataclasses.replace(record, row=dataclasses.replace(record.row, platform=item.platform))


def _keep(db: Database, storage: str, ref: TagRef, items: list[Planned], left_out: list[str],
          records: list[ImageRecord], policy: str, platform: str | None, audit_id: int) -> None:
    """Store the records of one tag, replacing the rows of the images they stand for, and note
    where the tag pointed (only when every image of it could be read): one transaction, so an
    audit stopped here leaves the tag as it was or as it is now."""
    readable = (bool(records) and not any(r.row.error for r in records)) or (not records and bool(left_out))
    platforms = sorted({i.platform for i in items} | set(left_out))
    with db.transaction():
        old = db.image_rows(storage, ref.repository, ref.tag)
        drop = [row_id for row_id, _repo, _tag, _pol, row in old
                if not platform or not row.platform or platform_matches(row.platform, platform)]
        db.replace_images(storage, ref.repository, ref.tag, records, policy, audit_id, drop)
        db.put_tag(storage, ref.repository, ref.tag, ref.digest if readable else "", policy, platforms, audit_id)


# ---- a directory of archives ----------------------------------------------------------------


def _directory_record(source: str, image: Image | None, analysis: Analysis | None, error: str) -> ImageRecord:
    if image is None or analysis is None:
        return error_record(source, error, source)
    return record_of(source, image, analysis, source)


def audit_directory(directory: str | os.PathLike, db: Database, settings: Settings) -> AuditResult:
    """Audit every image archive below ``directory`` (as ``slimmer analyze`` of each, through the
    layer cache); keep the results in ``db`` (one row per archive, named by its path below
    ``directory``) and return the fleet rows."""
    given = [flag for flag, value in (("--scheduler", settings.scheduler), ("--platform", settings.platform),
                                      ("--repo", settings.repo_glob != "*"), ("--tag", settings.tag_glob != "*"))
             if value]
    if given:
        raise SlimmerError(f"{directory} is a directory of archives, not a registry storage: "
                           f"{', '.join(given)} apply to a registry storage only")
    root = Path(os.path.realpath(directory))
    policy = AnalysisPolicy(settings.read_content)
    summary = Summary(str(root), "directory", scheduler=f"local, {settings.jobs} job{'s' * (settings.jobs > 1)}")
    sources = [str(p) for p in fleet.find_archives(directory)]
    audit_id = db.begin_audit(str(root), "directory", policy.key, summary.scheduler)
    records = fleet.analyze_each(sources, _directory_record, settings.jobs, not settings.rescan,
                                 settings.read_content, settings.max_layer_size)
    present = set()
    for source, rec in zip(sources, records):
        name = os.path.relpath(os.path.realpath(source), root)
        present.add((name, ""))
        rec = dataclasses.replace(rec, repository=name)
        with db.transaction():
            old = [row_id for row_id, *_ in db.image_rows(str(root), name, "")]
            db.replace_images(str(root), name, "", [rec], policy.key, audit_id, old)
    summary.forgotten = db.forget(str(root), [k for k in db.known_tags(str(root)) if k not in present])
    rows = [r.row for r in records]
    summary.tags = summary.images = len(rows)
    summary.failed = sum(1 for r in rows if r.error)
    db.finish_audit(audit_id, images=summary.images, failed=summary.failed)
    return AuditResult(rows, summary)


def is_registry(path: str | os.PathLike) -> bool:
    """Return whether ``path`` is a registry storage root (else it is a directory of archives)."""
    return registry.is_storage(path)
