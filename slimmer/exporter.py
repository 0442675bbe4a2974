"""The exporter: an image's merged root filesystem (or one layer as it is) written to a
directory or as one tar, like ``docker export``, without ever writing outside the destination.

How it stays safe with untrusted images:
- What to write comes from the model: ``slimmer.layers.merge`` names the final version of every
  path; each layer's tar is then streamed once and only the members that are final versions are
  written, each path exactly once, so nothing is ever overwritten or unlinked.
- Each layer is read again through the verified re-stream (``slimmer.tar.restream``): it must
  agree with the reader's scan member by member and hash to the layer's digest and diff_id; a
  file changed since the scan is an error, and no output appears.
- A directory export creates every path relative to an open directory fd, one component at a
  time with ``O_NOFOLLOW``: no symlink (absolute, ``..``, a loop) is ever followed, whichever
  member created it. A hard link names an output path written before it (its source, found by
  ``slimmer.layers.hardlink_sources``, in the same layer or one below), so it never reaches
  outside either; a link whose source is not in the final filesystem carries the bytes itself.
- Sparse files stay sparse: holes in a directory export, a sparse member in a tar.
- Device nodes and setuid/setgid bits (and the ``security.capability`` xattr in a tar) are
  written only when asked; ownership is applied to a directory only when asked and root.
- Output is atomic (``slimmer.atomic``): a tar goes to a temp file next to DEST, a directory to a
  temp directory next to DEST, renamed into place when complete; a later run removes the temps
  a killed process left.

Imports the model, ``slimmer.layers``, ``slimmer.tar``, ``slimmer.atomic`` and the errors; never
the reader or the analyzer.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import os
import stat
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from slimmer.atomic import atomic_dir, atomic_file, output_error
from slimmer.errors import FormatError, LimitError, NoSuchLayerError, OutputError
from slimmer.layers import MergedFS, hardlink_sources, merge
from slimmer.model import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry, Image, Layer
from slimmer.tar.codec import CompressingWriter, compression_for, is_tar_name
from slimmer.tar.restream import restream
from slimmer.tar.scan import Header
from slimmer.tar.writer import CAPABILITY_KEYS, XATTR_PREFIXES, TarWriter, member_info

__all__ = [
    "ExportOptions",
    "Exported",
    "export",
    "export_dir",
    "export_tar",
]

CHUNK = 1 << 20
_OPEN_DIRS = 64  # parent directory fds a directory export keeps open
DEFAULT_MAX_LAYER_SIZE = 64 << 30
_SETID = stat.S_ISUID | stat.S_ISGID
# A PAX mtime may be any number; a file system takes what fits in time_t (clamped to years 1-9999)
_TIME_RANGE = (-62135596800, 253402300799)
_MAX_ID = (1 << 32) - 2  # uid/gid (-1 means "unchanged" to chown)


@dataclass(frozen=True)
class ExportOptions:
    """What to export and what to allow.

    ``to`` is "dir", "tar" or "auto" (a tar when DEST is ``-`` or named as a tar: ``.tar``,
    ``.tar.gz``, ``.tgz``, ``.tar.zst``, ``.tar.xz``). ``compression`` of a tar: "auto" (what
    the name says; none for ``-``), "none", "gzip", "zstd" or "xz". ``force`` replaces a
    DEST that exists (a file, or a directory that is not empty).
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
    compression: str = "auto"
    force: bool = False


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
    for k, entry in enumerate(layer.entries):
        fs.add(entry, index, k)
    return fs


def _plan(image: Image, only: int | None, max_layer_size: int) -> _Plan:
    if only is None:
        fs = merge(image)
        indexes = range(len(image.layers))
        sources = hardlink_sources(image)
    else:
        if not 0 <= only < len(image.layers):
            count = len(image.layers)
            span = f"layers 0-{count - 1}" if count else "no layers"
            raise NoSuchLayerError(f"{image.source or 'the image'} has no layer {only}: it has {span}")
        fs = _single_layer_fs(image.layers[only], only)
        indexes = range(only, only + 1)
        # one layer as it is: its hard links name earlier members of the same layer only
        alone = hardlink_sources(dataclasses.replace(image, layers=(image.layers[only],)))
        sources = {(only, k): (only, m) for (_l, k), (_s, m) in alone.items()}
    dirs = [(path, version.entry if version else None) for path, version in fs.walk()
            if version is None or version.entry.kind == DIR]
    actions: dict[int, dict[int, _Write | _Link]] = {}
    written_as: dict[tuple[int, int], str] = {}  # member holding data -> output path that holds it
    for i in indexes:
        layer = image.layers[i]
        for k in sorted(_final_ordinals(fs, layer, i)):
            entry = layer.entries[k]
            if entry.kind != HARDLINK:
                actions.setdefault(i, {})[k] = _Write(entry.path)
                written_as[(i, k)] = entry.path
                continue
            src = sources[(i, k)]
            if src in written_as:
                actions.setdefault(i, {})[k] = _Link(entry.path, written_as[src])
            else:
                # the data's own member is not final (overwritten or deleted): this link carries it
                actions.setdefault(src[0], {})[src[1]] = _Write(entry.path)
                written_as[src] = entry.path
    for i, acts in actions.items():
        layer = image.layers[i]
        size = sum(layer.entries[k].size for k, act in acts.items() if isinstance(act, _Write))
        if size > max_layer_size:
            raise LimitError(f"layer {i} ({layer.diff_id[:19]}) would write {size} bytes of files, past "
                             f"--max-layer-size ({max_layer_size} bytes); refusing to export it")
    return _Plan(dirs, actions)


def _final_ordinals(fs: MergedFS, layer: Layer, index: int) -> set[int]:
    """Return the positions in ``layer``'s tar of the non-directory members that are final
    versions (of a path given twice, the later member)."""
    last: dict[str, int] = {}
    for k, entry in enumerate(layer.entries):
        version = fs.get(entry.path)
        if version is not None and version.layer == index and version.index == k and entry.kind != DIR:
            last[entry.path] = k
    return set(last.values())


# ---- reading one layer again, verified -----------------------------------------------------


def _stream_layer(image: Image, index: int, actions: dict[int, _Write | _Link], sink: _Sink) -> None:
    layer = image.layers[index]

    def visit(k: int, entry: Entry, header: Header | None):
        act = actions.get(k)
        return sink.member(act, entry, header) if act is not None else None

    restream(layer, visit, f"{image.source or 'image'}: layer {index} ({layer.diff_id[:19]})")


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

    def member(self, act: _Write | _Link, entry: Entry, header: Header | None):
        """Write ``act`` for the member ``entry``; return the sink for its data, if any."""
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class _TarSink(_Sink):
    """Writes the output tar (PAX format) to an open binary stream."""

    def __init__(self, out: BinaryIO, result: Exported, options: ExportOptions):
        super().__init__(result, options)
        self.tw = TarWriter(out)

    def directory(self, path: str, entry: Entry | None) -> None:
        _check_relative(path)
        info = tarfile.TarInfo(path)
        info.type = tarfile.DIRTYPE
        info.uname = info.gname = ""
        if entry is not None:
            info.mode = self.mode(path, entry.mode, DIR)
            info.uid, info.gid, info.mtime = entry.uid, entry.gid, entry.mtime
        else:
            info.mode = 0o755
        self.tw.add(info)
        self.count(DIR)

    def member(self, act: _Write | _Link, entry: Entry, header: Header | None):
        path = act.path
        _check_relative(path)
        kind = HARDLINK if isinstance(act, _Link) else entry.kind
        if isinstance(act, _Link) and act.target in self.skipped:
            self.skipped.add(path)
            return None
        if not self.allowed(path, kind):
            return None
        info = member_info(entry, header, path)
        info.mode = self.mode(path, entry.mode, kind)
        info.pax_headers = {k: v for k, v in info.pax_headers.items() if k.startswith(XATTR_PREFIXES)
                            and (self.options.setuid or k not in CAPABILITY_KEYS)}
        if isinstance(act, _Link):
            info.type, info.linkname, info.size = tarfile.LNKTYPE, act.target, 0
            self.tw.add(info)
            self.count(HARDLINK)
            return None
        if kind == FILE:
            info.type = tarfile.REGTYPE
            self.tw.begin(info, header.sparse if header is not None else None)
            self.count(FILE, entry.size)
            return self.tw
        self.tw.add(info)
        self.count(kind)
        return None

    def finish(self) -> None:
        self.tw.close()

    def abandon(self) -> None:
        """Drop the tar without its end-of-archive blocks: a cut stream must not look complete."""
        self.tw._closed = True


