"""The scan pass: a stored layer blob read exactly once.

Its stored bytes are hashed (*digest*), decompressed in bounded chunks, hashed again
(*diff_id*) and fed to the one layer tar parser, which records the entries and lets a content
policy (``slimmer.tar.collect``) learn what it needs from file data as it passes. Nothing else
ever reads a layer for the analysis. Also: bounded JSON parsing for manifests and configs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import marshal
import mmap
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from slimmer.compiled import ctar
from slimmer.errors import FormatError, LimitError, TruncatedError
from slimmer.model import Columns, Entries, Entry, Stream
from slimmer.tar.codec import CHUNK, BlobStream, compression_of  # noqa: F401  (re-exported)
from slimmer.tar.collect import SPANS, Collector, Policy, as_mapping
from slimmer.tar.scan import TarScanner

DEFAULT_MAX_LAYER_SIZE = 64 << 30
MAX_JSON = 64 << 20
BACKGROUND_HASH_MIN = 4 << 20  # smaller layers are hashed inline: a thread costs more than it saves


@dataclass(frozen=True)
class LayerScan:
    """What one pass over a stored layer blob found. ``facts`` are the content policy's
    (``policy`` names it; "" when none ran); ``notes`` say what was accepted though odd."""

    digest: str
    stored_size: int
    diff_id: str
    uncompressed_size: int
    compression: str
    entries: Sequence[Entry]
    facts: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)
    policy: str = ""
    notes: tuple[str, ...] = ()
    # with ScanOptions.defer: digest and diff_id are "" and this gives the digest (the blob is
    # uncompressed: it is the diff_id too) once the hashing beside the parsing is done
    pending: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    # scanned with a pool: ``facts`` waits for work still running beside the reader (libmagic)
    # until ``settled`` is called, so the next layer's reading need not wait for it
    facts_later: Callable[[], dict[str, dict[str, Any]]] | None = field(default=None, compare=False, repr=False)


def settled(scan: LayerScan) -> LayerScan:
    """Return ``scan`` with the facts it was still waiting for (``LayerScan.facts_later``)."""
    if scan.facts_later is None:
        return scan
    return dataclasses.replace(scan, facts=scan.facts_later(), facts_later=None)


def _contents(scan: LayerScan) -> tuple:
    return Columns.of(scan.entries).pack(), scan.facts


def _entries(packed: tuple) -> Entries:
    return Entries(Columns.unpack(packed))


def pack(scan: LayerScan) -> tuple[LayerScan, bytes]:
    """Return ``scan`` without its entries and facts, and those marshalled (the entries as
    columns, ``Columns.pack``: far cheaper than pickling them): how a scan crosses a process
    or a network."""
    return dataclasses.replace(scan, entries=(), facts={}), marshal.dumps(_contents(scan))


def unpack(packed: tuple[LayerScan, bytes]) -> LayerScan:
    """Return the scan ``pack`` took apart."""
    scan, data = packed
    columns, facts = marshal.loads(data)
    return dataclasses.replace(scan, entries=_entries(columns), facts=facts)


def encode_contents(scan: LayerScan) -> bytes:
    """Return the entries and facts of ``scan`` as the bytes a database keeps (``pack``'s
    marshalled columns and facts, zlib)."""
    return zlib.compress(marshal.dumps(_contents(scan)), 1)


def decode_contents(data: bytes) -> tuple[Entries, dict[str, dict[str, Any]]]:
    """Return (entries, facts) from ``encode_contents`` bytes; raises ValueError, EOFError,
    TypeError or zlib.error on damaged bytes."""
    columns, facts = marshal.loads(zlib.decompress(data))
    return _entries(columns), facts


def scan_layer(raw: Stream, where: str, max_layer_size: int = DEFAULT_MAX_LAYER_SIZE,
               size_hint: int = -1, policy: Policy | None = None, threads: bool = False,
               pool: Executor | None = None) -> LayerScan:
    """Read a stored layer blob once; return its digests, sizes, tar entries and the facts
    ``policy`` gathered from its files.

    With ``threads``, blobs of BACKGROUND_HASH_MIN bytes or more (or of unknown size,
    ``size_hint`` < 0) are hashed on threads beside the parsing; ``pool`` runs the policy's
    work that lets go of the GIL (libmagic) beside both; the scan then returns without waiting
    for that work (``settled`` waits)."""
    blob = BlobStream(raw, where, threads and (size_hint < 0 or size_hint >= BACKGROUND_HASH_MIN))
    try:
        return _scan(blob, where, max_layer_size, policy, pool)
    finally:
        blob.close()


def _scan(blob: BlobStream, where: str, max_layer_size: int, policy: Policy | None,
          pool: Executor | None = None) -> LayerScan:
    def chunks() -> Iterator:
        for chunk in blob.chunks():
            if blob.uncompressed_size > max_layer_size:
                raise LimitError(
                    f"{where}: layer expands past --max-layer-size ({max_layer_size} bytes); refusing to read on")
            yield chunk

    return _parse(chunks(), lambda: blob.uncompressed_size, blob.compression, where, max_layer_size, policy,
                  lambda: (blob.digest(), blob.stored_size, blob.diff_id()), pool)


def _parse(chunks: Iterator, total_of: Callable[[], int], compression: str, where: str, max_layer_size: int,
           policy: Policy | None, digests: Callable[[], tuple[str, int, str]], pool: Executor | None = None
           ) -> LayerScan:
    """Parse the uncompressed ``chunks`` of a layer; ``digests`` gives (digest, stored size,
    diff_id) once they are all read; ``pool`` runs the policy's work that lets go of the GIL
    (waited for by ``settled``)."""
    collector = Collector(policy, pool) if policy is not None else None
    scanner = TarScanner(where, max_layer_size, collector.visit if collector else None,
                         select=collector.select if collector else None, spans=bool(getattr(policy, "spans", False)))
    try:
        for chunk in chunks:
            scanner.feed(chunk)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    total = total_of()
    notes: tuple[str, ...] = ()
    if total and not scanner.headers and not scanner.ended:
        raise FormatError(f"{where}: layer is not a tar stream")
    if not scanner.ended and (total or compression != "none"):
        if not scanner.complete_members():
            raise TruncatedError(f"{where}: layer tar is truncated (ends inside a member)")
        # umoci 0.4.7's `insert` writes layers that stop right after the last member's data
        # (no padding, no end blocks); docker, containerd and dive read them, and the diff_id
        # the config promises is checked against exactly these bytes.
        notes = (f"{where}: the layer tar ends after its last member without end-of-archive blocks "
                 f"(as umoci 0.4.7 insert writes them); its members are complete",)
    else:
        scanner.finish()
    entries = scanner.entries
    spans = scanner.spans

    def facts_of() -> dict[str, dict[str, Any]]:
        facts = as_mapping(collector.facts) if collector else {}
        if spans is not None:
            facts[SPANS] = {"": spans.tobytes()}  # where each member lies, for a writer that copies
        return facts

    digest, stored, diff_id = digests()
    key = policy.key if policy else ""
    if collector is not None and collector.facts.pool is not None:
        return LayerScan(digest, stored, diff_id, total, compression, entries, {}, key, notes, facts_later=facts_of)
    return LayerScan(digest, stored, diff_id, total, compression, entries, facts_of(), key, notes)


MAP_STEP = 1 << 20  # a mapped blob is hashed and parsed this many bytes at a time (what each reader maps)
advise = getattr(ctar, "advise", None) if ctar is not None else None  # madvise without the GIL


class Mapped:
    """An uncompressed stored blob that is a range of a file on disk, mapped read-only: hashed
    and parsed where it lies, not copied, each reader letting go of the pages behind it (so
    the mapping never holds the layer in memory). ``open`` gives None where a blob cannot be
    read so (compressed, empty, past the file's end, or the system refuses the mapping): the
    streaming scan reads it then, and says what is wrong with it."""

    def __init__(self, mm: mmap.mmap, start: int, size: int):
        self._mm, self._start, self.size = mm, start, size

    @classmethod
    def open(cls, path: str, offset: int, size: int) -> Mapped | None:
        if size < 1024 or advise is None:
            return None
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size < offset + size or \
                        compression_of(os.pread(f.fileno(), 8, offset)) != "none":
                    return None
                base = offset - offset % mmap.ALLOCATIONGRANULARITY
                mm = mmap.mmap(f.fileno(), offset - base + size, access=mmap.ACCESS_READ, offset=base)
        except (OSError, ValueError, OverflowError):
            return None
        return cls(mm, offset - base, size)

    def chunks(self) -> Iterator[memoryview]:
        """Yield the blob's bytes in MAP_STEP views (each valid until the next is asked for)."""
        assert advise is not None  # open() maps nothing without it
        for pos in range(0, self.size, MAP_STEP):
            n = min(MAP_STEP, self.size - pos)
            with memoryview(self._mm) as whole, whole[self._start + pos:self._start + pos + n] as view:
                yield view
                # drop the pages read: a mapping must not hold the layer in this process's memory
                page = mmap.PAGESIZE
                inner = -(self._start + pos) % page
                advise(view[inner:inner + (n - inner) // page * page], mmap.MADV_DONTNEED)

    def digest(self) -> str:
        """Return ``sha256:<hex>`` of the blob (hashlib lets go of the GIL: run it on a thread)."""
        sha = hashlib.sha256()
        for view in self.chunks():
            sha.update(view)
        return "sha256:" + sha.hexdigest()

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # views into it live on in an error's traceback:
            self._mm.close()  # the mapping goes when they do


def scan_mapped(blob: Mapped, where: str, max_layer_size: int, policy: Policy | None,
                pool: Executor | None = None) -> LayerScan:
    """Parse a mapped blob as ``scan_layer`` would, but for its digest: the caller hashes it
    (``Mapped.digest``, on a thread beside the parsing) and fills in ``digest`` and
    ``diff_id`` (the same: the blob is not compressed) before anything uses the scan."""
    if blob.size > max_layer_size:
        raise LimitError(f"{where}: layer expands past --max-layer-size ({max_layer_size} bytes); refusing to read on")
    return _parse(blob.chunks(), lambda: blob.size, "none", where, max_layer_size, policy, lambda: ("", blob.size, ""),
                  pool)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes, where: str, kind: type = dict):
    """Parse a JSON document that must be of ``kind`` (dict or list). Strictly JSON (RFC 8259):
    NaN and Infinity, which Python's parser takes and no other parser downstream does, are
    refused, so nothing slimmer writes back can carry them."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise FormatError(f"{where}: not valid JSON ({err})") from err
    if not isinstance(value, kind):
        raise FormatError(f"{where}: expected a JSON {'object' if kind is dict else 'array'}")
    return value


# The image config's fields and the JSON types the image-spec gives them (config.md); a
# field of another type is refused here, once, as Docker and containerd refuse it. Entrypoint
# and Cmd may also be a string (old builders wrote them so; it runs with /bin/sh -c).
_STR, _LIST, _OBJ, _BOOL = "a string", "a list of strings", "an object", "true or false"
CONFIG_FIELDS = {"created": _STR, "author": _STR, "architecture": _STR, "os": _STR, "os.version": _STR,
                 "os.features": _LIST, "variant": _STR, "config": _OBJ, "rootfs": _OBJ, "history": "a list"}
RUNTIME_FIELDS = {"User": _STR, "ExposedPorts": _OBJ, "Env": _LIST, "Entrypoint": _LIST, "Cmd": _LIST,
                  "Volumes": _OBJ, "WorkingDir": _STR, "Labels": _OBJ, "StopSignal": _STR, "ArgsEscaped": _BOOL,
                  "Healthcheck": _OBJ, "OnBuild": _LIST, "Shell": _LIST, "Domainname": _STR, "Hostname": _STR}
HISTORY_FIELDS = {"created": _STR, "created_by": _STR, "author": _STR, "comment": _STR, "empty_layer": _BOOL}


def _is(value: Any, kind: str, string_ok: bool = False) -> bool:
    if value is None:
        return True
    if kind == _STR:
        return isinstance(value, str)
    if kind == _LIST:
        return (string_ok and isinstance(value, str)) or (isinstance(value, list)
                                                          and all(isinstance(v, str) for v in value))
    if kind == _OBJ:
        return isinstance(value, dict)
    if kind == _BOOL:
        return isinstance(value, bool)
    return isinstance(value, list)


def check_config(config: dict, where: str) -> None:
    """Refuse an image config whose known fields have the wrong JSON types (a list where a
    string belongs, ``"Env": 7``, labels that are not strings), naming the field."""
    def bad(key: str, kind: str, value: Any) -> FormatError:
        return FormatError(f"{where}: config field {key} must be {kind}, not {type(value).__name__}")

    for key, kind in CONFIG_FIELDS.items():
        if not _is(config.get(key), kind):
            raise bad(key, kind, config.get(key))
    runtime = config.get("config") or {}
    for key, kind in RUNTIME_FIELDS.items():
        value = runtime.get(key)
        if not _is(value, kind, string_ok=key in ("Entrypoint", "Cmd")):
            raise bad(f"config.{key}", kind, value)
    labels = runtime.get("Labels") or {}
    for name, value in labels.items():
        if not isinstance(value, str):
            raise bad(f"config.Labels[{name!r}]", _STR, value)
    for i, step in enumerate(config.get("history") or []):
        if not isinstance(step, dict):
            raise bad(f"history[{i}]", _OBJ, step)
        for key, kind in HISTORY_FIELDS.items():
            if not _is(step.get(key), kind):
                raise bad(f"history[{i}].{key}", kind, step.get(key))
