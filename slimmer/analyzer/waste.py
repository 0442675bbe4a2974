"""Wasted bytes: dive's efficiency rules, reproduced exactly, beside the true figure.

dive (wagoodman/dive, dive/filetree/efficiency.go) visits the *leaf* nodes of every layer's
tree, keyed by path (whiteouts by the path they delete). A whiteout is sized by the subtree it
deletes when that was a directory in the layers below, and 0 when it was a file; a whiteout of
a path the lower layers lack aborts dive's visit of that layer. A path met in two or more
layers is "inefficient" and *all* its copies count as wasted, the kept copy too (dive issue
#684). Efficiency = sum of each path's smallest copy / sum of all copies. dive ignores opaque
markers (``.wh..wh..opq``). The true waste is what the layers hold but the merged filesystem
does not: every version that a later layer overwrote or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from slimmer.layers import MergedFS
from slimmer.model import DIR, Image, layer_size


@dataclass(frozen=True)
class WastedPath:
    """One path found in several layers (dive's "inefficiency")."""

    path: str
    count: int
    size: int  # cumulative bytes of all copies (dive's figure)
    layers: tuple[int, ...]


@dataclass(frozen=True)
class DiveEfficiency:
    """dive's numbers for an image: what `dive --json` reports."""

    efficiency: float
    wasted_bytes: int  # dive's inefficientBytes: includes the kept copy
    user_wasted_percent: float  # wasted / bytes of all layers but the first
    size_bytes: int
    user_size_bytes: int
    paths: tuple[WastedPath, ...]  # largest first


class _DiveStack:
    """dive's stacked tree of the layers seen so far (filetree.StackTreeRange): paths with
    (size, is_dir); intermediate nodes dive creates carry an empty payload (0, False)."""

    def __init__(self) -> None:
        self.info: dict[str, tuple[int, bool]] = {}
        self.kids: dict[str, set[str]] = {"": set()}

    def _node(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        if parent and parent not in self.info:
            self._node(parent)
            self.info[parent] = (0, False)
        self.kids.setdefault(parent, set()).add(name)

    def add(self, path: str, info: tuple[int, bool]) -> None:
        if path not in self.info:
            self._node(path)
        self.info[path] = info

    def remove(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        if parent in self.kids:
            self.kids[parent].discard(name)
        stack = [path]
        while stack:
            p = stack.pop()
            self.info.pop(p, None)
            stack.extend(f"{p}/{n}" for n in self.kids.pop(p, ()))

    def subtree_size(self, path: str) -> int:
        total, stack = 0, [path]
        while stack:
            p = stack.pop()
            total += self.info.get(p, (0, False))[0]
            stack.extend(f"{p}/{n}" for n in self.kids.get(p, ()))
        return total


def _layer_nodes(layer) -> tuple[dict[str, tuple[int, bool]], set[str]]:
    """Return dive's tree of one layer: payload per listed path, and the set of inner nodes."""
    nodes: dict[str, tuple[int, bool]] = {}
    inner: set[str] = set()
    for entry in layer.entries:
        path = entry.path
        if ".wh..wh." in path and any(p.startswith(".wh..wh.") for p in path.split("/")):
            continue  # dive never adds opaque markers (filetree.AddPath)
        nodes[path] = (entry.size, entry.kind == DIR)
        parent = path.rpartition("/")[0]
        while parent and parent not in inner:
            inner.add(parent)
            parent = parent.rpartition("/")[0]
    return nodes, inner


def dive_efficiency(image: Image) -> DiveEfficiency:
    """Return dive's efficiency, wasted bytes and inefficient paths for ``image``."""
    cumulative: dict[str, int] = {}
    minimum: dict[str, int] = {}
    layers_of: dict[str, list[int]] = {}
    stacked = _DiveStack()
    for idx, layer in enumerate(image.layers):
        nodes, inner = _layer_nodes(layer)
        leaves = [p for p in nodes if p not in inner]
        whiteouts = [p for p in leaves if p.rpartition("/")[2].startswith(".wh.")]
        if whiteouts:
            # order matters only here: dive stops visiting a layer at a whiteout of a path the
            # lower layers lack, walking children sorted by name
            leaves.sort(key=lambda p: p.split("/"))
        for path in leaves:
            size, _is_dir = nodes[path]
            parent, _, name = path.rpartition("/")
            if name.startswith(".wh."):
                path = f"{parent}/{name[4:]}" if parent else name[4:]
                previous = stacked.info.get(path)
                if previous is None:
                    break
                size = stacked.subtree_size(path) if previous[1] else 0
            cumulative[path] = cumulative.get(path, 0) + size
            if path in minimum:
                if size < minimum[path]:
                    minimum[path] = size
                layers_of[path].append(idx)
            else:
                minimum[path] = size
                layers_of[path] = [idx]
        for path in whiteouts:
            parent, _, name = path.rpartition("/")
            stacked.remove(f"{parent}/{name[4:]}" if parent else name[4:])
        for path in inner:
            if path not in nodes:
                stacked.add(path, (0, False))
        for path, info in nodes.items():
            if not path.rpartition("/")[2].startswith(".wh."):
                stacked.add(path, info)
    discovered = sum(cumulative.values())
    efficiency = 1.0 if discovered == 0 else sum(minimum.values()) / discovered
    paths = sorted((WastedPath(p, len(ls), cumulative[p], tuple(ls)) for p, ls in layers_of.items() if len(ls) >= 2),
                   key=lambda w: (-w.size, w.path))
    wasted = sum(w.size for w in paths)
    sizes = [layer_size(layer) for layer in image.layers]
    user = sum(sizes[1:])
    return DiveEfficiency(efficiency, wasted, (wasted / user) if user else 0.0, sum(sizes), user, tuple(paths))


@dataclass(frozen=True)
class TrueWaste:
    """A path version present in a layer but not in the final filesystem."""

    path: str
    size: int
    layer: int  # the layer that holds the bytes
    by_layer: int  # the layer that overwrote or deleted them
    how: str


def true_waste(fs: MergedFS) -> list[TrueWaste]:
    """Return every shadowed version that holds bytes, largest first."""
    out = [TrueWaste(s.path, s.entry.size, s.layer, s.by_layer, s.how) for s in fs.shadowed if s.entry.size]
    out.sort(key=lambda w: (-w.size, w.path))
    return out
