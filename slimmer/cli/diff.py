"""`slimmer diff`: what changed between two images."""

from __future__ import annotations

import json

import click

from slimmer.analyzer.diff import ADDED, CHANGED, REMOVED, ImageDiff, diff_images
from slimmer.cli.group import cli
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.cli.options import load, output_option, read_options
from slimmer.render import clip, human, safe, table


@cli.command()
@click.argument("archive_a")
@click.argument("archive_b")
@read_options
@output_option
@click.option("--top", default=20, show_default=True, help="How many paths, categories and packages to list.")
@click.option("--paths-only", is_flag=True, help="Categorise by path rules only; don't read file contents.")
def diff(archive_a, archive_b, jobs, image_ref, platform, max_layer_size, no_cache, output, as_json, top, paths_only):
    """Show what changed from the image in ARCHIVE_A to the one in ARCHIVE_B: paths added,
    removed and changed, bytes by category and by package, and layers shared or not.

    \b
        slimmer diff app.tar app-slim.tar
        slimmer diff app.tar app-slim.tar --json
    """
    policy = AnalysisPolicy(not paths_only)
    a = load(archive_a, image_ref, platform, max_layer_size, no_cache, jobs, policy)
    b = load(archive_b, image_ref, platform, max_layer_size, no_cache, jobs, policy)
    result = diff_images(a, b, read=not paths_only)
    if as_json or output == "json":
        click.echo(json.dumps(diff_json(result, archive_a, archive_b), indent=2))
    else:
        click.echo(diff_text(result, archive_a, archive_b, top))


def _group_json(g) -> dict:
    return {"name": g.name, "removed_files": g.removed_files, "removed_bytes": g.removed_bytes,
            "added_files": g.added_files, "added_bytes": g.added_bytes, "changed_files": g.changed_files,
            "changed_bytes": g.changed_bytes, "net_bytes": g.net_bytes}


def diff_json(d: ImageDiff, a: str, b: str) -> dict:
    """Return the documented JSON object of one diff (schema ``slimmer.diff/1``)."""
    return {
        "schema": "slimmer.diff/1",
        "a": {"source": a, "bytes": d.a_bytes, "stored_bytes": d.a_stored},
        "b": {"source": b, "bytes": d.b_bytes, "stored_bytes": d.b_stored},
        "counts": {ADDED: d.count(ADDED), REMOVED: d.count(REMOVED), CHANGED: d.count(CHANGED)},
        "paths": [{"path": "/" + c.path, "change": c.change, "kind": c.kind, "bytes_a": c.size_a,
                   "bytes_b": c.size_b, "layer_a": c.layer_a, "layer_b": c.layer_b, "category": c.category,
                   "package": c.package, "fields": list(c.fields)} for c in d.changes],
        "by_category": [_group_json(g) for g in d.by_category],
        "by_package": [_group_json(g) for g in d.by_package],
        "layers": [{"status": r.status, "index_a": r.index_a, "index_b": r.index_b, "diff_id": r.diff_id,
                    "size_bytes": r.size, "files": r.files, "created_by": r.step} for r in d.layers],
        "notes": list(d.notes),
    }


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + human(abs(n))


def _groups(rows, top: int, title: str) -> list[str]:
    rows = [g for g in rows if g.removed_files or g.added_files or g.changed_files or g.net_bytes]
    shown = [[clip(safe(g.name), 40), g.removed_files, human(g.removed_bytes), g.added_files, human(g.added_bytes),
              g.changed_files, _signed(g.changed_bytes), _signed(g.net_bytes)] for g in rows[:top]]
    return ["", table(shown, [title, "removed", "bytes", "added", "bytes", "changed", "bytes", "net"],
                      colalign=("left",) + ("right",) * 7)]


def diff_text(d: ImageDiff, a: str, b: str, top: int) -> str:
    """Return the human report of one diff."""
    out = [f"A  {clip(safe(a), 60)}   {human(d.a_bytes)} in files, {human(d.a_stored)} stored",
           f"B  {clip(safe(b), 60)}   {human(d.b_bytes)} in files, {human(d.b_stored)} stored",
           f"paths  {d.count(REMOVED)} removed, {d.count(ADDED)} added, {d.count(CHANGED)} changed   "
           f"net {_signed(d.b_bytes - d.a_bytes)}"]
    out += _groups(list(d.by_category), top, "category")
    out += _groups(list(d.by_package), top, "package")
    out.append("")
    rows = [[r.status, "" if r.index_a is None else r.index_a, "" if r.index_b is None else r.index_b,
             r.diff_id.split(":")[-1][:12], human(r.size), r.files, clip(safe(r.step), 36)] for r in d.layers]
    out.append(table(rows, ["layer", "A", "B", "diff_id", "size", "files", "created by"],
                     colalign=("left", "right", "right", "left", "right", "right", "left")))
    if d.changes:
        out.append("")
        out.append(f"largest changes ({len(d.changes)} in all)")
        rows = [[c.change, _signed(c.delta), ",".join(c.fields), c.category, clip(safe("/" + c.path), 50)]
                for c in d.changes[:top]]
        out.append(table(rows, ["change", "bytes", "what", "category", "path"],
                         colalign=("left", "right", "left", "left", "left")))
    if d.notes:
        out.append("")
        out += [f"note: {safe(n)}" for n in d.notes]
    return "\n".join(out)
