"""`slimmer analyze`: where the bytes of an image go."""

from __future__ import annotations

import json

import click

from slimmer.analyzer.report import analyze as analyze_image
from slimmer.cli.group import cli
from slimmer.cli.options import load, output_option, read_options
from slimmer.render import analysis_json, analysis_text


@cli.command()
@click.argument("archive")
@read_options
@output_option
@click.option("--top", default=20, show_default=True, help="How many paths to list.")
def analyze(archive, image_ref, platform, max_layer_size, output, as_json, top):
    """Show where the bytes of the image in ARCHIVE go: layers, waste, largest paths.

    ARCHIVE is a `docker save` tar, an OCI layout (tar or directory), or - for standard input.

    \b
        slimmer analyze app.tar
        docker save app | slimmer analyze - --json
    """
    image = load(archive, image_ref, platform, max_layer_size)
    result = analyze_image(image, top)
    if as_json or output == "json":
        click.echo(json.dumps(analysis_json(result, archive), indent=2))
    else:
        click.echo(analysis_text(result, archive, top))


