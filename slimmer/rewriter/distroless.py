"""``--mode distroless``: keep only the entrypoint closure and a distroless base set.

The base set (what gcr.io/distroless/static holds): /etc/passwd and /etc/group with a
``nonroot`` user (65532), /etc/nsswitch.conf, the CA certificate bundle, the time zone
database (unless ``--no-tzdata``), /etc/os-release, the loader's cache and configuration, and
/tmp with mode 1777; and, as gcr.io/distroless/base holds C.utf8, the locales the image's
environment selects (``LC_ALL``, ``LC_*``, ``LANG``: without them ``setlocale(LC_ALL, "")``
fails and a program runs in the C locale). Trees the closure keeps whole lose their removable files (tests, caches,
docs). ``--keep`` adds, ``--drop`` takes away. Imports ``slimmer.layers``, the model and
rewriter modules.
"""

from __future__ import annotations

from slimmer.layers import MergedFS
from slimmer.model import DIR, FILE
from slimmer.rewriter.closure import Closure, Reason, inside_left, tree_paths
from slimmer.rewriter.lookup import resolve
from slimmer.rewriter.plan import DISTROLESS, Globs, Plan, Synthetic, removed_list, with_ancestors
from slimmer.rewriter.prune import category_of, is_removable
from slimmer.rewriter.users import NSSWITCH

CA_BUNDLES = ("etc/ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt", "etc/ssl/cert.pem",
              "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "etc/ssl/ca-bundle.pem")
TZ_FILES = ("etc/localtime", "etc/timezone")
TZ_TREE = "usr/share/zoneinfo"
SYSTEM_FILES = ("etc/os-release", "etc/ld.so.cache", "etc/nsswitch.conf", "etc/passwd", "etc/group")
LOCALES = "usr/lib/locale"
LOCALE_VARS = ("LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "LC_MONETARY", "LC_NUMERIC", "LC_TIME",
               "LC_ADDRESS", "LC_IDENTIFICATION", "LC_MEASUREMENT", "LC_NAME", "LC_PAPER", "LC_TELEPHONE", "LANG")


def locale_names(env: dict[str, str]) -> list[str]:
    """Return the locales ``env`` selects, once each, but C and POSIX (built into glibc) and
    paths."""
    names: list[str] = []
    for var in LOCALE_VARS:
        value = env.get(var, "")
        if value and value not in ("C", "POSIX") and "/" not in value and value not in names:
            names.append(value)
    return names


def locale_spellings(name: str) -> list[str]:
    """Return the directory names glibc looks ``name`` up by: as given, then with the codeset
    normalised (lower-case letters and digits only, "iso" before digits alone: C.UTF-8 is
    C.utf8, de_DE.ISO-8859-1 de_DE.iso88591)."""
    language, dot, rest = name.partition(".")
    if not dot:
        return [name]
    codeset, at, modifier = rest.partition("@")
    normal = "".join(c for c in codeset.lower() if c.isalnum())
    if normal.isdigit():
        normal = "iso" + normal
    return list(dict.fromkeys([name, f"{language}.{normal}{at}{modifier}"]))


def base_set(fs: MergedFS, tzdata: bool, env: dict[str, str] | None = None) -> tuple[set[str], list[Reason], list[str]]:
    """Return (paths, reasons, notes) of the base set that the image holds (``env``: the
    image's environment, for its locales)."""
    keep: set[str] = set()
    reasons: list[Reason] = []
    notes: list[str] = []

    def add(path: str, why: str) -> bool:
        hit = resolve(fs, "/" + path)
        if hit is None:
            return False
        keep.update(hit.links)
        keep.add(hit.path)
        if hit.is_dir:
            keep.update(p for p, _v in tree_paths(fs, hit.path))
        reasons.append(Reason(hit.path + ("/" if hit.is_dir else ""), why))
        return True

    bundles = [add(p, "the CA certificate bundle") for p in CA_BUNDLES]  # every one the image has
    if not any(bundles):
        notes.append("the image has no CA certificate bundle: TLS clients will not verify servers")
    if tzdata and add(TZ_TREE, "the time zone database (--no-tzdata leaves it out)"):
        for path in TZ_FILES:
            add(path, "the local time zone")
    for path in SYSTEM_FILES:
        if fs.exists(path):
            add(path, "distroless base set")
    for name in locale_names(env or {}):
        why = f"the locale {name} the image's environment selects"
        if not any(add(f"{LOCALES}/{spelling}", why) for spelling in locale_spellings(name)) and \
                not add(f"{LOCALES}/locale-archive", why):
            notes.append(f"the image's environment selects the locale {name}, which the image does not have")
    return keep, reasons, notes


def base_synthetic(fs: MergedFS, mtime: int) -> list[Synthetic]:
    """Return the base-set entries slimmer writes: /tmp (1777), and nsswitch.conf if missing."""
    out = [Synthetic("tmp", DIR, b"", 0o1777, 0, 0, mtime, "distroless base set: world-writable /tmp")]
    if resolve(fs, "/etc/nsswitch.conf") is None:
        out.append(Synthetic("etc/nsswitch.conf", FILE, NSSWITCH.encode(), 0o644, 0, 0, mtime,
                             "distroless base set: look users and hosts up in files, then DNS"))
    return out


def plan_distroless(fs: MergedFS, closure: Closure, globs: Globs, synthetic: list[Synthetic], tzdata: bool,
                    env: dict[str, str] | None = None) -> Plan:
    """Return the distroless plan for the merged filesystem ``fs`` (``env``: the image's)."""
    keep, reasons, notes = base_set(fs, tzdata, env)
    keep |= closure.paths
    left = [r.path for r in closure.left_out]
    for tree in closure.trees:
        keep.add(tree)
        keep.update(p for p, v in tree_paths(fs, tree) if not is_removable(category_of(p, v.entry), False)
                    and not (left and inside_left(p, tree, left)))
    rewritten = {s.path for s in synthetic}
    reasons = list(closure.reasons) + [r for r in reasons if r.path not in rewritten]
    notes = list(closure.notes) + list(closure.blind_spots) + notes
    notes += [f"left out /{r.path}: {r.why}" for r in closure.left_out if r.path not in closure.paths]
    if globs.keep:
        keep.update(path for path in fs.refs() if globs.kept(path))
    keep = {p for p in keep if not globs.dropped(p)}
    keep = with_ancestors(fs, keep)
    keep -= {s.path for s in synthetic}
    reasons += [Reason(s.path, s.why) for s in synthetic]
    return Plan(DISTROLESS, frozenset(keep), tuple(synthetic), tuple(removed_list(fs, keep, category_of, synthetic)),
                tuple(reasons), tuple(notes), closure.argv)
