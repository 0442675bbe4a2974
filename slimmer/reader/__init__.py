"""Readers: archive bytes in, model Image out. The format is found by looking at the archive
(a table of ``detect`` functions), never by its file name. Imports no analyzer or rewriter.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from slimmer.errors import FormatError, ImageSelectionError, InputError
from slimmer.model import Image, ReadsInto
from slimmer.reader import docker_archive, oci_layout, registry
from slimmer.reader.assemble import Options
from slimmer.reader.store import CompressedStore, DirStore, PipeStore, Store, TarStore
from slimmer.tar.codec import open_outer, outer_compression

__all__ = ["FORMATS", "Options", "open_image"]

# Order matters: Docker 25+ archives are also OCI layouts; manifest.json carries their tags.
FORMATS = (docker_archive, oci_layout, registry)


F_SETPIPE_SZ = 1031  # Linux fcntl: a 1 MiB pipe buffer takes several times fewer wake-ups


def _widen_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
    except (OSError, ImportError):
        pass  # not a pipe, or not Linux: reading works the same, only slower


def _compression_of_file(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return outer_compression(f.read(8))
    except OSError as err:
        raise InputError(f"cannot open {path}: {err.strerror}") from err


def _is_terminal(stream: BinaryIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def open_store(source: str | os.PathLike, options: Options, stdin: BinaryIO | None = None) -> Store:
    """Return the store for a path, a directory, or ``-`` (standard input)."""
    if str(source) == "-":
        # the unbuffered file: the read-ahead thread may still be blocked in a read when the
        # process exits, and a buffered reader's lock held then aborts the interpreter
        stream: BinaryIO = stdin if stdin is not None else sys.stdin.buffer.raw  # type: ignore[union-attr]
        if _is_terminal(stream):
            raise InputError("standard input is a terminal, not an archive: pipe one in "
                             "(docker save app | slimmer analyze -) or name a file")
        if stdin is None:
            _widen_pipe(0)
        peekable = _Peekable(stream)
        compression = outer_compression(peekable.peek_head())
        if compression != "none":
            return PipeStore(open_outer(peekable, "<stdin>", compression), "<stdin>", options.scan())
        return PipeStore(peekable, "<stdin>", options.scan())
    path = Path(source)
    try:
        st = os.stat(path)
    except OSError as err:
        raise InputError(f"cannot open {path}: {err.strerror}") from err
    if stat.S_ISDIR(st.st_mode):
        return DirStore(path)
    if stat.S_ISREG(st.st_mode) and st.st_size:
        compression = _compression_of_file(path)
        if compression != "none":
            return CompressedStore(path, compression, options.scan())
    if stat.S_ISFIFO(st.st_mode):
        with open(path, "rb") as f:
            _widen_pipe(f.fileno())
            return PipeStore(f, str(path), options.scan())
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file, a directory or a pipe")
    if st.st_size == 0:
        raise FormatError(f"{path} is empty, expected an image archive")
    return TarStore(path)


TRANSPORTS = ("docker-archive", "oci-archive", "oci")
# a registry reference: [host[:port]/]name[:tag][@digest], lower-case name components
_REFERENCE = re.compile(r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
                        r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")


def parse_source(source: str | os.PathLike, image: str | None = None) -> tuple[str, str | None]:
    """Return (path, image reference) for what a user typed: a path, ``-``, or a transport
    name as skopeo, syft and crane users type it (``docker-archive:PATH[:REF]``,
    ``oci-archive:PATH[:TAG]``, ``oci:DIR[:TAG]``); the reference picks the image as --image
    does (given both, they must agree). A bare registry reference that is not a path is an
    error saying how to make an archive of it."""
    text = os.fspath(source)
    if text == "-" or os.path.exists(text):
        return text, image
    transport, sep, rest = text.partition(":")
    if sep and transport in TRANSPORTS and rest:
        path, ref = rest, None
        if not os.path.exists(rest):
            # PATH:REF where REF may hold colons itself (host:port/name:tag): the first split
            # that leaves an existing path wins
            for at in (i for i, ch in enumerate(rest) if ch == ":"):
                if os.path.exists(rest[:at]):
                    path, ref = rest[:at], rest[at + 1:] or None
                    break
        if ref and image and ref != image:
            raise ImageSelectionError(f"{text} names the image {ref!r} but --image asks for {image!r}")
        return path, image or ref
    archive_like = text.endswith((".tar", ".tgz", ".gz", ".zst", ".xz", ".json"))
    if not text.startswith(("/", ".", "~")) and _REFERENCE.match(text) and not archive_like:
        raise InputError(f"cannot open {text}: no such file. slimmer reads image archives offline; to read "
                           f"the image {text}, save it first: `docker save -o image.tar {text}` or `skopeo copy "
                           f"docker://{text} docker-archive:image.tar:{text}`, then give image.tar")
    return text, image


def open_image(source: str | os.PathLike, options: Options | None = None, stdin: BinaryIO | None = None) -> Image:
    """Read the image archive at ``source``: a file (maybe compressed as a whole with gzip, zstd
    or xz), an OCI layout directory, ``-`` for standard input, or a transport name
    (``docker-archive:``, ``oci-archive:``, ``oci:`` with an optional ``:tag``)."""
    options = options or Options()
    path, ref = parse_source(source, options.image)
    if ref != options.image:
        options = dataclasses.replace(options, image=ref)
    store = open_store(path, options, stdin)
    for fmt in FORMATS:
        if fmt.detect(store):
            return fmt.read(store, options)
    raise FormatError(f"{store.where}: not an image archive (no manifest.json, no OCI index.json "
                      f"with oci-layout, no registry storage)")


class _Peekable(ReadsInto, io.RawIOBase):
    """A stream whose first bytes can be looked at before it is read (standard input); reads
    go to the raw stream's descriptor where it has one, for the pipe store's read-ahead."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._head = b""

    def peek_head(self, n: int = 8) -> bytes:
        while len(self._head) < n:
            more = self._raw.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head

    def detach_head(self) -> bytes:
        """Return the bytes peeked at and forget them: the descriptor is read from here on."""
        head, self._head = self._head, b""
        return head

    def fileno(self) -> int:
        if self._head:
            raise io.UnsupportedOperation("bytes already taken from the descriptor")
        return self._raw.fileno()

    def read(self, n: int | None = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._raw.read(-1 if n is None else n)
