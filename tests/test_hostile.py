"""The hostile corpus (tests/hostile.py) against `slimmer analyze` (JSON, table and HTML report),
`slimmer export` (to a directory and to a tar), `slimmer slim` (both modes) and `slimmer diff`:
each case gives its exact expected outcome, never a traceback, never a partial output, never a
write outside the destination, never a raw control character on standard output or standard
error, and leaves its input unchanged."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from slimmer.reader import open_image
from slimmer.render.html import decode_data

import hostile
from hostile import (
    CASES,
    OK,
    OUTSIDE,
    Case,
    F,
    Fail,
    docker,
    fingerprint,
    raw_controls,
    run_cli,
    temps_in,
    tree_of_dir,
    tree_of_tar,
)
from peak import run_slimmer
from screen import screen_text


def _slim_available() -> bool:
    return run_cli("slim", "--help").code == 0


SLIM = _slim_available()


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Each case's archive, built once (every run checks it is left unchanged)."""
    built: dict[str, Path] = {}

    def get(case: Case) -> Path:
        if case.id not in built:
            built[case.id] = case.build(tmp_path_factory.mktemp("case"))
        return built[case.id]

    return get


@pytest.fixture(autouse=True)
def cold_cache(tmp_path, monkeypatch):
    """Every run starts with an empty layer cache of its own."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def outside():
    """The directory outside every destination that hostile symlinks point at; must stay empty."""
    path = Path(OUTSIDE)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    yield path
    assert os.listdir(path) == [], f"something was written outside the destination: {os.listdir(path)}"
    shutil.rmtree(path)


class _Feeder(threading.Thread):
    """Writes an archive into a FIFO once a reader opens it."""

    def __init__(self, fifo: Path, data: bytes):
        super().__init__(daemon=True)
        self.fifo, self.data = fifo, data

    def run(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.005)
                continue
            os.set_blocking(fd, True)
            try:
                os.write(fd, self.data)
            except BrokenPipeError:
                pass
            finally:
                os.close(fd)
            return


def _source(case: Case, archives, tmp_path: Path) -> tuple[Path, _Feeder | None]:
    path = archives(case)
    if not case.fifo:
        return path, None
    fifo = tmp_path / "archive.fifo"
    os.mkfifo(fifo)
    feeder = _Feeder(fifo, path.read_bytes())
    feeder.start()
    return fifo, feeder


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) << 10
    raise AssertionError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def _bounded(case: Case):
    """Run under the case's memory bound (RLIMIT_AS: what the process may map beyond what it
    has now; forked workers inherit it) and check its time bound."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + (case.memory_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    started = time.monotonic()
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    elapsed = time.monotonic() - started
    assert elapsed < case.seconds, f"took {elapsed:.1f} s, the case allows {case.seconds} s"


def _run(case: Case, archives, tmp_path: Path, *args: str):
    source, feeder = _source(case, archives, tmp_path)
    before = fingerprint(archives(case))
    with _bounded(case):
        run = run_cli(*args[:1], source, *args[1:], *case.args)
    if feeder:
        feeder.join(5)
    if run.exc is not None:
        raise run.exc
    assert fingerprint(archives(case)) == before, "the input archive changed"
    assert raw_controls(run.out) == [], f"raw control characters on standard output: {run.out[:300]!r}"
    assert raw_controls(run.err) == [], f"raw control characters on standard error: {run.err[:300]!r}"
    return run


def _assert_failed(run, fail: Fail) -> None:
    assert run.code == 2, (run.code, run.err)
    assert len(run.err_lines) == 1, run.err
    assert run.err_lines[0].startswith("slimmer: error: "), run.err
    assert fail.fragment in run.err_lines[0], run.err
    assert "Traceback" not in run.err


def _params(command: str):
    out = []
    for case in CASES:
        marks = []
        if case.reader_bug and command in case.bug_in:
            marks.append(pytest.mark.xfail(strict=True, reason=case.reader_bug))
        if command == "slim" and case.skip_slim:
            marks.append(pytest.mark.skip(reason=case.skip_slim))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


@pytest.mark.parametrize("case", _params("analyze"))
def test_analyze(case, archives, tmp_path):
    """`slimmer analyze` gives the case's outcome: a report with the right file count, or one error line."""
    run = _run(case, archives, tmp_path, "analyze", "--json")
    if isinstance(case.analyze, Fail):
        _assert_failed(run, case.analyze)
        assert run.out == b""
        return
    assert run.code == 0, run.err
    assert run.out.isascii(), "the JSON is not ASCII: a string from the image went out unescaped"
    report = json.loads(run.out)
    if case.analyze.files is not None:
        assert report["sizes"]["file_count"] == case.analyze.files
    for path, value in case.exact:
        assert _at(report, path) == value, path


