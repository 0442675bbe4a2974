"""Readers: archive bytes in, model Image out. The format is found by looking at the archive
(a table of ``detect`` functions), never by its file name. Imports no analyzer or rewriter.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from slimmer.errors import FormatError, SlimmerError
from slimmer.model import Image
from slimmer.reader import docker_archive, oci_layout, registry
from slimmer.reader.assemble import Options
from slimmer.reader.store import DirStore, PipeStore, Store, TarStore

__all__ = ["open_image", "Options", "FORMATS"]

# Order matters: Docker 25+ archives are also OCI layouts; manifest.json carries their tags.
FORMATS = (docker_archive, oci_layout, registry)


F_SETPIPE_SZ = 1031  # Linux fcntl: a 1 MiB pipe buffer takes several times fewer wake-ups


def _widen_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
    except (OSError, ImportError):
        pass  # not a pipe, or not Linux: reading works the same, only slower


def open_store(source: str | os.PathLike, options: Options, stdin: BinaryIO | None = None) -> Store:
    """Return the store for a path, a directory, or ``-`` (standard input)."""
    if str(source) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        if stdin is None:
            _widen_pipe(0)
        return PipeStore(stream, "<stdin>", options.scan())
    path = Path(source)
    try:
        st = os.stat(path)
    except OSError as err:
        raise SlimmerError(f"cannot open {path}: {err.strerror}") from err
    if stat.S_ISDIR(st.st_mode):
        return DirStore(path)
    if stat.S_ISFIFO(st.st_mode):
        with open(path, "rb") as f:
            _widen_pipe(f.fileno())
            return PipeStore(f, str(path), options.scan())
    if not stat.S_ISREG(st.st_mode):
        raise SlimmerError(f"{path} is not a regular file, a directory or a pipe")
    if st.st_size == 0:
        raise FormatError(f"{path} is empty, expected an image archive")
    return TarStore(path)


def open_image(source: str | os.PathLike, options: Options | None = None, stdin: BinaryIO | None = None) -> Image:
    """Read the image archive at ``source`` (a file, an OCI layout directory or ``-``)."""
    options = options or Options()
    store = open_store(source, options, stdin)
    for fmt in FORMATS:
        if fmt.detect(store):
            return fmt.read(store, options)
    raise FormatError(f"{store.where}: not an image archive (no manifest.json, no OCI index.json "
                      f"with oci-layout, no registry storage)")
