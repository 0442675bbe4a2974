"""Faults around `slimmer export` (and `slimmer slim` once it exists): killed with SIGKILL
part-way, a full disk, and files the process may not read or write. Each leaves no file at the
destination, no temp files after the next run, and one `slimmer: error:` line."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

import hostile
from hostile import D, F, docker, fingerprint, run_cli, write_tar
from peak import run_slimmer

BIG_FILES = 4
BIG_FILE = 64 << 20


@pytest.fixture(autouse=True)
def cold_cache(tmp_path, monkeypatch):
    """Every test has a layer cache of its own."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


def big_archive(where: Path) -> Path:
    """A small docker archive whose one zstd layer expands to BIG_FILES files of 64 MiB of zeros."""
    cctx = zstandard.ZstdCompressor(level=1)
    zeros = b"\0" * BIG_FILE
    zeros_frame = cctx.compress(zeros)
    diff = hashlib.sha256()
    stored = b""
    for i in range(BIG_FILES):
        head = hostile.header(b"big%d" % i, b"0", BIG_FILE)
        diff.update(head)
        diff.update(zeros)
        stored += cctx.compress(head) + zeros_frame
    diff.update(b"\0" * 1024)
    stored += cctx.compress(b"\0" * 1024)
    layer = hostile.Blob(stored, "sha256:" + diff.hexdigest(), "zstd")
    return write_tar(hostile.docker_files([layer]), where / "big.tar")


def _slimmer(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "slimmer", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def _slim_available() -> bool:
    return run_cli("slim", "--help").code == 0


COMMANDS = [
    pytest.param(("export", "{dest}", "--to", "dir"), "root", id="export to a directory"),
    pytest.param(("export", "{dest}", "--to", "tar"), "root.tar", id="export to a tar"),
    pytest.param(("slim", "-o", "{dest}"), "slim.tar", id="slim", marks=[
        pytest.mark.skipif(not _slim_available(), reason="`slimmer slim` does not exist yet (issue 4)")]),
]


def _args(command: tuple, archive: Path, dest: Path) -> list[str]:
    return [command[0], str(archive), *(a.format(dest=dest) for a in command[1:])]


@pytest.mark.parametrize("command, name", COMMANDS)
def test_sigkill_leaves_nothing_at_dest_and_next_run_cleans_up(tmp_path, command, name):
    """SIGKILL part-way leaves DEST absent; the next run into the same directory removes the dead run's temp."""
    archive = big_archive(tmp_path)
    before = fingerprint(archive)
    out = tmp_path / "out"
    out.mkdir()
    dest = out / name
    proc = _slimmer(*_args(command, archive, dest))
    deadline = time.monotonic() + 30
    while not os.listdir(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.05)  # let it write a little
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not os.path.lexists(dest)
    assert os.listdir(out), "the killed run left no temp behind: it was not killed part-way"
    assert all(n.startswith(".slimmer-tmp-") for n in os.listdir(out)), os.listdir(out)
    small = docker([D("etc"), F("etc/motd", b"hi\n")])(tmp_path)
    again = run_cli(*_args(command, small, dest))
    assert again.exc is None and again.code == 0, again.err
    assert os.listdir(out) == [name]
    assert fingerprint(archive) == before


def _peak_rss_mb(tmp_path: Path, *args) -> float:
    run = run_slimmer(*args, report=tmp_path / "maxrss")
    assert run.returncode == 0, run.stderr.decode()
    return run.peak_mb


@pytest.mark.parametrize("to, name", [("dir", "root"), ("tar", "root.tar")], ids=["to a directory", "to a tar"])
def test_export_streams_files_in_bounded_memory(tmp_path, to, name):
    """Exporting 256 MiB of files takes no more memory than reading the image (a file is never held whole)."""
    archive = big_archive(tmp_path)
    reading = _peak_rss_mb(tmp_path, "analyze", archive, "--no-cache")
    exporting = _peak_rss_mb(tmp_path, "export", archive, tmp_path / name, "--to", to, "--no-cache")
    assert exporting < reading + 32, (reading, exporting)
    assert (tmp_path / name).exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs mounted for the test (skipped where mounting is not permitted)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("to, name", [("dir", "root"), ("tar", "root.tar")])
def test_disk_full_is_one_clear_error_and_no_output(tmp_path, tiny_disk, to, name):
    """A full disk mid-export gives one error line naming DEST and ENOSPC, and leaves the disk as it was."""
    archive = docker([D("data"), F("data/a", hostile._incompressible(300_000)),
                      F("data/b", hostile._incompressible(3_000_000))])(tmp_path)
    dest = tiny_disk / name
    run = run_cli("export", archive, dest, "--to", to)
    assert run.exc is None and run.code == 2
    assert run.err == f"slimmer: error: cannot write {dest}: No space left on device\n"
    assert os.listdir(tiny_disk) == []
    assert shutil.disk_usage(tiny_disk).used < 64 << 10


def _without_dac(*args: str) -> subprocess.CompletedProcess:
    """Run slimmer as root but without the capabilities that bypass file permissions."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                           "slimmer", *map(str, args)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("command", ["analyze", "export"])
def test_unreadable_archive(tmp_path, command):
    """An archive without read permission is one `cannot open ...: Permission denied` line, exit 2."""
    archive = docker([F("a", b"x")])(tmp_path)
    archive.chmod(0)
    out = tmp_path / "out"
    out.mkdir()
    done = _without_dac(command, archive, *([out / "root"] if command == "export" else []))
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"slimmer: error: cannot open {archive}: Permission denied\n"
    assert os.listdir(out) == []


def _unreadable_blob(tmp_path: Path) -> tuple[Path, Path]:
    layout = hostile.oci_dir([F("a", b"x")])(tmp_path)
    blob = next(p for p in (layout / "blobs" / "sha256").iterdir() if p.stat().st_size == 2048)
    blob.chmod(0)
    return layout, blob


@pytest.mark.parametrize("cache", [(), ("--no-cache",)], ids=["with the layer cache", "without the cache"])
def test_unreadable_layer_blob_is_one_error_line(tmp_path, cache):
    """A layout whose layer blob is unreadable gives one error line naming the blob, exit 2."""
    layout, blob = _unreadable_blob(tmp_path)
    done = _without_dac("analyze", layout, *cache)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("slimmer: error: ") and done.stderr.count("\n") == 1
    assert "Permission denied" in done.stderr and str(blob) in done.stderr


@pytest.mark.parametrize("cache", [
    pytest.param((), id="with the layer cache"),
    pytest.param(("--no-cache",), id="without the cache"),
])
def test_unreadable_layer_blob_says_cannot_read(tmp_path, cache):
    """The error for an unreadable layer blob reads `cannot read BLOB: Permission denied`."""
    layout, blob = _unreadable_blob(tmp_path)
    done = _without_dac("analyze", layout, *cache)
    assert done.stderr == f"slimmer: error: cannot read {blob}: Permission denied\n"


@pytest.mark.parametrize("to, name", [("dir", "root"), ("tar", "root.tar")])
def test_unwritable_destination(tmp_path, to, name):
    """A destination directory without write permission is one `cannot write` line and nothing written."""
    archive = docker([F("a", b"x")])(tmp_path)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    done = _without_dac("export", archive, out / name, "--to", to)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"slimmer: error: cannot write {out / name}: Permission denied\n"
    assert os.listdir(out) == []
