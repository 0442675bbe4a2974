"""The members of an outer archive (a ``docker save`` or OCI archive tar), read front to back:
from a stream (standard input) once, or from a file, seeking over member data.

``tarfile`` in stream mode copies every byte through its own buffers several times (about a
second per 2 GB here); this walks the headers itself, parses each with ``TarInfo.frombuf``
(checksums, number formats), follows GNU long names and PAX paths and sizes, and hands out
each member's data as a bounded reader over the stream, so layer bytes are copied once. The
file store and the pipe store both walk an archive with it: one reading of outer archives.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from slimmer.errors import FormatError, TruncatedError
from slimmer.model import ReadsInto
from slimmer.tar.scan import pax_records

BLOCK = 512
MAX_META = 1 << 20
# types that carry no data whatever the size field says (as tarfile and Go's archive/tar read them)
_HEADER_ONLY = (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                tarfile.FIFOTYPE)


class Member(NamedTuple):
    name: str
    type: bytes  # the tar type flag: tarfile.REGTYPE, SYMTYPE, LNKTYPE, DIRTYPE, ...
    size: int
    linkname: str
    data: MemberReader
    offset: int = 0  # where the member's data starts in the archive

    def isreg(self) -> bool:
        return self.type in tarfile.REGULAR_TYPES

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE

    def islnk(self) -> bool:
        return self.type == tarfile.LNKTYPE


class MemberReader(ReadsInto):
    """Reads at most ``size`` bytes of the stream: one member's data. With ``owned`` it is the
    stream's only reader and closes it with itself (a layer re-read from a compressed archive)."""

    def __init__(self, stream: BinaryIO, size: int, where: str, end: int | None = None, owned: bool = False):
        self._stream = stream
        self.left = size
        self._where = where
        self._end = end  # the archive's size when it is a file: data is skipped by seeking
        self._owned = owned

    def read(self, n: int = -1) -> bytes:
        """Return up to ``n`` bytes (fewer at a chunk boundary); all that is left if ``n`` < 0."""
        if n is None or n < 0:
            data = _exactly(self._stream, self.left, self._where)
            self.left = 0
            return data
        n = min(n, self.left)
        if n <= 0:
            return b""
        data = self._stream.read(n)
        if not data:
            raise TruncatedError(f"{self._where}: archive is truncated")
        self.left -= len(data)
        return data

    def close(self) -> None:
        if self._owned:
            self._stream.close()

    def skip(self) -> None:
        if self._end is not None and self.left:
            here = self._stream.tell()
            if here + self.left > self._end:
                raise TruncatedError(f"{self._where}: archive is truncated (a member's data runs past its end)")
            self._stream.seek(self.left, 1)
            self.left = 0
        while self.left:
            self.read(1 << 20)


def _exactly(stream: BinaryIO, n: int, where: str) -> bytes:
    parts, left = [], n
    while left:
        data = stream.read(left)
        if not data:
            raise TruncatedError(f"{where}: archive is truncated")
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def iter_members(stream: BinaryIO, where: str, size: int | None = None) -> Iterator[Member]:
    """Yield the members of the tar ``stream`` in order. The consumer may read some or all of
    a member's ``data`` before asking for the next; what it leaves is skipped (by seeking, when
    ``size`` gives the length of a seekable file)."""
    long_name = long_link = None
    pax: dict[str, str] = {}
    pos = 0  # of the next header, counted (a pipe cannot tell)
    total = size
    while True:
        block = stream.read(BLOCK)
        if len(block) < BLOCK:
            block += _exactly(stream, BLOCK - len(block), where) if block else b""
        if not block:
            raise TruncatedError(f"{where}: archive is truncated (no end-of-archive marker)")
        if not block.strip(b"\0"):
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as err:
            raise FormatError(f"{where}: not a readable tar archive ({err})") from err
        end = total
        size = info.size
        if size < 0:
            raise FormatError(f"{where}: negative member size in the archive")
        padding = -size % BLOCK
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE):
            if size > MAX_META:
                raise FormatError(f"{where}: extended header of {size} bytes in the archive")
            raw = _exactly(stream, size + padding, where)[:size]
            pos += BLOCK + size + padding
            if info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif info.type == tarfile.GNUTYPE_LONGLINK:
                long_link = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif info.type == tarfile.XHDTYPE:
                pax.update(pax_records(raw, where))
            continue
        name = pax.get("path", long_name if long_name is not None else info.name)
        link = pax.get("linkpath", long_link if long_link is not None else info.linkname)
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise FormatError(f"{where}: bad PAX size for {name!r} in the archive") from None
            padding = -size % BLOCK
        long_name = long_link = None
        pax = {}
        if info.type in _HEADER_ONLY:
            size, padding = 0, 0
        data = MemberReader(stream, size, where, end)
        yield Member(name, info.type, size, link, data, pos + BLOCK)
        data.skip()
        if padding:
            _exactly(stream, padding, where)
        pos += BLOCK + size + padding
