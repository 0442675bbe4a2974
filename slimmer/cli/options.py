"""Options and helpers shared by the commands: size parsing, image selection, output format,
the progress display, the width of text and the rules every output follows."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import click
from click.core import ParameterSource

from slimmer import reader
from slimmer.cli.group import GC_TUNED, run_gc  # noqa: F401  (run_gc: where commands find it)
from slimmer.errors import ConfigError
from slimmer.reader.cache import LayerCache
from slimmer.render import echo, terminal_width
from slimmer.render.json import dumps, fleet_json
from slimmer.render.text import fleet_errors, fleet_text
from slimmer.sizes import parse_size
from slimmer.tar.collect import Policy

# An archive argument: a file or an OCI layout directory, or - for standard input. A Path, so
# shells complete file names (click's shell completion); existence is the reader's to check,
# with its own message (and transport names such as oci:DIR:TAG are no paths).
ARCHIVE = click.Path(allow_dash=True, readable=False, path_type=str)


class Size(click.ParamType):
    """A byte count such as ``500MB``, ``2GiB`` or ``1000``."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value), "size")
        except ConfigError:
            self.fail(f"{value!r} is not a size like 500MB or 2GiB", param, ctx)


def ci_mode() -> bool:
    """Return whether ``CI`` is true in the environment, as dive reads it (Go's ParseBool:
    1, t, T, TRUE, true, True): dive then runs its rules instead of its interactive screen,
    and slimmer shows no live progress display."""
    return os.environ.get("CI", "") in ("1", "t", "T", "TRUE", "true", "True")


def text_width() -> int:
    """Return the width text output is made to (COLUMNS, else the terminal's, else 100)."""
    return terminal_width()


@contextlib.contextmanager
def show_progress(what: str = "the image") -> Iterator:
    """Yield the progress display on standard error for reading ``what`` and the analysis that
    follows, or None when standard error is no terminal (or CI is true); it is erased when the
    block ends, however it ends."""
    if ci_mode() or not _isatty(sys.stderr) or os.environ.get("TERM") == "dumb":
        yield None
        return
    from slimmer.analyzer.report import PHASES  # here: slim, export and the rest need no analyzer to start
    from slimmer.render.progress import Progress

    with Progress(sys.stderr, what, PHASES) as progress:
        yield progress


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


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
         policy: Policy | None = None, progress=None, defer: bool = False):
    """Read the image in ``archive`` as the shared options ask, gathering what ``policy``
    asks of file contents in the same pass; ``progress`` (from ``show_progress``) shows the
    read, else a display of its own does. With ``defer`` the image may come back while its
    layers are still being hashed: call ``model.verified`` on it before showing anything."""
    with contextlib.ExitStack() as stack:
        if progress is None:
            progress = stack.enter_context(show_progress(archive))
        cache = None if no_cache else LayerCache()
        img = reader.open_image(archive, reader.Options(image=image_ref, platform=platform,
                                                        max_layer_size=max_layer_size, progress=progress,
                                                        cache=cache, policy=policy, jobs=jobs or default_jobs(),
                                                        defer=defer))
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict) and ctx.obj.get(GC_TUNED):
        gc.freeze()  # the image lives for the whole run: keep the cycle collector off its objects
    return img


def given(ctx: click.Context, name: str) -> bool:
    """Return whether the user gave option ``name`` (rather than its default)."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def refuse_with_several(ctx: click.Context, names: Sequence[str], why: str) -> None:
    """Raise a usage error naming each option of ``names`` the user gave, which does not apply
    when ``why`` (several archives are given)."""
    bad = [name for name in names if given(ctx, name)]
    if bad:
        shown = ", ".join("--" + next(o for o in _param(ctx, n).opts if o.startswith("--")).lstrip("-") for n in bad)
        raise click.UsageError(f"{shown} cannot be used {why}: give one archive")


def _param(ctx: click.Context, name: str) -> click.Parameter:
    return next(p for p in ctx.command.params if p.name == name)


def force_option(f):
    return click.option("--force", is_flag=True, help="Replace an output that exists (refused otherwise).")(f)


def show_fleet(rows, as_json: bool, text: Callable = fleet_text) -> int:
    """Print fleet rows (as ``text(rows, width)`` renders them for people, as wide as the
    terminal: the fleet table by default); name each unreadable archive on stderr; return 2 if
    any was, else 0."""
    echo(dumps(fleet_json(rows)) if as_json else text(rows, text_width()))
    errors = fleet_errors(rows)
    for line in errors:
        echo(line, err=True)
    return 2 if errors else 0
