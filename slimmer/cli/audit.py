"""`slimmer audit`: one row per image of a registry's storage or a directory of archives, kept in
the audit database; `--report` answers from that database."""

from __future__ import annotations

import os

import click

from slimmer.audit import report
from slimmer.audit.db import Database
from slimmer.audit.run import Settings, audit_directory, audit_registry, is_registry
from slimmer.cli.group import cli
from slimmer.cli.options import (
    Size,
    default_jobs,
    jobs_option,
    output_option,
    show_fleet,
    show_progress,
    text_width,
)
from slimmer.errors import InputError
from slimmer.reader.registry import find_root
from slimmer.render import echo
from slimmer.render.audit import fleet_table, progress_to, report_json, report_text, summary_lines
from slimmer.render.json import dumps, fleet_json


@cli.command()
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@output_option
@jobs_option("Scan and analyze this many at once, in local processes (default: the cores).")
@click.option("--repo", "repo_glob", default="*", show_default=True, metavar="GLOB",
              help="Only repositories matching this glob (registry storage).")
@click.option("--tag", "tag_glob", default="*", show_default=True, metavar="GLOB", help="Only tags matching this glob.")
@click.option("--platform", metavar="OS/ARCH",
              help="Only this platform of multi-platform images (default: a row for every platform).")
@click.option("--db", "db_target", metavar="FILE|URL",
              help="The audit database: an SQLite file or postgresql://... (default: audit.sqlite in the cache "
                   "directory).")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Run the per-blob scans on this Dask cluster; its workers must see PATH at the same path.")
@click.option("--report", "as_report", is_flag=True, help="Answer from the database, reading no blob.")
@click.option("--by", type=click.Choice(["image", "repository", "layer"]), default="image", show_default=True,
              help="With --report: the fleet table, could-save by repository, or the layers most images share.")
@click.option("--package", metavar="NAME", help="With --report: the images holding this package.")
@click.option("--category", metavar="NAME", help="With --report: the images holding bytes of this category.")
@click.option("--top", default=20, show_default=True, help="With --report --by layer: how many layers.")
@click.option("--no-cache", is_flag=True, help="Read and verify every blob again, ignoring the scans kept.")
@click.option("--no-content", is_flag=True, help="Do not look at file contents (faster, categories by path only).")
@click.option("--max-layer-size", type=Size(), default="64GiB", show_default=True,
              help="Refuse layers that expand past this (decompression bombs).")
def audit(path, output, as_json, jobs, repo_glob, tag_glob, platform, db_target, scheduler, as_report, by, package,
          category, top, no_cache, no_content, max_layer_size):
    """Audit every image of PATH: the storage root of a distribution registry (every
    repository:tag, read offline from docker/registry/v2; a row per platform of an index)
    or a directory of image archives (docker save tars, OCI layouts). Each row: size,
    efficiency, wasted bytes, what slimming could save, the worst finding.

    Every layer blob is read and verified once; results go to the audit database, so a
    re-audit after a push reads only the new blobs. Exit status 2 if an image could not be
    read (the others are still listed) or if PATH holds none.

    \b
        slimmer audit /var/lib/docker-registry --jobs 2
        slimmer audit /srv/registry --repo 'team/*' --platform linux/arm64 --json
        slimmer audit /srv/registry --db postgresql://audit@db/slimmer --scheduler tcp://10.0.0.5:8786
        slimmer audit --report --by repository
        slimmer audit --report --package openssl
        slimmer audit ./images
    """
    as_json = as_json or output == "json"
    if not as_report and path is None:
        raise click.UsageError("give PATH to audit, or --report to answer from the database")
    db = Database.open(db_target)
    try:
        if as_report:
            return _report(db, path, repo_glob, tag_glob, by, package, category, top, as_json)
        with show_progress(path) as display:
            settings = Settings(repo_glob=repo_glob, tag_glob=tag_glob, platform=platform,
                                read_content=not no_content, rescan=no_cache, max_layer_size=max_layer_size,
                                jobs=jobs or default_jobs(), scheduler=scheduler,
                                progress=progress_to(display) if display is not None else None)
            result = (audit_registry if is_registry(path) else audit_directory)(path, db, settings)
    finally:
        db.close()
    for line in summary_lines(result.summary):
        echo(line, err=True)
    if not result.rows:
        raise InputError(f"no image found in {path}" + (f" for platform {platform}" if platform else ""))
    return show_fleet(result.rows, as_json, fleet_table)


def _report(db, path, repo_glob, tag_glob, by, package, category, top, as_json) -> int:
    storage = (str(find_root(path) or os.path.realpath(path))) if path else None
    kind, items = report.answer(db, report.Selection(storage, repo_glob, tag_glob), by, package, category, top)
    if kind == "images":
        if not items:
            raise InputError(f"the audit database {db.where} holds no image" + (f" of {path}" if path else ""))
        echo(dumps(fleet_json(items)) if as_json else fleet_table(items, text_width()))
    else:
        echo(report_json(kind, items) if as_json else report_text(kind, items, text_width()))
    return 0
