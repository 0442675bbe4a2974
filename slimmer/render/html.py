"""The HTML report of an analysis: one self-contained page that opens offline, written
atomically (``slimmer.atomic``).

The page is static HTML (the summary, the findings, the categories, the layers and steps,
the packages) plus an explorer drawn by one inline script (``page.js``): a treemap of the
final filesystem or of one layer's changes (added, modified, removed) that zooms into
directories, a search box, and the files of each finding. What the script draws is
``explorer_data``: one tree of every path any view shows and the views over it, as JSON,
gzip-compressed and base64-encoded into a data block, so a 155,000-file image makes a page
of a few MB; the script unpacks it with the browser's DecompressionStream. The Content-
Security-Policy allows that one script and the one style sheet by their sha256 hashes and
nothing else: no other script, no network, no inline style attribute.

Every string from the image goes through ``safe`` (control characters, bidirectional marks
and bytes that were not UTF-8 shown as escapes): in the markup it is then HTML-escaped; in the
data it is JSON (ASCII, ``<`` ``>`` ``&`` as ``\\u`` escapes) inside base64, which holds no
character that could end the data block, and the script shows it as text, never as markup.
Knows nothing of archives.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import html
import json
from pathlib import Path

from slimmer.analyzer.categories import CATEGORIES, RULES
from slimmer.analyzer.changes import ADDED, MODIFIED, REMOVED, LayerChanges, category_of
from slimmer.analyzer.findings import claims_of, layers_of
from slimmer.layers import MergedFS
from slimmer.model import DIR, FILE
from slimmer.render import human, safe

__all__ = ["COLORS", "DATA_ID", "MARK_COLORS", "decode_data", "explorer_data", "page"]

DATA_ID = "slimmer-data"
STEP_CHARS = 400  # of a step's command in the page's data (the table shows 300)

COLORS = {
    "toolchain": "#d62728", "build-only": "#ff7f0e", "cache": "#e7ba52", "package-db": "#8c564b",
    "docs": "#9467bd", "man": "#b39ddb", "info": "#ce93d8", "locale": "#17becf", "vcs": "#555555",
    "tests": "#f48fb1", "debug": "#a1887f", "runtime": "#2ca02c", "other": "#9ecae1",
}
MARK_COLORS = {ADDED: "#2ca02c", MODIFIED: "#e6a700", REMOVED: "#d62728"}
MARK_CLASSES = {ADDED: "add", MODIFIED: "mod", REMOVED: "rem"}
NO_CATEGORY = "."
_REASONS: dict[str, str] = {}
for _rule in RULES:
    _REASONS.setdefault(_rule.category, _rule.reason)
_HERE = Path(__file__).resolve().parent


# ---- what the script draws -----------------------------------------------------------------


def explorer_data(a) -> dict:
    """Return what the page's explorer draws, as JSON values.

    ``names``/``up``: one tree of every path of the merged filesystem and of every layer's
    changes, node 0 the root, each node numbered after its parent (``up`` is the distance
    back to it); names made visible by ``safe``. ``views``: the final filesystem, then each
    layer's changes; each lists its non-directory entries by node (``node`` as distances
    from the previous one) with their ``size`` (bytes of a regular file, else 0), ``cat``
    (one letter per entry: the category at that index of ``categories``, ``.`` for none) and
    ``layer`` (the layer that gave that version); a layer's view adds ``mark`` (``+`` added,
    ``~`` modified, ``-`` removed: what its whiteouts deleted, with the deleted version's
    size) and the final view ``pkg`` (an index into ``packages``, -1 for none).
    ``findings``: the versions each finding claims, as (layer, node), and its layers, most bytes first."""
    attr = a.attribution
    layer_rows = [r for r in a.layers if r.index is not None]
    data: dict = {"categories": list(CATEGORIES), "packages": [], "names": [""], "up": [0], "views": [],
                  "findings": [], "layers": [{"index": r.index, "size": r.size, "files": r.files,
                                              "step": safe(" ".join(r.step.split()))[:STEP_CHARS]}
                                             for r in layer_rows]}
    if attr is None or attr.fs is None:
        return data
    fs = attr.fs
    index = _tree(data, fs)
    letter = {c: chr(ord("a") + i) for i, c in enumerate(CATEGORIES)}
    category = category_of(attr)
    keys = sorted({f.package for f in attr.files if f.package})
    label: dict[str, str] = {}
    for p in attr.packages:
        label.setdefault(p.key, f"{p.name} {p.version}".strip())
    data["packages"] = [safe(label.get(k, k)) for k in keys]
    number = {k: i for i, k in enumerate(keys)}
    owner = {f.path: number[f.package] for f in attr.files if f.package}
    final = [(index[path], v.entry.size if v.entry.kind == FILE else 0,
              letter.get(category(path, v.layer) or "", NO_CATEGORY), v.layer, owner.get(path, -1))
             for path, v in fs.files() if v.entry.kind != DIR]
    data["views"].append(_view(final, "pkg"))
    changes = LayerChanges(fs)
    for r in layer_rows:
        rows = [(index[c.path], c.entry.size if c.entry.kind == FILE else 0,
                 letter.get(category(c.path, c.layer) or "", NO_CATEGORY), c.layer, c.mark)
                for c in changes.of_layer(r.index) if c.entry.kind != DIR]
        data["views"].append(_view(rows, "mark"))
    for f in a.findings:
        claims = sorted((layer, index[path]) for layer, path in claims_of(f) if path in index)
        data["findings"].append({"title": safe(f.title), "claims": claims, "layers": layers_of(f)})
    return data


def _tree(data: dict, fs: MergedFS) -> dict[str, int]:
    """Fill ``names`` and ``up`` with every path of ``fs`` (final or shadowed) and the
    directories above them; return each path's node."""
    paths = set(fs.refs())
    paths.update(s.path for s in fs.shadowed)
    for path in list(paths):
        up = path.rpartition("/")[0]
        while up and up not in paths:
            paths.add(up)
            up = up.rpartition("/")[0]
    paths.discard("")
    index = {"": 0}
    names, ups = data["names"], data["up"]
    for n, path in enumerate(sorted(paths), start=1):  # a directory sorts before every path below it
        parent, _, name = path.rpartition("/")
        index[path] = n
        names.append(safe(name))
        ups.append(n - index[parent])
    return index