class _FileData:
    """The data sink of one regular file of a directory export; a sparse file's regions are
    written at their offsets, leaving holes between them."""

    def __init__(self, fd: int, sink: _DirSink, entry: Entry, mode: int, name: str,
                 sparse: tuple[tuple[int, int], ...] | None):
        self.fd, self.sink, self.entry, self.mode, self.name = fd, sink, entry, mode, name
        self.regions = list(sparse) if sparse is not None else None
        self.region = 0
        self.done = 0  # bytes written of the current region

    def write(self, data) -> None:
        view = memoryview(data)
        if self.regions is None:
            while view:
                view = view[os.write(self.fd, view):]
            return
        while view:
            if self.region >= len(self.regions):
                raise FormatError(f"{self.name!r}: more data than its sparse map holds")
            offset, length = self.regions[self.region]
            take = min(length - self.done, len(view))
            written = os.pwrite(self.fd, view[:take], offset + self.done)
            self.done += written
            view = view[written:]
            if self.done >= length:
                self.region, self.done = self.region + 1, 0

    def end(self) -> None:
        try:
            if self.regions is not None:
                os.ftruncate(self.fd, self.entry.size)
            self.sink.finish_file(self.fd, self.entry, self.mode, self.name)
        finally:
            self.sink.open_files.discard(self.fd)
            os.close(self.fd)


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
        self.open_files: set[int] = set()  # a file being written (closed here if the export fails)

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])
        while self.open_files:
            os.close(self.open_files.pop())

    def _open_dir(self, path: str) -> int:
        """Return a new fd of directory ``path`` ("" is the root), opened without following links,
        one component at a time from the deepest ancestor already open (a tree 3,000 deep is
        not walked from the root for every directory in it)."""
        base, rest = path, ""
        while base and base not in self._fds:
            base, _, name = base.rpartition("/")
            rest = f"{name}/{rest}" if rest else name
        fd = os.dup(self._fds[base] if base else self.root_fd)
        if not rest:
            return fd
        try:
            for part in rest.split("/"):
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

    def member(self, act: _Write | _Link, entry: Entry, header: Header | None):
        path = act.path
        pfd, name = self._parent(path)
        if isinstance(act, _Link):
            if act.target in self.skipped:
                self.skipped.add(path)
                return None
            tfd, tname = self._open_dir(act.target.rpartition("/")[0]), act.target.rpartition("/")[2]
            try:
                os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(tfd)
            self.count(HARDLINK)
            return None
        kind = entry.kind
        if not self.allowed(path, kind):
            return None
        mode = self.mode(path, entry.mode, kind)
        if kind == FILE:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
            self.open_files.add(fd)
            self.count(FILE, entry.size)
            return _FileData(fd, self, entry, mode, name, header.sparse if header is not None else None)
        if kind == SYMLINK:
            if "\0" in entry.link:
                raise OutputError(f"cannot create symlink {path!r}: its target holds a NUL byte")
            os.symlink(entry.link, name, dir_fd=pfd)
        elif kind == FIFO:
            os.mkfifo(name, 0o600, dir_fd=pfd)
        else:
            major = header.devmajor if header is not None else 0
            minor = header.devminor if header is not None else 0
            if not (0 <= major < 1 << 32 and 0 <= minor < 1 << 32):
                raise OutputError(f"cannot create device {name!r}: device number {major},{minor} is out of range")
            os.mknod(name, 0o600 | (stat.S_IFCHR if kind == CHAR else stat.S_IFBLK), os.makedev(major, minor),
                     dir_fd=pfd)
        if self.chown:
            os.chown(name, *_ids(entry.uid, entry.gid, name), dir_fd=pfd, follow_symlinks=False)
        if kind != SYMLINK:
            # our own fresh node in a directory only we write to: no link to follow here
            os.chmod(name, mode, dir_fd=pfd)
        os.utime(name, _times(entry.mtime), dir_fd=pfd, follow_symlinks=False)
        self.count(kind)
        return None

    def finish_file(self, fd: int, entry: Entry, mode: int, name: str) -> None:
        """Give a written file its owner, mode and mtime."""
        if self.chown:
            os.fchown(fd, *_ids(entry.uid, entry.gid, name))
        os.fchmod(fd, mode)  # after chown, which clears setuid bits
        os.utime(fd, _times(entry.mtime))

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


