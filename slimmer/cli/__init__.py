"""The command line: parse, call the library, render. Each command lives in its own module of
this package and registers on the group, which imports it when it runs (``group.COMMANDS``);
errors become one stderr line here, in ``main``."""

from __future__ import annotations

import sys

import click

from slimmer.cli.group import cli, run_gc
from slimmer.errors import SlimmerError

__all__ = ["cli", "main"]


def _safe(err: BaseException) -> str:
    from slimmer.render import safe  # imported when needed: --help stays light

    return safe(err)


def main() -> None:
    """Entry point: run the CLI; a SlimmerError is one line on stderr and exit status 2."""
    try:
        with run_gc() as obj:
            rc = cli.main(standalone_mode=False, obj=obj)
    except click.exceptions.Abort:
        sys.stderr.write("slimmer: error: interrupted\n")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except SlimmerError as err:
        sys.stderr.write(f"slimmer: error: {_safe(err)}\n")
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("slimmer: error: interrupted\n")
        sys.exit(130)
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
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
