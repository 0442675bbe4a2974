"""What an audit keeps of one image: its fleet row and the figures the reports ask about
(bytes by category, packages, layers, savings by kind of fix). Numbers only, no text to show.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from slimmer.analyzer.report import Analysis
from slimmer.fleet import FleetRow, row_of
from slimmer.model import Image, layer_size


@dataclass(frozen=True)
class CategoryFigure:
    category: str
    final_bytes: int
    files: int
    wasted_bytes: int


@dataclass(frozen=True)
class PackageFigure:
    manager: str
    name: str
    version: str
    size_bytes: int
    files: int


@dataclass(frozen=True)
class LayerFigure:
    """One layer of an image, in stacking order: its blob, diff_id and the step that made it."""

    position: int
    digest: str
    diff_id: str
    stored_bytes: int
    size_bytes: int
    created_by: str


@dataclass(frozen=True)
class ImageRecord:
    """One image of an audit. ``repository``/``tag`` name it in a registry (for a directory of
    archives: the archive's path below it, and no tag); ``tag_digest`` is what the tag pointed
    at (an index for several platforms); ``row.error`` says why there are no figures."""

    row: FleetRow
    repository: str
    tag: str = ""
    tag_digest: str = ""
    config_digest: str = ""
    stored_bytes: int = 0
    files: int = 0
    categories: tuple[CategoryFigure, ...] = ()
    packages: tuple[PackageFigure, ...] = ()
    layers: tuple[LayerFigure, ...] = ()
    fixes: tuple[tuple[str, int], ...] = ()

    @property
    def platform(self) -> str:
        return self.row.platform


def record_of(source: str, image: Image, a: Analysis, repository: str, tag: str = "", tag_digest: str = "",
              tags: tuple[str, ...] | None = None) -> ImageRecord:
    """Return the record of ``image`` from its analysis ``a`` (``tags`` replace the image's own)."""
    row = row_of(source, a, image)
    if tags is not None:
        row = dataclasses.replace(row, tags=tags)
    return ImageRecord(
        row=row, repository=repository, tag=tag, tag_digest=tag_digest, config_digest=image.config_digest,
        stored_bytes=a.summary.stored_size, files=a.summary.file_count,
        categories=tuple(CategoryFigure(c.category, c.final_bytes, c.files, c.wasted_bytes) for c in a.categories),
        packages=tuple(PackageFigure(p.manager, p.name, p.version, p.bytes, p.files) for p in a.packages
                       if p.manager),
        layers=tuple(LayerFigure(i, layer.digest, layer.diff_id, layer.stored_size, layer_size(layer),
                                 layer.history.created_by if layer.history else "")
                     for i, layer in enumerate(image.layers)),
        fixes=tuple(sorted(a.could_save_by_fix.items())),
    )


def error_record(source: str, error: str, repository: str, tag: str = "", tag_digest: str = "",
                 platform: str = "", tags: tuple[str, ...] = ()) -> ImageRecord:
    """Return the record of an image that could not be read or analyzed."""
    return ImageRecord(row=FleetRow(source=source, tags=tags, error=error, platform=platform),
                       repository=repository, tag=tag, tag_digest=tag_digest)
