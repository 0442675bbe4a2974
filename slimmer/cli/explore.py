"""`slimmer explore`: an image's layers, files, findings and waste, in the terminal."""

from __future__ import annotations

import click

from slimmer.analyzer import report
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.cli.group import cli
from slimmer.cli.options import default_jobs, load, read_options
from slimmer.explorer import terminal
from slimmer.explorer.index import ImageIndex


@cli.command()
@click.argument("archive")
@read_options
@click.option("--no-content", is_flag=True,
              help="Do not look at file contents: categories by path only, no packages or duplicates.")
@click.option("--theme", type=click.Choice(["auto", "dark", "light"]), default="auto", show_default=True,
              help="Colours for a dark or a light terminal; auto asks COLORFGBG (t switches them while exploring).")
def explore(archive, jobs, image_ref, platform, max_layer_size, no_cache, no_content, theme):
    """Explore the image in ARCHIVE in the terminal, as dive does: its layers and Dockerfile
    steps, the file tree of each layer (its own changes, or the merged filesystem up to it),
    categories and packages, the findings and the wasted bytes. Press ? for the keys.

    ARCHIVE is what `slimmer analyze` reads: a `docker save` tar, an OCI layout (tar or
    directory), or - for standard input. The terminal must be at least 80x24.

    \b
        slimmer explore app.tar
        docker save app | slimmer explore -
    """
    terminal.check(archive_on_stdin=archive == "-")
    jobs = jobs or default_jobs()
    image = load(archive, image_ref, platform, max_layer_size, no_cache, jobs, AnalysisPolicy(not no_content))
    # the analysis `slimmer analyze` makes; its slow half is finished once the first screen is up
    pending = report.start(image, read_content=not no_content, jobs=jobs)
    index = ImageIndex(image, pending.fs)
    terminal.keyboard()
    # Textual is loaded only here: the other commands start without it
    from slimmer.explorer.app import run

    return run(index, archive, terminal.background() if theme == "auto" else theme, pending)
