"""Findings: the anti-patterns an image shows, each with its evidence and the bytes a fix saves.

Detected (``Finding.id``):
- ``toolchain-in-final-image``: compilers, build-only files or build-only packages in the final
  filesystem (fix: a multi-stage build);
- ``cache-left-behind``: package-manager and build caches in the final filesystem, named with
  the step that filled them (fix: clean in the same step, ``--no-cache``, cache mounts);
- ``cache-cleaned-too-late``: a cache deleted by a later step than the one that filled it: the
  bytes stay in the earlier layer (fix: clean in the same step);
- ``deleted-later`` / ``overwritten-later``: other files a later step deleted or replaced;
- ``removable-files``: docs, man pages, locales, tests, VCS data, debug files (fix: prune);
- ``duplicate-files``: the same content at several paths of the final filesystem;
- ``copy-context-before-install``: ``COPY . .`` before the dependency install (cache busting);
- ``shell-and-package-manager`` and ``runs-as-root``: what a distroless base and ``USER`` fix.

Each finding claims the (layer, path) versions its fix removes; ``could_save`` adds up the
union of all claims, so bytes two findings share count once. Imports only analyzer records.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter

from slimmer.analyzer import categories as cats
from slimmer.analyzer.attribution import Attribution, FileFact, WasteFact
from slimmer.analyzer.packages import build_only_reason
from slimmer.analyzer.steps import Step, step_of_layer
from slimmer.model import Image, runtime_config

MIN_WASTE_BYTES = 1024  # a deleted/overwritten group smaller than this is not worth a finding
EVIDENCE = 10  # evidence rows kept per finding

MULTI_STAGE = "multi-stage"
PRUNE = "prune"
SQUASH = "squash"
DEDUPE = "dedupe"
DISTROLESS = "distroless"
REORDER = "reorder"
USER = "user"
FIXES = (MULTI_STAGE, SQUASH, PRUNE, DEDUPE, DISTROLESS, REORDER, USER)

# What to do about a cache left behind, by the categories rule that matched it.
CACHE_ADVICE: Mapping[str, str] = {
    "apt-lists": "end the install step with `&& rm -rf /var/lib/apt/lists/*`",
    "apt-archives": "run `apt-get clean` in the same step as `apt-get install` (or use a cache mount)",
    "apk-cache": "use `apk add --no-cache`",
    "dnf-yum-cache": "run `dnf clean all` (or `yum clean all`) in the same step",
    "pip-cache": "use `pip install --no-cache-dir` (or `PIP_NO_CACHE_DIR=1`)",
    "npm-cache": "run `npm cache clean --force` in the same step, or use `--mount=type=cache,target=/root/.npm`",
    "yarn-cache": "run `yarn cache clean` in the same step, or use a cache mount",
    "go-build-cache": "build in a separate stage, or use `--mount=type=cache,target=/root/.cache/go-build`",
    "go-module-cache": "build in a separate stage, or use `--mount=type=cache,target=/go/pkg/mod`",
}
DEFAULT_CACHE_ADVICE = "delete it in the same step that creates it, or use a `--mount=type=cache` build mount"

SHELLS = ("bin/sh", "bin/bash", "bin/dash", "bin/ash", "bin/busybox", "usr/bin/bash", "usr/bin/dash", "usr/bin/sh")
PACKAGE_MANAGERS = ("usr/bin/apt-get", "usr/bin/apt", "usr/bin/dpkg", "sbin/apk", "usr/sbin/apk", "usr/bin/dnf",
                    "usr/bin/yum", "usr/bin/microdnf", "usr/bin/rpm", "bin/rpm", "usr/bin/zypper")
DISTROLESS_DROPS = frozenset({"dpkg:apt", "dpkg:dpkg", "dpkg:bash", "dpkg:dash", "dpkg:debconf",
                              "apk:apk-tools", "apk:busybox", "apk:busybox-binsh"})


# One line per finding id: what it means (SARIF rule descriptions, documentation).
DESCRIPTIONS: Mapping[str, str] = {
    "toolchain-in-final-image": "Compilers, build-only files or build-only packages in the final image.",
    "cache-left-behind": "A package-manager or build cache left in the final image.",
    "cache-cleaned-too-late": "A cache deleted by a later step than the one that filled it: its bytes stay stored.",
    "deleted-later": "Files a later step deleted: still stored in the layer that added them.",
    "overwritten-later": "Files a later step replaced: both copies are stored.",
    "removable-files": "Documentation, man pages, locales, tests, VCS data or debug files a program does not need.",
    "duplicate-files": "The same content stored at several paths of the final image.",
    "copy-context-before-install": "The whole build context is copied before the dependency install.",
    "shell-and-package-manager": "A shell and a package manager where a distroless base would do.",
    "runs-as-root": "The image runs as root.",
}


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence: a path, package or step, with its bytes and where it sits."""

    what: str
    size: int
    layer: int | None = None
    step: str = ""  # the created_by text of the step concerned
    detail: str = ""