def _view(rows: list[tuple], last: str) -> dict:
    """One view from its rows (node, size, category letter, layer, and ``last``: a mark or a
    package number), in node order."""
    rows.sort()
    nodes, sizes, cats, layers, lasts = zip(*rows) if rows else ((), (), (), (), ())
    return {"node": [b - a for a, b in zip((0, *nodes), nodes)], "size": list(sizes), "cat": "".join(cats),
            "layer": list(layers), last: "".join(lasts) if last == "mark" else list(lasts)}


def encode_data(data: dict) -> str:
    """Return ``data`` as the page embeds it: JSON (ASCII; ``<``, ``>`` and ``&`` escaped),
    gzip-compressed (reproducibly: no time stamp), base64-encoded."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return base64.b64encode(gzip.compress(text.encode("ascii"), compresslevel=6, mtime=0)).decode("ascii")


def decode_data(page_text: str) -> dict:
    """Return the explorer data embedded in a page written by ``page``."""
    start = page_text.index(f'id="{DATA_ID}">') + len(f'id="{DATA_ID}">')
    end = page_text.index("</script>", start)
    return json.loads(gzip.decompress(base64.b64decode(page_text[start:end])))


# ---- the page --------------------------------------------------------------------------------


@functools.cache
def _script() -> str:
    return (_HERE / "page.js").read_text(encoding="utf-8")


@functools.cache
def _style() -> str:
    colors = "".join(f".c-{c}{{background:{COLORS[c]};color:{_ink(COLORS[c])}}}" for c in CATEGORIES)
    marks = "".join(f".m-{MARK_CLASSES[m]}{{background:{c};color:{_ink(c)}}}" for m, c in MARK_COLORS.items())
    return (_HERE / "page.css").read_text(encoding="utf-8") + colors + marks


def _ink(background: str) -> str:
    """Return the text colour readable on ``background`` (by its relative luminance)."""
    r, g, b = (int(background[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "#111" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.55 else "#fff"


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _csp(script: str, style: str) -> str:
    """The page's policy: its one script and one style sheet, by hash; nothing to fetch."""
    return (f"default-src 'none'; script-src {_hash(script)}; style-src {_hash(style)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def _e(text) -> str:
    return html.escape(safe(text))


def page(a, source: str) -> str:
    """Return the HTML report of analysis ``a`` as one self-contained page."""
    s = a.summary
    name = ", ".join(s.tags) or source
    script, style = _script(), _style()
    data = explorer_data(a)
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f'<meta http-equiv="Content-Security-Policy" content="{_csp(script, style)}">',
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>slimmer: {_e(name)}</title><style>{style}</style></head><body>",
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
    parts.append(_explorer())
    parts.append(_findings(a, data))
    parts.append(_categories(a))
    parts.append(_steps(a))
    parts.append(_packages(a))
    parts.append("<p class='meta'>Written by slimmer.</p>")
    parts.append(f'<script type="application/octet-stream" id="{DATA_ID}">{encode_data(data)}</script>')
    parts.append(f"<script>{script}</script></body></html>")
    return "".join(parts)


def _explorer() -> str:
    """The explorer's controls and its empty map; the script fills them."""
    return (
        "<section id='explorer' aria-label='explorer'><h2>Explorer</h2>"
        "<div class='tools'>"
        "<label>View <select id='view' aria-label='view'></select></label>"
        "<label>Colour <select id='colour' aria-label='colour'><option value='category'>by category</option>"
        "<option value='change'>by change</option></select></label>"
        "<input id='q' type='search' placeholder='Search paths: *.so  share/doc  (/)' aria-label='search paths' "
        "autocomplete='off' spellcheck='false'>"
        "<span id='qn' class='meta' aria-live='polite'></span></div>"
        "<div id='vsum' class='meta'></div>"
        "<div id='fbar' class='fbar' hidden></div>"
        "<nav id='crumbs' class='crumbs' aria-label='directory'></nav>"
        "<div id='legend' class='legend'></div>"
        "<div id='map' class='map'><p class='meta' id='loading'>Loading the explorer…</p></div>"
        "<noscript><p class='note'>The explorer needs JavaScript; the tables below show the same "
        "figures.</p></noscript>"
        "<div id='sel' class='sel' aria-live='polite'></div>"
        "<div class='scroll'><table id='list' class='list'></table></div>"
        "<p class='meta keys'>Click a directory to zoom in, a file to see what it is; the path above the map "
        "zooms out (<kbd>Backspace</kbd>). <kbd>/</kbd> search, <kbd>Esc</kbd> clear, <kbd>[</kbd> <kbd>]</kbd> "
        "previous / next view, <kbd>c</kbd> colour by category or change.</p>"
        "</section>")


def _card(key: str, value: str, cls: str = "") -> str:
    return f"<div class='card'><div class='k'>{_e(key)}</div><div class='big {cls}'>{_e(value)}</div></div>"


def _findings(a, data: dict) -> str:
    out = [f"<h2>Findings — could save {_e(human(a.could_save_bytes))}</h2>"]
    if a.could_save_by_fix:
        out.append("<p>" + " · ".join(f"{_e(fix)}: {_e(human(n))}" for fix, n in a.could_save_by_fix.items())
                   + "</p>")
    if not a.findings:
        out.append("<p>No findings.</p>")
    for k, f in enumerate(a.findings):
        cls = "finding" + ("" if f.savings_bytes else " zero")
        saving = human(f.savings_bytes) if f.savings_bytes else "no bytes"
        show = (f"<button type='button' class='show' data-finding='{k}'>show its files</button>"
                if data["findings"] and data["findings"][k]["claims"] else "")
        out.append(f"<div class='{cls}' id='finding-{k}'><div class='t'>{_e(saving)} · {_e(f.title)} {show}</div>"
                   f"<div class='a'>{_e(f.advice)}</div>")
        if f.evidence:
            out.append("<div class='scroll'><table><tr><th>evidence</th><th>bytes</th><th>layer</th><th>detail</th>"
                       "</tr>")
            for ev in f.evidence:
                out.append(f"<tr><td><code>{_e(ev.what)}</code></td><td class='n'>{_e(human(ev.size))}</td>"
                           f"<td class='n'>{'' if ev.layer is None else ev.layer}</td><td>{_e(ev.detail)}</td></tr>")
            out.append("</table></div>")
        out.append("</div>")
    return "".join(out)


def _bar(width: int) -> str:
    return (f"<svg class='bar' width='200' height='10' aria-hidden='true'><rect width='{width}' height='10'></rect>"
            "</svg>")


def _categories(a) -> str:
    rows = [c for c in a.categories if c.final_bytes or c.wasted_bytes]
    top = max([c.final_bytes for c in rows] + [1])
    out = ["<h2>Categories</h2><div class='scroll'><table><tr><th>category</th><th>final bytes</th><th></th>"
           "<th>files</th><th>wasted bytes</th><th>removable</th><th>for example</th></tr>"]
    for c in rows:
        out.append(f"<tr><td class='nw'><span class='sw c-{c.category}'></span>{_e(c.category)}</td>"
                   f"<td class='n'>{_e(human(c.final_bytes))}</td><td>{_bar(int(200 * c.final_bytes / top))}</td>"
                   f"<td class='n'>{c.files}</td><td class='n'>{_e(human(c.wasted_bytes))}</td>"
                   f"<td>{'yes' if c.removable else ''}</td><td>{_e(_REASONS.get(c.category, ''))}</td></tr>")
    out.append("</table></div>")
    return "".join(out)


def _steps(a) -> str:
    out = ["<h2>Layers and Dockerfile steps</h2><div class='scroll'><table><tr><th>step</th><th>layer</th>"
           "<th>size</th><th>final</th><th>wasted</th><th>mostly</th><th>created by</th></tr>"]
    for s in a.steps:
        if s.layer is None:
            out.append(f"<tr><td class='n'>{s.index}</td><td></td><td></td><td></td><td></td><td></td>"
                       f"<td><code>{_e(s.text)}</code></td></tr>")
            continue
        mostly = ", ".join(f"{c} {human(b)}" for c, b in list(s.categories.items())[:2])
        out.append(f"<tr><td class='n'>{s.index}</td><td class='n'><button type='button' class='layer' "
                   f"data-layer='{s.layer}' title='show what layer {s.layer} changed'>{s.layer}</button></td>"
                   f"<td class='n'>{_e(human(s.size))}</td><td class='n'>{_e(human(s.final_bytes))}</td>"
                   f"<td class='n'>{_e(human(s.wasted_bytes))}</td><td>{_e(mostly)}</td>"
                   f"<td><code>{_e(s.text[:300])}</code></td></tr>")
    out.append("</table></div>")
    return "".join(out)


def _packages(a, top: int = 40) -> str:
    if not a.packages:
        return ""
    out = [f"<h2>Packages ({sum(1 for p in a.packages if p.manager)})</h2><div class='scroll'><table>"
           "<tr><th>package</th><th>version</th><th>bytes</th><th>files</th><th></th></tr>"]
    for p in a.packages[:top]:
        out.append(f"<tr><td>{_e(p.key)}</td><td>{_e(p.version)}</td><td class='n'>{_e(human(p.bytes))}</td>"
                   f"<td class='n'>{p.files}</td><td>{'build-only' if p.build_only else ''} {_e(p.note)}</td></tr>")
    out.append("</table></div>")
    if len(a.packages) > top:
        out.append(f"<p class='meta'>{len(a.packages) - top} more packages in the JSON output.</p>")
    return "".join(out)
