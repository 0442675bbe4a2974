"""Ctrl-C anywhere: a real slimmer process interrupted mid-read of a large archive (threads
hashing its mapped layers on the compiled path; forked worker processes scanning them on the
pure-Python one, ``SLIMMER_PURE=1``), mid-write of an output, and on a terminal (the pseudo-terminal
is its controlling terminal, so Ctrl-C reaches the whole process group, workers included)
exits at once with status 130 and one line, leaves no worker, no output and no temp file, and
leaves the terminal clean (the progress display erased, the cursor shown)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from slimmer.compiled import COMPILED

from builders import write_zeros_archive

GB = 1_000_000_000


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """Two layers of 1 GB each: large enough that forked workers scan them (for about a second)."""
    return write_zeros_archive(tmp_path_factory.mktemp("big") / "big.tar", [GB, GB])


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_for(what, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = what()
        if found:
            return found
        time.sleep(0.005)
    raise AssertionError("timed out")


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if status != "Z":
            return False
    return True


def _env(tmp_path: Path, path: str = "compiled") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "COLUMNS", "SLIMMER_PURE")}
    env["SLIMMER_CACHE_DIR"] = str(tmp_path / "cache")
    if path == "pure":
        env["SLIMMER_PURE"] = "1"
    return env


PATHS = ["compiled", "pure"] if COMPILED else ["pure"]


def _slimmer(path: str) -> list[str]:
    """The command that runs slimmer: on the compiled path pinned to one CPU, so that hashing
    the two sparse gigabytes (the mapped layers' digests, which go on behind the analysis)
    lasts long enough for a signal to land in it on a fast machine."""
    pin = ["taskset", "-c", "0"] if path == "compiled" and shutil.which("taskset") else []
    return [*pin, sys.executable, "-m", "slimmer"]


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _working(proc, path: str) -> list[int]:
    """Wait until ``proc`` reads its layers in parallel: two forked workers (pure), or the
    threads hashing the mapped layers beside the parsing (compiled); return the workers."""
    if path == "pure":
        return _wait_for(lambda: _children(proc.pid) if len(_children(proc.pid)) >= 2 else None)
    _wait_for(lambda: _threads(proc.pid) >= 3)
    return []


@pytest.mark.parametrize("path", PATHS)
def test_sigint_mid_read_with_workers_exits_130_at_once(big, tmp_path, path):
    """SIGINT while the layers are read in parallel (threads hashing, or two forked workers
    scanning): exit 130 within two seconds, one line on stderr, no traceback, workers gone."""
    proc = subprocess.Popen([*_slimmer(path), "analyze", str(big), "--no-cache", "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tmp_path, path))
    workers = _working(proc, path)
    assert proc.poll() is None, "the read ended before the interrupt"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert err == b"slimmer: error: interrupted\n" and out == b""
    assert took < 2, f"{took:.1f} s to stop"
    _wait_for(lambda: _gone(workers), timeout=5)


def test_sigint_mid_write_leaves_no_output_and_no_temp(big, tmp_path):
    """SIGINT while `export` writes its tar: exit 130, and neither the tar nor a temp file is left."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "slimmer", "export", str(big), str(out_dir / "root.tar")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tmp_path))
    _wait_for(lambda: [p for p in out_dir.iterdir() if p.stat().st_size > 10_000_000])
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err == b"slimmer: error: interrupted\n"
    assert list(out_dir.iterdir()) == []


def _controlling_terminal() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _readable(fd: int, timeout_ms: int = 50) -> bool:
    """Return whether ``fd`` has something to read (poll: select() refuses descriptors past 1024)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(timeout_ms))


def _read_all(fd: int, until: tuple[bytes, ...] = (), timeout: float = 60.0) -> bytes:
    data = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready = _readable(fd)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        data += chunk
        if any(mark in data for mark in until):
            break
    return data


@pytest.mark.parametrize("path", PATHS)
def test_ctrl_c_on_a_terminal_exits_130_and_leaves_it_clean(big, tmp_path, path):
    """Ctrl-C typed on the terminal mid-read (the whole process group gets SIGINT): exit 130, the
    progress display that was drawn is erased, the cursor is shown again, the last line is the
    error, and the workers are gone."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**_env(tmp_path, path), "TERM": "xterm-256color"}
    proc = subprocess.Popen([*_slimmer(path), "analyze", str(big), "--no-cache", "--jobs", "2"],
                            stdin=follower, stdout=follower, stderr=follower, env=env,
                            preexec_fn=_controlling_terminal)
    os.close(follower)
    try:
        # the display shows the read, or (compiled: the analysis starts while the mapped
        # layers are still hashed) the analysis while the hashing goes on
        shown = _read_all(leader, until=(b"reading", b"analyzing"))
        assert b"reading" in shown or b"analyzing" in shown, shown
        workers = _working(proc, path)
        os.write(leader, b"\x03")
        rest = _read_all(leader, timeout=30)
        assert proc.wait(timeout=30) == 130
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    screen = shown + rest
    assert screen.rfind(b"\x1b[?25h") > screen.rfind(b"\x1b[?25l") >= 0, "the cursor is left hidden"
    tail = screen[screen.rfind(b"\x1b[?25h"):]
    assert tail.replace(b"\x1b[?25h", b"").strip().endswith(b"slimmer: error: interrupted")
    assert b"Traceback" not in screen
    _wait_for(lambda: _gone(workers), timeout=5)