def _at(doc, path: str):
    for key in path.split("."):
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


@pytest.mark.parametrize("case", _params("analyze"))
def test_analyze_table_and_html(case, archives, tmp_path):
    """`slimmer analyze --html` prints the table and writes the page, every string from the image shown
    escaped in both, or gives one error line and writes no page."""
    out = tmp_path / "out"
    out.mkdir()
    report = out / "report.html"
    run = _run(case, archives, tmp_path, "analyze", "--html", report)
    if isinstance(case.analyze, Fail):
        _assert_failed(run, case.analyze)
        assert run.out == b"" and os.listdir(out) == []
        return
    assert run.code == 0, run.err
    assert os.listdir(out) == ["report.html"]
    page = report.read_bytes()
    assert raw_controls(page) == [], "raw control characters in the HTML report"
    text = run.out.decode("utf-8")
    html = page.decode("utf-8")
    data = decode_data(html)
    assert raw_controls(json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")) == [], \
        "raw control characters in the explorer's data"
    shown_in_page = "\n".join([html, *_explorer_strings(data)])
    for shown in case.shown:
        assert shown in text, f"{shown!r} not in the table:\n{text}"
    for shown in case.paged:
        assert shown in shown_in_page, f"{shown!r} not in the HTML report"


def _explorer_strings(data: dict) -> list[str]:
    """What the page's explorer can show: every path of its tree, the steps, the findings."""
    paths = [""]
    for n in range(1, len(data["names"])):
        up = paths[n - data["up"][n]]
        paths.append(f"{up}/{data['names'][n]}" if up else data["names"][n])
    return paths + [layer["step"] for layer in data["layers"]] + [f["title"] for f in data["findings"]]


@pytest.mark.parametrize("to", [pytest.param("dir", id="to a directory"), pytest.param("tar", id="to a tar")])
@pytest.mark.parametrize("case", _params("export"))
def test_export(case, to, archives, tmp_path, outside):
    """`slimmer export` writes exactly the merged tree, or fails with one error line and writes nothing."""
    out = tmp_path / "out"
    out.mkdir()
    dest = out / ("root.tar" if to == "tar" else "root")
    try:
        _check_export(case, to, archives, tmp_path, out, dest)
    finally:
        subprocess.run(["rm", "-rf", str(out)], check=True)  # pytest's own cleanup recurses on deep trees


def _check_export(case, to, archives, tmp_path, out, dest):
    run = _run(case, archives, tmp_path, "export", dest, "--to", to)
    expected = case.export_outcome
    if isinstance(expected, OK) and to == "dir" and expected.dir_fails:
        expected = Fail(expected.dir_fails)
    if isinstance(expected, Fail):
        _assert_failed(run, expected)
        assert os.listdir(out) == [], "a failed export left output behind"
        return
    assert run.code == 0, run.err
    assert all(line.startswith("slimmer: warning: ") for line in run.err_lines), run.err
    for warned in case.warned:
        assert warned in run.err, run.err
    assert temps_in(out) == []
    if to == "dir":
        tree, groups = tree_of_dir(dest)
    else:
        tree, groups = tree_of_tar(dest.read_bytes())
    if expected.tree is not None:
        assert tree == expected.tree
    assert groups == {tuple(sorted(g)) for g in expected.links}


@pytest.mark.skipif(not SLIM, reason="`slimmer slim` does not exist yet (issue 4); its cases run once it does")
@pytest.mark.parametrize("mode", ["prune", "distroless"])
@pytest.mark.parametrize("case", _params("slim"))
def test_slim(case, mode, archives, tmp_path):
    """`slimmer slim` gives the case's outcome: an archive slimmer reads back, or one error line and no file."""
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "slim.tar"
    run = _run(case, archives, tmp_path, "slim", "-o", dest, "--mode", mode)
    expected = case.slim_outcome if mode == "prune" else case.distroless_outcome
    if isinstance(expected, Fail):
        _assert_failed(run, expected)
        assert os.listdir(out) == []
        return
    assert run.code == 0, run.err
    open_image(dest)
    assert [n for n in os.listdir(out) if n != "slim.tar"] == []


@pytest.fixture(scope="module")
def benign(tmp_path_factory) -> Path:
    """A plain image to compare each case with."""
    return docker([F("etc/motd", b"hello\n")])(tmp_path_factory.mktemp("benign"))


@pytest.mark.parametrize("case", _params("diff"))
def test_diff(case, benign, archives, tmp_path):
    """`slimmer diff` from the case to a plain image gives a report or one error line."""
    run = _run(case, archives, tmp_path, "diff", benign)
    if isinstance(case.diff_outcome, Fail):
        _assert_failed(run, case.diff_outcome)
        assert run.out == b""
        return
    assert run.code == 0, run.err
    assert run.err == ""


def test_corpus_is_large_and_names_are_unique():
    """The corpus holds at least 30 cases, each named once."""
    ids = [c.id for c in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("command", [pytest.param("analyze", id="analyze"), pytest.param("export", id="export")])
@pytest.mark.parametrize("make, compression", [
    pytest.param(hostile.zstd_bomb, "zstd", id="a zstd bomb"),
    pytest.param(hostile.gzip_bomb, "gzip", id="a gzip bomb"),
])
def test_bomb_stops_quickly_in_little_memory(make, compression, command, tmp_path):
    """A 4 GiB bomb in a tiny layer stops at --max-layer-size 50MB within seconds, in little memory, writing nothing."""
    archive = hostile._bomb(make, compression)(tmp_path)
    assert archive.stat().st_size < 5 << 20
    out = tmp_path / "out"
    out.mkdir()
    args = [command, str(archive)]
    if command == "export":
        args.append(str(out / "root"))
    run = run_slimmer(*args, "--max-layer-size", hostile.BOMB_LIMIT, report=tmp_path / "maxrss")
    err, elapsed, peak_mb = run.stderr.decode(), run.seconds, run.peak_mb
    assert run.returncode == 2, err
    assert err.startswith("slimmer: error: ") and "--max-layer-size" in err and err.count("\n") == 1
    assert elapsed < 20
    assert peak_mb < 100, f"peak RSS {peak_mb:.0f} MB"
    assert os.listdir(out) == []
    print(f"{command} {compression} bomb: {elapsed:.2f} s, peak RSS {peak_mb:.0f} MB")


def _explore_on_a_terminal(case: Case, archives, tmp_path: Path, monkeypatch) -> tuple[int | None, str]:
    """Run `slimmer explore` in this process with standard output and error on an 80x24
    pseudo-terminal; return (exit status, what it wrote). The screen must never open."""
    import fcntl
    import pty
    import struct
    import termios

    import slimmer.explorer.app

    def opened(*args, **kwargs):
        raise AssertionError("the explorer's screen opened")

    monkeypatch.setattr(slimmer.explorer.app, "run", opened)
    source, feeder = _source(case, archives, tmp_path)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    termios.tcsetattr(slave, termios.TCSANOW, termios.tcgetattr(slave)[:1] + [0] + termios.tcgetattr(slave)[2:])
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, chunks), daemon=True)
    reader.start()
    tty = os.fdopen(os.dup(slave), "w", encoding="utf-8", errors="backslashreplace", buffering=1)
    keyboard = os.fdopen(os.dup(slave), "r")
    saved = sys.argv, sys.stdin, sys.stdout, sys.stderr
    sys.argv = ["slimmer", "explore", str(source), *case.args]
    sys.stdin, sys.stdout, sys.stderr = keyboard, tty, tty
    code = None
    try:
        from slimmer.cli import main

        main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved
        tty.close()
        keyboard.close()
        os.close(slave)
        reader.join(10)
        os.close(master)
        if feeder:
            feeder.join(5)
    written = b"".join(chunks).decode("utf-8", "replace")
    # what stays on the screen: the progress display, drawn and erased, leaves nothing
    return code, screen_text(written)


def _drain(fd: int, chunks: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return  # every writer closed the terminal
        if not chunk:
            return
        chunks.append(chunk)


@pytest.mark.parametrize("case", [p for p in _params("analyze") if isinstance(p.values[0].analyze, Fail)])
def test_explore_fails_as_analyze_does_before_its_screen_opens(case, archives, tmp_path, monkeypatch):
    """On a terminal, `slimmer explore` gives each bad input the exact line `slimmer analyze`
    gives it, exit status 2, and never opens its screen."""
    for d in ("analyze", "explore"):
        (tmp_path / d).mkdir()
    expected = _run(case, archives, tmp_path / "analyze", "analyze")
    assert expected.code == 2, expected.err
    code, written = _explore_on_a_terminal(case, archives, tmp_path / "explore", monkeypatch)
    assert (code, written) == (2, expected.err)
