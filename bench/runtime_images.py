"""Real single-stage images of interpreted apps, built with debootstrap (Debian 12), for
``bench/slim_runtimes.py``. Each is cached under bench/out/runtimes/ (gitignored): a rebuild
takes minutes and needs the Debian, PyPI and npm registries; measuring does not.

    python bench/runtime_images.py [python node java ...]   # build what is missing

Layers, as a naive single-stage Dockerfile makes them:
0. ``debootstrap --variant=minbase bookworm`` (the ``FROM debian:bookworm`` base);
1. ``apt-get update && apt-get install -y ...`` (Recommends on, apt lists left behind);
2. the app's own install step (``pip install``, ``npm install`` with devDependencies, ``javac``
   and ``jar``) and the app itself in /app.

A layer is the difference between two snapshots of the rootfs (new or changed paths, and a
whiteout for each path that went away), written as a tar right after its step ran.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "runtimes"
sys.path.insert(0, str(HERE.parent))

from slimmer.model import HistoryStep, Image, Layer, with_layers
from slimmer.rewriter.writer import write_docker_archive
from slimmer.tar.scan import TarScanner

MIRROR = "http://deb.debian.org/debian"
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
SKIP = ("proc", "sys", "dev", "run", "tmp", "etc/resolv.conf", "usr/sbin/policy-rc.d")

PY_APP = '''\
import sys, json, datetime, zoneinfo
import requests, yaml, certifi
from urllib.parse import urlencode

req = requests.Request("GET", "https://example.org/api", params={"q": "slim"}).prepare()
doc = yaml.safe_dump({"url": req.url, "python": list(sys.version_info[:2])}, sort_keys=True)
when = datetime.datetime(2024, 1, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
print(doc.strip(), json.dumps({"args": sys.argv[1:], "q": urlencode({"a": 1})}), when.isoformat())
print("certifi bundle:", certifi.where(), len(open(certifi.where()).read()) > 1000, yaml.__with_libyaml__)
'''
NODE_APP = '''\
const express = require("express");
const _ = require("lodash");
const chalk = require("chalk");
const { v5: uuidv5 } = require("uuid");
const ms = require("ms");
const app = express();
app.get("/", (req, res) => res.send("ok"));
console.log(chalk.green("routes"), app._router.stack.length, _.chunk([1, 2, 3, 4, 5], 2), ms("2h"));
console.log(uuidv5("slimmer", uuidv5.URL), new Intl.DateTimeFormat("de-DE", {timeZone: "Europe/Berlin"}).format(0));
'''
NODE_PACKAGE = {
    "name": "bench-app", "version": "1.0.0", "private": True, "main": "index.js",
    "dependencies": {"express": "^4.19.2", "lodash": "^4.17.21", "chalk": "^4.1.2", "uuid": "^9.0.1", "ms": "^2.1.3"},
    "devDependencies": {"typescript": "^5.4.5", "eslint": "^8.57.0", "jest": "^29.7.0"},
}
JAVA_APP = '''\
import java.time.ZonedDateTime;
import java.time.ZoneId;
import java.util.TreeMap;

public class Hello {
    public static void main(String[] args) {
        TreeMap<String, Integer> m = new TreeMap<>();
        for (String a : args) m.merge(a, 1, Integer::sum);
        System.out.println("hello from java " + Runtime.version().feature() + " " + m);
        System.out.println(ZonedDateTime.of(2024, 1, 1, 12, 0, 0, 0, ZoneId.of("Asia/Tokyo")));
    }
}
'''

APPS = {
    "python": {
        "apt": ["python3", "python3-pip"],
        "step": "pip install --break-system-packages requests pyyaml",
        "files": {"app/main.py": PY_APP},
        "script": "pip install --break-system-packages --no-warn-script-location requests pyyaml",
        "config": {"Cmd": ["python3", "/app/main.py", "bench"], "WorkingDir": "/app"},
    },
    "node": {
        "apt": ["nodejs", "npm"],
        "step": "npm install (dependencies and devDependencies)",
        "files": {"app/index.js": NODE_APP, "app/package.json": json.dumps(NODE_PACKAGE, indent=2) + "\n"},
        "script": "cd /app && npm install --no-audit --no-fund",
        "config": {"Cmd": ["node", "/app/index.js"], "WorkingDir": "/app"},
    },
    "java": {
        "apt": ["default-jdk"],
        "step": "javac Hello.java && jar cfe app.jar Hello Hello.class",
        "files": {"app/Hello.java": JAVA_APP},
        "script": "cd /app && javac Hello.java && jar cfe app.jar Hello Hello.class",
        "config": {"Cmd": ["java", "-jar", "/app/app.jar", "b", "a", "b"], "WorkingDir": "/app"},
    },
}


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-3000:]}")
    return done


def in_chroot(root: Path, script: str) -> None:
    """Run ``script`` with sh in a chroot of ``root`` with /proc and /dev mounted in a private
    mount namespace (the mounts go away with it) and the host's DNS."""
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "tmp").mkdir(exist_ok=True)
    shutil.copy(HOST_CA, root / "tmp/host-ca.crt")  # this machine's registries sit behind its own CA
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    inner = (f"mount -t proc proc {root}/proc && mount --rbind /dev {root}/dev && "
             f"chroot {root} /usr/bin/env -i {' '.join(ENV)} HOME=/root DEBIAN_FRONTEND=noninteractive "
             f"PIP_CERT=/tmp/host-ca.crt NODE_EXTRA_CA_CERTS=/tmp/host-ca.crt npm_config_cafile=/tmp/host-ca.crt "
             f"/bin/sh -ec {shlex_quote(script)}")
    try:
        run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", inner])
    finally:
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "tmp/host-ca.crt").unlink(missing_ok=True)
        policy.unlink(missing_ok=True)


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


