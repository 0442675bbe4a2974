"""Flattening: one new layer holding the kept paths of the merged filesystem, each in its
final version, so deleted and overwritten bytes are gone.

``layout`` decides, without reading any bytes, which tar member each kept path is copied from
and what becomes of hard links: a link whose file is kept stays a link; a link whose file is
dropped (or was replaced after the link was made) becomes a regular file with that file's
bytes, and further links to the same bytes link to it. ``write_layer_into`` streams each
needed layer once, in order, and appends the files slimmer writes itself. Where the scan
recorded where each member lies (``SPANS``), runs of members copied as they are go to the new
layer byte for byte (header blocks, data and padding) and only the members written anew are
parsed again; else each member is parsed and copied with its header (mode, owner, names,
mtime, device numbers, PAX records such as ``SCHILY.xattr.*``). The tar goes to the stream the
caller gives (the archive being staged), hashed as it is written; nothing is held in memory.
Imports the model, ``slimmer.layers`` and rewriter modules.
"""

from __future__ import annotations

import array
import dataclasses
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from slimmer.errors import DigestMismatchError, FormatError, OutputError
from slimmer.layers import MergedFS
from slimmer.model import (
    BLOCK,
    CHAR,
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    KIND_CODES,
    SYMLINK,
    Columns,
    Entries,
    Entry,
    HistoryStep,
    Image,
    Layer,
    columns,
)
from slimmer.rewriter.contents import FileSink
from slimmer.rewriter.members import Member, MemberIndex, where
from slimmer.rewriter.plan import Synthetic
from slimmer.tar.codec import Hasher
from slimmer.tar.collect import SPANS
from slimmer.tar.restream import SpanReader, restream, restream_spans
from slimmer.tar.scan import Header, Sink, TarScanner
from slimmer.tar.writer import TarWriter, member_info

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
_KINDS = {tarfile.DIRTYPE: DIR, tarfile.SYMTYPE: SYMLINK, tarfile.LNKTYPE: HARDLINK, tarfile.CHRTYPE: CHAR,
          tarfile.BLKTYPE: BLOCK, tarfile.FIFOTYPE: FIFO}

LINK = "link"  # a hard link to a path written earlier
MATERIALIZE = "materialize"  # a hard link written as a regular file with its source's bytes
RELINK = "relink"  # a hard link to a symlink (GNU tar makes these) written as that symlink
# member types whose header blocks are copied as they are (links are rewritten: their targets may change)
_RAW_TYPES = frozenset({b"0", b"\0", b"5", b"2", b"3", b"4", b"6", b"7"})


@dataclass(frozen=True)
class Action:
    """What to write anew for one hard-link member: a ``LINK`` to ``target``, the symlink it
    names (``RELINK``), or its bytes from the spooled ``source`` member (``MATERIALIZE``).
    Members copied as they are need no record: ``Layout.copies`` lists them."""

    kind: str
    path: str
    target: str = ""
    source: Member | None = None


@dataclass
class Layout:
    """The members the new layer is made of, by layer and entry index: ``copies`` are copied
    as they are, ``actions`` written anew (links, and hard links made into files)."""

    copies: dict[int, set[int]] = field(default_factory=dict)
    actions: dict[int, dict[int, Action]] = field(default_factory=dict)
    spool: dict[int, set[int]] = field(default_factory=dict)
    file_bytes: int = 0  # bytes of regular files copied as they are
    materialized_bytes: int = 0  # bytes of hard links turned into files

    @property
    def layers(self) -> list[int]:
        """The layers that must be streamed, in order."""
        return sorted(set(self.copies) | set(self.actions) | set(self.spool))

    def members(self, layer: int) -> list[int]:
        """The members of ``layer`` the new layer needs (copied, written anew or spooled), in order."""
        return sorted(self.copies.get(layer, set()).union(self.actions.get(layer, ()), self.spool.get(layer, ())))


