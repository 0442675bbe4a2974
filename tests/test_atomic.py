"""slimmer.atomic, the one staged-output helper: a file or directory appears whole or not at all,
two writers of one destination never share a temp, a failure leaves no temp, and the temps of a
killed run (its pid gone) are removed while a live run's are not."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from slimmer import atomic
from slimmer.atomic import (
    TEMP_PREFIX,
    atomic_dir,
    atomic_file,
    remove_stale_temps,
    scratch_dir,
    temp_path,
    write_bytes,
)
from slimmer.errors import OutputError

from builders import image, layer, write


def temps(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith(TEMP_PREFIX))


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_file_appears_whole_only_when_the_block_ends(tmp_path):
    """Inside the block the destination keeps its old bytes; after it, the new ones, and no temp is left."""
    dest = tmp_path / "report.txt"
    dest.write_bytes(b"old")
    with atomic_file(dest) as out:
        out.write(b"new ")
        out.flush()
        assert dest.read_bytes() == b"old"
        assert len(temps(tmp_path)) == 1
        out.write(b"bytes")
    assert dest.read_bytes() == b"new bytes"
    assert temps(tmp_path) == []


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyboardInterrupt()], ids=["an error", "an interrupt"])
def test_a_failing_block_leaves_the_destination_and_no_temp(tmp_path, exc):
    """When the block raises, the old destination stays as it was and the temp file is gone."""
    dest = tmp_path / "report.txt"
    dest.write_bytes(b"old")
    with pytest.raises(type(exc)), atomic_file(dest) as out:
        out.write(b"half")
        raise exc
    assert dest.read_bytes() == b"old"
    assert temps(tmp_path) == []


def test_an_os_error_in_the_block_is_an_output_error_naming_the_destination(tmp_path):
    """An OSError while writing becomes an OutputError naming the destination (and the what, if given)."""
    dest = tmp_path / "check.xml"
    message = f"cannot write the JUnit report to {dest}: No space left on device"
    with pytest.raises(OutputError, match=message), atomic_file(dest, "JUnit report"):
        raise OSError(28, "No space left on device")
    assert os.listdir(tmp_path) == []


def test_a_missing_directory_is_an_output_error(tmp_path):
    """A destination in a directory that does not exist gives an OutputError naming it."""
    dest = tmp_path / "no" / "such" / "report.html"
    with pytest.raises(OutputError, match=f"cannot write the HTML report to {dest}: No such file or directory"):
        write_bytes(dest, b"x", "HTML report")


def test_the_file_and_its_directory_are_fsynced(tmp_path, monkeypatch):
    """The data is fsynced before the rename and the directory after it."""
    synced: list[tuple[str, bool]] = []
    real = os.fsync
    dest = tmp_path / "out.bin"

    def fsync(fd):
        synced.append(("renamed" if dest.exists() else "staged", stat.S_ISDIR(os.fstat(fd).st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_bytes(dest, b"data")
    assert synced == [("staged", False), ("renamed", True)]


def test_a_file_written_past_the_write_out_window_holds_exactly_its_bytes(tmp_path, monkeypatch):
    """Every WRITEBACK bytes the staged file goes to the kernel and a thread of its own flushes
    it to disk while the block still runs; small writes, a seek back to patch the start (as the
    in-place archive writer does) and the bytes after it all land as written, and the thread
    is gone once the file is committed."""
    monkeypatch.setattr(atomic, "WRITEBACK", 4096)
    dest = tmp_path / "out.bin"
    pieces = [bytes([i % 251]) * (100 + i) for i in range(200)]
    with atomic_file(dest, buffering=1 << 16) as out:  # a buffer larger than all the bytes
        out.write(bytes(512))
        for piece in pieces:
            out.write(piece)
        (staged,) = temps(tmp_path)
        assert os.path.getsize(tmp_path / staged) > 512 + sum(map(len, pieces)) - 4096  # not held in the buffer
        assert "slimmer-datasync" in {t.name for t in threading.enumerate()}
        out.seek(0)
        out.write(b"head")
    assert dest.read_bytes() == b"head" + bytes(508) + b"".join(pieces)
    assert "slimmer-datasync" not in {t.name for t in threading.enumerate()}


def test_a_flush_that_fails_while_the_file_grows_fails_the_commit(tmp_path, monkeypatch):
    """The kernel reports a failed write-back to one flush only: when the syncing thread's
    fdatasync fails (EIO, injected here: no disk can be made to fail on cue), the commit is an
    OutputError naming the destination, which keeps its old bytes, and no temp is left."""
    monkeypatch.setattr(atomic, "WRITEBACK", 4096)

    called = threading.Event()

    def failing(fd: int) -> None:
        called.set()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(atomic, "_datasync", failing)
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(OutputError, match=f"cannot write {dest}: Input/output error"), atomic_file(dest) as out:
        out.write(bytes(10_000))
        assert called.wait(10)
    assert dest.read_bytes() == b"old"
    assert temps(tmp_path) == []


def test_temp_names_are_unique_per_process_and_per_call(tmp_path):
    """Temp names carry the pid and a random part: two calls never share one."""
    a, b = temp_path(tmp_path), temp_path(tmp_path)
    assert a != b
    for name in (a, b):
        assert os.path.basename(name).startswith(f"{TEMP_PREFIX}{os.getpid()}-")


WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from slimmer.atomic import atomic_file
    dest, me, other, fill = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4].encode()
    with atomic_file(dest, "HTML report") as out:
        out.write(fill * 100_000)
        out.flush()
        me.touch()
        deadline = time.monotonic() + 20
        while not other.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert other.exists(), "the other writer never started"
        out.write(fill * 100_000)
""")


