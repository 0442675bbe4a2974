"""Where blobs live: a tar archive on disk, an OCI layout directory, or a tar on a pipe.

A store answers three questions for the format modules: which names exist, the bytes of a
small named file (JSON), and the scan of a named layer blob. Links inside a tar archive are
followed, but only to members of the same archive; a name that leaves the archive or the
layout directory is an error. Both tar stores walk the archive with ``slimmer.tar.outer``.
The pipe store reads the stream once, scanning every member that looks like a layer as it
passes, because the manifest may come last; it keeps only JSON-looking small members, within
a bound, and drains the rest.

How many processes or threads a scan uses is the caller's (``ScanOptions.jobs``): with 1,
everything runs in the calling thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import os
import posixpath
import queue
import stat
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

from slimmer.compiled import uses_compiled
from slimmer.errors import FormatError, InputError, LimitError, TruncatedError
from slimmer.model import ReadsInto, Stream, normalize_path
from slimmer.reader import blobs
from slimmer.reader.blobs import DEFAULT_MAX_LAYER_SIZE, MAX_JSON, LayerScan, Mapped, scan_layer, scan_mapped, settled
from slimmer.tar.codec import CHUNK, compression_of, open_outer
from slimmer.tar.collect import Policy
from slimmer.tar.outer import Member, MemberReader, iter_members
from slimmer.workers import can_fork, process_pool, thread_pool

MAX_PIPE_JSON = 256 << 20  # JSON-looking small members a piped archive may hold, in all
MAX_LINKS = 16


@dataclasses.dataclass(frozen=True)
class ScanOptions:
    """How to scan layers: the expansion limit, the content policy, and how many workers
    (``jobs``: processes for large archives, else threads; 1 means none)."""

    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE
    policy: Policy | None = None
    jobs: int = 1
    progress: Callable[[int], None] | None = None
    defer: bool = False  # return mapped scans before their hashing is done (LayerScan.pending)


def link_target(name: str, linkname: str, symbolic: bool, where: str) -> str:
    """Return the archive member a link member ``name`` leads to: a symlink's target is
    relative to its directory (an absolute one to the archive's root), a hard link's to the
    archive's root; neither may climb out of the archive."""
    if symbolic and not linkname.startswith("/"):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), linkname))
    else:
        target = linkname.lstrip("/")
    return clean_name(target, where)


def clean_name(name: str, where: str) -> str:
    """Return an archive-relative member name, or raise if it climbs out of the archive."""
    if "\0" in name:
        raise FormatError(f"{where}: name {name!r} holds a NUL byte")
    if name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
        raise FormatError(f"{where}: {name!r} points outside the archive")
    return normalize_path(name)


class RangeReader(ReadsInto, io.RawIOBase):
    """A read-only view of ``size`` bytes at ``offset`` of an open file (pread: thread-safe)."""

    def __init__(self, fd: int, offset: int, size: int, where: str):
        self.fd, self.pos, self.end, self.where = fd, offset, offset + size, where
        self.start = offset

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos - self.start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self.start, io.SEEK_CUR: self.pos, io.SEEK_END: self.end}[whence]
        self.pos = min(max(base + offset, self.start), self.end)
        return self.pos - self.start

    def read(self, n: int | None = -1) -> bytes:
        left = self.end - self.pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        try:
            data = os.pread(self.fd, n, self.pos)
        except OSError as err:
            raise InputError(f"cannot read {self.where}: {err.strerror or err}") from err
        if not data:
            raise TruncatedError(f"{self.where}: archive ends inside a member")
        self.pos += len(data)
        return data


class _OwnedRange(RangeReader):
    """A RangeReader that owns its file and closes it."""

    def __init__(self, f, offset, size, where):
        super().__init__(f.fileno(), offset, size, where)
        self._f = f

    def close(self) -> None:
        self._f.close()
        super().close()


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

    def scan_layers(self, names: list[str], options: ScanOptions) -> list[LayerScan]:
        raise NotImplementedError

    def opener(self, name: str) -> Callable[[], Stream]:
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


def scan_file_range(path: str, offset: int, size: int, where: str, options: ScanOptions,
                    threads: bool = True) -> tuple[LayerScan, bytes]:
    """Worker: scan the stored blob of ``size`` bytes at ``offset`` of file ``path`` (hashing
    on threads beside the parsing with ``threads``); return the scan packed (``blobs.pack``).
    Opening the file may raise OSError."""
    with open(path, "rb") as f:
        scan = scan_layer(RangeReader(f.fileno(), offset, size, where), where, options.max_layer_size, size,
                          options.policy, threads=threads)
    return blobs.pack(scan)


def _parallel(names: list[str], sizes: list[int], work: Callable[[str, bool], LayerScan],
              ranges: Callable[[str], tuple[str, int, int, str]] | None, options: ScanOptions) -> list[LayerScan]:
    """Scan ``names`` as ``options.jobs`` allows: in this thread, on threads, or (large
    archives) in forked processes, the largest blob first."""
    progress = options.progress
    workers = min(options.jobs, len(names))
    if workers <= 1:
        out = []
        for name, size in zip(names, sizes):
            out.append(work(name, options.jobs > 1))
            if progress:
                progress(size)
        return out
    order = sorted(range(len(names)), key=lambda i: -sizes[i])
    if ranges is not None and sum(sizes) >= PROCESS_THRESHOLD and can_fork():
        plain = dataclasses.replace(options, progress=None)
        with process_pool(workers) as pool:
            packed = {i: pool.submit(scan_file_range, *ranges(names[i]), plain) for i in order}
            results = {}
            for i in order:
                results[i] = packed[i].result()
                if progress:
                    progress(sizes[i])
            return [blobs.unpack(results[i]) for i in range(len(names))]
    with thread_pool(workers) as threads:
        futures = {i: threads.submit(work, names[i], True) for i in order}
        scans = {}
        for i in order:
            scans[i] = futures[i].result()
            if progress:
                progress(sizes[i])
        return [scans[i] for i in range(len(names))]


def _mapped(names: list[str], sizes: list[int], work: Callable[[str, bool], LayerScan],
            ranges: Callable[[str], tuple[str, int, int, str]], options: ScanOptions) -> list[LayerScan]:
    """Scan blobs of files on disk with the compiled scanner: each uncompressed blob is mapped,
    this thread parses them all while ``options.jobs`` threads hash them, the largest first
    (hashing is most of the work, and the largest layer bounds the run); other blobs get the
    streaming scan on those threads. Nothing is hashed twice, nothing not needed is read.
    With ``options.defer`` the scans come back as soon as the parsing is done, each with the
    digest it waits for (``LayerScan.pending``)."""
    order = sorted(range(len(names)), key=lambda i: -sizes[i])
    where = {i: ranges(names[i]) for i in order}
    threads = options.jobs > 1
    parsed: dict[int, Mapped | None] = {}
    hashed: dict[int, Mapped] = {}  # a mapping of its own for each hashing thread: a shared one is slower
    futures: dict = {}  # i -> the future of its digest (mapped) or of its whole scan (streamed)
    try:
        with contextlib.ExitStack() as stack:
            # with ``defer`` the hashing goes on after the parsing: each scan's future says when
            pool = stack.enter_context(thread_pool(options.jobs, wait=not options.defer)) if threads else None
            side = stack.enter_context(thread_pool(1)) if threads else None  # libmagic, beside the hashing
            for i in order:
                path, offset, size, _where = where[i]
                parsed[i] = Mapped.open(path, offset, size)
                if pool is not None:
                    other = Mapped.open(path, offset, size) if parsed[i] is not None else None
                    if other is not None:
                        hashed[i] = other
                        futures[i] = pool.submit(other.digest)
                    else:
                        futures[i] = pool.submit(work, names[i], True)
            scans: dict[int, LayerScan] = {}
            for i in order:
                blob = parsed[i]
                if blob is None:
                    if pool is None:
                        scans[i] = work(names[i], False)
                    continue
                scans[i] = scan_mapped(blob, where[i][3], options.max_layer_size, options.policy, side)
                if pool is None:
                    digest = blob.digest()
                    scans[i] = dataclasses.replace(scans[i], digest=digest, diff_id=digest)
                blob.close()
                parsed[i] = None
            for i in order:
                if i in scans:
                    scans[i] = settled(scans[i])  # libmagic's work, waited for once every layer is parsed
                if i in hashed:
                    future = futures[i]
                    if options.defer:
                        future.add_done_callback(functools.partial(_close_blob, hashed.pop(i)))
                        scans[i] = dataclasses.replace(scans[i], pending=future.result)
                    else:
                        digest = future.result()
                        scans[i] = dataclasses.replace(scans[i], digest=digest, diff_id=digest)
                elif i in futures:
                    scans[i] = futures[i].result()
                if options.progress:
                    options.progress(sizes[i])
        return [scans[i] for i in range(len(names))]
    except BaseException:
        # an error or a Ctrl-C: the pools dropped their queued work and did not wait for a
        # running hash; the mappings are left to the process's end (closing one under a
        # running hash would pull the memory from under it)
        hashed.clear()
        parsed.clear()
        raise
    finally:
        for blob in [*parsed.values(), *hashed.values()]:
            if blob is not None:
                blob.close()


def _close_blob(blob: Mapped, _future) -> None:
    blob.close()


def _scan_files(names: list[str], sizes: list[int], work: Callable[[str, bool], LayerScan],
                ranges: Callable[[str], tuple[str, int, int, str]], options: ScanOptions) -> list[LayerScan]:
    """Scan blobs of files on disk: mapped with the compiled scanner, else as ``_parallel`` does
    (a progress display that can show a total is told it first)."""
    expect = getattr(options.progress, "expect", None)
    if expect is not None:
        expect(sum(sizes))
    if uses_compiled():
        return _mapped(names, sizes, work, ranges, options)
    return _parallel(names, sizes, work, ranges, options)


class _Indexed:
    """One member of a tar archive on disk, as the store keeps it."""

    __slots__ = ("linkname", "offset", "size", "type")

    def __init__(self, member: Member):
        self.type, self.offset, self.size, self.linkname = member.type, member.offset, member.size, member.linkname

    def isreg(self) -> bool:
        return self.type in tarfile.REGULAR_TYPES


class TarStore(Store):
    """A tar archive on disk (docker save, oci-archive): members found by one walk over the
    headers, seeking past their data."""

    kind = "tar"

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)
        try:
            self._file = open(path, "rb")
        except OSError as err:
            raise InputError(f"cannot open {path}: {err.strerror}") from err
        self.fd = self._file.fileno()
        self.members: dict[str, _Indexed] = {}
        end = os.fstat(self.fd).st_size
        try:
            for member in iter_members(self._file, self.where, end):
                self.members[clean_name(member.name, self.where).rstrip("/")] = _Indexed(member)
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror}") from err

    def names(self) -> set[str]:
        return set(self.members)

    def _resolve(self, name: str) -> _Indexed | None:
        name = clean_name(name, self.where)
        for _ in range(MAX_LINKS):
            info = self.members.get(name)
            if info is None:
                return None
            if info.isreg():
                return info
            if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                name = link_target(name, info.linkname, info.type == tarfile.SYMTYPE, self.where)
            else:
                return None
        raise FormatError(f"{self.where}: link loop at {name!r}")

    def _info(self, name: str, what: str = "file") -> _Indexed:
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
        return RangeReader(self.fd, info.offset, info.size, self.where).read()

    def fingerprint(self, name: str) -> str | None:
        info = self._info(name, "layer")
        return _fingerprint(lambda off, n: os.pread(self.fd, n, info.offset + off), info.size)

    def opener(self, name: str) -> Callable[[], Stream]:
        info = self._info(name, "layer")
        path, offset, size, where = self.path, info.offset, info.size, f"{self.where}:{name}"

        def open_blob() -> Stream:
            f = open(path, "rb")
            return _OwnedRange(f, offset, size, where)

        return open_blob

    def scan_layers(self, names: list[str], options: ScanOptions) -> list[LayerScan]:
        infos = [self._info(n, "layer") for n in names]

        def work(name: str, threads: bool) -> LayerScan:
            info = self._info(name, "layer")
            return scan_layer(RangeReader(self.fd, info.offset, info.size, f"{self.where}:{name}"),
                              f"{self.where}: layer {name}", options.max_layer_size, info.size, options.policy,
                              threads)

        def ranges(name: str):
            info = self._info(name, "layer")
            return str(self.path), info.offset, info.size, f"{self.where}: layer {name}"

        return _scan_files(names, [i.size for i in infos], work, ranges, options)


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
            raise InputError(f"cannot read {full}: {err.strerror}") from err

    def fingerprint(self, name: str) -> str | None:
        full = self._full(name, "layer")
        try:
            with open(full, "rb") as f:
                return _fingerprint(lambda off, n: os.pread(f.fileno(), n, off), os.fstat(f.fileno()).st_size)
        except OSError as err:
            raise InputError(f"cannot read {full}: {err.strerror}") from err

    def opener(self, name: str) -> Callable[[], Stream]:
        full = self._full(name, "layer")
        return lambda: open(full, "rb")

    def scan_layers(self, names: list[str], options: ScanOptions) -> list[LayerScan]:
        fulls = {n: self._full(n, "layer") for n in names}

        def work(name: str, threads: bool) -> LayerScan:
            try:
                with open(fulls[name], "rb") as f:
                    return scan_layer(f, f"{self.where}: layer {name}", options.max_layer_size,
                                      os.fstat(f.fileno()).st_size, options.policy, threads)
            except OSError as err:
                raise InputError(f"cannot read {fulls[name]}: {err.strerror}") from err

        def ranges(name: str):
            return fulls[name], 0, os.stat(fulls[name]).st_size, f"{self.where}: layer {name}"

        return _scan_files(names, [os.stat(fulls[n]).st_size for n in names], work, ranges, options)


def _looks_like_tar(block: bytes) -> bool:
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def _looks_like_json(head: bytes) -> bool:
    text = head.lstrip(b" \t\r\n")
    return text[:1] in (b"{", b"[") or text.startswith(b"\xef\xbb\xbf")


class Prefetcher(io.RawIOBase):
    """Reads a stream ahead in a thread, so that waiting on the pipe overlaps hashing and
    parsing; at most ``depth`` chunks are held. The thread reads the raw file descriptor when
    there is one (never a buffered object another thread may hold at exit), and ``close``
    stops it."""

    def __init__(self, raw: Stream, depth: int = 8):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._buf = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, args=(raw,), daemon=True)
        self._thread.start()

    def _pump(self, raw: Stream) -> None:
        # the bytes a caller peeked at go first; then nothing is buffered: read the descriptor
        detach = getattr(raw, "detach_head", None)  # reader._Peekable
        head: bytes = detach() if detach is not None else b""
        try:
            fd: int | None = raw.fileno()  # type: ignore[attr-defined]
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            fd = None
        try:
            while not self._stop:
                data = self._fill(raw, fd, head)
                head = b""
                self._put(data)
                if not data:
                    return
        except BaseException as err:  # noqa: BLE001 -- handed to the reading thread, raised there
            self._error = err
            self._put(b"")

    @staticmethod
    def _fill(raw: Stream, fd: int | None, head: bytes) -> bytes:
        """Read a whole CHUNK (less only at the end): a pipe gives what its writer wrote last
        (``cat`` writes 128 KiB at a time), and each chunk handed on costs the readers the same
        whatever its size. The bytes are read into the chunk where it lies, not copied again."""
        if fd is None:
            return head + raw.read(CHUNK) if head else raw.read(CHUNK)
        buf = bytearray(CHUNK)
        got = len(head)
        buf[:got] = head
        with memoryview(buf) as view:
            while got < CHUNK:
                n = os.readv(fd, [view[got:]])
                if not n:
                    break
                got += n
        if got < CHUNK:
            del buf[got:]
        return cast(bytes, buf)  # a bytearray: read like bytes by everything downstream

    def _put(self, data: bytes) -> None:
        while not self._stop:
            try:
                self._queue.put(data, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self._stop = True
        super().close()

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

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        cur = self._current()
        if cur is None:
            return b""
        if self._pos == 0 and n >= len(cur):
            data = cast(bytes, self._buf.obj)  # the whole chunk as the pipe gave it: no copy
        else:
            data = cur[:n].tobytes()
        self._pos += len(data)
        return data


class PipeStore(Store):
    """A tar archive read once from a stream (``docker save app | slimmer analyze -``)."""

    kind = "pipe"

    def __init__(self, stream: Stream, where: str, options: ScanOptions):
        self.where = where
        self.small: dict[str, bytes] = {}
        self.scans: dict[str, LayerScan] = {}
        self.sizes: dict[str, int] = {}
        self.offsets: dict[str, int] = {}
        self.links: dict[str, tuple[str, bool]] = {}
        self._names: set[str] = set()
        self._kept = 0
        source: Stream = Prefetcher(stream) if options.jobs > 1 else stream
        with contextlib.ExitStack() as stack:
            # libmagic beside the parsing and the hashing, as for a file (``_mapped``)
            self._side = stack.enter_context(thread_pool(1)) if options.jobs > 1 else None
            self._read(source, where, options)
            # the libmagic work of each layer is waited for once the whole archive is read, so
            # reading (and hashing) the next layer never waited for it
            self.scans = {name: settled(scan) for name, scan in self.scans.items()}

    def _read(self, source: Stream, where: str, options: ScanOptions) -> None:
        try:
            for info in iter_members(cast(BinaryIO, source), where):
                name = clean_name(info.name, where).rstrip("/")
                self._names.add(name)
                if info.issym() or info.islnk():
                    self.links[name] = (info.linkname, info.issym())
                    continue
                if not info.isreg():
                    continue
                self.sizes[name] = info.size
                self.offsets[name] = info.offset
                self._take(name, info.size, _Prefetched(info.data), options)
                if options.progress:
                    options.progress(info.size)
        finally:
            if isinstance(source, Prefetcher):
                source.close()

    def _take(self, name: str, size: int, f: _Prefetched, options: ScanOptions) -> None:
        head = f.peek(512)
        if compression_of(head) != "none" or (size >= 1024 and (_looks_like_tar(head) or head == bytes(512))):
            self.scans[name] = scan_layer(f, f"{self.where}: layer {name}", options.max_layer_size, size,
                                          options.policy, options.jobs > 1, self._side)
        elif size <= MAX_JSON and (_looks_like_json(head) or size <= 1024):
            self._kept += size
            if self._kept > MAX_PIPE_JSON:
                raise LimitError(f"{self.where}: the archive holds more than {MAX_PIPE_JSON >> 20} MiB of "
                                 f"JSON-looking members; refusing to keep reading it")
            self.small[name] = f.read_all()
        else:
            f.drain()

    def names(self) -> set[str]:
        return set(self._names)

    def _resolve(self, name: str) -> str | None:
        name = clean_name(name, self.where)
        for _ in range(MAX_LINKS):
            if name in self.links:
                linkname, symbolic = self.links[name]
                name = link_target(name, linkname, symbolic, self.where)
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
            if real is not None:
                raise FormatError(f"{self.where}: {name!r} is not a JSON document")
            raise self.missing(name, "file")
        return self.small[real]

    def opener(self, name: str) -> Callable[[], Stream]:
        def cannot() -> Stream:
            raise InputError(f"{self.where}: a piped archive cannot be read twice; save it to a file first")
        return cannot

    def scan_layers(self, names: list[str], options: ScanOptions) -> list[LayerScan]:
        out = []
        for name in names:
            real = self._resolve(name)
            if real is None:
                raise self.missing(name, "layer")
            if real not in self.scans:
                if real in self.small:
                    # a tiny uncompressed layer (an empty tar is 1024 zero bytes)
                    self.scans[real] = scan_layer(io.BytesIO(self.small[real]), f"{self.where}: layer {name}",
                                                  options.max_layer_size, len(self.small[real]), options.policy)
                else:
                    raise FormatError(f"{self.where}: {name!r} is not a layer blob")
            out.append(self.scans[real])
        return out


class CompressedStore(PipeStore):
    """A tar archive on disk, compressed as a whole (``docker save app | gzip > app.tar.gz``):
    read once, decompressing, as a pipe is; a layer is read again by decompressing the file
    anew up to the layer (verified like any re-read), since a compressed stream cannot seek."""

    kind = "compressed"

    def __init__(self, path: Path, compression: str, options: ScanOptions):
        self.path, self.compression = path, compression
        try:
            raw = open(path, "rb")
        except OSError as err:
            raise InputError(f"cannot open {path}: {err.strerror}") from err
        with raw:
            super().__init__(open_outer(raw, str(path), compression), str(path), options)

    def opener(self, name: str) -> Callable[[], Stream]:
        real = self._resolve(name)
        if real is None:
            raise self.missing(name, "layer")
        path, compression, offset, size, where = self.path, self.compression, self.offsets[real], \
            self.sizes[real], f"{self.where}:{name}"

        def open_blob() -> Stream:
            stream = open_outer(open(path, "rb"), where, compression)
            left = offset
            while left:
                skipped = len(stream.read(min(CHUNK, left)))
                if not skipped:
                    stream.close()
                    raise TruncatedError(f"{where}: the archive ends before the layer")
                left -= skipped
            return MemberReader(stream, size, where, owned=True)

        return open_blob


class _Prefetched:
    """A member stream with a peekable head."""

    def __init__(self, f):
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

    def close(self) -> None:
        """The member's data belongs to the archive's stream: nothing of its own to close."""
