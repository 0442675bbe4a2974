"""The whole analysis of one image as one record, which the CLI renders as a table, JSON or HTML."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field

from slimmer.analyzer import attribution, findings, usage, waste
from slimmer.layers import MergedFS, merge
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
    categories: list[attribution.CategoryRow] = field(default_factory=list)
    packages: list[attribution.PackageRow] = field(default_factory=list)
    steps: list[attribution.StepRow] = field(default_factory=list)
    dirs: list[attribution.DirRow] = field(default_factory=list)
    findings: list[findings.Finding] = field(default_factory=list)
    could_save_bytes: int = 0
    could_save_by_fix: dict[str, int] = field(default_factory=dict)
    estimated_size_after_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    attribution: attribution.Attribution | None = field(default=None, compare=False, repr=False)


def analyze(image: Image, top: int = 20, read_content: bool = True, jobs: int = 1) -> Analysis:
    """Return the analysis of ``image``: summary, layers, waste, the largest paths, and every
    byte attributed to categories, packages and steps, with the findings and their savings.

    ``read_content`` False uses path rules only (no libmagic, packages or duplicates). With
    ``jobs`` > 1 dive's figures are computed in a forked worker beside the rest."""
    return start(image, top, read_content, jobs).finish()


@dataclass
class Pending:
    """An analysis begun by ``start``: the merged filesystem is ready, dive's figures may be
    on their way from a worker, and ``finish`` computes the rest."""

    image: Image
    fs: MergedFS
    top: int
    read_content: bool
    dive: Callable[[], waste.DiveEfficiency]

    def finish(self) -> Analysis:
        """Return the whole analysis (waiting for dive's figures if a worker computes them)."""
        image, fs, top = self.image, self.fs, self.top
        true = waste.true_waste(fs)
        summary = usage.summary(image, fs)
        layers = usage.layer_rows(image)
        largest_files, largest_dirs = usage.largest_files(fs, top), usage.largest_dirs(fs, top)
        attr = attribution.attribute(image, fs, read=self.read_content)
        found = findings.find(image, attr)
        saving = findings.could_save(found)
        return Analysis(
            summary=summary,
            layers=layers,
            dive=self.dive(),
            true_wasted_bytes=sum(w.size for w in true),
            wasted=true[:top],
            largest_files=largest_files,
            largest_dirs=largest_dirs,
            categories=attribution.by_category(attr),
            packages=attribution.by_package(attr),
            steps=attribution.by_step(image, attr),
            dirs=attribution.by_dir(attr, top=top),
            findings=found,
            could_save_bytes=saving,
            could_save_by_fix=findings.could_save_by_fix(found),
            estimated_size_after_bytes=max(0, summary.total_size - saving),
            notes=attr.notes,
            attribution=attr,
        )


def start(image: Image, top: int = 20, read_content: bool = True, jobs: int = 1) -> Pending:
    """Begin the analysis of ``image`` (as ``analyze`` does it): start dive's figures, in a
    forked worker when the image is large and ``jobs`` allows, and merge the layers. A caller
    that forks nothing after this may finish the analysis in another thread."""
    entries = sum(len(layer.entries) for layer in image.layers)
    dive = _in_background(waste.dive_efficiency, image, entries, jobs)
    return Pending(image, merge(image), top, read_content, dive)


# dive's figures need a second walk over every entry; on large images it runs in a forked
# worker while this process merges and attributes, so both cores work.
BACKGROUND_MIN_ENTRIES = 40_000


def _in_background(fn: Callable, image: Image, entries: int, jobs: int) -> Callable:
    """Start ``fn(image)``, in a forked worker when the image is large and ``jobs`` allows;
    return a function that waits for and returns its result. The worker inherits ``image``
    (nothing is pickled but the result), and any failure there is redone here, so it raises
    where it would have."""
    if jobs < 2 or entries < BACKGROUND_MIN_ENTRIES or "fork" not in multiprocessing.get_all_start_methods():
        return lambda: fn(image)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def work() -> None:
        try:
            send.send(fn(image))
        except BaseException:  # noqa: BLE001 -- the parent computes it again and raises there
            send.send(None)

    proc = ctx.Process(target=work, daemon=True)
    proc.start()
    send.close()

    def result():
        try:
            value = receive.recv()
        except (EOFError, OSError):
            value = None
        proc.join()
        return value if value is not None else fn(image)

    return result
