"""What the explorer knows of every version of every path, computed once from one analysis.

A *version* is a path as one layer gives it. Its mark says what it did to the layers below:
added the path, modified it (replaced an earlier version; a directory listed again with the
same mode and owner is left unchanged), or, for what a layer's whiteouts and opaque dirs
delete, removed it. It is *shadowed later* when a later layer overwrites or deletes it. All of
it is read from the records of ``slimmer.layers`` (the merged filesystem the analysis made
and its shadowed versions) and ``slimmer.analyzer`` (category and package of each file): the
layers are not merged again. A finding's files are the versions it claims (``claims_of``),
found in the layers that hold most of their bytes first (``layers_of``). Imports no Textual.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from slimmer.analyzer.attribution import FileFact, WasteFact
from slimmer.analyzer.findings import Finding
from slimmer.analyzer.report import Analysis
from slimmer.layers import (
    DELETED,
    MergedFS,
    Shadowed,
    is_whiteout,
    merge,
    whiteout_target,
)
from slimmer.model import DIR, Entry, Image

ADDED = "+"
MODIFIED = "~"
REMOVED = "-"
UNCHANGED = " "
MARKS = (ADDED, MODIFIED, REMOVED, UNCHANGED)


class ImageIndex:
    """Marks and shadowing of every version of one image, from its merged filesystem; and,
    once its analysis is ``attach``ed, the category and package of every file."""

    def __init__(self, image: Image, fs: MergedFS | None = None, analysis: Analysis | None = None):
        self.image = image
        self.fs: MergedFS = fs if fs is not None else merge(image)
        self.analysis: Analysis | None = None
        self.files: dict[str, FileFact] = {}
        self.waste: dict[tuple[int, str], WasteFact] = {}
        self.packages: dict = {}
        self.deleted: dict[int, list[Shadowed]] = defaultdict(list)  # by layer: what its whiteouts deleted
        self.replaced: dict[tuple[str, int], Entry] = {}  # (path, layer) -> the earlier entry it replaced
        self.later: dict[tuple[str, int], int] = {}  # (path, layer) -> the layer that shadowed it
        self.shadowed_paths: set[str] = set()
        for s in self.fs.shadowed:  # in the order the layers were stacked: the last record of a key wins
            self.later[(s.path, s.layer)] = s.by_layer
            self.shadowed_paths.add(s.path)
            if s.layer < s.by_layer:
                self.replaced[(s.path, s.by_layer)] = s.entry
                if s.how == DELETED:
                    self.deleted[s.by_layer].append(s)
        if analysis is not None:
            self.attach(analysis)

    def attach(self, analysis: Analysis) -> None:
        """Take the categories, packages and findings of the image's analysis."""
        attr = analysis.attribution
        if attr is not None:
            self.files = {f.path: f for f in attr.files}
            self.waste = {(w.layer, w.path): w for w in attr.waste}
            self.packages = {p.key: p for p in attr.packages}
        self.analysis = analysis

    @property
    def layer_count(self) -> int:
        return len(self.image.layers)

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

    def category(self, path: str, layer: int) -> str | None:
        """Return the category of a file version (None for what is not a file with bytes)."""
        fact = self.files.get(path)
        if fact is not None and fact.layer == layer:
            return fact.category
        waste = self.waste.get((layer, path))
        return waste.category if waste is not None else None

    def package(self, path: str, layer: int) -> str | None:
        """Return the key of the package owning a final file version, else None."""
        fact = self.files.get(path)
        return fact.package if fact is not None and fact.layer == layer else None

    def package_name(self, key: str | None) -> str:
        """Return a package's name (``libc6``) for its key (``dpkg:libc6``); "" for None."""
        if not key:
            return ""
        pkg = self.packages.get(key)
        return pkg.name if pkg is not None else key.partition(":")[2] or key

    def whiteouts(self, layer: int) -> tuple[list[str], list[str]]:
        """Return the paths the whiteouts of ``layer`` name and the directories it makes opaque."""
        targets, opaque = [], []
        for entry in self.image.layers[layer].entries:
            if not is_whiteout(entry):
                continue
            kind, path = whiteout_target(entry.path) or ("", "")
            if kind == "whiteout":
                targets.append(path)
            elif kind == "opaque":
                opaque.append(path)
        return targets, opaque


def claims_of(finding: Finding) -> set[tuple[int, str]]:
    """Return the (layer, path) versions a finding points at: what its fix removes, else the
    paths of its evidence."""
    if finding.claims:
        return set(finding.claims)
    out = set()
    for ev in finding.evidence:
        if ev.layer is not None and ev.what.startswith("/") and " " not in ev.what:
            out.add((ev.layer, ev.what[1:]))
    return out


def layers_of(finding: Finding) -> list[int]:
    """Return the layers holding a finding's files, the most bytes first."""
    weight: Counter = Counter()
    for (layer, _path), size in (finding.claims.items() if finding.claims else
                                 ((c, 0) for c in claims_of(finding))):
        weight[layer] += size + 1
    return [layer for layer, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))]
