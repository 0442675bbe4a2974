"""``--mode prune``: keep everything but what the category rules call removable.

Dropped: the categories ``slimmer.analyzer.categories`` marks ``REMOVABLE`` (caches, package
lists, docs, man and info pages, locales, tests, debug files, VCS data) and, unless the
entrypoint itself runs a compiler, the ``BUILD_ONLY`` ones (toolchains, headers, static
libraries, sources). Never dropped: whatever the entrypoint closure names, build-only files
inside a runtime tree the closure keeps whole, and ``--keep`` matches. Symlinks left pointing
at dropped files go too. Flattening then drops every shadowed byte. Imports the analyzer's
category rules, ``slimmer.layers`` and rewriter modules.
"""

from __future__ import annotations

from collections.abc import Sequence

from slimmer.analyzer import categories
from slimmer.layers import Finals, MergedFS
from slimmer.model import KIND_CODES, NO_RULE, SYMLINK, Entry
from slimmer.rewriter.closure import Closure, Reason, tree_holding
from slimmer.rewriter.lookup import resolve
from slimmer.rewriter.plan import (
    PRUNE,
    Globs,
    Plan,
    Synthetic,
    removed_list,
    with_ancestors,
)


def category_of(path: str, entry: Entry | None = None) -> str:
    """Return the category of ``path`` (model path): the single place slimmer slim asks."""
    return categories.categorize(path, entry)


def is_removable(category: str, build_only_too: bool) -> bool:
    """Return whether prune drops files of ``category``."""
    return category in categories.REMOVABLE or (build_only_too and category in categories.BUILD_ONLY)


def plan_prune(fs: MergedFS, closure: Closure, globs: Globs, synthetic: list[Synthetic],
               rules: Sequence[Sequence[int]] | None = None) -> Plan:
    """Return the prune plan for the merged filesystem ``fs``. ``rules`` (per layer, the rule
    index of each entry, as the scan pass records them) saves matching the rules again. The final
    versions are read from the columns of ``fs.table()``: no record is made per path."""
    notes = list(closure.notes)
    reasons = list(closure.reasons)
    compilers = sorted(p for p in closure.paths if category_of(p) == categories.TOOLCHAIN)
    if compilers:
        notes.append(f"the entrypoint runs a toolchain (/{compilers[0]}): build-only files were kept")
    table = fs.table()
    paths = table.paths
    categories_of = _categories(table, rules)
    removable = categories.REMOVABLE
    droppable = removable | (categories.BUILD_ONLY if not compilers else frozenset())
    in_closure = closure.paths
    dropped: dict[str, str] = {}  # dropped path -> its category
    if globs.drop:
        dropped.update((path, category) for path, category in zip(paths, categories_of)
                       if path not in in_closure and globs.dropped(path))
    for path, category in zip(paths, categories_of):
        if category not in droppable or path in in_closure or path in dropped or globs.kept(path):
            continue
        # build-only files go unless the entrypoint runs a toolchain or the closure needs them
        if category in removable or not closure.covers(path):
            dropped[path] = category
    keep = set(paths).difference(dropped)
    keep = with_ancestors(fs, keep)
    keep -= _dangling(fs, keep, set(dropped).difference(keep))
    keep -= {s.path for s in synthetic}
    reasons += [Reason(s.path, s.why) for s in synthetic]

    def known(path: str) -> str:
        return dropped.get(path) or category_of(path)

    return Plan(PRUNE, frozenset(keep), tuple(synthetic), tuple(removed_list(fs, keep, known, synthetic)),
                tuple(reasons), tuple(notes), closure.argv)


def _categories(table: Finals, rules: Sequence[Sequence[int]] | None) -> list[str]:
    """Return the category of each final version of ``table``: a file's from the rule index
    the scan recorded (``rules``: per layer, the ``Columns.rules`` of its entries), else
    matched on its path."""
    if rules is None:
        return [category_of(path) for path in table.paths]
    names = [rule.category for rule in categories.RULES] + [categories.OTHER]  # index -1: no rule matched
    return [names[i] if k >= 0 and (i := rules[layer][k]) != NO_RULE else category_of(path)
            for path, layer, k in zip(table.paths, table.layers, table.indexes)]


def _dangling(fs: MergedFS, keep: set[str], dropped: set[str]) -> set[str]:
    """Return the kept symlinks that would lead into dropped paths (links to links included)."""
    gone = set(dropped)
    out: set[str] = set()
    table = fs.table()
    code = KIND_CODES[SYMLINK]
    links = sorted(path for path, kind in zip(table.paths, table.kinds) if kind == code and path in keep)
    changed = True
    while changed:
        changed = False
        for path in links:
            if path in out:
                continue
            hit = resolve(fs, "/" + path)
            if hit is None:
                continue  # dangling already: not ours to judge
            if hit.path in gone or any(link in gone for link in hit.links) or tree_holding(hit.path, gone) is not None:
                out.add(path)
                gone.add(path)
                changed = True
    return out
