"""Rendering of analysis records for people (tables that fit 100 columns) and for scripts
(JSON). Knows nothing of archives; the CLI picks the renderer."""

from __future__ import annotations

import dataclasses
import json
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


def safe(text: str) -> str:
    """Return ``text`` printable on any terminal (undecodable bytes shown as escapes)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, sort_keys=False)


def table(rows: list[list], headers: list[str], colalign=None) -> str:
    return tabulate(rows, headers=headers, tablefmt="simple", colalign=colalign, disable_numparse=True)


def analysis_json(a, source: str) -> dict:
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
                           for w in d.paths[: len(a.wasted) or 20]],
            "shadowed": [{"path": "/" + w.path, "size_bytes": w.size, "layer": w.layer, "by_layer": w.by_layer,
                          "how": w.how} for w in a.wasted],
        },
        "largest_files": [{"path": "/" + p.path, "size_bytes": p.size, "layer": p.layer} for p in a.largest_files],
        "largest_dirs": [{"path": "/" + p.path, "size_bytes": p.size} for p in a.largest_dirs],
    }


def analysis_text(a, source: str, top: int) -> str:
    """Return the human report for one analysis."""
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
    out.append("")
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
