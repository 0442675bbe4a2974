"""slimmer on a terminal: the default analyze report fits the terminal (tmux at 80 and 120
columns, no line wrapped, nothing left of the progress display), COLUMNS wins over the real
width, colour only on a terminal and never with NO_COLOR, a progress display with the total,
the percent and the phase on standard error (none when CI is true), file-path completion for
ARCHIVE arguments, and long hash-named lists grouped by directory."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import pytest

from slimmer.analyzer.usage import grouped
from slimmer.render import table, unstyled

from builders import WHITEOUT, image, layer, write

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "single-stage.tar"
TMUX = shutil.which("tmux")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CI")}
    env["SLIMMER_CACHE_DIR"] = str(tmp_path / "cache")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def long_names(tmp_path_factory) -> Path:
    """An image with long paths, long commands and a Go build cache of hash-named files."""
    cache = {f"root/.cache/go-build/{i:02x}/{i:064x}-d": 1_000 + i for i in range(40)}
    deep = "usr/share/" + "/".join(f"directory-with-a-long-name-{i}" for i in range(6)) + "/file.txt"
    spec = image(layer({"usr/bin/tool": 50_000, deep: 30_000, **cache},
                       created_by="RUN go build ./... && " + "x " * 80),
                 layer({"root/.cache/.wh.go-build": WHITEOUT, deep: 31_000}, created_by="RUN rm -rf /root/.cache"))
    return write(spec, tmp_path_factory.mktemp("long") / "long.tar", "docker-legacy")


def _piped(archive: Path, tmp_path: Path, columns: int) -> str:
    done = subprocess.run([sys.executable, "-m", "slimmer", "analyze", str(archive)], capture_output=True, text=True,
                          env=_env(tmp_path, COLUMNS=str(columns)), check=True)
    return done.stdout


@pytest.mark.skipif(TMUX is None, reason="needs tmux (apt-get install tmux)")
@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("which", ["fixture", "long names"])
def test_default_analyze_output_in_tmux_fits_without_wrapping(columns, which, long_names, tmp_path):
    """In a tmux window COLUMNS wide (COLUMNS not set: the real width counts), no line of the
    report wraps, and the screen holds exactly the report the same width gives on a pipe:
    nothing is left of the progress display."""
    archive = FIXTURE if which == "fixture" else long_names
    socket = str(tmp_path / f"tmux-{uuid.uuid4().hex[:8]}")
    done = tmp_path / "done"
    script = tmp_path / "run.sh"
    script.write_text(f"{sys.executable} -m slimmer analyze {archive}; echo $? > {done}; sleep 600\n")
    tmux = [TMUX, "-S", socket, "-f", "/dev/null"]
    env = _env(tmp_path)
    subprocess.run(tmux + ["new-session", "-d", "-x", str(columns), "-y", "50", "sh", str(script)], env=env,
                   check=True)
    try:
        subprocess.run(tmux + ["set-option", "-g", "history-limit", "10000"], check=True)
        end = time.monotonic() + 120
        while not done.exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert done.read_text().strip() == "0"
        width = subprocess.run(tmux + ["display-message", "-p", "#{pane_width}"], capture_output=True, text=True,
                               check=True).stdout.strip()
        assert width == str(columns)
        rows = subprocess.run(tmux + ["capture-pane", "-p", "-S", "-"], capture_output=True, text=True,
                              check=True).stdout
        joined = subprocess.run(tmux + ["capture-pane", "-p", "-J", "-S", "-"], capture_output=True, text=True,
                                check=True).stdout
    finally:
        subprocess.run(tmux + ["kill-server"], check=False, capture_output=True)
    assert rows.rstrip("\n") == joined.rstrip("\n"), "a line wrapped"
    screen = [line.rstrip() for line in rows.rstrip("\n").splitlines()]
    assert max(len(line) for line in screen) <= columns
    expected = [line.rstrip() for line in _piped(archive, tmp_path, columns).rstrip("\n").splitlines()]
    assert screen == expected


def test_columns_sets_the_width_of_every_table(long_names, tmp_path):
    """COLUMNS=60, 80 and 140 each give a report no line of which is wider; paths are cut with …
    only where the width needs it."""
    for columns in (60, 80, 140):
        lines = _piped(long_names, tmp_path, columns).splitlines()
        assert max(len(line) for line in lines) <= columns, columns
    assert "…" in _piped(long_names, tmp_path, 80)
    wide = _piped(long_names, tmp_path, 400)
    files = wide.split("Largest files")[1].split("\n\n")[0]
    assert "directory-with-a-long-name-5/file.txt" in files and "…" not in files


def test_a_flexible_column_is_cut_to_the_width():
    """table() cuts the flexible column so the widest line is the width given."""
    text = table([["1", "x" * 300], ["22", "short"]], ["n", "path"], width=70, flex=1)
    assert max(len(line) for line in text.splitlines()) == 70 and text.splitlines()[2].endswith("…")


def _readable(fd: int, timeout_ms: int = 50) -> bool:
    """Return whether ``fd`` has something to read (poll: select() refuses descriptors past 1024)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(timeout_ms))


def _on_a_pty(args: list[str], env: dict, timeout: float = 120) -> tuple[int, bytes]:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    data = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready = _readable(leader)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=30), data


