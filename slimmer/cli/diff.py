"""`slimmer diff`: what changed between two images."""

from __future__ import annotations

import click

from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.diff import diff_images
from slimmer.cli.group import cli
from slimmer.cli.options import ARCHIVE, load, output_option, read_options, text_width
from slimmer.render import echo
from slimmer.render.json import diff_json, dumps
from slimmer.render.text import diff_text


@cli.command()
@click.argument("archive_a", type=ARCHIVE)
@click.argument("archive_b", type=ARCHIVE)
@read_options
@output_option
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=0),
              help="How many paths, categories and packages to list.")
@click.option("--paths-only", is_flag=True, help="Categorise by path rules only; don't read file contents.")
def diff(archive_a, archive_b, jobs, image_ref, platform, max_layer_size, no_cache, output, as_json, top, paths_only):
    """Show what changed from the image in ARCHIVE_A to the one in ARCHIVE_B: paths added,
    removed and changed, bytes by category and by package, and layers shared or not.

    \b
        slimmer diff app.tar app-slim.tar
        slimmer diff app.tar app-slim.tar --json
    """
    if archive_a == archive_b == "-":
        raise click.UsageError("standard input (-) can be read only once")
    policy = AnalysisPolicy(not paths_only)
    a = load(archive_a, image_ref, platform, max_layer_size, no_cache, jobs, policy)
    b = load(archive_b, image_ref, platform, max_layer_size, no_cache, jobs, policy)
    result = diff_images(a, b, read=not paths_only)
    if as_json or output == "json":
        echo(dumps(diff_json(result, archive_a, archive_b)))
    else:
        echo(diff_text(result, archive_a, archive_b, top, text_width()), styled=True)
