"""Generate a large, realistic `docker save` archive for the benchmark, deterministically.

The image looks like a single-stage build: a base rootfs, a toolchain tree, node_modules-like
trees of many small files, a few large files, a build cache deleted in a later layer and files
overwritten later. The same arguments give the same bytes.

    python bench/generate.py OUT.tar [--scale 1.0]

At scale 1.0: about 2.1 GB, 170,000 tar entries and 155,000 files in the final filesystem over 12 layers.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import tarfile
import tempfile
from pathlib import Path

MTIME = 1_700_000_000


class Content:
    """Cheap deterministic bytes: slices of one 4 MiB random pool."""

    def __init__(self, seed: int):
        rnd = random.Random(seed)
        self.pool = rnd.randbytes(4 << 20)
        self.rnd = rnd

    def stream(self, size: int):
        start = self.rnd.randrange(0, len(self.pool) - 1)
        left = size
        while left:
            n = min(left, len(self.pool) - start)
            yield self.pool[start:start + n]
            left -= n
            start = 0


class ChunkReader(io.RawIOBase):
    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buf = b""

    def readable(self):
        return True

    def readinto(self, b):
        while not self.buf:
            try:
                self.buf = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


def _info(name: str, kind=tarfile.REGTYPE, size=0, mode=0o644, link="") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = MTIME
    info.linkname = link
    return info


class LayerWriter:
    def __init__(self, content: Content, tmpdir: str):
        self.f = tempfile.NamedTemporaryFile(dir=tmpdir, delete=False)
        self.tar = tarfile.open(fileobj=self.f, mode="w", format=tarfile.PAX_FORMAT)
        self.content = content
        self.dirs: set[str] = set()
        self.files = 0

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                self.tar.addfile(_info(d + "/", tarfile.DIRTYPE, mode=0o755))

    def file(self, path: str, size: int, mode: int = 0o644) -> None:
        self._parents(path)
        data = io.BufferedReader(ChunkReader(self.content.stream(size)), 1 << 20)
        self.tar.addfile(_info(path, size=size, mode=mode), data)
        self.files += 1

    def whiteout(self, path: str) -> None:
        d, _, name = path.rpartition("/")
        self._parents(path)
        self.tar.addfile(_info(f"{d}/.wh.{name}" if d else f".wh.{name}"))

    def symlink(self, path: str, target: str) -> None:
        self._parents(path)
        self.tar.addfile(_info(path, tarfile.SYMTYPE, link=target, mode=0o777))

    def close(self) -> str:
        self.tar.close()
        self.f.close()
        return self.f.name


def _sizes(rnd: random.Random, n: int, mean: int) -> list[int]:
    return [max(0, int(rnd.expovariate(1 / mean))) for _ in range(n)]


def build_layers(scale: float, tmpdir: str, variant: int = 0) -> list[tuple[str, str]]:
    """Write the layer tars; return (path, created_by) for each. Another ``variant`` changes
    only the last layer (a second image on the same base, for the layer cache)."""
    content = Content(42)
    rnd = random.Random(7)
    s = lambda n: max(1, int(n * scale))  # noqa: E731
    layers = []

    w = LayerWriter(content, tmpdir)  # base rootfs
    for d in ("bin", "sbin", "usr/bin", "usr/lib/x86_64-linux-gnu", "etc", "usr/share/doc", "usr/share/man/man1"):
        for i, size in enumerate(_sizes(rnd, s(600), 20_000)):
            w.file(f"{d}/f{i:05d}", size, 0o755 if "bin" in d else 0o644)
    w.file("etc/passwd", 900)
    w.symlink("usr/bin/sh", "/bin/dash")
    layers.append((w.close(), "/bin/sh -c #(nop) ADD file:0123 in / "))

    w = LayerWriter(content, tmpdir)  # apt-get install build-essential
    for i, size in enumerate(_sizes(rnd, s(3000), 30_000)):
        w.file(f"usr/lib/gcc/x86_64-linux-gnu/12/include/h{i:05d}.h", size)
    for i in range(s(40)):
        w.file(f"var/lib/apt/lists/deb_{i:03d}_Packages", 1_000_000)
    for i in range(s(60)):
        w.file(f"var/cache/apt/archives/pkg{i:03d}.deb", 1_500_000)
    w.file("usr/lib/gcc/x86_64-linux-gnu/12/cc1", 30_000_000, 0o755)
    layers.append((w.close(), "/bin/sh -c apt-get update && apt-get install -y build-essential"))

    w = LayerWriter(content, tmpdir)  # Go toolchain
    for i, size in enumerate(_sizes(rnd, s(14000), 18_000)):
        w.file(f"usr/local/go/src/pkg{i % 300:03d}/file{i:05d}.go", size)
    for tool in ("compile", "link", "asm", "vet", "cgo"):
        w.file(f"usr/local/go/pkg/tool/linux_amd64/{tool}", s(20_000_000), 0o755)
    w.file("usr/local/go/bin/go", 15_000_000, 0o755)
    layers.append((w.close(), "/bin/sh -c #(nop) COPY dir:go in /usr/local/go "))

    for part in range(4):  # node_modules-like: many small files
        w = LayerWriter(content, tmpdir)
        for i, size in enumerate(_sizes(rnd, s(33000), 2_500)):
            w.file(f"app/node_modules/pkg{part}_{i // 40:04d}/lib/m{i:05d}.js", size)
        layers.append((w.close(), f"/bin/sh -c npm ci --workspace part{part}"))

    w = LayerWriter(content, tmpdir)  # build cache and build output
    for i, size in enumerate(_sizes(rnd, s(8000), 40_000)):
        w.file(f"root/.cache/go-build/{i % 256:02x}/{i:06x}-d", size)
    w.file("app/server", 25_000_000, 0o755)
    w.file("app/data/model.bin", s(300_000_000))
    layers.append((w.close(), "/bin/sh -c go build -o /app/server ./cmd/server"))

    w = LayerWriter(content, tmpdir)  # cleaned too late
    w.whiteout("root/.cache/go-build")
    w.whiteout("var/cache/apt/archives")
    layers.append((w.close(), "/bin/sh -c rm -rf /root/.cache/go-build /var/cache/apt/archives"))

    w = LayerWriter(content, tmpdir)  # overwrite big files
    w.file("app/data/model.bin", s(300_000_000))
    w.file("app/server", 25_000_000, 0o755)
    layers.append((w.close(), "/bin/sh -c #(nop) COPY file:model in /app/data/ "))

    w = LayerWriter(content, tmpdir)
    for i, size in enumerate(_sizes(rnd, s(2000), 5_000)):
        w.file(f"app/static/asset{i:05d}.css", size)
    layers.append((w.close(), "/bin/sh -c #(nop) COPY dir:static in /app/static "))

    w = LayerWriter(content, tmpdir)
    w.file("app/config.yaml", 4_000 + variant)
    layers.append((w.close(), "/bin/sh -c #(nop) COPY file:cfg in /app/config.yaml "))
    return layers


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_archive(out: Path, scale: float = 1.0, tag: str = "bench/app:latest", variant: int = 0) -> Path:
    """Write the benchmark image as a legacy `docker save` archive at ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmpdir:
        layers = build_layers(scale, tmpdir, variant)
        diff_ids = [_sha256_file(p) for p, _ in layers]
        history = []
        for _, step in layers:
            history.append({"created": "2024-01-01T00:00:00Z", "created_by": step})
        history.insert(1, {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop)  ENV GOPATH=/go",
                           "empty_layer": True})
        config = {
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Entrypoint": ["/app/server"], "Env": ["PATH=/usr/local/go/bin:/usr/bin:/bin"],
                       "WorkingDir": "/app"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
            "history": history,
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        tmp_out = out.with_name(out.name + ".tmp")
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            names = []
            for (path, _), d in zip(layers, diff_ids):
                tar.addfile(_info(d + "/", tarfile.DIRTYPE, mode=0o755))
                info = _info(f"{d}/layer.tar", size=os.path.getsize(path))
                with open(path, "rb") as f:
                    tar.addfile(info, f)
                names.append(f"{d}/layer.tar")
            for name, data in ((config_name, config_bytes),
                               ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [tag],
                                                              "Layers": names}]).encode())):
                tar.addfile(_info(name, size=len(data)), io.BytesIO(data))
        os.replace(tmp_out, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    write_archive(args.out, args.scale)
    print(args.out, os.path.getsize(args.out))


if __name__ == "__main__":
    main()