def test_two_processes_writing_one_report_at_once_do_not_collide(tmp_path):
    """Two processes staging the same path at the same moment both succeed; the result is one of them, whole."""
    dest = tmp_path / "report.html"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(dest), str(tmp_path / f"ready-{me}"),
                               str(tmp_path / f"ready-{other}"), me], stderr=subprocess.PIPE)
             for me, other in (("a", "b"), ("b", "a"))]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert dest.read_bytes() in (b"a" * 200_000, b"b" * 200_000)
    assert temps(tmp_path) == []


def test_two_analyze_runs_writing_one_html_report_at_once_both_succeed(tmp_path):
    """Two `slimmer analyze --html --force` runs started together on one report path both exit 0 and leave one
    whole page."""
    archive = write(image(layer({"app/bin": 30_000, "usr/share/doc/x": 2_000})), tmp_path / "app.tar", "docker-legacy")
    report = tmp_path / "out" / "report.html"
    report.parent.mkdir()
    env = {**os.environ, "SLIMMER_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "slimmer", "analyze", str(archive), "--html", str(report), "--force"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) for _ in range(2)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    assert os.listdir(report.parent) == ["report.html"]


def test_a_directory_appears_whole_only_when_the_block_ends(tmp_path):
    """A directory is built under a temp name and renamed onto a missing or empty destination."""
    dest = tmp_path / "layout"
    dest.mkdir()
    with atomic_dir(dest) as root:
        (root / "index.json").write_text("{}")
        assert os.listdir(dest) == []
    assert os.listdir(dest) == ["index.json"]
    assert temps(tmp_path) == []


def test_a_failing_directory_block_leaves_nothing(tmp_path):
    """When the block raises, the temp directory and all it holds are removed."""
    dest = tmp_path / "layout"
    with pytest.raises(ValueError), atomic_dir(dest) as root:
        (root / "sub").mkdir()
        (root / "sub" / "f").write_text("x")
        raise ValueError("boom")
    assert os.listdir(tmp_path) == []


def test_a_directory_filled_meanwhile_is_refused_and_kept(tmp_path):
    """A destination that gained files while the tree was built is left alone, and the temp removed."""
    dest = tmp_path / "root"
    with pytest.raises(OutputError, match="it appeared meanwhile and is not empty"), atomic_dir(dest) as root:
        (root / "mine").write_text("x")
        dest.mkdir()
        (dest / "theirs").write_text("y")
    assert os.listdir(dest) == ["theirs"]
    assert temps(tmp_path) == []


def test_a_scratch_directory_is_removed_however_the_block_ends(tmp_path):
    """Scratch space beside an output is gone after the block, on success and on failure."""
    with scratch_dir(tmp_path / "out.tar", "slim") as scratch:
        (scratch / "layer.tar").write_bytes(b"x")
        assert scratch.parent == tmp_path and scratch.name.endswith("-slim")
    with pytest.raises(ValueError), scratch_dir(tmp_path / "out.tar"):
        raise ValueError("boom")
    assert os.listdir(tmp_path) == []


def test_remove_stale_temps_keeps_live_and_foreign_ones(tmp_path):
    """Temps of a dead process are removed; those of a live process, another user's, and other names are kept."""
    dead = _dead_pid()
    (tmp_path / f".slimmer-tmp-{dead}-aaaa").mkdir()
    (tmp_path / f".slimmer-tmp-{dead}-aaaa" / "f").write_text("x")
    (tmp_path / f".slimmer-tmp-{dead}-bbbb").write_text("x")
    (tmp_path / f".slimmer-tmp-{dead}-dddd").symlink_to("/etc")
    (tmp_path / f".slimmer-tmp-{dead}-eeee").write_text("someone else's")
    os.chown(tmp_path / f".slimmer-tmp-{dead}-eeee", 65534, 65534)
    (tmp_path / f".slimmer-tmp-{os.getpid()}-cccc").write_text("x")
    (tmp_path / ".slimmer-tmpnot").write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == [f".slimmer-tmp-{dead}-{x}" for x in ("aaaa", "bbbb", "dddd")]
    assert sorted(os.listdir(tmp_path)) == sorted([f".slimmer-tmp-{os.getpid()}-cccc", ".slimmer-tmpnot",
                                                   f".slimmer-tmp-{dead}-eeee"])


def _stage_file(dest: Path) -> None:
    write_bytes(dest, b"report")


def _stage_dir(dest: Path) -> None:
    with atomic_dir(dest) as root:
        (root / "f").write_bytes(b"x")


def _stage_scratch(dest: Path) -> None:
    with scratch_dir(dest) as scratch:
        (scratch / "f").write_bytes(b"x")


@pytest.mark.parametrize("stage", [
    pytest.param(_stage_file, id="a file"),
    pytest.param(_stage_dir, id="a directory"),
    pytest.param(_stage_scratch, id="a scratch directory"),
])
def test_every_staged_output_removes_a_killed_runs_temps_and_keeps_a_live_ones(tmp_path, stage):
    """Staging any output clears the temps a dead process left beside it, never those of a running one."""
    live = subprocess.Popen(["sleep", "60"])
    try:
        dead = _dead_pid()
        (tmp_path / f"{TEMP_PREFIX}{dead}-0123456789ab").write_bytes(b"left by a killed run")
        (tmp_path / f"{TEMP_PREFIX}{dead}-ba9876543210").mkdir()
        (tmp_path / f"{TEMP_PREFIX}{live.pid}-0123456789ab").write_bytes(b"still being written")
        stage(tmp_path / "dest")
        left = temps(tmp_path)
        assert f"{TEMP_PREFIX}{live.pid}-0123456789ab" in left
        assert not any(name.startswith(f"{TEMP_PREFIX}{dead}-") for name in left)
    finally:
        live.kill()
        live.wait()


def test_a_tree_deeper_than_path_max_and_the_recursion_limit_is_removed(tmp_path):
    """A failed export of an image with 3,000 nested directories leaves nothing: the tree is
    removed one directory at a time, never following its symlinks."""
    from slimmer.atomic import remove_tree

    top = tmp_path / "deep"
    top.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("keep")
    fd = os.open(top, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        os.symlink(str(tmp_path / "outside"), "link", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    remove_tree(top)
    assert not top.exists() and (tmp_path / "outside" / "keep").read_text() == "keep"
