"""The explorer's widgets: the file tree (a line-API scroll view that draws only the rows on
screen, from a ``TreeState``), the pane lists, and the modal screens (full text, keys).

Every string that comes from an image goes through ``slimmer.render.safe`` before it is drawn:
names and step texts may hold control characters, which must never reach the terminal raw.
"""

from __future__ import annotations

import stat
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.message import Message
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import OptionList, Static

from slimmer.explorer.index import ADDED, MODIFIED, REMOVED, ImageIndex
from slimmer.explorer.state import TreeState
from slimmer.explorer.tree import NOTHING, OPAQUE, SHADOWED
from slimmer.model import BLOCK, CHAR, DIR, FIFO, HARDLINK, SYMLINK, Entry
from slimmer.render import human, safe

# (on a dark theme, on a light one): readable on either background
CATEGORY_COLOURS = {
    "toolchain": ("#ff9f43", "#a04a00"),
    "build-only": ("#f6c945", "#7a5d00"),
    "cache": ("#ff6b81", "#b0103a"),
    "package-db": ("#b39dfa", "#5a3dc0"),
    "docs": ("#5ccfe6", "#006d8f"),
    "man": ("#5ccfe6", "#006d8f"),
    "info": ("#5ccfe6", "#006d8f"),
    "locale": ("#3ddc97", "#007a4d"),
    "vcs": ("#f07ddb", "#99188a"),
    "tests": ("#9fb4c8", "#4a5c6e"),
    "debug": ("#ff9ff3", "#a0208f"),
    "runtime": ("", ""),
    "other": ("#9a9a9a", "#666666"),
}
MARK_COLOURS = {
    ADDED: ("#4cd964", "#1a7f37"),
    MODIFIED: ("#f5c542", "#8a6500"),
    REMOVED: ("#ff5f5f", "#c0392b"),
    "*": ("#c792ea", "#7b3fa0"),
}
_TYPE_BITS = {DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK, CHAR: stat.S_IFCHR, BLOCK: stat.S_IFBLK, FIFO: stat.S_IFIFO}


def colour(table: dict, key: str, dark: bool) -> str:
    pair = table.get(key)
    return (pair[0] if dark else pair[1]) if pair else ""


def mode_string(entry: Entry | None) -> str:
    """Return ``drwxr-xr-x`` for an entry (blank for none)."""
    if entry is None:
        return " " * 10
    return stat.filemode(_TYPE_BITS.get(entry.kind, stat.S_IFREG) | (entry.mode & 0o7777))


