"""What changed between two images (an original and its slim copy, say): paths added, removed
and changed in the merged filesystems; bytes by category and by package; layers shared or not.

A path *changed* when its kind, size, mode, owner, mtime or link target differ (bytes of equal
size and metadata are not compared). Removed paths are attributed (category, package) with the
first image's attribution, added and changed ones with the second's: a slim image usually has
no package database left. Imports the model, ``slimmer.layers`` and the analyzer's attribution.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from slimmer.analyzer import categories as cats
from slimmer.analyzer.attribution import NO_PACKAGE, Attribution, attribute
from slimmer.layers import MergedFS, is_whiteout, merge
from slimmer.model import DIR, FILE, Entry, Image, layer_size

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"
SHARED = "shared"
ONLY_A = "only in A"
ONLY_B = "only in B"


@dataclass(frozen=True)
class PathChange:
    """One path that differs. Sizes are 0 where the path is absent (and for non-files)."""

    path: str
    change: str  # ADDED, REMOVED or CHANGED
    kind: str
    size_a: int
    size_b: int
    layer_a: int | None
    layer_b: int | None
    category: str
    package: str
    fields: tuple[str, ...] = ()  # for CHANGED: kind, size, mode, owner, mtime, link

    @property
    def delta(self) -> int:
        """Bytes B has more than A at this path (negative when smaller or gone)."""
        return self.size_b - self.size_a


@dataclass(frozen=True)
class GroupDelta:
    """Paths and bytes that went, came and changed within one category or package."""

    name: str
    removed_files: int = 0
    removed_bytes: int = 0
    added_files: int = 0
    added_bytes: int = 0
    changed_files: int = 0
    changed_bytes: int = 0  # size_b - size_a summed over changed paths

    @property
    def net_bytes(self) -> int:
        """Bytes B has more than A in this group."""
        return self.added_bytes - self.removed_bytes + self.changed_bytes


@dataclass(frozen=True)
class LayerRow:
    """A layer of either image: shared when the other image has the same diff_id."""

    status: str
    index_a: int | None
    index_b: int | None
    diff_id: str
    size: int
    files: int
    step: str


@dataclass(frozen=True)
class ImageDiff:
    """The whole comparison of image A with image B."""

    a_bytes: int  # file bytes of A's merged filesystem
    b_bytes: int
    a_stored: int  # bytes of A's layer blobs as stored
    b_stored: int
    changes: tuple[PathChange, ...]  # largest byte change first
    by_category: tuple[GroupDelta, ...]
    by_package: tuple[GroupDelta, ...]
    layers: tuple[LayerRow, ...]
    notes: tuple[str, ...] = ()

    def count(self, change: str) -> int:
        """Return how many paths had ``change`` (ADDED, REMOVED or CHANGED)."""
        return sum(1 for c in self.changes if c.change == change)


def _fields(a: Entry, b: Entry) -> tuple[str, ...]:
    out = []
    if a.kind != b.kind:
        out.append("kind")
    if a.size != b.size:
        out.append("size")
    if a.mode != b.mode:
        out.append("mode")
    if (a.uid, a.gid) != (b.uid, b.gid):
        out.append("owner")
    if a.mtime != b.mtime:
        out.append("mtime")
    if a.link != b.link:
        out.append("link")
    return tuple(out)


def _facts(att: Attribution | None) -> dict[str, tuple[str, str]]:
    if att is None:
        return {}
    return {f.path: (f.category, f.package or NO_PACKAGE) for f in att.files}


def _size(entry: Entry) -> int:
    return entry.size if entry.kind == FILE else 0


def path_changes(fs_a: MergedFS, fs_b: MergedFS, facts_a: dict | None = None,
                 facts_b: dict | None = None) -> list[PathChange]:
    """Return the paths that differ between two merged filesystems, largest change first."""
    facts_a, facts_b = facts_a or {}, facts_b or {}
    a = dict(fs_a.files())
    b = dict(fs_b.files())
    out = []

    def about(path: str, entry: Entry, facts: dict) -> tuple[str, str]:
        if path in facts:
            return facts[path]
        return cats.categorize(path, entry), NO_PACKAGE

    for path, va in a.items():
        vb = b.get(path)
        if vb is None:
            category, package = about(path, va.entry, facts_a)
            out.append(PathChange(path, REMOVED, va.entry.kind, _size(va.entry), 0, va.layer, None, category, package))
            continue
        changed = _fields(va.entry, vb.entry)
        if changed:
            category, package = about(path, vb.entry, facts_b)
            if package == NO_PACKAGE and path in facts_a:
                package = facts_a[path][1]
            out.append(PathChange(path, CHANGED, vb.entry.kind, _size(va.entry), _size(vb.entry), va.layer, vb.layer,
                                  category, package, changed))
    for path, vb in b.items():
        if path not in a:
            category, package = about(path, vb.entry, facts_b)
            out.append(PathChange(path, ADDED, vb.entry.kind, 0, _size(vb.entry), None, vb.layer, category, package))
    out.sort(key=lambda c: (-abs(c.delta), c.path))
    return out


def group(changes: list[PathChange], key) -> list[GroupDelta]:
    """Return the changes summed per ``key(change)`` (a category or package), largest first."""
    rows: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for c in changes:
        row = rows[key(c)]
        is_file = c.kind != DIR
        if c.change == REMOVED:
            row[0] += is_file
            row[1] += c.size_a
        elif c.change == ADDED:
            row[2] += is_file
            row[3] += c.size_b
        else:
            row[4] += is_file
            row[5] += c.delta
    out = [GroupDelta(name, *values) for name, values in rows.items()]
    out.sort(key=lambda g: (-(g.removed_bytes + g.added_bytes + abs(g.changed_bytes)), g.name))
    return out


def layer_rows(a: Image, b: Image) -> list[LayerRow]:
    """Return A's layers then B's own, each marked shared (same diff_id in the other) or not."""
    in_a = {lay.diff_id for lay in a.layers}
    in_b = {lay.diff_id: i for i, lay in reversed(list(enumerate(b.layers)))}
    rows = []
    for i, lay in enumerate(a.layers):
        j = in_b.get(lay.diff_id)
        rows.append(LayerRow(SHARED if j is not None else ONLY_A, i, j, lay.diff_id, layer_size(lay),
                             _files(lay), _step(lay)))
    for j, lay in enumerate(b.layers):
        if lay.diff_id not in in_a:
            rows.append(LayerRow(ONLY_B, None, j, lay.diff_id, layer_size(lay), _files(lay), _step(lay)))
    return rows


def _files(layer) -> int:
    return sum(1 for e in layer.entries if e.kind != DIR and not is_whiteout(e))


def _step(layer) -> str:
    return layer.history.created_by if layer.history else ""


def diff_images(a: Image, b: Image, read: bool = True) -> ImageDiff:
    """Return what changed from image ``a`` to image ``b``. With ``read``, file contents are
    read for categories libmagic decides and for package ownership; without, paths only."""
    fs_a, fs_b = merge(a), merge(b)
    att_a = attribute(a, fs_a, read=read)
    att_b = attribute(b, fs_b, read=read)
    changes = path_changes(fs_a, fs_b, _facts(att_a), _facts(att_b))
    notes = [f"A: {n}" for n in att_a.notes] + [f"B: {n}" for n in att_b.notes]
    return ImageDiff(
        a_bytes=sum(_size(v.entry) for _p, v in fs_a.files()), b_bytes=sum(_size(v.entry) for _p, v in fs_b.files()),
        a_stored=sum(lay.stored_size for lay in a.layers), b_stored=sum(lay.stored_size for lay in b.layers),
        changes=tuple(changes), by_category=tuple(group(changes, lambda c: c.category)),
        by_package=tuple(group(changes, lambda c: c.package)), layers=tuple(layer_rows(a, b)), notes=tuple(notes))
