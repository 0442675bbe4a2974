"""The bytes of chosen files of the merged filesystem, for the static analysis that needs to
look inside them (ELF headers, shebang lines, /etc/passwd).

``Contents.fetch`` takes a batch of paths and reads each layer that holds one of them once
more, through the verified re-stream (``slimmer.tar.restream``: to the layer's end, its
digests checked), copying each wanted file into a scratch directory as it passes. The caller
owns the scratch directory (it lives beside the output and is removed with it). Imports only
the model, ``slimmer.layers``, ``slimmer.tar`` and the rewriter's members.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from slimmer.errors import FormatError, OutputError
from slimmer.layers import MergedFS
from slimmer.model import FILE, HARDLINK, Image
from slimmer.rewriter.members import Member, MemberIndex, where
from slimmer.tar.restream import restream


class Contents:
    """Spooled copies of final-version files, fetched in batches."""

    def __init__(self, image: Image, fs: MergedFS, scratch: Path, index: MemberIndex | None = None):
        self.image = image
        self.fs = fs
        self.scratch = scratch
        self.index = index or MemberIndex(image, fs)
        self._spooled: dict[Member, Path] = {}
        self._of_path: dict[str, Member] = {}
        self.layer_passes = 0  # how many layer streams were opened (for tests and bench notes)

    def fetch(self, paths: Iterable[str]) -> None:
        """Make the bytes of every listed path (a final regular file or hard link) available
        to ``open``; other paths are ignored."""
        wanted: dict[int, set[int]] = {}
        for path in paths:
            if path in self._of_path:
                continue
            version = self.fs.get(path)
            if version is None or version.entry.kind not in (FILE, HARDLINK):
                continue
            source = self.index.source_of(self.index.final(version))
            if self.image.layers[source[0]].entries[source[1]].kind != FILE:
                continue  # a hard link to a symlink: no bytes of its own
            self._of_path[path] = source
            if source not in self._spooled:
                wanted.setdefault(source[0], set()).add(source[1])
        for layer in sorted(wanted):
            self._spool_layer(layer, wanted[layer])

    def _spool_layer(self, layer: int, indexes: set[int]) -> None:
        self.layer_passes += 1
        files: dict[int, Path] = {}

        def visit(index, entry, header):
            if index not in indexes:
                return None
            dest = self.scratch / f"c{layer}-{index}"
            files[index] = dest
            return FileSink(dest)

        restream(self.image.layers[layer], visit, where(self.image, layer))
        missing = indexes - set(files)
        if missing:
            raise FormatError(f"{where(self.image, layer)}: the tar stream ended before member {min(missing)}")
        for index, dest in files.items():
            self._spooled[(layer, index)] = dest

    def has(self, path: str) -> bool:
        """Return whether ``path``'s bytes were fetched."""
        return path in self._of_path

    def spooled(self, member: Member) -> Path | None:
        """Return the scratch file holding ``member``'s bytes, if fetched."""
        return self._spooled.get(member)

    def open(self, path: str) -> BinaryIO:
        """Open the fetched bytes of ``path`` (``fetch`` it first)."""
        return open(self._spooled[self._of_path[path]], "rb")

    def size(self, path: str) -> int:
        """Return the byte count of fetched ``path``."""
        return self._spooled[self._of_path[path]].stat().st_size

    def head(self, path: str, n: int = 512) -> bytes:
        """Return the first ``n`` bytes of fetched ``path``."""
        with self.open(path) as f:
            return f.read(n)

    def text(self, path: str, limit: int = 1 << 20) -> str:
        """Return fetched ``path`` as text (at most ``limit`` bytes; undecodable bytes escaped)."""
        with self.open(path) as f:
            return f.read(limit).decode("utf-8", "surrogateescape")


class FileSink:
    """A re-stream sink that copies a member's data into a new file."""

    def __init__(self, dest: Path):
        self.dest = dest
        try:
            self._f = open(dest, "xb")
        except OSError as err:
            raise OutputError(f"cannot write {dest}: {err.strerror or err}") from err

    def write(self, data) -> None:
        try:
            self._f.write(data)
        except OSError as err:
            self._f.close()
            raise OutputError(f"cannot write {self.dest}: {err.strerror or err}") from err

    def end(self) -> None:
        self._f.close()
