"""A slimmed image still runs: real programs of this machine, copied with their real libraries
into images built in code, run in a chroot of the unpacked image before and after
``slimmer slim``, must print the same thing and exit the same way.

The rootfs of each image comes from umoci (``skopeo copy`` to an OCI layout, then ``umoci
unpack``), so real tools both check the archives and lay out what runs. Needs root (chroot),
skopeo and umoci; the Python case needs Debian's python3.11-minimal (tests/run.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from test_slim_output import check_output, skopeo_unpack

from slimmer.reader import open_image
from slimmer.rewriter.slim import SlimOptions, slim

from builders import WHITEOUT, Dir, File, Hardlink, Symlink, image, layer, write

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root"),
    pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("umoci")), reason="needs skopeo and umoci"),
]


def ldd(program: str) -> list[str]:
    """Return the shared objects (and the loader) this machine's ld.so maps for ``program``."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    return [word for line in out.splitlines() for word in line.split() if word.startswith("/")]


def host_tree(paths: list[str]) -> dict:
    """Return builder specs copying host ``paths`` with their real bytes, modes and symlinks
    (a symlinked directory on the way, such as /lib -> usr/lib, is copied as the symlink)."""
    files: dict = {}

    def add(path: str) -> None:
        parts = path.strip("/").split("/")
        current = ""
        for i, part in enumerate(parts):
            current += "/" + part
            rel = current.lstrip("/")
            st = os.lstat(current)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(current)
                files.setdefault(rel, Symlink(target))
                base = target if target.startswith("/") else os.path.join(os.path.dirname(current), target)
                rest = "/".join(parts[i + 1:])
                add(os.path.normpath(base + ("/" + rest if rest else "")))
                return
            if stat.S_ISDIR(st.st_mode):
                files.setdefault(rel, Dir(mode=stat.S_IMODE(st.st_mode)))
            elif rel not in files:
                with open(current, "rb") as f:
                    files[rel] = File(f.read(), mode=stat.S_IMODE(st.st_mode), mtime=int(st.st_mtime))

    for path in paths:
        add(path)
    return files


def programs(*names: str) -> list[str]:
    """Return host programs ``names`` and everything ld.so maps for them."""
    out = []
    for name in names:
        path = shutil.which(name)
        out += [path] + ldd(path)
    return out


LOADER_CONF = ["/etc/ld.so.conf"] + [str(p) for p in sorted(Path("/etc/ld.so.conf.d").glob("*.conf"))]
# What slimming must take away: docs, an apt cache, a compiler-looking tree, libraries no
# entrypoint needs, a file a later layer deletes and one it overwrites.
JUNK = {
    "usr/share/doc/tool/README": 40_000, "usr/share/man/man1/tool.1.gz": 9_000,
    "var/cache/apt/archives/tool.deb": 120_000, "usr/lib/gcc/x86_64-linux-gnu/12/cc1": 300_000,
    "tmp": Dir(mode=0o1777), "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": b"root:x:0:\n", "scratch/big.bin": 250_000,
}


def junk_layers():
    return [layer(JUNK, auto_dirs=True, created_by="RUN apt-get install tool"),
            layer({"scratch/.wh.big.bin": WHITEOUT, "usr/share/doc/tool/README": 10}, created_by="RUN cleanup")]


def ls_image():
    """ls from this machine (libselinux, libpcre2, libc, ld.so) listing an app directory with
    setuid, odd owners, old mtimes, a hard link and a symlink."""
    base = host_tree(programs("ls") + [shutil.which("cat")] + ldd(shutil.which("cat")) +
                     ["/usr/lib/x86_64-linux-gnu/libz.so.1"] + LOADER_CONF)
    app = {"app": Dir(), "app/data": Dir(mode=0o750, uid=1000, gid=1000, mtime=1_600_000_000),
           "app/data/run": File(b"#!/bin/false\n", mode=0o4755, uid=0, gid=0, mtime=1_500_000_000),
           "app/data/owned": File(b"x" * 1234, mode=0o640, uid=1234, gid=5678, mtime=1_400_000_000),
           "app/data/twin": Hardlink("app/data/owned"), "app/data/link": Symlink("owned")}
    return image(layer(base, created_by="ADD rootfs"), *junk_layers(), layer(app, created_by="COPY app /app"),
                 entrypoint=["ls"], cmd=["-ln", "--time-style=+%s", "/app/data"])


def shell_image():
    """A dash script (/bin/sh -> dash) that runs basename, cat, ls and wc from this machine;
    the data it reads is kept with --keep."""
    script = (b"#!/bin/sh\nset -e\necho \"args: $*\"\n"
              b"for f in /srv/msg/*; do printf '%s: ' \"$(basename \"$f\")\"; cat \"$f\"; done\n"
              b"ls /srv/msg | wc -l\n")
    base = host_tree(["/bin/sh", "/usr/bin/dash"] + ldd("/usr/bin/dash") + programs("basename", "cat", "ls", "wc")
                     + LOADER_CONF)
    app = {"usr/local/bin/entry.sh": File(script, mode=0o755), "srv/msg/a": b"first\n", "srv/msg/b": b"second\n"}
    return image(layer(base, created_by="ADD rootfs"), *junk_layers(), layer(app, auto_dirs=True, created_by="COPY"),
                 entrypoint=["entry.sh"], cmd=["hello", "world"])


