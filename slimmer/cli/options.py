"""Options and helpers shared by the commands: size parsing, image selection, output format."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable

import click

from slimmer import reader
from slimmer.cli.group import GC_TUNED, run_gc  # noqa: F401  (run_gc: where commands find it)
from slimmer.errors import ConfigError
from slimmer.reader.cache import LayerCache
from slimmer.render import echo
from slimmer.render.json import dumps, fleet_json
from slimmer.render.text import CLEAR_LINE, fleet_errors, fleet_text, progress_line
from slimmer.sizes import parse_size
from slimmer.tar.collect import Policy


class Size(click.ParamType):
    """A byte count such as ``500MB``, ``2GiB`` or ``1000``."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ConfigError:
            self.fail(f"{value!r} is not a size like 500MB or 2GiB", param, ctx)


class _Progress:
    """The bytes read so far, on one line of stderr that ``clear`` takes away again."""

    def __init__(self) -> None:
        self.bytes = 0

    def __call__(self, n: int) -> None:
        self.bytes += n
        sys.stderr.write(progress_line(self.bytes))
        sys.stderr.flush()

    def clear(self) -> None:
        if self.bytes:
            sys.stderr.write(CLEAR_LINE)


def _progress() -> _Progress | None:
    return _Progress() if sys.stderr.isatty() else None


def default_jobs() -> int:
    """Return how many workers a run uses unless told: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def jobs_option(help_text: str = "Worker processes and threads to use (default: the cores).") -> Callable:
    return click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help=help_text)


def read_options(f):
    """The options every command that reads an image shares."""
    f = jobs_option()(f)
    f = click.option("--image", "image_ref", metavar="REPO:TAG",
                     help="Pick one image of an archive holding several.")(f)
    f = click.option("--platform", metavar="OS/ARCH", help="Pick a platform of a multi-platform index.")(f)
    f = click.option("--max-layer-size", type=Size(), default="64GiB", show_default=True,
                     help="Refuse layers that expand past this (decompression bombs).")(f)
    f = click.option("--no-cache", is_flag=True,
                     help="Read and verify every layer; don't use or fill the layer cache.")(f)
    return f


def output_option(f):
    f = click.option("--format", "output", type=click.Choice(["table", "json"]), default="table",
                     show_default=True, help="Output format.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(f)
    return f


def load(archive: str, image_ref, platform, max_layer_size, no_cache: bool = False, jobs: int | None = None,
         policy: Policy | None = None, defer: bool = False):
    """Read the image in ``archive`` as the shared options ask, gathering what ``policy``
    asks of file contents in the same pass. With ``defer`` the image may come back while its
    layers are still being hashed: call ``model.verified`` on it before showing anything."""
    progress = _progress()
    cache = None if no_cache else LayerCache()
    try:
        img = reader.open_image(archive, reader.Options(image=image_ref, platform=platform,
                                                        max_layer_size=max_layer_size, progress=progress, cache=cache,
                                                        policy=policy, jobs=jobs or default_jobs(), defer=defer))
    finally:
        if progress is not None:  # the progress line goes, also before an error's line
            progress.clear()
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict) and ctx.obj.get(GC_TUNED):
        gc.freeze()  # the image lives for the whole run: keep the cycle collector off its objects
    return img


def show_fleet(rows, as_json: bool, text: Callable = fleet_text) -> int:
    """Print fleet rows (as ``text`` renders them for people); name each unreadable archive on
    stderr; return 2 if any was, else 0."""
    echo(dumps(fleet_json(rows)) if as_json else text(rows))
    errors = fleet_errors(rows)
    for line in errors:
        echo(line, err=True)
    return 2 if errors else 0
