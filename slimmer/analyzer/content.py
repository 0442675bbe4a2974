"""The only place the analyzer reads file *content*: one extra pass per layer, only when asked.

The reader records entries without their bytes. Some questions need bytes: libmagic on files
whose path leaves their kind open, package databases, Go build info, duplicate detection.
``read_content`` re-reads each layer that has a request once, through ``layer.opener()``,
picks only the requested members, reads each with a bound, and stops as soon as it has them
all. A layer that cannot be re-read (a piped archive) is listed in ``unreadable`` and the
analysis goes on with less detail. Imports only the model and errors.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import posixpath
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from collections import defaultdict
from dataclasses import dataclass, field
from typing import BinaryIO, Mapping

from slimmer.errors import FormatError, SlimmerError
from slimmer.model import Image

log = logging.getLogger(__name__)

HEAD_BYTES = 4096  # enough for libmagic on ELF, scripts and archives, and ELF program headers
MAX_DB_BYTES = 32 << 20  # a package database larger than this is not read
GO_SEARCH_BYTES = 1 << 20  # how far into the writable segment the Go build info may start
GO_MAX_OFFSET = 512 << 20  # do not stream past this to find Go build info
CHUNK = 1 << 20
SAMPLE_BYTES = 64 << 10  # HASH: members whose size and first SAMPLE_BYTES differ are not equal

GO_MAGIC = b"\xff Go buildinf:"
_GO_MODINFO_SENTINEL = 16


class Need(enum.IntFlag):
    """What to read of one member."""

    HEAD = 1  # the first HEAD_BYTES, for libmagic
    FULL = 2  # the whole member (a package database), up to MAX_DB_BYTES
    HASH = 4  # sha256 of the whole member, where another member may be equal (see read_content)
    GO = 8  # Go build info, if the member is a Go ELF binary


@dataclass(frozen=True)
class GoBuildInfo:
    """What a Go binary says about how it was built (``go version -m``)."""

    go_version: str
    path: str  # the main package's import path ("path" line)
    module: str  # the main module ("mod" line)
    module_version: str
    deps: tuple[tuple[str, str], ...] = ()  # (module, version)


@dataclass
class Content:
    """What the content pass found, keyed by (layer index, path)."""

    magic: dict[tuple[int, str], str] = field(default_factory=dict)
    data: dict[tuple[int, str], bytes] = field(default_factory=dict)
    hashes: dict[tuple[int, str], str] = field(default_factory=dict)
    go: dict[tuple[int, str], GoBuildInfo] = field(default_factory=dict)
    too_large: list[tuple[int, str]] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)  # layer index -> why
    samples: dict[tuple[int, str], tuple[int, bytes]] = field(default_factory=dict)  # (size, head digest)
    deferred: set[tuple[int, str]] = field(default_factory=set)  # sampled, full hash not yet read
    layers_read: int = 0


def _magic_describer():
    try:
        import magic
    except ImportError:  # libmagic missing: categories fall back to path rules
        return None
    m = magic.Magic()
    return m.from_buffer


def _normalize(name: str) -> str:
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def read_content(image: Image, requests: Mapping[int, Mapping[str, Need]]) -> Content:
    """Return what ``requests`` ask of the layers of ``image`` ({layer index: {path: Need}}).

    Each layer with a request is read once; a layer whose content cannot be re-read is listed
    in ``Content.unreadable`` instead of failing the analysis. Layers are read by two threads:
    hashing, decompression and libmagic release the GIL, so one layer's hashing overlaps
    another's libmagic calls (each thread has its own libmagic handle; it is not thread-safe).
    """
    out = Content()
    wants_magic = any(need & Need.HEAD for wanted in requests.values() for need in wanted.values())
    local = threading.local()

    def describer():
        if not wants_magic:
            return None
        if not hasattr(local, "describe"):
            local.describe = _magic_describer()
        return local.describe

    def read_one(index: int, wanted: Mapping[str, Need], defer: bool) -> bool:
        wanted = dict(wanted)
        layer = image.layers[index]
        try:
            stream = layer.opener()
        except SlimmerError as err:
            out.unreadable[index] = str(err)
            return False
        try:
            where = f"layer {index} ({layer.diff_id[:19]})"
            if not _read_by_offset(stream, layer.entries, index, wanted, out, describer(), defer):
                _read_layer(stream, index, wanted, out, describer(), where)
        finally:
            stream.close()
        return True

    done = _each_layer(image, read_one, {i: w for i, w in requests.items() if w}, defer=True)
    out.layers_read = len({i for i, ok in done if ok})
    # Second pass, by seeking: the full hash of sampled members that may have an equal.
    again: dict[int, dict[str, Need]] = defaultdict(dict)
    for key in _maybe_equal(out.samples, out.deferred):
        again[key[0]][key[1]] = Need.HASH
    _each_layer(image, read_one, again, defer=False)
    out.deferred.clear()
    out.too_large.sort()
    return out


WORKERS = 2
SHARD_MIN = 64  # an uncompressed layer with this many wanted members is read by every worker


def _each_layer(image: Image, read_one, requests: Mapping[int, Mapping[str, Need]],
                defer: bool) -> list[tuple[int, bool]]:
    """Run ``read_one`` over the layers of ``requests`` on the worker threads; an uncompressed
    layer with many wanted members is split into one share per worker (each seeks its own)."""
    tasks = []
    for index in sorted(requests):
        wanted = sorted(requests[index].items())
        shards = WORKERS if image.layers[index].compression == "none" and len(wanted) >= SHARD_MIN else 1
        tasks += [(index, dict(wanted[k::shards])) for k in range(shards)]
    if len(tasks) > 1 and (os.cpu_count() or 1) > 1:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            return list(pool.map(lambda t: (t[0], read_one(t[0], t[1], defer)), tasks))
    return [(index, read_one(index, wanted, defer)) for index, wanted in tasks]


def _maybe_equal(samples: Mapping[tuple[int, str], tuple[int, bytes]], deferred: set) -> list[tuple[int, str]]:
    """Return the deferred members whose size and sampled head equal another member's."""
    groups: dict[tuple[int, bytes], list] = defaultdict(list)
    for key, sample in samples.items():
        groups[sample].append(key)
    return sorted(k for keys in groups.values() if len(keys) > 1 for k in keys if k in deferred)


