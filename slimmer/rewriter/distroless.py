"""``--mode distroless``: keep only the entrypoint closure and a distroless base set.

The base set (what gcr.io/distroless/static holds): /etc/passwd and /etc/group with a
``nonroot`` user (65532), /etc/nsswitch.conf, the CA certificate bundle, the time zone
database (unless ``--no-tzdata``), /etc/os-release, the loader's cache and configuration, and
/tmp with mode 1777. Trees the closure keeps whole lose their removable files (tests, caches,
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


def base_set(fs: MergedFS, tzdata: bool) -> tuple[set[str], list[Reason], list[str]]:
    """Return (paths, reasons, notes) of the base set that the image holds."""
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
    return keep, reasons, notes


def base_synthetic(fs: MergedFS, mtime: int) -> list[Synthetic]:
    """Return the base-set entries slimmer writes: /tmp (1777), and nsswitch.conf if missing."""
    out = [Synthetic("tmp", DIR, b"", 0o1777, 0, 0, mtime, "distroless base set: world-writable /tmp")]
    if resolve(fs, "/etc/nsswitch.conf") is None:
        out.append(Synthetic("etc/nsswitch.conf", FILE, NSSWITCH.encode(), 0o644, 0, 0, mtime,
                             "distroless base set: look users and hosts up in files, then DNS"))
    return out


def plan_distroless(fs: MergedFS, closure: Closure, globs: Globs, synthetic: list[Synthetic], tzdata: bool) -> Plan:
    """Return the distroless plan for the merged filesystem ``fs``."""
    keep, reasons, notes = base_set(fs, tzdata)
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
