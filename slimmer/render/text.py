"""Text for people: the tables and summaries of every command, as wide as they are asked to be
(the terminal's width: ``render.terminal_width``); headings and verdicts marked with ``style``.

Every string that came from an image (paths, tags, ``created_by``, Entrypoint, Cmd, User,
package names, finding titles and evidence, notes, link targets) goes through ``safe`` (or
``clip``, which applies it) before it is placed in a line. Knows nothing of archives.
"""

from __future__ import annotations

import textwrap

from slimmer.analyzer.diff import ADDED, CHANGED, REMOVED
from slimmer.analyzer.gate import FAIL, MISCONFIGURED, PASS, SKIP
from slimmer.analyzer.usage import grouped
from slimmer.render import MIN_WIDTH, WIDTH, cells, clip, clip_left, human, safe, style, table

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
    "slim_text",
]

BY = ("category", "package", "layer", "step", "dir")
SHOWN_PATHS = 20  # paths listed by slim's dry run
SHOWN_WARNED = 5  # paths named in one warning of export


# ---- analyze -------------------------------------------------------------------------------


def analysis_text(a, source: str, top: int, by: str | None = None, width: int = WIDTH) -> str:
    """Return the human report for one analysis, no line wider than ``width``: the full report,
    or with ``by`` (one of ``BY``) the headline, that one table and the findings."""
    head = _headline(a, source, width)
    if by is None:
        parts = [head, _full_body(a, top, width), by_table(a, "category", top, width)]
    else:
        parts = [head, by_table(a, by, top, width)]
    parts.append(findings_text(a, top, width))
    for note in a.notes:
        parts.append(_wrapped("note: " + safe(note), width, "      "))
    return "\n\n".join(p for p in parts if p)


def _wrapped(text: str, width: int, indent: str = "") -> str:
    return "\n".join(textwrap.wrap(text, max(width, MIN_WIDTH), subsequent_indent=indent,
                                   break_on_hyphens=False)) or text


def _fields(label: str, parts: list[str], width: int, pad: int = 13) -> str:
    """Return ``label`` (padded to ``pad``) and ``parts`` on one line, three spaces apart, or on
    as many lines as ``width`` needs (continuations under the first part)."""
    head = f"{label:<{pad}}"
    lines, line = [], head + parts[0]
    for part in parts[1:]:
        if cells(line) + 3 + cells(part) > max(width, MIN_WIDTH):
            lines.append(line)
            line = " " * pad + part
        else:
            line += "   " + part
    lines.append(line)
    return "\n".join(lines)


def _headline(a, source: str, width: int = WIDTH) -> str:
    s = a.summary
    d = a.dive
    width = max(width, MIN_WIDTH)
    name = ", ".join(s.tags) or source
    half = (width - 13 - 7) // 2
    ep = " ".join(s.entrypoint or ()) or "-"
    cmd = " ".join(s.cmd or ()) or "-"
    out = [
        f"{'Image':<13}" + clip(name, width - 13),
        _fields("Format", [s.format, f"Platform {safe(s.platform)}", f"Created {safe(s.created or '-')}"], width),
        _fields("Entrypoint", [clip(ep, half), f"Cmd {clip(cmd, half)}"], width),
        _fields("Layers", [str(s.layer_count), f"Files {s.file_count}", f"User {safe(s.user or 'root')}"], width),
        _fields("Size", [f"total {human(s.total_size)}", f"final {human(s.final_size)}",
                         f"stored {human(s.stored_size)}"], width),
        _fields("Efficiency", [f"{d.efficiency * 100:.2f} % (dive)",
                               f"wasted {human(d.wasted_bytes)} (dive, counts kept copies)",
                               f"truly wasted {human(a.true_wasted_bytes)}"], width),
    ]
    return "\n".join(out)


def _title(text: str) -> str:
    return style(text, "bold")


def _path_rows(groups, cols) -> list[list]:
    """Rows of a list that may hold directory groups: ``cols(item)`` gives an item's cells but
    the path; a group shows its files and bytes."""
    rows = []
    for g in groups:
        if g.is_group:
            rows.append([human(g.size), *(["" for _ in cols(None)]),
                         f"/{safe(g.path)}  ({g.files:,} files)"])
        else:
            rows.append([human(g.size), *cols(g.item), "/" + safe(g.path)])
    return rows


def _full_body(a, top: int, width: int = WIDTH) -> str:
    d = a.dive
    attr = a.attribution
    out = []
    rows = [[r.index if r.index is not None else "", human(r.size) if r.index is not None else "",
             r.files if r.index is not None else "", clip(r.step, 400)] for r in a.layers]
    out.append(table(rows, ["#", "size", "files", "created by"], colalign=("right", "right", "right", "left"),
                     width=width, flex=3))
    if d.paths:
        out.append("")
        out.append(_title("Largest wasted paths (dive: path in several layers)"))
        groups = grouped(d.paths, lambda w: w.path, lambda w: w.size, top)
        rows = _path_rows(groups, lambda w: ["", ""] if w is None else [w.count, ",".join(map(str, w.layers))])
        out.append(table(rows, ["bytes", "copies", "layers", "path"], colalign=("right", "right", "left", "left"),
                         width=width, flex=3))
    if a.wasted:
        out.append("")
        out.append(_title("Truly wasted (in a layer, not in the final filesystem)"))
        every = sorted(attr.waste, key=lambda w: (-w.size, w.path)) if attr is not None else a.wasted
        groups = grouped([w for w in every if w.size], lambda w: w.path, lambda w: w.size, top)
        rows = _path_rows(groups, lambda w: ["", "", ""] if w is None else [w.layer, w.by_layer, w.how])
        out.append(table(rows, ["bytes", "layer", "by", "how", "path"],
                         colalign=("right", "right", "right", "left", "left"), width=width, flex=4))
    out.append("")
    out.append(_title("Largest files"))
    if attr is not None:
        every = sorted(attr.files, key=lambda f: (-f.size, f.path))
        groups = grouped(every, lambda f: f.path, lambda f: f.size, top)
    else:
        groups = grouped(a.largest_files, lambda f: f.path, lambda f: f.size, top)
    rows = _path_rows(groups, lambda f: [""] if f is None else [f.layer])
    out.append(table(rows, ["bytes", "layer", "path"], colalign=("right", "right", "left"), width=width, flex=2))
    out.append("")
    out.append(_title("Largest directories"))
    rows = [[human(p.size), "/" + safe(p.path)] for p in a.largest_dirs[:top]]
    out.append(table(rows, ["bytes", "path"], colalign=("right", "left"), width=width, flex=1))
    return "\n".join(out)


def _cats(categories: dict[str, int], n: int = 2) -> str:
    return ", ".join(f"{c} {human(b)}" for c, b in list(categories.items())[:n])


def by_table(a, by: str, top: int, width: int = WIDTH) -> str:
    """Return the table of the analysis grouped ``by`` one of ``BY``, no wider than ``width``."""
    if by == "category":
        rows = [[c.category, human(c.final_bytes), c.files, human(c.wasted_bytes), "yes" if c.removable else ""]
                for c in a.categories if c.final_bytes or c.wasted_bytes]
        return _title("Bytes by category") + "\n" + table(
            rows, ["category", "final", "files", "wasted", "removable"],
            colalign=("left", "right", "right", "right", "left"))
    if by == "package":
        rows = [[clip(p.key, 36), clip(p.version, 18), human(p.bytes), p.files,
                 "build-only" if p.build_only else "", clip(_cats(p.categories, 1), 200)] for p in a.packages[:top]]
        more = f"\n({len(a.packages) - top} more packages; --top or --json for all)" if len(a.packages) > top else ""
        return _title("Bytes by package") + "\n" + table(
            rows, ["package", "version", "bytes", "files", "", "mostly"],
            colalign=("left", "left", "right", "right", "left", "left"), width=width, flex=5) + more
    if by == "layer":
        rows = [[s.layer, human(s.size), human(s.final_bytes), human(s.wasted_bytes), clip(_cats(s.categories, 1), 22),
                 clip(s.text, 400)] for s in a.steps if s.layer is not None]
        return _title("Bytes by layer") + "\n" + table(
            rows, ["#", "size", "final", "wasted", "mostly", "created by"],
            colalign=("right", "right", "right", "right", "left", "left"), width=width, flex=5)
    if by == "step":
        rows = [[s.index, "" if s.layer is None else s.layer, "" if s.layer is None else human(s.size),
                 "" if s.layer is None else human(s.wasted_bytes), clip(_cats(s.categories, 1), 22),
                 clip(s.text, 400)] for s in a.steps]
        return _title("Bytes by Dockerfile step") + "\n" + table(
            rows, ["step", "layer", "size", "wasted", "mostly", "created by"],
            colalign=("right", "right", "right", "right", "left", "left"), width=width, flex=5)
    if by == "dir":
        rows = [[human(d.size), d.files, clip(_cats(d.categories), 34), "/" + safe(d.path)] for d in a.dirs[:top]]
        return _title("Bytes by directory") + "\n" + table(
            rows, ["bytes", "files", "categories", "path"], colalign=("right", "right", "left", "left"),
            width=width, flex=3)
    raise ValueError(f"unknown grouping {by!r}; expected one of {', '.join(BY)}")