@dataclass(frozen=True)
class Finding:
    """One anti-pattern found, with the bytes its fix saves."""

    id: str
    title: str
    advice: str
    fix: str  # one of FIXES
    savings_bytes: int
    evidence: tuple[Evidence, ...]
    layers: tuple[int, ...] = ()
    steps: tuple[int, ...] = ()  # config history positions
    claims: Mapping[tuple[int, str], int] = field(default_factory=dict, compare=False, repr=False)


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _common_dir(paths: list[str]) -> str:
    """Return the directory holding ``paths`` when it says something (two levels deep or
    more), else the first path and how many more there are."""
    if len(paths) == 1:
        return "/" + paths[0]
    common = _common_path(paths)
    if common.count("/") >= 2:
        return common
    return f"/{sorted(paths)[0]} (+{len(paths) - 1} more)"


def _common_path(paths: list[str]) -> str:
    """Return ``posixpath.commonpath`` of the absolute forms of model paths (which have no
    empty or "." parts), one startswith per path instead of splitting every one."""
    prefix = paths[0]
    for path in paths:
        while prefix and path != prefix and not path.startswith(prefix + "/"):
            prefix = prefix.rpartition("/")[0]
        if not prefix:
            break
    return "/" + prefix


class _Ctx:
    def __init__(self, image: Image, a: Attribution):
        self.image = image
        self.a = a
        self.by_layer: dict[int, Step] = step_of_layer(a.steps)
        self.final = dict(zip(map(itemgetter(0), a.files), a.files))  # path -> its FileFact

    def step_text(self, layer: int | None) -> str:
        step = self.by_layer.get(layer) if layer is not None else None
        return step.text if step else ""

    def step_index(self, layer: int | None) -> int | None:
        step = self.by_layer.get(layer) if layer is not None else None
        return step.index if step else None

    def steps_of(self, layers: Iterable[int]) -> tuple[int, ...]:
        return tuple(sorted({i for i in (self.step_index(li) for li in layers) if i is not None}))


def _grouped_evidence(ctx: _Ctx, groups: Mapping[str, list[FileFact]], detail_of) -> tuple[Evidence, ...]:
    rows = []
    for name, files in groups.items():
        size = sum(f.size for f in files)
        layer = Counter(f.layer for f in files).most_common(1)[0][0]
        where = _common_dir([f.path for f in files])
        rows.append(Evidence(where, size, layer, ctx.step_text(layer), detail_of(name, files)))
    rows.sort(key=lambda e: (-e.size, e.what))
    return tuple(rows[:EVIDENCE])


def _toolchain(ctx: _Ctx) -> list[Finding]:
    a = ctx.a
    build_pkgs = {p.key: p for p in a.packages if p.build_only}
    claimed = [f for f in a.files if f.size and (f.category in cats.BUILD_ONLY or f.package in build_pkgs)]
    if not claimed:
        return []
    groups: dict[str, list[FileFact]] = defaultdict(list)
    for f in claimed:
        groups[f.package if f.package in build_pkgs else f"rule:{f.rule}"].append(f)
    rules = {r.name: r for r in cats.RULES}

    def detail(name: str, files: list[FileFact]) -> str:
        if name.startswith("rule:"):
            rule = rules.get(name[5:])
            return f"{name[5:]}: {rule.reason}" if rule else name[5:]
        pkg = build_pkgs[name]
        return f"package {pkg.name} {pkg.version}: {_pkg_reason(pkg)}"

    evidence = _grouped_evidence(ctx, groups, detail)
    label = {detail(name, files): name.removeprefix("rule:") if name.startswith("rule:") else build_pkgs[name].name
             for name, files in groups.items()}
    names = [label[ev.detail] for ev in evidence[:4]]
    layers = sorted({f.layer for f in claimed})
    return [Finding(
        id="toolchain-in-final-image",
        title=f"Toolchain and build-only files in the final image ({', '.join(names)}): use a multi-stage build",
        advice="Build in a first stage FROM the SDK image, then COPY only the built artifacts into a runtime "
               "(or distroless) base in the final stage; compilers, headers and static libraries stay behind.",
        fix=MULTI_STAGE, savings_bytes=sum(f.size for f in claimed), evidence=evidence, layers=tuple(layers),
        steps=ctx.steps_of(layers), claims={(f.layer, f.path): f.size for f in claimed})]


