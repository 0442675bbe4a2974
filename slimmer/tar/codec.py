"""Layer blob codecs: compression found by magic bytes, decompression in bounded chunks,
and hashing on a thread beside the consumer.

A stored blob is hashed as it is read (its *digest*) and decompressed in chunks of at most
``CHUNK`` bytes; gzip may hold several members and trailing zero padding, zstd several frames
(skippable ones included, RFC 8878), and a stream that stops inside a frame is truncated, not
ended. Used by the scan pass (``slimmer.reader.blobs``) and the verified re-stream
(``slimmer.tar.restream``). Imports the errors and the model.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import queue
import threading
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import zstandard

from slimmer.errors import FormatError, TruncatedError
from slimmer.model import ReadsInto, Stream
from slimmer.tar.zstdframes import TrackedSource, ZstdFrameTracker

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SKIPPABLE_TAIL = b"\x2a\x4d\x18"  # bytes 1-3 of a skippable frame's magic (little-endian 0x184D2A5?)


def compression_of(head: bytes) -> str:
    """Return "gzip", "zstd" or "none" from a blob's first bytes. A zstd stream may start with
    a skippable frame (magic 0x184D2A50..5F, as pzstd writes), which moby and containerd accept."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC) or (len(head) >= 4 and head[1:4] == SKIPPABLE_TAIL and 0x50 <= head[0] <= 0x5F):
        return "zstd"
    return "none"


