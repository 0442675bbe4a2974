"""`slimmer analyze`: where the bytes of an image go, who put them there, what would save them."""

from __future__ import annotations

import click

from slimmer import fleet
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.report import analyze as analyze_image
from slimmer.cli.group import cli
from slimmer.cli.options import default_jobs, load, output_option, read_options, show_fleet
from slimmer.model import verified
from slimmer.render import echo
from slimmer.render.html import write_html
from slimmer.render.json import analysis_json, dumps
from slimmer.render.text import BY, analysis_text


@cli.command()
@click.argument("archives", nargs=-1, required=True)
@read_options
@output_option
@click.option("--top", default=20, show_default=True, help="How many paths to list.")
@click.option("--by", type=click.Choice(BY), help="Show one table: bytes by category, package, layer, step or dir.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write a self-contained HTML report (treemap, layers, findings) to this file.")
@click.option("--no-content", is_flag=True,
              help="Do not look at file contents: categories by path only, no packages or duplicates.")
def analyze(archives, jobs, image_ref, platform, max_layer_size, no_cache, output, as_json, top, by, html_path,
            no_content):
    """Show where the bytes of the image in ARCHIVE go: layers, waste, categories, packages,
    Dockerfile steps, and findings with the bytes each fix would save.

    ARCHIVE is a `docker save` tar, an OCI layout (tar or directory), or - for standard input.
    Given several archives, print one row per image instead (as `slimmer audit` does).

    \b
        slimmer analyze app.tar
        slimmer analyze a.tar b.tar c.tar --jobs 2
        slimmer analyze app.tar --by package
        slimmer analyze app.tar --html report.html
        docker save app | slimmer analyze - --json
    """
    if len(archives) > 1:
        rows = fleet.audit(list(archives), jobs=jobs or default_jobs(), use_cache=not no_cache,
                           read_content=not no_content, max_layer_size=max_layer_size)
        return show_fleet(rows, as_json or output == "json")
    archive = archives[0]
    jobs = jobs or default_jobs()
    # the analysis runs while the last layers are still hashed; nothing is shown before
    # every digest is checked
    image = load(archive, image_ref, platform, max_layer_size, no_cache, jobs, AnalysisPolicy(not no_content),
                 defer=True)
    result = analyze_image(image, top, read_content=not no_content, jobs=jobs)
    verified(image)
    if html_path:
        write_html(result, archive, html_path)
    if as_json or output == "json":
        echo(dumps(analysis_json(result, archive, top)))
    else:
        echo(analysis_text(result, archive, top, by))
