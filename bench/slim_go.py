"""Benchmark `slimmer slim` on the image the product exists for: a single-stage Go image.

    python bench/slim_go.py               # build, slim, measure, print (about a minute)
    python bench/slim_go.py --keep-work   # and leave the archives in the work directory

Needs Debian's golang-go (`apt-get install -y golang-go`), skopeo and umoci; the run check
(chroot) needs root.

Images, built in code from this machine's files (no Docker):
- single-stage, as `FROM golang` + `COPY . /src` + `RUN go build` gives it: layer 0 a small
  Debian base (files of base-files, libc6, dash, bash, coreutils, tzdata, ca-certificates, ...
  with the CA bundle and /etc/passwd), layer 1 the real Go toolchain (every file of the
  golang-go, golang-1.19-go, golang-1.19-src and golang-src packages), layer 2 the source in
  /src, the real build cache of `go build` in /root/.cache/go-build and the built /app/hello;
  CMD ["/app/hello"].
- multi-stage "just the binary": `FROM scratch` + `COPY --from=build /app/hello`.
- multi-stage "scratch + certs + zoneinfo": the same plus the CA bundle and
  /usr/share/zoneinfo, the usual hand-made image for a Go program that talks TLS or uses time
  zones (what gcr.io/distroless/static also holds).

Measured (sizes three ways: file bytes of the merged filesystem, the docker-archive file, and
an OCI archive with gzip layers): `slim --mode distroless` (default, tzdata kept),
`slim --mode distroless --no-tzdata`, and `slim --mode prune`, each against the multi-stage
images (target: within 1.25x), and the share of toolchain + build-cache bytes that prune
removes (target: at least 80 %). Each slim image is also unpacked with skopeo + umoci and its
entrypoint run in a chroot: the output must equal the multi-stage image's.

Notes from a run (Debian 12, go 1.19, 2 shared cores; nothing below is used by the code, which
measures afresh each time):

    image                             file bytes    docker tar      OCI gzip   slim time
    single-stage                     529,083,834   559,063,040   158,084,096
    multi-stage (binary)               1,827,625     1,843,200     1,121,792
    multi-stage (+certs, zoneinfo)     3,359,154     5,642,240     1,647,104
    slim distroless                    3,362,030     5,662,720     1,653,248   5.3 s
    slim distroless --no-tzdata        2,050,098     2,088,960     1,251,328   3.0 s
    slim prune                        28,113,571    31,733,760    12,384,256   6.6 s

- prune removed 477,650,553 of the 477,729,609 toolchain + build-cache bytes (100.0 %); the
  79,056 B left are the packages' copyright files (kept as licences) and lintian overrides.
- distroless (default, tzdata kept) is 1.00x the "+certs, zoneinfo" multi-stage image but
  1.84x (file bytes) / 3.07x (docker tar: ~600 small zoneinfo files) / 1.47x (OCI gzip) the
  binary-only one: the 1.5 MB time zone database and the 220 kB CA bundle are the difference.
  With --no-tzdata it is 1.12x / 1.13x / 1.12x the binary-only image.
- every slim image ran /app/hello in a chroot with the multi-stage image's output.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from slimmer.model import HistoryStep, Image, Layer, with_layers
from slimmer.rewriter.writer import write_docker_archive
from slimmer.tar.scan import TarScanner

GO_PACKAGES = ("golang-go", "golang-1.19-go", "golang-1.19-src", "golang-src")
BASE_PACKAGES = ("base-files", "netbase", "libc6", "libgcc-s1", "dash", "bash", "coreutils", "libselinux1",
                 "libpcre2-8-0", "libacl1", "libattr1", "libtinfo6", "libcrypt1", "debianutils", "sed", "grep",
                 "findutils", "gzip", "tar", "tzdata", "ca-certificates")
BASE_EXTRA = ("/etc/ssl/certs/ca-certificates.crt", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
              "/etc/ld.so.conf", "/etc/ld.so.conf.d/x86_64-linux-gnu.conf", "/etc/ld.so.conf.d/libc.conf",
              "/bin", "/lib", "/lib64", "/sbin")
GO_SOURCE = """package main

import (
\t"fmt"
\t"os"
\t"runtime"
)

