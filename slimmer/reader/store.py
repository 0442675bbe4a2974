"""Where blobs live: a tar archive on disk, an OCI layout directory, or a tar on a pipe.

A store answers three questions for the format modules: which names exist, the bytes of a
small named file (JSON), and the scan of a named layer blob. Links inside a tar archive are
followed, but only to members of the same archive; a name that leaves the archive or the
layout directory is an error. The pipe store reads the stream once, scanning every member
that looks like a layer as it passes, because the manifest may come last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import marshal
import multiprocessing
import io
import os
import queue
import threading
import posixpath
import stat
import tarfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Callable

from slimmer.errors import FormatError, SlimmerError, TruncatedError
from slimmer.model import Entry
from slimmer.reader.outer import iter_members
from slimmer.reader.blobs import CHUNK, MAX_JSON, LayerScan, compression_of, scan_layer

WORKERS = max(1, min(4, os.cpu_count() or 1))


def clean_name(name: str, where: str) -> str:
    """Return an archive-relative member name, or raise if it climbs out of the archive."""
    if "\0" in name:
        raise FormatError(f"{where}: name {name!r} holds a NUL byte")
    norm = posixpath.normpath("/" + name).lstrip("/")
    if name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
        raise FormatError(f"{where}: {name!r} points outside the archive")
    return norm


class RangeReader(io.RawIOBase):
    """A read-only view of ``size`` bytes at ``offset`` of an open file (pread: thread-safe)."""

    def __init__(self, fd: int, offset: int, size: int, where: str):
        self.fd, self.pos, self.end, self.where = fd, offset, offset + size, where
        self.start = offset

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos - self.start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self.start, io.SEEK_CUR: self.pos, io.SEEK_END: self.end}[whence]
        self.pos = min(max(base + offset, self.start), self.end)
        return self.pos - self.start

    def read(self, n: int = -1) -> bytes:
        left = self.end - self.pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.pos)
        if not data:
            raise TruncatedError(f"{self.where}: archive ends inside a member")
        self.pos += len(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class Store:
    """Base of the stores; ``where`` names the archive in messages, ``kind`` is "tar", "dir"
    or "pipe"."""

    where = ""
    kind = ""

    def names(self) -> set[str]:
        raise NotImplementedError

    def has(self, name: str) -> bool:
        return self._resolve(name) is not None

    def read_bytes(self, name: str, limit: int = MAX_JSON) -> bytes:
        raise NotImplementedError

    def scan_layers(self, names: list[str], max_layer_size: int,
                    progress: Callable[[int], None] | None = None) -> list[LayerScan]:
        raise NotImplementedError

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        """Return a function that opens the stored (maybe compressed) blob ``name`` anew."""
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def _resolve(self, name: str):
        raise NotImplementedError

    def fingerprint(self, name: str) -> str | None:
        """Return a cheap fingerprint of blob ``name`` (size, first and last 64 KiB), or None
        where the blob cannot be sampled without reading it all (a pipe)."""
        return None

    def missing(self, name: str, what: str) -> FormatError:
        return FormatError(f"{what} {name!r} is listed but missing from {self.where}")


def _fingerprint(pread: Callable[[int, int], bytes], size: int) -> str:
    sample = 64 << 10
    h = hashlib.sha256(str(size).encode())
    h.update(pread(0, min(sample, size)))
    if size > sample:
        h.update(pread(max(sample, size - sample), sample))
    return h.hexdigest()


# Tar header parsing is Python and holds the GIL; above this many bytes, layers are scanned in
# worker processes (fork) so that parsing, not only hashing, uses every core.
PROCESS_THRESHOLD = 64 << 20


def _scan_file_range(path: str, offset: int, size: int, where: str, max_layer_size: int):
    """Worker: scan one stored blob of a file; return the scan with its entries marshalled."""
    with open(path, "rb") as f:
        scan = scan_layer(RangeReader(f.fileno(), offset, size, where), where, max_layer_size, size)
    packed = marshal.dumps([tuple(e) for e in scan.entries])
    return dataclasses.replace(scan, entries=()), packed


def _unpack(result) -> LayerScan:
    scan, packed = result
    return dataclasses.replace(scan, entries=tuple(map(Entry._make, marshal.loads(packed))))


def _parallel(names: list[str], sizes: list[int], work: Callable[[str], LayerScan],
              ranges: Callable[[str], tuple[str, int, int, str]] | None = None,
              max_layer_size: int = 0, progress: Callable[[int], None] | None = None) -> list[LayerScan]:
    if len(names) <= 1:
        return [work(n) for n in names]
    order = sorted(range(len(names)), key=lambda i: -sizes[i])
    workers = min(WORKERS, len(names))
    if ranges is not None and sum(sizes) >= PROCESS_THRESHOLD and _can_fork():
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {i: pool.submit(_scan_file_range, *ranges(names[i]), max_layer_size) for i in order}
            if progress:
                for i in order:
                    futures[i].result()
                    progress(sizes[i])
            return [_unpack(futures[i].result()) for i in range(len(names))]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {i: pool.submit(work, names[i]) for i in order}
        return [futures[i].result() for i in range(len(names))]


def _can_fork() -> bool:
    return (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods()


class TarStore(Store):
    """A tar archive on disk (docker save, oci-archive): members found by header seeks."""

    kind = "tar"

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)
        try:
            self._file = open(path, "rb")
        except OSError as err:
            raise SlimmerError(f"cannot open {path}: {err.strerror}") from err
        self.fd = self._file.fileno()
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(fileobj=self._file, mode="r:") as tf:
                for info in tf:
                    self.members[clean_name(info.name, self.where).rstrip("/")] = info
                stop = tf.offset
        except (tarfile.TarError, EOFError) as err:
            self._check_sizes()
            if "unexpected end of data" in str(err):
                raise TruncatedError(f"{path}: archive is truncated") from err
            raise FormatError(f"{path}: not a readable tar archive ({err})") from err
        self._check_sizes()
        self._check_end(stop)

    def _check_end(self, stop: int) -> None:
        """tarfile takes a bad or short header after the first as the end of the archive:
        require the end-of-archive zero blocks there instead."""
        end = os.fstat(self.fd).st_size
        tail = os.pread(self.fd, 1024, stop)
        if stop >= end:
            raise TruncatedError(f"{self.where}: archive is truncated (no end-of-archive marker after "
                                 f"byte {stop})")
        if tail.strip(b"\0"):
            if len(tail) < 512:
                raise TruncatedError(f"{self.where}: archive is truncated inside a tar header at byte {stop}")
            raise FormatError(f"{self.where}: bad tar header at byte {stop}")

    def _check_sizes(self) -> None:
        end = os.fstat(self.fd).st_size
        for name, info in self.members.items():
            if info.isreg() and info.offset_data + info.size > end:
                raise TruncatedError(f"{self.where}: archive is truncated inside {name!r}")

    def names(self) -> set[str]:
        return set(self.members)

    def _resolve(self, name: str) -> tarfile.TarInfo | None:
        name = clean_name(name, self.where)
        for _ in range(16):
            info = self.members.get(name)
            if info is None:
                return None
            if info.isreg():
                return info
            if info.issym():
                base = posixpath.dirname(name)
                target = info.linkname if info.linkname.startswith("/") else posixpath.join(base, info.linkname)
                name = clean_name(posixpath.normpath(target).lstrip("/") if not target.startswith("/")
                                  else target.lstrip("/"), self.where)
            elif info.islnk():
                name = clean_name(info.linkname, self.where)
            else:
                return None
        raise FormatError(f"{self.where}: link loop at {name!r}")

    def _info(self, name: str, what: str = "file") -> tarfile.TarInfo:
        info = self._resolve(name)
        if info is None:
            raise self.missing(name, what)
        return info

    def size(self, name: str) -> int:
        return self._info(name).size

    def read_bytes(self, name: str, limit: int = MAX_JSON) -> bytes:
        info = self._info(name)
        if info.size > limit:
            raise FormatError(f"{self.where}: {name!r} is {info.size} bytes, too large for a JSON document")
        return RangeReader(self.fd, info.offset_data, info.size, self.where).read()

    def fingerprint(self, name: str) -> str | None:
        info = self._info(name, "layer")
        return _fingerprint(lambda off, n: os.pread(self.fd, n, info.offset_data + off), info.size)

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        info = self._info(name, "layer")
        path, offset, size, where = self.path, info.offset_data, info.size, f"{self.where}:{name}"

        def open_blob() -> BinaryIO:
            f = open(path, "rb")
            return _OwnedRange(f, offset, size, where)

        return open_blob

    def scan_layers(self, names, max_layer_size, progress=None):
        infos = [self._info(n, "layer") for n in names]

        def work(name: str) -> LayerScan:
            info = self._info(name, "layer")
            scan = scan_layer(RangeReader(self.fd, info.offset_data, info.size, f"{self.where}:{name}"),
                              f"{self.where}: layer {name}", max_layer_size, info.size)
            if progress:
                progress(info.size)
            return scan

        def ranges(name: str):
            info = self._info(name, "layer")
            return str(self.path), info.offset_data, info.size, f"{self.where}: layer {name}"

        return _parallel(names, [i.size for i in infos], work, ranges, max_layer_size, progress)


class _OwnedRange(RangeReader):
    def __init__(self, f, offset, size, where):
        super().__init__(f.fileno(), offset, size, where)
        self._f = f

    def close(self) -> None:
        self._f.close()
        super().close()


class DirStore(Store):
    """An OCI image layout directory (``skopeo copy ... oci:DIR``)."""

    kind = "dir"

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)
        self.root = os.path.realpath(path)

    def names(self) -> set[str]:
        out = set()
        for base, _dirs, files in os.walk(self.path):
            for f in files:
                out.add(os.path.relpath(os.path.join(base, f), self.path))
        return out

    def _resolve(self, name: str) -> str | None:
        name = clean_name(name, self.where)
        full = os.path.realpath(os.path.join(self.root, name))
        if not full.startswith(self.root + os.sep):
            raise FormatError(f"{self.where}: {name!r} leads outside the layout directory")
        try:
            st = os.stat(full)
        except OSError:
            return None
        return full if stat.S_ISREG(st.st_mode) else None

    def _full(self, name: str, what: str = "file") -> str:
        full = self._resolve(name)
        if full is None:
            raise self.missing(name, what)
        return full

    def size(self, name: str) -> int:
        return os.stat(self._full(name)).st_size

    def read_bytes(self, name: str, limit: int = MAX_JSON) -> bytes:
        full = self._full(name)
        if os.stat(full).st_size > limit:
            raise FormatError(f"{self.where}: {name!r} is too large for a JSON document")
        try:
            with open(full, "rb") as f:
                return f.read()
        except OSError as err:
            raise SlimmerError(f"cannot read {full}: {err.strerror}") from err

    def fingerprint(self, name: str) -> str | None:
        full = self._full(name, "layer")
        try:
            with open(full, "rb") as f:
                return _fingerprint(lambda off, n: os.pread(f.fileno(), n, off), os.fstat(f.fileno()).st_size)
        except OSError as err:
            raise SlimmerError(f"cannot read {full}: {err.strerror}") from err

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        full = self._full(name, "layer")
        return lambda: open(full, "rb")

    def scan_layers(self, names, max_layer_size, progress=None):
        fulls = {n: self._full(n, "layer") for n in names}

        def work(name: str) -> LayerScan:
            try:
                with open(fulls[name], "rb") as f:
                    scan = scan_layer(f, f"{self.where}: layer {name}", max_layer_size,
                                      os.fstat(f.fileno()).st_size)
            except OSError as err:
                raise SlimmerError(f"cannot read {fulls[name]}: {err.strerror}") from err
            if progress:
                progress(scan.stored_size)
            return scan

        def ranges(name: str):
            return fulls[name], 0, os.stat(fulls[name]).st_size, f"{self.where}: layer {name}"

        return _parallel(names, [os.stat(fulls[n]).st_size for n in names], work, ranges, max_layer_size, progress)


def _looks_like_tar(block: bytes) -> bool:
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


class Prefetcher(io.RawIOBase):
    """Reads a stream ahead in a thread, so that waiting on the pipe overlaps hashing and
    parsing; at most ``depth`` chunks are held."""

    def __init__(self, raw: BinaryIO, depth: int = 8):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._buf = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, args=(raw,), daemon=True)
        self._thread.start()

    def _pump(self, raw: BinaryIO) -> None:
        try:
            while True:
                data = raw.read(CHUNK)
                self._queue.put(data)
                if not data:
                    return
        except BaseException as err:  # handed to the reading thread, raised there
            self._error = err
            self._queue.put(b"")

    def readable(self) -> bool:
        return True

    def _current(self) -> memoryview | None:
        """The unread part of the current chunk, fetching the next one if needed; None at the end."""
        if self._pos >= len(self._buf):
            if self._eof:
                return None
            self._buf, self._pos = memoryview(self._queue.get()), 0
            if not self._buf:
                self._eof = True
                if self._error is not None:
                    raise self._error
                return None
        return self._buf[self._pos:]

    def readinto(self, buf) -> int:
        cur = self._current()
        if cur is None:
            return 0
        n = min(len(buf), len(cur))
        buf[:n] = cur[:n]
        self._pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        cur = self._current()
        if cur is None:
            return b""
        data = cur[:n].tobytes()
        self._pos += len(data)
        return data


class PipeStore(Store):
    """A tar archive read once from a stream (``docker save app | slimmer analyze -``)."""

    kind = "pipe"

    def __init__(self, stream: BinaryIO, where: str, max_layer_size: int,
                 progress: Callable[[int], None] | None = None):
        self.where = where
        self.small: dict[str, bytes] = {}
        self.scans: dict[str, LayerScan] = {}
        self.sizes: dict[str, int] = {}
        self.links: dict[str, str] = {}
        self._names: set[str] = set()
        for info in iter_members(Prefetcher(stream), where):
            name = clean_name(info.name, where).rstrip("/")
            self._names.add(name)
            if info.issym() or info.islnk():
                base = posixpath.dirname(name) if info.issym() else ""
                self.links[name] = posixpath.normpath(posixpath.join(base, info.linkname))
                continue
            if not info.isreg():
                continue
            self.sizes[name] = info.size
            self._take(name, info.size, _Prefetched(info.data), max_layer_size)
            if progress:
                progress(info.size)

    def _take(self, name: str, size: int, f: "_Prefetched", max_layer_size: int) -> None:
        head = f.peek(512)
        if compression_of(head) != "none" or (size >= 1024 and _looks_like_tar(head)):
            self.scans[name] = scan_layer(f, f"{self.where}: layer {name}", max_layer_size, size)
        elif size <= MAX_JSON:
            self.small[name] = f.read_all()
        else:
            f.drain()

    def names(self) -> set[str]:
        return set(self._names)

    def _resolve(self, name: str) -> str | None:
        name = clean_name(name, self.where)
        for _ in range(16):
            if name in self.links:
                name = clean_name(self.links[name], self.where)
                continue
            return name if name in self.sizes else None
        raise FormatError(f"{self.where}: link loop at {name!r}")

    def size(self, name: str) -> int:
        real = self._resolve(name)
        if real is None:
            raise self.missing(name, "file")
        return self.sizes[real]

    def read_bytes(self, name: str, limit: int = MAX_JSON) -> bytes:
        real = self._resolve(name)
        if real is None or real not in self.small:
            if real is not None and real in self.scans:
                raise FormatError(f"{self.where}: {name!r} is a layer, expected a JSON document")
            raise self.missing(name, "file")
        return self.small[real]

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        def cannot() -> BinaryIO:
            raise SlimmerError(f"{self.where}: a piped archive cannot be read twice; save it to a file first")
        return cannot

    def scan_layers(self, names, max_layer_size, progress=None):
        out = []
        for name in names:
            real = self._resolve(name)
            if real is None:
                raise self.missing(name, "layer")
            if real not in self.scans:
                if real in self.small:
                    # a tiny uncompressed layer (an empty tar is 1024 zero bytes)
                    self.scans[real] = scan_layer(io.BytesIO(self.small[real]), f"{self.where}: layer {name}",
                                                  max_layer_size, len(self.small[real]))
                else:
                    raise FormatError(f"{self.where}: {name!r} is not a layer blob")
            out.append(self.scans[real])
        return out


class _Prefetched:
    """A member stream with a peekable head."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.buf = b""

    def peek(self, n: int) -> bytes:
        while len(self.buf) < n:
            more = self.f.read(n - len(self.buf))
            if not more:
                break
            self.buf += more
        return self.buf[:n]

    def read(self, n: int = -1) -> bytes:
        if self.buf:
            if n is None or n < 0:
                data, self.buf = self.buf + self.f.read(), b""
                return data
            data, self.buf = self.buf[:n], self.buf[n:]
            return data
        return self.f.read(n)

    def read_all(self) -> bytes:
        return self.read(-1)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass
