"""The exporter: an image's merged root filesystem (or one layer as it is) written to a
directory or as one tar, like ``docker export``, without ever writing outside the destination.

How it stays safe with untrusted images:
- What to write comes from the model: ``slimmer.layers.merge`` names the final version of every
  path; each layer's tar is then streamed once and only the members that are final versions are
  written, each path exactly once, so nothing is ever overwritten or unlinked.
- The tar stream must agree with the reader's scan member by member (name, kind, size) and hash
  to the layer's diff_id; a parser differential or a file changed since the scan is an error.
- A directory export creates every path relative to an open directory fd, one component at a
  time with ``O_NOFOLLOW``: no symlink (absolute, ``..``, a loop) is ever followed, whichever
  member created it. Hardlinks may only name an earlier member of the same layer (as tar
  extraction into a fresh layer directory requires), so they never reach outside either.
- Device nodes and setuid/setgid bits (and the ``security.capability`` xattr in a tar) are
  written only when asked; ownership is applied to a directory only when asked and root.
- Output is atomic: a tar goes to a temp file next to DEST, a directory to a temp directory next
  to DEST, renamed into place when complete. Temp names start with ``.slimmer-tmp-<pid>-`` so a
  later run removes those left by a killed process.

Imports the model, ``slimmer.layers`` and the errors; never the reader or the analyzer.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import logging
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from slimmer.errors import DigestMismatchError, FormatError, LimitError, OutputError, SlimmerError, TruncatedError
from slimmer.layers import MergedFS, merge
from slimmer.model import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry, Image, Layer

__all__ = [
    "TEMP_PREFIX",
    "ExportOptions",
    "Exported",
    "export",
    "export_dir",
    "export_tar",
    "remove_stale_temps",
]

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_OPEN_DIRS = 64  # parent directory fds a directory export keeps open
DEFAULT_MAX_LAYER_SIZE = 64 << 30
TEMP_PREFIX = ".slimmer-tmp-"
_TEMP_RE = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
_SETID = stat.S_ISUID | stat.S_ISGID
# A PAX mtime may be any number; a file system takes what fits in time_t (clamped to years 1-9999)
_TIME_RANGE = (-62135596800, 253402300799)
_MAX_ID = (1 << 32) - 2  # uid/gid (-1 means "unchanged" to chown)
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# PAX keys copied from a layer member to the output tar: extended attributes only (the others
# describe the member itself and are rewritten). File capabilities are setuid in disguise.
_XATTR_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
_CAPABILITY_KEYS = ("SCHILY.xattr.security.capability", "LIBARCHIVE.xattr.security.capability")
_TAR_KINDS = {
    tarfile.REGTYPE: FILE, tarfile.AREGTYPE: FILE, tarfile.CONTTYPE: FILE, tarfile.LNKTYPE: HARDLINK,
    tarfile.SYMTYPE: SYMLINK, tarfile.CHRTYPE: CHAR, tarfile.BLKTYPE: BLOCK, tarfile.DIRTYPE: DIR,
    tarfile.FIFOTYPE: FIFO,
}


@dataclass(frozen=True)
class ExportOptions:
    """What to export and what to allow.

    ``to`` is "dir", "tar" or "auto" (a tar when DEST is ``-`` or ends in ``.tar``).
    ``layer`` exports that layer (0-based) alone, as it is: whiteout files are kept as files.
    ``max_layer_size`` bounds the file bytes written from any one layer: a sparse file may
    claim terabytes in a tiny tar, and the reader's limit counts only the stream's bytes.
    """

    to: str = "auto"
    layer: int | None = None
    devices: bool = False
    setuid: bool = False
    owners: bool = False
    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE


@dataclass
class Exported:
    """What an export wrote: counts by kind, content bytes, and what the policy left out."""

    dest: str
    kind: str  # "dir" or "tar"
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    specials: int = 0  # fifos, and device nodes when allowed
    bytes: int = 0
    skipped_devices: list[str] = field(default_factory=list)
    cleared_setid: list[str] = field(default_factory=list)


# ---- the plan: which member of which layer becomes which output path -----------------------


@dataclass(frozen=True)
class _Write:
    """Write a member's content and metadata at ``path`` (a final version, or a hardlink's
    carrier when the member it links to is not final itself)."""

    path: str


@dataclass(frozen=True)
class _Link:
    """Write ``path`` as a hardlink to ``target``, an output path written earlier."""

    path: str
    target: str


@dataclass
class _Plan:
    dirs: list[tuple[str, Entry | None]]  # parents first; None for implied directories
    actions: dict[int, dict[int, _Write | _Link]]  # layer index -> member ordinal -> action


def _single_layer_fs(layer: Layer, index: int) -> MergedFS:
    # One layer as it is: later members replace earlier ones, whiteouts are plain files.
    fs = MergedFS()
    for entry in layer.entries:
        fs.add(entry, index)
    return fs


def _plan(image: Image, only: int | None, max_layer_size: int) -> _Plan:
    if only is None:
        fs = merge(image)
        indexes = range(len(image.layers))
    else:
        if not 0 <= only < len(image.layers):
            count = len(image.layers)
            span = f"layers 0-{count - 1}" if count else "no layers"
            raise SlimmerError(f"{image.source or 'the image'} has no layer {only}: it has {span}")
        fs = _single_layer_fs(image.layers[only], only)
        indexes = range(only, only + 1)
    dirs = [(path, version.entry if version else None) for path, version in fs.walk()
            if version is None or version.entry.kind == DIR]
    actions: dict[int, dict[int, _Write | _Link]] = {}
    for i in indexes:
        layer = image.layers[i]
        acts = _layer_actions(layer, i, _final_ordinals(fs, layer, i))
        size = sum(layer.entries[k].size for k, act in acts.items() if isinstance(act, _Write))
        if size > max_layer_size:
            raise LimitError(f"layer {i} ({layer.diff_id[:19]}) would write {size} bytes of files, past "
                             f"--max-layer-size ({max_layer_size} bytes); refusing to export it")
        if acts:
            actions[i] = acts
    return _Plan(dirs, actions)


def _final_ordinals(fs: MergedFS, layer: Layer, index: int) -> set[int]:
    """Return the positions in ``layer``'s tar of the non-directory members that are final
    versions (of a path given twice, the later member)."""
    last: dict[str, int] = {}
    for k, entry in enumerate(layer.entries):
        version = fs.get(entry.path)
        if version is not None and version.layer == index and version.entry is entry and entry.kind != DIR:
            last[entry.path] = k
    return set(last.values())


def _layer_actions(layer: Layer, index: int, final: set[int]) -> dict[int, _Write | _Link]:
    acts: dict[int, _Write | _Link] = {}
    last: dict[str, int] = {}  # path -> ordinal of its latest member so far
    source_of: dict[int, int] = {}  # hardlink ordinal -> ordinal of the member holding the data
    written_as: dict[int, str] = {}  # source ordinal -> output path holding its data
    entries = layer.entries
    for k, entry in enumerate(entries):
        if entry.kind == HARDLINK:
            src = last.get(entry.link)
            if src is None:
                raise FormatError(f"layer {index} ({layer.diff_id[:19]}): hardlink {entry.path!r} points at "
                                  f"{entry.link!r}, which is not an earlier member of the same layer")
            src = source_of.get(src, src)
            if entries[src].kind == DIR:
                raise FormatError(f"layer {index} ({layer.diff_id[:19]}): hardlink {entry.path!r} points at "
                                  f"directory {entry.link!r}")
            source_of[k] = src
        last[entry.path] = k
        if k not in final:
            continue
        if entry.kind != HARDLINK:
            acts[k] = _Write(entry.path)
            written_as[k] = entry.path
            continue
        src = source_of[k]
        if src in written_as:
            acts[k] = _Link(entry.path, written_as[src])
        else:
            # the data's own member is not final (overwritten or deleted): this link carries it
            acts[src] = _Write(entry.path)
            written_as[src] = entry.path
    return acts


# ---- reading one layer's tar stream, checked against the scan -----------------------------


class _HashingStream:
    """A read-only stream that hashes what passes through it; read errors become SlimmerErrors."""

    def __init__(self, raw: BinaryIO, where: str):
        self.raw = raw
        self.where = where
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.raw.read(n)
        except OSError as err:
            raise SlimmerError(f"cannot read {self.where}: {err.strerror or err}") from err
        self.sha.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self.raw.close()


class _Exact:
    """Reads exactly ``size`` bytes of one member's data, or raises TruncatedError."""

    def __init__(self, src: BinaryIO, size: int, where: str):
        self.src, self.left, self.where = src, size, where

    def read(self, n: int = CHUNK) -> bytes:
        n = min(n, self.left)
        out = bytearray()
        while len(out) < n:
            try:
                data = self.src.read(n - len(out))
            except (tarfile.TarError, EOFError) as err:
                raise TruncatedError(f"{self.where}: member data is cut short ({err})") from err
            if not data:
                raise TruncatedError(f"{self.where}: member data is cut short")
            out += data
        self.left -= n
        return bytes(out)


def _member_path(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _kind_of(info: tarfile.TarInfo) -> str:
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and info.name.endswith("/"):
        return DIR  # old tars mark directories by the slash alone
    return _TAR_KINDS.get(info.type, FILE)


def _stream_layer(layer: Layer, index: int, actions: dict[int, _Write | _Link], sink: _Sink) -> None:
    where = f"layer {index} ({layer.diff_id[:19]})"
    try:
        raw = layer.opener()
    except OSError as err:
        raise SlimmerError(f"cannot open {where}: {err.strerror or err}") from err
    stream = _HashingStream(raw, where)
    entries = layer.entries
    try:
        try:
            tf = tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")
            k = 0
            while (info := tf.next()) is not None:
                tf.members.clear()  # tarfile keeps every header otherwise
                path = _member_path(info.name)
                if not path:
                    continue  # the root directory, which the scan leaves out too
                expected = entries[k] if k < len(entries) else None
                if expected is None or expected.path != path or expected.kind != _kind_of(info) \
                        or (expected.kind == FILE and expected.size != info.size):
                    raise FormatError(f"{where}: member {k} of the tar stream ({path!r}) disagrees with the "
                                      f"layer's scan ({expected.path if expected else 'no such member'!r})")
                if info.size < 0:
                    raise FormatError(f"{where}: member {k} ({path!r}) has a negative size ({info.size})")
                act = actions.get(k)
                k += 1
                if act is not None:
                    data = _Exact(tf.extractfile(info), info.size, f"{where}: {path}") \
                        if expected.kind == FILE and not isinstance(act, _Link) else None
                    sink.member(act, info, data)
            tf.close()
        except (tarfile.TarError, EOFError) as err:
            raise FormatError(f"{where}: not a readable tar stream ({err})") from err
        if k != len(entries):
            raise FormatError(f"{where}: the tar stream has {k} members, the layer's scan found {len(entries)}")
        stream.drain()
    finally:
        stream.close()
    if _DIGEST_RE.match(layer.diff_id) and "sha256:" + stream.sha.hexdigest() != layer.diff_id:
        raise DigestMismatchError(f"{where}: the layer's content changed since it was read (its tar now hashes to "
                                  f"sha256:{stream.sha.hexdigest()[:12]}...)")


# ---- sinks: where the plan's writes land ---------------------------------------------------


def _check_relative(path: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or "\0" in path or any(p in ("", ".", "..") for p in parts):
        raise OutputError(f"refusing to write {path!r}: not a plain path inside the destination")


class _Sink:
    """Common policy of the two sinks: devices, setid bits, counting."""

    def __init__(self, result: Exported, options: ExportOptions):
        self.result = result
        self.options = options
        self.skipped: set[str] = set()  # output paths not written (their hardlinks are skipped too)

    def mode(self, path: str, mode: int, kind: str) -> int:
        mode &= 0o7777
        if kind != DIR and mode & _SETID and not self.options.setuid:
            self.result.cleared_setid.append(path)
            mode &= ~_SETID
        return mode

    def allowed(self, path: str, kind: str) -> bool:
        if kind in (CHAR, BLOCK) and not self.options.devices:
            self.result.skipped_devices.append(path)
            self.skipped.add(path)
            return False
        return True

    def count(self, kind: str, size: int = 0) -> None:
        r = self.result
        if kind == FILE:
            r.files += 1
            r.bytes += size
        elif kind == DIR:
            r.dirs += 1
        elif kind == SYMLINK:
            r.symlinks += 1
        elif kind == HARDLINK:
            r.hardlinks += 1
        else:
            r.specials += 1

    def directory(self, path: str, entry: Entry | None) -> None:
        raise NotImplementedError

    def member(self, act: _Write | _Link, info: tarfile.TarInfo, data: _Exact | None) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class _TarSink(_Sink):
    """Writes the output tar (PAX format) to an open binary stream."""

    def __init__(self, out: BinaryIO, result: Exported, options: ExportOptions):
        super().__init__(result, options)
        self.tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                               errors="surrogateescape")

    def _add(self, info: tarfile.TarInfo, data: _Exact | None = None) -> None:
        self.tf.addfile(info, data)
        self.tf.members.clear()

    def directory(self, path: str, entry: Entry | None) -> None:
        _check_relative(path)
        info = tarfile.TarInfo(path)
        info.type = tarfile.DIRTYPE
        if entry is not None:
            info.mode = self.mode(path, entry.mode, DIR)
            info.uid, info.gid, info.mtime = entry.uid, entry.gid, entry.mtime
        else:
            info.mode = 0o755
        self._add(info)
        self.count(DIR)

    def member(self, act: _Write | _Link, src: tarfile.TarInfo, data: _Exact | None) -> None:
        path = act.path
        _check_relative(path)
        kind = HARDLINK if isinstance(act, _Link) else _kind_of(src)
        if isinstance(act, _Link) and act.target in self.skipped:
            self.skipped.add(path)
            return
        if not self.allowed(path, kind):
            return
        info = tarfile.TarInfo(path)
        info.mode = self.mode(path, src.mode, kind)
        info.uid, info.gid, info.uname, info.gname = src.uid, src.gid, src.uname, src.gname
        info.mtime = src.mtime
        info.pax_headers = {k: v for k, v in src.pax_headers.items() if k.startswith(_XATTR_PREFIXES)
                            and (self.options.setuid or k not in _CAPABILITY_KEYS)}
        size = 0
        if isinstance(act, _Link):
            info.type, info.linkname = tarfile.LNKTYPE, act.target
        elif kind == FILE:
            info.type, info.size = tarfile.REGTYPE, src.size
            size = src.size
        else:
            info.type = src.type
            info.linkname = src.linkname if kind == SYMLINK else ""
            info.devmajor, info.devminor = src.devmajor, src.devminor
        self._add(info, data if kind == FILE else None)
        self.count(kind, size)

    def finish(self) -> None:
        self.tf.close()

    def abandon(self) -> None:
        """Drop the tar without its end-of-archive blocks: a cut stream must not look complete."""
        self.tf.closed = True
        self.tf.fileobj.closed = True


class _DirSink(_Sink):
    """Creates the tree below ``root_fd`` (an open directory), never following a symlink."""

    def __init__(self, root_fd: int, result: Exported, options: ExportOptions):
        super().__init__(result, options)
        self.root_fd = root_fd
        self.chown = options.owners
        # open parent directories, most recently used last; safe to keep because a directory of
        # the export is created once and never replaced
        self._fds: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.dirs: list[tuple[str, int, int, int, int]] = []  # path, mode, uid, gid, mtime

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])

    def _open_dir(self, path: str) -> int:
        """Return a new fd of directory ``path`` ("" is the root), opened without following links."""
        fd = os.dup(self.root_fd)
        if not path:
            return fd
        try:
            for part in path.split("/"):
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OutputError(f"refusing to write below {path!r}: it is not a directory in the export") from err
            raise
        return fd

    def _parent(self, path: str) -> tuple[int, str]:
        _check_relative(path)
        parent, _, name = path.rpartition("/")
        fd = self._fds.get(parent)
        if fd is not None:
            self._fds.move_to_end(parent)
            return fd, name
        fd = self._open_dir(parent)
        self._fds[parent] = fd
        if len(self._fds) > _OPEN_DIRS:
            os.close(self._fds.popitem(last=False)[1])
        return fd, name

    def directory(self, path: str, entry: Entry | None) -> None:
        pfd, name = self._parent(path)
        os.mkdir(name, 0o700, dir_fd=pfd)
        if entry is not None:
            self.dirs.append((path, self.mode(path, entry.mode, DIR), entry.uid, entry.gid, entry.mtime))
        else:
            self.dirs.append((path, 0o755, 0, 0, 0))
        self.count(DIR)

    def member(self, act: _Write | _Link, src: tarfile.TarInfo, data: _Exact | None) -> None:
        path = act.path
        pfd, name = self._parent(path)
        if isinstance(act, _Link):
            if act.target in self.skipped:
                self.skipped.add(path)
                return
            tfd, tname = self._open_dir(act.target.rpartition("/")[0]), act.target.rpartition("/")[2]
            try:
                os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(tfd)
            self.count(HARDLINK)
            return
        kind = _kind_of(src)
        if not self.allowed(path, kind):
            return
        mode = self.mode(path, src.mode, kind)
        mtime = src.mtime
        if kind == FILE:
            self._file(pfd, name, data, mode, src)
            self.count(FILE, src.size)
            return
        if kind == SYMLINK:
            os.symlink(src.linkname, name, dir_fd=pfd)
        elif kind == FIFO:
            os.mkfifo(name, 0o600, dir_fd=pfd)
        else:
            if not (0 <= src.devmajor < 1 << 32 and 0 <= src.devminor < 1 << 32):
                raise OutputError(f"cannot create device {name!r}: device number {src.devmajor},{src.devminor} "
                                  "is out of range")
            dev = os.makedev(src.devmajor, src.devminor)
            os.mknod(name, 0o600 | (stat.S_IFCHR if kind == CHAR else stat.S_IFBLK), dev, dir_fd=pfd)
        if self.chown:
            os.chown(name, *_ids(src.uid, src.gid, name), dir_fd=pfd, follow_symlinks=False)
        if kind != SYMLINK:
            # our own fresh node in a directory only we write to: no link to follow here
            os.chmod(name, mode, dir_fd=pfd)
        os.utime(name, _times(mtime), dir_fd=pfd, follow_symlinks=False)
        self.count(kind)

    def _file(self, pfd: int, name: str, data: _Exact | None, mode: int, src: tarfile.TarInfo) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            if data is not None:
                while chunk := data.read(CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            if self.chown:
                os.fchown(fd, *_ids(src.uid, src.gid, name))
            os.fchmod(fd, mode)  # after chown, which clears setuid bits
            os.utime(fd, _times(src.mtime))
        finally:
            os.close(fd)

    def finish(self) -> None:
        self.close()
        # deepest first, so that a read-only directory is closed after its children are done
        for path, mode, uid, gid, mtime in reversed(self.dirs):
            fd = self._open_dir(path)
            try:
                if self.chown:
                    os.fchown(fd, *_ids(uid, gid, path))
                os.fchmod(fd, mode)
                os.utime(fd, _times(mtime))
            finally:
                os.close(fd)
        os.fchmod(self.root_fd, 0o755)


def _times(mtime: float) -> tuple[float, float]:
    t = min(max(mtime, _TIME_RANGE[0]), _TIME_RANGE[1])
    return t, t


def _ids(uid: int, gid: int, name: str) -> tuple[int, int]:
    if not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID):
        raise OutputError(f"cannot give {name!r} owner {uid}:{gid}: not a valid uid:gid")
    return uid, gid


# ---- temp files and atomic placement -------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike) -> list[str]:
    """Remove the ``.slimmer-tmp-<pid>-*`` files and directories in ``directory`` that this user
    owns and whose process is gone (left by a killed run); return their names."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TEMP_RE.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        full = os.path.join(directory, name)
        try:
            if os.lstat(full).st_uid != os.geteuid():
                continue  # someone else's: not ours to judge, even in a shared /tmp
        except OSError:
            continue
        if _remove(full):
            removed.append(name)
            log.info("removed %s, left by a killed slimmer run", full)
    return removed


def _remove(path: str) -> bool:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return True
    except OSError as err:
        log.warning("cannot remove %s: %s", path, err)
        return False
    return True


def _temp_name(directory: str) -> str:
    return os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")


def _write_error(dest: str, err: OSError) -> OutputError:
    return OutputError(f"cannot write {dest}: {err.strerror or err}")


def _resolve_kind(dest: str, to: str) -> str:
    if to not in ("auto", "dir", "tar"):
        raise ValueError(f"to must be auto, dir or tar, not {to!r}")
    if to != "auto":
        return to
    return "tar" if dest == "-" or dest.endswith(".tar") else "dir"


def export(image: Image, dest: str | os.PathLike, options: ExportOptions = ExportOptions(),
           stdout: BinaryIO | None = None) -> Exported:
    """Export ``image`` to ``dest`` as ``options.to`` says (a directory, a tar file, or ``-``:
    a tar on ``stdout``); return what was written."""
    dest = os.fspath(dest)
    if _resolve_kind(dest, options.to) == "tar":
        return export_tar(image, dest, options, stdout)
    if dest == "-":
        raise OutputError("a directory export needs a directory path, not -")
    return export_dir(image, dest, options)


def _run(image: Image, plan: _Plan, sink: _Sink) -> None:
    try:
        for path, entry in plan.dirs:
            sink.directory(path, entry)
        for i in sorted(plan.actions):
            _stream_layer(image.layers[i], i, plan.actions[i], sink)
        sink.finish()
    except BaseException:
        if isinstance(sink, _TarSink):
            sink.abandon()
        raise


def export_tar(image: Image, dest: str | os.PathLike, options: ExportOptions = ExportOptions(),
               stdout: BinaryIO | None = None) -> Exported:
    """Write the merged filesystem of ``image`` (or ``options.layer``) as one tar at ``dest``
    (atomically: a temp file next to it, then a rename), or to ``stdout`` when ``dest`` is ``-``.
    Raises OutputError if it cannot be written, and the reader's errors if a layer is bad."""
    dest = os.fspath(dest)
    plan = _plan(image, options.layer, options.max_layer_size)
    result = Exported(dest, "tar")
    if dest == "-":
        if stdout is None:
            raise OutputError("no standard output to write the tar to")
        try:
            _run(image, plan, _TarSink(stdout, result, options))
            stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise _write_error("standard output", err) from err
        return result
    full = os.path.abspath(dest)
    parent = os.path.dirname(full)
    if os.path.isdir(full):
        raise OutputError(f"cannot write the tar to {dest}: it is a directory")
    if not os.path.isdir(parent):
        raise OutputError(f"cannot write {dest}: directory {parent} does not exist")
    if _is_input(image, full):
        raise OutputError(f"refusing to write the tar over the input archive {dest}")
    remove_stale_temps(parent)
    tmp = _temp_name(parent)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise _write_error(dest, err) from err
    try:
        with os.fdopen(fd, "wb", buffering=CHUNK) as out:
            _run(image, plan, _TarSink(out, result, options))
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, full)
    except OSError as err:
        _remove(tmp)
        raise _write_error(dest, err) from err
    except BaseException:
        _remove(tmp)
        raise
    return result


def export_dir(image: Image, dest: str | os.PathLike, options: ExportOptions = ExportOptions()) -> Exported:
    """Write the merged filesystem of ``image`` (or ``options.layer``) into directory ``dest``,
    which must not exist or be empty. It is built in a temp directory next to ``dest`` and
    renamed into place when complete. Raises OutputError if it cannot be written or if
    ``options.owners`` is asked without root, and the reader's errors if a layer is bad."""
    dest = os.fspath(dest)
    if options.owners and os.geteuid() != 0:
        raise OutputError("--owners needs root: only root can give files to other users")
    plan = _plan(image, options.layer, options.max_layer_size)
    full = os.path.abspath(dest)
    parent = os.path.dirname(full)
    _check_dest_dir(dest, full, parent)
    remove_stale_temps(parent)
    tmp = _temp_name(parent)
    result = Exported(dest, "dir")
    try:
        os.mkdir(tmp, 0o700)
        root_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise _write_error(dest, err) from err
    sink = _DirSink(root_fd, result, options)
    try:
        try:
            _run(image, plan, sink)
        finally:
            sink.close()
            os.close(root_fd)
        os.rename(tmp, full)
    except OSError as err:
        _remove(tmp)
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST) and os.path.lexists(full):
            raise OutputError(f"cannot write {dest}: it appeared meanwhile and is not empty") from err
        raise _write_error(dest, err) from err
    except BaseException:
        _remove(tmp)
        raise
    return result


def _is_input(image: Image, full: str) -> bool:
    try:
        return bool(image.source) and os.path.samefile(full, image.source)
    except OSError:
        return False


def _check_dest_dir(dest: str, full: str, parent: str) -> None:
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        if not os.path.isdir(parent):
            raise OutputError(f"cannot write {dest}: directory {parent} does not exist") from None
        return
    except OSError as err:
        raise _write_error(dest, err) from err
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot export to {dest}: it exists and is not a directory")
    try:
        if os.listdir(full):
            raise OutputError(f"cannot export to {dest}: the directory is not empty")
    except OSError as err:
        raise _write_error(dest, err) from err
