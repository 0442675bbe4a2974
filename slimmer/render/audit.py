"""Rendering of audits: the fleet table of a registry (a platform shown where a tag has
several), what an audit did, its progress on the shared display (``render.progress``), and
the ``--report`` tables and JSON documents. Tables fit the width they are given (the
terminal's: ``render.terminal_width``) as every other table does, and every name from a
storage or an image goes through ``safe``. Built on the helpers of ``slimmer.render``; knows
nothing of storage or databases.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable

from slimmer.render import WIDTH, clip, human, safe, table
from slimmer.render.json import dumps
from slimmer.render.text import fleet_text

__all__ = ["fleet_table", "progress_to", "report_json", "report_text", "summary_lines"]

REPORT_SCHEMAS = {
    "repositories": "slimmer.audit.repositories/1",
    "layers": "slimmer.audit.layers/1",
    "packages": "slimmer.audit.packages/1",
    "categories": "slimmer.audit.categories/1",
}

STEPS = {"manifests": "reading tags and manifests", "scans": "scanning layers", "analyses": "analyzing images"}


shown = safe  # names from images and storage never reach the terminal raw


def fleet_table(rows, width: int = WIDTH) -> str:
    """Return the fleet table, no wider than ``width``; a tag that leads to several platforms
    is shown once per platform."""
    counts = Counter(", ".join(r.tags) for r in rows)
    shown_rows = [dataclasses.replace(r, tags=tuple(f"{t} ({r.platform})" for t in r.tags))
                  if r.platform and counts[", ".join(r.tags)] > 1 else r for r in rows]
    return fleet_text(shown_rows, width)


def summary_lines(s) -> list[str]:
    """Return what a registry audit did, for stderr: images, blobs read, what was chosen or
    left out, where the time went (a directory audit says nothing more than its table)."""
    if s.kind != "registry":
        return [(f"slimmer: {s.forgotten} archive{'s' * (s.forgotten != 1)} no longer in {shown(s.storage)} "
                f"dropped from the database")] if s.forgotten else []
    lines = [f"slimmer: audited {s.images} image{'s' * (s.images != 1)} of {s.tags} tag{'s' * (s.tags != 1)} "
             f"in registry storage {shown(s.storage)}" + (f" ({s.failed} failed)" if s.failed else "")]
    lines.append(f"slimmer: {s.blobs_read} blob{'s' * (s.blobs_read != 1)} read ({human(s.bytes_read)}); "
                 f"{s.layers_scanned} layer{'s' * (s.layers_scanned != 1)} scanned, {s.layers_known} known "
                 f"from the database, {s.reused} image{'s' * (s.reused != 1)} unchanged since the last audit; "
                 f"scans ran on {shown(s.scheduler)}"
                 + (f" ({len(s.workers)} worker{'s' * (len(s.workers) != 1)})" if s.workers else "")
                 + (f", {s.retried} retried" if s.retried else ""))
    if s.seconds:
        lines.append("slimmer: time spent " + ", ".join(f"{STEPS.get(step, step)} {sec:.1f} s"
                                                       for step, sec in s.seconds.items()))
    left = Counter(s.left_out)
    if s.platform:
        lines.append(f"slimmer: platform {shown(s.platform)} chosen with --platform"
                     + (f"; left out: {', '.join(f'{n} {shown(p)}' for p, n in sorted(left.items()))}"
                        if left else ""))
    else:
        lines.append("slimmer: every platform of each tag audited, one row each (pick one with --platform)")
    if s.forgotten:
        lines.append(f"slimmer: {s.forgotten} image{'s' * (s.forgotten != 1)} no longer in the storage "
                     f"dropped from the database")
    return lines


PROGRESS = {"scan": ("scanning layer blobs", "blobs"), "analyze": ("analyzing images", "images")}


def progress_to(display) -> Callable:
    """Return the callback that shows an audit's progress (``audit.run.Progress`` records) on
    ``display``, the shared progress display: blobs scanned of the total and their bytes,
    then images analyzed."""
    def show(p) -> None:
        stage, unit = PROGRESS[p.stage]
        display.tally(stage, p.done, p.total, unit, p.bytes, p.total_bytes)

    return show


# the keys of each --report document's rows, written out: a field changes only on purpose
REPORT_KEYS = {
    "repositories": ("storage", "repository", "images", "failed", "total_bytes", "true_wasted_bytes",
                     "could_save_bytes"),
    "layers": ("diff_id", "images", "repositories", "size_bytes", "stored_bytes", "created_by"),
    "packages": ("storage", "repository", "tag", "platform", "name", "version", "manager", "size_bytes", "files"),
    "categories": ("storage", "repository", "tag", "platform", "name", "size_bytes", "files", "wasted_bytes"),
}


def report_json(kind: str, items) -> str:
    """Return the JSON document of one ``--report`` table (``kind`` a key of REPORT_SCHEMAS)."""
    rows = [{key: getattr(item, key) for key in REPORT_KEYS[kind]} for item in items]
    return dumps({"schema": REPORT_SCHEMAS[kind], kind: rows})


def report_text(kind: str, items, width: int = WIDTH) -> str:
    """Return one ``--report`` table for people, no wider than ``width`` (names cut to fit:
    repositories from the left, so that their last part shows)."""
    items = list(items)
    if kind == "repositories":
        rows = [[shown(f.repository), str(f.images), str(f.failed) if f.failed else "",
                 human(f.total_bytes), human(f.true_wasted_bytes), human(f.could_save_bytes)] for f in items]
        return table(rows, ["repository", "images", "failed", "size", "wasted", "could save"],
                     colalign=("left", "right", "right", "right", "right", "right"), width=width, flex=0, left=True)
    if kind == "layers":
        rows = [[shown(s.diff_id[7:19]), str(s.images), str(s.repositories), human(s.size_bytes),
                 human(s.stored_bytes), clip(s.created_by, width) or "-"] for s in items]
        return table(rows, ["diff_id", "images", "repositories", "size", "stored", "created by"],
                     colalign=("left", "right", "right", "right", "right", "left"), width=width, flex=5)
    if kind == "packages":
        rows = [[_image(h), shown(h.platform), clip(h.name, width), clip(h.version, width), shown(h.manager),
                 human(h.size_bytes)] for h in items]
        return table(rows, ["image", "platform", "package", "version", "manager", "size"],
                     colalign=("left", "left", "left", "left", "left", "right"), width=width, flex=(0, 1, 2, 3),
                     left={0})
    rows = [[_image(h), shown(h.platform), human(h.size_bytes), str(h.files), human(h.wasted_bytes)] for h in items]
    return table(rows, ["image", "platform", clip(items[0].name, 24) if items else "bytes", "files", "wasted"],
                 colalign=("left", "left", "right", "right", "right"), width=width, flex=(0, 1), left={0})


def _image(h) -> str:
    return shown(f"{h.repository}:{h.tag}" if h.tag else h.repository)
