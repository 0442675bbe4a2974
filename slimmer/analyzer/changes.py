"""What each layer did to the layers below it, and which versions later layers shadow.

A *version* is a path as one layer gives it. Its mark says what it did: added the path,
modified it (replaced an earlier version; a directory listed again with the same mode and
owner is left unchanged), or, for what a layer's whiteouts and opaque dirs delete, removed
it. It is *shadowed later* when a later layer overwrites or deletes it. Everything is read
from the records of ``slimmer.layers`` (the merged filesystem and its shadowed versions): the
layers are not merged again and no whiteout name is looked at here. The terminal explorer's
trees and the HTML page's layer view both read it; ``category_of`` gives any version the
category the attribution found for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from slimmer.analyzer.attribution import Attribution
from slimmer.layers import DELETED, MergedFS, Shadowed
from slimmer.model import DIR, Entry

ADDED = "+"
MODIFIED = "~"
REMOVED = "-"
UNCHANGED = " "
MARKS = (ADDED, MODIFIED, REMOVED, UNCHANGED)


@dataclass(frozen=True, slots=True)
class Change:
    """One thing a layer did to ``path``: the version it gives (ADDED, MODIFIED, or UNCHANGED
    for a directory listed again) or, marked REMOVED, the version its whiteouts deleted;
    ``layer`` is the layer of that version (for REMOVED, the layer that gave what was deleted)."""

    path: str
    entry: Entry
    layer: int
    mark: str


class LayerChanges:
    """The marks of every version of one merged filesystem, and what each layer deleted."""

    def __init__(self, fs: MergedFS):
        self.fs = fs
        self.deleted: dict[int, list[Shadowed]] = defaultdict(list)  # by layer: what its whiteouts deleted
        self.replaced: dict[tuple[str, int], Entry] = {}  # (path, layer) -> the earlier entry it replaced
        self.later: dict[tuple[str, int], int] = {}  # (path, layer) -> the layer that shadowed it
        self.shadowed_paths: set[str] = set()
        self._own: dict[int, list[tuple[str, Entry]]] | None = None
        for s in fs.shadowed:  # in the order the layers were stacked: the last record of a key wins
            self.later[(s.path, s.layer)] = s.by_layer
            self.shadowed_paths.add(s.path)
            if s.layer < s.by_layer:
                self.replaced[(s.path, s.by_layer)] = s.entry
                if s.how == DELETED:
                    self.deleted[s.by_layer].append(s)

    def mark(self, path: str, layer: int, entry: Entry) -> str:
        """Return ADDED, MODIFIED or UNCHANGED for the version ``layer`` gives ``path``."""
        old = self.replaced.get((path, layer))
        if old is None:
            return ADDED
        if entry.kind == DIR and old.kind == DIR and (old.mode, old.uid, old.gid) == (entry.mode, entry.uid, entry.gid):
            return UNCHANGED
        return MODIFIED

    def shadowed_later(self, path: str, layer: int) -> bool:
        """Return whether a later layer overwrites or deletes the version ``layer`` gives ``path``."""
        return self.later.get((path, layer), -1) > layer

    def of_layer(self, layer: int) -> list[Change]:
        """Return what ``layer`` did: every version it gives, marked, and what it deleted
        (a path it deleted and gave again is one MODIFIED change)."""
        own = self._versions().get(layer, [])
        out = [Change(path, entry, layer, self.mark(path, layer, entry)) for path, entry in own]
        given = {path for path, _ in own}
        out.extend(Change(s.path, s.entry, s.layer, REMOVED) for s in self.deleted.get(layer, ())
                   if s.path not in given)
        return out

    def _versions(self) -> dict[int, list[tuple[str, Entry]]]:
        """The versions each layer gives, grouped once: final ones and those shadowed by a
        later layer (a path a layer lists twice counts once, as its last entry)."""
        if self._own is None:
            own: dict[int, list[tuple[str, Entry]]] = defaultdict(list)
            for path, version in self.fs.files():
                own[version.layer].append((path, version.entry))
            for s in self.fs.shadowed:
                if s.by_layer > s.layer:
                    own[s.layer].append((s.path, s.entry))
            self._own = own
        return self._own


def category_of(attr: Attribution) -> Callable[[str, int], str | None]:
    """Return the lookup of a file version's category: the attribution's for a final file,
    else for a version stacked below (None for what is not a file with bytes)."""
    files = {f.path: f for f in attr.files}
    waste = {(w.layer, w.path): w for w in attr.waste}

    def category(path: str, layer: int) -> str | None:
        fact = files.get(path)
        if fact is not None and fact.layer == layer:
            return fact.category
        w = waste.get((layer, path))
        return w.category if w is not None else None

    return category
