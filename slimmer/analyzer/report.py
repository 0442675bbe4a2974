"""The whole analysis of one image as one record, which the CLI renders as a table or JSON."""

from __future__ import annotations

from dataclasses import dataclass

from slimmer.analyzer import usage, waste
from slimmer.layers import merge
from slimmer.model import Image


@dataclass(frozen=True)
class Analysis:
    summary: usage.Summary
    layers: list[usage.LayerRow]
    dive: waste.DiveEfficiency
    true_wasted_bytes: int
    wasted: list[waste.TrueWaste]
    largest_files: list[usage.PathSize]
    largest_dirs: list[usage.PathSize]


def analyze(image: Image, top: int = 20) -> Analysis:
    """Return the analysis of ``image``: summary, layers, waste and the largest paths."""
    fs = merge(image)
    true = waste.true_waste(fs)
    return Analysis(
        summary=usage.summary(image, fs),
        layers=usage.layer_rows(image),
        dive=waste.dive_efficiency(image),
        true_wasted_bytes=sum(w.size for w in true),
        wasted=true[:top],
        largest_files=usage.largest_files(fs, top),
        largest_dirs=usage.largest_dirs(fs, top),
    )
