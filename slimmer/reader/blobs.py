"""Blob streams: compression by magic bytes, hashing while reading, and the layer scan.

A layer blob is read exactly once: its stored bytes are hashed (*digest*), decompressed in
bounded chunks, hashed again (*diff_id*) and fed to the tar scanner. hashlib, zlib and
zstandard release the GIL on large buffers, so several layers scan in parallel threads.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import threading
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable

import zstandard

from slimmer.errors import FormatError, LimitError, TruncatedError
from slimmer.model import Entry
from slimmer.reader.tarscan import TarScanner
from slimmer.reader.zstdframes import TrackedSource, ZstdFrameTracker

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_MAX_LAYER_SIZE = 64 << 30
MAX_JSON = 64 << 20


def compression_of(head: bytes) -> str:
    """Return "gzip", "zstd" or "none" from a blob's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
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
        while (data := self._queue.get()) is not None:
            self.sha.update(data)

    def update(self, data: bytes) -> None:
        if self._queue is None:
            self.sha.update(data)
        else:
            self._queue.put(data)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = self._thread = None

    def hexdigest(self) -> str:
        self.close()
        return self.sha.hexdigest()


class HashingReader:
    """Wraps a binary stream; hashes and counts every byte read through it."""

    def __init__(self, raw: BinaryIO):
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

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

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
        source, read_size=CHUNK, read_across_frames=True, closefd=False)
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


_DECODERS: dict[str, Callable] = {"gzip": _gzip_chunks, "zstd": _zstd_chunks, "none": _plain_chunks}


def uncompressed_chunks(raw: BinaryIO, where: str):
    """Yield the uncompressed bytes of a stored blob in chunks (compression found by magic)."""
    src = HashingReader(raw)
    yield from _DECODERS[compression_of(src.peek_head())](src, where)


@dataclass(frozen=True)
class LayerScan:
    """What one pass over a stored layer blob found."""

    digest: str
    stored_size: int
    diff_id: str
    uncompressed_size: int
    compression: str
    entries: tuple[Entry, ...]


BACKGROUND_HASH_MIN = 4 << 20  # smaller layers are hashed inline: a thread costs more than it saves


def scan_layer(raw: BinaryIO, where: str, max_layer_size: int = DEFAULT_MAX_LAYER_SIZE,
               size_hint: int = -1) -> LayerScan:
    """Read a stored layer blob once; return its digests, sizes and tar entries.

    ``size_hint`` is the stored size where known: from BACKGROUND_HASH_MIN bytes (or unknown)
    the digests are computed on threads while this one parses."""
    src = HashingReader(raw)
    plain = Hasher()
    try:
        if size_hint < 0 or size_hint >= BACKGROUND_HASH_MIN:
            src.sha.start()
            plain.start()
        return _scan(src, plain, where, max_layer_size)
    finally:
        src.sha.close()
        plain.close()


def _scan(src: HashingReader, plain: Hasher, where: str, max_layer_size: int) -> LayerScan:
    compression = compression_of(src.peek_head())
    scanner = TarScanner(where, max_layer_size)
    total = 0
    for chunk in _DECODERS[compression](src, where):
        total += len(chunk)
        if total > max_layer_size:
            raise LimitError(
                f"{where}: layer expands past --max-layer-size ({max_layer_size} bytes); refusing to read on")
        if compression != "none":
            plain.update(chunk)
        scanner.feed(chunk)
    if compression != "none":
        src.drain()
    entries = scanner.finish()
    if total and not scanner.headers and not scanner.ended:
        raise FormatError(f"{where}: layer is not a tar stream")
    if not scanner.ended and (total or compression != "none"):
        # Every tar writer ends a layer with zero blocks; python-zstandard ends a cut frame
        # silently, so a missing marker is how a truncated stream shows.
        raise TruncatedError(f"{where}: layer tar is truncated (no end-of-archive marker)")
    digest = src.digest()
    diff_id = digest if compression == "none" else "sha256:" + plain.hexdigest()
    return LayerScan(digest, src.size, diff_id, total, compression, tuple(entries))


def parse_json(data: bytes, where: str, kind: type = dict):
    """Parse a JSON document that must be of ``kind`` (dict or list)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise FormatError(f"{where}: not valid JSON ({err})") from err
    if not isinstance(value, kind):
        raise FormatError(f"{where}: expected a JSON {'object' if kind is dict else 'array'}")
    return value


class _ChunkStream(io.RawIOBase):
    """A readable stream over a generator of byte chunks; closes the source with it."""

    def __init__(self, chunks, source: BinaryIO):
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


def open_uncompressed(raw: BinaryIO, where: str) -> BinaryIO:
    """Return a buffered stream of the uncompressed bytes of the stored blob ``raw``."""
    return io.BufferedReader(_ChunkStream(uncompressed_chunks(raw, where), raw), CHUNK)
