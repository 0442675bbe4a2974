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

from collections.abc import Mapping, Sequence

from slimmer.analyzer import categories
from slimmer.layers import MergedFS
from slimmer.model import FILE, SYMLINK, Entry
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
               rules: Sequence[Mapping[str, int]] | None = None) -> Plan:
    """Return the prune plan for the merged filesystem ``fs``. ``rules`` (per layer, {path:
    rule index}, as the scan pass records them) saves matching the rules again."""
    notes = list(closure.notes)
    reasons = list(closure.reasons)
    compilers = sorted(p for p in closure.paths if category_of(p) == categories.TOOLCHAIN)
    if compilers:
        notes.append(f"the entrypoint runs a toolchain (/{compilers[0]}): build-only files were kept")
    keep: set[str] = set()
    dropped: set[str] = set()
    seen: dict[str, str] = {}  # the category of each path, asked once (removed_list asks again)
    for path, version in fs.files():
        entry = version.entry
        if globs.kept(path) or path in closure.paths:
            keep.add(path)
        elif globs.dropped(path):
            dropped.add(path)
        else:
            index = rules[version.layer].get(path) if rules is not None and entry.kind == FILE else None
            category = seen[path] = category_of(path, entry) if index is None else \
                (categories.RULES[index].category if index >= 0 else categories.OTHER)
            if is_removable(category, not compilers and not closure.covers(path)):
                dropped.add(path)
            else:
                keep.add(path)
    keep = with_ancestors(fs, keep)
    keep -= _dangling(fs, keep, dropped - keep)
    keep -= {s.path for s in synthetic}
    reasons += [Reason(s.path, s.why) for s in synthetic]
    def known(path: str, entry: Entry | None = None) -> str:
        return seen.get(path) or category_of(path, entry)

    return Plan(PRUNE, frozenset(keep), tuple(synthetic), tuple(removed_list(fs, keep, known, synthetic)),
                tuple(reasons), tuple(notes), closure.argv)


def _dangling(fs: MergedFS, keep: set[str], dropped: set[str]) -> set[str]:
    """Return the kept symlinks that would lead into dropped paths (links to links included)."""
    gone = set(dropped)
    out: set[str] = set()
    links = sorted(path for path in keep if fs.kind(path) == SYMLINK)
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
