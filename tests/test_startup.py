"""Start-up: `slimmer --help` lists every command without importing one, and the table it
lists them from says what the commands themselves say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import click.testing
import pytest
from click.utils import make_default_short_help

from slimmer.cli import cli
from slimmer.cli.group import COMMANDS

ROOT = Path(__file__).resolve().parent.parent


def test_the_command_table_names_every_command_with_its_own_summary():
    """Each command in the lazy table is defined by the module the table names, and its help
    summary (as --help shortens it, at any width) is the table's."""
    commands = cli.load_all()
    assert set(commands) == set(COMMANDS)
    for name, (module, summary) in COMMANDS.items():
        command = commands[name]
        assert command.callback.__module__ == module
        for width in (30, 45, 60, 80, 200):
            assert make_default_short_help(summary, width) == command.get_short_help_str(width), name


@pytest.mark.parametrize("args", [["--help"], ["--version"]], ids=["--help", "--version"])
def test_help_imports_no_command(args):
    """`slimmer --help` and `--version` import neither a command module nor the reader,
    analyzer, rewriter or renderers."""
    code = ("import sys; from slimmer.cli import main; sys.argv = ['slimmer', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('slimmer') or m in HEAVY)), file=sys.stderr)")
    heavy = ("multiprocessing", "concurrent.futures", "ctypes", "rich")
    done = subprocess.run([sys.executable, "-c", f"HEAVY = {heavy!r}\n" + code, *args], capture_output=True,
                          text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    loaded = done.stderr.split()
    # slimmer.workers is there for the Ctrl-C handler; its pools import their modules when made
    light = ("slimmer", "slimmer.cli", "slimmer.cli.group", "slimmer.errors", "slimmer.workers")
    assert loaded and all(m in light for m in loaded), loaded
    if args == ["--help"]:
        for name in COMMANDS:
            assert f"  {name}  " in done.stdout


def test_a_command_runs_from_the_lazy_table():
    """A command of the table runs as before (its module is imported when it is asked for)."""
    result = click.testing.CliRunner().invoke(cli, ["analyze", "--help"])
    assert result.exit_code == 0 and "ARCHIVE" in result.output
