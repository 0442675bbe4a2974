"""The README documents every command, and every command has help."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from slimmer.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
COMMANDS = sorted(cli.load_all())  # the group imports its commands lazily


def test_the_cli_has_the_commands_the_issues_ask_for():
    """analyze, audit, check, diff, export and slim are all registered."""
    assert {"analyze", "audit", "check", "diff", "export", "slim"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example_and_is_in_the_readme(name):
    """`slimmer NAME --help` exits 0 and shows an example; the README names `slimmer NAME`."""
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert f"slimmer {name} " in result.output
    assert f"slimmer {name}" in README


def test_readme_starts_with_the_setup_and_test_commands():
    """The first two code blocks are the quick start and the test command that .ci/run runs."""
    blocks = README.split("```")[1::2]
    assert "slimmer analyze fixtures/" in blocks[0] and "pip install" in blocks[0]
    assert blocks[1].strip() == "bash tests/run.sh"
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "bash tests/run.sh" in ci


def test_the_readme_documents_every_table_and_column_of_the_audit_database(tmp_path):
    """Each table the migrations create, and each of its columns, is in the README's table of
    the audit database, in that table's row."""
    import sqlite3

    from slimmer.audit.db import Database

    Database.open(tmp_path / "audit.sqlite").close()
    section = README.split("### The audit database", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `")}
    with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert set(tables) == set(rows)
        for table in tables:
            for column in (r[1] for r in conn.execute(f"PRAGMA table_info({table})")):
                assert f"`{column}`" in rows[table], (table, column)
