"""The merged filesystem of an image: the only place that knows whiteouts, opaque dirs and
shadowing.

OCI image spec, "Representing Changes" (image-layer.md): a file ``.wh.NAME`` deletes ``NAME``
(and its subtree) from the layers below; ``.wh..wh..opq`` in a directory hides every child
that lower layers gave it. Whiteouts never delete entries of their own layer. A non-directory
entry over a directory replaces the whole subtree (as overlayfs shows it). Imports only the model.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Iterator

from slimmer.model import DIR, Entry, Image, Layer

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OVERWRITTEN = "overwritten"
DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Version:
    """A path's entry as one layer gives it."""

    layer: int
    entry: Entry


@dataclass(frozen=True, slots=True)
class Shadowed:
    """An earlier version of a path that layer ``by_layer`` overwrote or deleted."""

    path: str
    layer: int
    entry: Entry
    by_layer: int
    how: str  # OVERWRITTEN or DELETED


def whiteout_target(path: str) -> tuple[str, str] | None:
    """Return ("opaque", dir) or ("whiteout", deleted_path) for a whiteout entry path, else None."""
    if WHITEOUT_PREFIX not in path:
        return None
    base = path.rpartition("/")[2]
    if not base.startswith(WHITEOUT_PREFIX):
        return None
    parent = posixpath.dirname(path)
    if base == OPAQUE:
        return ("opaque", parent)
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return ("opaque", parent) if base == OPAQUE else ("other", parent)
    name = base[len(WHITEOUT_PREFIX):]
    if name in ("", ".", ".."):
        return ("other", parent)
    return ("whiteout", posixpath.join(parent, name) if parent else name)


def is_whiteout(entry: Entry) -> bool:
    """Return whether ``entry`` is a whiteout or an opaque marker rather than a file."""
    path = entry.path
    return WHITEOUT_PREFIX in path and path.rpartition("/")[2].startswith(WHITEOUT_PREFIX)


class MergedFS:
    """The image's filesystem after stacking its layers, plus what stacking hid.

    ``final`` maps each path to its final version; directories that deeper entries imply but
    no layer lists exist without a version. ``shadowed`` lists every earlier version that a
    later layer overwrote or deleted.
    """

    def __init__(self) -> None:
        self.final: dict[str, Version] = {}
        self._dirs: dict[str, set[str]] = {"": set()}  # directory -> names below it
        self.shadowed: list[Shadowed] = []

    # -- queries ---------------------------------------------------------------------------

    def get(self, path: str) -> Version | None:
        """Return the final version of ``path``, or None if the merged filesystem lacks it."""
        return self.final.get(path)

    def exists(self, path: str) -> bool:
        """Return whether ``path`` exists (as an entry, or as a directory implied by one)."""
        return path in self.final or path in self._dirs

    def is_dir(self, path: str) -> bool:
        """Return whether ``path`` is a directory (listed or implied)."""
        return path in self._dirs

    def walk(self) -> Iterator[tuple[str, Version | None]]:
        """Yield (path, final version) for every path, sorted (parents before children).
        Directories implied by deeper entries but never listed have version None."""
        final = self.final
        for path in sorted(set(final).union(self._dirs)):
            if path:
                yield path, final.get(path)

    def files(self) -> Iterator[tuple[str, Version]]:
        """Yield (path, version) for every final entry (implied directories left out)."""
        return iter(self.final.items())

    def children(self, path: str) -> list[str]:
        """Return the names directly below directory ``path`` ("" is the root)."""
        return sorted(self._dirs.get(path, ()))

    # -- building --------------------------------------------------------------------------

    def _ensure_dir(self, path: str, layer: int) -> set[str]:
        """Return the children set of directory ``path``, creating it and its parents."""
        kids = self._dirs.get(path)
        if kids is not None:
            return kids
        parent, _, name = path.rpartition("/")
        self._ensure_dir(parent, layer).add(name)
        old = self.final.get(path)
        if old is not None and old.entry.kind != DIR:
            # a deeper entry turns a lower non-directory into a directory
            self.shadowed.append(Shadowed(path, old.layer, old.entry, layer, OVERWRITTEN))
            del self.final[path]
        kids = self._dirs[path] = set()
        return kids

    def _remove(self, path: str, by: int, how: str) -> None:
        """Remove ``path`` and its subtree, recording every version as shadowed."""
        stack = [path]
        final, dirs = self.final, self._dirs
        while stack:
            p = stack.pop()
            old = final.pop(p, None)
            if old is not None:
                self.shadowed.append(Shadowed(p, old.layer, old.entry, by, how))
            kids = dirs.pop(p, None)
            if kids:
                stack.extend(f"{p}/{name}" for name in kids)

    def delete(self, path: str, by: int) -> None:
        """Apply a whiteout: remove ``path`` and its subtree."""
        parent, _, name = path.rpartition("/")
        kids = self._dirs.get(parent)
        if not kids or name not in kids:
            return
        kids.discard(name)
        self._remove(path, by, DELETED)

    def make_opaque(self, path: str, by: int) -> None:
        """Apply an opaque marker: hide every child lower layers gave directory ``path``."""
        kids = self._dirs.get(path)
        if not kids:
            return
        for name in list(kids):
            self._remove(f"{path}/{name}" if path else name, by, DELETED)
        kids.clear()

    def add(self, entry: Entry, layer: int) -> None:
        """Put ``entry`` of ``layer`` in place, shadowing what was there."""
        path = entry.path
        parent, _, name = path.rpartition("/")
        kids = self._dirs.get(parent)
        if kids is None:
            kids = self._ensure_dir(parent, layer)
        old = self.final.get(path)
        if old is not None:
            self.shadowed.append(Shadowed(path, old.layer, old.entry, layer, OVERWRITTEN))
        if entry.kind == DIR:
            if path not in self._dirs:
                self._dirs[path] = set()
        elif path in self._dirs:
            below = self._dirs.pop(path)
            for child in below:
                self._remove(f"{path}/{child}", layer, OVERWRITTEN)
        kids.add(name)
        self.final[path] = Version(layer, entry)


def apply_layer(fs: MergedFS, layer: Layer, index: int) -> None:
    """Stack ``layer`` (the ``index``-th) onto ``fs``: its whiteouts first, then its entries."""
    adds = []
    for entry in layer.entries:
        if WHITEOUT_PREFIX not in entry.path:
            adds.append(entry)
            continue
        target = whiteout_target(entry.path)
        if target is None:
            adds.append(entry)
        elif target[0] == "whiteout":
            fs.delete(target[1], index)
        elif target[0] == "opaque":
            fs.make_opaque(target[1], index)
    for entry in adds:
        fs.add(entry, index)


def merge(image: Image, upto: int | None = None) -> MergedFS:
    """Return the merged filesystem of ``image`` (of its first ``upto`` layers if given)."""
    fs = MergedFS()
    for i, layer in enumerate(image.layers[:upto]):
        apply_layer(fs, layer, i)
    return fs
