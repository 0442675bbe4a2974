"""The audit database: SQLite and PostgreSQL (a private cluster of Debian's server, started on
127.0.0.1) hold the same rows and answer the same reports; migrations are numbered, applied
once, in order, and a schema newer than this slimmer is refused."""

from __future__ import annotations

import json
import sqlite3

import pytest
from pushed import blob_digests, db_figures, run_cli
from servers import BlobOpens

from slimmer.audit import db as audit_db
from slimmer.audit.db import LATEST, Database
from slimmer.errors import DatabaseError

REPORTS = [(), ("--by", "repository"), ("--by", "layer"), ("--package", "libssl3"), ("--package", "base-files"),
           ("--category", "docs"), ("--category", "cache"), ("--repo", "team/*")]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """An empty audit database of each kind (PostgreSQL: a fresh database on the private cluster)."""
    if request.param == "sqlite":
        return str(tmp_path / "audit.sqlite")
    return request.getfixturevalue("postgres").database(f"t{abs(hash(request.node.name)) % 10**8}")


def report(target, *args) -> dict:
    code, out, err = run_cli("audit", "--report", "--db", target, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_postgresql_keeps_what_sqlite_keeps_and_answers_the_same_reports(pushed, postgres, tmp_path):
    """One audit into each: the same image rows and figures; every --report query gives the
    same document from both; a re-audit on PostgreSQL opens no blob."""
    sqlite = tmp_path / "audit.sqlite"
    outs = []
    for target in (sqlite, postgres.url):
        code, out, err = run_cli("audit", pushed.storage, "--db", target, "--json", "--jobs", "2")
        assert code == 0, err
        outs.append(sorted(json.loads(out)["images"], key=lambda i: (i["tags"], i["platform"])))
    assert outs[0] == outs[1]
    assert db_figures(sqlite) == db_figures(postgres.url) == pushed.expected
    for args in REPORTS:
        a, b = report(sqlite, *args), report(postgres.url, *args)
        if "images" in a:
            a["images"].sort(key=lambda i: (i["tags"], i["platform"]))
            b["images"].sort(key=lambda i: (i["tags"], i["platform"]))
        assert a == b, args
    assert len(report(postgres.url, "--package", "base-files")["packages"]) == 6
    assert report(postgres.url, "--by", "layer")["layers"][0]["images"] == 6
    opens = BlobOpens(pushed.storage)
    code, _out, err = run_cli("audit", pushed.storage, "--db", postgres.url, "--jobs", "1")
    assert code == 0, err
    assert opens.counts() == {} and "6 images unchanged since the last audit" in err
    opens.close()
    assert len(blob_digests(pushed.storage)) == 18


def test_migrations_run_once_in_order_and_keep_the_data(target):
    """A new database gets every migration; one at version 1 gets the rest, its rows kept;
    opening again applies nothing."""
    db = Database.open(target, upto=1)
    assert db.version() == 1
    audit_id = db.begin_audit("/srv", "registry", "p", "local")
    db.close()
    db = Database.open(target)
    try:
        assert db.version() == LATEST
        assert [r[0] for r in db.query("SELECT version FROM schema_migrations ORDER BY version")] == \
            [m[0] for m in audit_db.MIGRATIONS]
        assert db.query("SELECT storage FROM audits WHERE id = ?", (audit_id,)) == [("/srv",)]
        assert db.migrate() == []
        assert db.query("SELECT COUNT(*) FROM image_fixes") == [(0,)]
    finally:
        db.close()


def test_a_database_newer_than_this_slimmer_is_refused(target):
    """A schema version past the last migration this slimmer knows is an error naming it."""
    db = Database.open(target)
    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (LATEST + 1, "from the future", "now"))
    db.close()
    with pytest.raises(DatabaseError, match=f"schema version {LATEST + 1}"):
        Database.open(target)


def test_audit_with_an_unusable_database_is_one_error_line(pushed, tmp_path):
    """A --db file that is not SQLite, or a PostgreSQL server nobody listens on: exit 2 and
    one `slimmer: error:` line."""
    bad = tmp_path / "not.sqlite"
    bad.write_bytes(b"this is not a database at all" * 100)
    for target in (bad, "postgresql://nobody@127.0.0.1:9/none"):
        code, out, err = run_cli("audit", pushed.storage, "--db", target)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("slimmer: error: ") and "audit database" in err, err


def test_the_default_database_lives_in_the_cache_directory(pushed, tmp_path, monkeypatch):
    """Without --db, the audit lands in audit.sqlite of $SLIMMER_CACHE_DIR, and --report reads it."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))
    code, _out, err = run_cli("audit", pushed.storage, "--repo", "tools/*", "--jobs", "1")
    assert code == 0, err
    with sqlite3.connect(tmp_path / "cache" / "audit.sqlite") as conn:
        assert conn.execute("SELECT repository, tag FROM images").fetchall() == [("tools/cli", "2")]
    code, out, err = run_cli("audit", "--report", "--json")
    assert code == 0, err
    assert [i["tags"] for i in json.loads(out)["images"]] == [["tools/cli:2"]]


def test_report_of_an_empty_database_says_so(tmp_path):
    """--report on a database that holds no image: exit 2, one error line."""
    code, out, err = run_cli("audit", "--report", "--db", tmp_path / "empty.sqlite")
    assert code == 2 and out == "" and "holds no image" in err and err.count("\n") == 1
