"""`slimmer check`: a CI gate on an image's size, waste, categories and findings (exit 0 pass,
1 fail, 2 error). Its rule options are generated from the one schema, ``gate.RULES``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from slimmer import outputs
from slimmer.analyzer.categories import CATEGORIES
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.findings import DESCRIPTIONS
from slimmer.analyzer.gate import CATEGORIES as CATEGORY_LIST
from slimmer.analyzer.gate import CATEGORY_SIZES, FINDING_SIZES, FINDINGS, RULES, Rule
from slimmer.analyzer.gate import check as check_image
from slimmer.analyzer.report import analyze
from slimmer.cli.group import cli
from slimmer.cli.options import (
    ARCHIVE,
    default_jobs,
    force_option,
    load,
    output_option,
    read_options,
    show_progress,
    text_width,
)
from slimmer.config_file import load_thresholds, rule_value
from slimmer.errors import ConfigError
from slimmer.render import echo
from slimmer.render.ci import junit_xml, sarif_text
from slimmer.render.json import check_json, dumps
from slimmer.render.text import check_text

OFF = "off"  # a rule turned off on the command line (None means: not given)


class RuleValue(click.ParamType):
    """The value of one rule as the schema reads it (ratio, percentage, size, share, disabled)."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.name = rule.kind

    def convert(self, value, param, ctx):
        try:
            parsed = rule_value(self.rule, value, f"--{self.rule.key}")
        except ConfigError as err:
            self.fail(str(err), param, ctx)
        return OFF if parsed is None else parsed


class NamedSize(click.ParamType):
    """``NAME=SIZE`` for a category or finding limit."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.name = "name=size"

    def convert(self, value, param, ctx):
        name, sep, size = str(value).partition("=")
        if not sep:
            self.fail(f"--{self.rule.key} {value!r}: expected {self.rule.metavar}", param, ctx)
        try:
            return next(iter(rule_value(self.rule, {name: size}, f"--{self.rule.key}").items()))
        except ConfigError as err:
            self.fail(str(err), param, ctx)


def _rule_option(rule: Rule):
    names = [f"--{rule.key}"] + ([f"--{rule.dive}"] if rule.dive else [])
    if rule.kind in (CATEGORY_SIZES, FINDING_SIZES):
        return click.option(*names, rule.field, multiple=True, type=NamedSize(rule), metavar=rule.metavar,
                            help=rule.help)
    if rule.kind in (CATEGORY_LIST, FINDINGS):
        choices = CATEGORIES if rule.kind == CATEGORY_LIST else tuple(DESCRIPTIONS)
        return click.option(*names, rule.field, multiple=True, type=click.Choice(choices), metavar=rule.metavar,
                            help=rule.help)
    return click.option(*names, rule.field, type=RuleValue(rule), metavar=rule.metavar, help=rule.help)


def rule_options(f):
    """Every rule of the schema as an option (dive's three also under dive's names)."""
    for rule in reversed(RULES):
        f = _rule_option(rule)(f)
    return f


def _apply(thresholds, given: dict):
    changes: dict[str, object] = {}
    for rule in RULES:
        value = given.get(rule.field)
        if value is None or value == ():
            continue
        current = getattr(thresholds, rule.field)
        if rule.kind in (CATEGORY_SIZES, FINDING_SIZES):
            changes[rule.field] = {**current, **dict(value)}
        elif rule.kind in (CATEGORY_LIST, FINDINGS):
            changes[rule.field] = tuple(dict.fromkeys(current + tuple(value)))
        else:
            changes[rule.field] = None if value == OFF else value
    broken = tuple(m for m in thresholds.misconfigured if m[0] not in changes)
    return dataclasses.replace(thresholds, **changes, misconfigured=broken)


SETTINGS = click.Path(dir_okay=False, exists=True, path_type=Path)


@cli.command()
@click.argument("archive", type=ARCHIVE)
@read_options
@output_option
@click.option("--config", "config_path", type=SETTINGS,
              help="Settings file: .slimmer.toml or pyproject.toml ([tool.slimmer]), or a dive rules file "
                   "(.dive-ci); default: the nearest slimmer file, else ./.dive-ci.")
@click.option("--ci-config", "ci_config", type=SETTINGS, help="dive's spelling of --config, for a .dive-ci file.")
@rule_options
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, allow_dash=True, readable=False),
              help="Also write a JUnit XML report here (- for standard output).")
@click.option("--sarif", "sarif_path", type=click.Path(dir_okay=False, allow_dash=True, readable=False),
              help="Also write a SARIF 2.1.0 log here (- for standard output).")
@force_option
@click.pass_context
def check(ctx, archive, jobs, image_ref, platform, max_layer_size, no_cache, output, as_json, config_path, ci_config,
          junit_path, sarif_path, force, **rules):
    """Check the image in ARCHIVE against size, waste, category and finding rules: exit 0 when
    every rule passes, 1 when one fails (or a dive rule is misconfigured, as dive says), 2 on an
    error.

    Rules come from the options, else from the nearest .slimmer.toml or [tool.slimmer] of
    pyproject.toml, else from ./.dive-ci as `dive --ci` reads it, else dive's defaults
    (efficiency >= 0.9, user wasted share <= 0.1). dive's option names (--lowestEfficiency,
    --highestWastedBytes, --highestUserWastedPercent) and values (0.9, 20MB, disabled) work too.

    \b
        slimmer check app.tar --forbid-category toolchain --max-size 200MB
        slimmer check app.tar --max-could-save 20% --forbid-finding runs-as-root
        slimmer check app.tar --ci-config .dive-ci --junit check.xml --sarif check.sarif
    """
    if config_path and ci_config:
        raise click.UsageError("give --config or --ci-config, not both")
    loaded = load_thresholds(config_path or ci_config)
    if loaded.source is not None:
        kind = " (dive's rules file)" if loaded.dive_format else ""
        echo(f"slimmer: thresholds from {loaded.source}{kind}", err=True)
    for line in loaded.warnings:
        echo(f"slimmer: warning: {line}", err=True)
    thresholds = _apply(loaded.thresholds, rules)
    reports = [outputs.Output("JUnit report", junit_path, force), outputs.Output("SARIF log", sarif_path, force)]
    settings = [str(p) for p in (config_path, ci_config, loaded.source) if p]
    outputs.check([r for r in reports if r.path], [archive, *settings])
    jobs = jobs or default_jobs()
    with show_progress(archive) as progress:
        image = load(archive, image_ref, platform, max_layer_size, no_cache, jobs, AnalysisPolicy(), progress)
        analysis = analyze(image, jobs=jobs, steps=progress.step if progress else None)
    result = check_image(analysis, thresholds, archive)
    if junit_path:
        outputs.write(reports[0], junit_xml(result).encode("utf-8"))
    if sarif_path:
        outputs.write(reports[1], sarif_text(result, analysis.findings).encode("ascii"))
    to_stderr = outputs.STDOUT in (junit_path, sarif_path)
    if as_json or output == "json":
        echo(dumps(check_json(result)), err=to_stderr)
    else:
        echo(check_text(result, text_width()), err=to_stderr, styled=True)
    ctx.exit(0 if result.passed else 1)