def _pkg_reason(pkg) -> str:
    return build_only_reason(pkg.manager, pkg.name) or "only needed to build"


def _caches(ctx: _Ctx) -> list[Finding]:
    groups: dict[tuple[str, int], list[FileFact]] = defaultdict(list)
    for f in ctx.a.files:
        if f.category == cats.CACHE and f.size:
            groups[(f.rule, f.layer)].append(f)
    rules = {r.name: r for r in cats.RULES}
    out = []
    for (rule_name, layer), files in groups.items():
        size = sum(f.size for f in files)
        where = _common_dir([f.path for f in files])
        step = ctx.by_layer.get(layer)
        reason = rules[rule_name].reason if rule_name in rules else rule_name
        by = f" by step {step.index} `{_short(step.text)}`" if step else f" by layer {layer}"
        installs = f" (its {'/'.join(step.installs)} install leaves the cache behind)" if step and step.installs else ""
        evidence = tuple(Evidence("/" + f.path, f.size, layer, ctx.step_text(layer), reason)
                         for f in sorted(files, key=lambda f: (-f.size, f.path))[:EVIDENCE])
        out.append(Finding(
            id="cache-left-behind",
            title=f"{rule_name} cache left in the image at {where}{by}{installs}",
            advice=CACHE_ADVICE.get(rule_name, DEFAULT_CACHE_ADVICE).capitalize() + ".",
            fix=PRUNE, savings_bytes=size, evidence=evidence, layers=(layer,), steps=ctx.steps_of([layer]),
            claims={(f.layer, f.path): f.size for f in files}))
    return out


def _waste(ctx: _Ctx) -> list[Finding]:
    groups: dict[tuple[str, int, int], list[WasteFact]] = defaultdict(list)
    for w in ctx.a.waste:
        if w.how == "deleted":
            kind = "cache-cleaned-too-late" if w.category == cats.CACHE else "deleted-later"
        else:
            kind = "overwritten-later"
        groups[(kind, w.layer, w.by_layer)].append(w)
    out = []
    for (kind, layer, by), items in groups.items():
        size = sum(w.size for w in items)
        if size < MIN_WASTE_BYTES:
            continue
        where = _common_dir([w.path for w in items])
        filled, cleaned = ctx.by_layer.get(layer), ctx.by_layer.get(by)
        fill_text = f"step {filled.index} `{_short(filled.text, 45)}`" if filled else f"layer {layer}"
        clean_text = f"step {cleaned.index} `{_short(cleaned.text, 45)}`" if cleaned else f"layer {by}"
        same = sum(1 for w in items if (w.layer, w.path) in ctx.a.overwritten_identical)
        if kind == "cache-cleaned-too-late":
            title = (f"Cache at {where} filled by {fill_text} but cleaned by {clean_text}: its bytes stay in "
                     f"layer {layer}")
            advice = ("Clean the cache in the same RUN step that fills it (`... && rm -rf ...`), or keep it out "
                      "of the layer with `--mount=type=cache`.")
        elif kind == "deleted-later":
            title = f"Files at {where} added by {fill_text} and deleted by {clean_text}: still stored in layer {layer}"
            advice = ("Delete files in the step that creates them, or produce them in a build stage and COPY "
                      "only what the final image needs.")
        else:
            title = f"Files at {where} from {fill_text} overwritten by {clean_text}: both copies are stored"
            if same:
                title += f" ({same} with identical content: a metadata-only change)"
            advice = ("Set content, owner and mode in the step that creates a file (`COPY --chown/--chmod`); a "
                      "later `chown`/`chmod`/rewrite stores the whole file again.")
        evidence = tuple(
            Evidence("/" + w.path, w.size, w.layer, ctx.step_text(w.layer),
                     f"{w.how} by layer {w.by_layer}" + (" (same content)" if (w.layer, w.path) in
                                                        ctx.a.overwritten_identical else "") + f"; {w.category}")
            for w in sorted(items, key=lambda w: (-w.size, w.path))[:EVIDENCE])
        out.append(Finding(id=kind, title=title, advice=advice, fix=SQUASH, savings_bytes=size, evidence=evidence,
                           layers=(layer, by), steps=ctx.steps_of([layer, by]),
                           claims={(w.layer, w.path): w.size for w in items}))
    return out