def clip(text: str, width: int) -> str:
    """Return ``text`` cut to ``width`` cells with an ellipsis."""
    if cell_len(text) <= width:
        return text
    out = []
    used = 0
    for ch in text:
        w = cell_len(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


class FileTree(ScrollView, can_focus=True):
    """The file tree of the selected layer, one line per visible row of a ``TreeState``."""

    DEFAULT_CSS = """
    FileTree { background: $surface; scrollbar-size-vertical: 1; overflow-x: hidden; }
    FileTree > .filetree--cursor {
        color: $block-cursor-foreground; background: $block-cursor-background; text-style: $block-cursor-text-style;
    }
    FileTree:blur > .filetree--cursor {
        color: $foreground; background: $block-cursor-blurred-background; text-style: none;
    }
    FileTree > .filetree--empty { color: $text-muted; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"filetree--cursor", "filetree--empty"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Pg Up", show=False),
        Binding("pagedown", "page(1)", "Pg Down", show=False),
        Binding("home", "edge(0)", "Top", show=False),
        Binding("end", "edge(1)", "Bottom", show=False),
        Binding("left,h", "left", "Up a dir", show=False),
        Binding("right,l", "right", "Open", show=False),
        Binding("space,enter", "toggle_dir", "Collapse"),
        Binding("ctrl+@,ctrl+space", "toggle_all", "Collapse all", key_display="^space"),
        Binding("left_square_bracket", "collapse_all", "Collapse all", show=False),
        Binding("right_square_bracket", "expand_all", "Expand all", show=False),
        Binding("s", "sort", "Sort"),
        Binding("ctrl+b", "attributes", "Attributes"),
        Binding("p", "packages", "Packages", show=False),
        Binding("ctrl+a", "app.hide('+')", "Added", show=False),
        Binding("ctrl+r", "app.hide('-')", "Removed", show=False),
        Binding("ctrl+u", "app.hide(' ')", "Unmodified", show=False),
        Binding("w", "app.wasted", "Wasted"),
        Binding("escape", "app.clear_filter", "Clear filter", show=False),
    ]

    class Moved(Message):
        """The cursor moved to another node (None: the tree is empty)."""

        def __init__(self, node: int | None) -> None:
            super().__init__()
            self.node = node

    class Sorted(Message):
        """The order of the tree changed (to ``by``: name or size)."""

        def __init__(self, by: str) -> None:
            super().__init__()
            self.by = by

    class ColumnsChanged(Message):
        """A column was shown or hidden: the heading above the tree changes."""

    def __init__(self, ix: ImageIndex, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ix = ix
        self.state: TreeState | None = None
        self.empty_text = ""
        self.attributes: bool | None = None  # None: shown when there is room
        self.packages: bool | None = None

    # -- content -------------------------------------------------------------------------------

    def show(self, state: TreeState | None, empty_text: str = "") -> None:
        """Draw ``state`` (None: nothing but ``empty_text``)."""
        self.state = state
        self.empty_text = empty_text
        self.changed()

    def changed(self) -> None:
        """Redraw after the state changed; keep the cursor on screen."""
        count = len(self.state.rows) if self.state is not None else 0
        self.virtual_size = Size(self.size.width, count)
        self._keep_cursor_visible()
        self.refresh()
        self.post_message(self.Moved(self.state.node if self.state is not None else None))

    def _keep_cursor_visible(self) -> None:
        if self.state is None:
            return
        height = max(1, self.scrollable_content_region.height)
        y = self.state.cursor
        top = int(self.scroll_y)
        if y < top:
            self.scroll_to(y=y, animate=False, immediate=True)
        elif y >= top + height:
            self.scroll_to(y=y - height + 1, animate=False, immediate=True)

    def on_resize(self) -> None:
        self.changed()

    # -- drawing -------------------------------------------------------------------------------

    def columns(self) -> tuple[bool, bool]:
        """Return whether the mode and owner columns and the package column are drawn."""
        width = self.size.width
        attrs = self.attributes if self.attributes is not None else width >= 60
        pkgs = self.packages if self.packages is not None else width >= 90
        return attrs, pkgs

    def header(self) -> str:
        """Return the column headings above the tree."""
        attrs, pkgs = self.columns()
        head = "  " + f"{'size':>9} "
        if attrs:
            head += f"{'mode':<10} {'uid:gid':<9} "
        if pkgs:
            head += f"{'package':<14} "
        return head + "name"

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        state = self.state
        row = int(self.scroll_y) + y
        if state is None or row >= len(state.rows):
            if y == 0 and (state is None or not len(state.rows)):
                empty = self.empty_text or ("nothing here matches the filter (Esc clears it)"
                                            if state is not None and state.flt.active else "(empty)")
                text = Text(clip(empty, width),
                            style=self.get_component_rich_style("filetree--empty"))
                return Strip(text.render(self.app.console)).crop_extend(0, width, base)
            return Strip.blank(width, base)
        text = self.line(state, row, width)
        if row == state.cursor:
            text.pad_right(width - text.cell_len)
            text.stylize(self.get_component_rich_style("filetree--cursor"))
        return Strip(text.render(self.app.console)).crop_extend(0, width, base)

    def line(self, state: TreeState, row: int, width: int) -> Text:
        """Return the text of visible row ``row`` of ``state``."""
        view = state.view
        ix = self.ix
        dark = self.app.current_theme.dark
        n = state.rows.nodes[row]
        entry = view.entry[n]
        mark = view.mark_of(n)
        flags = view.flags[n]
        is_dir = view.kids[n] is not None
        attrs, pkgs = self.columns()
        text = Text(no_wrap=True, end="", style=self.rich_style)
        text.append(mark, Style.parse(colour(MARK_COLOURS, mark, dark) or "none"))
        text.append("*" if flags & SHADOWED else " ", Style.parse(colour(MARK_COLOURS, "*", dark) or "none"))
        size = state.size[n] if is_dir else (entry.size if entry is not None else 0)
        shown_size = human(size) if (entry is not None or is_dir) else ""
        text.append(f"{shown_size:>9} ")
        if attrs:
            owner = f"{entry.uid}:{entry.gid}" if entry is not None else ""
            text.append(f"{mode_string(entry)} {clip(owner, 9):<9} ", "dim")
        category = None if is_dir or entry is None else ix.category(view.path[n], view.vlayer[n])
        if pkgs:
            key = None if is_dir else ix.package(view.path[n], view.vlayer[n])
            text.append(f"{clip(safe(ix.package_name(key)), 14):<14} ", "dim")
        last = state.rows.last
        guides = []
        for a in reversed(view.ancestors(n)):
            guides.append("   " if last[a] else "│  ")
        guides.append("└─ " if last[n] else "├─ ")
        text.append("".join(guides), "dim")
        name = safe(view.name(n))
        style = Style(bold=True) if is_dir else Style.parse(colour(CATEGORY_COLOURS, category or "", dark) or "none")
        if mark == REMOVED:
            style += Style(strike=True, dim=True)
        if is_dir and view.kids[n] and n not in state.expanded:
            text.append("▸ ", "bold")
        text.append(name + ("/" if is_dir else ""), style)
        if entry is not None and entry.kind == SYMLINK:
            text.append(" → " + safe(entry.link), "dim")
        elif entry is not None and entry.kind == HARDLINK:
            text.append(" ⇒ /" + safe(entry.link), "dim")
        if flags & OPAQUE:
            text.append(" (opaque)", "italic dim")
        if flags & NOTHING:
            text.append(" (deletes nothing)", "italic dim")
        text.truncate(width, overflow="ellipsis")
        return text

    # -- keys and mouse -------------------------------------------------------------------------

    def _after(self) -> None:
        self.changed()

    def action_move(self, delta: int) -> None:
        if self.state is not None:
            self.state.move(delta)
            self._after()

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.scrollable_content_region.height - 1))

    def action_edge(self, end: int) -> None:
        if self.state is not None:
            self.state.move_to(len(self.state.rows) - 1 if end else 0)
            self._after()

    def action_left(self) -> None:
        if self.state is not None:
            self.state.parent_row()
            self._after()

    def action_right(self) -> None:
        if self.state is not None:
            self.state.child_row()
            self._after()

    def action_toggle_dir(self) -> None:
        if self.state is not None:
            self.state.toggle()
            self._after()

    def action_toggle_all(self) -> None:
        if self.state is not None:
            self.state.toggle_all()
            self._after()

    def action_collapse_all(self) -> None:
        if self.state is not None:
            self.state.collapse_all()
            self._after()

    def action_expand_all(self) -> None:
        if self.state is not None:
            self.state.expand_all()
            self._after()

    def action_sort(self) -> None:
        if self.state is not None:
            self.state.set_sort("size" if self.state.by == "name" else "name")
            self.post_message(self.Sorted(self.state.by))
            self._after()

    def action_attributes(self) -> None:
        self.attributes = not self.columns()[0]
        self.post_message(self.ColumnsChanged())
        self.refresh()

    def action_packages(self) -> None:
        self.packages = not self.columns()[1]
        self.post_message(self.ColumnsChanged())
        self.refresh()

    def on_click(self, event) -> None:
        if self.state is None:
            return
        row = int(self.scroll_y) + event.y
        if 0 <= row < len(self.state.rows):
            if row == self.state.cursor:
                self.state.toggle()
            else:
                self.state.move_to(row)
            self._after()


class Pane(OptionList):
    """A list pane of the left column (layers, findings, waste)."""

    DEFAULT_CSS = """
    Pane {
        height: 1fr; border: round $foreground 25%; border-title-color: $foreground 70%; padding: 0;
        text-wrap: nowrap; text-overflow: ellipsis; scrollbar-size-vertical: 1;
    }
    Pane:focus { border: round $border; border-title-color: $border; }
    """


class TextScreen(ModalScreen):
    """A modal screen of text: a step's full command, a finding's advice, the keys."""

    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > VerticalScroll {
        width: 100%; max-width: 100; height: 100%; max-height: 40; border: round $accent; background: $surface;
        padding: 0 1; scrollbar-size-vertical: 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter,question_mark", "dismiss", "Close")]

    def __init__(self, title: str, body: Text | str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self):
        box = VerticalScroll()
        box.border_title = self.title_text
        box.border_subtitle = "Esc closes"
        with box:
            yield Static(self.body)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
