"""What the explorer says in words: the keys, and the full text of a finding, a step or a
file. Every string from the image goes through ``slimmer.render.safe``."""

from __future__ import annotations

from rich.text import Text

from slimmer.analyzer.findings import Finding
from slimmer.analyzer.usage import LayerRow
from slimmer.explorer.filters import MARK_NAMES
from slimmer.explorer.index import ImageIndex
from slimmer.explorer.state import TreeState
from slimmer.explorer.tree import NOTHING, OPAQUE, SHADOWED
from slimmer.explorer.widgets import mode_string
from slimmer.render import human, safe

KEYS = """\
[b]Everywhere[/b]
  Tab  Shift+Tab  next / previous pane
  Ctrl+F  /       filter the tree (words below); Enter applies it
  Ctrl+L          the layer's own changes (dive: layer changes)
  Ctrl+A          the merged filesystem up to it (dive: aggregated)
  v               switch between those two views
  i               the full text of what is selected
  t               light or dark colours
  ?               these keys            q  Ctrl+C      quit

[b]Layers[/b]    Up/Down: a layer (steps without one, in place)
          Enter: its step in full
[b]Findings[/b]  Enter: its files, in the layer holding them
          (Enter again: the next layer); i: advice and evidence
[b]Waste[/b]     Enter: that file, in the layer holding its bytes

[b]Tree[/b]
  Up Down PgUp PgDn Home End   move     Left/Right   up a level / open
  Space  Enter    collapse or expand    Ctrl+Space   all of them
  \\[  ]            collapse all / expand all
  s               sort by name / size   Ctrl+B       mode, uid:gid columns
  p               package column        w            only wasted bytes
  Ctrl+A Ctrl+R Ctrl+U   hide added / removed / unmodified files
  Esc             clear every filter

[b]Marks[/b]  + added   ~ modified   - removed (by a whiteout or opaque dir)
        * a later layer replaces or deletes it: its bytes are wasted
        names are coloured by category (toolchain, cache, docs, ...)

[b]Filter words[/b] (all must hold)
  *.so  lib*.a    a glob on the name (on the path if it has a /)
  usr/share       a substring of the path (lower case: any case)
  re:^usr/.*\\.a$  or /REGEX/     a regular expression on the path
  cat:docs,man    categories        pkg:libc6  pkg:none   packages
  >1MB  >=10k     minimum size
  changed  added  modified  removed  wasted   what the layer did
"""


def finding_text(f: Finding) -> Text:
    out = Text()
    out.append(safe(f.title) + "\n\n", "bold")
    out.append(f"Fix: {f.fix}   Saves: {human(f.savings_bytes) if f.savings_bytes else '-'}   "
               f"Layers: {', '.join(map(str, f.layers)) or '-'}\n\n")
    out.append(safe(f.advice) + "\n\n")
    for ev in f.evidence:
        where = f"layer {ev.layer}" if ev.layer is not None else ""
        out.append(f"  {human(ev.size) if ev.size else '':>9}  {where:<9} {safe(ev.what)}\n")
        if ev.detail:
            out.append(f"  {'':>9}  {'':<9} {safe(ev.detail)}\n", "dim")
    return out


def step_text(ix: ImageIndex, r: LayerRow) -> Text:
    out = Text()
    if r.index is None:
        out.append("A step without a layer: it changed only the image config.\n\n", "dim")
    else:
        layer = ix.image.layers[r.index]
        out.append(f"Layer {r.index}   {human(r.size)} in {r.files} files   stored {human(r.stored_size)} "
                   f"({layer.compression})\n", "bold")
        out.append(f"diff_id {layer.diff_id}\ndigest  {layer.digest}\n")
    if r.created:
        out.append(f"created {safe(r.created)}\n")
    out.append("\n" + safe(r.step or "(no history step)") + "\n")
    return out


def node_facts(ix: ImageIndex, state: TreeState, n: int, short: bool) -> list[str]:
    """Return what the details line (``short``) or the info screen says about node ``n``."""
    view = state.view
    entry = view.entry[n]
    path = "/" + view.path[n]
    mark = view.mark_of(n)
    flags = view.flags[n]
    is_dir = view.kids[n] is not None
    what = []
    if entry is None:
        what.append("whiteout of a path the layers below lack" if flags & NOTHING else "directory (implied)")
    else:
        kind = entry.kind
        size = state.size[n] if is_dir else entry.size
        what.append(f"{kind} {human(size)}" + (f" in {state.files[n]} files" if is_dir else ""))
        what.append(f"{mode_string(entry)} {entry.uid}:{entry.gid}")
        what.append(f"layer {view.vlayer[n]}")
    if mark.strip():
        what.append(MARK_NAMES[mark] + (f" by layer {view.layer}" if mark == "-" else ""))
    if flags & SHADOWED:
        what.append(f"replaced or deleted by layer {ix.changes.later.get((view.path[n], view.vlayer[n]))}")
    if flags & OPAQUE:
        what.append("opaque dir: hides what the layers below put in it")
    category = None if is_dir or entry is None else ix.category(view.path[n], view.vlayer[n])
    if category:
        what.append(category)
    key = None if is_dir or entry is None else ix.package(view.path[n], view.vlayer[n])
    if key:
        pkg = ix.packages.get(key)
        what.append(f"package {pkg.name} {pkg.version}" if pkg else f"package {key}")
    link = ""
    if entry is not None and entry.link:
        link = (" → " if entry.kind == "symlink" else " ⇒ /") + entry.link
    if short:
        return [path + link, " · ".join(what)]
    lines = [path + link, ""] + what
    fact = ix.files.get(view.path[n])
    if fact is not None and fact.layer == view.vlayer[n]:
        lines.append(f"rule {fact.rule}")
    return lines


