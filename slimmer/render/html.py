"""The HTML report of an analysis: one self-contained page (inline CSS and SVG, no script, no
network) with a treemap of the final filesystem coloured by category, the findings, the
categories, the layers and steps, and the packages, written atomically (``slimmer.atomic``).

Every string placed in the page goes through ``_e``: made visible by ``safe`` (control
characters, and bytes that were not UTF-8 or lone surrogates, which UTF-8 cannot encode, shown
as escapes), then HTML-escaped. Knows nothing of archives."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field

from slimmer.analyzer.categories import CATEGORIES, RULES
from slimmer.render import human, safe

__all__ = ["COLORS", "page", "squarify", "treemap_svg"]

WIDTH, HEIGHT = 1200, 620
MIN_AREA = 36.0  # px²: smaller boxes are merged into one "small files" box
HEADER = 15  # px of a directory's label strip
MAX_DEPTH = 12

COLORS = {
    "toolchain": "#d62728", "build-only": "#ff7f0e", "cache": "#e7ba52", "package-db": "#8c564b",
    "docs": "#9467bd", "man": "#b39ddb", "info": "#ce93d8", "locale": "#17becf", "vcs": "#555555",
    "tests": "#f48fb1", "debug": "#a1887f", "runtime": "#2ca02c", "other": "#9ecae1",
}
_REASONS: dict[str, str] = {}
for _rule in RULES:
    _REASONS.setdefault(_rule.category, _rule.reason)


@dataclass
class _Node:
    name: str
    size: int = 0
    category: Counter = field(default_factory=Counter)
    children: dict[str, _Node] = field(default_factory=dict)
    path: str = ""

    def dominant(self) -> str:
        return self.category.most_common(1)[0][0] if self.category else "other"


def _tree(files) -> _Node:
    root = _Node("/", path="")
    for f in files:
        if not f.size:
            continue
        node = root
        node.size += f.size
        node.category[f.category] += f.size
        parts = f.path.split("/")
        for i, part in enumerate(parts):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node(part, path="/".join(parts[: i + 1]))
            child.size += f.size
            child.category[f.category] += f.size
            node = child
    _collapse(root)
    return root


def _collapse(node: _Node) -> None:
    """Merge chains of directories that hold one directory each (usr/local/go/pkg/...) into one
    box, so labels are not spent on empty levels."""
    stack = [node]
    while stack:
        n = stack.pop()
        for name, child in list(n.children.items()):
            while len(child.children) == 1:
                (only,) = child.children.values()
                if not only.children:
                    break
                only.name = f"{child.name}/{only.name}"
                child = only
            n.children[name] = child
            stack.append(child)


def _worst(row: list[float], side: float) -> float:
    s = sum(row)
    if s <= 0 or side <= 0:
        return float("inf")
    return max(max(side * side * r / (s * s), (s * s) / (side * side * r)) for r in row if r > 0)


def squarify(sizes: list[float], x: float, y: float, w: float, h: float) -> list[tuple[float, float, float, float]]:
    """Return one rectangle (x, y, w, h) per size (sizes sorted largest first), filling the
    rectangle given, by the squarified treemap algorithm (Bruls, Huizing, van Wijk 2000)."""
    total = sum(sizes)
    if total <= 0 or w <= 0 or h <= 0:
        return [(x, y, 0.0, 0.0) for _ in sizes]
    areas = [s * w * h / total for s in sizes]
    rects: list[tuple[float, float, float, float]] = []
    row: list[float] = []
    i = 0
    while i < len(areas):
        side = min(w, h)
        candidate = row + [areas[i]]
        if not row or _worst(candidate, side) <= _worst(row, side):
            row = candidate
            i += 1
            continue
        x, y, w, h = _lay_row(row, x, y, w, h, rects)
        row = []
    if row:
        _lay_row(row, x, y, w, h, rects)
    return rects


def _lay_row(row, x, y, w, h, rects):
    s = sum(row)
    if w >= h:  # column on the left
        cw = s / h if h else 0
        cy = y
        for a in row:
            rh = a / cw if cw else 0
            rects.append((x, cy, cw, rh))
            cy += rh
        return x + cw, y, w - cw, h
    rh = s / w if w else 0
    cx = x
    for a in row:
        rw = a / rh if rh else 0
        rects.append((cx, y, rw, rh))
        cx += rw
    return x, y + rh, w, h - rh


def _svg_boxes(node: _Node, x: float, y: float, w: float, h: float, depth: int, out: list[str]) -> None:
    label = _e("/" + node.path if node.path else "/")
    tip = f"{label} — {human(node.size)}"
    if node.children and depth < MAX_DEPTH and w * h >= MIN_AREA * 4 and w > 6 and h > 6:
        strip = HEADER if h > 3 * HEADER and w > 40 and node.path else 0
        if node.path:
            out.append(f'<rect class="dir" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}">'
                       f"<title>{tip}</title></rect>")
        if strip:
            out.append(f'<text x="{x + 3:.1f}" y="{y + 11:.1f}" class="dl">{_fit(node.name + "/", w)}</text>')
        ix, iy, iw, ih = (x + 1, y + strip + 1, w - 2, h - strip - 2) if node.path else (x, y, w, h)
        kids = sorted(node.children.values(), key=lambda n: (-n.size, n.name))
        scale = iw * ih / node.size if node.size else 0
        big = [k for k in kids if k.size * scale >= MIN_AREA]
        small = [k for k in kids if k.size * scale < MIN_AREA]
        items: list[_Node] = list(big)
        rest = None
        if small:
            rest = _Node(f"{len(small)} small entries", path=node.path)
            for k in small:
                rest.size += k.size
                rest.category.update(k.category)
            items.append(rest)
            items.sort(key=lambda n: -n.size)
        for item, (rx, ry, rw, rh) in zip(items, squarify([k.size for k in items], ix, iy, iw, ih), strict=True):
            if item is not rest:
                _svg_boxes(item, rx, ry, rw, rh, depth + 1, out)
            else:
                _leaf(item, rx, ry, rw, rh, out, f"/{node.path}/… {item.name}" if node.path else item.name)
        return
    _leaf(node, x, y, w, h, out, "/" + node.path)


def _leaf(node: _Node, x, y, w, h, out, name: str) -> None:
    cat = node.dominant()
    parts = ", ".join(f"{c} {human(b)}" for c, b in node.category.most_common(3))
    tip = _e(f"{name} — {human(node.size)} ({parts})")
    out.append(f'<rect class="c-{cat}" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}">'
               f"<title>{tip}</title></rect>")
    if w > 50 and h > 14:
        out.append(f'<text x="{x + 3:.1f}" y="{y + 11:.1f}" class="fl">{_fit(node.name, w)}</text>')


def _fit(text: str, width: float) -> str:
    room = max(1, int((width - 6) / 6.2))
    text = safe(text)
    text = text if len(text) <= room else text[: max(1, room - 1)] + "…"
    return html.escape(text)


def treemap_svg(files, width: int = WIDTH, height: int = HEIGHT) -> str:
    """Return an SVG treemap of ``files`` (FileFact records: path, size, category): each
    directory a frame, each box coloured by the category holding most of its bytes."""
    root = _tree(files)
    out: list[str] = []
    if root.size:
        _svg_boxes(root, 0, 0, width, height, 0, out)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="treemap" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="treemap of the final filesystem">'
            + "".join(out) + "</svg>")


CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555} .big{font-size:20px;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}
.card .k{color:#666;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.save{color:#b71c1c}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #e0e0e0;padding:3px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{background:#f0f0f0}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:5px}
.legend span.item{margin-right:14px;white-space:nowrap;font-size:13px}
.treemap{background:#fff;border:1px solid #ccc;display:block;max-width:100%;height:auto}
.treemap rect{stroke:#fff;stroke-width:.6}
.treemap rect.dir{fill:#e8e8e8;stroke:#999;stroke-width:.8}
.treemap text{font:10px sans-serif;pointer-events:none}
.treemap text.dl{fill:#333;font-weight:600}
.treemap text.fl{fill:#fff}
.finding{background:#fff;border:1px solid #ddd;border-left:5px solid #d62728;border-radius:4px;padding:8px 12px;
 margin:10px 0}
.finding .t{font-weight:600} .finding .a{color:#444;margin:4px 0}
.finding.zero{border-left-color:#999}
.bar{display:inline-block;height:10px;background:#90a4ae;vertical-align:middle}
code{font-size:12px;background:#f3f3f3;padding:0 3px;border-radius:3px}
.note{color:#8a6d3b}
"""


