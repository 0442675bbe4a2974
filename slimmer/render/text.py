"""Text for people: the tables and summaries of every command, 100 columns wide.

Every string that came from an image (paths, tags, ``created_by``, Entrypoint, Cmd, User,
package names, finding titles and evidence, notes, link targets) goes through ``safe`` (or
``clip``, which applies it) before it is placed in a line. Knows nothing of archives.
"""

from __future__ import annotations

import textwrap

from slimmer.analyzer.diff import ADDED, CHANGED, REMOVED
from slimmer.analyzer.gate import FAIL, SKIP
from slimmer.render import WIDTH, clip, clip_left, human, safe, table

__all__ = [
    "BY",
    "analysis_text",
    "by_table",
    "check_text",
    "diff_text",
    "export_text",
    "export_warnings",
    "findings_text",
    "fleet_errors",
    "fleet_text",
    "progress_line",
    "slim_text",
]

BY = ("category", "package", "layer", "step", "dir")
SHOWN_PATHS = 20  # paths listed by slim's dry run
SHOWN_WARNED = 5  # paths named in one warning of export
CLEAR_LINE = "\r\033[K"  # back to the start of the line, and erase it (ECMA-48 EL)


def progress_line(done_bytes: int) -> str:
    """Return the progress shown on a terminal while an image is read; it starts with a carriage
    return, so each one replaces the last, and ``CLEAR_LINE`` removes it."""
    return f"\rslimmer: read {done_bytes / 1e6:,.0f} MB"


# ---- analyze -------------------------------------------------------------------------------


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
        parts.append(f"note: {safe(note)}")
    return "\n\n".join(p for p in parts if p)


def _headline(a, source: str) -> str:
    s = a.summary
    d = a.dive
    out = []
    name = ", ".join(s.tags) or source
    out.append(f"Image        {clip(name, WIDTH - 13)}")
    out.append(f"Format       {s.format}   Platform {safe(s.platform)}   Created {safe(s.created or '-')}")
    ep = " ".join(s.entrypoint or ()) or "-"
    cmd = " ".join(s.cmd or ()) or "-"
    out.append(f"Entrypoint   {clip(ep, 40)}   Cmd {clip(cmd, 40)}")
    out.append(f"Layers       {s.layer_count}   Files {s.file_count}   User {safe(s.user or 'root')}")
    out.append(f"Size         total {human(s.total_size)}   final {human(s.final_size)}   "
               f"stored {human(s.stored_size)}")
    out.append(f"Efficiency   {d.efficiency * 100:.2f} % (dive)   wasted {human(d.wasted_bytes)} (dive, counts kept "
               f"copies)   truly wasted {human(a.true_wasted_bytes)}")
    return "\n".join(out)


def _full_body(a, top: int) -> str:
    d = a.dive
    out = []
    rows = [[r.index if r.index is not None else "", human(r.size) if r.index is not None else "",
             r.files if r.index is not None else "", clip(r.step, 66)] for r in a.layers]
    out.append(table(rows, ["#", "size", "files", "created by"], colalign=("right", "right", "right", "left")))
    if d.paths:
        out.append("")
        out.append("Largest wasted paths (dive: path in several layers)")
        rows = [[human(w.size), w.count, ",".join(map(str, w.layers)), clip("/" + w.path, 60)]
                for w in d.paths[:top]]
        out.append(table(rows, ["bytes", "copies", "layers", "path"], colalign=("right", "right", "left", "left")))
    if a.wasted:
        out.append("")
        out.append("Truly wasted (in a layer, not in the final filesystem)")
        rows = [[human(w.size), w.layer, w.by_layer, w.how, clip("/" + w.path, 54)] for w in a.wasted[:top]]
        out.append(table(rows, ["bytes", "layer", "by", "how", "path"],
                         colalign=("right", "right", "right", "left", "left")))
    out.append("")
    out.append("Largest files")
    rows = [[human(p.size), p.layer, clip("/" + p.path, 80)] for p in a.largest_files[:top]]
    out.append(table(rows, ["bytes", "layer", "path"], colalign=("right", "right", "left")))
    out.append("")
    out.append("Largest directories")
    rows = [[human(p.size), clip("/" + p.path, 86)] for p in a.largest_dirs[:top]]
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
        rows = [[clip(p.key, 36), clip(p.version, 18), human(p.bytes), p.files,
                 "build-only" if p.build_only else "", clip(_cats(p.categories, 1), 20)] for p in a.packages[:top]]
        more = f"\n({len(a.packages) - top} more packages; --top or --json for all)" if len(a.packages) > top else ""
        return "Bytes by package\n" + table(rows, ["package", "version", "bytes", "files", "", "mostly"],
                                             colalign=("left", "left", "right", "right", "left", "left")) + more
    if by == "layer":
        rows = [[s.layer, human(s.size), human(s.final_bytes), human(s.wasted_bytes), clip(_cats(s.categories, 1), 22),
                 clip(s.text, 38)] for s in a.steps if s.layer is not None]
        return "Bytes by layer\n" + table(rows, ["#", "size", "final", "wasted", "mostly", "created by"],
                                           colalign=("right", "right", "right", "right", "left", "left"))
    if by == "step":
        rows = [[s.index, "" if s.layer is None else s.layer, "" if s.layer is None else human(s.size),
                 "" if s.layer is None else human(s.wasted_bytes), clip(_cats(s.categories, 1), 22),
                 clip(s.text, 46)] for s in a.steps]
        return "Bytes by Dockerfile step\n" + table(rows, ["step", "layer", "size", "wasted", "mostly", "created by"],
                                                     colalign=("right", "right", "right", "right", "left", "left"))
    if by == "dir":
        rows = [[human(d.size), d.files, clip(_cats(d.categories), 34), clip("/" + d.path, 40)]
                for d in a.dirs[:top]]
        return "Bytes by directory\n" + table(rows, ["bytes", "files", "categories", "path"],
                                               colalign=("right", "right", "left", "left"))
    raise ValueError(f"unknown grouping {by!r}; expected one of {', '.join(BY)}")