Snapshot = dict[str, tuple]


def snapshot(root: Path) -> Snapshot:
    """Return every path below ``root`` with what says whether it changed."""
    out: Snapshot = {}
    for base, dirs, files in os.walk(root):
        rel_base = os.path.relpath(base, root)
        rel_base = "" if rel_base == "." else rel_base
        if rel_base in SKIP:
            dirs[:] = []
            continue
        for name in dirs + files:
            rel = f"{rel_base}/{name}" if rel_base else name
            if rel in SKIP:
                continue
            st = os.lstat(os.path.join(base, name))
            link = os.readlink(os.path.join(base, name)) if stat.S_ISLNK(st.st_mode) else ""
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, 0 if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns,
                        link)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(base, d))]
    return out


def write_layer(root: Path, before: Snapshot, after: Snapshot, dest: Path) -> None:
    """Write the tar of what changed from ``before`` to ``after`` (paths under ``root``)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(after):
            if before.get(rel) != after[rel]:
                tar.add(root / rel, arcname=rel, recursive=False)
        gone = sorted(p for p in before if p not in after)
        covered: set[str] = set()
        for rel in gone:
            parent = os.path.dirname(rel)
            if any(parent == c or parent.startswith(c + "/") for c in covered):
                continue
            covered.add(rel)
            info = tarfile.TarInfo(f"{parent}/.wh.{os.path.basename(rel)}" if parent else f".wh.{rel}")
            tar.addfile(info)


def model_layer(path: Path, step: str) -> Layer:
    scanner = TarScanner(str(path))
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            scanner.feed(chunk)
    digest = "sha256:" + sha.hexdigest()
    size = path.stat().st_size
    return Layer(diff_id=digest, digest=digest, stored_size=size, entries=tuple(scanner.finish()),
                 uncompressed_size=size, history=HistoryStep(step), opener=functools.partial(open, path, "rb"))


def base_rootfs() -> Path:
    """Return the debootstrap rootfs (built once)."""
    root = OUT / "base"
    done = OUT / "base.done"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        run(["debootstrap", "--variant=minbase", "bookworm", str(root), MIRROR])
        (root / "var/cache/apt/archives").mkdir(parents=True, exist_ok=True)
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        done.write_text("ok\n")
    return root


def build(name: str) -> Path:
    """Build (or return the cached) image archive of app ``name``."""
    spec = APPS[name]
    archive = OUT / f"{name}-app.tar"
    if archive.exists():
        return archive
    base = base_rootfs()
    work = OUT / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "rootfs"
    run(["cp", "-a", str(base), str(root)])
    snaps = [snapshot(root)]
    layers = [(work / "l0.tar", "ADD debian-bookworm-minbase.tar /")]
    write_layer(root, {}, snaps[0], layers[0][0])
    apt = "apt-get update -qq && apt-get install -y -qq " + " ".join(spec["apt"])
    in_chroot(root, apt)
    snaps.append(snapshot(root))
    layers.append((work / "l1.tar", "RUN " + apt))
    write_layer(root, snaps[0], snaps[1], layers[1][0])
    for rel, text in spec["files"].items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    in_chroot(root, spec["script"])
    snaps.append(snapshot(root))
    layers.append((work / "l2.tar", "COPY . /app && RUN " + spec["step"]))
    write_layer(root, snaps[1], snaps[2], layers[2][0])
    models = [model_layer(p, step) for p, step in layers]
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Env": ENV, **spec["config"]}}
    img = with_layers(Image(config=config, layers=(), tags=(f"bench/{name}-app:latest",)), tuple(models),
                      tuple(m.history for m in models))
    write_docker_archive(img, archive.with_suffix(".part"))
    os.replace(archive.with_suffix(".part"), archive)
    for p, _ in layers:
        p.unlink()
    return archive


def rootfs_of(name: str) -> Path:
    """Return the built rootfs of app ``name`` (the original image, unpacked as built)."""
    return OUT / name / "rootfs"


if __name__ == "__main__":
    for which in sys.argv[1:] or list(APPS):
        print(which, build(which), flush=True)
