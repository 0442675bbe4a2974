"""`slimmer analyze`: where the bytes of an image go, who put them there, what would save them."""

from __future__ import annotations

import click

from slimmer import fleet, outputs
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.report import analyze as analyze_image
from slimmer.cli.group import cli
from slimmer.cli.options import (
    ARCHIVE,
    default_jobs,
    force_option,
    load,
    output_option,
    read_options,
    refuse_with_several,
    show_fleet,
    show_progress,
    text_width,
)
from slimmer.model import verified
from slimmer.render import echo
from slimmer.render.html import page
from slimmer.render.json import analysis_json, dumps
from slimmer.render.text import BY, analysis_text

# what a fleet row cannot honour: one image's selection, tables and page
ONE_IMAGE_ONLY = ("image_ref", "platform", "top", "by", "html_path", "force")


@cli.command()
@click.argument("archives", nargs=-1, required=True, type=ARCHIVE)
@read_options
@output_option
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=0), help="How many paths to list.")
@click.option("--by", type=click.Choice(BY), help="Show one table: bytes by category, package, layer, step or dir.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, allow_dash=True, readable=False),
              help="Also write a self-contained HTML report (treemap, layers, findings) to this file (- for "
                   "standard output, the report then goes to standard error).")
@click.option("--no-content", is_flag=True,
              help="Do not look at file contents: categories by path only, no packages or duplicates.")
@force_option
@click.pass_context
def analyze(ctx, archives, jobs, image_ref, platform, max_layer_size, no_cache, output, as_json, top, by, html_path,
            no_content, force):
    """Show where the bytes of the image in ARCHIVE go: layers, waste, categories, packages,
    Dockerfile steps, and findings with the bytes each fix would save.

    ARCHIVE is a `docker save` tar, an OCI layout (tar or directory), or - for standard input.
    Given several archives, print one row per image instead (as `slimmer audit` does); the
    options that pick or show one image (--image, --platform, --top, --by, --html) are then
    refused.

    \b
        slimmer analyze app.tar
        slimmer analyze a.tar b.tar c.tar --jobs 2
        slimmer analyze app.tar --by package
        slimmer analyze app.tar --html report.html
        docker save app | slimmer analyze - --json
    """
    as_json = as_json or output == "json"
    if len(archives) > 1:
        refuse_with_several(ctx, ONE_IMAGE_ONLY, "with several archives (one row each)")
        if archives.count(outputs.STDOUT) > 1:
            raise click.UsageError("standard input (-) can be read only once")
        rows = fleet.audit(list(archives), jobs=jobs or default_jobs(), use_cache=not no_cache,
                           read_content=not no_content, max_layer_size=max_layer_size)
        return show_fleet(rows, as_json)
    archive = archives[0]
    report = outputs.Output("HTML report", html_path, force)
    outputs.check([report], [archive])
    jobs = jobs or default_jobs()
    with show_progress(archive) as progress:
        # the analysis runs while the last layers are still hashed; nothing is shown before
        # every digest is checked
        image = load(archive, image_ref, platform, max_layer_size, no_cache, jobs, AnalysisPolicy(not no_content),
                     progress, defer=True)
        result = analyze_image(image, top, read_content=not no_content, jobs=jobs,
                               steps=progress.step if progress else None)
        verified(image)
    if html_path:
        outputs.write(report, page(result, archive).encode("utf-8"))
    to_stderr = report.to_stdout
    if as_json:
        echo(dumps(analysis_json(result, archive, top)), err=to_stderr)
    else:
        echo(analysis_text(result, archive, top, by, text_width()), err=to_stderr, styled=True)