def layout(image: Image, fs: MergedFS, index: MemberIndex, keep: Iterable[str]) -> Layout:
    """Return how the kept paths of ``fs`` are copied. The final versions are read from the
    columns of ``fs.table()``: no record is made per kept path (there may be 100,000s)."""
    out = Layout()
    by_source: dict[Member, list[tuple[Member, str]]] = {}
    keep = keep if isinstance(keep, (set, frozenset)) else set(keep)
    table = fs.table()
    file_code, link_code = KIND_CODES[FILE], KIND_CODES[HARDLINK]
    copies: dict[int, set[int]] = {}
    file_bytes = 0
    for path, layer, k, kind, size in zip(table.paths, table.layers, table.indexes, table.kinds, table.sizes):
        if path not in keep:
            continue
        if k < 0:  # a version added without its position
            k = index.final_member(layer, path)[1]
        if kind != link_code:
            members = copies.get(layer)
            if members is None:
                members = copies[layer] = set()
            members.add(k)
            if kind == file_code:
                file_bytes += size
            continue
        member = (layer, k)
        source = index.source_of(member)
        source_entry = image.layers[source[0]].entries[source[1]]
        source_path = source_entry.path
        source_final = fs.get(source_path)
        if source_path in keep and source_final is not None and index.final(source_final) == source:
            out.actions.setdefault(layer, {})[k] = Action(LINK, path, target=source_path)
        elif source_entry.kind == SYMLINK:
            out.actions.setdefault(layer, {})[k] = Action(RELINK, path, target=source_entry.link)
        elif source_entry.kind != FILE:
            raise FormatError(f"{where(image, layer)}: hard link {path!r} names {source_path!r}, "
                              f"a {source_entry.kind}, not a file")
        else:
            by_source.setdefault(source, []).append((member, path))
    out.copies, out.file_bytes = copies, file_bytes
    for source, links in by_source.items():
        links.sort()
        (first_member, first_path), rest = links[0], links[1:]
        out.actions.setdefault(first_member[0], {})[first_member[1]] = Action(MATERIALIZE, first_path, source=source)
        out.spool.setdefault(source[0], set()).add(source[1])
        out.materialized_bytes += image.layers[source[0]].entries[source[1]].size
        for member, path in rest:
            out.actions.setdefault(member[0], {})[member[1]] = Action(LINK, path, target=first_path)
    return out


class _HashingWriter:
    """A write-only file wrapper that hashes and counts every byte written through it. Small
    writes (a tar is mostly 512-byte headers) are gathered into blocks of BATCH bytes, each
    written and hashed at once, on a thread with ``threads`` (hashlib releases the GIL)."""

    BATCH = 1 << 20

    def __init__(self, raw: BinaryIO, threads: bool = False):
        self.raw = raw
        self.sha = Hasher()
        if threads:
            self.sha.start()
        self.size = 0
        self._parts: list = []
        self._pending = 0

    def write(self, data) -> int:
        n = len(data)
        if not _immutable(data):
            data = bytes(data)  # kept until written and hashed: the caller may reuse its buffer
        if n >= self.BATCH and not self._parts:
            self._emit(data)
        else:
            self._parts.append(data)
            self._pending += n
            if self._pending >= self.BATCH:
                self.flush()
        self.size += n
        return n

    def flush(self) -> None:
        if self._parts:
            block = b"".join(self._parts)
            self._parts, self._pending = [], 0
            self._emit(block)

    def _emit(self, block: bytes) -> None:
        self.raw.write(block)
        self.sha.update(block)

    def hexdigest(self) -> str:
        self.flush()
        return self.sha.hexdigest()


def _immutable(data) -> bool:
    """Whether ``data`` is bytes, or a view of bytes: what may be queued without a copy."""
    return data.__class__ is bytes or (data.__class__ is memoryview and data.obj.__class__ is bytes)


def _entry(info: tarfile.TarInfo) -> Entry:
    kind = _KINDS.get(info.type, FILE)
    link = info.linkname if kind in (SYMLINK, HARDLINK) else ""
    return Entry(info.name.rstrip("/"), kind, info.size if kind == FILE else 0, info.mode & 0o7777, info.uid,
                 info.gid, link, int(info.mtime))


