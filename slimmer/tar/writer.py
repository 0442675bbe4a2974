"""The one layer-tar writer: members written as their data streams in (push, never a member
held in memory), in PAX format, byte-reproducible for equal input.

``member_info`` turns a member as the re-stream hands it over (the model Entry and the tar
Header) into the ``tarfile.TarInfo`` an output member starts from, so the rewriter and the
exporter copy mode, owner, names, mtime, device numbers and extended attributes alike. A
sparse file stays sparse: it is written as a PAX 1.0 sparse member (GNU tar's format: the map
in front of the data), never expanded. Imports the model and ``slimmer.tar.scan``.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import tarfile
from typing import BinaryIO, Protocol

from slimmer.errors import OutputError
from slimmer.model import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from slimmer.tar.scan import BLOCKSIZE, Header

_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE, HARDLINK: tarfile.LNKTYPE,
          CHAR: tarfile.CHRTYPE, BLOCK: tarfile.BLKTYPE, FIFO: tarfile.FIFOTYPE}
# PAX records that tarfile derives from the header fields it writes: copying them would let a
# stale value (the old path, say) override the new header; sparse records are rewritten.
_DERIVED = frozenset({"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "hdrcharset"})
XATTR_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
CAPABILITY_KEYS = ("SCHILY.xattr.security.capability", "LIBARCHIVE.xattr.security.capability")
RECORDSIZE = 20 * BLOCKSIZE
MAX_DEVICE = 8 ** 7  # a ustar/PAX device field holds seven octal digits


def member_info(entry: Entry, header: Header | None, path: str | None = None) -> tarfile.TarInfo:
    """Return the TarInfo of an output member copying ``entry`` (and its ``header``) at
    ``path`` (default: its own). Sizes are the file's real size; sparse maps are not set here."""
    info = tarfile.TarInfo(path if path is not None else entry.path)
    info.type = _TYPES[entry.kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.mtime = entry.mtime
    info.linkname = entry.link if entry.kind in (SYMLINK, HARDLINK) else ""
    info.size = entry.size if entry.kind == FILE else 0
    if header is not None:
        info.uname, info.gname = header.uname, header.gname
        if entry.kind in (CHAR, BLOCK):
            if not (0 <= header.devmajor < MAX_DEVICE and 0 <= header.devminor < MAX_DEVICE):
                raise OutputError(f"cannot write device {info.name!r}: device number {header.devmajor},"
                                  f"{header.devminor} does not fit a tar header (nor a Linux dev_t)")
            info.devmajor, info.devminor = header.devmajor, header.devminor
        info.pax_headers = {k: v for k, v in header.pax.items()
                            if k not in _DERIVED and not k.startswith("GNU.sparse.")}
        if "mtime" in header.pax:  # a fractional mtime: tarfile writes it back as a PAX record
            with contextlib.suppress(ValueError):
                info.mtime = float(header.pax["mtime"])
    else:
        info.uname = info.gname = ""
    return info


class Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


class TarWriter:
    """Writes a tar stream to ``out`` member by member: ``add`` for a member without data,
    ``begin``/``write``/``end`` for one whose data arrives in pieces, ``close`` for the end
    blocks. ``size`` counts the bytes written."""

    def __init__(self, out: Writable):
        self.out = out
        self.size = 0
        self._left = 0
        self._pad = 0
        self._closed = False

    def _emit(self, data) -> None:
        self.out.write(data)
        self.size += len(data)

    def _header(self, info: tarfile.TarInfo) -> None:
        if self._left:
            raise ValueError("the previous member's data is not complete")
        self._emit(fast_header(info) or info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def add(self, info: tarfile.TarInfo) -> None:
        """Write a member that has no data (a directory, link, device; or an empty file)."""
        data_size = info.size if info.type in tarfile.REGULAR_TYPES else 0
        if data_size:
            raise ValueError(f"{info.name!r} has {data_size} bytes of data: use begin()")
        self._header(info)

    def begin(self, info: tarfile.TarInfo, sparse: tuple[tuple[int, int], ...] | None = None) -> None:
        """Write the header of a member whose ``info.size`` data bytes follow through ``write``.
        With ``sparse`` (the map of a file of ``info.size`` bytes), only the mapped regions
        follow, and the member is written as a PAX 1.0 sparse file."""
        if sparse is None:
            self._header(info)
            self._left, self._pad = info.size, -info.size % BLOCKSIZE
            if not info.size:
                self.end()
            return
        stored = sum(n for _off, n in sparse)
        lines = [str(len(sparse))] + [f"{n}" for pair in sparse for n in pair]
        prefix = ("\n".join(lines) + "\n").encode()
        prefix += bytes(-len(prefix) % BLOCKSIZE)
        real = info.size
        sparse_info = tarfile.TarInfo(_sparse_name(info.name))
        for attr in ("type", "mode", "uid", "gid", "uname", "gname", "mtime"):
            setattr(sparse_info, attr, getattr(info, attr))
        sparse_info.size = len(prefix) + stored
        sparse_info.pax_headers = {**info.pax_headers, "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                   "GNU.sparse.name": info.name, "GNU.sparse.realsize": str(real)}
        self._header(sparse_info)
        self._emit(prefix)
        self._left, self._pad = stored, -(len(prefix) + stored) % BLOCKSIZE
        if not stored:
            self.end()

    def passthrough(self, data) -> None:
        """Write whole members as they are (header blocks, data and padding, copied from a
        layer tar); no member may be open."""
        if self._left or self._pad:
            raise ValueError("the previous member's data is not complete")
        self._emit(data)

    def raw(self, blocks: bytes, data: int) -> None:
        """Write a member's header blocks as they are (copied from a layer the scanner read);
        ``data`` bytes of data follow through ``write``."""
        if self._left:
            raise ValueError("the previous member's data is not complete")
        if len(blocks) % BLOCKSIZE:
            raise ValueError("header blocks must be whole blocks")
        self._emit(blocks)
        self._left, self._pad = data, -data % BLOCKSIZE
        if not data:
            self.end()

    def write(self, data) -> None:
        """Write the next piece of the current member's data."""
        if len(data) > self._left:
            raise ValueError("more data than the member's header says")
        self._emit(data)
        self._left -= len(data)

    def end(self) -> None:
        """Finish the current member (its data must be complete)."""
        if self._left:
            raise ValueError(f"{self._left} bytes of the member's data are missing")
        if self._pad:
            self._emit(bytes(self._pad))
        self._pad = 0

    def copy_from(self, src: BinaryIO, chunk: int = 1 << 20) -> None:
        """Write the current member's data from ``src`` to its end, then end the member."""
        while self._left:
            data = src.read(min(chunk, self._left))
            if not data:
                raise ValueError("the source ended before the member's data did")
            self.write(data)
        self.end()

    def close(self) -> None:
        """Write the end-of-archive blocks, padded to a full record as tar does."""
        if self._closed:
            return
        self._closed = True
        self._emit(bytes(2 * BLOCKSIZE))
        if self.size % RECORDSIZE:
            self._emit(bytes(RECORDSIZE - self.size % RECORDSIZE))


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_ID_LIMIT, _SIZE_LIMIT = 8 ** 7, 8 ** 11


def fast_header(info: tarfile.TarInfo) -> bytes | None:
    """Return the header ``info.tobuf(PAX_FORMAT)`` gives a plain member (ASCII names that fit
    the ustar fields, numbers in range, no PAX records), built directly: tarfile's own path
    costs about 60 us a member, the bulk of copying a layer of small files. None for any other
    member (the caller uses tarfile)."""
    if info.pax_headers:
        return None
    name, link, uname, gname = info.name, info.linkname, info.uname, info.gname
    if not (name.isascii() and link.isascii() and uname.isascii() and gname.isascii()):
        return None
    if info.type == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"  # as TarInfo.tobuf writes directories
    if len(name) > 100 or len(link) > 100 or len(uname) > 32 or len(gname) > 32:
        return None
    mtime, uid, gid, size = info.mtime, info.uid, info.gid, info.size
    if type(mtime) is not int or not (0 <= mtime < _SIZE_LIMIT and 0 <= uid < _ID_LIMIT and 0 <= gid < _ID_LIMIT
                                      and 0 <= size < _SIZE_LIMIT):
        return None
    dev = info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE)
    major, minor = (info.devmajor, info.devminor) if dev else (0, 0)
    if not (0 <= major < _ID_LIMIT and 0 <= minor < _ID_LIMIT):
        return None
    block = bytearray(_USTAR.pack(
        name.encode(), b"%07o\0" % (info.mode & 0o7777), b"%07o\0" % uid, b"%07o\0" % gid, b"%011o\0" % size,
        b"%011o\0" % mtime, b"        ", info.type, link.encode(), tarfile.POSIX_MAGIC, uname.encode(),
        gname.encode(), b"%07o\0" % major if dev else b"", b"%07o\0" % minor if dev else b"", b""))
    block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


def _sparse_name(name: str) -> str:
    """The name in the header of a PAX 1.0 sparse file, GNU tar's ``DIR/GNUSparseFile.0/NAME``;
    the real name is the PAX record ``GNU.sparse.name``. It is kept plain ASCII and short, so
    that no ``path`` record is needed beside it: readers apply the two in the order written,
    and a ``path`` after ``GNU.sparse.name`` would rename the file."""
    parent, _, base = name.rpartition("/")
    fake = f"{parent}/GNUSparseFile.0/{base}" if parent else f"GNUSparseFile.0/{base}"
    if len(fake) <= 100 and fake.isascii():
        return fake
    return "GNUSparseFile.0/" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32]
