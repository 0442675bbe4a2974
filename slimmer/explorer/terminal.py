"""The terminal `slimmer explore` draws on: checked before the image is read, and given the
keyboard back when the archive came on standard input. Imports no Textual."""

from __future__ import annotations

import os
import sys

from slimmer.errors import TerminalError

MIN_COLUMNS, MIN_LINES = 80, 24
TTY = "/dev/tty"


def check(archive_on_stdin: bool) -> None:
    """Raise TerminalError unless standard output and error are a terminal of at least
    80x24 and there is a terminal to read keys from."""
    for name, stream in (("standard output", sys.stdout), ("standard error", sys.stderr)):
        if not _isatty(stream):
            raise TerminalError(f"explore draws on a terminal and {name} is not one "
                                f"(for a report, use `slimmer analyze`)")
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError as err:
        raise TerminalError(f"cannot read the terminal's size: {err.strerror or err}") from err
    if size.columns < MIN_COLUMNS or size.lines < MIN_LINES:
        raise TerminalError(f"the terminal is {size.columns}x{size.lines}; explore needs at least "
                            f"{MIN_COLUMNS}x{MIN_LINES}")
    if archive_on_stdin or not _isatty(sys.stdin):
        try:
            os.close(os.open(TTY, os.O_RDONLY))
        except OSError as err:
            raise TerminalError(f"no terminal to read keys from ({TTY}: {err.strerror or err})") from err


def keyboard() -> None:
    """Make standard input the terminal again if it is not (the archive was read from it)."""
    if _isatty(sys.stdin):
        return
    fd = os.open(TTY, os.O_RDONLY)
    try:
        os.dup2(fd, 0)
    finally:
        os.close(fd)


def _isatty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def background() -> str:
    """Return "light" when the terminal says it has a light background (``COLORFGBG`` ends in
    7 or 15, as rxvt, Konsole and others set it), else "dark"."""
    last = os.environ.get("COLORFGBG", "").rpartition(";")[2]
    return "light" if last in ("7", "15") else "dark"
