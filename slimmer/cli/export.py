"""`slimmer export`: the merged root filesystem of an image, to a directory or a tar."""

from __future__ import annotations

import click

from slimmer import exporter, outputs
from slimmer.cli.group import cli
from slimmer.cli.options import ARCHIVE, force_option, load, read_options
from slimmer.render import echo
from slimmer.render.text import export_text, export_warnings
from slimmer.tar.codec import WRITE_COMPRESSIONS


@cli.command("export")
@click.argument("archive", type=ARCHIVE)
@click.argument("dest", type=click.Path(allow_dash=True, readable=False, path_type=str))
@read_options
@click.option("--to", "to", type=click.Choice(["auto", "dir", "tar"]), default="auto", show_default=True,
              help="Write a directory or a tar; auto: a tar when DEST is - or named as one (.tar, .tar.gz, .tgz, "
                   ".tar.zst, .tar.xz).")
@click.option("--compression", type=click.Choice(("auto", *WRITE_COMPRESSIONS)), default="auto", show_default=True,
              help="Compression of a tar; auto: what DEST's extension says (none for -).")
@click.option("--layer", type=click.IntRange(min=0), metavar="N",
              help="Export only layer N (0-based, as `analyze` numbers them), as it is: whiteouts kept.")
@click.option("--devices", is_flag=True, help="Write device nodes (skipped by default).")
@click.option("--setuid", is_flag=True, help="Keep setuid/setgid bits and file capabilities (cleared by default).")
@click.option("--owners", is_flag=True, help="Give files their owners from the image (directory export, root only).")
@force_option
def export(archive, dest, jobs, image_ref, platform, max_layer_size, no_cache, to, compression, layer, devices, setuid,
           owners, force):
    """Write the root filesystem of the image in ARCHIVE to DEST, like `docker export`.

    Layers are stacked with their whiteouts applied. DEST is a directory that must not exist
    or be empty, a tar file (compressed as its name says: .tar.gz, .tar.zst, .tar.xz), or -
    for a tar on standard output. An existing DEST is replaced only with --force, and never
    when it is the input. Nothing is ever written outside DEST: symlinks in the image are never
    followed. Output appears only when complete.

    \b
        slimmer export app.tar rootfs/
        slimmer export app.tar rootfs.tar.gz
        slimmer export app.tar - --layer 2 | tar -t
    """
    as_tar = exporter.output_kind(dest, to, compression) == "tar"
    target = outputs.Output("export", dest, force, directory=not as_tar, tar=as_tar)
    if dest == outputs.STDOUT and not as_tar:
        raise click.UsageError("a directory export needs a directory path, not -")
    outputs.check([target], [archive], click.get_binary_stream("stdout"))
    image = load(archive, image_ref, platform, max_layer_size, no_cache, jobs)
    options = exporter.ExportOptions(to="tar" if as_tar else "dir", layer=layer, devices=devices, setuid=setuid,
                                     owners=owners, max_layer_size=max_layer_size, compression=compression,
                                     force=force)
    done = exporter.export(image, dest, options, stdout=click.get_binary_stream("stdout"))
    for line in export_warnings(done):
        echo(line, err=True)
    if dest != outputs.STDOUT:
        echo(export_text(done))