def findings_text(a, top: int) -> str:
    """Return the findings, largest savings first, with the total that slimming could save."""
    total = a.summary.total_size
    out = [(f"Findings: could save {human(a.could_save_bytes)} of {human(total)} "
            f"(estimated {human(a.estimated_size_after_bytes)} after slimming)")]
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
            where = clip(ev.what, 52)
            size = human(ev.size) if ev.size else ""
            layer = f"layer {ev.layer}" if ev.layer is not None else ""
            out.append(" " * 24 + f"{where}  {size}  {layer}".rstrip())
        advice = textwrap.wrap(safe(f.advice), WIDTH - 26)
        out.extend(" " * 24 + ("» " if i == 0 else "  ") + line for i, line in enumerate(advice))
    if len(a.findings) > top:
        out.append(f"({len(a.findings) - top} more findings; --json for all)")
    return "\n".join(out)


# ---- a fleet -------------------------------------------------------------------------------


def fleet_text(rows) -> str:
    """Return the fleet table: one row per image, largest possible saving first."""
    ordered = sorted(rows, key=lambda r: (bool(r.error), -r.could_save_bytes, r.source))
    table_rows = []
    for r in ordered:
        name = clip(", ".join(r.tags), 28) if r.tags else clip_left(r.source, 28)
        if r.error:
            table_rows.append([name, "", "", "", "", clip("error: " + r.error, 34)])
            continue
        worst = f"{clip(r.worst_finding, 24)} (-{human(r.worst_finding_bytes)})" if r.worst_finding else "-"
        table_rows.append([name, human(r.total_bytes), f"{r.dive_efficiency * 100:.1f} %",
                           human(r.true_wasted_bytes), human(r.could_save_bytes), clip(worst, 34)])
    return table(table_rows, ["image", "size", "efficiency", "wasted", "could save", "worst finding"],
                 colalign=("left", "right", "right", "right", "right", "left"))


def fleet_errors(rows) -> list[str]:
    """Return one ``slimmer: error: ...`` line per archive of the fleet that could not be read."""
    return [f"slimmer: error: {safe(r.error)}" for r in rows if r.error]


# ---- check ---------------------------------------------------------------------------------


def check_text(result) -> str:
    """Return one line per rule of a ``check`` verdict and a verdict line."""
    lines = []
    for r in result.results:
        mark = {FAIL: "FAIL", SKIP: "SKIP"}.get(r.status, "PASS")
        lines.append(f"{mark}  {r.rule:<34} {safe(r.message)}")
    failed = len(result.failures)
    lines.append(f"{'FAILED' if failed else 'PASSED'}: {failed} of "
                 f"{sum(1 for r in result.results if r.status != SKIP)} rules failed for {safe(result.image)}")
    return "\n".join(lines)


# ---- diff ----------------------------------------------------------------------------------


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + human(abs(n))


def _groups(rows, top: int, title: str) -> list[str]:
    rows = [g for g in rows if g.removed_files or g.added_files or g.changed_files or g.net_bytes]
    shown = [[clip(g.name, 40), g.removed_files, human(g.removed_bytes), g.added_files, human(g.added_bytes),
              g.changed_files, _signed(g.changed_bytes), _signed(g.net_bytes)] for g in rows[:top]]
    return ["", table(shown, [title, "removed", "bytes", "added", "bytes", "changed", "bytes", "net"],
                      colalign=("left",) + ("right",) * 7)]


