"""`slimmer audit` on a terminal: its fleet table and every `--report` table as wide as every
other table (COLUMNS, else the terminal's width, else 100 columns), names from a storage or
an image (long repository names, tags of wide characters, archive names and RepoTags holding
escape sequences) escaped and cut to fit; and the shared progress display (blobs scanned of
the total with their bytes, then images analyzed) on a terminal's standard error only, erased
when the audit ends."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from pushed import run_cli
from servers import child_env

from slimmer.render import cells
from slimmer.render.progress import DELAY

from builders import image, layer, write, write_many_tags, write_registry
from hostile import raw_controls
from screen import screen_text

LONG_REPO = "platform-engineering/" + "-".join(["payments"] * 8) + "/worker-with-a-rather-long-name"
LONG_TAG = "release-2024-12-01-" + "7" * 60
WIDE_TAG = "版本" * 30  # 60 characters, 120 columns
LONG_PACKAGE = "libpayments-gateway-worker-plugins-for-the-long-names-test0"
STATUS = (f"Package: {LONG_PACKAGE}\nStatus: install ok installed\nArchitecture: amd64\n"
          f"Version: 1:2.34.5-6+deb12u7~with~a~rather~long~suffix\n\n").encode()
BASE = layer({"bin/sh": 30_000, "var/lib/dpkg/status": STATUS, "usr/share/doc/base/README": 20_000,
              f"var/lib/dpkg/info/{LONG_PACKAGE}.list": b"/.\n/bin/sh\n"},
             created_by="ADD rootfs.tar / && " + "configure --with-a-very-long-command-line " * 4, auto_dirs=True)
OSC = "\x1b]0;PWNED\x07"


def app(name: str) -> object:
    return image(BASE, layer({f"app/{name}.bin": 40_000, "tmp/cache.bin": 9_000}, created_by=f"COPY {name} /app"),
                 layer({"tmp/.wh.cache.bin": b""}, created_by="RUN rm /tmp/cache.bin"))


@pytest.fixture(scope="module")
def long_names(tmp_path_factory) -> Path:
    """A storage whose repository names and tags are long (and valid), one tag of wide
    characters, one index of two platforms, every image holding a long-named package."""
    root = tmp_path_factory.mktemp("long") / "storage"
    return write_registry({f"{LONG_REPO}:{LONG_TAG}": app("a"), f"team/wide:{WIDE_TAG}": app("b"),
                           "team/multi:1": {"linux/amd64": app("c"), "linux/arm64/v8": app("d")}}, root)


@pytest.fixture(scope="module")
def audited(long_names, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("db") / "audit.sqlite"
    code, _out, err = run_cli("audit", long_names, "--db", db, "--jobs", "1")
    assert code == 0, err
    return db


def widest(text: str) -> int:
    return max(cells(line) for line in text.splitlines())


def _on_pty(args: list[str], env: dict, columns: int = 80, stdout_tty: bool = True,
            stderr_tty: bool = True) -> tuple[int, bytes, bytes, bytes, float]:
    """Run ``slimmer ARGS`` with standard output and/or error on a pseudo-terminal ``columns``
    wide (the others on pipes); return (status, what the terminal got, standard output and
    error as piped, seconds)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "slimmer", *args], stdin=subprocess.DEVNULL,
                            stdout=follower if stdout_tty else subprocess.PIPE,
                            stderr=follower if stderr_tty else subprocess.PIPE, env=env)
    os.close(follower)
    shown = b""
    poller = select.poll()
    poller.register(leader, select.POLLIN | select.POLLHUP | select.POLLERR)
    while True:
        if poller.poll(50):
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    out, err = proc.communicate(timeout=60)
    os.close(leader)
    return proc.returncode, shown, out or b"", err or b"", time.monotonic() - start


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in child_env().items() if k not in ("COLUMNS", "LINES", "CI", "NO_COLOR", "FORCE_COLOR")}
    return {**env, "SLIMMER_CACHE_DIR": str(tmp_path / "cache"), "TERM": "xterm", **extra}


