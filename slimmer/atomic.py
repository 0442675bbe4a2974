"""Staged output: every file and directory slimmer writes appears at its destination only when
complete, and a failure leaves nothing behind.

- A file is written to a temp file beside its destination (flushed to disk by a thread of its
  own as it grows, so the fsync at the end has little left to wait for), fsynced, renamed into
  place (``rename`` replaces a file atomically on POSIX), then the directory is fsynced so the
  rename itself survives a crash (``atomic_file``, ``write_bytes``).
- A directory is built in a temp directory beside its destination and renamed into place, which
  succeeds only if the destination does not exist or is an empty directory (``atomic_dir``).
- Scratch space (``scratch_dir``) is a temp directory removed however the block ends.

Every temp name is ``.slimmer-tmp-<pid>-<random>``: unique per process and per call, so two runs
writing the same destination at once never share a temp file, and a later run can tell the
temps of a killed process (its pid is gone) from those of a live one (``remove_stale_temps``,
called before each staged output, in the destination's directory). On any failure the temp is
removed and an ``OSError`` becomes an ``OutputError`` naming the destination.

Imports only the errors.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from slimmer.errors import OutputError

__all__ = [
    "TEMP_PREFIX",
    "atomic_dir",
    "atomic_file",
    "fsync_dir",
    "output_error",
    "remove_stale_temps",
    "scratch_dir",
    "temp_path",
    "write_bytes",
]

log = logging.getLogger(__name__)

TEMP_PREFIX = ".slimmer-tmp-"
_TEMP_RE = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")


def temp_path(directory: str | os.PathLike, tag: str = "") -> str:
    """Return a fresh temp name in ``directory``: ``.slimmer-tmp-<pid>-<random>[-tag]``."""
    suffix = f"-{tag}" if tag else ""
    return os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{suffix}")


def output_error(dest: str | os.PathLike, err: OSError, what: str | None = None) -> OutputError:
    """Return the OutputError for ``err`` while writing ``dest`` (the ``what``, if named)."""
    reason = err.strerror or err
    if what:
        return OutputError(f"cannot write the {what} to {dest}: {reason}")
    return OutputError(f"cannot write {dest}: {reason}")


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
    removed: list[str] = []
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


def remove_tree(path: str | os.PathLike) -> None:
    """Remove the directory tree at ``path`` without recursion and with one directory open at
    a time: a tree an image made may be deeper than the interpreter's recursion limit, the
    descriptor limit and PATH_MAX (shutil.rmtree fails on all three). Symlinks are removed,
    never followed."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags)
    names: list[str] = []
    try:
        while True:
            below = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        below = entry.name
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if below is not None:
                child = os.open(below, flags, dir_fd=fd)
                os.close(fd)
                fd = child
                names.append(below)
                continue
            if not names:
                break
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def _remove(path: str | os.PathLike) -> bool:
    """Remove a file, a symlink or a whole directory tree; return False if some of it stays."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            remove_tree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return True
    except OSError as err:
        log.warning("cannot remove %s: %s", path, err)
        return False
    return True


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries to disk (after a rename into it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _parent(dest: str | os.PathLike) -> str:
    return os.path.dirname(os.path.abspath(dest))


@contextlib.contextmanager
def atomic_file(dest: str | os.PathLike, what: str | None = None, mode: int = 0o666,
                buffering: int = -1) -> Iterator[BinaryIO]:
    """Yield a binary file open for writing (buffered, ``buffering`` bytes if given); on a clean
    exit of the block it is fsynced and renamed to ``dest`` (replacing a file there), otherwise
    removed. ``mode`` is the new file's permission bits (before the umask). Raises OutputError,
    naming ``what`` if given, when the file cannot be written; an OSError raised by the block
    itself becomes one too."""
    parent = _parent(dest)
    remove_stale_temps(parent)
    tmp = temp_path(parent)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as err:
        raise output_error(dest, err, what) from err
    try:
        with _Staged(io.FileIO(fd, "wb"), buffering if buffering > 0 else io.DEFAULT_BUFFER_SIZE) as out:
            yield out
            out.settle()
            os.fsync(out.fileno())
        os.rename(tmp, dest)
        fsync_dir(parent)
    except OSError as err:
        _remove(tmp)
        raise output_error(dest, err, what) from err
    except BaseException:
        _remove(tmp)
        raise


# A staged file hands what it holds to the kernel every WRITEBACK bytes, and a thread of its own
# makes that durable (fdatasync) while the writing goes on: the disk works while the file is
# still being made, and the fsync at the commit waits for the last pages only, not for a whole
# archive written at memory speed.
WRITEBACK = 16 << 20
_datasync = getattr(os, "fdatasync", os.fsync)


class _Syncer:
    """A thread that flushes one file to disk each time it is poked (pokes while it is busy
    count once). An error is kept for ``stop``: the kernel reports a failed write-back once
    per open file, so it must not be lost here."""

    def __init__(self, fd: int):
        self.fd = fd
        self.error: OSError | None = None
        self._wake = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="slimmer-datasync", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._done:
                return
            try:
                _datasync(self.fd)
            except OSError as err:
                self.error = err
                return

    def stop(self) -> None:
        """End the thread; raise the error a flush met, if one did."""
        self._done = True
        self._wake.set()
        self._thread.join()
        if self.error is not None:
            raise self.error


class _Staged(io.BufferedWriter):
    """The file ``atomic_file`` yields: buffered, and made durable as it grows (``_Syncer``)."""

    _pending = 0
    _syncer: _Syncer | None = None

    def write(self, data, /) -> int:
        n = super().write(data)
        self._pending += n
        if self._pending >= WRITEBACK:
            self._pending = 0
            super().flush()
            if self._syncer is None:
                self._syncer = _Syncer(self.fileno())
            self._syncer.poke()
        return n

    def settle(self) -> None:
        """Flush what is buffered and end the syncing thread (raising what it met)."""
        self.flush()
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.stop()

    def close(self) -> None:
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            with contextlib.suppress(OSError):  # failing anyway: the temp file is removed
                syncer.stop()
        super().close()


def write_bytes(dest: str | os.PathLike, data: bytes, what: str | None = None) -> Path:
    """Write ``data`` to ``dest`` atomically (``atomic_file``); return the path."""
    with atomic_file(dest, what) as out:
        out.write(data)
    return Path(dest)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, what: str | None = None, replace: bool = False) -> Iterator[Path]:
    """Yield a new empty directory (mode 0700) to build ``dest`` in; on a clean exit of the block
    it is fsynced and renamed to ``dest``, which must then not exist or be an empty directory
    (with ``replace``, whatever is at ``dest`` is moved aside first and removed once the new
    tree is in place), otherwise it is removed with all it holds. The block sets the final
    modes and fsyncs what it wants durable inside. Raises OutputError as ``atomic_file`` does."""
    parent = _parent(dest)
    remove_stale_temps(parent)
    tmp = temp_path(parent)
    try:
        os.mkdir(tmp, 0o700)
    except OSError as err:
        raise output_error(dest, err, what) from err
    try:
        yield Path(tmp)
        fsync_dir(tmp)
        if replace and os.path.lexists(dest):
            _swap(tmp, dest)
        else:
            os.rename(tmp, dest)
        fsync_dir(parent)
    except OSError as err:
        _remove(tmp)
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST) and os.path.lexists(dest):
            raise OutputError(f"cannot write {dest}: it appeared meanwhile and is not empty") from err
        raise output_error(dest, err, what) from err
    except BaseException:
        _remove(tmp)
        raise


def _swap(new: str, dest: str | os.PathLike) -> None:
    """Put the tree ``new`` at ``dest`` in place of what is there, which is removed after."""
    old = temp_path(_parent(dest), "old")
    os.rename(dest, old)
    try:
        os.rename(new, dest)
    except OSError:
        os.rename(old, dest)
        raise
    _remove(old)


@contextlib.contextmanager
def scratch_dir(beside: str | os.PathLike | None = None, tag: str = "") -> Iterator[Path]:
    """Yield a fresh scratch directory beside ``beside`` (on the same file system, so what is
    staged there can be renamed into place), or in the system temp directory; remove it however
    the block ends. Raises OutputError (naming ``beside``, the output it is for) when it cannot
    be made."""
    parent = _parent(beside) if beside is not None else tempfile.gettempdir()
    if beside is not None:
        # not in the shared temp directory: a pid there may belong to another pid namespace
        remove_stale_temps(parent)
    path = temp_path(parent, tag)
    try:
        os.mkdir(path, 0o700)
    except OSError as err:
        if beside is not None:
            raise output_error(beside, err) from err
        raise OutputError(f"cannot create a scratch directory in {parent}: {err.strerror or err}") from err
    try:
        yield Path(path)
    finally:
        _remove(path)
