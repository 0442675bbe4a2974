"""Ctrl-C during `slimmer audit`: a real audit of a registry storage with many blobs (written in
the registry's layout by builders.write_many_tags), interrupted with SIGINT while its forked
workers scan the blobs or analyze the images, exits at once with status 130 and one line,
leaves no worker, and leaves the audit database (SQLite, and PostgreSQL on a private cluster)
holding only whole transactions: a re-audit then gives what an uninterrupted audit gives."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pushed import db_figures, run_cli
from servers import child_env

from builders import write_many_tags

TAGS = 140  # more than two chunks of analyses (audit.run.CHUNK), so one is under way when rows land
REPORTS = [("--by", "repository"), ("--by", "layer"), ("--category", "docs")]


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    return write_many_tags(tmp_path_factory.mktemp("many") / "storage", TAGS)


def _sorted(out: str) -> list[dict]:
    return sorted(json.loads(out)["images"], key=lambda i: (i["tags"], i["platform"]))


def _reports(target) -> dict:
    out = {}
    for args in REPORTS:
        code, text, err = run_cli("audit", "--report", "--db", target, "--json", *args)
        assert code == 0, err
        out[args] = json.loads(text)
    return out


@pytest.fixture(scope="module")
def clean(storage, tmp_path_factory):
    """What an uninterrupted audit gives: its rows, the figures it keeps, its reports."""
    target = tmp_path_factory.mktemp("clean") / "audit.sqlite"
    code, out, err = run_cli("audit", storage, "--db", target, "--json", "--jobs", "2")
    assert code == 0, err
    return _sorted(out), db_figures(target), _reports(target)


class Counts:
    """Rows committed so far in an audit database another process writes (0 before its tables exist)."""

    def __init__(self, target: str):
        self.target = target
        self.conn = None
        if target.startswith("postgresql://"):
            import psycopg

            self.conn = psycopg.connect(target, autocommit=True)

    def __call__(self, table: str) -> int:
        if self.conn is not None:
            import psycopg

            try:
                return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            except psycopg.errors.UndefinedTable:
                return 0
        try:
            with sqlite3.connect(f"file:{self.target}?mode=ro", uri=True) as conn:
                return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError as err:  # no file, or no table yet
            if "no such table" in str(err) or "unable to open" in str(err):
                return 0
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def _wait_for(what, proc: subprocess.Popen, timeout: float = 120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = what()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the audit ended (status {proc.returncode}) before the interrupt")
        time.sleep(0.005)
    raise AssertionError("timed out")


def _target(kind: str, request, tmp_path: Path) -> str:
    if kind == "sqlite":
        return str(tmp_path / "audit.sqlite")
    return request.getfixturevalue("postgres").database(f"interrupted_{request.node.callspec.id.replace('-', '_')}")


STAGES = {
    # workers are scanning and some scans are kept: the SIGINT lands among the scans
    "scans": lambda counts, pid: len(_children(pid)) >= 2 and counts("layer_scans") >= 1,
    # the first chunk's images are kept and the next chunk is being analyzed in workers
    "analyses": lambda counts, pid: counts("images") >= 1 and len(_children(pid)) >= 2,
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("stage", list(STAGES))
def test_sigint_mid_audit_exits_130_at_once_and_a_re_audit_equals_a_clean_one(storage, clean, kind, stage,
                                                                              request, tmp_path):
    """SIGINT while workers scan the blobs (or analyze the images): exit 130 within a second,
    `slimmer: error: interrupted` alone on stderr, nothing on stdout, every worker gone; the
    database holds part of the work, in whole transactions, and the re-audit that builds on
    it gives the rows, kept figures and reports of an uninterrupted audit."""
    target = _target(kind, request, tmp_path)
    env = {**child_env(), "SLIMMER_CACHE_DIR": str(tmp_path / "cache")}
    counts = Counts(target)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "slimmer", "audit", str(storage), "--db", target, "--json",
                                 "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            _wait_for(lambda: STAGES[stage](counts, proc.pid), proc)
            workers = _children(proc.pid)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130, err
        assert err == b"slimmer: error: interrupted\n" and out == b""
        assert took < 1, f"{took:.2f} s to stop"
        end = time.monotonic() + 1
        while _alive(workers) and time.monotonic() < end:
            time.sleep(0.01)
        assert not _alive(workers), "a worker outlived the interrupted audit"
        scans, images = counts("layer_scans"), counts("images")
    finally:
        counts.close()
    rows, figures, reports = clean
    if stage == "scans":
        assert 1 <= scans < TAGS + 1 and images == 0, (scans, images)
    else:
        assert scans == TAGS + 1 and 1 <= images < TAGS, (scans, images)
    code, again, err = run_cli("audit", storage, "--db", target, "--json", "--jobs", "2")
    assert code == 0, err
    if stage == "scans":
        assert f"{scans} known from the database" in err
    else:
        assert f"{images} images unchanged since the last audit" in err
    assert _sorted(again) == rows
    assert db_figures(target) == figures
    assert _reports(target) == reports
