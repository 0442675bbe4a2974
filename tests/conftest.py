"""Shared fixtures. Images are built in code by ``builders``."""

import os
import tempfile

import pytest

from builders import WHITEOUT, Dir, File, Hardlink, ImageSpec, Symlink, image, layer

# The layer cache is on by default; tests (and the CLIs they start) get a fresh one of their own.
os.environ["SLIMMER_CACHE_DIR"] = tempfile.mkdtemp(prefix="slimmer-test-cache-")
# What the terminal or a CI runner sets would change widths, colours and dive's and slimmer's
# CI modes: tests that want one set it themselves.
for _name in ("CI", "COLUMNS", "NO_COLOR", "FORCE_COLOR"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def rich() -> ImageSpec:
    """A three-layer image: files, dirs, a symlink and a hardlink, then a whiteout and an
    opaque dir in the last layer, and empty-layer history steps between layers."""
    return image(
        layer({"bin": Dir(), "bin/sh": 2_000, "bin/bash": Hardlink("bin/sh"), "etc": Dir(),
               "etc/os-release": b"ID=test\n", "lib": Dir(), "usr": Dir(), "usr/lib": Symlink("../lib"),
               "tmp": Dir(mode=0o1777)}, created_by="ADD rootfs.tar /"),
        layer({"app": Dir(), "app/big.bin": 300_000, "app/cache": Dir(), "app/cache/a": 10,
               "app/cache/b": File(20, mode=0o600, uid=1000, gid=1000, mtime=1_700_000_000)},
              created_by="COPY app /app"),
        layer({"app/.wh.big.bin": WHITEOUT, "app/cache": Dir(), "app/cache/.wh..wh..opq": WHITEOUT,
               "app/cache/c": 5}, created_by="RUN cleanup"),
        entrypoint=["/bin/sh"], cmd=["-c", "true"],
        empty_steps=[(1, "ENV APP=/app"), 'CMD ["-c", "true"]'],
    )


@pytest.fixture(scope="session")
def pushed(tmp_path_factory):
    """Five repository:tags (one a multi-platform index) on one base, pushed with skopeo to the
    real registry, which is stopped again: its storage directory, and what `slimmer analyze`
    says of each image's own archive. Tests must not change the storage (copy it first)."""
    from pushed import push_fleet

    return push_fleet(tmp_path_factory.mktemp("pushed"))


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL cluster on 127.0.0.1 for the whole run (``Postgres.database`` makes
    each test a fresh database on it)."""
    from servers import Postgres

    pg = Postgres().start()
    yield pg
    pg.stop()