def findings_text(a, top: int, width: int = WIDTH) -> str:
    """Return the findings, largest savings first, with the total that slimming could save."""
    width = max(width, MIN_WIDTH)
    total = a.summary.total_size
    out = [_wrapped(f"Findings: could save {human(a.could_save_bytes)} of {human(total)} "
                    f"(estimated {human(a.estimated_size_after_bytes)} after slimming)", width, "  ")]
    out[0] = _title(out[0])
    if a.could_save_by_fix:
        out.append(_wrapped("  by fix: " + ", ".join(f"{fix} {human(n)}" for fix, n in a.could_save_by_fix.items()
                                                     if n), width, "    "))
    if not a.findings:
        out.append("  none")
    for f in a.findings[:top]:
        saving = human(f.savings_bytes) if f.savings_bytes else "-"
        lines = textwrap.wrap(safe(f.title), width - 24) or [""]
        out.append(f"{saving:>10}  {f.fix:<11} {lines[0]}")
        out.extend(" " * 24 + line for line in lines[1:])
        for ev in f.evidence[:3]:
            size = human(ev.size) if ev.size else ""
            layer = f"layer {ev.layer}" if ev.layer is not None else ""
            rest = f"  {size}  {layer}".rstrip()
            where = clip(ev.what, max(width - 24 - cells(rest), 12))
            out.append(" " * 24 + f"{where}{rest}")
        advice = textwrap.wrap(safe(f.advice), width - 26)
        out.extend(" " * 24 + ("» " if i == 0 else "  ") + line for i, line in enumerate(advice))
    if len(a.findings) > top:
        out.append(f"({len(a.findings) - top} more findings; --json for all)")
    return "\n".join(out)


# ---- a fleet -------------------------------------------------------------------------------