class Hasher:
    """sha256 of bytes given in order, computed on a thread of its own once ``start`` is called.

    hashlib releases the GIL on large buffers, so hashing a layer overlaps parsing its tar
    headers (and, from a pipe, reading it). At most ``depth`` chunks wait, so memory stays
    bounded however slow the hashing; ``close`` must be called (it joins the thread)."""

    def __init__(self, depth: int = 4):
        self.sha = hashlib.sha256()
        self._depth = depth
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._queue = queue.Queue(maxsize=self._depth)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        while (data := self._queue.get()) is not None:
            self.sha.update(data)

    def update(self, data: bytes) -> None:
        if self._queue is None:
            self.sha.update(data)
        else:
            self._queue.put(data)

    def close(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = self._thread = None

    def hexdigest(self) -> str:
        self.close()
        return self.sha.hexdigest()


class HashingReader(ReadsInto):
    """Wraps a binary stream; hashes and counts every byte read through it."""

    def __init__(self, raw: Stream):
        self.raw = raw
        self.sha = Hasher()
        self.size = 0
        self._head = b""

    def peek_head(self, n: int = 8) -> bytes:
        if not self._head:
            self._head = self._read_raw(n)
        return self._head

    def _read_raw(self, n: int) -> bytes:
        data = self.raw.read(n)
        if data:
            self.sha.update(data)
            self.size += len(data)
        return data

    def read(self, n: int = CHUNK) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._read_raw(n)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self.raw.close()

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _gzip_chunks(src: HashingReader, where: str):
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = b""
    while True:
        if not data:
            data = src.read(CHUNK)
            if not data:
                if not d.eof:
                    raise TruncatedError(f"{where}: gzip stream is truncated")
                return
        try:
            out = d.decompress(data, CHUNK)
        except zlib.error as err:
            raise FormatError(f"{where}: corrupt gzip stream ({err})") from err
        data = d.unconsumed_tail
        if out:
            yield out
        if d.eof:
            rest = d.unused_data + data
            if not rest.strip(b"\0"):
                # a gzip member may be followed by more members or zero padding
                rest = b""
                while True:
                    more = src.read(CHUNK)
                    if not more:
                        return
                    if more.strip(b"\0"):
                        rest = more.lstrip(b"\0")
                        break
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = rest


def _zstd_chunks(src: HashingReader, where: str):
    tracker = ZstdFrameTracker(where)
    source = TrackedSource(src, tracker)
    reader = zstandard.ZstdDecompressor().stream_reader(
        cast(BinaryIO, source), read_size=CHUNK, read_across_frames=True, closefd=False)
    while True:
        try:
            out = reader.read(CHUNK)
        except zstandard.ZstdError as err:
            if "incomplete" in str(err) or "truncated" in str(err):
                raise TruncatedError(f"{where}: zstd stream is truncated") from err
            raise FormatError(f"{where}: corrupt zstd stream ({err})") from err
        if not out:
            break
        yield out
    while source.read(CHUNK):  # the decoder stops at the input's end; anything left must be frames
        pass
    if not tracker.at_frame_end:
        raise TruncatedError(f"{where}: zstd stream is truncated (it does not end on a frame boundary)")


def _plain_chunks(src: HashingReader, where: str):
    while True:
        out = src.read(CHUNK)
        if not out:
            return
        yield out


def _xz_chunks(src: HashingReader, where: str):
    """xz (outer archives only: no layer media type is xz): several streams may follow each
    other, with zero padding between them."""
    d = lzma.LZMADecompressor(lzma.FORMAT_XZ)
    data = b""
    while True:
        if d.eof:
            rest = d.unused_data + data
            data = b""
            while not rest.strip(b"\0"):
                rest = src.read(CHUNK)
                if not rest:
                    return
            d, data = lzma.LZMADecompressor(lzma.FORMAT_XZ), rest.lstrip(b"\0")
        if not data and d.needs_input:
            data = src.read(CHUNK)
            if not data:
                raise TruncatedError(f"{where}: xz stream is truncated")
        try:
            out = d.decompress(data if d.needs_input else b"", CHUNK)
        except lzma.LZMAError as err:
            raise FormatError(f"{where}: corrupt xz stream ({err})") from err
        data = b""
        if out:
            yield out


_DECODERS: dict[str, Callable] = {"gzip": _gzip_chunks, "zstd": _zstd_chunks, "none": _plain_chunks}
_OUTER_DECODERS: dict[str, Callable] = {**_DECODERS, "xz": _xz_chunks}
XZ_MAGIC = b"\xfd7zXZ\x00"


def outer_compression(head: bytes) -> str:
    """Return how a whole archive is compressed ("gzip", "zstd", "xz" or "none"), by magic:
    ``docker save app | gzip > app.tar.gz`` is how CI caches keep images."""
    return "xz" if head.startswith(XZ_MAGIC) else compression_of(head)


def open_outer(raw: Stream, where: str, compression: str) -> BinaryIO:
    """Return a buffered stream of the uncompressed bytes of a whole compressed archive."""
    src = HashingReader(raw)
    return io.BufferedReader(_ChunkStream(_OUTER_DECODERS[compression](src, where), raw), CHUNK)


class BlobStream:
    """One pass over a stored blob: ``chunks()`` yields its uncompressed bytes; once they are
    all out, ``digest`` (of the stored bytes) and ``diff_id`` (of the uncompressed ones) are
    known. With ``threads`` both are hashed on threads beside the consumer; ``close`` joins
    them (always call it)."""

    def __init__(self, raw: Stream, where: str, threads: bool = False):
        self.where = where
        self.src = HashingReader(raw)
        self._plain = Hasher()
        if threads:
            self.src.sha.start()
            self._plain.start()
        self.compression = compression_of(self.src.peek_head())
        self.uncompressed_size = 0

    def chunks(self):
        """Yield the uncompressed bytes in chunks of at most CHUNK; the compressed stream is
        read to its end (trailing padding included) before the last chunk returns."""
        plain = self.compression != "none"
        for chunk in _DECODERS[self.compression](self.src, self.where):
            self.uncompressed_size += len(chunk)
            if plain:
                self._plain.update(chunk)
            yield chunk
        if plain:
            self.src.drain()

    @property
    def stored_size(self) -> int:
        return self.src.size

    def digest(self) -> str:
        return self.src.digest()

    def diff_id(self) -> str:
        return self.digest() if self.compression == "none" else "sha256:" + self._plain.hexdigest()

    def close(self) -> None:
        self.src.sha.close()
        self._plain.close()


def uncompressed_chunks(raw: Stream, where: str):
    """Yield the uncompressed bytes of a stored blob in chunks (compression found by magic)."""
    src = HashingReader(raw)
    yield from _DECODERS[compression_of(src.peek_head())](src, where)


class _ChunkStream(io.RawIOBase):
    """A readable stream over a generator of byte chunks; closes the source with it."""

    def __init__(self, chunks, source: Stream):
        self._chunks = chunks
        self._source = source
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if not self._buf:
            self._buf = next(self._chunks, b"")
        n = min(len(buf), len(self._buf))
        buf[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def open_uncompressed(raw: Stream, where: str) -> BinaryIO:
    """Return a buffered stream of the uncompressed bytes of the stored blob ``raw``."""
    return io.BufferedReader(_ChunkStream(uncompressed_chunks(raw, where), raw), CHUNK)


# ---- writing ----------------------------------------------------------------------------

# what a tar output's name says of its compression (slimmer export app.tar root.tar.gz)
SUFFIXES = {".gz": "gzip", ".tgz": "gzip", ".zst": "zstd", ".tzst": "zstd", ".xz": "xz", ".txz": "xz"}
WRITE_COMPRESSIONS = ("none", "gzip", "zstd", "xz")
TAR_NAME = (".tar", ".tgz", ".tzst", ".txz", ".tar.gz", ".tar.zst", ".tar.xz")


def compression_for(name: str) -> str:
    """Return the compression a file name asks for by its extension: gzip, zstd, xz or none."""
    lower = name.lower()
    for suffix, kind in SUFFIXES.items():
        if lower.endswith(suffix):
            return kind
    return "none"


def is_tar_name(name: str) -> bool:
    """Return whether a file name says it is a tar (``.tar``, ``.tar.gz``, ``.tgz``, ...)."""
    return name.lower().endswith(TAR_NAME)


class CompressingWriter:
    """A binary writer that compresses what it is given into ``out`` (gzip with mtime 0 and no
    name, so equal input gives equal bytes; zstd with a checksum; xz); ``close`` ends the
    stream but leaves ``out`` open."""

    def __init__(self, out: BinaryIO, compression: str, level: int | None = None):
        if compression not in WRITE_COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(WRITE_COMPRESSIONS)}, not {compression!r}")
        self.out = out
        self.compression = compression
        self._c: Any
        if compression == "gzip":
            self._c = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif compression == "zstd":
            self._c = zstandard.ZstdCompressor(level=3 if level is None else level,
                                               write_checksum=True).compressobj()
        elif compression == "xz":
            self._c = lzma.LZMACompressor(preset=6 if level is None else level)
        else:
            self._c = None
        self.closed = False

    def write(self, data) -> int:
        if self._c is None:
            self.out.write(data)
        else:
            packed = self._c.compress(data)
            if packed:
                self.out.write(packed)
        return len(data)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._c is not None:
            self.out.write(self._c.flush())
        self.out.flush()
