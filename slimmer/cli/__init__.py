"""The command line: parse, call the library, render. Each command lives in its own module of
this package and registers on the group, which imports it when it runs (``group.COMMANDS``);
errors become one stderr line here, in ``main``."""

from __future__ import annotations

import signal
import sys

import click

from slimmer.cli.group import cli, run_gc
from slimmer.errors import SlimmerError
from slimmer.workers import Interrupted, catch_interrupts, end_interrupted, was_interrupted

__all__ = ["cli", "main"]


def _safe(err: BaseException | str) -> str:
    from slimmer.render import safe  # imported when needed: --help stays light

    return safe(err)


def _one_line(err: click.ClickException) -> str:
    """A usage error as one line, naming the command's help (click's own form takes three)."""
    message = " ".join(err.format_message().split())
    ctx = getattr(err, "ctx", None)
    if isinstance(err, click.UsageError) and ctx is not None:
        return f"{message} (see '{ctx.command_path} --help')"
    return message


def main() -> None:
    """Entry point: run the CLI; a SlimmerError is one line on stderr and exit status 2."""
    previous = catch_interrupts()
    try:
        with run_gc() as obj:
            rc = cli.main(standalone_mode=False, obj=obj)
    except (Interrupted, KeyboardInterrupt, click.exceptions.Abort):
        end_interrupted()
    except click.ClickException as err:
        sys.stderr.write(f"slimmer: error: {_safe(_one_line(err))}\n")
        sys.exit(2)
    except SlimmerError as err:
        sys.stderr.write(f"slimmer: error: {_safe(err)}\n")
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(1)
    except MemoryError:
        sys.stderr.write("slimmer: error: out of memory\n")
        sys.exit(2)
    except RuntimeError as err:
        if "can't start new thread" not in str(err):
            raise
        sys.stderr.write("slimmer: error: out of memory (cannot start a thread)\n")
        sys.exit(2)
    except OSError as err:
        sys.stderr.write(f"slimmer: error: {_safe(err)}\n")
        sys.exit(2)
    finally:
        if was_interrupted():
            end_interrupted()
        signal.signal(signal.SIGINT, previous)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