def _css() -> str:
    colors = "".join(f".c-{c}{{fill:{COLORS[c]}}} .bg-{c}{{background:{COLORS[c]}}}" for c in CATEGORIES)
    return CSS + colors


def _e(text) -> str:
    return html.escape(safe(text))


def page(a, source: str) -> str:
    """Return the HTML report of analysis ``a`` as one self-contained page."""
    s = a.summary
    name = ", ".join(s.tags) or source
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
             "img-src data:\">",
             f"<title>slimmer: {_e(name)}</title><style>{_css()}</style></head><body>",
             f"<h1>{_e(name)}</h1>",
             f"<div class='meta'>{_e(s.format)} · {_e(s.platform)} · {s.layer_count} layers · {s.file_count} files"
             f" · user {_e(s.user or 'root')}</div>",
             "<div class='cards'>",
             _card("image size (all layers)", human(s.total_size)),
             _card("final filesystem", human(s.final_size)),
             _card("stored (compressed)", human(s.stored_size)),
             _card("could save", human(a.could_save_bytes), "save"),
             _card("estimated after slimming", human(a.estimated_size_after_bytes)),
             _card("dive efficiency", f"{a.dive.efficiency * 100:.1f} %"),
             "</div>"]
    for note in a.notes:
        parts.append(f"<p class='note'>note: {_e(note)}</p>")
    files = a.attribution.files if a.attribution is not None else []
    parts.append("<h2>Final filesystem by category</h2>")
    parts.append(_legend(a))
    parts.append(treemap_svg(files))
    parts.append(_findings(a))
    parts.append(_categories(a))
    parts.append(_steps(a))
    parts.append(_packages(a))
    parts.append("<p class='meta'>Written by slimmer. Hover a box for its path and size.</p></body></html>")
    return "".join(parts)


