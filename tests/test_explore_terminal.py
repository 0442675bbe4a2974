"""`slimmer explore` on real terminals: in tmux at 80x24 on fixtures/single-stage.tar (keys
sent, the screen read with capture-pane, and the terminal as clean after q, Ctrl+C and
SIGINT as before), and on pseudo-terminals too small or missing (one line, exit 2, before
any image is read).
"""

from __future__ import annotations

import fcntl
import os
import pty
import shlex
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "single-stage.tar"
TMUX = shutil.which("tmux")
# the modes a program may leave behind: alternate screen, hidden cursor, mouse reporting, keypad
FLAGS = "#{alternate_on} #{cursor_flag} #{mouse_any_flag} #{mouse_sgr_flag} #{keypad_cursor_flag} #{keypad_flag}"


class Tmux:
    """One tmux server of our own (its own socket, no config) with one 80x24 window running sh."""

    def __init__(self, tmp: Path):
        self.socket = str(tmp / "tmux.sock")
        self.run("-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "-s", "t", "sh")
        self.run("set-option", "-t", "t", "status", "off")

    def run(self, *args: str) -> str:
        return subprocess.run([TMUX, "-S", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def flags(self) -> str:
        return self.run("display-message", "-p", "-t", "t", FLAGS).strip()

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "t", "-l", text)

    def wait_for(self, *needles: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(n in screen for n in needles):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {needles} on the screen:\n{screen}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], check=False, capture_output=True)


@pytest.fixture
def tmux(tmp_path):
    if TMUX is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    t = Tmux(tmp_path)
    yield t
    t.close()


def explore_line(tmp_path: Path, args: str, stdin: str = "") -> str:
    """The shell line that runs explore, then prints its status and the terminal's modes."""
    pidfile = tmp_path / "pid"
    cmd = (f"sh -c 'echo $$ > {pidfile}; exec {shlex.quote(sys.executable)} -m slimmer explore {args}'")
    if stdin:
        cmd = f"cat {shlex.quote(stdin)} | {cmd}"
    return (f"clear; {cmd}; echo EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e echo -e -echo -e icanon -e -icanon "
            f"| tr '\\n' ' '; echo END")


def assert_clean(tmux: Tmux, before: str, status: int) -> str:
    """The command ended with ``status`` and left the terminal as it found it."""
    screen = tmux.wait_for("END")
    assert f"EXIT={status}" in screen, screen
    modes = screen[screen.index("EXIT="):].split()
    assert "echo" in modes and "icanon" in modes and "-echo" not in modes and "-icanon" not in modes, screen
    assert "Layers (" not in screen, screen  # nothing of the explorer left on the normal screen
    assert tmux.flags() == before
    return screen


def test_explore_in_tmux_answers_keys_and_q_leaves_a_clean_terminal(tmux, tmp_path):
    """At 80x24 the first screen shows the layers, the tree of layer 0 and the findings; keys
    select a layer, move to the tree, filter it and show the keys; q exits 0 and the terminal
    is as it was (normal screen, cursor shown, no mouse reporting, echo and line mode on)."""
    before = tmux.flags()
    tmux.type(explore_line(tmp_path, shlex.quote(str(FIXTURE))))
    tmux.keys("Enter")
    screen = tmux.wait_for("Layer 0 · its changes", "could save", "busybox")
    assert "example.com/goapp:single-stage" in screen
    assert "Layers (6)" in screen and "ADD file:" in screen
    tmux.keys("Down", "Down")
    screen = tmux.wait_for("Layer 1 · its changes", "gcc-12")
    tmux.keys("Tab")
    tmux.keys("C-f")
    tmux.type("cc1")
    tmux.keys("Enter")
    screen = tmux.wait_for("cc1 · 1 files")
    tree = [line for line in screen.splitlines() if "│+" in line or "│ " in line]
    assert any("└─ cc1" in line for line in tree), screen
    assert "gcc-12" not in screen
    tmux.keys("Escape")
    tmux.wait_for("gcc-12")
    tmux.keys("?")
    tmux.wait_for("Everywhere", "Ctrl+Space")
    tmux.keys("Escape")  # alone: an Escape followed at once by q would read as Alt+Q
    tmux.wait_for("Layers (6)")
    tmux.keys("q")
    assert_clean(tmux, before, 0)


def test_explore_reads_the_archive_on_stdin_and_ctrl_c_quits_cleanly(tmux, tmp_path):
    """`cat ARCHIVE | slimmer explore -` reads the image from the pipe and the keys from the
    terminal; Ctrl+C quits (status 0) and restores the terminal."""
    before = tmux.flags()
    tmux.type(explore_line(tmp_path, "-", stdin=str(FIXTURE)))
    tmux.keys("Enter")
    tmux.wait_for("Layer 0 · its changes", "could save")
    tmux.keys("Down", "Down")
    tmux.wait_for("Layer 1 · its changes")
    tmux.keys("C-c")
    assert_clean(tmux, before, 0)


def test_sigint_restores_the_terminal_and_says_interrupted(tmux, tmp_path):
    """SIGINT from outside closes the explorer as q does, then exits 130 with one line."""
    before = tmux.flags()
    tmux.type(explore_line(tmp_path, shlex.quote(str(FIXTURE))))
    tmux.keys("Enter")
    tmux.wait_for("Layer 0 · its changes", "could save")
    os.kill(int((tmp_path / "pid").read_text()), 2)
    screen = assert_clean(tmux, before, 130)
    assert "slimmer: error: interrupted" in screen


# ---- without a terminal, or a small one ---------------------------------------------------------


def run_on_pty(args: list[str], columns: int = 80, lines: int = 24, stdout_tty: bool = True):
    """Run ``slimmer ARGS`` with standard output (and error) on a pseudo-terminal of the
    given size, or standard output on a pipe; return (status, stderr text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "slimmer", *args], stdin=slave,
                            stdout=slave if stdout_tty else subprocess.PIPE,
                            stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break  # the child closed the terminal
        if not chunk:
            break
        out += chunk
    status = proc.wait(timeout=60)
    os.close(master)
    return status, out.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.mark.parametrize("columns, lines, stdout_tty, message", [
    pytest.param(79, 24, True, "slimmer: error: the terminal is 79x24; explore needs at least 80x24\n",
                 id="a terminal one column too narrow"),
    pytest.param(120, 20, True, "slimmer: error: the terminal is 120x20; explore needs at least 80x24\n",
                 id="a terminal too short"),
    pytest.param(80, 24, False, "slimmer: error: explore draws on a terminal and standard output is not one "
                                "(for a report, use `slimmer analyze`)\n", id="standard output on a pipe"),
])
def test_no_terminal_or_a_small_one_is_one_line(columns, lines, stdout_tty, message):
    """Too small a terminal, or output that is not one, gets one line and exit status 2,
    before the image is read (a missing archive is not even looked at)."""
    status, err = run_on_pty(["explore", "/nonexistent.tar"], columns, lines, stdout_tty)
    assert (status, err) == (2, message)


@pytest.mark.parametrize("args, fragment", [
    pytest.param(["/nonexistent.tar"], "/nonexistent.tar", id="a missing archive"),
    pytest.param([str(ROOT / "README.md")], "README.md", id="a file that is no image archive"),
    pytest.param([str(FIXTURE), "--image", "nope:1"], "nope:1", id="an image the archive does not hold"),
])
def test_bad_input_gets_the_error_analyze_gives_before_the_screen_opens(args, fragment):
    """On a real terminal, bad input is the one line `slimmer analyze` prints for it, exit 2,
    and nothing of the screen was drawn."""
    analyze = subprocess.run([sys.executable, "-m", "slimmer", "analyze", *args], capture_output=True, text=True,
                             check=False)
    assert analyze.returncode == 2 and fragment in analyze.stderr
    status, err = run_on_pty(["explore", *args])
    assert (status, err) == (2, analyze.stderr)


@pytest.mark.parametrize("colorfgbg, expected", [
    pytest.param("0;15", "light", id="black on white is a light terminal"),
    pytest.param("0;default;7", "light", id="rxvt's three fields, on light grey"),
    pytest.param("15;0", "dark", id="white on black is a dark one"),
    pytest.param("", "dark", id="a terminal that does not say is taken as dark"),
])
def test_the_theme_follows_the_terminal_background(colorfgbg, expected, monkeypatch):
    """--theme auto (the default) picks light colours when COLORFGBG says the background is light."""
    from slimmer.explorer.terminal import background

    monkeypatch.setenv("COLORFGBG", colorfgbg)
    assert background() == expected
