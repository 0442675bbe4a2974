"""`slimmer slim`: write a pruned or distroless-style copy of an image that still runs."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from slimmer.cli.group import cli
from slimmer.cli.options import default_jobs, load, read_options
from slimmer.render import echo, safe
from slimmer.render.json import dumps, slim_json
from slimmer.render.text import slim_text
from slimmer.rewriter.facts import SlimPolicy
from slimmer.rewriter.plan import MODES, PRUNE
from slimmer.rewriter.settings import slim_globs
from slimmer.rewriter.slim import FORMATS, SlimOptions, plan_slim, reproducible_epoch, verdict_text
from slimmer.rewriter.slim import slim as slim_image


@cli.command()
@click.argument("archive")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), help="Write the slim image here (a tar).")
@read_options
@click.option("--mode", type=click.Choice(MODES), default=PRUNE, show_default=True,
              help="prune: drop caches, docs, toolchains...; distroless: keep only what the entrypoint needs.")
@click.option("--keep", multiple=True, metavar="GLOB", help="Always keep paths matching GLOB (repeatable).")
@click.option("--drop", multiple=True, metavar="GLOB", help="Drop paths matching GLOB (repeatable).")
@click.option("--user", metavar="nonroot|UID", help="Run as this user (nonroot = 65532, added to /etc/passwd).")
@click.option("--no-tzdata", is_flag=True, help="distroless: leave out the time zone database.")
@click.option("--dry-run", is_flag=True, help="Print what would go and the size after; write nothing.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="docker", show_default=True,
              help="docker: a `docker load` archive; oci: an OCI image layout tar.")
@click.option("--compression", type=click.Choice(["gzip", "zstd"]), default="gzip", show_default=True,
              help="Layer compression of --format oci (docker archives store layers as plain tars).")
@click.option("--tag", "tags", multiple=True, metavar="NAME:TAG", help="Tag the output (default: input tag + -slim).")
@click.option("--reproducible", is_flag=True,
              help="Byte-identical output across runs (timestamps from SOURCE_DATE_EPOCH or the input).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Settings file for slim.keep/slim.drop (default: the nearest .slimmer.toml or pyproject.toml).")
@click.option("--probe", is_flag=True,
              help="Also run the entrypoint in a sandbox (no network) and keep every file it opens (needs strace).")
@click.option("--probe-cmd", metavar="CMD", help="Run CMD for --probe instead of the entrypoint (implies --probe).")
@click.option("--verify", is_flag=True,
              help="Run the original and the slim image alike in the sandbox; exit 1 if they differ.")
@click.option("--verify-cmd", metavar="CMD", help="Run CMD for --verify (a health command; implies --verify).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def slim(ctx, archive, out, jobs, image_ref, platform, max_layer_size, no_cache, mode, keep, drop, user, no_tzdata,
         dry_run, fmt, compression, tags, reproducible, config_path, probe, probe_cmd, verify, verify_cmd, as_json):
    """Write a slimmer copy of the image in ARCHIVE that still runs: flattened, with what the
    mode deems unneeded left out, and a summary of the bytes removed by category.

    Globs are absolute paths (`/usr/share/zoneinfo/**`); `*` stays in one path segment, `**`
    spans segments, a glob without `/` matches names anywhere (`*.pyc`); a directory match
    covers its contents. --keep wins over --drop and over the mode's rules.

    \b
        slimmer slim app.tar -o app-slim.tar
        slimmer slim app.tar -o app-slim.tar --mode distroless --user nonroot
        slimmer slim app.tar --mode distroless --dry-run --keep '/app/plugins/**'
    """
    if not out and not dry_run:
        raise click.UsageError("give -o OUT.tar, or --dry-run")
    file_keep, file_drop, _source = slim_globs(config_path)
    image = load(archive, image_ref, platform, max_layer_size, no_cache, jobs, SlimPolicy())
    options = SlimOptions(mode=mode, keep=file_keep + keep, drop=file_drop + drop, user=user, tzdata=not no_tzdata,
                          epoch=reproducible_epoch(image, os.environ.get("SOURCE_DATE_EPOCH"), reproducible),
                          jobs=jobs or default_jobs(), probe=probe or bool(probe_cmd),
                          probe_cmd=tuple(shlex.split(probe_cmd or "")),
                          verify=(verify or bool(verify_cmd)) and not dry_run,
                          verify_cmd=tuple(shlex.split(verify_cmd or "")))
    if dry_run:
        result = plan_slim(image, options, out, tags or None)
    else:
        result = slim_image(image, options, out, fmt, compression, tags or None)
    if as_json:
        echo(dumps(slim_json(result, archive, dry_run)))
    else:
        echo(slim_text(result, archive, dry_run))
    if result.verdict is not None and not result.verdict.same:
        echo(f"slimmer: {safe(verdict_text(result.verdict))}", err=True)
        ctx.exit(1)
