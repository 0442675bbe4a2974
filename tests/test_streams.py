"""Streams that are claims: sparse files stay sparse through export and slim, whatever GNU tar
format made them; piped input is refused in one line without aborting the interpreter, with
memory bounded by what the manifest can use; a terminal on standard input is refused at once."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from slimmer.reader import open_image

import hostile
from peak import run_slimmer

GIB = 1 << 30
REGIONS = {0: b"HEAD", 5_000_000_000: b"MIDDLE", 10 * GIB - 4: b"TAIL"}
SPARSE_FORMATS = {
    "old GNU (type S)": ["--format=gnu"],
    "PAX 0.0 (repeated offset/numbytes)": ["--format=pax", "--sparse-version=0.0"],
    "PAX 0.1 (GNU.sparse.map)": ["--format=pax", "--sparse-version=0.1"],
    "PAX 1.0 (the map in the data)": ["--format=pax", "--sparse-version=1.0"],
}
pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")


def _slimmer(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slimmer", *map(str, args)], capture_output=True, **kw)


def _sparse_archive(tmp_path: Path, flags: list[str]) -> Path:
    """A docker archive whose one layer is GNU tar's sparse member for a 10 GiB file holding
    three small regions (about 20 kB in all)."""
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big"
    with open(big, "wb") as f:
        f.truncate(10 * GIB)
        for offset, data in REGIONS.items():
            f.seek(offset)
            f.write(data)
    layer = tmp_path / "layer.tar"
    subprocess.run(["tar", *flags, "-S", "-cf", str(layer), "-C", str(src), "big"], check=True)
    tar = layer.read_bytes()
    assert len(tar) < 64 << 10
    return hostile.write_tar(hostile.docker_files([hostile.blob(tar)]), tmp_path / "image.tar")


def _check_regions(path: Path) -> None:
    st = os.stat(path)
    assert st.st_size == 10 * GIB
    assert st.st_blocks * 512 < 1 << 20, "the holes were written as zeros"
    with open(path, "rb") as f:
        for offset, data in REGIONS.items():
            f.seek(offset)
            assert f.read(len(data)) == data
        f.seek(1_000_000)
        assert f.read(16) == bytes(16)


@pytest.mark.parametrize("flags", SPARSE_FORMATS.values(), ids=SPARSE_FORMATS.keys())
def test_a_10_gib_sparse_file_stays_sparse_through_export_and_slim(tmp_path, flags):
    """analyze reports the file's real size; a directory export has holes where the file has
    them; a tar export and a slim image stay tiny, and GNU tar extracts them to the same file."""
    archive = _sparse_archive(tmp_path, flags)
    started = time.monotonic()
    done = _slimmer("analyze", archive, "--json", "--no-cache", check=True)
    assert json.loads(done.stdout)["largest_files"][0] == {"path": "/big", "size_bytes": 10 * GIB, "layer": 0}

    _slimmer("export", archive, tmp_path / "root", "--no-cache", check=True)
    _check_regions(tmp_path / "root" / "big")

    _slimmer("export", archive, tmp_path / "root.tar", "--no-cache", check=True)
    assert (tmp_path / "root.tar").stat().st_size < 64 << 10
    (tmp_path / "untar").mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "root.tar"), "-C", str(tmp_path / "untar")], check=True)
    _check_regions(tmp_path / "untar" / "big")

    _slimmer("slim", archive, "-o", tmp_path / "slim.tar", "--no-cache", check=True)
    assert (tmp_path / "slim.tar").stat().st_size < 64 << 10
    entry = next(e for e in open_image(tmp_path / "slim.tar").layers[0].entries if e.path == "big")
    assert entry.size == 10 * GIB and entry.offset == -1
    _slimmer("export", tmp_path / "slim.tar", tmp_path / "slim-root", "--no-cache", check=True)
    _check_regions(tmp_path / "slim-root" / "big")
    assert time.monotonic() - started < 60


def test_a_sparse_file_past_the_limit_is_refused_by_every_command(tmp_path):
    """The size a sparse file claims counts against --max-layer-size, as the bytes of a layer do."""
    archive = _sparse_archive(tmp_path, SPARSE_FORMATS["PAX 1.0 (the map in the data)"])
    for args in (("analyze", archive), ("export", archive, tmp_path / "root"),
                 ("slim", archive, "-o", tmp_path / "s.tar")):
        done = _slimmer(*args, "--max-layer-size", "1GiB", "--no-cache", text=True)
        assert done.returncode == 2 and "--max-layer-size" in done.stderr and done.stderr.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["image.tar", "layer.tar", "src"]


# ---- pipes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10_000, 10_000_000], ids=["10 kB", "10 MB"])
def test_random_bytes_on_a_pipe_are_one_error_line_and_no_abort(size):
    """Refused input from a pipe, small or past the first megabyte: one line, exit 2, and the
    interpreter exits cleanly (no 'Fatal Python error' from a thread still holding stdin)."""
    junk = os.urandom(size)
    for extra in ((), ("--jobs", "1")):
        done = _slimmer("analyze", "-", *extra, input=junk, timeout=60)
        err = done.stderr.decode()
        assert done.returncode == 2, err
        assert err.startswith("slimmer: error: <stdin>: ") and err.count("\n") == 1, err
        assert "Fatal Python error" not in err


def test_big_members_the_manifest_does_not_use_are_not_kept_from_a_pipe(tmp_path):
    """An archive on a pipe with 24 members of 48 MB that are neither layers nor JSON is read in
    bounded memory: they pass by without being kept."""
    files = hostile.docker_files([hostile.blob(hostile.raw_tar([hostile.F("a", b"x")]))])
    junk = os.urandom(1 << 20) * 48
    path = tmp_path / "image.tar"
    with tarfile.open(path, "w") as tf:
        for i in range(24):
            info = tarfile.TarInfo(f"junk/{i}.bin")
            info.size = len(junk)
            with open(tmp_path / "j", "wb") as f:
                f.write(junk)
            with open(tmp_path / "j", "rb") as f:
                tf.addfile(info, f)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            with open(tmp_path / "j", "wb") as f:
                f.write(data)
            with open(tmp_path / "j", "rb") as f:
                tf.addfile(info, f)
    done = run_slimmer("analyze", "-", "--json", report=tmp_path / "peak", stdin_path=path)
    assert done.returncode == 0, done.stderr
    assert done.peak_mb < 150, f"peak {done.peak_mb:.0f} MB"


def test_a_terminal_on_standard_input_is_refused_at_once():
    """`slimmer analyze -` with a terminal as standard input does not wait: one line, exit 2."""
    leader, follower = pty.openpty()
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "slimmer", "analyze", "-"], stdin=follower,
                              capture_output=True, text=True, timeout=30)
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 2
    assert done.stderr.startswith("slimmer: error: standard input is a terminal") and done.stderr.count("\n") == 1
    assert time.monotonic() - started < 10
