"""`slimmer check`: a CI gate on an image's size, waste and categories (exit 0 pass, 1 fail)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from slimmer.analyzer.categories import CATEGORIES
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.gate import check as check_image
from slimmer.analyzer.report import analyze
from slimmer.cli.group import cli
from slimmer.cli.options import Size, default_jobs, load, output_option, read_options
from slimmer.config_file import load_thresholds
from slimmer.errors import ConfigError
from slimmer.render import echo
from slimmer.render.ci import write_junit, write_sarif
from slimmer.render.json import check_json, dumps
from slimmer.render.text import check_text
from slimmer.sizes import parse_size


def _category_limit(text: str) -> tuple[str, int]:
    name, sep, size = text.partition("=")
    if not sep or name not in CATEGORIES:
        raise ConfigError(f"--max-category {text!r}: expected CATEGORY=SIZE with a category among "
                          f"{', '.join(CATEGORIES)}")
    return name, parse_size(size, f"--max-category {name}")


@cli.command()
@click.argument("archive")
@read_options
@output_option
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Settings file (.slimmer.toml, or pyproject.toml with [tool.slimmer]); default: the nearest one.")
@click.option("--lowest-efficiency", type=click.FloatRange(0, 1), metavar="RATIO",
              help="Fail below this dive efficiency (0.9).")
@click.option("--highest-wasted-bytes", type=Size(), help="Fail above these dive wasted bytes (e.g. 20MB).")
@click.option("--highest-user-wasted-percent", type=click.FloatRange(0, 1), metavar="RATIO",
              help="Fail above this share of wasted bytes in the user layers (0.1 = 10%).")
@click.option("--max-size", type=Size(), help="Fail when all layers together exceed this size.")
@click.option("--max-category", multiple=True, metavar="CATEGORY=SIZE",
              help="Fail when a category's final bytes exceed SIZE (repeatable), e.g. cache=10MB.")
@click.option("--forbid-category", multiple=True, type=click.Choice(CATEGORIES),
              help="Fail when the final filesystem holds any byte of this category (repeatable).")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write a JUnit XML report here.")
@click.option("--sarif", "sarif_path", type=click.Path(dir_okay=False), help="Also write a SARIF 2.1.0 log here.")
@click.pass_context
def check(ctx, archive, jobs, image_ref, platform, max_layer_size, no_cache, output, as_json, config_path,
          lowest_efficiency, highest_wasted_bytes, highest_user_wasted_percent, max_size, max_category,
          forbid_category, junit_path, sarif_path):
    """Check the image in ARCHIVE against size and waste thresholds: exit 0 when every rule
    passes, 1 when one fails, 2 on an error.

    Thresholds come from the options, else from .slimmer.toml or [tool.slimmer] in
    pyproject.toml, else dive's defaults (efficiency >= 0.9, user wasted share <= 0.1).

    \b
        slimmer check app.tar --forbid-category toolchain --max-size 200MB
        slimmer check app.tar --junit check.xml --sarif check.sarif
    """
    thresholds, source = load_thresholds(config_path)
    if source is not None:
        echo(f"slimmer: thresholds from {source}", err=True)
    given = {"lowest_efficiency": lowest_efficiency, "highest_wasted_bytes": highest_wasted_bytes,
             "highest_user_wasted_percent": highest_user_wasted_percent, "max_size": max_size}
    changes = {k: v for k, v in given.items() if v is not None}
    if max_category:
        changes["max_category_bytes"] = {**thresholds.max_category_bytes, **dict(map(_category_limit, max_category))}
    if forbid_category:
        changes["forbidden_categories"] = tuple(dict.fromkeys(thresholds.forbidden_categories + forbid_category))
    thresholds = dataclasses.replace(thresholds, **changes)
    jobs = jobs or default_jobs()
    image = load(archive, image_ref, platform, max_layer_size, no_cache, jobs, AnalysisPolicy())
    analysis = analyze(image, jobs=jobs)
    result = check_image(analysis, thresholds, archive)
    if junit_path:
        write_junit(result, junit_path)
    if sarif_path:
        write_sarif(result, sarif_path, analysis.findings)
    if as_json or output == "json":
        echo(dumps(check_json(result)))
    else:
        echo(check_text(result))
    ctx.exit(0 if result.passed else 1)
