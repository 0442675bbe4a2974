"""``slimmer slim`` as a library: plan, flatten, write, and account for every byte.

``plan_slim`` makes the plan (nothing written); ``slim`` carries it out into an archive: one
flattened layer staged beside the output, a new config (runtime settings kept, ``User`` as
asked, history ending in one step that says what slimmer did), then the writer, which stages,
verifies digests and renames atomically. The input is only read. Scratch files live in a
directory beside the output and are removed however the call ends.

Imports the model, ``slimmer.layers``, the analyzer's categories (through ``prune``) and
rewriter modules; never the reader.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slimmer import sandbox
from slimmer.atomic import scratch_dir
from slimmer.errors import OutputError, SlimError
from slimmer.layers import merge
from slimmer.model import DIR, FILE, HistoryStep, Image, runtime_config, total_size
from slimmer.rewriter import flatten, users
from slimmer.rewriter.closure import Closure, Reason, entrypoint_closure, image_env
from slimmer.rewriter.contents import Contents
from slimmer.rewriter.distroless import base_synthetic, plan_distroless
from slimmer.rewriter.lookup import resolve
from slimmer.rewriter.members import MemberIndex
from slimmer.rewriter.plan import DISTROLESS, MODES, PRUNE, SHADOWED, Globs, Plan
from slimmer.rewriter.prune import plan_prune
from slimmer.rewriter.writer import write_streamed

# Runtime settings the new config carries over (the list, plus the ones that only
# describe how to run the same program); build-time leftovers like Healthcheck commands or
# OnBuild triggers may name files that are gone.
RUNTIME_KEYS = ("Entrypoint", "Cmd", "Env", "WorkingDir", "ExposedPorts", "Labels", "User", "StopSignal",
                "Volumes", "ArgsEscaped")
TOP_KEYS = ("architecture", "os", "os.version", "os.features", "variant", "author")
FORMATS = ("docker", "oci")


@dataclass(frozen=True)
class SlimOptions:
    """What the user asked for. ``epoch`` (seconds) pins every timestamp slimmer makes up, for
    byte-identical output (``--reproducible`` / SOURCE_DATE_EPOCH); None means "now"."""

    mode: str = PRUNE
    keep: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    user: str | None = None
    tzdata: bool = True
    epoch: int | None = None
    jobs: int = 1  # more than 1: hash on threads beside the copying, read layers' ends on as many
    probe: bool = False  # run the entrypoint (or probe_cmd) in the sandbox and keep what it opens
    probe_cmd: tuple[str, ...] = ()
    verify: bool = False  # run the original and the slim image alike and compare them
    verify_cmd: tuple[str, ...] = ()
    timeout: float = sandbox.TIMEOUT


@dataclass(frozen=True)
class CategoryTotal:
    """Bytes and files the new image leaves out, for one category."""

    category: str
    files: int
    bytes: int


@dataclass(frozen=True)
class SlimResult:
    """The plan, the accounting (``before - removed + added == after``) and, unless it was a
    dry run, what was written (the new config and digests; read the output for the rest)."""

    plan: Plan
    before_bytes: int  # every layer's file bytes, shadowed copies included
    after_bytes: int  # file bytes of the new layer
    removed_bytes: int
    added_bytes: int  # files slimmer wrote, and hard links that became files
    by_category: tuple[CategoryTotal, ...]
    tags: tuple[str, ...]
    config: dict | None = None
    verdict: sandbox.Verdict | None = None  # --verify: how the slim image ran against the original
    output: str = ""
    format: str = ""
    config_digest: str = ""
    manifest_digest: str = ""


def reproducible_epoch(image: Image, source_date_epoch: str | None, reproducible: bool) -> int | None:
    """Return the epoch for made-up timestamps: SOURCE_DATE_EPOCH if set, else with
    ``reproducible`` the input image's creation time (or 0), else None (now)."""
    if source_date_epoch not in (None, ""):
        try:
            return int(source_date_epoch)
        except ValueError:
            raise SlimError(f"SOURCE_DATE_EPOCH={source_date_epoch!r}: expected seconds since 1970") from None
    if not reproducible:
        return None
    return _parse_time(str(image.config.get("created") or "")) or 0


def _parse_time(text: str) -> int | None:
    if not text:
        return None
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        # RFC 3339 with nanoseconds: Python before 3.12 stops at microseconds
        head, dot, rest = text.partition(".")
        if not dot:
            return None
        tz = rest.lstrip("0123456789")
        try:
            stamp = dt.datetime.fromisoformat(head + (tz.replace("Z", "+00:00") or "+00:00"))
        except ValueError:
            return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp())


