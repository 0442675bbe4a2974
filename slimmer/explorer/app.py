"""The explorer's screen: layers, the file tree of the selected layer, findings and waste.

Keyboard first, with dive's keys where they mean the same: Tab between panes, Ctrl+L / Ctrl+A
for a layer's own changes / the merged filesystem, Space to collapse, Ctrl+Space for all,
Ctrl+B for the attribute columns, Ctrl+A/R/U to hide added/removed/unmodified files, Ctrl+F
to filter, ``?`` for every key. Imported only by ``slimmer explore`` when it runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import textwrap
import threading
from collections import OrderedDict
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from slimmer.analyzer import usage
from slimmer.analyzer.findings import Finding, claims_of, layers_of
from slimmer.analyzer.report import Analysis, Pending
from slimmer.explorer.filters import MARK_NAMES, Filter, FilterError
from slimmer.explorer.index import ImageIndex
from slimmer.explorer.state import TreeState
from slimmer.explorer.texts import KEYS, finding_text, node_facts, step_text
from slimmer.explorer.tree import CHANGES, MERGED, build
from slimmer.explorer.widgets import (
    FileTree,
    Pane,
    TextScreen,
    clip,
)
from slimmer.render import human, safe

INTERRUPTED, TERMINATED = 130, 143  # exit statuses after SIGINT and SIGTERM
CACHED_VIEWS = 4  # built views kept, the current one always
CACHED_NODES = 250_000  # and no more nodes than this in all (about 130 bytes each)
WASTE_ROWS = 200
DIVE_ROWS = 100
FILTER_DELAY = 0.25  # seconds of no typing before the filter applies

class FilterBar(Input):
    """The filter line under the tree."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.filter_done", "Back to the tree")]


