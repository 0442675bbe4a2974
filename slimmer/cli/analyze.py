"""`slimmer analyze`: where the bytes of an image go, who put them there, what would save them."""

from __future__ import annotations

import json

import click

from slimmer.analyzer.report import analyze as analyze_image
from slimmer.cli.group import cli
from slimmer.cli.options import load, output_option, read_options
from slimmer.html import write_html
from slimmer.render import BY, analysis_json, analysis_text


@cli.command()
@click.argument("archive")
@read_options
@output_option
@click.option("--top", default=20, show_default=True, help="How many paths to list.")
@click.option("--by", type=click.Choice(BY), help="Show one table: bytes by category, package, layer, step or dir.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write a self-contained HTML report (treemap, layers, findings) to this file.")
@click.option("--no-content", is_flag=True,
              help="Do not re-read file contents: categories by path only, no packages (faster).")
def analyze(archive, image_ref, platform, max_layer_size, no_cache, output, as_json, top, by, html_path, no_content):
    """Show where the bytes of the image in ARCHIVE go: layers, waste, categories, packages,
    Dockerfile steps, and findings with the bytes each fix would save.

    ARCHIVE is a `docker save` tar, an OCI layout (tar or directory), or - for standard input.

    \b
        slimmer analyze app.tar
        slimmer analyze app.tar --by package
        slimmer analyze app.tar --html report.html
        docker save app | slimmer analyze - --json
    """
    image = load(archive, image_ref, platform, max_layer_size, no_cache)
    result = analyze_image(image, top, read_content=not no_content)
    if html_path:
        write_html(result, archive, html_path)
    if as_json or output == "json":
        click.echo(json.dumps(analysis_json(result, archive, top), indent=2))
    else:
        click.echo(analysis_text(result, archive, top, by))