def _rfc3339(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_tags(image: Image) -> tuple[str, ...]:
    """Return the output's default tag: the input's first tag with ``-slim`` added."""
    if not image.tags:
        return ()
    ref = image.tags[0]
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return (f"{ref}:latest-slim",)
    return (f"{name}:{tag}-slim",)


class _Session:
    """One image being slimmed: its merged filesystem, member index and fetched contents."""

    def __init__(self, image: Image, scratch: Path):
        self.image = image
        self.scratch = scratch
        self.fs = merge(image)
        self.index = MemberIndex(image, self.fs)
        self.contents = Contents(image, self.fs, scratch, self.index)

    def probe(self, closure: Closure, options: SlimOptions) -> Closure:
        """Return ``closure`` with what a sandboxed run of the program opened; a probe that
        cannot run says why in a note and adds nothing."""
        argv = sandbox.command_of(self.image, options.probe_cmd)
        try:
            sandbox.check_host(self.image)
            done = sandbox.run(self.image, argv, self.scratch, options.timeout)
        except sandbox.SandboxError as err:
            return dataclasses.replace(closure, notes=closure.notes + (f"--probe failed: {err}; nothing was added",))
        found = done.found_paths()
        if not found or (done.status in (126, 127) and len(found) < 2):
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {done.status}"]
            return dataclasses.replace(closure, notes=closure.notes + (
                f"--probe failed: {' '.join(argv)} did not start ({why[0][:200]}); nothing was added",))
        paths = set(closure.paths)
        reasons = list(closure.reasons)
        added = 0
        for path in found:
            hit = resolve(self.fs, path)
            if hit is None:
                continue
            if hit.path and not closure.covers(hit.path):
                reasons.append(Reason(hit.path, f"opened by the --probe run of {' '.join(argv)}"))
                added += 1
            paths.update(p for p in (*hit.links, hit.path) if p)
        how = "timed out" if done.timed_out else f"exited {done.status}"
        note = f"--probe ran {' '.join(argv)} ({how}): {len(found)} paths opened, {added} not found statically"
        return dataclasses.replace(closure, paths=frozenset(paths), reasons=tuple(reasons),
                                   notes=closure.notes + (note,))

    def plan(self, options: SlimOptions) -> Plan:
        """Return the plan ``options`` ask for."""
        if options.mode not in MODES:
            raise SlimError(f"unknown mode {options.mode!r}: expected one of {', '.join(MODES)}")
        globs = Globs(tuple(options.keep), tuple(options.drop))
        users.config_user(options.user, "")  # reject a bad --user before any work
        closure = entrypoint_closure(self.image, self.fs, self.contents)
        if options.probe:
            closure = self.probe(closure, options)
        mtime = options.epoch if options.epoch is not None else (_parse_time(str(self.image.config.get("created")
                                                                                 or "")) or 0)
        synthetic = []
        if options.mode == DISTROLESS or options.user == users.NONROOT:
            synthetic += users.account_files(self.fs, self.contents, mtime)
        if options.mode == DISTROLESS:
            synthetic += base_synthetic(self.fs, mtime)
            return plan_distroless(self.fs, closure, globs, synthetic, options.tzdata, image_env(self.image))
        return plan_prune(self.fs, closure, globs, synthetic, self.contents.rules())


def plan_slim(image: Image, options: SlimOptions, next_to: str | os.PathLike | None = None,
              tags: Sequence[str] | None = None) -> SlimResult:
    """Return the plan and the accounting for slimming ``image`` (``--dry-run``): nothing is
    written but scratch files, beside ``next_to`` if given, removed before returning."""
    refs = tuple(tags) if tags is not None else default_tags(image)
    with scratch_dir(next_to, "slim") as scratch:
        session = _Session(image, scratch)
        plan = session.plan(options)
        return _account(session, plan, flatten.layout(image, session.fs, session.index, plan.keep), refs)


def _account(session: _Session, plan: Plan, lay: flatten.Layout, tags: tuple[str, ...]) -> SlimResult:
    fs = session.fs
    totals: dict[str, list[int]] = {}

    def count(category: str, size: int, is_file: bool) -> None:
        row = totals.setdefault(category, [0, 0])
        row[0] += 1 if is_file else 0
        row[1] += size

    for item in plan.removed:
        count(item.category, item.size, item.kind != DIR)
    for shadow in fs.shadowed:
        count(SHADOWED, shadow.entry.size, shadow.entry.kind != DIR)
    added = sum(len(s.data) for s in plan.synthetic if s.kind == FILE) + lay.materialized_bytes
    removed_bytes = sum(row[1] for row in totals.values())
    rows = sorted((CategoryTotal(c, f, b) for c, (f, b) in totals.items()), key=lambda r: (-r.bytes, r.category))
    before = total_size(session.image)
    return SlimResult(plan, before, lay.file_bytes + added, removed_bytes, added, tuple(rows), tags)


def slim_config(image: Image, options: SlimOptions, created: str) -> dict:
    """Return the new image's config (without rootfs and history, which follow the layers)."""
    old = runtime_config(image)
    runtime = {k: old[k] for k in RUNTIME_KEYS if k in old}
    user = users.config_user(options.user, str(old.get("User", "") or ""))
    if user:
        runtime["User"] = user
    else:
        runtime.pop("User", None)
    config = {k: image.config[k] for k in TOP_KEYS if k in image.config}
    config["created"] = created
    config["config"] = runtime
    return config


def slim_history(image: Image, options: SlimOptions, result: SlimResult, created: str) -> tuple[HistoryStep, ...]:
    """Return the new history: the old steps (as empty-layer steps: their layers were
    flattened) and one step that says what slimmer did."""
    old = []
    for step in image.history:
        comment = step.comment
        if not step.empty_layer:
            comment = (comment + "; " if comment else "") + "its layer was flattened by slimmer"
        old.append(dataclasses.replace(step, comment=comment, empty_layer=True))
    what = (f"slimmer slim --mode {options.mode}: flattened {len(image.layers)} layer(s), removed "
            f"{result.removed_bytes} bytes, kept {len(result.plan.keep) + len(result.plan.synthetic)} paths")
    if options.keep:
        what += " --keep " + " --keep ".join(options.keep)
    if options.drop:
        what += " --drop " + " --drop ".join(options.drop)
    if options.mode == DISTROLESS and not options.tzdata:
        what += " --no-tzdata"
    step = HistoryStep(created_by=what, created=created, comment="slimmer")
    return tuple(old) + (step,)


def slim(image: Image, options: SlimOptions, out_path: str | os.PathLike, fmt: str = "docker",
         compression: str = "gzip", tags: Sequence[str] | None = None) -> SlimResult:
    """Slim ``image`` into the archive ``out_path`` (``fmt`` "docker" or "oci", OCI layers
    compressed with ``compression``); return the plan, the accounting and what was written.
    ``tags`` defaults to the input's first tag with ``-slim``."""
    if fmt not in FORMATS:
        raise SlimError(f"unknown output format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out_path)
    if image.source and _touches_input(image.source, out):
        raise OutputError(f"cannot write {out}: it is, or lies inside, the input {image.source} "
                          f"(slimmer never touches its input)")
    refs = tuple(tags) if tags is not None else default_tags(image)
    if options.verify:
        sandbox.check_host(image)  # refused before any work when the host cannot run the image
    with scratch_dir(out, "slim") as scratch:
        session = _Session(image, scratch)
        plan = session.plan(options)
        lay = flatten.layout(image, session.fs, session.index, plan.keep)
        result = _account(session, plan, lay, refs)
        created = _rfc3339(options.epoch) if options.epoch is not None else \
            dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        history = slim_history(image, options, result, created)
        bare = Image(config=slim_config(image, options, created), layers=(), history=history, tags=refs)

        def produce(stream):
            return flatten.write_layer_into(image, lay, plan.synthetic, stream, scratch, history[-1],
                                            jobs=options.jobs)

        # the new layer streams straight into the staged archive as the input layers are read
        written, new = write_streamed(bare, out, produce, fmt, compression, refs)
        verdict = verify(image, new, options, scratch, session.fs) if options.verify else None
    if verdict is not None:
        result = dataclasses.replace(result, plan=dataclasses.replace(
            result.plan, notes=result.plan.notes + (verdict_text(verdict),)))
    return dataclasses.replace(result, config=dict(new.config), output=str(out), format=fmt, verdict=verdict,
                               config_digest=written.config_digest, manifest_digest=written.manifest_digest)


def verdict_text(verdict: sandbox.Verdict) -> str:
    """Return the one line that says how ``--verify`` went."""
    argv = " ".join(verdict.original.argv)
    if verdict.same:
        how = "timed out alike" if verdict.original.timed_out else f"exit status {verdict.original.status}"
        return f"--verify: the slim image ran {argv} like the original ({how}, the same output)"
    missing = f"; the first missing file it tried to open: {verdict.first_missing}" if verdict.first_missing else \
        "; it tried to open no file the original found"
    return f"--verify failed: the slim image ran {argv} with a different {verdict.what}{missing}"


def verify(original: Image, slimmed: Image, options: SlimOptions, scratch: Path, fs) -> sandbox.Verdict:
    """Run the original and the slim image alike in the sandbox (``--verify-cmd``, else the
    original's Entrypoint + Cmd) and compare them (``fs``: the original's merged filesystem)."""
    argv = sandbox.command_of(original, options.verify_cmd)
    before = sandbox.run(original, argv, scratch, options.timeout)
    after = sandbox.run(slimmed, argv, scratch, options.timeout)

    slim_fs = merge(slimmed)

    def is_file(path: str) -> bool:
        hit = resolve(fs, path)
        return hit is not None and hit.is_file

    def in_slim(path: str) -> bool:
        return resolve(slim_fs, path) is not None

    return sandbox.compare(before, after, is_file, in_slim)


def _touches_input(source: str, out: Path) -> bool:
    """Return whether writing ``out`` would change the input: the same file, or a path inside
    an OCI layout directory read as input."""
    src = Path(source)
    try:
        if out.exists() and os.path.samefile(src, out):
            return True
        return src.is_dir() and out.resolve().is_relative_to(src.resolve())
    except OSError:
        return False