def _read_by_offset(stream: BinaryIO, entries, index: int, wanted: dict[str, Need], out: Content,
                    describe, defer: bool = False) -> bool:
    """Read the wanted members by seeking to their data (an uncompressed layer stored in a file
    or directory); return False, having read nothing, where the stream or an offset is missing.

    With ``defer``, a HASH member is only sampled (its size and first bytes): seeking back for
    the few that may have an equal is cheaper than hashing every large file. A stream read
    through (compressed) hashes in the first pass, where the bytes go by anyway."""
    if not stream.seekable():
        return False
    found = {e.path: e for e in entries if e.path in wanted}  # a later duplicate member wins
    if len(found) != len(wanted) or any(e.offset < 0 for e in found.values()):
        return False
    for path in sorted(wanted, key=lambda p: found[p].offset):
        entry = found[path]
        stream.seek(entry.offset)
        _read_member(_Body(stream, entry.size), entry.size, (index, path), wanted[path], out, describe, defer)
    return True


def _read_layer(stream: BinaryIO, index: int, wanted: dict[str, Need], out: Content, describe, where: str) -> None:
    for path, size, body in _members(stream, where):
        need = wanted.pop(path, None)
        if need is None:
            continue
        _read_member(body, size, (index, path), need, out, describe)
        if not wanted:
            return


class _Body:
    """The data of one tar member: reads stop at its end; ``skip`` drops what is left."""

    def __init__(self, stream: BinaryIO, size: int):
        self._stream = stream
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self._stream.read(n) if n else b""
        self.left -= len(data)
        return data

    def skip(self, where: str) -> None:
        while self.left > 0:
            chunk = self._stream.read(min(CHUNK, self.left))
            if not chunk:
                raise FormatError(f"{where}: the layer ends inside a member")
            self.left -= len(chunk)


