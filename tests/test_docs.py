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
