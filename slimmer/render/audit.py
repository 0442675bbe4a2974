"""Rendering of audits: the fleet table of a registry (a platform shown where a tag has
several), what an audit did, its progress line, and the ``--report`` tables and JSON
documents. Built on the helpers of ``slimmer.render``; knows nothing of storage or databases.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from slimmer.render import clip, clip_left, human, safe, table
from slimmer.render.json import dumps
from slimmer.render.text import fleet_text

__all__ = ["fleet_table", "progress_line", "report_json", "report_text", "summary_lines"]

REPORT_SCHEMAS = {
    "repositories": "slimmer.audit.repositories/1",
    "layers": "slimmer.audit.layers/1",
    "packages": "slimmer.audit.packages/1",
    "categories": "slimmer.audit.categories/1",
}

STEPS = {"manifests": "reading tags and manifests", "scans": "scanning layers", "analyses": "analyzing images"}


shown = safe  # names from images and storage never reach the terminal raw


def fleet_table(rows) -> str:
    """Return the fleet table; a tag that leads to several platforms is shown once per platform."""
    counts = Counter(", ".join(r.tags) for r in rows)
    shown_rows = [dataclasses.replace(r, tags=tuple(f"{t} ({r.platform})" for t in r.tags))
                  if r.platform and counts[", ".join(r.tags)] > 1 else r for r in rows]
    return fleet_text(shown_rows)


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


def progress_line(p) -> str:
    """Return the one-line progress display of an audit (for a terminal)."""
    if p.stage == "scan":
        return f"\rslimmer: scanned {p.done}/{p.total} layer blobs ({human(p.bytes)})\033[K"
    return f"\rslimmer: analyzed {p.done}/{p.total} images\033[K"


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


def report_text(kind: str, items) -> str:
    """Return one ``--report`` table for people."""
    items = list(items)
    if kind == "repositories":
        rows = [[clip_left(shown(f.repository), 40), str(f.images), str(f.failed) if f.failed else "",
                 human(f.total_bytes), human(f.true_wasted_bytes), human(f.could_save_bytes)] for f in items]
        return table(rows, ["repository", "images", "failed", "size", "wasted", "could save"],
                     colalign=("left", "right", "right", "right", "right", "right"))
    if kind == "layers":
        rows = [[s.diff_id[7:19], str(s.images), str(s.repositories), human(s.size_bytes), human(s.stored_bytes),
                 clip(shown(s.created_by) or "-", 40)] for s in items]
        return table(rows, ["diff_id", "images", "repositories", "size", "stored", "created by"],
                     colalign=("left", "right", "right", "right", "right", "left"))
    if kind == "packages":
        rows = [[clip_left(shown(f"{h.repository}:{h.tag}" if h.tag else h.repository), 36), shown(h.platform),
                 clip(shown(h.name), 24), clip(shown(h.version), 20), shown(h.manager), human(h.size_bytes)]
                for h in items]
        return table(rows, ["image", "platform", "package", "version", "manager", "size"],
                     colalign=("left", "left", "left", "left", "left", "right"))
    rows = [[clip_left(shown(f"{h.repository}:{h.tag}" if h.tag else h.repository), 36), shown(h.platform),
             human(h.size_bytes), str(h.files), human(h.wasted_bytes)] for h in items]
    return table(rows, ["image", "platform", shown(items[0].name) if items else "bytes", "files", "wasted"],
                 colalign=("left", "left", "right", "right", "right"))
