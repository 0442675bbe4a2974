"""`slimmer audit`: one row per image archive found below a directory."""

from __future__ import annotations

import click

from slimmer import fleet
from slimmer.cli.group import cli
from slimmer.cli.options import Size, default_jobs, jobs_option, output_option, show_fleet
from slimmer.errors import SlimmerError


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@output_option
@jobs_option("Analyze this many images at once (default: the cores).")
@click.option("--no-cache", is_flag=True, help="Read and verify every layer; don't use or fill the layer cache.")
@click.option("--no-content", is_flag=True, help="Do not re-read file contents (faster, categories by path only).")
@click.option("--max-layer-size", type=Size(), default="64GiB", show_default=True,
              help="Refuse layers that expand past this (decompression bombs).")
def audit(directory, output, as_json, jobs, no_cache, no_content, max_layer_size):
    """Audit every image archive (docker save tars, OCI layouts) below DIRECTORY: size,
    efficiency, wasted bytes, what slimming could save and the worst finding of each.

    Layers shared between images (a common base) are read once, through the layer cache.
    An archive that cannot be read gets a row with its error and the others are still
    listed; the exit status is then 2, as it is when DIRECTORY holds no image at all.

    \b
        slimmer audit ./images --jobs 2
        slimmer audit ./images --json > fleet.json
    """
    found = fleet.find_archives(directory)
    if not found:
        raise SlimmerError(f"no image found in {directory}")
    rows = fleet.audit([str(p) for p in found], jobs=jobs or default_jobs(), use_cache=not no_cache,
                       read_content=not no_content, max_layer_size=max_layer_size)
    return show_fleet(rows, as_json or output == "json")
