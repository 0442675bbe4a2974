"""Where the bytes are: image summary, per-layer table, largest files and directories, and long
lists grouped by directory (``grouped``)."""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from slimmer.layers import MergedFS
from slimmer.model import DIR, FILE, KIND_CODES, Image, columns, layer_size, platform, runtime_config

_DIR, _FILE = KIND_CODES[DIR], KIND_CODES[FILE]

_NOP = re.compile(r"^/bin/sh -c #\(nop\)\s*")
_SHELL = re.compile(r"^/bin/sh -c\s+")
_BUILDKIT = re.compile(r"\s*# buildkit$")


def clean_step(created_by: str) -> str:
    """Return a history step's ``created_by`` without the shell wrapper noise."""
    text = _BUILDKIT.sub("", created_by.strip())
    if _NOP.match(text):
        return _NOP.sub("", text).strip()
    if _SHELL.match(text):
        return "RUN " + _SHELL.sub("", text).strip()
    return text


@dataclass(frozen=True)
class Summary:
    tags: tuple[str, ...]
    platform: str
    created: str
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    user: str
    workdir: str
    layer_count: int
    total_size: int  # sum of every layer's entry sizes
    final_size: int  # bytes of the merged filesystem
    stored_size: int  # layer blobs as stored (compressed where they are)
    file_count: int  # non-directory entries of the merged filesystem
    format: str
    config_digest: str


@dataclass(frozen=True)
class LayerRow:
    index: int | None  # None for a history step that made no layer
    diff_id: str
    size: int
    stored_size: int
    files: int
    step: str
    created: str


@dataclass(frozen=True)
class PathSize:
    path: str
    size: int
    layer: int | None  # layer that gave the final version (files only)


def _strings(value) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return None


def summary(image: Image, fs: MergedFS) -> Summary:
    """Return the headline facts of ``image``."""
    cfg = runtime_config(image)
    table = fs.table()
    count = len(table.kinds) - table.kinds.count(_DIR)
    final = sum(size for size, kind in zip(table.sizes, table.kinds) if kind != _DIR)
    return Summary(
        tags=image.tags, platform=platform(image), created=str(image.config.get("created", "") or ""),
        entrypoint=_strings(cfg.get("Entrypoint")), cmd=_strings(cfg.get("Cmd")), user=str(cfg.get("User", "") or ""),
        workdir=str(cfg.get("WorkingDir", "") or ""), layer_count=len(image.layers),
        total_size=sum(layer_size(layer) for layer in image.layers), final_size=final,
        stored_size=sum(layer.stored_size for layer in image.layers), file_count=count,
        format=image.format, config_digest=image.config_digest,
    )


def layer_rows(image: Image) -> list[LayerRow]:
    """Return one row per history step, layers in order; empty-layer steps sit between them."""
    rows: list[LayerRow] = []
    li = 0
    for step in image.history:
        if step.empty_layer:
            rows.append(LayerRow(None, "", 0, 0, 0, clean_step(step.created_by), step.created))
            continue
        if li < len(image.layers):
            rows.append(_row(image, li, clean_step(step.created_by), step.created))
            li += 1
    while li < len(image.layers):
        rows.append(_row(image, li, "(missing history)", ""))
        li += 1
    return rows


def _row(image: Image, i: int, step: str, created: str) -> LayerRow:
    layer = image.layers[i]
    cols = columns(layer)
    files = len(cols.kinds) - cols.kinds.count(_DIR)
    if ".wh." in "\n".join(cols.paths):
        files -= sum(1 for path, kind in zip(cols.paths, cols.kinds)
                     if kind != _DIR and ".wh." in path and path.rpartition("/")[2].startswith(".wh."))
    return LayerRow(i, layer.diff_id, layer_size(layer), layer.stored_size, files, step, created)


