"""Rendering of analysis records for people (tables that fit 100 columns) and for scripts
(JSON). Knows nothing of archives; the CLI picks the renderer."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from typing import Any

from tabulate import tabulate

WIDTH = 100


def human(n: float) -> str:
    """Return a byte count as ``12.3 MB`` (decimal units, as dive and docker print them)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def clip_left(text: str, width: int) -> str:
    """Return ``text`` cut to ``width`` from the left (paths: the file name is what counts)."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def safe(text: str) -> str:
    """Return ``text`` printable on any terminal (undecodable bytes shown as escapes)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: to_jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, sort_keys=False)


def table(rows: list[list], headers: list[str], colalign=None) -> str:
    return tabulate(rows, headers=headers, tablefmt="simple", colalign=colalign, disable_numparse=True)


def analysis_json(a, source: str, top: int = 20) -> dict:
    """Return the documented JSON object for one analysis (schema ``slimmer.analyze/1``)."""
    s = a.summary
    d = a.dive
    return {
        "schema": "slimmer.analyze/1",
        "image": {
            "source": source, "format": s.format, "tags": list(s.tags), "platform": s.platform,
            "created": s.created, "entrypoint": s.entrypoint, "cmd": s.cmd, "user": s.user,
            "workdir": s.workdir, "config_digest": s.config_digest,
        },
        "sizes": {
            "layer_count": s.layer_count, "total_bytes": s.total_size, "final_bytes": s.final_size,
            "stored_bytes": s.stored_size, "file_count": s.file_count,
        },
        "layers": [
            {"index": r.index, "diff_id": r.diff_id or None, "size_bytes": r.size, "stored_bytes": r.stored_size,
             "files": r.files, "created_by": r.step, "created": r.created, "empty_layer": r.index is None}
            for r in a.layers
        ],
        "waste": {
            "dive_efficiency": d.efficiency,
            "dive_wasted_bytes": d.wasted_bytes,
            "dive_user_wasted_percent": d.user_wasted_percent,
            "dive_size_bytes": d.size_bytes,
            "dive_user_size_bytes": d.user_size_bytes,
            "true_wasted_bytes": a.true_wasted_bytes,
            "dive_paths": [{"path": "/" + w.path, "count": w.count, "size_bytes": w.size, "layers": list(w.layers)}
                           for w in d.paths[:top]],
            "shadowed": [{"path": "/" + w.path, "size_bytes": w.size, "layer": w.layer, "by_layer": w.by_layer,
                          "how": w.how} for w in a.wasted],
        },
        "largest_files": [{"path": "/" + p.path, "size_bytes": p.size, "layer": p.layer} for p in a.largest_files],
        "largest_dirs": [{"path": "/" + p.path, "size_bytes": p.size} for p in a.largest_dirs],
        **attribution_json(a),
    }


def attribution_json(a) -> dict:
    """Return the JSON keys of the attribution: categories, packages, steps, directories,
    findings and the savings."""
    return {
        "categories": [{"category": c.category, "final_bytes": c.final_bytes, "files": c.files,
                        "wasted_bytes": c.wasted_bytes, "removable": c.removable} for c in a.categories],
        "packages": [{"key": p.key, "manager": p.manager or None, "name": p.name, "version": p.version,
                      "build_only": p.build_only, "size_bytes": p.bytes, "files": p.files,
                      "categories": p.categories, "note": p.note} for p in a.packages],
        "steps": [{"index": s.index, "layer": s.layer, "created_by": s.text, "instruction": s.instruction,
                   "size_bytes": s.size, "final_bytes": s.final_bytes, "wasted_bytes": s.wasted_bytes,
                   "categories": s.categories} for s in a.steps],
        "dirs": [{"path": "/" + d.path, "size_bytes": d.size, "files": d.files, "categories": d.categories}
                 for d in a.dirs],
        "findings": [{"id": f.id, "title": f.title, "advice": f.advice, "fix": f.fix,
                      "savings_bytes": f.savings_bytes, "layers": list(f.layers), "steps": list(f.steps),
                      "evidence": [{"what": e.what, "size_bytes": e.size, "layer": e.layer, "step": e.step,
                                    "detail": e.detail} for e in f.evidence]} for f in a.findings],
        "could_save_bytes": a.could_save_bytes,
        "could_save_by_fix": a.could_save_by_fix,
        "estimated_size_after_bytes": a.estimated_size_after_bytes,
        "notes": list(a.notes),
    }