_DATA_TYPES = {b"0", b"\0", b"7", b"", b"S"}  # members whose size field counts stored data


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text else 0


def _members(stream: BinaryIO, where: str):
    """Yield (path, size, body) for every regular file of the uncompressed tar ``stream``
    (ustar, GNU long names, PAX paths and sizes), skipping all other data without keeping it.
    The tar headers were checked when the layer was first read; here a short read just ends."""
    long_name = pax_path = pax_size = None
    while True:
        header = _read_exactly(stream, 512)
        if len(header) < 512 or header.count(0) == 512:
            return
        try:
            size = _number(header[124:136])
        except ValueError as err:
            raise FormatError(f"{where}: bad size in a tar header") from err
        kind = header[156:157]
        if kind in (b"x", b"g", b"L", b"K"):
            data = _read_exactly(stream, size)
            _read_exactly(stream, -size % 512)
            if kind == b"L":
                long_name = data.split(b"\0", 1)[0]
            elif kind == b"x":
                records = _pax(data)
                pax_path = records.get(b"path", pax_path)
                if b"size" in records:
                    pax_size = int(records[b"size"])
            continue
        name = header[:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:263] == b"ustar\0" else b""
        raw = pax_path or long_name or (prefix + b"/" + name if prefix else name)
        if pax_size is not None:
            size = pax_size
        long_name = pax_path = pax_size = None
        if kind not in _DATA_TYPES:
            size = 0  # links, directories and devices carry no data whatever the size field says
        body = _Body(stream, size)
        if kind in (b"0", b"\0", b"7", b""):
            yield _normalize(raw.decode("utf-8", "surrogateescape")), size, body
        body.skip(where)
        _read_exactly(stream, -size % 512)


def _pax(data: bytes) -> dict[bytes, bytes]:
    out = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1:pos + length - 1]
        key, _, value = record.partition(b"=")
        out[key] = value
        pos += length
    return out


