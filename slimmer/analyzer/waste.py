"""Wasted bytes: dive's efficiency rules, reproduced exactly, beside the true figure.

dive (wagoodman/dive, dive/filetree/efficiency.go) visits the *leaf* nodes of every layer's
tree, keyed by path (whiteouts by the path they delete). A whiteout is sized by the subtree it
deletes when that was a directory in the layers below, and 0 when it was a file; a whiteout of
a path the lower layers lack aborts dive's visit of that layer (and, a quirk, lowers the sum of
minimums by 1). Layers stack in dive's order: depth first, children before their directory,
names sorted, starting from a copy of the first layer. A path met in two or more layers is
"inefficient" and *all* its copies count as wasted, the kept copy too (dive issue #684).
Efficiency = sum of each path's smallest copy / sum of all copies. dive ignores opaque markers
(``.wh..wh..opq``). tests/test_dive.py checks all of this against the real dive. The true waste
is what the layers hold but the merged filesystem does not: every version that a later layer
overwrote or deleted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slimmer.layers import MergedFS
from slimmer.model import DIR, KIND_CODES, Image, columns, layer_size


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
    user_wasted_percent: float  # wasted / bytes of all layers but the first: NaN for 0/0, +Inf for n/0
    size_bytes: int
    user_size_bytes: int
    paths: tuple[WastedPath, ...]  # largest first


_EMPTY = (0, False)


class _DiveStack:
    """dive's stacked tree of the layers seen so far (filetree.StackTreeRange): paths with
    (size, is_dir); intermediate nodes dive creates carry an empty payload (0, False). The
    children of each node are indexed only once a whiteout needs them (most layers have
    none, and stacking them is then one dict update)."""

    def __init__(self) -> None:
        self.info: dict[str, tuple[int, bool]] = {}
        self._kids: dict[str, set[str]] | None = None

    def kids(self) -> dict[str, set[str]]:
        if self._kids is None:
            kids: dict[str, set[str]] = {"": set()}
            for path in self.info:
                parent, _, name = path.rpartition("/")
                found = kids.get(parent)
                if found is None:
                    found = kids[parent] = set()
                found.add(name)
            self._kids = kids
        return self._kids

    def _node(self, path: str) -> None:
        """Link ``path`` into the tree, creating the parents dive would create (no recursion on
        the depth of a path)."""
        kids = self.kids()
        missing = []
        parent, _, name = path.rpartition("/")
        while parent and parent not in self.info:
            missing.append((parent, name))
            parent, _, name = parent.rpartition("/")
        kids.setdefault(parent, set()).add(name)
        for node, child in reversed(missing):
            self.info[node] = _EMPTY
            kids.setdefault(node, set()).add(child)

    def add(self, path: str, info: tuple[int, bool]) -> None:
        if path not in self.info:
            self._node(path)
        self.info[path] = info

    def stack(self, nodes: dict[str, tuple[int, bool]], inner: set[str]) -> None:
        """Add a layer's inner nodes (empty payload unless listed) then its listed nodes, in
        any order: a layer without whiteouts stacks to the same tree whatever the order."""
        info = self.info
        if self._kids is not None:
            kids = self._kids
            for path in [p for p in inner if p not in info] + [p for p in nodes if p not in info and p not in inner]:
                parent, _, name = path.rpartition("/")
                found = kids.get(parent)
                if found is None:
                    found = kids[parent] = set()
                found.add(name)
        info.update(dict.fromkeys(inner, _EMPTY))
        info.update(nodes)

    def remove(self, path: str) -> None:
        kids = self.kids()
        parent, _, name = path.rpartition("/")
        if parent in kids:
            kids[parent].discard(name)
        stack = [path]
        while stack:
            p = stack.pop()
            self.info.pop(p, None)
            stack.extend(f"{p}/{n}" for n in kids.pop(p, ()))

    def subtree_size(self, path: str) -> int:
        kids = self.kids()
        total, stack = 0, [path]
        while stack:
            p = stack.pop()
            total += self.info.get(p, _EMPTY)[0]
            stack.extend(f"{p}/{n}" for n in kids.get(p, ()))
        return total


_DIR = KIND_CODES[DIR]


def _layer_nodes(layer) -> tuple[dict[str, tuple[int, bool]], set[str]]:
    """Return dive's tree of one layer: payload per listed path, and the set of inner nodes."""
    cols = columns(layer)
    paths = cols.paths
    if ".wh..wh." not in "\n".join(paths):
        nodes = dict(zip(paths, zip(cols.sizes, map(_DIR.__eq__, cols.kinds))))
        parents = {p.rpartition("/")[0] for p in paths}
    else:
        nodes = {}
        parents = set()
        for path, size, kind in zip(paths, cols.sizes, cols.kinds):
            if ".wh..wh." in path and any(p.startswith(".wh..wh.") for p in path.split("/")):
                # dive never adds opaque markers, but AddPath has already created the parents
                # above the marker: an unlisted parent becomes a node with an empty payload
                parts = path.split("/")
                path = "/".join(parts[:[p.startswith(".wh..wh.") for p in parts].index(True)])
                if not path:
                    continue
                nodes.setdefault(path, _EMPTY)
            else:
                nodes[path] = (size, kind == _DIR)
            parents.add(path.rpartition("/")[0])
    inner: set[str] = set()
    for parent in parents:
        while parent and parent not in inner:
            inner.add(parent)
            parent = parent.rpartition("/")[0]
    return nodes, inner


def _post_order(path: str) -> list:
    """Sort key: dive's depth-first walk, names in Go byte order, children before parents."""
    return [(0, part.encode("utf-8", "surrogateescape")) for part in path.split("/")] + [(1,)]


def dive_efficiency(image: Image) -> DiveEfficiency:
    """Return dive's efficiency, wasted bytes and inefficient paths for ``image``."""
    cumulative: dict[str, int] = {}
    minimum: dict[str, int] = {}
    first_layer: dict[str, int] = {}  # the layer a path was first seen in
    layers_of: dict[str, list[int]] = {}  # every layer, for paths seen in more than one
    stacked = _DiveStack()
    first = _layer_nodes(image.layers[0]) if image.layers else None
    if first:
        # StackTreeRange(trees, 0, idx-1) starts from a copy of the first layer's tree, so the
        # first layer's whiteouts look up paths of that layer itself
        stacked.stack(*first)
    for idx, layer in enumerate(image.layers):
        # one layer's tree at a time: holding every layer's at once doubled the peak memory
        nodes, inner = first if idx == 0 and first is not None else _layer_nodes(layer)
        first = None
        leaves = {p: v[0] for p, v in nodes.items() if p not in inner}
        whiteouts = [p for p in leaves if p.rpartition("/")[2].startswith(".wh.")] \
            if ".wh." in "\n".join(leaves) else []
        if whiteouts:
            # order matters only here: dive stops visiting a layer at a whiteout of a path the
            # lower layers lack, walking children sorted by name
            _visit_leaves(sorted(leaves, key=lambda p: p.split("/")), leaves, stacked, idx, cumulative, minimum,
                          first_layer, layers_of)
        else:
            again = leaves.keys() & first_layer.keys()
            if again:
                _visit_leaves(list(again), leaves, stacked, idx, cumulative, minimum, first_layer, layers_of)
                leaves = {p: size for p, size in leaves.items() if p not in again}
            # paths seen for the first time (a path cumulative holds but first_layer lacks was a
            # whiteout's failed lookup: 0 and -1, which the first copy replaces)
            cumulative.update(leaves)
            minimum.update(leaves)
            first_layer.update(dict.fromkeys(leaves, idx))
        if whiteouts or any(p.rpartition("/")[2].startswith(".wh.") for p in inner):
            # FileTree.Stack visits the layer's nodes children first, names sorted: a whiteout
            # removes only what was stacked before it (a sibling that sorts before ".wh.NAME",
            # such as "-d" or ".cache", is added and then removed)
            for path in sorted(inner | nodes.keys(), key=_post_order):
                parent, _, name = path.rpartition("/")
                if name.startswith(".wh."):
                    stacked.remove(f"{parent}/{name[4:]}" if parent else name[4:])
                else:
                    stacked.add(path, nodes.get(path, _EMPTY))
        else:
            stacked.stack(nodes, inner)
    discovered = sum(cumulative.values())
    efficiency = 1.0 if discovered == 0 else sum(minimum.values()) / discovered
    paths = sorted((WastedPath(p, len(ls), cumulative[p], tuple(ls)) for p, ls in layers_of.items() if len(ls) >= 2),
                   key=lambda w: (-w.size, w.path))
    wasted = sum(w.size for w in paths)
    sizes = [layer_size(layer) for layer in image.layers]
    user = sum(sizes[1:])
    # dive divides as floats: with no bytes above the first layer that is NaN (nothing wasted,
    # every comparison false: its rule passes) or +Inf (waste: its rule fails)
    share = wasted / user if user else (math.inf if wasted else math.nan)
    return DiveEfficiency(efficiency, wasted, share, sum(sizes), user, tuple(paths))


def _visit_leaves(order: list[str], sizes: dict[str, int], stacked: _DiveStack, idx: int, cumulative: dict,
                  minimum: dict, first_layer: dict, layers_of: dict) -> None:
    """dive's visit of one layer's leaves, in ``order``, path by path."""
    for path in order:
        size = sizes[path]
        parent, _, name = path.rpartition("/")
        if name.startswith(".wh."):
            path = f"{parent}/{name[4:]}" if parent else name[4:]
            previous = stacked.info.get(path)
            if previous is None:
                # dive records the path (minimum -1, no copy) before the failed lookup
                # stops its visit of this layer; the -1 lowers the efficiency
                cumulative.setdefault(path, 0)
                minimum.setdefault(path, -1)
                break
            size = stacked.subtree_size(path) if previous[1] else 0
        cumulative[path] = cumulative.get(path, 0) + size
        if minimum.get(path, -1) < 0 or size < minimum[path]:
            minimum[path] = size
        seen = first_layer.get(path)
        if seen is None:
            first_layer[path] = idx
        else:
            layers_of.setdefault(path, [seen]).append(idx)


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