BY = ("category", "package", "layer", "step", "dir")


def analysis_text(a, source: str, top: int, by: str | None = None) -> str:
    """Return the human report for one analysis: the full report, or with ``by`` (one of
    ``BY``) the headline, that one table and the findings."""
    head = _headline(a, source)
    if by is None:
        parts = [head, _full_body(a, top), by_table(a, "category", top)]
    else:
        parts = [head, by_table(a, by, top)]
    parts.append(findings_text(a, top))
    for note in a.notes:
        parts.append(f"note: {note}")
    return "\n\n".join(p for p in parts if p)


def _headline(a, source: str) -> str:
    s = a.summary
    d = a.dive
    out = []
    name = ", ".join(s.tags) or source
    out.append(f"Image        {clip(name, WIDTH - 13)}")
    out.append(f"Format       {s.format}   Platform {s.platform}   Created {s.created or '-'}")
    ep = " ".join(s.entrypoint or ()) or "-"
    cmd = " ".join(s.cmd or ()) or "-"
    out.append(f"Entrypoint   {clip(ep, 40)}   Cmd {clip(cmd, 40)}")
    out.append(f"Layers       {s.layer_count}   Files {s.file_count}   User {s.user or 'root'}")
    out.append(f"Size         total {human(s.total_size)}   final {human(s.final_size)}   "
               f"stored {human(s.stored_size)}")
    out.append(f"Efficiency   {d.efficiency * 100:.2f} % (dive)   wasted {human(d.wasted_bytes)} (dive, counts kept "
               f"copies)   truly wasted {human(a.true_wasted_bytes)}")
    return "\n".join(out)


def _full_body(a, top: int) -> str:
    d = a.dive
    out = []
    rows = [[r.index if r.index is not None else "", human(r.size) if r.index is not None else "",
             r.files if r.index is not None else "", clip(safe(r.step), 66)] for r in a.layers]
    out.append(table(rows, ["#", "size", "files", "created by"], colalign=("right", "right", "right", "left")))
    if d.paths:
        out.append("")
        out.append("Largest wasted paths (dive: path in several layers)")
        rows = [[human(w.size), w.count, ",".join(map(str, w.layers)), clip(safe("/" + w.path), 60)]
                for w in d.paths[:top]]
        out.append(table(rows, ["bytes", "copies", "layers", "path"], colalign=("right", "right", "left", "left")))
    if a.wasted:
        out.append("")
        out.append("Truly wasted (in a layer, not in the final filesystem)")
        rows = [[human(w.size), w.layer, w.by_layer, w.how, clip(safe("/" + w.path), 54)] for w in a.wasted[:top]]
        out.append(table(rows, ["bytes", "layer", "by", "how", "path"],
                         colalign=("right", "right", "right", "left", "left")))
    out.append("")
    out.append("Largest files")
    rows = [[human(p.size), p.layer, clip(safe("/" + p.path), 80)] for p in a.largest_files[:top]]
    out.append(table(rows, ["bytes", "layer", "path"], colalign=("right", "right", "left")))
    out.append("")
    out.append("Largest directories")
    rows = [[human(p.size), clip(safe("/" + p.path), 86)] for p in a.largest_dirs[:top]]
    out.append(table(rows, ["bytes", "path"], colalign=("right", "left")))
    return "\n".join(out)


def _cats(categories: dict[str, int], n: int = 2) -> str:
    return ", ".join(f"{c} {human(b)}" for c, b in list(categories.items())[:n])


