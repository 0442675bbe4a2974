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


class _DNode:
    __slots__ = ("children", "size", "is_dir", "whiteout")

    def __init__(self) -> None:
        self.children: dict[str, _DNode] = {}
        self.size = 0
        self.is_dir = False
        self.whiteout = False


def _layer_tree(layer) -> _DNode:
    root = _DNode()
    for entry in layer.entries:
        parts = entry.path.split("/")
        if any(p.startswith(".wh..wh.") for p in parts):
            continue  # dive never adds opaque markers (filetree.AddPath)
        node = root
        for part in parts:
            nxt = node.children.get(part)
            if nxt is None:
                nxt = node.children[part] = _DNode()
            node = nxt
        node.size = entry.size
        node.is_dir = entry.kind == DIR
        node.whiteout = parts[-1].startswith(".wh.")
    return root


def _stack(root: _DNode, upper: _DNode) -> None:
    """Stack one of dive's layer trees onto ``root`` (dive's StackTreeRange)."""
    for name, child in upper.children.items():
        if child.whiteout:
            root.children.pop(name[4:], None)
            continue
        have = root.children.get(name)
        if have is None:
            have = root.children[name] = _DNode()
        have.size, have.is_dir = child.size, child.is_dir
        _stack(have, child)


def _subtree_size(node: _DNode) -> int:
    total, stack = 0, [node]
    while stack:
        n = stack.pop()
        total += n.size
        stack.extend(n.children.values())
    return total


def _find(root: _DNode, path: str) -> _DNode | None:
    node = root
    for part in path.split("/"):
        node = node.children.get(part)
        if node is None:
            return None
    return node


class _Abort(Exception):
    pass


def dive_efficiency(image: Image) -> DiveEfficiency:
    """Return dive's efficiency, wasted bytes and inefficient paths for ``image``."""
    cumulative: dict[str, int] = {}
    minimum: dict[str, int] = {}
    layers_of: dict[str, list[int]] = {}
    stacked = _DNode()
    for idx, layer in enumerate(image.layers):
        tree = _layer_tree(layer)

        def visit(node: _DNode, prefix: str) -> None:
            for name in sorted(node.children):
                child = node.children[name]
                path = f"{prefix}/{name}" if prefix else name
                if child.children:
                    visit(child, path)
                    continue
                if child.whiteout:
                    path = f"{prefix}/{name[4:]}" if prefix else name[4:]
                    previous = _find(stacked, path)
                    if previous is None:
                        raise _Abort
                    size = _subtree_size(previous) if previous.is_dir else 0
                else:
                    size = child.size
                cumulative[path] = cumulative.get(path, 0) + size
                minimum[path] = min(minimum.get(path, size), size)
                layers_of.setdefault(path, []).append(idx)

        try:
            visit(tree, "")
        except _Abort:
            pass
        _stack(stacked, tree)
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
