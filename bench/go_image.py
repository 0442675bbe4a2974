"""Build the few-large-files benchmark archive: a single-stage Go image of about 1.2 GB in 3 layers.

    python bench/go_image.py            # writes bench/out/go-single.tar (a few minutes: it builds Go's std)

Built from this machine's files as bench/slim_go.py builds its single-stage image (needs
Debian's golang-go): layer 0 a small Debian base, layer 1 the Go toolchain (every file of the
golang packages), layer 2 the sources, the build cache a CI build of a Go monorepo leaves in
/root/.cache/go-build (here: Go's std and cmd built three ways, -a, -N -l and -trimpath) and
the built /app/hello. Mostly large files: reading it is bound by hashing its bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from slim_go import build_go, single_stage_layers, write_image

OUT = HERE / "out"
FLAGS = ((), ("-gcflags=all=-N -l",), ("-trimpath",))


def build_cache(work: Path) -> Path:
    """Build Go's std and cmd with each of FLAGS into one GOCACHE; return it."""
    cache = work / "go-build"
    env = dict(os.environ, GOCACHE=str(cache), CGO_ENABLED="0", GOPATH=str(work / "gopath"), HOME=str(work))
    for flags in FLAGS:
        subprocess.run(["/usr/bin/go", "build", "-a", *flags, "std", "cmd"], env=env, check=True,
                       capture_output=True)
    return cache


def build(out: Path) -> Path:
    work = OUT / "go-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src, _small = build_go(work)
    layers = single_stage_layers(work, src, build_cache(work),
                                 "COPY . /src && RUN go build ./... && go build -o /app/hello", tmp=False)
    write_image(layers, out, "bench/hello:single-large", "/src")
    shutil.rmtree(work, ignore_errors=True)
    return out


if __name__ == "__main__":
    target = OUT / "go-single.tar"
    print(build(target))