def largest_files(fs: MergedFS, n: int = 20) -> list[PathSize]:
    """Return the ``n`` largest regular files of the merged filesystem."""
    t = fs.table()
    top = heapq.nsmallest(n, ((-size, p, layer) for p, layer, kind, size in zip(t.paths, t.layers, t.kinds, t.sizes)
                              if kind == _FILE))
    return [PathSize(p, -neg, layer) for neg, p, layer in top]


def directory_sizes(fs: MergedFS) -> dict[str, int]:
    """Return the total file bytes below every directory of the merged filesystem."""
    direct: dict[str, int] = {}
    t = fs.table()
    for path, size in zip(t.paths, t.sizes):
        if size:
            d = path.rpartition("/")[0]
            direct[d] = direct.get(d, 0) + size
    sizes: dict[str, int] = {}
    for d, size in direct.items():
        while d:
            sizes[d] = sizes.get(d, 0) + size
            d = d.rpartition("/")[0]
    return sizes


def largest_dirs(fs: MergedFS, n: int = 20, max_depth: int = 3) -> list[PathSize]:
    """Return the ``n`` largest directories no deeper than ``max_depth``."""
    top = heapq.nsmallest(n, ((-s, d) for d, s in directory_sizes(fs).items() if d.count("/") < max_depth))
    return [PathSize(d, -neg, None) for neg, d in top]


# ---- long lists, grouped -------------------------------------------------------------------

GROUP_MIN = 4  # rows under one directory, named by hashes, that become one row
_HASHED = re.compile(r"[0-9a-fA-F]{16,}")

T = TypeVar("T")


@dataclass(frozen=True)
class Grouped(Generic[T]):
    """A row of a long list: one item (``item``), or a directory (``path`` ending in "/")
    standing for ``files`` items of the whole list below it, ``size`` bytes in all."""

    path: str
    size: int
    files: int
    item: T | None = None

    @property
    def is_group(self) -> bool:
        return self.item is None


def _hashed_below(path: str, directory: str) -> bool:
    return bool(_HASHED.search(path[len(directory):]))


def _group_dir(paths: list[str], min_rows: int) -> str | None:
    """Return the deepest directory holding ``min_rows`` or more of ``paths`` whose names below
    it are hashes (a build cache, a package cache), or None."""
    counts: dict[str, int] = {}
    for path in paths:
        d = path.rpartition("/")[0]
        while d:
            if _hashed_below(path, d + "/"):
                counts[d] = counts.get(d, 0) + 1
            d = d.rpartition("/")[0]
    best = [d for d, n in counts.items() if n >= min_rows]
    return max(best, key=lambda d: (d.count("/"), counts[d], d)) if best else None


def grouped(items: Sequence[T], path: Callable[[T], str], size: Callable[[T], int], top: int,
            min_rows: int = GROUP_MIN) -> list[Grouped[T]]:
    """Return the first ``top`` rows of ``items`` (in their order, largest first), where
    ``min_rows`` or more rows that would be shown lie below one directory under hash-like
    names (``root/.cache/go-build/3f/3fab…-d``): those become one row for the directory, which
    counts every item of ``items`` below it, and the rows after move up."""
    groups: list[str] = []
    for round_ in range(top + 1):  # each round but the last adds a group
        rows: list[tuple[str, T | None]] = []
        seen_groups: set[str] = set()
        for it in items:
            p = path(it)
            home = next((g for g in groups if p.startswith(g + "/")), None)
            if home is not None:
                if home not in seen_groups:
                    seen_groups.add(home)
                    rows.append((home, None))
            else:
                rows.append((p, it))
            if len(rows) >= top:
                break
        found = _group_dir([p for p, it in rows if it is not None], min_rows) if round_ < top else None
        if found is None:
            break
        groups = [g for g in groups if not g.startswith(found + "/")] + [found]
    totals = {g: [0, 0] for g in groups}
    for it in items:
        p = path(it)
        for g in groups:
            if p.startswith(g + "/"):
                totals[g][0] += 1
                totals[g][1] += size(it)
                break
    return [Grouped(p + "/", totals[p][1], totals[p][0]) if it is None else Grouped(p, size(it), 1, it)
            for p, it in rows]
