"""Every byte of an image attributed: to a category, a package, a layer and a Dockerfile step.

``attribute`` merges the layers, categorises every final file by path (``categories``),
asks the content pass (``content``) only for what paths cannot tell -- libmagic on ambiguous
files, package databases, Go build info, hashes of same-sized large files -- and returns
records (numbers, not text). When a layer cannot be re-read the analysis goes on with path
rules only and says so in ``Attribution.notes``.
"""

from __future__ import annotations

import posixpath
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Mapping

from slimmer.analyzer import categories as cats
from slimmer.analyzer import packages as pk
from slimmer.analyzer.content import Content, GoBuildInfo, Need, read_content
from slimmer.analyzer.steps import Step, image_steps
from slimmer.layers import DELETED, MergedFS, merge
from slimmer.model import FILE, SYMLINK, Image, layer_size

DUPLICATE_MIN_BYTES = 64 << 10  # smaller files are not hashed for duplicate detection
GO_MIN_BYTES = 1 << 20  # no Go binary is smaller than this
NO_PACKAGE = "(no package)"


@dataclass(frozen=True, slots=True)
class FileFact:
    """A file of the final filesystem: where its bytes come from and what they are."""

    path: str
    size: int
    layer: int
    category: str
    rule: str
    package: str | None  # Package.key of its owner


