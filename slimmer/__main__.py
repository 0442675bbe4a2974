"""``python -m slimmer`` and the ``slimmer`` command: a Ctrl-C is caught from the first moment.

Until ``slimmer.cli.main`` installs the real handler (``slimmer.workers.catch_interrupts``),
the command's modules are still being imported and nothing is written yet: a Ctrl-C then
ends the process at once with the same line and exit status 130."""

import os
import signal
import sys


def _while_importing(_signum, _frame) -> None:
    sys.stderr.write("slimmer: error: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def main() -> None:
    """Run slimmer's command line (``slimmer.cli.main``), Ctrl-C caught during the imports too."""
    signal.signal(signal.SIGINT, _while_importing)
    from slimmer.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
