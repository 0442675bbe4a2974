"""The explorer's filter: one line of words, each narrowing what the tree shows.

    *.so                a glob: on the name when it has no ``/``, else on the whole path
    usr/share/doc       other words: a substring of the path
    re:^usr/lib/.*\\.a$  a regular expression searched in the path (also /REGEX/)
    cat:docs,man        only files of these categories
    pkg:libc6           only files of a package (its name or key, a glob; ``pkg:none``: no package)
    >1MB  size>=10k     only files at least this large
    changed             only what the layer changes (also: added, modified, removed)
    wasted              only bytes the final filesystem does not show

Paths are matched without their leading ``/``; a word in lower case only matches either case
(as ripgrep's smart case). Words combine with "and". Files (and empty directories) are
tested; a directory shows when something below it does. Imports no Textual.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from slimmer.analyzer.categories import CATEGORIES
from slimmer.errors import ConfigError
from slimmer.explorer.index import ADDED, MODIFIED, REMOVED, UNCHANGED, ImageIndex
from slimmer.explorer.tree import SHADOWED, View
from slimmer.sizes import parse_size

MARK_WORDS = {"added": ADDED, "modified": MODIFIED, "removed": REMOVED}
MARK_NAMES = {ADDED: "added", MODIFIED: "modified", REMOVED: "removed", UNCHANGED: "unchanged"}
CHANGED = frozenset({ADDED, MODIFIED, REMOVED})
NO_PACKAGE_WORD = "none"
_SIZE = re.compile(r"^(?:size)?(>=?)(.+)$")


class FilterError(ValueError):
    """Raised when a filter line cannot be read; the message says which word and why."""


@dataclass(frozen=True)
class Filter:
    """What the tree shows: every condition must hold. ``claims`` (a finding's (layer, path)
    versions) and ``hidden`` marks come from keys rather than from the typed line."""

    text: str = ""
    paths: tuple[Callable[[str], bool], ...] = ()
    categories: frozenset[str] = frozenset()
    packages: tuple[str, ...] = ()
    min_size: int = 0
    marks: frozenset[str] = frozenset()  # only these marks (empty: any)
    wasted: bool = False
    hidden: frozenset[str] = frozenset()  # marks not shown (dive's Ctrl+A/R/U)
    claims: frozenset[tuple[int, str]] | None = None
    claims_label: str = ""

    @property
    def active(self) -> bool:
        """Whether the filter hides anything at all."""
        return bool(self.paths or self.categories or self.packages or self.min_size or self.marks or self.wasted
                    or self.hidden or self.claims is not None)

    def describe(self) -> str:
        """Return a short description for the tree's title ("" when nothing is filtered)."""
        parts = []
        if self.claims is not None:
            parts.append(self.claims_label or "finding")
        if self.text.strip():
            parts.append(self.text.strip())
        if self.hidden:
            parts.append("hiding " + ", ".join(MARK_NAMES[m] for m in sorted(self.hidden)))
        return " · ".join(parts)

    def with_text(self, text: str) -> Filter:
        """Return this filter with the typed line replaced by ``text`` (FilterError if unreadable)."""
        typed = parse(text)
        return dataclasses.replace(typed, hidden=self.hidden, claims=self.claims, claims_label=self.claims_label)


def parse(text: str) -> Filter:
    """Return the filter one typed line asks for."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise FilterError(f"unreadable filter: {err}") from None
    paths: list[Callable[[str], bool]] = []
    categories: set[str] = set()
    packages: list[str] = []
    marks: set[str] = set()
    min_size = 0
    wasted = False
    for word in words:
        low = word.lower()
        size = _SIZE.match(low)
        if low in ("changed", "changes"):
            marks |= CHANGED
        elif low in MARK_WORDS:
            marks.add(MARK_WORDS[low])
        elif low == "wasted":
            wasted = True
        elif low.startswith(("cat:", "category:")):
            for name in word.partition(":")[2].split(","):
                if name not in CATEGORIES:
                    raise FilterError(f"unknown category {name!r}: one of {', '.join(CATEGORIES)}")
                categories.add(name)
        elif low.startswith(("pkg:", "package:")):
            packages.extend(p for p in word.partition(":")[2].split(",") if p)
        elif size:
            try:
                bound = parse_size(size.group(2), "filter")
            except ConfigError as err:
                raise FilterError(str(err)) from None
            min_size = max(min_size, bound + (0 if size.group(1) == ">=" else 1))
        else:
            paths.append(path_matcher(word))
    return Filter(text=text, paths=tuple(paths), categories=frozenset(categories), packages=tuple(packages),
                  min_size=min_size, marks=frozenset(marks), wasted=wasted)


def path_matcher(word: str) -> Callable[[str], bool]:
    """Return the test of a model path that one path word asks for."""
    if word.startswith("re:") or (len(word) > 2 and word.startswith("/") and word.endswith("/")):
        source = word[3:] if word.startswith("re:") else word[1:-1]
        try:
            rx = re.compile(source)
        except re.error as err:
            raise FilterError(f"bad regular expression {source!r}: {err}") from None
        return lambda path: rx.search(path) is not None
    fold = word == word.lower()
    pattern = word.lstrip("/")
    if any(c in pattern for c in "*?["):
        match = re.compile(fnmatch.translate(pattern), re.IGNORECASE if fold else 0).match
        if "/" in pattern:
            return lambda path: match(path) is not None
        return lambda path: match(path.rpartition("/")[2]) is not None
    if fold:
        return lambda path: pattern in path.lower()
    return lambda path: pattern in path


def _package_test(ix: ImageIndex, patterns: tuple[str, ...]) -> Callable[[str | None], bool]:
    def one(key: str | None) -> bool:
        for pat in patterns:
            if pat == NO_PACKAGE_WORD:
                if key is None:
                    return True
            elif key is not None and (fnmatchcase(key, pat) or fnmatchcase(ix.package_name(key), pat)):
                return True
        return False

    return one


def shown(view: View, ix: ImageIndex, flt: Filter) -> bytearray | None:
    """Return, for each node of ``view``, whether the filter shows it (None: all are shown).
    Files and empty directories are tested; a directory shows when something below it does."""
    if not flt.active:
        return None
    count = len(view.path)
    out = bytearray(count)
    path, entry, vlayer, mark, flags, kids, parent = (view.path, view.entry, view.vlayer, view.mark, view.flags,
                                                      view.kids, view.parent)
    marks = {ord(m) for m in flt.marks}
    hidden = {ord(m) for m in flt.hidden}
    removed = ord(REMOVED)
    package_ok = _package_test(ix, flt.packages) if flt.packages else None
    for n in range(1, count):
        if kids[n]:
            continue
        m = mark[n]
        if m in hidden or (marks and m not in marks):
            continue
        p = path[n]
        e = entry[n]
        size = e.size if e is not None and kids[n] is None else 0
        if flt.min_size and size < flt.min_size:
            continue
        if flt.wasted and not (size and (flags[n] & SHADOWED or m == removed)):
            continue
        if flt.claims is not None and (vlayer[n], p) not in flt.claims:
            continue
        if flt.categories and ix.category(p, vlayer[n]) not in flt.categories:
            continue
        if package_ok is not None and (e is None or kids[n] is not None or not package_ok(ix.package(p, vlayer[n]))):
            continue
        if flt.paths and not all(test(p) for test in flt.paths):
            continue
        out[n] = 1
    for n in range(count - 1, 0, -1):
        if out[n]:
            out[parent[n]] = 1
    return out