class _Out:
    """The new layer's tar being written, and the entries it holds so far, as columns (a run
    of members copied as they are adds its rows from the input layer's columns: no record)."""

    def __init__(self, tar: TarWriter):
        self.tar = tar
        self._paths: list[str] = []
        self._kinds = bytearray()
        self._numbers: tuple[list[int], ...] = ([], [], [], [], [])  # sizes, modes, uids, gids, mtimes
        self._links: list[str] = []

    def _append(self, entry: Entry) -> None:
        self._paths.append(entry.path)
        self._kinds.append(KIND_CODES[entry.kind])
        for column, value in zip(self._numbers, (entry.size, entry.mode, entry.uid, entry.gid, entry.mtime)):
            column.append(value)
        self._links.append(entry.link)

    def copied(self, cols: Columns, members: list[int]) -> None:
        """Record the members ``members`` of a layer whose columns are ``cols``, copied as they are."""
        self._paths += [cols.paths[i] for i in members]
        self._kinds += bytes([cols.kinds[i] for i in members])
        for column, source in zip(self._numbers, (cols.sizes, cols.modes, cols.uids, cols.gids, cols.mtimes)):
            column += [source[i] for i in members]
        self._links += [cols.links[i] for i in members]

    def entries(self) -> Entries:
        """The entries written so far (offsets unknown: -1)."""
        sizes, modes, uids, gids, mtimes = (_numbers(column) for column in self._numbers)
        return Entries(Columns(list(self._paths), bytes(self._kinds), sizes, modes, uids, gids, list(self._links),
                               mtimes, array.array("q", [-1]) * len(self._paths)))

    def add(self, info: tarfile.TarInfo) -> None:
        self.tar.add(info)
        self._append(_entry(info))

    def begin(self, info: tarfile.TarInfo, sparse=None) -> TarWriter:
        self.tar.begin(info, sparse)
        self._append(_entry(info))
        return self.tar

    def raw(self, blocks: bytes, entry: Entry, data: int) -> TarWriter | None:
        """Copy a member's header blocks as they are; return the writer for its ``data`` bytes."""
        self.tar.raw(blocks, data)
        self._append(entry)
        return self.tar if data else None


def _numbers(values: list[int]) -> array.array | list[int]:
    """A number column: 64-bit where every value fits (``slimmer.model.Columns``)."""
    try:
        return array.array("q", values)
    except OverflowError:
        return list(values)


class _Tee:
    """A sink that sends a member's data to several sinks."""

    def __init__(self, *sinks):
        self.sinks = [s for s in sinks if s is not None]

    def write(self, data) -> None:
        for s in self.sinks:
            s.write(data)

    def end(self) -> None:
        for s in self.sinks:
            s.end()


def write_layer(image: Image, plan_layout: Layout, synthetic: Iterable[Synthetic], dest: Path,
                history: HistoryStep | None = None) -> Layer:
    """Write the new layer's tar to ``dest`` (which must not exist) and return it as a model
    Layer whose opener reads ``dest``. Each needed layer is read once, verified
    (``slimmer.tar.restream``); spooled hard-link sources go beside ``dest``."""
    try:
        return _write_layer(image, plan_layout, synthetic, dest, history)
    except OSError as err:
        raise OutputError(f"cannot write {dest}: {err.strerror or err}") from err


def _write_layer(image: Image, plan_layout: Layout, synthetic: Iterable[Synthetic], dest: Path,
                 history: HistoryStep | None) -> Layer:
    with open(dest, "xb") as raw:
        layer = write_layer_into(image, plan_layout, synthetic, raw, dest.parent, history)
    return dataclasses.replace(layer, opener=lambda: open(dest, "rb"))


def write_layer_into(image: Image, plan_layout: Layout, synthetic: Iterable[Synthetic], stream,
                     scratch: Path, history: HistoryStep | None = None, jobs: int = 1) -> Layer:
    """Write the new layer's tar to ``stream`` (anything with ``write``: a file, or the
    archive writer's in-place member) and return it as a model Layer without an opener, once
    every layer read is verified to its end. Spooled hard-link sources go to ``scratch``. With
    ``jobs`` above 1, the input layers and the output are hashed on threads beside the
    copying, and up to ``jobs`` layers are read ahead, each on a thread of its own
    (``restream.SpanReader``): what the new layer does not take of them is read and hashed
    while an earlier layer is still being copied."""
    threads = jobs > 1
    writer = _HashingWriter(stream, threads)
    out = _Out(TarWriter(writer))
    spooled: dict[Member, Path] = {}
    try:
        with _Ahead(image, plan_layout, jobs if threads else 0) as ahead:
            for layer in plan_layout.layers:
                _copy_layer(image, layer, plan_layout, out, spooled, scratch, threads, ahead)
        for item in sorted(synthetic, key=lambda s: s.path):
            _add_synthetic(out, item)
        out.tar.close()
        digest = "sha256:" + writer.hexdigest()
    finally:
        writer.sha.close()
        for path in spooled.values():
            path.unlink(missing_ok=True)
    return Layer(diff_id=digest, digest=digest, stored_size=writer.size, entries=out.entries(),
                 uncompressed_size=writer.size, media_type=LAYER_TYPE, compression="none", history=history)