func main() {
\tfmt.Printf("hello from %s/%s, args %v\\n", runtime.GOOS, runtime.GOARCH, os.Args[1:])
}
"""
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOCACHE=/root/.cache/go-build"]


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def package_files(packages) -> list[str]:
    """Return the files, symlinks and directories the dpkg packages installed here."""
    listed = run(["dpkg", "-L", *packages]).stdout.split("\n")
    return sorted({p for p in listed if p.startswith("/") and p != "/." and os.path.lexists(p)})


class LayerWriter:
    """A layer tar written straight to disk from host paths (never held in memory)."""

    def __init__(self, path: Path):
        self.path = path
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
        self.seen: set[str] = set()

    def add_host(self, host: str, arcname: str | None = None) -> None:
        name = (arcname or host).strip("/")
        parts = name.split("/")
        for i in range(1, len(parts)):
            self._add(("/" + "/".join(parts[:i])) if arcname is None else None, "/".join(parts[:i]))
        self._add(host, name)

    def _add(self, host: str | None, name: str) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        if host is None or not os.path.lexists(host):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            self.tar.addfile(info)
            return
        self.tar.add(host, arcname=name, recursive=False)

    def add_tree(self, host: str, arcname: str) -> None:
        self.add_host(host, arcname)
        for root, dirs, files in os.walk(host):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(root, name)
                self.add_host(full, arcname + full[len(host):])

    def close(self) -> None:
        self.tar.close()


def model_layer(path: Path, step: str) -> Layer:
    """Return the tar at ``path`` as a model Layer (entries scanned, diff_id hashed)."""
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


def write_image(layers: list[Layer], out: Path, tag: str, workdir: str) -> Path:
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Env": ENV, "Cmd": ["/app/hello"], "WorkingDir": workdir}}
    img = with_layers(Image(config=config, layers=(), tags=(tag,)), tuple(layers),
                      tuple(lay.history for lay in layers))
    write_docker_archive(img, out)
    return out


def build_go(work: Path) -> tuple[Path, Path]:
    """Build /app/hello the way the single-stage Dockerfile does; return (source dir, cache)."""
    src = work / "src"
    src.mkdir()
    (src / "main.go").write_text(GO_SOURCE)
    (src / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n")
    cache = work / "go-build"
    env = dict(os.environ, GOCACHE=str(cache), CGO_ENABLED="0", GOFLAGS="-trimpath", GOPATH=str(work / "gopath"),
               HOME=str(work))
    run(["/usr/bin/go", "build", "-o", str(work / "hello"), "."], cwd=src, env=env)
    return src, cache


def single_stage_layers(work: Path, src: Path, cache: Path, build_step: str, tmp: bool = True) -> list[Layer]:
    """The three layers of a single-stage Go build: a small Debian base (with /tmp when
    ``tmp``), the Go toolchain (every file of the golang packages), and the sources, the build
    cache ``cache`` as /root/.cache/go-build and the built work/hello as /app/hello."""
    base = LayerWriter(work / "l0-base.tar")
    for path in package_files(BASE_PACKAGES) + list(BASE_EXTRA):
        if os.path.lexists(path):
            base.add_host(path)
    if tmp:
        base.add_host("/tmp", "tmp")
    base.close()
    toolchain = LayerWriter(work / "l1-go.tar")
    for path in package_files(GO_PACKAGES):
        toolchain.add_host(path)
    toolchain.close()
    app = LayerWriter(work / "l2-app.tar")
    app.add_tree(str(src), "src")
    app.add_tree(str(cache), "root/.cache/go-build")
    app.add_host(str(work / "hello"), "app/hello")
    app.close()
    return [model_layer(work / "l0-base.tar", "ADD debian-base.tar /"),
            model_layer(work / "l1-go.tar", "RUN apt-get install -y golang-go"),
            model_layer(work / "l2-app.tar", build_step)]


def build_images(work: Path) -> dict[str, Path]:
    src, cache = build_go(work)
    single = single_stage_layers(work, src, cache, "COPY . /src && RUN go build -o /app/hello")
    binary = LayerWriter(work / "m-bin.tar")
    binary.add_host(str(work / "hello"), "app/hello")
    binary.close()
    scratch_plus = LayerWriter(work / "m-plus.tar")
    scratch_plus.add_host("/etc/ssl/certs/ca-certificates.crt", "etc/ssl/certs/ca-certificates.crt")
    scratch_plus.add_tree("/usr/share/zoneinfo", "usr/share/zoneinfo")
    scratch_plus.add_host(str(work / "hello"), "app/hello")
    scratch_plus.close()
    return {
        "single": write_image(single, work / "single-stage.tar", "bench/hello:single", "/src"),
        "multi": write_image([model_layer(work / "m-bin.tar", "COPY --from=build /app/hello /app/hello")],
                             work / "multi-stage.tar", "bench/hello:multi", "/"),
        "multi+": write_image([model_layer(work / "m-plus.tar", "COPY --from=build certs, zoneinfo, /app/hello")],
                              work / "multi-stage-plus.tar", "bench/hello:multi-plus", "/"),
    }


def slimmer(*args: str) -> tuple[dict, float]:
    start = time.perf_counter()
    done = run([sys.executable, "-m", "slimmer", *args, "--json"], cwd=HERE.parent)
    return json.loads(done.stdout), time.perf_counter() - start


def file_bytes(archive: Path) -> int:
    from slimmer.layers import merge
    from slimmer.reader import open_image

    return sum(v.entry.size for _p, v in merge(open_image(archive)).files())


def oci_gzip_size(archive: Path, work: Path) -> int:
    out = work / (archive.stem + ".oci.tar")
    run(["skopeo", "copy", "-q", "--dest-compress-format", "gzip", f"docker-archive:{archive}",
         f"oci-archive:{out}:img"])
    size = out.stat().st_size
    out.unlink()
    return size


def run_in_chroot(archive: Path, work: Path) -> str:
    """Unpack ``archive`` with skopeo + umoci and run /app/hello in a chroot; return stdout."""
    layout, bundle = work / (archive.stem + ".layout"), work / (archive.stem + ".bundle")
    run(["skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{layout}:img"])
    run(["umoci", "unpack", "--image", f"{layout}:img", str(bundle)])
    rootfs = bundle / "rootfs"
    done = subprocess.run(["/app/hello", "bench"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          preexec_fn=lambda: (os.chroot(rootfs), os.chdir("/")))
    shutil.rmtree(layout)
    shutil.rmtree(bundle)
    if done.returncode != 0:
        raise SystemExit(f"{archive.name}: /app/hello failed in the chroot: {done.stderr}")
    return done.stdout


def toolchain_and_cache(archive: Path) -> dict[str, int]:
    """Return bytes of Go toolchain files and of the build cache in ``archive``'s filesystem."""
    from slimmer.layers import merge
    from slimmer.reader import open_image

    go_paths = {p.lstrip("/") for p in package_files(GO_PACKAGES)}
    out = {"toolchain": 0, "cache": 0}
    for path, version in merge(open_image(archive)).files():
        if path.startswith("root/.cache/go-build/"):
            out["cache"] += version.entry.size
        elif path in go_paths:
            out["toolchain"] += version.entry.size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-work", action="store_true", help="Leave the archives in the work directory.")
    parser.add_argument("--workdir", help="Where to build (default: a temp dir).")
    args = parser.parse_args()
    if not Path("/usr/bin/go").exists():
        raise SystemExit("needs Debian's Go toolchain: apt-get install -y golang-go")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="slimmer-bench-go-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report(work)
    finally:
        if args.keep_work:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(work: Path) -> None:
    t0 = time.perf_counter()
    images = build_images(work)
    print(f"built the images in {time.perf_counter() - t0:.1f} s")
    runs = {
        "distroless": ["--mode", "distroless"],
        "distroless --no-tzdata": ["--mode", "distroless", "--no-tzdata"],
        "prune": ["--mode", "prune"],
    }
    outs: dict[str, Path] = {}
    timing: dict[str, float] = {}
    for name, flags in runs.items():
        out = work / (name.replace(" ", "").replace("--", "-") + ".tar")
        _summary, timing[name] = slimmer("slim", str(images["single"]), "-o", str(out), *flags)
        outs[name] = out
    rows = {}
    for name, path in [("single-stage", images["single"]), ("multi-stage (binary)", images["multi"]),
                       ("multi-stage (+certs, zoneinfo)", images["multi+"])] + [(f"slim {k}", v)
                                                                               for k, v in outs.items()]:
        rows[name] = (file_bytes(path), path.stat().st_size, oci_gzip_size(path, work))
    print()
    print(f"{'image':34} {'file bytes':>13} {'docker tar':>13} {'OCI gzip':>13}   slim time")
    for name, (fb, tb, gz) in rows.items():
        t = timing.get(name.removeprefix("slim "))
        print(f"{name:34} {fb:13,} {tb:13,} {gz:13,}   {'' if t is None else f'{t:.1f} s'}")
    print()
    multi, plus = rows["multi-stage (binary)"], rows["multi-stage (+certs, zoneinfo)"]
    for name in runs:
        r = rows["slim " + name]
        print(f"slim {name:24} vs binary-only:   " + "  ".join(f"{r[i] / multi[i]:.2f}x" for i in range(3)) +
              "   vs +certs/zoneinfo: " + "  ".join(f"{r[i] / plus[i]:.2f}x" for i in range(3)) +
              "   (file bytes, docker tar, OCI gzip)")
    before = toolchain_and_cache(images["single"])
    after = toolchain_and_cache(outs["prune"])
    total = before["toolchain"] + before["cache"]
    removed = total - after["toolchain"] - after["cache"]
    print()
    print(f"toolchain {before['toolchain']:,} B + build cache {before['cache']:,} B = {total:,} B in the single-stage "
          f"image; prune removed {removed:,} B = {removed / total * 100:.1f} % (target >= 80 %)")
    if os.geteuid() == 0 and shutil.which("umoci"):
        expected = run_in_chroot(images["multi"], work)
        for name, path in outs.items():
            got = run_in_chroot(path, work)
            print(f"slim {name}: /app/hello in a chroot prints {got.strip()!r}: "
                  f"{'same as' if got == expected else 'DIFFERENT FROM'} the multi-stage image")
    else:
        print("(not root or no umoci: the chroot run check was skipped)")


if __name__ == "__main__":
    main()