def _read_member(f: BinaryIO, size: int, key: tuple[int, str], need: Need, out: Content, describe,
                 defer: bool = False) -> None:
    if need & Need.FULL:
        if size > MAX_DB_BYTES:
            out.too_large.append(key)
        else:
            data = _read_exactly(f, size)
            out.data[key] = data
            if need & Need.HASH:
                out.samples[key] = (size, hashlib.sha256(data[:SAMPLE_BYTES]).digest())
                out.hashes[key] = hashlib.sha256(data).hexdigest()
            if need & Need.HEAD and describe:
                out.magic[key] = describe(data[:HEAD_BYTES])
            return
    want = 0
    if need & (Need.HEAD | Need.GO):
        want = HEAD_BYTES
    if need & Need.HASH:
        want = SAMPLE_BYTES
    head = _read_exactly(f, min(size, want))
    if need & Need.HEAD and describe and head:
        out.magic[key] = describe(head[:HEAD_BYTES])
    digest = None
    if need & Need.HASH:
        out.samples[key] = (size, hashlib.sha256(head).digest())
        if defer and not need & Need.GO and size > len(head):
            out.deferred.add(key)
        else:
            digest = hashlib.sha256(head)
    pos = len(head)
    if need & Need.GO:
        found, pos = _go_build_info(f, head, pos, size, digest)
        if found is not None:
            out.go[key] = found
    if digest is not None:
        while pos < size:
            chunk = f.read(min(CHUNK, size - pos))
            if not chunk:
                break
            digest.update(chunk)
            pos += len(chunk)
        out.hashes[key] = digest.hexdigest()


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    parts = []
    while n > 0:
        chunk = f.read(min(n, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


# ---- Go build info --------------------------------------------------------------------------
# Go's debug/buildinfo: the linker writes a 32-byte header starting with "\xff Go buildinf:"
# (then pointer size and flags) at a 16-byte boundary at the start of the writable data
# (the .go.buildinfo section). With flag 2 (Go 1.18+) the version and module info follow
# inline as varint-prefixed strings; the module info is wrapped in 16-byte sentinels.


def _elf_layout(head: bytes) -> tuple[bool, int] | None:
    """Return (has a Go build-id note, file offset of the first writable PT_LOAD), or None if
    ``head`` is not an ELF header whose program headers fit in it."""
    if len(head) < 64 or head[:4] != b"\x7fELF":
        return None
    is64 = head[4] == 2
    end = "<" if head[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(end + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
    else:
        phoff, = struct.unpack_from(end + "I", head, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
    if phoff + phentsize * phnum > len(head) or phentsize == 0:
        return None
    go_note = False
    data_off = None
    for k in range(phnum):
        base = phoff + k * phentsize
        if is64:
            p_type, p_flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(end + "IIQQQQ", head, base)
        else:
            p_type, p_offset, _va, _pa, p_filesz, _memsz, p_flags = struct.unpack_from(end + "IIIIIII", head, base)
        if p_type == 1 and p_flags & 2 and data_off is None:
            data_off = p_offset
        elif p_type == 4 and p_offset + p_filesz <= len(head):
            go_note = go_note or _has_go_note(head[p_offset:p_offset + p_filesz], end)
    if data_off is None:
        return None
    return go_note, data_off


def _has_go_note(notes: bytes, end: str) -> bool:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, _type = struct.unpack_from(end + "III", notes, pos)
        name = notes[pos + 12:pos + 12 + namesz].rstrip(b"\0")
        if name == b"Go":
            return True
        pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


def _go_build_info(f: BinaryIO, head: bytes, pos: int, size: int, digest) -> tuple[GoBuildInfo | None, int]:
    layout = _elf_layout(head)
    if layout is None or not layout[0] or layout[1] > min(size, GO_MAX_OFFSET):
        return None, pos
    start = layout[1]
    if start < pos:
        window = head[start:]
    else:
        while pos < start:  # skip to the data segment, hashing on the way if asked
            chunk = f.read(min(CHUNK, start - pos))
            if not chunk:
                return None, pos
            if digest is not None:
                digest.update(chunk)
            pos += len(chunk)
        window = b""
    want = min(GO_SEARCH_BYTES, size - start)
    more = _read_exactly(f, max(0, want - len(window)))
    if digest is not None:
        digest.update(more)
    pos += len(more)
    window += more
    at = 0
    while True:
        at = window.find(GO_MAGIC, at)
        if at < 0:
            return None, pos
        if (start + at) % 16 == 0:
            break
        at += 1
    return parse_go_build_info(window[at:]), pos


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def parse_go_build_info(blob: bytes) -> GoBuildInfo:
    """Return the build info in ``blob`` (starting at the ``\\xff Go buildinf:`` header). Old
    (pre-1.18) binaries keep it behind pointers: their info is reported as unknown."""
    flags = blob[15] if len(blob) > 15 else 0
    if not flags & 2:
        return GoBuildInfo("", "", "", "")
    try:
        n, pos = _varint(blob, 32)
        version = blob[pos:pos + n].decode("utf-8", "replace")
        pos += n
        n, pos = _varint(blob, pos)
        modinfo = blob[pos:pos + n].decode("utf-8", "replace")
    except ValueError:
        return GoBuildInfo("", "", "", "")
    if len(modinfo) >= 2 * _GO_MODINFO_SENTINEL + 1 and modinfo[-_GO_MODINFO_SENTINEL - 1] == "\n":
        modinfo = modinfo[_GO_MODINFO_SENTINEL:-_GO_MODINFO_SENTINEL]
    return _parse_modinfo(version, modinfo)


def _parse_modinfo(version: str, modinfo: str) -> GoBuildInfo:
    path = module = module_version = ""
    deps = []
    for line in modinfo.splitlines():
        parts = line.split("\t")
        if parts[0] == "path" and len(parts) > 1:
            path = parts[1]
        elif parts[0] == "mod" and len(parts) > 1:
            module = parts[1]
            module_version = parts[2] if len(parts) > 2 else ""
        elif parts[0] == "dep" and len(parts) > 2:
            deps.append((parts[1], parts[2]))
    return GoBuildInfo(version, path, module, module_version, tuple(deps))