# ---- the width of the tables ------------------------------------------------------------------


@pytest.mark.parametrize("how, width", [("COLUMNS=80", 80), ("COLUMNS=132", 132), ("a terminal 80 wide", 80),
                                        ("a pipe", 100)],
                         ids=["COLUMNS 80", "COLUMNS 132", "a terminal 80 columns wide", "a pipe: 100 columns"])
def test_the_fleet_table_fits_the_width_every_table_fits(long_names, tmp_path, monkeypatch, how, width):
    """The audit's table is no wider than COLUMNS, else the terminal, else 100 columns, with
    wide characters counted as two; names too long are cut with … (and shown whole when
    the width allows)."""
    args = ["audit", str(long_names), "--db", str(tmp_path / "a.sqlite"), "--jobs", "1"]
    if how.startswith("a terminal"):
        code, shown, _out, _err, _took = _on_pty(args, _env(tmp_path, CI="true"), columns=width, stderr_tty=False)
        out = screen_text(shown.decode()).split("\n")
        out = "\n".join(line for line in out if line.strip())
    else:
        if how.startswith("COLUMNS"):
            monkeypatch.setenv("COLUMNS", str(width))
        code, out, _err = run_cli(*args)
    assert code == 0
    assert widest(out) <= width and len(out.splitlines()) == 2 + 4
    assert "…" in out
    monkeypatch.setenv("COLUMNS", "600")
    code, wide, _err = run_cli(*args)
    assert code == 0 and f"{LONG_REPO}:{LONG_TAG}" in wide and f"team/wide:{WIDE_TAG}" in wide
    assert "team/multi:1 (linux/amd64)" in wide and "team/multi:1 (linux/arm64/v8)" in wide


REPORTS = [
    pytest.param(("--report",), f"{LONG_REPO}:{LONG_TAG}", id="the fleet table"),
    pytest.param(("--report", "--by", "repository"), LONG_REPO, id="by repository"),
    pytest.param(("--report", "--by", "layer"), "configure --with-a-very-long-command-line " * 3, id="by layer"),
    pytest.param(("--report", "--package", LONG_PACKAGE), f"{LONG_REPO}:{LONG_TAG}", id="a package"),
    pytest.param(("--report", "--category", "docs"), f"team/wide:{WIDE_TAG}", id="a category"),
]


@pytest.mark.parametrize("args, whole", REPORTS)
def test_every_report_table_fits_the_width(audited, monkeypatch, args, whole):
    """Each --report table is no wider than COLUMNS (80, then 100) and shows its long names
    whole when the width (600) allows."""
    for width in (80, 100):
        monkeypatch.setenv("COLUMNS", str(width))
        code, out, err = run_cli("audit", *args, "--db", audited)
        assert code == 0, err
        assert widest(out) <= width, (width, out)
        assert widest(out) > 60 and "…" in out, out
    monkeypatch.setenv("COLUMNS", "600")
    code, out, err = run_cli("audit", *args, "--db", audited)
    assert code == 0 and whole.strip() in out, out
    if "--package" in args:
        assert LONG_PACKAGE in out and "1:2.34.5-6+deb12u7~with~a~rather~long~suffix" in out


def test_names_from_archives_are_escaped_in_every_table(tmp_path, monkeypatch):
    """A directory of archives whose file names and RepoTags hold OSC, CR and bidirectional
    controls: the fleet table and the reports show them escaped (never raw), at any width."""
    images = tmp_path / "images"
    images.mkdir()
    write(image(BASE, tag=f"evil{OSC}/app:latest"), images / f"name{OSC}\r\u202e{'y' * 70}.tar", "docker-legacy")
    write(image(BASE, layer({"app/x": 5_000}), tag="plain/app:1"), images / "plain.tar", "docker-legacy")
    db = tmp_path / "a.sqlite"
    for width in ("80", "600"):
        monkeypatch.setenv("COLUMNS", width)
        runs = [run_cli("audit", images, "--db", db, "--jobs", "1")]
        runs += [run_cli("audit", "--report", *args, "--db", db) for args in
                 [(), ("--by", "repository"), ("--by", "layer"), ("--package", LONG_PACKAGE), ("--category", "docs")]]
        for code, out, err in runs:
            assert code == 0, err
            assert raw_controls(out) == [] and raw_controls(err) == [] and "\u202e" not in out + err
            assert widest(out) <= int(width)
    # at 600 columns the names are whole: each control shown as its escape
    assert r"evil\x1b]0;PWNED\x07/app:latest" in runs[0][1]
    assert r"name\x1b]0;PWNED\x07\r\u202e" + "y" * 70 + ".tar" in runs[2][1]


