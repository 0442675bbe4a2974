"""The click group every command registers on, and the table of commands it loads lazily.

``slimmer --help`` lists every command from ``COMMANDS`` without importing one: a command's
module (and the reader, analyzer and rewriter it pulls in) is imported only when that command
runs. A command module registers with ``@cli.command()`` as usual; tests/test_startup.py holds
the table to the commands the modules define, summaries included.
"""

import gc
import importlib
from contextlib import contextmanager

import click
from click.utils import make_default_short_help

# name -> (module that defines it, the first paragraph of its help)
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("slimmer.cli.analyze", "Show where the bytes of the image in ARCHIVE go: layers, waste, categories, "
                "packages, Dockerfile steps, and findings with the bytes each fix would save."),
    "audit": ("slimmer.cli.audit", "Audit every image of PATH: the storage root of a distribution registry (every "
              "repository:tag, read offline from docker/registry/v2; a row per platform of an index) or a directory "
              "of image archives (docker save tars, OCI layouts). Each row: size, efficiency, wasted bytes, what "
              "slimming could save, the worst finding."),
    "check": ("slimmer.cli.check", "Check the image in ARCHIVE against size, waste, category and finding rules: exit 0 "
              "when every rule passes, 1 when one fails (or a dive rule is misconfigured, as dive says), 2 on an "
              "error."),
    "diff": ("slimmer.cli.diff", "Show what changed from the image in ARCHIVE_A to the one in ARCHIVE_B: paths added, "
             "removed and changed, bytes by category and by package, and layers shared or not."),
    "explore": ("slimmer.cli.explore", "Explore the image in ARCHIVE in the terminal, as dive does: its layers and "
                "Dockerfile steps, the file tree of each layer (its own changes, or the merged filesystem up to it), "
                "categories and packages, the findings and the wasted bytes. Press ? for the keys."),
    "export": ("slimmer.cli.export",
               "Write the root filesystem of the image in ARCHIVE to DEST, like `docker export`."),
    "slim": ("slimmer.cli.slim", "Write a slimmer copy of the image in ARCHIVE that still runs: flattened, with what "
             "the mode deems unneeded left out, and a summary of the bytes removed by category."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when first asked for by name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name][0])
        return self.commands.get(cmd_name)

    def load_all(self) -> dict[str, click.Command]:
        """Import every command of the table; return them all by name."""
        for name in COMMANDS:
            self.get_command(click.Context(self), name)
        return dict(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, make_default_short_help(COMMANDS[name][1], limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="slimmer")
def cli():
    """Analyze and slim container image archives offline: no daemon, no registry."""


GC_TUNED = "gc-tuned"


@contextmanager
def run_gc():
    """Tune the cycle collector for one command run, and restore it after; yields the root
    context object that tells ``load`` to freeze the image out of collections.

    A run builds hundreds of thousands of small acyclic objects (entries, paths, rows); with
    the default thresholds the collector walks them all again and again (about 10% of an
    analyze). Inside, collections are rarer and the loaded image is frozen out of them."""
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield {GC_TUNED: True}
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
