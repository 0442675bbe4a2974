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
    base = posixpath.basename(path)
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
    return posixpath.basename(entry.path).startswith(WHITEOUT_PREFIX)


class _Node:
    __slots__ = ("version", "children")

    def __init__(self) -> None:
        self.version: Version | None = None
        self.children: dict[str, _Node] | None = None


class MergedFS:
    """The image's filesystem after stacking its layers, plus what stacking hid.

    ``shadowed`` lists every earlier version that a later layer overwrote or deleted.
    """

    def __init__(self) -> None:
        self._root = _Node()
        self._root.children = {}
        self.shadowed: list[Shadowed] = []

    # -- queries ---------------------------------------------------------------------------

    def get(self, path: str) -> Version | None:
        """Return the final version of ``path``, or None if the merged filesystem lacks it."""
        node = self._find(path)
        return node.version if node else None

    def exists(self, path: str) -> bool:
        """Return whether ``path`` exists (as an entry, or as a directory implied by one)."""
        return self._find(path) is not None

    def walk(self) -> Iterator[tuple[str, Version | None]]:
        """Yield (path, final version) for every path, parents before children, sorted by name.
        Directories implied by deeper entries but never listed have version None."""
        stack: list[tuple[str, _Node]] = [("", self._root)]
        while stack:
            prefix, node = stack.pop()
            if node.children:
                for name in sorted(node.children, reverse=True):
                    stack.append((f"{prefix}/{name}" if prefix else name, node.children[name]))
            if prefix:
                yield prefix, node.version

    def files(self) -> Iterator[tuple[str, Version]]:
        """Yield (path, version) for every final entry (implied directories left out)."""
        for path, version in self.walk():
            if version is not None:
                yield path, version

    def children(self, path: str) -> list[str]:
        """Return the names directly below directory ``path`` ("" is the root)."""
        node = self._find(path) if path else self._root
        return sorted(node.children) if node and node.children else []

    # -- building --------------------------------------------------------------------------

    def _find(self, path: str) -> _Node | None:
        node = self._root
        if not path:
            return node
        for part in path.split("/"):
            if not node.children or part not in node.children:
                return None
            node = node.children[part]
        return node

    def _parent(self, path: str, layer: int, create: bool) -> _Node | None:
        node = self._root
        parts = path.split("/")[:-1]
        walked = []
        for part in parts:
            walked.append(part)
            if node.children is None:
                node.children = {}
            child = node.children.get(part)
            if child is None:
                if not create:
                    return None
                child = node.children[part] = _Node()
            elif create and child.version is not None and child.version.entry.kind != DIR:
                # a deeper entry turns a lower non-directory into a directory
                self._hide("/".join(walked), child, layer, OVERWRITTEN)
                child.version = None
            node = child
        return node

    def _hide(self, path: str, node: _Node, by: int, how: str) -> None:
        """Record every version in the subtree at ``node`` as shadowed; drop its children."""
        stack = [(path, node)]
        while stack:
            p, n = stack.pop()
            if n.version is not None:
                self.shadowed.append(Shadowed(p, n.version.layer, n.version.entry, by, how))
            if n.children:
                stack.extend((f"{p}/{name}", child) for name, child in n.children.items())
        node.children = None

    def delete(self, path: str, by: int) -> None:
        """Apply a whiteout: remove ``path`` and its subtree."""
        parent = self._parent(path, by, create=False)
        name = path.rsplit("/", 1)[-1]
        if parent is None or not parent.children or name not in parent.children:
            return
        node = parent.children.pop(name)
        self._hide(path, node, by, DELETED)

    def make_opaque(self, path: str, by: int) -> None:
        """Apply an opaque marker: hide every child lower layers gave directory ``path``."""
        node = self._find(path) if path else self._root
        if node is None or not node.children:
            return
        for name, child in list(node.children.items()):
            self._hide(f"{path}/{name}" if path else name, child, by, DELETED)
        node.children = {}

    def add(self, entry: Entry, layer: int) -> None:
        """Put ``entry`` of ``layer`` in place, shadowing what was there."""
        parent = self._parent(entry.path, layer, create=True)
        assert parent is not None
        if parent.children is None:
            parent.children = {}
        name = entry.path.rsplit("/", 1)[-1]
        node = parent.children.get(name)
        if node is None:
            node = parent.children[name] = _Node()
        else:
            old = node.version
            if old is not None:
                self.shadowed.append(Shadowed(entry.path, old.layer, old.entry, layer, OVERWRITTEN))
            if entry.kind != DIR and node.children:
                for cname, child in node.children.items():
                    self._hide(f"{entry.path}/{cname}", child, layer, OVERWRITTEN)
                node.children = None
        node.version = Version(layer, entry)


def apply_layer(fs: MergedFS, layer: Layer, index: int) -> None:
    """Stack ``layer`` (the ``index``-th) onto ``fs``: its whiteouts first, then its entries."""
    adds = []
    for entry in layer.entries:
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