def fleet_text(rows, width: int = WIDTH) -> str:
    """Return the fleet table: one row per image, largest possible saving first; the image
    names and the worst findings share what ``width`` leaves."""
    ordered = sorted(rows, key=lambda r: (bool(r.error), -r.could_save_bytes, r.source))
    room = max(width, MIN_WIDTH) - 58  # the five figures' columns and the gaps
    name_w, worst_w = max(16, room * 4 // 10), max(18, room - max(16, room * 4 // 10))
    table_rows = []
    for r in ordered:
        name = clip(", ".join(r.tags), name_w) if r.tags else clip_left(r.source, name_w)
        if r.error:
            table_rows.append([name, "", "", "", "", clip("error: " + r.error, worst_w)])
            continue
        worst = f"{clip(r.worst_finding, max(worst_w - 12, 6))} (-{human(r.worst_finding_bytes)})" \
            if r.worst_finding else "-"
        table_rows.append([name, human(r.total_bytes), f"{r.dive_efficiency * 100:.1f} %",
                           human(r.true_wasted_bytes), human(r.could_save_bytes), clip(worst, worst_w)])
    return table(table_rows, ["image", "size", "efficiency", "wasted", "could save", "worst finding"],
                 colalign=("left", "right", "right", "right", "right", "left"), width=width, flex=5)


def fleet_errors(rows) -> list[str]:
    """Return one ``slimmer: error: ...`` line per archive of the fleet that could not be read."""
    return [f"slimmer: error: {safe(r.error)}" for r in rows if r.error]


# ---- check ---------------------------------------------------------------------------------


_MARKS = {FAIL: ("FAIL", "red"), SKIP: ("SKIP", "dim"), PASS: ("PASS", "green"), MISCONFIGURED: ("MISC", "yellow")}


def check_text(result, width: int = WIDTH) -> str:
    """Return one line per rule of a ``check`` verdict (wrapped to ``width``) and a verdict line."""
    width = max(width, MIN_WIDTH)
    lines = []
    rule_w = max([34] + [len(r.rule) for r in result.results]) if width >= 100 else \
        max(len(r.rule) for r in result.results) if result.results else 0
    for r in result.results:
        mark, colour = _MARKS.get(r.status, ("PASS", "green"))
        head = f"{mark}  {r.rule:<{rule_w}} "
        body = textwrap.wrap(safe(r.message), max(width - len(head), 20)) or [""]
        lines.append(style(mark, colour) + head[len(mark):] + body[0])
        lines.extend(" " * len(head) + more for more in body[1:])
    failed = len(result.failures)
    broken = sum(1 for r in result.results if r.status == MISCONFIGURED)
    counted = sum(1 for r in result.results if r.status != SKIP)
    verdict = f"{'FAILED' if failed else 'PASSED'}: {failed} of {counted} rules failed"
    if broken:
        verdict += f" ({broken} misconfigured)"
    lines.append(style(verdict, "red" if failed else "green") + f" for {safe(result.image)}")
    return "\n".join(lines)


# ---- diff ----------------------------------------------------------------------------------


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + human(abs(n))


def _groups(rows, top: int, title: str, width: int) -> list[str]:
    rows = [g for g in rows if g.removed_files or g.added_files or g.changed_files or g.net_bytes]
    shown = [[safe(g.name), g.removed_files, human(g.removed_bytes), g.added_files, human(g.added_bytes),
              g.changed_files, _signed(g.changed_bytes), _signed(g.net_bytes)] for g in rows[:top]]
    return ["", table(shown, [title, "removed", "bytes", "added", "bytes", "changed", "bytes", "net"],
                      colalign=("left",) + ("right",) * 7, width=width, flex=0)]


def diff_text(d, a: str, b: str, top: int, width: int = WIDTH) -> str:
    """Return the human report of one diff (an ``ImageDiff``) from archive ``a`` to ``b``."""
    room = max(width, MIN_WIDTH) - 40
    out = [f"A  {clip_left(a, room)}   {human(d.a_bytes)} in files, {human(d.a_stored)} stored",
           f"B  {clip_left(b, room)}   {human(d.b_bytes)} in files, {human(d.b_stored)} stored",
           _wrapped(f"paths  {d.count(REMOVED)} removed, {d.count(ADDED)} added, {d.count(CHANGED)} changed   "
                    f"net {_signed(d.b_bytes - d.a_bytes)}", width, "       ")]
    out += _groups(list(d.by_category), top, "category", width)
    out += _groups(list(d.by_package), top, "package", width)
    out.append("")
    rows = [[r.status, "" if r.index_a is None else r.index_a, "" if r.index_b is None else r.index_b,
             safe(r.diff_id.split(":")[-1][:12]), human(r.size), r.files, clip(r.step, 400)] for r in d.layers]
    out.append(table(rows, ["layer", "A", "B", "diff_id", "size", "files", "created by"],
                     colalign=("left", "right", "right", "left", "right", "right", "left"), width=width, flex=6))
    if d.changes:
        out.append("")
        out.append(_title(f"largest changes ({len(d.changes)} in all)"))
        rows = [[c.change, _signed(c.delta), ",".join(c.fields), c.category, "/" + safe(c.path)]
                for c in d.changes[:top]]
        out.append(table(rows, ["change", "bytes", "what", "category", "path"],
                         colalign=("left", "right", "left", "left", "left"), width=width, flex=4))
    if d.notes:
        out.append("")
        out += [_wrapped(f"note: {safe(n)}", width, "      ") for n in d.notes]
    return "\n".join(out)


# ---- slim ----------------------------------------------------------------------------------


def slim_text(r, source: str, dry_run: bool, width: int = WIDTH) -> str:
    """Return the human summary of one slim run (a ``SlimResult``), no wider than ``width``."""
    lines = []
    tags = safe(", ".join(r.tags)) or "untagged"
    if dry_run:
        lines.append(_wrapped(f"dry run: {safe(source)} ({r.plan.mode}) would become {tags}; nothing written", width))
    else:
        where = "the slim image to standard output" if r.output == "-" else safe(r.output)
        lines.append(_wrapped(f"wrote {where} ({r.format}, {tags}) from {safe(source)} ({r.plan.mode})", width))
    share = f" ({r.removed_bytes / r.before_bytes * 100:.1f} %)" if r.before_bytes else ""
    lines.append(_fields("size", [f"before {human(r.before_bytes)}", f"after {human(r.after_bytes)}",
                                  f"removed {human(r.removed_bytes)}{share}", f"added {human(r.added_bytes)}"],
                         width, pad=8))
    lines.append("")
    rows = [[c.category, c.files, human(c.bytes)] for c in r.by_category if c.bytes or c.files]
    lines.append(table(rows, ["removed", "files", "bytes"], colalign=("left", "right", "right")))
    if dry_run and r.plan.removed:
        lines.append("")
        lines.append(_title(f"largest paths that would go ({len(r.plan.removed)} in all)"))
        biggest = sorted(r.plan.removed, key=lambda x: (-x.size, x.path))
        groups = grouped(biggest, lambda x: x.path, lambda x: x.size, SHOWN_PATHS)
        rows = [[human(g.size), g.item.category if g.item is not None else "",
                 f"/{safe(g.path)}  ({g.files:,} files)" if g.is_group else "/" + safe(g.path)] for g in groups]
        lines.append(table(rows, ["bytes", "category", "path"], colalign=("right", "left", "left"), width=width,
                           flex=2))
    if r.plan.reasons:
        lines.append("")
        command = " ".join(r.plan.argv) or "-"
        lines.append(_title(f"kept, and why (entrypoint: {clip(command, 60)})"))
        rows = [[clip("/" + k.path, 48), safe(" ".join(k.why.split()))] for k in r.plan.reasons]
        lines.append(table(rows, ["path", "why"], width=width, flex=1))
    if r.plan.notes:
        lines.append("")
        lines.append(_title("notes"))
        lines += [_wrapped(f"  - {safe(n)}", width, "    ") for n in r.plan.notes]
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
