"""A small fleet pushed with skopeo to the real registry: five repository:tags on one shared base
layer, one of them a multi-platform index (whose linux/amd64 image is also pushed as
team/api:1.0, so blobs are shared across repositories too), and what `slimmer analyze` says of
each image's own archive, copied back out of the registry with skopeo.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from servers import Registry

from builders import WHITEOUT, ImageSpec, image, layer, write, write_multiplatform

PASSWD = b"root:x:0:0::/root:/bin/sh\n"
STATUS = b"""Package: libssl3
Status: install ok installed
Architecture: amd64
Version: 3.0.15-1~deb12u1

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u8
"""
BASE = layer({"bin/sh": 60_000, "etc/passwd": PASSWD, "usr/share/doc/base-files/README": 20_000,
              "usr/lib/x86_64-linux-gnu/libssl.so.3": 90_000, "var/lib/dpkg/status": STATUS,
              "var/lib/dpkg/info/libssl3.list": b"/.\n/usr\n/usr/lib/x86_64-linux-gnu/libssl.so.3\n",
              "var/lib/dpkg/info/base-files.list": b"/.\n/etc/passwd\n"},
             created_by="ADD rootfs.tar /", auto_dirs=True)


def app(name: str, size: int, ref: str) -> ImageSpec:
    """An image on the shared base: an app layer that leaves an apt cache, then its removal."""
    return image(BASE, layer({f"app/{name}.bin": size, "var/cache/apt/archives/x.deb": 30_000},
                             created_by=f"COPY {name} /app", auto_dirs=True),
                 layer({"var/cache/apt/.wh.archives": WHITEOUT}, created_by="RUN rm -rf /var/cache/apt/archives"),
                 tag=ref, entrypoint=[f"/app/{name}.bin"])


API = app("api", 100_000, "team/api:1.0")
IMAGES: dict[str, ImageSpec | dict[str, ImageSpec]] = {
    "team/api:1.0": API,
    "team/api:1.1": app("api", 100_011, "team/api:1.1"),
    "team/web:latest": image(BASE, layer({"srv/www/index.html": b"<html></html>\n", "srv/www/big.js": 150_000,
                                          "srv/www/copy.js": 150_000, "usr/share/doc/web/manual.pdf": 40_000},
                                         created_by="COPY www /srv/www", auto_dirs=True), tag="team/web:latest"),
    "tools/cli:2": image(BASE, layer({"usr/local/bin/cli": 70_000}, created_by="COPY cli /usr/local/bin/",
                                     auto_dirs=True), tag="tools/cli:2"),
    "multi/app:1": {"linux/amd64": API,
                    "linux/arm64/v8": app("arm", 80_000, "multi/app:1")},
}
# one more tag pushed later, for the incremental audit: the base again, and a new layer
LATER = ("team/api:1.2", app("api", 100_012, "team/api:1.2"))


def rows_of(ref: str, item) -> list[tuple[str, str]]:
    """Return the (repository:tag, platform) rows an audit gives for one pushed tag."""
    if isinstance(item, dict):
        return [(ref, p) for p in item]
    cfg = item.config
    return [(ref, "/".join([cfg["os"], cfg["architecture"], *([cfg["variant"]] if cfg.get("variant") else [])]))]


def push(reg: Registry, work: Path, ref: str, item) -> None:
    """Write ``item`` as an OCI layout (gzip layers) and push it as ``ref``."""
    tag = ref.rsplit(":", 1)[1]
    layout = work / "layouts" / ref.replace("/", "_").replace(":", "_")
    if isinstance(item, dict):
        write_multiplatform(item, layout, fmt="oci-dir", tag=ref, compression="gzip")
        reg.push(layout, tag, ref, all_platforms=True)
    else:
        write(item, layout, "oci-dir", "gzip")
        reg.push(layout, tag, ref)


def run_cli(*args) -> tuple[int, str, str]:
    """Run slimmer's CLI in this process; return (exit status, stdout, stderr)."""
    from slimmer.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["slimmer", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exit_info:
                code = exit_info.code or 0
    finally:
        sys.argv = argv
    return int(code), out.getvalue(), err.getvalue()


def figures(doc: dict) -> dict:
    """Return the figures an audit row must repeat, from `slimmer analyze --json` output."""
    worst = max(doc["findings"], key=lambda f: f["savings_bytes"], default=None)
    return {
        "total_bytes": doc["sizes"]["total_bytes"], "final_bytes": doc["sizes"]["final_bytes"],
        "stored_bytes": doc["sizes"]["stored_bytes"], "files": doc["sizes"]["file_count"],
        "layers": doc["sizes"]["layer_count"], "dive_efficiency": doc["waste"]["dive_efficiency"],
        "dive_wasted_bytes": doc["waste"]["dive_wasted_bytes"], "true_wasted_bytes": doc["waste"]["true_wasted_bytes"],
        "could_save_bytes": doc["could_save_bytes"],
        "worst_finding": worst["title"] if worst else "", "worst_finding_bytes": worst["savings_bytes"] if worst else 0,
        "categories": sorted((c["category"], c["final_bytes"], c["files"], c["wasted_bytes"])
                             for c in doc["categories"]),
        "packages": sorted((p["manager"], p["name"], p["version"], p["size_bytes"], p["files"])
                           for p in doc["packages"] if p["manager"]),
        "fixes": sorted(doc["could_save_by_fix"].items()),
    }


def analyzed(reg: Registry, work: Path, ref: str, item) -> dict[tuple[str, str], dict]:
    """Return {(ref, platform): figures} from `slimmer analyze --json` of the image copied back
    out of the registry."""
    dest = work / "pulled" / ref.replace("/", "_").replace(":", "_")
    reg.pull(ref, dest, all_platforms=isinstance(item, dict))
    out = {}
    for key in rows_of(ref, item):
        code, text, err = run_cli("analyze", dest, "--platform", key[1], "--json", "--no-cache")
        assert code == 0, err
        out[key] = figures(json.loads(text))
    return out


@dataclass
class Pushed:
    storage: Path
    work: Path
    expected: dict[tuple[str, str], dict]


def push_fleet(work: Path):
    """Start the registry, push IMAGES, note the figures of each image, stop the registry."""
    storage = work / "storage"
    storage.mkdir()
    reg = Registry(storage, work).start()
    try:
        for ref, item in IMAGES.items():
            push(reg, work, ref, item)
        expected = {}
        for ref, item in IMAGES.items():
            expected.update(analyzed(reg, work, ref, item))
    finally:
        reg.stop()
    shutil.rmtree(work / "pulled", ignore_errors=True)
    return Pushed(storage, work, expected)


def db_figures(target) -> dict[tuple[str, str], dict]:
    """Return {(repository:tag, platform): figures} of every image row of the audit database
    ``target`` (an SQLite file or a postgresql:// URL), as `figures` gives them."""
    from slimmer.audit.db import Database

    db = Database.open(target)
    try:
        out = {}
        for (image_id, repo, tag, platform, total, final, stored, files, layers, eff, dive_w, true_w, could, worst,
             worst_b, error) in db.query(
                "SELECT id, repository, tag, platform, total_bytes, final_bytes, stored_bytes, files, layers, "
                "dive_efficiency, dive_wasted_bytes, true_wasted_bytes, could_save_bytes, worst_finding, "
                "worst_finding_bytes, error FROM images"):
            assert not error, error
            out[(f"{repo}:{tag}", platform)] = {
                "total_bytes": total, "final_bytes": final, "stored_bytes": stored, "files": files, "layers": layers,
                "dive_efficiency": eff, "dive_wasted_bytes": dive_w, "true_wasted_bytes": true_w,
                "could_save_bytes": could, "worst_finding": worst, "worst_finding_bytes": worst_b,
                "categories": sorted(tuple(r) for r in db.query(
                    "SELECT category, final_bytes, files, wasted_bytes FROM image_categories WHERE image_id = ?",
                    (image_id,))),
                "packages": sorted(tuple(r) for r in db.query(
                    "SELECT manager, name, version, size_bytes, files FROM image_packages WHERE image_id = ?",
                    (image_id,))),
                "fixes": sorted(tuple(r) for r in db.query("SELECT fix, bytes FROM image_fixes WHERE image_id = ?",
                                                           (image_id,))),
            }
        return out
    finally:
        db.close()


def blob_digests(storage: Path) -> set[str]:
    """Return the digest of every blob the storage holds."""
    return {"sha256:" + p.parent.name for p in (storage / "docker/registry/v2/blobs/sha256").glob("*/*/data")}
