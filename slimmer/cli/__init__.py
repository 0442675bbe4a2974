"""The command line: parse, call the library, render. Each command lives in its own module of
this package and registers on the group; errors become one stderr line here, in ``main``."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from typing import NoReturn

import click

from slimmer.cli import (
    analyze,  # noqa: F401  (registers the command)
    audit,  # noqa: F401
    check,  # noqa: F401
    diff,  # noqa: F401
    export,  # noqa: F401
    slim,  # noqa: F401
)
from slimmer.cli.group import cli
from slimmer.cli.options import run_gc
from slimmer.errors import SlimmerError
from slimmer.render import safe

__all__ = ["cli", "main"]


def _interrupted() -> NoReturn:
    """End a run that Ctrl-C interrupted: one line, worker processes ended, exit status 130.

    Outputs and scratch space were removed as the interrupt unwound the stack; what is left
    are threads still reading a layer, which a normal exit would wait for (the thread pools
    join them at exit), so the process ends here without waiting."""
    for child in multiprocessing.active_children():
        child.kill()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    sys.stderr.write("slimmer: error: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) during a run. It unwinds the stack as KeyboardInterrupt does (outputs
    and scratch space are removed on the way), but click does not catch it (click turns a
    KeyboardInterrupt into Abort after printing an empty line)."""


def _on_sigint(_signum, _frame) -> None:
    raise Interrupted()


def main() -> None:
    """Entry point: run the CLI; a SlimmerError is one line on stderr and exit status 2."""
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        with run_gc() as obj:
            rc = cli.main(standalone_mode=False, obj=obj)
    except (Interrupted, KeyboardInterrupt, click.exceptions.Abort):
        _interrupted()
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except SlimmerError as err:
        sys.stderr.write(f"slimmer: error: {safe(err)}\n")
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(1)
    except MemoryError:
        sys.stderr.write("slimmer: error: out of memory\n")
        sys.exit(2)
    except OSError as err:
        sys.stderr.write(f"slimmer: error: {safe(err)}\n")
        sys.exit(2)
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
