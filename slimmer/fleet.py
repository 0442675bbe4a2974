"""Many images at once: find the archives below a directory, analyze each (in parallel worker
processes with ``jobs`` > 1) and return one row per image. A broken archive gives a row with
its error, not a failed run. Ties the reader to the analyzer, so neither imports the other.
"""

from __future__ import annotations

import multiprocessing
import os
import tarfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from slimmer import reader
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.report import Analysis, analyze
from slimmer.errors import InputError, SlimmerError
from slimmer.model import Image
from slimmer.reader.cache import LayerCache


@dataclass(frozen=True)
class FleetRow:
    """One image of a fleet: its headline numbers, or why it could not be read."""

    source: str
    tags: tuple[str, ...] = ()
    total_bytes: int = 0
    final_bytes: int = 0
    layers: int = 0
    dive_efficiency: float = 0.0
    dive_wasted_bytes: int = 0
    true_wasted_bytes: int = 0
    could_save_bytes: int = 0
    worst_finding: str = ""
    worst_finding_bytes: int = 0
    error: str = ""
    platform: str = ""
    manifest_digest: str = ""


def row_of(source: str, a: Analysis, image: Image | None = None) -> FleetRow:
    """Return the fleet row of one analysis (of ``image``, whose manifest digest it names)."""
    worst = max(a.findings, key=lambda f: f.savings_bytes, default=None)
    return FleetRow(
        source=source, tags=a.summary.tags, total_bytes=a.summary.total_size, final_bytes=a.summary.final_size,
        layers=a.summary.layer_count, dive_efficiency=a.dive.efficiency, dive_wasted_bytes=a.dive.wasted_bytes,
        true_wasted_bytes=a.true_wasted_bytes, could_save_bytes=a.could_save_bytes,
        worst_finding=worst.title if worst else "", worst_finding_bytes=worst.savings_bytes if worst else 0,
        platform=a.summary.platform, manifest_digest=image.manifest_digest if image is not None else "",
    )


def _is_image_archive(path: Path) -> bool:
    if path.is_dir():
        return (path / "oci-layout").is_file() and (path / "index.json").is_file()
    if not path.is_file() or path.stat().st_size < 1024:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(512)
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except (OSError, tarfile.HeaderError):
        return False
    return True


def find_archives(root: str | os.PathLike) -> list[Path]:
    """Return every image archive (a tar file, or an OCI layout directory) below ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory")
    found: list[Path] = []
    for base, dirs, files in os.walk(root):
        here = Path(base)
        if _is_image_archive(here) and here != root:
            found.append(here)
            dirs[:] = []
            continue
        for name in files:
            if _is_image_archive(here / name):
                found.append(here / name)
        dirs.sort()
    if _is_image_archive(root):
        found.insert(0, root)
    return sorted(found)


T = TypeVar("T")


def fleet_row(source: str, image: Image | None, analysis: Analysis | None, error: str) -> FleetRow:
    """Return the fleet row of ``source``: its analysis, or its error."""
    if image is None or analysis is None:
        return FleetRow(source=source, error=error)
    return row_of(source, analysis, image)


def _one(source: str, options: reader.Options, read_content: bool,
         keep: Callable[[str, Image | None, Analysis | None, str], T]) -> T:
    try:
        image = reader.open_image(source, options)
        return keep(source, image, analyze(image, read_content=read_content, jobs=options.jobs), "")
    except SlimmerError as err:
        return keep(source, None, None, str(err))


def analyze_each(sources: list[str], keep: Callable[[str, Image | None, Analysis | None, str], T], jobs: int = 1,
                 use_cache: bool = True, read_content: bool = True, max_layer_size: int = 64 << 30) -> list[T]:
    """Return ``keep(source, image, analysis, "")`` for each archive of ``sources`` (``keep(source,
    None, None, error)`` for one that cannot be read), analyzing ``jobs`` of them at a time (one
    archive alone gets all ``jobs`` for itself); ``keep`` must be a module-level function."""
    def options(jobs_each: int) -> reader.Options:
        return reader.Options(max_layer_size=max_layer_size, cache=LayerCache() if use_cache else None,
                              policy=AnalysisPolicy(read_content), jobs=jobs_each)

    if jobs <= 1 or len(sources) <= 1:
        return [_one(s, options(jobs), read_content, keep) for s in sources]
    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = [pool.submit(_one, s, options(1), read_content, keep) for s in sources]
        return [f.result() for f in futures]


def audit(sources: list[str], jobs: int = 1, use_cache: bool = True, read_content: bool = True,
          max_layer_size: int = 64 << 30) -> list[FleetRow]:
    """Return one row per archive in ``sources`` (see ``analyze_each``)."""
    return analyze_each(sources, fleet_row, jobs, use_cache, read_content, max_layer_size)
