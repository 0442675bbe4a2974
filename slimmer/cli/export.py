"""`slimmer export`: the merged root filesystem of an image, to a directory or a tar."""

from __future__ import annotations

import click

from slimmer import exporter
from slimmer.cli.group import cli
from slimmer.cli.options import load, read_options
from slimmer.render import echo
from slimmer.render.text import export_text, export_warnings


@cli.command("export")
@click.argument("archive")
@click.argument("dest")
@read_options
@click.option("--to", "to", type=click.Choice(["auto", "dir", "tar"]), default="auto", show_default=True,
              help="Write a directory or a tar; auto: a tar when DEST is - or ends in .tar.")
@click.option("--layer", type=click.IntRange(min=0), metavar="N",
              help="Export only layer N (0-based, as `analyze` numbers them), as it is: whiteouts kept.")
@click.option("--devices", is_flag=True, help="Write device nodes (skipped by default).")
@click.option("--setuid", is_flag=True, help="Keep setuid/setgid bits and file capabilities (cleared by default).")
@click.option("--owners", is_flag=True, help="Give files their owners from the image (directory export, root only).")
def export(archive, dest, jobs, image_ref, platform, max_layer_size, no_cache, to, layer, devices, setuid, owners):
    """Write the root filesystem of the image in ARCHIVE to DEST, like `docker export`.

    Layers are stacked with their whiteouts applied. DEST is a directory that must not exist
    or be empty, a tar file, or - for a tar on standard output. Nothing is ever written outside
    DEST: symlinks in the image are never followed. Output appears only when complete.

    \b
        slimmer export app.tar rootfs/
        slimmer export app.tar rootfs.tar
        slimmer export app.tar - --layer 2 | tar -t
    """
    if dest == "-" and click.get_text_stream("stdout").isatty():
        raise click.UsageError("refusing to write a tar to a terminal: redirect standard output or name a file")
    image = load(archive, image_ref, platform, max_layer_size, no_cache, jobs)
    options = exporter.ExportOptions(to=to, layer=layer, devices=devices, setuid=setuid, owners=owners,
                                     max_layer_size=max_layer_size)
    done = exporter.export(image, dest, options, stdout=click.get_binary_stream("stdout"))
    for line in export_warnings(done):
        echo(line, err=True)
    if dest != "-":
        echo(export_text(done))