# ---- the progress display ---------------------------------------------------------------------


TAGS = 160


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """Enough tags that an audit lasts well past the display's delay even on a fast machine
    (60 tags took 0.9 s on a quiet one: too close to the 3 x DELAY the tests ask for)."""
    return write_many_tags(tmp_path_factory.mktemp("many") / "storage", TAGS)


def test_a_terminal_sees_the_progress_of_the_scans_and_the_analyses(many, tmp_path):
    """With standard error on a terminal, the shared display shows the blobs scanned of the
    total with their bytes, then the images analyzed; it is erased at the end (what stays is
    the summary), and the table on standard output holds nothing of it."""
    code, shown, out, _err, _took = _on_pty(["audit", str(many), "--db", str(tmp_path / "a.sqlite"), "--jobs", "2"],
                                            _env(tmp_path), stdout_tty=False)
    assert code == 0, shown
    text = shown.decode()
    assert "scanning layer blobs" in text and f"of {TAGS + 1} blobs, " in text
    assert "analyzing images" in text and f"of {TAGS} images" in text
    assert "\x1b[?25l" in text and text.rfind("\x1b[?25h") > text.rfind("\x1b[?25l")
    left = [line for line in screen_text(text.replace("\r\n", "\n")).split("\n") if line.strip()]
    assert left and all(line.startswith("slimmer: ") for line in left), left
    assert left[0].startswith(f"slimmer: audited {TAGS} images of {TAGS} tags")
    assert b"team/app000:1" in out and b"\x1b" not in out and b"scanning layer blobs" not in out


@pytest.mark.parametrize("how", ["a pipe", "CI=true", "TERM=dumb"])
def test_no_progress_display_off_a_terminal_or_under_ci(many, tmp_path, how):
    """Standard error on a pipe, or CI true (as dive reads it), or a dumb terminal: no display,
    however long the audit takes; only the summary lines."""
    args = ["audit", str(many), "--db", str(tmp_path / "a.sqlite"), "--jobs", "2"]
    env = _env(tmp_path, **({"CI": "true"} if how == "CI=true" else {"TERM": "dumb"} if how == "TERM=dumb" else {}))
    code, shown, _out, piped, took = _on_pty(args, env, stdout_tty=False, stderr_tty=how != "a pipe")
    err = (piped if how == "a pipe" else shown).decode().replace("\r\n", "\n")
    assert code == 0, err
    assert took > 3 * DELAY, "the audit was too quick to show a display anyway"
    assert "\x1b" not in err and "scanning layer blobs" not in err and " of 60 images" not in err
    assert all(line.startswith("slimmer: ") for line in err.splitlines()), err


def test_json_output_is_unchanged_by_the_width(long_names, tmp_path, monkeypatch):
    """--json is the same document at any width: names whole, nothing escaped for a terminal."""
    docs = []
    for width in ("60", "600"):
        monkeypatch.setenv("COLUMNS", width)
        code, out, err = run_cli("audit", long_names, "--db", tmp_path / "a.sqlite", "--json", "--jobs", "1")
        assert code == 0, err
        docs.append(json.loads(out))
    assert docs[0] == docs[1]
    assert {i["tags"][0] for i in docs[0]["images"]} >= {f"{LONG_REPO}:{LONG_TAG}", f"team/wide:{WIDE_TAG}"}