class ExplorerApp(App):
    """Explore one analysed image."""

    TITLE = "slimmer explore"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #summary { height: 1; padding: 0 1; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    #main { height: 1fr; }
    #left { width: 36%; min-width: 34; max-width: 64; }
    #left > Pane:focus { height: 2fr; }
    #right { width: 1fr; border: round $foreground 25%; border-title-color: $foreground 70%;
             border-subtitle-color: $foreground 70%; }
    #right:focus-within { border: round $border; border-title-color: $border; }
    #tree-head { height: 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    FileTree { height: 1fr; }
    FilterBar, FilterBar:focus { height: 1; border: none; padding: 0 1; display: none; background: $boost; }
    #details { height: 2; color: $text-muted; background: $boost; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("tab", "pane(1)", "Pane", show=False, priority=True),
        Binding("shift+tab", "pane(-1)", "Pane", show=False, priority=True),
        # a priority binding: the keys typed right after it go to the filter line, not the tree
        Binding("ctrl+f,ctrl+slash", "filter", "Filter", priority=True),
        Binding("slash", "filter", "Filter", show=False),
        Binding("ctrl+l", "mode('changes')", "Layer changes"),
        Binding("ctrl+a", "mode('merged')", "Aggregated"),
        Binding("v", "toggle_view", "View", show=False),
        Binding("i", "info", "Info"),
        Binding("t", "theme", "Theme", show=False),
        Binding("question_mark", "keys", "Keys"),
    ]

    def __init__(self, ix: ImageIndex, source: str, theme: str = "dark", pending: Pending | None = None):
        """Explore ``ix``; its analysis is attached, or ``pending`` finishes it in a thread
        once the first screen is drawn."""
        super().__init__()
        self.ix = ix
        self.source = source
        self.pending = pending if ix.analysis is None else None
        self.theme = "textual-light" if theme == "light" else "textual-dark"
        self.rows = usage.layer_rows(ix.image)  # one per history step, layers in order
        self.summary = usage.summary(ix.image, ix.fs)
        self.row = 0
        self.mode = CHANGES
        self.flt = Filter()
        self.by = "name"
        self.states: OrderedDict[tuple[int, str], TreeState] = OrderedDict()
        self.finding: tuple[int, int] | None = None  # (finding index, which of its layers)
        self._filter_timer: Timer | None = None
        self._filter_error = ""

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(self._summary(), id="summary")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Pane(*self._layer_options(), id="layers")
                yield Pane(*self._finding_options(), id="findings")
                yield Pane(*self._waste_options(), id="waste")
            with Vertical(id="right"):
                yield Static("", id="tree-head")
                yield FileTree(self.ix, id="tree")
                yield Static("", id="details")
                yield FilterBar(placeholder="filter: *.so  usr/share  re:REGEX  cat:docs  pkg:NAME  >1MB  changed  "
                                            "wasted", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig, code in ((signal.SIGINT, INTERRUPTED), (signal.SIGTERM, TERMINATED)):
            try:  # noqa: SIM105 -- the comment below says why
                loop.add_signal_handler(sig, self.exit, None, code)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (the test pilot): no signals to catch
        self.query_one("#layers").border_title = f"Layers ({len(self.ix.image.layers)})"
        self.query_one("#findings").border_title = "Findings"
        self.query_one("#waste").border_title = "Waste · true vs dive"
        if self.ix.analysis is not None:
            self._analysed(self.ix.analysis)
        elif self.pending is not None:
            self.call_after_refresh(self._analyse)
        layers = self.query_one("#layers", Pane)
        first = next((k for k, r in enumerate(self.rows) if r.index is not None), 0)
        self.row = first
        if self.rows:
            layers.highlighted = first
        self.show()
        layers.focus()

    def _summary(self) -> Text:
        a = self.ix.analysis
        s = self.summary
        name = ", ".join(s.tags) or self.source
        head = f"{name} · {s.layer_count} layers {human(s.total_size)} · final {human(s.final_size)} · "
        if a is None:
            return Text(safe(head + "analysing…"))
        return Text(safe(head + f"wasted {human(a.true_wasted_bytes)} (dive {human(a.dive.wasted_bytes)}, "
                                     f"{a.dive.efficiency * 100:.1f}%)"))

    def _analyse(self) -> None:
        """Finish the analysis in a thread; its result comes back to ``_analysed``."""
        pending = self.pending
        if pending is None:
            return

        def work() -> None:
            result: Analysis | BaseException
            try:
                result = pending.finish()
            except BaseException as err:  # noqa: BLE001 - raised again in the app, as a slimmer bug
                result = err
            try:  # noqa: SIM105 -- the comment below says why
                self.call_from_thread(self._analysed, result)
            except RuntimeError:
                pass  # the explorer was closed first

        threading.Thread(target=work, name="slimmer-analysis", daemon=True).start()

    def _analysed(self, result: Analysis | BaseException) -> None:
        """Show what the analysis adds: categories and packages in the tree, findings, waste."""
        if isinstance(result, BaseException):
            raise result
        if self.ix.analysis is not result:
            self.ix.attach(result)
        a = result
        self.query_one("#summary", Static).update(self._summary())
        self.query_one("#findings").border_title = f"Findings · could save {human(a.could_save_bytes)}"
        for pane, options in (("#findings", self._finding_options()), ("#waste", self._waste_options())):
            widget = self.query_one(pane, Pane)
            widget.set_options(options)
            first = next((i for i, o in enumerate(options) if not o.disabled), None)
            if first is not None:
                widget.highlighted = first
        state = self.current
        if state is not None and (self.flt.categories or self.flt.packages):
            state.set_filter(self.flt)
        self.query_one(FileTree).changed()

    def _layer_options(self) -> list[Option]:
        marked = set(self._finding_layers()) if self.finding is not None else set()
        out = []
        for k, r in enumerate(self.rows):
            step = safe(" ".join(r.step.split()) or "(no history step)")
            if r.index is None:
                out.append(Option(Text(f"  ·{'':15} {step}", "dim"), id=f"row-{k}"))
            else:
                flag = "•" if r.index in marked else " "
                out.append(Option(Text(f"{flag}{r.index:>2} {human(r.size):>8} {r.files:>5} {step}"), id=f"row-{k}"))
        return out

    def _finding_options(self) -> list[Option]:
        if self.ix.analysis is None:
            return [Option("analysing…", disabled=True)]
        findings = self.ix.analysis.findings
        if not findings:
            return [Option("no findings", disabled=True)]
        return [Option(Text(f"{human(f.savings_bytes) if f.savings_bytes else '-':>8} {safe(f.title)}"),
                       id=f"f-{k}") for k, f in enumerate(findings)]

    def _waste_options(self) -> list[Option]:
        a = self.ix.analysis
        if a is None:
            return [Option("analysing…", disabled=True)]
        d = a.dive
        out = [
            Option(f"true     {human(a.true_wasted_bytes):>8}  stored, not in the final image", disabled=True),
            Option(f"dive     {human(d.wasted_bytes):>8}  {d.efficiency * 100:.1f}% efficient (counts kept copies)",
                   disabled=True),
        ]
        waste = a.attribution.waste if a.attribution is not None else []
        for k, w in enumerate(waste[:WASTE_ROWS]):
            how = "deleted" if w.how == "deleted" else "replaced"
            out.append(Option(Text(f"{human(w.size):>8} L{w.layer} {how} by L{w.by_layer}  /{safe(w.path)}"),
                              id=f"w-{k}"))
        if len(waste) > WASTE_ROWS:
            out.append(Option(f"… {len(waste) - WASTE_ROWS} more: the `wasted` filter shows them all", disabled=True))
        if d.paths:
            out.append(Option("dive: paths in several layers", disabled=True))
            for k, p in enumerate(d.paths[:DIVE_ROWS]):
                layers = ",".join(map(str, p.layers))
                out.append(Option(Text(f"{human(p.size):>8} ×{p.count} L{layers}  /{safe(p.path)}"), id=f"d-{k}"))
        return out

    # -- what the tree shows --------------------------------------------------------------------

    def layer_of_row(self, k: int) -> int | None:
        """Return the layer row ``k`` shows: its own, or for a step without one the last layer
        before it (None if there is none)."""
        for r in reversed(self.rows[: k + 1]):
            if r.index is not None:
                return r.index
        return None

    def state(self, layer: int, mode: str) -> TreeState:
        """Return the tree state of ``layer`` in ``mode``, built on first use (a few kept)."""
        key = (layer, mode)
        state = self.states.get(key)
        if state is None:
            state = TreeState(self.ix, build(self.ix, layer, mode), self.flt, self.by)
            self.states[key] = state
            while len(self.states) > 1 and (len(self.states) > CACHED_VIEWS or
                                            sum(len(s.view) for s in self.states.values()) > CACHED_NODES):
                self.states.popitem(last=False)
        else:
            self.states.move_to_end(key)
            if state.flt != self.flt:
                state.set_filter(self.flt)
            if state.by != self.by:
                state.set_sort(self.by)
        return state

    @property
    def current(self) -> TreeState | None:
        tree = self.query_one(FileTree)
        return tree.state

    def show(self) -> None:
        """Show the selected row's layer in the current mode."""
        tree = self.query_one(FileTree)
        box = self.query_one("#right")
        if not self.rows:
            tree.show(None, "this image has no layers")
            box.border_title = "no layers"
            return
        r = self.rows[self.row]
        layer = self.layer_of_row(self.row)
        if layer is None or (r.index is None and self.mode == CHANGES):
            tree.show(None, "this step made no layer: it changed only the image config")
            box.border_title = "no layer"
            box.border_subtitle = ""
            self.refresh_tree_header()
            return
        state = self.state(layer, self.mode)
        tree.show(state)
        what = "its changes" if self.mode == CHANGES else "merged up to it"
        box.border_title = Text(f"Layer {layer} · {what}" + (" (step without a layer)" if r.index is None else ""))
        self._subtitle()
        self.refresh_tree_header()

    def _subtitle(self) -> None:
        state = self.current
        box = self.query_one("#right")
        if state is None:
            box.border_subtitle = ""
            return
        what = self.flt.describe()
        if self.finding is not None:
            what = f"finding {self.finding[0] + 1}" + (f" · {self.flt.text.strip()}" if self.flt.text.strip() else "")
        count = f"{state.matches} files, {human(state.size[0])}"
        box.border_subtitle = Text(safe(clip(f"{what} · {count}" if what else count, 60)))

    def refresh_tree_header(self) -> None:
        self.query_one("#tree-head", Static).update(Text(self.query_one(FileTree).header()))

    def on_file_tree_sorted(self, event: FileTree.Sorted) -> None:
        self.by = event.by

    def on_file_tree_columns_changed(self) -> None:
        self.refresh_tree_header()

    def apply_filter(self, flt: Filter) -> None:
        """Make ``flt`` the filter of every view, and redraw the current one."""
        self.flt = flt
        state = self.current
        if state is not None:
            state.set_filter(flt)
            self.query_one(FileTree).changed()
        self._subtitle()

    # -- events ---------------------------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "layers" and event.option_index != self.row:
            self.row = event.option_index
            self.show()
        self.update_details()

    def on_descendant_focus(self) -> None:
        self.update_details()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        pane = event.option_list.id
        oid = event.option.id or ""
        if pane == "layers":
            self.action_info()
        elif pane == "findings" and oid.startswith("f-"):
            self.choose_finding(int(oid[2:]))
        elif pane == "waste" and oid.startswith("w-") and self.ix.analysis is not None:
            attr = self.ix.analysis.attribution
            w = attr.waste[int(oid[2:])] if attr is not None else None
            if w is not None:
                self.go_to(w.layer, w.path)
        elif pane == "waste" and oid.startswith("d-") and self.ix.analysis is not None:
            p = self.ix.analysis.dive.paths[int(oid[2:])]
            self.go_to(p.layers[0], p.path)

    def on_file_tree_moved(self) -> None:
        self.update_details()

    def update_details(self) -> None:
        """Show under the tree what is selected: the step of the highlighted layer while the
        layers pane has the focus, else the file under the cursor (or a filter's error)."""
        self.query_one("#details", Static).update(self._details())

    def _details(self) -> Text:
        if self._filter_error:
            return Text("filter: " + safe(self._filter_error), "red")
        if getattr(self.focused, "id", "") == "layers" and self.rows:
            step = safe(" ".join(self.rows[self.row].step.split()) or "(no history step)")
            width = max(10, self.query_one("#details").size.width)
            lines = textwrap.wrap(step, width, break_long_words=True, max_lines=2, placeholder=" …")
            return Text("\n".join(lines))
        state = self.current
        if state is None or state.node is None:
            return Text("")
        return Text("\n".join(safe(line) for line in node_facts(self.ix, state, state.node, short=True)))

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, lambda: self._typed(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._typed(event.value)
        self.action_filter_done()

    def _typed(self, text: str) -> None:
        try:
            flt = self.flt.with_text(text)
        except FilterError as err:
            self._filter_error = str(err)
        else:
            self._filter_error = ""
            self.apply_filter(flt)
        self.update_details()

    # -- findings and waste ---------------------------------------------------------------------

    @property
    def findings(self) -> list[Finding]:
        """The findings of the analysis (none while it runs)."""
        return self.ix.analysis.findings if self.ix.analysis is not None else []

    def _finding_layers(self) -> list[int]:
        """The layers holding the active finding's bytes, most first."""
        if self.finding is None:
            return []
        return layers_of(self.findings[self.finding[0]])

    def choose_finding(self, k: int) -> None:
        """Show finding ``k``'s files in the tree, in (the next of) the layers that hold them."""
        finding = self.findings[k]
        layers = layers_of(finding)
        if not layers:
            self.push_screen(TextScreen(f"Finding {k + 1}", finding_text(finding)))
            return
        turn = (self.finding[1] + 1) % len(layers) if self.finding is not None and self.finding[0] == k else 0
        self.finding = (k, turn)
        layer = layers[turn]
        bar = self.query_one(FilterBar)
        bar.value = ""
        bar.display = False
        self._filter_error = ""
        self.flt = Filter(claims=frozenset(claims_of(finding)), claims_label=f"finding {k + 1}")
        self.mode = CHANGES
        self._select_layer(layer)
        state = self.current
        tree = self.query_one(FileTree)
        if state is not None and state.node is not None:
            first = next((i for i, n in enumerate(state.rows.nodes) if not state.view.kids[n]), 0)
            state.move_to(first)
            tree.changed()
        layers_pane = self.query_one("#layers", Pane)
        for i, option in enumerate(self._layer_options()):
            layers_pane.replace_option_prompt_at_index(i, option.prompt)
        more = f" ({turn + 1} of {len(layers)} layers: Enter for the next)" if len(layers) > 1 else ""
        self.notify(clip(safe(finding.title), 72) + more, title=f"Finding {k + 1} · layer {layer}", timeout=4,
                    markup=False)

    def _select_layer(self, layer: int) -> None:
        k = next(i for i, r in enumerate(self.rows) if r.index == layer)
        self.row = k
        self.query_one("#layers", Pane).highlighted = k
        self.show()

    def go_to(self, layer: int, path: str) -> None:
        """Show ``path`` as ``layer`` gives it, in that layer's changes, the cursor on it."""
        self.mode = CHANGES
        self._select_layer(layer)
        state = self.current
        n = state.view.node(path) if state is not None else None
        if state is None or n is None:
            self.notify(f"/{safe(path)} is not in layer {layer}", severity="warning", markup=False)
            return
        if not state.reveal(n):
            self.action_clear_filter()
            state.reveal(n)  # the same view: clearing the filter refilters it in place
        tree = self.query_one(FileTree)
        tree.changed()
        self.screen.set_focus(tree)

    # -- actions --------------------------------------------------------------------------------

    def panes(self) -> list:
        return [self.query_one("#layers"), self.query_one(FileTree), self.query_one("#findings"),
                self.query_one("#waste")]

    def action_pane(self, step: int) -> None:
        panes = self.panes()
        focused = self.focused
        at = panes.index(focused) if focused in panes else (1 if isinstance(focused, FilterBar) else 0)
        self.screen.set_focus(panes[(at + step) % len(panes)])

    def action_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            self.show()

    def action_toggle_view(self) -> None:
        self.action_mode(MERGED if self.mode == CHANGES else CHANGES)

    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.display = True
        if bar.value != self.flt.text:
            bar.value = self.flt.text
        self.screen.set_focus(bar)

    def action_filter_done(self) -> None:
        bar = self.query_one(FilterBar)
        if not bar.value.strip():
            bar.display = False
        self.screen.set_focus(self.query_one(FileTree))

    def action_hide(self, mark: str) -> None:
        hidden = set(self.flt.hidden) ^ {mark}
        self.apply_filter(dataclasses.replace(self.flt, hidden=frozenset(hidden)))
        state = "hidden" if mark in hidden else "shown"
        self.notify(f"{MARK_NAMES[mark]} files {state}", timeout=2)

    def action_wasted(self) -> None:
        self.apply_filter(dataclasses.replace(self.flt, wasted=not self.flt.wasted))

    def action_clear_filter(self) -> None:
        self.finding = None
        self._filter_error = ""
        bar = self.query_one(FilterBar)
        bar.value = ""
        bar.display = False
        self.apply_filter(Filter())
        layers_pane = self.query_one("#layers", Pane)
        for i, option in enumerate(self._layer_options()):
            layers_pane.replace_option_prompt_at_index(i, option.prompt)

    def action_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"
        self.query_one(FileTree).refresh()

    def action_keys(self) -> None:
        self.push_screen(TextScreen("Keys", Text.from_markup(KEYS)))

    def action_info(self) -> None:
        focused = self.focused
        if isinstance(focused, Pane) and focused.id == "findings":
            option = focused.highlighted_option
            oid = option.id if option is not None else None
            if oid is not None and oid.startswith("f-"):
                k = int(oid[2:])
                self.push_screen(TextScreen(f"Finding {k + 1}", finding_text(self.findings[k])))
            return
        if isinstance(focused, FileTree):
            state = self.current
            if state is not None and state.node is not None:
                body = "\n".join(safe(line) for line in node_facts(self.ix, state, state.node, short=False))
                self.push_screen(TextScreen("File", Text(body)))
            return
        if self.rows:
            self.push_screen(TextScreen(f"Step {self.row}", step_text(self.ix, self.rows[self.row])))


def run(ix: ImageIndex, source: str, theme: str = "dark", pending: Pending | None = None) -> int:
    """Run the explorer until the user quits; return the exit status. SIGINT and SIGTERM
    close it as q does (the terminal restored), then raise KeyboardInterrupt and SystemExit."""
    app = ExplorerApp(ix, source, theme, pending)
    app.run()
    if app.return_code == INTERRUPTED:
        raise KeyboardInterrupt
    if app.return_code == TERMINATED:
        raise SystemExit(TERMINATED)
    return app.return_code or 0