def test_colour_on_a_terminal_and_never_with_no_color_or_on_a_pipe(tmp_path):
    """On a terminal the headings are bold and verdicts coloured; NO_COLOR turns every colour
    off; a pipe gets plain text."""
    args = [sys.executable, "-m", "slimmer", "check", str(FIXTURE), "--max-size", "1kB"]
    code, coloured = _on_a_pty(args, _env(tmp_path, TERM="xterm", CI="true"))
    assert code == 1 and b"\x1b[1;31mFAIL\x1b[0m" in coloured and b"\x1b[32mPASS\x1b[0m" in coloured
    code, plain = _on_a_pty(args, _env(tmp_path, TERM="xterm", CI="true", NO_COLOR="1"))
    assert code == 1 and b"\x1b[" not in plain and b"FAIL  max_size" in plain
    piped = subprocess.run(args, capture_output=True, env=_env(tmp_path), check=False)
    assert b"\x1b" not in piped.stdout and b"\x1b" not in piped.stderr


def test_a_progress_display_shows_total_percent_and_phase_on_standard_error(tmp_path):
    """On a terminal, standard error shows the read (bytes of the total, percent) and then the
    phases of the analysis; it is erased before the report is printed."""
    from builders import write_zeros_archive

    archive = write_zeros_archive(tmp_path / "big.tar", [700_000_000, 700_000_000])
    code, screen = _on_a_pty([sys.executable, "-m", "slimmer", "analyze", str(archive), "--no-cache"],
                             _env(tmp_path, TERM="xterm"))
    assert code == 0
    text = ANSI.sub(b"", screen).decode("utf-8", "replace")
    assert "reading big.tar" in text
    assert "of 1.4 GB" in text and re.search(r"\b(50|100)%", text)
    assert "analyzing: merging layers" in text and "step 1 of 5" in text
    report = text[text.rindex("Image "):]
    assert "reading" not in report and "analyzing" not in report


def test_ci_true_turns_the_live_display_off_as_dive_turns_its_screen_off(tmp_path):
    """With CI=true (dive's truthy spellings: true, 1, T...) standard error holds no live display."""
    from builders import write_zeros_archive

    archive = write_zeros_archive(tmp_path / "big.tar", [600_000_000])
    for value in ("true", "1", "T"):
        code, screen = _on_a_pty([sys.executable, "-m", "slimmer", "analyze", str(archive), "--no-cache"],
                                 _env(tmp_path, TERM="xterm", CI=value))
        assert code == 0 and b"reading" not in screen and b"\x1b[?25l" not in screen, value
    code, screen = _on_a_pty([sys.executable, "-m", "slimmer", "analyze", str(archive), "--no-cache"],
                             _env(tmp_path, TERM="xterm", CI="false"))
    assert code == 0 and b"\x1b[?25l" in screen


def test_a_quick_run_draws_no_display(tmp_path):
    """A run (or an error) quicker than the display's delay leaves standard error untouched."""
    code, screen = _on_a_pty([sys.executable, "-m", "slimmer", "analyze", str(tmp_path / "missing.tar")],
                             _env(tmp_path, TERM="xterm"))
    assert code == 2 and screen == f"slimmer: error: cannot open {tmp_path / 'missing.tar'}: No such file or " \
                                   f"directory\r\n".encode()


@pytest.mark.parametrize("words, cword, expected", [
    ("slimmer analyze fix", 2, "file,fix"),
    ("slimmer check fix", 2, "file,fix"),
    ("slimmer export fixtures/single-stage.tar ro", 3, "file,ro"),
    ("slimmer diff a.tar fix", 3, "file,fix"),
], ids=["analyze", "check", "export's DEST", "diff's second archive"])
def test_archive_arguments_complete_file_paths(words, cword, expected, tmp_path):
    """The shells' completion (click's) completes ARCHIVE arguments as file paths."""
    exe = shutil.which("slimmer")
    if exe is None:
        pytest.skip("the slimmer console script is not installed")
    done = subprocess.run([exe], capture_output=True, text=True, check=False,
                          env=_env(tmp_path, _SLIMMER_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword),
                                   PYTHONPATH=str(ROOT)))
    assert done.returncode == 0 and done.stdout.splitlines() == [expected], done.stderr


def test_hash_named_rows_are_grouped_by_directory():
    """Forty hash-named cache files become one row for their directory, counting them all; the
    rows after it move up."""
    items = [(f"root/.cache/go-build/{i % 256:02x}/{i:064x}-d", 10_000 - i) for i in range(1204)]
    items += [("usr/bin/big", 20_000), ("usr/lib/libc.so.6", 9_000)]
    items += [(f"usr/lib/lib{i}.so", 8000 - i) for i in range(5)]
    items.sort(key=lambda x: -x[1])
    rows = grouped(items, lambda x: x[0], lambda x: x[1], 6)
    assert [(r.path, r.files) for r in rows] == [
        ("usr/bin/big", 1), ("root/.cache/go-build/", 1204), ("usr/lib/libc.so.6", 1), ("usr/lib/lib0.so", 1),
        ("usr/lib/lib1.so", 1), ("usr/lib/lib2.so", 1)]
    assert rows[1].size == sum(s for p, s in items if p.startswith("root/.cache/go-build/"))


def test_plain_names_in_one_directory_stay_rows():
    """Files of one directory with ordinary names (libraries) are not grouped."""
    items = [(f"usr/lib/x86_64-linux-gnu/lib{i}.so", 1000 - i) for i in range(30)]
    assert all(not r.is_group for r in grouped(items, lambda x: x[0], lambda x: x[1], 20))


def test_the_report_shows_a_build_cache_as_one_row(long_names, tmp_path):
    """`analyze` lists the deleted Go build cache as one row: its directory, 40 files."""
    text = _piped(long_names, tmp_path, 100)
    wasted = text.split("Truly wasted")[1].split("\n\n")[0]
    assert "/root/.cache/go-build/  (40 files)" in wasted
    assert not re.search(r"/root/\.cache/go-build/[0-9a-f]{2}/", unstyled(wasted))
