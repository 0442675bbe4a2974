"""What the tree pane shows of one view right now: the filter's result, the sizes under it,
which directories are open, the order of children, the visible rows and the cursor.

Every change (a filter, a directory opened, the sort order) recomputes only the visible
rows, in one pass over them; the view itself is never rebuilt. Imports no Textual.
"""

from __future__ import annotations

from array import array

from slimmer.explorer.filters import Filter, shown
from slimmer.explorer.index import ImageIndex
from slimmer.explorer.tree import (
    BY_NAME,
    BY_SIZE,
    Rows,
    View,
    aggregate,
    dirs_to_open,
    rows,
    sorter,
)

OPEN_BUDGET = 400  # rows opened at first on an unfiltered view
FILTER_BUDGET = 20_000  # rows opened at first when a filter narrows the tree


class TreeState:
    """The presentation of one view: filter, open directories, order, rows and cursor."""

    def __init__(self, ix: ImageIndex, view: View, flt: Filter | None = None, by: str = BY_NAME):
        self.ix = ix
        self.view = view
        self.by = by
        self.cursor = 0
        self.rows = Rows(array("i"), bytearray())
        self.set_filter(flt or Filter())

    # -- what is shown -----------------------------------------------------------------------

    def set_filter(self, flt: Filter) -> None:
        """Show what ``flt`` lets through, its directories open as far as the budget allows."""
        keep = self.node
        self.flt = flt
        self.shown = shown(self.view, self.ix, flt)
        if self.shown is None:
            self.size, self.files = self.view.size, self.view.files
        else:
            self.size, self.files = aggregate(self.view, self.shown)
        budget = FILTER_BUDGET if self.shown is not None else OPEN_BUDGET
        self.expanded = dirs_to_open(self.view, budget, self.shown)
        self._order = sorter(self.view, self.by, self.size)
        self._refresh(keep)

    def is_shown(self, n: int) -> bool:
        return self.shown is None or bool(self.shown[n])

    @property
    def matches(self) -> int:
        """How many files (non-directories) the filter lets through."""
        return self.files[0]

    @property
    def node(self) -> int | None:
        """The node under the cursor, or None when no row is visible."""
        return self.rows.nodes[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    # -- changes -----------------------------------------------------------------------------

    def set_sort(self, by: str) -> None:
        if by not in (BY_NAME, BY_SIZE):
            raise ValueError(f"unknown order {by!r}")
        self.by = by
        self._order = sorter(self.view, by, self.size)
        self._refresh(self.node)

    def toggle(self, n: int | None = None) -> None:
        """Open or close directory ``n`` (the cursor's by default); on a file, nothing."""
        n = self.node if n is None else n
        if n is None or not self.view.kids[n]:
            return
        if n in self.expanded:
            self.expanded.discard(n)
        else:
            self.expanded.add(n)
        self._refresh(n)

    def open(self, n: int, is_open: bool) -> None:
        """Open (or close) directory ``n``."""
        if not self.view.kids[n] or (n in self.expanded) == is_open:
            return
        self.toggle(n)

    def expand_all(self) -> None:
        kids = self.view.kids
        self.expanded = {n for n in range(1, len(kids)) if kids[n] and self.is_shown(n)}
        self._refresh(self.node)

    def collapse_all(self) -> None:
        keep = self.node
        while keep is not None and self.view.parent[keep] > 0:
            keep = self.view.parent[keep]
        self.expanded = set()
        self._refresh(keep)

    def toggle_all(self) -> None:
        """dive's Ctrl+Space: close every directory if one is open, else open them all."""
        if self.expanded:
            self.collapse_all()
        else:
            self.expand_all()

    def reveal(self, n: int) -> bool:
        """Open the directories above node ``n`` and put the cursor on it; False if the
        filter hides it."""
        if not self.is_shown(n):
            return False
        self.expanded.update(self.view.ancestors(n))
        self._refresh(n)
        return True

    def move(self, delta: int) -> None:
        self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def move_to(self, row: int) -> None:
        self.cursor = max(0, min(len(self.rows) - 1, row))

    def parent_row(self) -> None:
        """Close the cursor's directory, or go up to its parent (the Left key)."""
        n = self.node
        if n is None:
            return
        if self.view.kids[n] and n in self.expanded:
            self.toggle(n)
            return
        p = self.view.parent[n]
        if p > 0:
            row = self.rows.index(p)
            if row is not None:
                self.cursor = row

    def child_row(self) -> None:
        """Open the cursor's directory, or go down to its first child (the Right key)."""
        n = self.node
        if n is None or not self.view.kids[n]:
            return
        if n not in self.expanded:
            self.toggle(n)
        elif self.cursor + 1 < len(self.rows) and self.view.parent[self.rows.nodes[self.cursor + 1]] == n:
            self.cursor += 1

    def _refresh(self, keep: int | None) -> None:
        self.rows = rows(self.view, self.expanded, self.shown, self._order)
        row = self.rows.index(keep) if keep is not None else None
        while row is None and keep is not None and keep > 0:
            keep = self.view.parent[keep]  # hidden: the nearest visible directory above it
            row = self.rows.index(keep) if keep > 0 else None
        self.cursor = row if row is not None else min(self.cursor, max(0, len(self.rows) - 1))