# ---- placement ------------------------------------------------------------------------


def output_kind(dest: str, to: str = "auto", compression: str = "auto") -> str:
    """Return "tar" or "dir": what ``to`` says, else a tar when ``dest`` is ``-``, is named
    as a tar (``.tar``, ``.tar.gz``, ``.tgz``, ...) or a compression is asked for."""
    if to not in ("auto", "dir", "tar"):
        raise ValueError(f"to must be auto, dir or tar, not {to!r}")
    if to != "auto":
        return to
    if dest == "-" or is_tar_name(dest) or compression_for(dest) != "none" or compression not in ("auto", "none"):
        return "tar"
    return "dir"


def _compression(dest: str, given: str) -> str:
    if given != "auto":
        return given
    return "none" if dest == "-" else compression_for(dest)


def export(image: Image, dest: str | os.PathLike, options: ExportOptions = ExportOptions(),
           stdout: BinaryIO | None = None) -> Exported:
    """Export ``image`` to ``dest`` as ``options.to`` says (a directory, a tar file, or ``-``:
    a tar on ``stdout``); return what was written."""
    dest = os.fspath(dest)
    if output_kind(dest, options.to, options.compression) == "tar":
        return export_tar(image, dest, options, stdout)
    if dest == "-":
        raise OutputError("a directory export needs a directory path, not -")
    return export_dir(image, dest, options)


def _run(image: Image, plan: _Plan, sink: _Sink) -> None:
    try:
        for path, entry in plan.dirs:
            sink.directory(path, entry)
        for i in sorted(plan.actions):
            _stream_layer(image, i, plan.actions[i], sink)
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
            out = CompressingWriter(stdout, _compression(dest, options.compression))
            _run(image, plan, _TarSink(out, result, options))  # type: ignore[arg-type]
            out.close()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise output_error("standard output", err) from err
        return result
    full = os.path.abspath(dest)
    parent = os.path.dirname(full)
    if os.path.isdir(full):
        raise OutputError(f"cannot write the tar to {dest}: it is a directory")
    if not os.path.isdir(parent):
        raise OutputError(f"cannot write {dest}: directory {parent} does not exist")
    if _is_input(image, full):
        raise OutputError(f"refusing to write the tar over the input archive {dest}")
    if os.path.lexists(full) and not options.force:
        raise OutputError(f"cannot write the tar to {dest}: it exists (give --force to replace it)")
    with atomic_file(dest, mode=0o644, buffering=CHUNK) as raw:
        out = CompressingWriter(raw, _compression(dest, options.compression))
        _run(image, plan, _TarSink(out, result, options))  # type: ignore[arg-type]
        out.close()
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
    _check_dest_dir(dest, full, parent, options.force)
    result = Exported(dest, "dir")
    with atomic_dir(dest, replace=options.force) as tmp:
        root_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        sink = _DirSink(root_fd, result, options)
        try:
            _run(image, plan, sink)
        finally:
            sink.close()
            os.close(root_fd)
    return result


def _is_input(image: Image, full: str) -> bool:
    try:
        return bool(image.source) and os.path.samefile(full, image.source)
    except OSError:
        return False


def _check_dest_dir(dest: str, full: str, parent: str, force: bool = False) -> None:
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        if not os.path.isdir(parent):
            raise OutputError(f"cannot write {dest}: directory {parent} does not exist") from None
        return
    except OSError as err:
        raise output_error(dest, err) from err
    if force:
        return  # replaced once the new tree is complete
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot export to {dest}: it exists and is not a directory (give --force to replace it)")
    try:
        if os.listdir(full):
            raise OutputError(f"cannot export to {dest}: the directory is not empty (give --force to replace it)")
    except OSError as err:
        raise output_error(dest, err) from err