def _card(key: str, value: str, cls: str = "") -> str:
    return f"<div class='card'><div class='k'>{_e(key)}</div><div class='big {cls}'>{_e(value)}</div></div>"


def _legend(a) -> str:
    present = {c.category for c in a.categories if c.final_bytes}
    items = [f"<span class='item'><span class='sw bg-{c}'></span>{_e(c)}</span>" for c in CATEGORIES if c in present]
    return "<div class='legend'>" + "".join(items) + "</div>"


def _findings(a) -> str:
    out = [f"<h2>Findings — could save {_e(human(a.could_save_bytes))}</h2>"]
    if a.could_save_by_fix:
        out.append("<p>" + " · ".join(f"{_e(fix)}: {_e(human(n))}" for fix, n in a.could_save_by_fix.items())
                   + "</p>")
    if not a.findings:
        out.append("<p>No findings.</p>")
    for f in a.findings:
        cls = "finding" + ("" if f.savings_bytes else " zero")
        saving = human(f.savings_bytes) if f.savings_bytes else "no bytes"
        out.append(f"<div class='{cls}'><div class='t'>{_e(saving)} · {_e(f.title)}</div>"
                   f"<div class='a'>{_e(f.advice)}</div>")
        if f.evidence:
            out.append("<table><tr><th>evidence</th><th>bytes</th><th>layer</th><th>detail</th></tr>")
            for ev in f.evidence:
                out.append(f"<tr><td><code>{_e(ev.what)}</code></td><td class='n'>{_e(human(ev.size))}</td>"
                           f"<td class='n'>{'' if ev.layer is None else ev.layer}</td><td>{_e(ev.detail)}</td></tr>")
            out.append("</table>")
        out.append("</div>")
    return "".join(out)


def _categories(a) -> str:
    rows = [c for c in a.categories if c.final_bytes or c.wasted_bytes]
    top = max([c.final_bytes for c in rows] + [1])
    out = ["<h2>Categories</h2><table><tr><th>category</th><th>final bytes</th><th></th><th>files</th>"
           "<th>wasted bytes</th><th>removable</th><th>for example</th></tr>"]
    for c in rows:
        width = int(200 * c.final_bytes / top)
        out.append(f"<tr><td><span class='sw bg-{c.category}'></span>{_e(c.category)}</td>"
                   f"<td class='n'>{_e(human(c.final_bytes))}</td><td><span class='bar' style='width:{width}px'>"
                   f"</span></td><td class='n'>{c.files}</td><td class='n'>{_e(human(c.wasted_bytes))}</td>"
                   f"<td>{'yes' if c.removable else ''}</td><td>{_e(_REASONS.get(c.category, ''))}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _steps(a) -> str:
    out = ["<h2>Layers and Dockerfile steps</h2><table><tr><th>step</th><th>layer</th><th>size</th><th>final</th>"
           "<th>wasted</th><th>mostly</th><th>created by</th></tr>"]
    for s in a.steps:
        if s.layer is None:
            out.append(f"<tr><td class='n'>{s.index}</td><td></td><td></td><td></td><td></td><td></td>"
                       f"<td><code>{_e(s.text)}</code></td></tr>")
            continue
        mostly = ", ".join(f"{c} {human(b)}" for c, b in list(s.categories.items())[:2])
        out.append(f"<tr><td class='n'>{s.index}</td><td class='n'>{s.layer}</td><td class='n'>{_e(human(s.size))}</td>"
                   f"<td class='n'>{_e(human(s.final_bytes))}</td><td class='n'>{_e(human(s.wasted_bytes))}</td>"
                   f"<td>{_e(mostly)}</td><td><code>{_e(s.text[:300])}</code></td></tr>")
    out.append("</table>")
    return "".join(out)


def _packages(a, top: int = 40) -> str:
    if not a.packages:
        return ""
    out = [f"<h2>Packages ({sum(1 for p in a.packages if p.manager)})</h2><table><tr><th>package</th>"
           "<th>version</th><th>bytes</th><th>files</th><th></th></tr>"]
    for p in a.packages[:top]:
        out.append(f"<tr><td>{_e(p.key)}</td><td>{_e(p.version)}</td><td class='n'>{_e(human(p.bytes))}</td>"
                   f"<td class='n'>{p.files}</td><td>{'build-only' if p.build_only else ''} {_e(p.note)}</td></tr>")
    out.append("</table>")
    if len(a.packages) > top:
        out.append(f"<p class='meta'>{len(a.packages) - top} more packages in the JSON output.</p>")
    return "".join(out)
