"""What the explorer knows of every version of every path, computed once from one analysis.

The marks (added, modified, removed, unchanged) and the shadowing of every version come from
``slimmer.analyzer.changes`` (read from the merged filesystem the analysis made: the layers
are not merged again), the category and package of each file from the attribution. A
finding's files are the versions it claims (``slimmer.analyzer.findings.claims_of``). Imports
no Textual.
"""

from __future__ import annotations

from collections.abc import Callable

from slimmer.analyzer.attribution import FileFact
from slimmer.analyzer.changes import ADDED, MARKS, MODIFIED, REMOVED, UNCHANGED, LayerChanges, category_of
from slimmer.analyzer.report import Analysis
from slimmer.layers import MergedFS, is_whiteout, merge, whiteout_target
from slimmer.model import Image

__all__ = ["ADDED", "MARKS", "MODIFIED", "REMOVED", "UNCHANGED", "ImageIndex"]


def _no_category(path: str, layer: int) -> str | None:
    return None


class ImageIndex:
    """Marks and shadowing of every version of one image, from its merged filesystem; and,
    once its analysis is ``attach``ed, the category and package of every file."""

    def __init__(self, image: Image, fs: MergedFS | None = None, analysis: Analysis | None = None):
        self.image = image
        self.fs: MergedFS = fs if fs is not None else merge(image)
        self.changes = LayerChanges(self.fs)
        self.analysis: Analysis | None = None
        self.files: dict[str, FileFact] = {}
        self.packages: dict = {}
        self._category: Callable[[str, int], str | None] = _no_category
        if analysis is not None:
            self.attach(analysis)

    def attach(self, analysis: Analysis) -> None:
        """Take the categories, packages and findings of the image's analysis."""
        attr = analysis.attribution
        if attr is not None:
            self.files = {f.path: f for f in attr.files}
            self.packages = {p.key: p for p in attr.packages}
            self._category = category_of(attr)
        self.analysis = analysis

    @property
    def layer_count(self) -> int:
        return len(self.image.layers)

    def category(self, path: str, layer: int) -> str | None:
        """Return the category of a file version (None for what is not a file with bytes)."""
        return self._category(path, layer)

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