@dataclass(frozen=True, slots=True)
class WasteFact:
    """A version of a path that a later layer overwrote or deleted: bytes stored, never seen."""

    path: str
    size: int
    layer: int
    by_layer: int
    how: str
    category: str
    rule: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Files of equal content (sha256) in several places: (layer, path, is final) each."""

    size: int
    sha256: str
    copies: tuple[tuple[int, str, bool], ...]


@dataclass(frozen=True)
class CategoryRow:
    category: str
    final_bytes: int
    files: int
    wasted_bytes: int
    removable: bool


@dataclass(frozen=True)
class PackageRow:
    key: str
    manager: str
    name: str
    version: str
    build_only: bool
    bytes: int
    files: int
    categories: dict[str, int]
    note: str = ""


@dataclass(frozen=True)
class StepRow:
    index: int  # position in the config history
    layer: int | None
    text: str
    instruction: str
    size: int  # bytes of the layer it made
    final_bytes: int  # of those, still in the final filesystem
    wasted_bytes: int  # of those, overwritten or deleted later
    categories: dict[str, int]  # final bytes by category


@dataclass(frozen=True)
class DirRow:
    path: str
    size: int
    files: int
    categories: dict[str, int]


@dataclass
class Attribution:
    """The attribution of one image."""

    files: list[FileFact]
    waste: list[WasteFact]
    packages: list[pk.Package]
    steps: list[Step]
    duplicates: list[DuplicateGroup]
    overwritten_identical: set[tuple[int, str]]  # shadowed versions equal to what overwrote them
    go: dict[str, GoBuildInfo]
    notes: list[str] = field(default_factory=list)
    content_read: bool = True
    fs: MergedFS | None = None

    def exists(self, path: str) -> bool:
        """Return whether ``path`` exists in the final filesystem, following symlinked
        directories (``bin`` -> ``usr/bin``)."""
        if self.fs is None:
            return False
        return self.fs.exists(path) or self.fs.exists(_resolver(self.fs)(path))


def _resolver(fs: MergedFS):
    """Return a function resolving symlinked directories of a path through ``fs``."""
    cache: dict[str, str] = {}

    def resolve_dir(d: str, depth: int = 0) -> str:
        if not d or depth > 16:
            return d
        if d in cache:
            return cache[d]
        parent, _, name = d.rpartition("/")
        base = resolve_dir(parent, depth + 1) if parent else ""
        cur = f"{base}/{name}" if base else name
        version = fs.get(cur)
        if version is not None and version.entry.kind == SYMLINK:
            target = version.entry.link
            joined = target if target.startswith("/") else (f"{base}/{target}" if base else target)
            cur = resolve_dir(posixpath.normpath("/" + joined).lstrip("/"), depth + 1)
        cache[d] = cur
        return cur

    def resolve(path: str) -> str:
        d, _, name = path.rpartition("/")
        if not d:
            return path
        rd = resolve_dir(d)
        return f"{rd}/{name}" if rd else name

    return resolve


def _requests(fs: MergedFS, finals: list, rules: dict, want_go: bool) -> dict[int, dict[str, Need]]:
    requests: dict[int, dict[str, Need]] = defaultdict(dict)

    def ask(layer: int, path: str, need: Need) -> None:
        requests[layer][path] = requests[layer].get(path, Need(0)) | need

    by_size: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for path, layer, entry in finals:
        rule = rules[path]
        if rule is None:
            ask(layer, path, Need.HEAD)
        if pk.is_database(path):
            ask(layer, path, Need.FULL)
        if (want_go and entry.mode & 0o111 and entry.size >= GO_MIN_BYTES
                and (rule is None or rule.category in (cats.RUNTIME, cats.OTHER))):
            ask(layer, path, Need.GO)
        if entry.size >= DUPLICATE_MIN_BYTES:
            by_size[entry.size].append((layer, path))
    for s in fs.shadowed:
        if s.entry.kind == FILE and s.entry.size >= DUPLICATE_MIN_BYTES:
            by_size[s.entry.size].append((s.layer, s.path))
    for copies in by_size.values():
        if len(copies) > 1:
            for layer, path in copies:
                ask(layer, path, Need.HASH)
    return requests


def attribute(image: Image, fs: MergedFS | None = None, read: bool = True,
              known_rules: Mapping[str, cats.Rule | None] | None = None) -> Attribution:
    """Return the attribution of ``image``; with ``read`` False (or a layer that cannot be
    re-read) only path rules are used, and packages come from the layers that could be read.
    ``known_rules`` ({path: rule} for every regular file of the layers, see
    ``categories.rules_from_table``) saves matching the paths again."""
    fs = fs if fs is not None else merge(image)
    finals = [(p, v.layer, v.entry) for p, v in fs.files() if v.entry.kind == FILE]
    rules = known_rules if known_rules is not None else {p: cats.rule_for(p) for p, _l, _e in finals}

    def rule_for(path: str) -> cats.Rule | None:
        return rules[path] if path in rules else cats.rule_for(path)

    content = read_content(image, _requests(fs, finals, rules, True)) if read else Content()
    notes = []
    if not read:
        notes.append("file contents were not read: categories by path only, no packages, no duplicates")
    for index, why in sorted(content.unreadable.items()):
        notes.append(f"layer {index} could not be re-read ({why}): categories by path only, its packages "
                     f"and duplicates unknown")
    for layer, path in content.too_large:
        notes.append(f"/{path} (layer {layer}) is too large to read as a package database")

    databases = {path: data for (layer, path), data in content.data.items()}
    go = {path: info for (layer, path), info in content.go.items()}
    packages = pk.find_packages(databases, go)
    owner = pk.owners(packages, (p for p, _l, _e in finals), _resolver(fs))

    files = []
    for path, layer, entry in finals:
        rule = rules[path]
        if rule is not None:
            category, rname = rule.category, rule.name
        else:
            category, rname, _ = cats.explain(path, content.magic.get((layer, path)))
        pkg = owner.get(path)
        files.append(FileFact(path, entry.size, layer, category, rname, pkg.key if pkg else None))

    waste = []
    for s in fs.shadowed:
        if s.entry.kind != FILE or not s.entry.size:
            continue
        rule = rule_for(s.path)
        waste.append(WasteFact(s.path, s.entry.size, s.layer, s.by_layer, s.how,
                               rule.category if rule else cats.OTHER, rule.name if rule else "unmatched"))
    waste.sort(key=lambda w: (-w.size, w.path))

    duplicates, identical = _duplicates(fs, finals, content)
    return Attribution(files, waste, packages, image_steps(image), duplicates, identical, go, notes,
                       content_read=read and not content.unreadable, fs=fs)


def _duplicates(fs: MergedFS, finals, content: Content) -> tuple[list[DuplicateGroup], set[tuple[int, str]]]:
    # only the few hashed members are looked up: no index over every file is built
    def final_file(path: str):
        version = fs.final.get(path)
        return version if version is not None and version.entry.kind == FILE else None

    hashed = content.hashes
    shadowed_size = {(s.layer, s.path): s.entry.size for s in fs.shadowed
                     if s.entry.kind == FILE and (s.layer, s.path) in hashed}
    groups: dict[str, list[tuple[int, str, bool]]] = defaultdict(list)
    sizes: dict[str, int] = {}
    for key, digest in hashed.items():
        version = final_file(key[1])
        is_final = version is not None and version.layer == key[0]
        groups[digest].append((key[0], key[1], is_final))
        sizes[digest] = version.entry.size if is_final else shadowed_size.get(key, 0)
    out = [DuplicateGroup(sizes[d], d, tuple(sorted(c))) for d, c in groups.items() if len(c) > 1]
    out.sort(key=lambda g: (-g.size * (len(g.copies) - 1), g.copies))
    identical = set()
    if not hashed:
        return out, identical
    for s in fs.shadowed:
        if s.how == DELETED:
            continue
        mine = hashed.get((s.layer, s.path))
        if mine is None:
            continue
        version = final_file(s.path)
        if version is not None and hashed.get((version.layer, s.path)) == mine:
            identical.add((s.layer, s.path))
    return out, identical


# ---- aggregates ----------------------------------------------------------------------------


def by_category(a: Attribution) -> list[CategoryRow]:
    """Return final and wasted bytes per category, largest first (every category listed)."""
    final: Counter = Counter()
    count: Counter = Counter()
    wasted: Counter = Counter()
    for f in a.files:
        final[f.category] += f.size
        count[f.category] += 1
    for w in a.waste:
        wasted[w.category] += w.size
    rows = [CategoryRow(c, final[c], count[c], wasted[c], c in cats.REMOVABLE) for c in cats.CATEGORIES]
    rows.sort(key=lambda r: (-(r.final_bytes + r.wasted_bytes), cats.CATEGORIES.index(r.category)))
    return rows


def by_package(a: Attribution) -> list[PackageRow]:
    """Return the bytes of the final filesystem per package, largest first; files no package
    owns are one row named ``(no package)``."""
    size: Counter = Counter()
    count: Counter = Counter()
    per_cat: dict[str, Counter] = defaultdict(Counter)
    for f in a.files:
        key = f.package or NO_PACKAGE
        size[key] += f.size
        count[key] += 1
        per_cat[key][f.category] += f.size
    rows = []
    seen = set()
    for pkg in a.packages:
        if pkg.key in seen:
            continue
        seen.add(pkg.key)
        rows.append(PackageRow(pkg.key, pkg.manager, pkg.name, pkg.version, pkg.build_only, size[pkg.key],
                               count[pkg.key], dict(per_cat[pkg.key].most_common()), pkg.note))
    if count[NO_PACKAGE]:
        rows.append(PackageRow(NO_PACKAGE, "", NO_PACKAGE, "", False, size[NO_PACKAGE], count[NO_PACKAGE],
                               dict(per_cat[NO_PACKAGE].most_common())))
    rows.sort(key=lambda r: (-r.bytes, r.key))
    return rows


def by_step(image: Image, a: Attribution) -> list[StepRow]:
    """Return every history step with the bytes of the layer it made: still visible, wasted,
    and by category."""
    final: Counter = Counter()
    wasted: Counter = Counter()
    per_cat: dict[int, Counter] = defaultdict(Counter)
    for f in a.files:
        final[f.layer] += f.size
        per_cat[f.layer][f.category] += f.size
    for w in a.waste:
        wasted[w.layer] += w.size
    rows = []
    for s in a.steps:
        if s.layer is None:
            rows.append(StepRow(s.index, None, s.text, s.instruction, 0, 0, 0, {}))
        else:
            rows.append(StepRow(s.index, s.layer, s.text, s.instruction, layer_size(image.layers[s.layer]),
                                final[s.layer], wasted[s.layer], dict(per_cat[s.layer].most_common())))
    return rows


def by_dir(a: Attribution, max_depth: int = 3, top: int = 20) -> list[DirRow]:
    """Return the largest directories (no deeper than ``max_depth``) with their bytes by category."""
    group_size: Counter = Counter()
    group_count: Counter = Counter()
    for f in a.files:  # one pass per file; the per-directory sums below run once per group
        key = (f.path.rpartition("/")[0], f.category)
        group_size[key] += f.size
        group_count[key] += 1
    size: Counter = Counter()
    count: Counter = Counter()
    per_cat: dict[str, Counter] = defaultdict(Counter)
    for (d, category), total in group_size.items():
        if not d:
            continue
        parts = d.split("/")[:max_depth]
        for i in range(1, len(parts) + 1):
            dd = "/".join(parts[:i])
            size[dd] += total
            count[dd] += group_count[(d, category)]
            per_cat[dd][category] += total
    rows = [DirRow(d, size[d], count[d], dict(per_cat[d].most_common())) for d in size]
    rows.sort(key=lambda r: (-r.size, r.path))
    return rows[:top]