def _removable(ctx: _Ctx) -> list[Finding]:
    wanted = cats.REMOVABLE - {cats.CACHE}
    files = [f for f in ctx.a.files if f.category in wanted and f.size]
    if not files:
        return []
    groups: dict[str, list[FileFact]] = defaultdict(list)
    for f in files:
        groups[f.category].append(f)
    evidence = _grouped_evidence(ctx, groups, lambda name, fs: f"{name}: {len(fs)} files")
    layers = sorted({f.layer for f in files})
    names = ", ".join(e.detail.split(":")[0] for e in evidence)
    return [Finding(
        id="removable-files",
        title=f"Files the program does not need at run time ({names})",
        advice="Drop them with `slimmer slim --mode prune`, or in the install step (e.g. dpkg path-exclude for "
               "/usr/share/doc, /usr/share/man and /usr/share/locale).",
        fix=PRUNE, savings_bytes=sum(f.size for f in files), evidence=evidence, layers=tuple(layers),
        steps=ctx.steps_of(layers), claims={(f.layer, f.path): f.size for f in files})]


def _duplicates(ctx: _Ctx) -> list[Finding]:
    claims: dict[tuple[int, str], int] = {}
    evidence = []
    for g in ctx.a.duplicates:
        finals = [(layer, path) for layer, path, final in g.copies if final]
        if len(finals) < 2:
            continue
        for layer, path in finals[1:]:
            claims[(layer, path)] = g.size
        paths = ", ".join("/" + p for _l, p in finals[:4]) + (", …" if len(finals) > 4 else "")
        evidence.append(Evidence(paths, g.size * (len(finals) - 1), finals[0][0], ctx.step_text(finals[0][0]),
                                 f"{len(finals)} copies of {g.size} bytes (content hash {g.digest[:12]})"))
    if not claims:
        return []
    evidence.sort(key=lambda e: (-e.size, e.what))
    layers = sorted({layer for layer, _p in claims})
    return [Finding(
        id="duplicate-files",
        title=f"The same content at several paths ({len(evidence)} groups of duplicate files)",
        advice="Keep one copy and link to it (a hard link or symlink), or stop copying the file twice.",
        fix=DEDUPE, savings_bytes=sum(claims.values()), evidence=tuple(evidence[:EVIDENCE]), layers=tuple(layers),
        steps=ctx.steps_of(layers), claims=claims)]


def _context_copy(ctx: _Ctx) -> list[Finding]:
    out = []
    copies = [s for s in ctx.a.steps if s.copies_context]
    for install in ctx.a.steps:
        if not install.dependency_install:
            continue
        before = [c for c in copies if c.index < install.index]
        if not before:
            continue
        copy = before[-1]
        managers = set(install.dependency_install)
        if any(managers & set(s.dependency_install) for s in ctx.a.steps if s.index < copy.index):
            continue  # the dependencies were installed before the sources came in: cache-friendly
        size = ctx.image.layers[install.layer] if install.layer is not None else None
        rebuilt = sum(e.size for e in size.entries) if size is not None else 0
        out.append(Finding(
            id="copy-context-before-install",
            title=(f"Step {copy.index} `{_short(copy.text, 30)}` copies the whole build context before the "
                   f"{'/'.join(install.dependency_install)} install of step {install.index}: every source change "
                   f"re-runs it"),
            advice="Copy only the dependency manifests first (package.json and lock file, requirements.txt, "
                   "go.mod/go.sum), run the install, then copy the rest of the sources.",
            fix=REORDER, savings_bytes=0,
            evidence=(Evidence(copy.text, 0, copy.layer, copy.text, "copies the whole build context"),
                      Evidence(install.text, rebuilt, install.layer, install.text,
                               f"dependency install: its {rebuilt} bytes are rebuilt on every source change")),
            layers=tuple(li for li in (copy.layer, install.layer) if li is not None),
            steps=(copy.index, install.index)))
    return out