Run = tuple[bool, int, int, list[int]]  # copied as it is?, start and end in the layer's tar, its members


class _Ahead:
    """The layers to copy, with the runs of each (``_runs``) and, for up to ``depth`` layers
    from the one being copied on, a ``SpanReader`` reading it ahead (none with depth 0)."""

    def __init__(self, image: Image, plan_layout: Layout, depth: int):
        self.image, self.plan_layout, self.depth = image, plan_layout, depth
        self._runs: dict[int, list[Run] | None] = {}
        self._readers: dict[int, SpanReader] = {}

    def runs(self, layer: int) -> list[Run] | None:
        """The runs of ``layer``, None where the scan did not record where its members lie."""
        if layer not in self._runs:
            spans = _spans_of(self.image.layers[layer])
            self._runs[layer] = None if spans is None else _runs(self.image, layer, spans, self.plan_layout)
        return self._runs[layer]

    def reader(self, layer: int) -> SpanReader | None:
        """The reader of ``layer`` (the one now copied), the next ones started up to the depth."""
        if not self.depth:
            return None
        order = self.plan_layout.layers
        for later in order[order.index(layer):]:
            if len(self._readers) >= self.depth:
                break
            runs = self.runs(later)
            if runs is not None and later not in self._readers:
                # the reader hashes on its own thread: the readers side by side are the parallelism
                self._readers[later] = SpanReader(self.image.layers[later], where(self.image, later),
                                                  [(start, end) for _fast, start, end, _members in runs]).start()
        return self._readers.get(layer)

    def done(self, layer: int) -> None:
        reader = self._readers.pop(layer, None)
        if reader is not None:
            reader.close()

    def __enter__(self) -> _Ahead:
        return self

    def __exit__(self, *exc) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


def _copy_layer(image: Image, layer: int, plan_layout: Layout, out: _Out, spooled: dict[Member, Path],
                scratch: Path, threads: bool, ahead: _Ahead) -> None:
    copies = plan_layout.copies.get(layer, set())
    actions = plan_layout.actions.get(layer, {})
    spool = plan_layout.spool.get(layer, set())
    seen: set[int] = set()

    def visit(index: int, entry: Entry, header: Header | None):
        action = actions.get(index)
        spool_sink = None
        if index in spool:
            dest = scratch / f".slim-link-{layer}-{index}"
            spooled[(layer, index)] = dest
            spool_sink = FileSink(dest)
        copy_sink = None
        if action is not None:
            _write(out, action, entry, header, spooled)
        elif index in copies:
            copy_sink = _copy(out, entry, header)
        elif spool_sink is None:
            return None
        seen.add(index)
        if spool_sink is None:
            return copy_sink
        return _Tee(spool_sink, copy_sink)

    lay = image.layers[layer]
    place = where(image, layer)
    runs = ahead.runs(layer)
    reader = ahead.reader(layer)
    if runs is None:
        restream(lay, visit, place, threads=threads)
    else:
        cols = columns(lay)
        sinks: list[Sink] = [_Verbatim(out, cols, members, seen) if fast else
                             _Reparse(place, lay.entries, members, visit) for fast, _start, _end, members in runs]
        if reader is not None:
            reader.deliver(sinks)
            ahead.done(layer)
        else:
            restream_spans(lay, place, [(start, end, sink) for (_f, start, end, _m), sink in zip(runs, sinks)],
                           threads)
    pending = set(plan_layout.members(layer)) - seen
    if pending:
        raise FormatError(f"{place}: the tar stream ended before member {min(pending)}")


def _spans_of(layer: Layer) -> array.array | None:
    """Return where each member of ``layer`` lies in its tar, if the scan recorded it."""
    raw = (layer.facts or {}).get(SPANS, {}).get("")
    if not raw:
        return None
    spans = array.array("q")
    spans.frombytes(raw)
    return spans if len(spans) == 2 * len(layer.entries) else None


