"""The JSON documents slimmer publishes, one function per schema, every key written out here.

Each schema (``slimmer.analyze/1``, ``slimmer.fleet/1``, ``slimmer.diff/1``, ``slimmer.slim/1``,
``slimmer.check/1``) is documented in README.md, and ``tests/test_schemas.py`` checks the keys
each command emits against those tables: renaming a record's field never changes a published
document by accident. ``dumps`` is the one way a document becomes text: ASCII with escapes,
so any string from an image (control characters, lone surrogates) stays exact and inert.
Knows nothing of archives.
"""

from __future__ import annotations

import json

from slimmer.analyzer.diff import ADDED, CHANGED, REMOVED

__all__ = [
    "analysis_json",
    "attribution_json",
    "check_json",
    "diff_json",
    "dumps",
    "fleet_json",
    "slim_json",
]

ANALYZE = "slimmer.analyze/1"
FLEET = "slimmer.fleet/1"
DIFF = "slimmer.diff/1"
SLIM = "slimmer.slim/1"
CHECK = "slimmer.check/1"


def dumps(document: dict) -> str:
    """Return ``document`` as indented JSON text, ASCII only (``\\u001b``, ``\\udce9``)."""
    return json.dumps(document, indent=2, ensure_ascii=True)


# ---- analyze -------------------------------------------------------------------------------


def analysis_json(a, source: str, top: int = 20) -> dict:
    """Return the documented JSON object for one analysis (schema ``slimmer.analyze/1``)."""
    s = a.summary
    d = a.dive
    return {
        "schema": ANALYZE,
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
                      "categories": dict(p.categories), "note": p.note} for p in a.packages],
        "steps": [{"index": s.index, "layer": s.layer, "created_by": s.text, "instruction": s.instruction,
                   "size_bytes": s.size, "final_bytes": s.final_bytes, "wasted_bytes": s.wasted_bytes,
                   "categories": dict(s.categories)} for s in a.steps],
        "dirs": [{"path": "/" + d.path, "size_bytes": d.size, "files": d.files, "categories": dict(d.categories)}
                 for d in a.dirs],
        "findings": [{"id": f.id, "title": f.title, "advice": f.advice, "fix": f.fix,
                      "savings_bytes": f.savings_bytes, "layers": list(f.layers), "steps": list(f.steps),
                      "evidence": [{"what": e.what, "size_bytes": e.size, "layer": e.layer, "step": e.step,
                                    "detail": e.detail} for e in f.evidence]} for f in a.findings],
        "could_save_bytes": a.could_save_bytes,
        "could_save_by_fix": dict(a.could_save_by_fix),
        "estimated_size_after_bytes": a.estimated_size_after_bytes,
        "notes": list(a.notes),
    }


# ---- a fleet -------------------------------------------------------------------------------


def fleet_json(rows) -> dict:
    """Return the JSON object for fleet rows (schema ``slimmer.fleet/1``): one object per image."""
    return {"schema": FLEET, "images": [
        {"source": r.source, "tags": list(r.tags), "total_bytes": r.total_bytes, "final_bytes": r.final_bytes,
         "layers": r.layers, "dive_efficiency": r.dive_efficiency, "dive_wasted_bytes": r.dive_wasted_bytes,
         "true_wasted_bytes": r.true_wasted_bytes, "could_save_bytes": r.could_save_bytes,
         "worst_finding": r.worst_finding, "worst_finding_bytes": r.worst_finding_bytes, "error": r.error,
         "platform": r.platform, "manifest_digest": r.manifest_digest}
        for r in rows]}


# ---- diff ----------------------------------------------------------------------------------


def _group_json(g) -> dict:
    return {"name": g.name, "removed_files": g.removed_files, "removed_bytes": g.removed_bytes,
            "added_files": g.added_files, "added_bytes": g.added_bytes, "changed_files": g.changed_files,
            "changed_bytes": g.changed_bytes, "net_bytes": g.net_bytes}


def diff_json(d, a: str, b: str) -> dict:
    """Return the documented JSON object of one diff (schema ``slimmer.diff/1``)."""
    return {
        "schema": DIFF,
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


# ---- slim ----------------------------------------------------------------------------------


def slim_json(r, source: str, dry_run: bool) -> dict:
    """Return the documented JSON object for one slim run (schema ``slimmer.slim/1``)."""
    out = {
        "schema": SLIM,
        "mode": r.plan.mode,
        "dry_run": dry_run,
        "input": source,
        "command": list(r.plan.argv),
        "output": None if dry_run else {"path": r.output, "format": r.format, "tags": list(r.tags),
                                        "config_digest": r.config_digest, "manifest_digest": r.manifest_digest or None},
        "sizes": {"before_bytes": r.before_bytes, "after_bytes": r.after_bytes, "removed_bytes": r.removed_bytes,
                  "added_bytes": r.added_bytes},
        "removed_by_category": [{"category": c.category, "files": c.files, "bytes": c.bytes} for c in r.by_category],
        "kept": [{"path": "/" + k.path, "why": k.why} for k in r.plan.reasons],
        "notes": list(r.plan.notes),
    }
    if dry_run:
        out["removed"] = [{"path": "/" + x.path, "kind": x.kind, "bytes": x.size, "category": x.category}
                          for x in sorted(r.plan.removed, key=lambda x: (-x.size, x.path))]
    return out


# ---- check ---------------------------------------------------------------------------------


def check_json(result) -> dict:
    """Return the JSON object of a ``check`` verdict (schema ``slimmer.check/1``)."""
    return {"schema": CHECK, "image": result.image, "passed": result.passed,
            "rules": [{"rule": r.rule, "status": r.status, "actual": r.actual, "limit": r.limit,
                       "message": r.message} for r in result.results]}