def _is_root(image: Image) -> bool:
    user = str(runtime_config(image).get("User", "") or "").strip()
    return user.split(":")[0] in ("", "root", "0")


def _distroless(ctx: _Ctx) -> list[Finding]:
    a = ctx.a
    shells = [p for p in SHELLS if a.exists(p)]
    managers = [p for p in PACKAGE_MANAGERS if a.exists(p)]
    root = _is_root(ctx.image)
    out = []
    if shells and managers:
        files = [f for f in a.files if f.size and (f.category == cats.PACKAGE_DB or f.package in DISTROLESS_DROPS
                                                   or f.path in shells or f.path in managers)]
        groups: dict[str, list[FileFact]] = defaultdict(list)
        for f in files:
            groups[f.package or f.category].append(f)
        evidence = _grouped_evidence(ctx, groups, lambda name, fs: name)
        layers = sorted({f.layer for f in files})
        who = "Runs as root with" if root else "Has"
        out.append(Finding(
            id="shell-and-package-manager",
            title=f"{who} a shell (/{shells[0]}) and a package manager (/{managers[0]}) where a distroless base "
                  f"would do",
            advice="Run the program on a distroless (or scratch) base: no shell, no package manager, nothing an "
                   "attacker can use to install tools; debug with an ephemeral debug container instead.",
            fix=DISTROLESS, savings_bytes=sum(f.size for f in files), evidence=evidence, layers=tuple(layers),
            steps=ctx.steps_of(layers), claims={(f.layer, f.path): f.size for f in files}))
    if root:
        out.append(Finding(
            id="runs-as-root",
            title="The image runs as root (no USER, or USER root)",
            advice="Add a `USER` with a non-zero uid (e.g. `USER 65532:65532`) in the final stage.",
            fix=USER, savings_bytes=0, evidence=(Evidence("config.User", 0, None, "",
                                                          repr(runtime_config(ctx.image).get("User", ""))),)))
    return out


DETECTORS = (_toolchain, _caches, _waste, _removable, _duplicates, _context_copy, _distroless)


def find(image: Image, a: Attribution) -> list[Finding]:
    """Return every finding for ``image``, largest savings first."""
    ctx = _Ctx(image, a)
    out: list[Finding] = []
    for detect in DETECTORS:
        out.extend(detect(ctx))
    out.sort(key=lambda f: (-f.savings_bytes, f.id, f.title))
    return out


def could_save(findings: Iterable[Finding]) -> int:
    """Return the bytes all ``findings`` together would save, shared bytes counted once."""
    union: dict[tuple[int, str], int] = {}
    for f in findings:
        union.update(f.claims)
    return sum(union.values())


def could_save_by_fix(findings: Iterable[Finding]) -> dict[str, int]:
    """Return the bytes each kind of fix (``Finding.fix``) would save, shared bytes counted once
    within a fix."""
    per: dict[str, dict[tuple[int, str], int]] = defaultdict(dict)
    for f in findings:
        per[f.fix].update(f.claims)
    return {fix: sum(per[fix].values()) for fix in FIXES if fix in per}


def claims_of(finding: Finding) -> set[tuple[int, str]]:
    """Return the (layer, path) versions a finding points at: what its fix removes, else the
    paths of its evidence."""
    if finding.claims:
        return set(finding.claims)
    out = set()
    for ev in finding.evidence:
        if ev.layer is not None and ev.what.startswith("/") and " " not in ev.what:
            out.add((ev.layer, ev.what[1:]))
    return out


def layers_of(finding: Finding) -> list[int]:
    """Return the layers holding a finding's files, the most bytes first."""
    weight: Counter = Counter()
    for (layer, _path), size in (finding.claims.items() if finding.claims else
                                 ((c, 0) for c in claims_of(finding))):
        weight[layer] += size + 1
    return [layer for layer, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))]
