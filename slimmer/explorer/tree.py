"""The file tree of one layer, built when that layer is first shown and never as widgets.

Two modes, as dive has them: ``CHANGES`` is what the layer itself holds (its entries, marked
added or modified) plus what its whiteouts and opaque dirs delete (marked removed, shown in
place with the deleted versions' sizes); ``MERGED`` is the merged filesystem up to the layer,
its own changes marked, older versions unmarked, and what it deletes shown in place too.

A ``View`` is a handful of flat arrays indexed by node number, a parent always numbered
before its children, so every aggregate is one backward pass. The screen never holds one
widget per file: it asks ``Rows`` (the nodes currently visible, given which directories are
open and what the filter lets through) for the few lines it draws.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from slimmer.explorer.index import REMOVED, UNCHANGED, ImageIndex
from slimmer.layers import is_whiteout, visible_at
from slimmer.model import DIR, Entry

CHANGES = "changes"
MERGED = "merged"
MODES = (CHANGES, MERGED)

# node flags
SHADOWED = 1  # a later layer overwrites or deletes this version (not said of directories)
OPAQUE = 2  # an opaque dir of this layer: it hides what the layers below put in it
NOTHING = 4  # a whiteout of a path the layers below do not have

BY_NAME = "name"
BY_SIZE = "size"


class View:
    """The tree of layer ``layer`` in ``mode``. Node 0 is the root; for node n, ``path[n]``
    is its model path, ``entry[n]`` the version's entry (None for a directory only implied
    by deeper paths, or a whiteout that deletes nothing), ``vlayer[n]`` the layer that gave
    that version, ``mark[n]`` one of the index's marks, ``kids[n]`` its children (None for
    a non-directory), ``size[n]``/``files[n]`` the bytes and non-directories below it."""

    def __init__(self, layer: int, mode: str):
        self.layer = layer
        self.mode = mode
        self.path: list[str] = [""]
        self.parent = array("i", [-1])
        self.entry: list[Entry | None] = [None]
        self.vlayer = array("i", [-1])
        self.mark = bytearray(UNCHANGED.encode())
        self.flags = bytearray(1)
        self.kids: list[list[int] | None] = [[]]
        self.at: dict[str, int] = {"": 0}
        self.size = array("q")
        self.files = array("q")

    def __len__(self) -> int:
        return len(self.path)

    def node(self, path: str) -> int | None:
        """Return the node of model path ``path``, or None."""
        return self.at.get(path)

    def name(self, n: int) -> str:
        return self.path[n].rpartition("/")[2]

    def is_dir(self, n: int) -> bool:
        return self.kids[n] is not None

    def mark_of(self, n: int) -> str:
        return chr(self.mark[n])

    def depth(self, n: int) -> int:
        """Return the depth of node ``n`` (0 for the entries of the root)."""
        return self.path[n].count("/")

    def ancestors(self, n: int) -> list[int]:
        """Return the directories above ``n``, nearest first, the root left out."""
        out = []
        n = self.parent[n]
        while n > 0:
            out.append(n)
            n = self.parent[n]
        return out

    # -- building --------------------------------------------------------------------------

    def _dir(self, path: str) -> int:
        """Return the node of directory ``path``, creating it and its parents (implied)."""
        n = self.at.get(path)
        if n is not None:
            if self.kids[n] is None:
                self.kids[n] = []
            return n
        missing = [path]  # no recursion on the depth of a path
        parent = path.rpartition("/")[0]
        while parent not in self.at:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for d in reversed(missing):
            self._new(d, None, -1, UNCHANGED, 0, True)
        return self.at[path]

    def _new(self, path: str, entry: Entry | None, vlayer: int, mark: str, flags: int, is_dir: bool) -> int:
        parent = self.at.get(path.rpartition("/")[0])
        if parent is None:
            parent = self._dir(path.rpartition("/")[0])
        siblings = self.kids[parent]
        if siblings is None:
            siblings = self.kids[parent] = []
        n = len(self.path)
        self.path.append(path)
        self.parent.append(parent)
        self.entry.append(entry)
        self.vlayer.append(vlayer)
        self.mark.append(ord(mark))
        self.flags.append(flags)
        self.kids.append([] if is_dir else None)
        siblings.append(n)
        self.at[path] = n
        return n

    def put(self, path: str, entry: Entry | None, vlayer: int, mark: str, flags: int = 0) -> int:
        """Set the version shown at ``path`` (a later call for the same path replaces it)."""
        is_dir = entry is not None and entry.kind == DIR
        n = self.at.get(path)
        if n is None:
            return self._new(path, entry, vlayer, mark, flags, is_dir)
        self.entry[n] = entry
        self.vlayer[n] = vlayer
        self.mark[n] = ord(mark)
        self.flags[n] = flags
        if is_dir and self.kids[n] is None:
            self.kids[n] = []
        return n

    def finish(self) -> View:
        """Compute the sizes below every node and sort children by name; return self."""
        self.size, self.files = aggregate(self, None)
        path = self.path
        for kids in self.kids:
            if kids and len(kids) > 1:
                kids.sort(key=path.__getitem__)
        return self


def aggregate(view: View, shown: bytearray | None) -> tuple[array, array]:
    """Return (bytes, non-directories) below each node, counting only ``shown`` nodes if
    given. A removed directory counts what was deleted below it; any other counts what is
    there, not what its layer deletes."""
    count = len(view.path)
    size = array("q", bytes(8 * count))
    files = array("q", bytes(8 * count))
    parent, entry, kids, mark = view.parent, view.entry, view.kids, view.mark
    removed = ord(REMOVED)
    for n in range(count - 1, 0, -1):
        if shown is not None and not shown[n]:
            continue
        if kids[n] is None:
            e = entry[n]
            if e is not None:
                size[n] += e.size
                files[n] += 1
        p = parent[n]
        if p == 0 or (mark[n] == removed) == (mark[p] == removed):
            size[p] += size[n]
            files[p] += files[n]
    return size, files


def build(ix: ImageIndex, layer: int, mode: str) -> View:
    """Return the tree of ``layer`` in ``mode`` (CHANGES or MERGED)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    view = View(layer, mode)
    if mode == CHANGES:
        items: Iterable[tuple[str, Entry, int]] = (
            (e.path, e, layer) for e in ix.image.layers[layer].entries if not is_whiteout(e))
    else:
        items = ((path, v.entry, v.layer) for path, v in visible_at(ix.fs, layer))
    _fill(view, ix, items, layer)
    put = view.put
    for s in ix.changes.deleted.get(layer, ()):
        n = view.at.get(s.path)
        if n is not None and view.vlayer[n] == layer:
            continue  # deleted, then given again by the same layer: shown as modified
        put(s.path, s.entry, s.layer, REMOVED)
    targets, opaque = ix.whiteouts(layer)
    for path in targets:
        n = view.at.get(path)
        if n is None:
            put(path, None, -1, REMOVED, NOTHING)
        elif view.entry[n] is None and view.mark[n] == ord(UNCHANGED):
            view.mark[n] = ord(REMOVED)  # a directory only deeper paths implied
    for path in opaque:
        n = view._dir(path)
        view.flags[n] |= OPAQUE
    return view.finish()