def python_paths() -> list[str]:
    listed = subprocess.run(["dpkg", "-L", "python3.11-minimal", "libpython3.11-minimal"], capture_output=True,
                            text=True, check=True).stdout.split()
    keep = [p for p in listed if not p.startswith(("/usr/share/doc", "/usr/share/man", "/usr/share/lintian"))
            and (os.path.islink(p) or os.path.isfile(p))]
    return keep + ldd("/usr/bin/python3.11") + programs("env") + ["/usr/bin/python3"]


def python_image():
    """A Python program (#!/usr/bin/env python3) importing a module of its own directory and
    reading a data file beside it, on Debian's python3.11-minimal from this machine."""
    main = (b"#!/usr/bin/env python3\nimport os, sys\nimport helper\n"
            b"print('python', sys.version_info[:2], os.getcwd(), sys.argv[1:])\n"
            b"print(helper.greet(open(os.path.join(os.path.dirname(__file__), 'name.txt')).read().strip()))\n")
    app = {"app/main.py": File(main, mode=0o755), "app/helper.py": b"def greet(n):\n    return 'hello ' + n\n",
           "app/name.txt": b"slimmer\n", "root/.cache/pip/http/blob": 50_000}
    return image(layer(host_tree(python_paths() + LOADER_CONF), created_by="ADD rootfs"), *junk_layers(),
                 layer(app, auto_dirs=True, created_by="COPY app /app"),
                 config={"config": {"Entrypoint": ["/app/main.py"], "Cmd": ["--flag"],
                                    "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "WorkingDir": "/app"}})


def has_python_minimal() -> bool:
    ok = subprocess.run(["dpkg-query", "-W", "python3.11-minimal"], capture_output=True).returncode == 0
    return ok and os.path.exists("/usr/bin/python3.11")


def run_entrypoint(rootfs: Path, config: dict) -> tuple[int, bytes, bytes]:
    """Run the image's Entrypoint + Cmd chrooted into ``rootfs``, in its WorkingDir with its Env."""
    cfg = config["config"]
    argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    env = dict(item.split("=", 1) for item in cfg.get("Env") or [])
    workdir = cfg.get("WorkingDir") or "/"

    def enter() -> None:
        os.chroot(rootfs)
        os.chdir(workdir)

    done = subprocess.run(argv, env=env, preexec_fn=enter, capture_output=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


CASES = [
    pytest.param(ls_image, (), id="a dynamically linked ELF program (ls with libselinux and libpcre2)"),
    pytest.param(shell_image, ("/srv/msg",), id="a dash script running coreutils"),
    pytest.param(python_image, (), id="a Python program started through env",
                 marks=pytest.mark.skipif(not has_python_minimal(), reason="needs Debian's python3.11-minimal")),
]
MODES = [
    pytest.param("distroless", "docker", "gzip", id="distroless to a docker archive"),
    pytest.param("distroless", "oci", "gzip", id="distroless to an OCI archive"),
    pytest.param("prune", "docker", "gzip", id="prune to a docker archive"),
]


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """Each case's original archive, its rootfs unpacked by umoci and what its entrypoint does."""
    cache = {}

    def get(build):
        if build not in cache:
            where = tmp_path_factory.mktemp(build.__name__)
            spec = build()
            archive = write(spec, where / "in.tar", "docker-legacy")
            rootfs = skopeo_unpack(archive, "docker", where)
            cache[build] = (archive, run_entrypoint(rootfs, spec.config))
        return cache[build]

    return get


@pytest.mark.parametrize("build, keep", CASES)
@pytest.mark.parametrize("mode, fmt, compression", MODES)
def test_slimmed_image_runs_like_the_original(tmp_path, originals, build, keep, mode, fmt, compression):
    """The slim image's entrypoint, run in a chroot, prints the same and exits the same as the
    original's; the slim image is smaller and every real tool accepts it."""
    archive, before = originals(build)
    assert before[0] == 0, before[2].decode(errors="replace")
    original = open_image(archive)
    out = tmp_path / "slim.tar"
    result = slim(original, SlimOptions(mode=mode, keep=keep, user="nonroot" if mode == "distroless" else None),
                  out, fmt, compression)
    img, rootfs = check_output(out, fmt, tmp_path)
    assert run_entrypoint(rootfs, img.config) == before
    assert result.after_bytes < result.before_bytes
    assert result.before_bytes - result.removed_bytes + result.added_bytes == result.after_bytes
    removed = {c.category for c in result.by_category}
    assert {"docs", "man", "cache", "shadowed"} <= removed
    assert not (rootfs / "usr/share/doc/tool/README").exists()
    assert not (rootfs / "usr/lib/gcc").exists() or not any((rootfs / "usr/lib/gcc").rglob("cc1"))


def test_distroless_ls_keeps_only_its_closure(tmp_path, originals):
    """Distroless keeps ls, the four objects ld.so maps for it and the base set: no cat, no libz."""
    archive, _ = originals(ls_image)
    out = tmp_path / "slim.tar"
    slim(open_image(archive), SlimOptions(mode="distroless"), out)
    _, rootfs = check_output(out, "docker", tmp_path)
    real = {os.path.realpath(p) for p in programs("ls")}  # the image mirrors this machine's layout
    files = {"/" + str(p.relative_to(rootfs)) for p in rootfs.rglob("*") if p.is_file() and not p.is_symlink()}
    assert real <= files
    assert not {f for f in files if "libz" in f or f.endswith("/cat")}
    assert {"/etc/passwd", "/etc/group", "/etc/nsswitch.conf"} <= files
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