def _runs(image: Image, layer: int, spans: array.array, plan_layout: Layout) -> list[Run]:
    """Return the byte ranges of the layer's tar the new layer takes: a run of members copied
    as they are goes to the output as it is (header blocks, data, padding); members written
    anew (links, spooled sources, sparse files) are parsed again from their own bytes, one run
    at a time."""
    cols = columns(image.layers[layer])
    kinds, offsets = cols.kinds, cols.offsets
    copies = plan_layout.copies.get(layer, set())
    spool = plan_layout.spool.get(layer, set())
    link_code = KIND_CODES[HARDLINK]
    runs: list[list] = []
    for i in plan_layout.members(layer):
        fast = i in copies and i not in spool and kinds[i] != link_code and offsets[i] >= 0
        start, end = spans[2 * i], spans[2 * i + 1]
        if runs and runs[-1][0] == fast and runs[-1][2] == start:
            runs[-1][2] = end
            runs[-1][3].append(i)
        else:
            runs.append([fast, start, end, [i]])
    return [(fast, start, end, members) for fast, start, end, members in runs]


class _Verbatim:
    """Sink of a run of members copied as they are: their bytes go to the output unchanged."""

    def __init__(self, out: _Out, cols: Columns, members: list[int], seen: set[int]):
        self.out, self.cols, self.members, self.seen = out, cols, members, seen
        self.started = False

    def write(self, data) -> None:
        if not self.started:
            self.started = True
            self.out.copied(self.cols, self.members)
            self.seen.update(self.members)
        self.out.tar.passthrough(data)

    def end(self) -> None:
        pass


class _Reparse:
    """Sink of a run of members written anew: their bytes are parsed again (one layer-tar
    parser) and each member handed to ``visit`` under its index in the layer."""

    def __init__(self, place: str, entries, members: list[int], visit):
        self.place, self.entries, self.members, self.visit = place, entries, members, visit
        self.scanner = TarScanner(place, None, self._visit, detail=True)

    def _visit(self, k: int, entry: Entry, header: Header | None):
        index = self.members[k] if k < len(self.members) else -1
        expected = self.entries[index] if index >= 0 else None
        if expected is None or entry[:8] != expected[:8]:
            raise DigestMismatchError(f"{self.place}: the layer changed since the image was opened: member "
                                      f"{index} is now {entry.path!r}")
        return self.visit(index, expected, header)

    def write(self, data) -> None:
        self.scanner.feed(data)

    def end(self) -> None:
        if len(self.scanner.entries) != len(self.members) or not self.scanner.complete_members():
            raise DigestMismatchError(f"{self.place}: the layer changed since the image was opened: members "
                                      f"{self.members[0]}..{self.members[-1]} are not where the scan found them")


def _copy(out: _Out, entry: Entry, header: Header | None):
    """Copy a member as it is; return the sink for its data, if it has any. Its header blocks
    stay unchanged when the scanner handed them over (a plain member: no sparse map, its name
    already a model path)."""
    if header is not None and header.raw is not None and header.typeflag in _RAW_TYPES:
        return out.raw(header.raw, entry, header.stored if entry.kind == FILE else 0)
    info = member_info(entry, header)
    if info.type == tarfile.REGTYPE:
        sparse = header.sparse if header is not None else None
        if sparse is None and entry.offset < 0:
            raise FormatError(f"{entry.path!r}: a sparse file whose map could not be read")
        return out.begin(info, sparse)
    out.add(info)
    return None


def _write(out: _Out, action: Action, entry: Entry, header: Header | None, spooled: dict[Member, Path]) -> None:
    """Write the member ``action`` says: a link, or a hard link's bytes as a file."""
    info = member_info(entry, header, action.path)
    if action.kind == LINK:
        info.type, info.linkname, info.size = tarfile.LNKTYPE, action.target, 0
        out.add(info)
    elif action.kind == RELINK:
        info.type, info.linkname, info.size = tarfile.SYMTYPE, action.target, 0
        out.add(info)
    else:
        assert action.kind == MATERIALIZE and action.source is not None  # it always names its source
        source = spooled[action.source]
        info.type, info.linkname, info.size = tarfile.REGTYPE, "", source.stat().st_size
        with open(source, "rb") as f:
            out.begin(info).copy_from(f)


def _add_synthetic(out: _Out, item: Synthetic) -> None:
    info = tarfile.TarInfo(item.path)
    info.mode, info.uid, info.gid, info.mtime, info.uname, info.gname = (
        item.mode, item.uid, item.gid, item.mtime, "", "")
    if item.kind == DIR:
        info.type = tarfile.DIRTYPE
        out.add(info)
    else:
        info.size = len(item.data)
        tar = out.begin(info)
        if item.data:
            tar.write(item.data)
            tar.end()