def by_table(a, by: str, top: int) -> str:
    """Return the table of the analysis grouped ``by`` one of ``BY``."""
    if by == "category":
        rows = [[c.category, human(c.final_bytes), c.files, human(c.wasted_bytes), "yes" if c.removable else ""]
                for c in a.categories if c.final_bytes or c.wasted_bytes]
        return "Bytes by category\n" + table(rows, ["category", "final", "files", "wasted", "removable"],
                                              colalign=("left", "right", "right", "right", "left"))
    if by == "package":
        rows = [[clip(safe(p.key), 36), clip(safe(p.version), 18), human(p.bytes), p.files,
                 "build-only" if p.build_only else "", clip(_cats(p.categories, 1), 20)] for p in a.packages[:top]]
        more = f"\n({len(a.packages) - top} more packages; --top or --json for all)" if len(a.packages) > top else ""
        return "Bytes by package\n" + table(rows, ["package", "version", "bytes", "files", "", "mostly"],
                                             colalign=("left", "left", "right", "right", "left", "left")) + more
    if by == "layer":
        rows = [[s.layer, human(s.size), human(s.final_bytes), human(s.wasted_bytes), clip(_cats(s.categories, 1), 22),
                 clip(safe(s.text), 38)] for s in a.steps if s.layer is not None]
        return "Bytes by layer\n" + table(rows, ["#", "size", "final", "wasted", "mostly", "created by"],
                                           colalign=("right", "right", "right", "right", "left", "left"))
    if by == "step":
        rows = [[s.index, "" if s.layer is None else s.layer, "" if s.layer is None else human(s.size),
                 "" if s.layer is None else human(s.wasted_bytes), clip(_cats(s.categories, 1), 22),
                 clip(safe(s.text), 46)] for s in a.steps]
        return "Bytes by Dockerfile step\n" + table(rows, ["step", "layer", "size", "wasted", "mostly", "created by"],
                                                     colalign=("right", "right", "right", "right", "left", "left"))
    if by == "dir":
        rows = [[human(d.size), d.files, clip(_cats(d.categories), 34), clip(safe("/" + d.path), 40)]
                for d in a.dirs[:top]]
        return "Bytes by directory\n" + table(rows, ["bytes", "files", "categories", "path"],
                                               colalign=("right", "right", "left", "left"))
    raise ValueError(f"unknown grouping {by!r}; expected one of {', '.join(BY)}")


def findings_text(a, top: int) -> str:
    """Return the findings, largest savings first, with the total that slimming could save."""
    total = a.summary.total_size
    out = [f"Findings: could save {human(a.could_save_bytes)} of {human(total)} "
           f"(estimated {human(a.estimated_size_after_bytes)} after slimming)"]
    if a.could_save_by_fix:
        out.append("  by fix: " + ", ".join(f"{fix} {human(n)}" for fix, n in a.could_save_by_fix.items() if n))
    if not a.findings:
        out.append("  none")
    for f in a.findings[:top]:
        saving = human(f.savings_bytes) if f.savings_bytes else "-"
        lines = textwrap.wrap(safe(f.title), WIDTH - 24) or [""]
        out.append(f"{saving:>10}  {f.fix:<11} {lines[0]}")
        out.extend(" " * 24 + line for line in lines[1:])
        for ev in f.evidence[:3]:
            where = clip(safe(ev.what), 52)
            size = human(ev.size) if ev.size else ""
            layer = f"layer {ev.layer}" if ev.layer is not None else ""
            out.append(" " * 24 + f"{where}  {size}  {layer}".rstrip())
        advice = textwrap.wrap(safe(f.advice), WIDTH - 26)
        out.extend(" " * 24 + ("» " if i == 0 else "  ") + line for i, line in enumerate(advice))
    if len(a.findings) > top:
        out.append(f"({len(a.findings) - top} more findings; --json for all)")
    return "\n".join(out)


def fleet_json(rows) -> str:
    """Return the JSON document for fleet rows (schema ``slimmer.fleet/1``)."""
    return json.dumps({"schema": "slimmer.fleet/1", "images": to_jsonable(list(rows))}, indent=2)


def fleet_text(rows) -> str:
    """Return the fleet table: one row per image, largest possible saving first."""
    ordered = sorted(rows, key=lambda r: (bool(r.error), -r.could_save_bytes, r.source))
    table_rows = []
    for r in ordered:
        name = clip(safe(", ".join(r.tags)), 28) if r.tags else clip_left(safe(r.source), 28)
        if r.error:
            table_rows.append([name, "", "", "", "", clip(safe("error: " + r.error), 34)])
            continue
        worst = f"{clip(r.worst_finding, 24)} (-{human(r.worst_finding_bytes)})" if r.worst_finding else "-"
        table_rows.append([name, human(r.total_bytes), f"{r.dive_efficiency * 100:.1f} %",
                           human(r.true_wasted_bytes), human(r.could_save_bytes), clip(worst, 34)])
    return table(table_rows, ["image", "size", "efficiency", "wasted", "could save", "worst finding"],
                 colalign=("left", "right", "right", "right", "right", "left"))