def diff_text(d, a: str, b: str, top: int) -> str:
    """Return the human report of one diff (an ``ImageDiff``) from archive ``a`` to ``b``."""
    out = [f"A  {clip(a, 60)}   {human(d.a_bytes)} in files, {human(d.a_stored)} stored",
           f"B  {clip(b, 60)}   {human(d.b_bytes)} in files, {human(d.b_stored)} stored",
           (f"paths  {d.count(REMOVED)} removed, {d.count(ADDED)} added, {d.count(CHANGED)} changed   "
            f"net {_signed(d.b_bytes - d.a_bytes)}")]
    out += _groups(list(d.by_category), top, "category")
    out += _groups(list(d.by_package), top, "package")
    out.append("")
    rows = [[r.status, "" if r.index_a is None else r.index_a, "" if r.index_b is None else r.index_b,
             safe(r.diff_id.split(":")[-1][:12]), human(r.size), r.files, clip(r.step, 36)] for r in d.layers]
    out.append(table(rows, ["layer", "A", "B", "diff_id", "size", "files", "created by"],
                     colalign=("left", "right", "right", "left", "right", "right", "left")))
    if d.changes:
        out.append("")
        out.append(f"largest changes ({len(d.changes)} in all)")
        rows = [[c.change, _signed(c.delta), ",".join(c.fields), c.category, clip("/" + c.path, 50)]
                for c in d.changes[:top]]
        out.append(table(rows, ["change", "bytes", "what", "category", "path"],
                         colalign=("left", "right", "left", "left", "left")))
    if d.notes:
        out.append("")
        out += [f"note: {safe(n)}" for n in d.notes]
    return "\n".join(out)


# ---- slim ----------------------------------------------------------------------------------


def slim_text(r, source: str, dry_run: bool) -> str:
    """Return the human summary of one slim run (a ``SlimResult``)."""
    lines = []
    tags = safe(", ".join(r.tags)) or "untagged"
    if dry_run:
        lines.append(f"dry run: {safe(source)} ({r.plan.mode}) would become {tags}; nothing written")
    else:
        lines.append(f"wrote {safe(r.output)} ({r.format}, {tags}) from {safe(source)} ({r.plan.mode})")
    share = f" ({r.removed_bytes / r.before_bytes * 100:.1f} %)" if r.before_bytes else ""
    lines.append(f"size    before {human(r.before_bytes)}   after {human(r.after_bytes)}   "
                 f"removed {human(r.removed_bytes)}{share}   added {human(r.added_bytes)}")
    lines.append("")
    rows = [[c.category, c.files, human(c.bytes)] for c in r.by_category if c.bytes or c.files]
    lines.append(table(rows, ["removed", "files", "bytes"], colalign=("left", "right", "right")))
    if dry_run and r.plan.removed:
        lines.append("")
        lines.append(f"largest paths that would go ({len(r.plan.removed)} in all)")
        biggest = sorted(r.plan.removed, key=lambda x: (-x.size, x.path))[:SHOWN_PATHS]
        rows = [[human(x.size), x.category, clip("/" + x.path, 70)] for x in biggest]
        lines.append(table(rows, ["bytes", "category", "path"], colalign=("right", "left", "left")))
    if r.plan.reasons:
        lines.append("")
        command = " ".join(r.plan.argv) or "-"
        lines.append(f"kept, and why (entrypoint: {clip(command, 60)})")
        rows = [[clip("/" + k.path, 48), clip(k.why, 50)] for k in r.plan.reasons]
        lines.append(table(rows, ["path", "why"]))
    if r.plan.notes:
        lines.append("")
        lines.append("notes")
        lines += [f"  - {safe(n)}" for n in r.plan.notes]
    return "\n".join(lines)


# ---- export --------------------------------------------------------------------------------


def export_text(done) -> str:
    """Return the one-line summary of an export (an ``Exported``)."""
    return (f"{safe(done.dest)}: {done.files} files ({human(done.bytes)}), {done.dirs} directories, "
            f"{done.symlinks} symlinks, {done.hardlinks} hardlinks, {done.specials} other")


def export_warnings(done) -> list[str]:
    """Return the ``slimmer: warning: ...`` lines of an export: what the policy left out."""
    out = []
    for paths, what, flag, verb in ((done.skipped_devices, "device node", "--devices", "skipped"),
                                    (done.cleared_setid, "setuid/setgid bit", "--setuid", "cleared")):
        if not paths:
            continue
        shown = ", ".join(safe("/" + p) for p in paths[:SHOWN_WARNED]) + (", ..." if len(paths) > SHOWN_WARNED else "")
        plural = "s" if len(paths) > 1 else ""
        out.append(f"slimmer: warning: {verb} {len(paths)} {what}{plural} ({shown}); use {flag} to keep them")
    return out
