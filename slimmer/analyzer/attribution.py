"""Every byte of an image attributed: to a category, a package, a layer and a Dockerfile step.

``attribute`` merges the layers, categorises every final file by path (``categories``), and
takes what paths cannot tell from the content facts the scan pass gathered (``content``):
libmagic on ambiguous files, package databases, Go build info, content hashes. It returns
records (numbers, not text).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple

from slimmer.analyzer import categories as cats
from slimmer.analyzer import content
from slimmer.analyzer import packages as pk
from slimmer.analyzer.packages import GoBuildInfo
from slimmer.analyzer.steps import Step, image_steps
from slimmer.layers import DELETED, DirResolver, MergedFS, merge
from slimmer.model import FILE, KIND_CODES, NO_RULE, Image, columns, layer_size

NO_PACKAGE = "(no package)"
_FILE = KIND_CODES[FILE]


class FileFact(NamedTuple):
    """A file of the final filesystem: where its bytes come from and what they are (a tuple:
    an image has hundreds of thousands)."""

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
    """Files of equal content (the same xxh3-128 content hash) in several places: (layer,
    path, is final) each."""

    size: int
    digest: str  # the content hash, hex
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
        return self.fs.exists(path) or self.fs.exists(DirResolver(self.fs)(path))


def attribute(image: Image, fs: MergedFS | None = None, read: bool = True) -> Attribution:
    """Return the attribution of ``image`` from its merged filesystem and the content facts
    its scan gathered (``slimmer.analyzer.content``); with ``read`` False only path rules are
    used: no libmagic, packages or duplicates. An image without facts (built in code) has
    its layers read again, verified, to get them."""
    if read:  # without contents, the rules need no facts: they follow from the paths
        image = content.ensure_facts(image, content.AnalysisPolicy())
    fs = fs if fs is not None else merge(image)
    t = fs.table()
    keep = [i for i, kind in enumerate(t.kinds) if kind == _FILE]  # the final files, as rows of the table
    paths = [t.paths[i] for i in keep]
    layers = [t.layers[i] for i in keep]
    sizes = [t.sizes[i] for i in keep]
    RULES = cats.RULES
    layer_rules = [columns(layer).rules for layer in image.layers]

    def rule_for(layer: int, path: str) -> cats.Rule | None:
        index = cats.rule_index(path)
        return RULES[index] if index >= 0 else None

    notes = list(image.notes)
    if not read:
        notes.append("file contents were not read: categories by path only, no packages, no duplicates")
    magic = content.facts_of(image, content.MAGIC)
    too_large = content.facts_of(image, content.TOO_LARGE)
    data = content.facts_of(image, content.DATA)
    go_facts = content.facts_of(image, content.GO)
    databases: dict[str, bytes] = {}
    go: dict[str, GoBuildInfo] = {}
    noted = set().union(*too_large, *data, *go_facts)  # the few paths these facts name
    for path, layer in zip(paths, layers):
        if path not in noted:
            continue
        if path in too_large[layer]:
            notes.append(f"/{path} (layer {layer}) is too large to read as a package database")
        found = data[layer].get(path)
        if found is not None:
            databases[path] = found
        info = go_facts[layer].get(path)
        if info is not None:
            go[path] = GoBuildInfo.from_fact(info)
    packages = pk.find_packages(databases, go)
    owner = pk.owners(packages, paths, DirResolver(fs))

    # the scan's rule of each file where it recorded one, else matched here (per directory
    # and base name); libmagic's description decides the files no rule matches
    indexes = [rules[t.indexes[i]] if (rules := layer_rules[t.layers[i]]) is not None else NO_RULE for i in keep]
    missing = [i for i, index in enumerate(indexes) if index == NO_RULE]
    if missing:
        for i, index in zip(missing, cats.CLASSIFIER.rules([paths[i] for i in missing])):
            indexes[i] = index
    category_of = [rule.category for rule in RULES]
    name_of = [rule.name for rule in RULES]
    categories = [category_of[i] if i >= 0 else "" for i in indexes]
    names = [name_of[i] if i >= 0 else "" for i in indexes]
    for i, index in enumerate(indexes):
        if index < 0:
            categories[i], names[i], _ = cats.explain(paths[i], magic[layers[i]].get(paths[i]))
    keys = {path: pkg.key for path, pkg in owner.items()}
    # tuples made in one C loop: an image has hundreds of thousands of files
    files: list[FileFact] = list(map(tuple.__new__, repeat(FileFact),
                                     zip(paths, sizes, layers, categories, names, map(keys.get, paths))))

    waste = []
    for s in fs.shadowed:
        if s.entry.kind != FILE or not s.entry.size:
            continue
        rule = rule_for(s.layer, s.path)
        waste.append(WasteFact(s.path, s.entry.size, s.layer, s.by_layer, s.how,
                               rule.category if rule else cats.OTHER, rule.name if rule else "unmatched"))
    waste.sort(key=lambda w: (-w.size, w.path))

    duplicates, identical = _duplicates(fs, content.facts_of(image, content.HASH))
    return Attribution(files, waste, packages, image_steps(image), duplicates, identical, go, notes,
                       content_read=read, fs=fs)


def _duplicates(fs: MergedFS, hashes: list[Mapping[str, bytes]]
                ) -> tuple[list[DuplicateGroup], set[tuple[int, str]]]:
    """Return the groups of equal content among final and shadowed files (the content hash
    of each version, from its layer's facts), and the shadowed versions equal to what
    replaced them."""
    def final_file(path: str):
        version = fs.get(path)
        return version if version is not None and version.entry.kind == FILE else None

    groups: dict[bytes, list[tuple[int, str, bool]]] = defaultdict(list)
    sizes: dict[bytes, int] = {}
    refs = fs.refs()
    for path in set().union(*hashes):  # the few files hashed (the groups' copies are sorted below)
        ref = refs.get(path)
        if ref is None:
            continue
        version = fs.get(path)
        if version is None or version.entry.kind != FILE:
            continue
        digest = hashes[version.layer].get(path)
        if digest is not None:
            groups[digest].append((version.layer, path, True))
            sizes[digest] = version.entry.size
    identical = set()
    for s in fs.shadowed:
        if s.entry.kind != FILE:
            continue
        digest = hashes[s.layer].get(s.path)
        if digest is None:
            continue
        groups[digest].append((s.layer, s.path, False))
        sizes.setdefault(digest, s.entry.size)
        if s.how != DELETED:
            version = final_file(s.path)
            if version is not None and hashes[version.layer].get(s.path) == digest:
                identical.add((s.layer, s.path))
    out = [DuplicateGroup(sizes[d], d.hex(), tuple(sorted(c))) for d, c in groups.items() if len(c) > 1]
    out.sort(key=lambda g: (-g.size * (len(g.copies) - 1), g.copies))
    return out, identical


# ---- aggregates ----------------------------------------------------------------------------


def _groups(a: Attribution) -> dict[tuple[str, str, int, str | None], list[int]]:
    """Return {(directory, category, layer, package): [bytes, files]} over the final files:
    the one pass over every file that the aggregates below share (kept on ``a``)."""
    found = a.__dict__.get("_groups")
    if found is not None and found[0] is a.files and found[1] == len(a.files):
        return found[2]
    groups: dict[tuple[str, str, int, str | None], list[int]] = {}
    get = groups.get
    for path, size, layer, category, _rule, package in a.files:
        key = (path.rpartition("/")[0], category, layer, package)
        row = get(key)
        if row is None:
            groups[key] = [size, 1]
        else:
            row[0] += size
            row[1] += 1
    a.__dict__["_groups"] = (a.files, len(a.files), groups)
    return groups


def by_category(a: Attribution) -> list[CategoryRow]:
    """Return final and wasted bytes per category, largest first (every category listed)."""
    final: Counter = Counter()
    count: Counter = Counter()
    wasted: Counter = Counter()
    for (_d, category, _layer, _package), (size, files) in _groups(a).items():
        final[category] += size
        count[category] += files
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
    for (_d, category, _layer, package), (total, files) in _groups(a).items():
        key = package or NO_PACKAGE
        size[key] += total
        count[key] += files
        per_cat[key][category] += total
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
    for (_d, category, layer, _package), (total, _files) in _groups(a).items():
        final[layer] += total
        per_cat[layer][category] += total
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
    for (d, category, _layer, _package), (total, files) in _groups(a).items():
        key = (d, category)
        group_size[key] += total
        group_count[key] += files
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