def _fill(view: View, ix: ImageIndex, items: Iterable[tuple[str, Entry, int]], layer: int) -> None:
    """Put every (path, entry, layer) of ``items`` into ``view``: ``View.put`` unrolled, since
    the merged view of a large image has a node per file."""
    changes = ix.changes
    later, shadowed, mark_of = changes.later, changes.shadowed_paths, changes.mark
    at, paths, parents, entries, vlayers, marks, flags, kids = (view.at, view.path, view.parent, view.entry,
                                                                view.vlayer, view.mark, view.flags, view.kids)
    unchanged = ord(UNCHANGED)
    for path, entry, vlayer in items:
        mark = ord(mark_of(path, vlayer, entry)) if vlayer == layer else unchanged
        flag = SHADOWED if path in shadowed and entry.kind != DIR and later.get((path, vlayer), -1) > vlayer else 0
        n = at.get(path)
        if n is not None:  # the same path twice in one layer: the last one counts
            view.put(path, entry, vlayer, chr(mark), flag)
            continue
        up = path.rpartition("/")[0]
        p = at.get(up)
        if p is None:
            p = view._dir(up)
        siblings = kids[p]
        if siblings is None:
            siblings = kids[p] = []
        n = len(paths)
        paths.append(path)
        parents.append(p)
        entries.append(entry)
        vlayers.append(vlayer)
        marks.append(mark)
        flags.append(flag)
        kids.append([] if entry.kind == DIR else None)
        siblings.append(n)
        at[path] = n


# ---- what is visible -------------------------------------------------------------------


@dataclass
class Rows:
    """The visible rows of a view: node numbers in display order, and for each node whether
    it is the last visible child of its parent (for the tree's guide lines)."""

    nodes: array
    last: bytearray

    def __len__(self) -> int:
        return len(self.nodes)

    def index(self, n: int) -> int | None:
        """Return the row showing node ``n``, or None."""
        try:
            return self.nodes.index(n)
        except ValueError:
            return None


def rows(view: View, expanded: set[int], shown: bytearray | None, order: Callable[[int], list[int]]) -> Rows:
    """Return the visible rows: children in ``order(node)``, below the ``expanded``
    directories only, and only ``shown`` nodes if given."""
    out = array("i")
    last = bytearray(len(view.path))
    kids = view.kids
    stack: list[list] = [[iter(order(0)), -1]]
    while stack:
        top = stack[-1]
        for n in top[0]:
            if shown is not None and not shown[n]:
                continue
            out.append(n)
            top[1] = n
            if kids[n] and n in expanded:
                stack.append([iter(order(n)), -1])
                break
        else:
            stack.pop()
            if top[1] >= 0:
                last[top[1]] = 1
    return Rows(out, last)


def sorter(view: View, by: str, size: array | None = None) -> Callable[[int], list[int]]:
    """Return the children of a node in display order: by name, or largest first."""
    kids = view.kids
    if by == BY_NAME:
        return lambda n: kids[n] or []
    sizes = size if size is not None else view.size
    path = view.path
    cache: dict[int, list[int]] = {}

    def by_size(n: int) -> list[int]:
        got = cache.get(n)
        if got is None:
            got = cache[n] = sorted(kids[n] or [], key=lambda k: (-sizes[k], path[k]))
        return got

    return by_size


def dirs_to_open(view: View, budget: int, shown: bytearray | None = None) -> set[int]:
    """Return the directories to open first: level by level while the visible rows stay
    within ``budget`` (a small layer opens whole, a huge one shows its top levels)."""
    kids = view.kids
    opened: set[int] = set()
    level = [0]
    visible = 0
    while level:
        nxt: list[int] = []
        for d in level:
            nxt.extend(k for k in kids[d] or () if shown is None or shown[k])
        visible += len(nxt)
        if visible > budget and opened:
            break
        opened.update(level)
        level = [k for k in nxt if kids[k]]
    opened.discard(0)
    return opened

