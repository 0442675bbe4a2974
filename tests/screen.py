"""What a terminal shows: a small screen model for tests that read a pseudo-terminal."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"\x1b\[(\??)([0-9;]*)([A-Za-z])|[\r\n]|[^\x1b\r\n]+|\x1b")


def screen_text(written: str) -> str:
    """Return what ``written`` leaves on a terminal, line by line: carriage returns, line feeds,
    erase-line and cursor-up applied, colours and cursor visibility dropped. Any other escape
    sequence fails the test: nothing else may reach the terminal."""
    lines, row, col = [""], 0, 0
    for m in _CONTROL.finditer(written):
        text = m.group()
        if text == "\r":
            col = 0
        elif text == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif m.group(3) == "K":
            lines[row] = lines[row][:col] if m.group(2) in ("", "0") else ""
        elif m.group(3) == "A":
            row = max(0, row - int(m.group(2) or 1))
        elif m.group(3) == "m" or (m.group(1) == "?" and m.group(2) == "25"):
            continue
        elif text.startswith("\x1b"):
            raise AssertionError(f"an unexpected escape sequence reached the terminal: {text!r}")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + text + line[col + len(text):]
            col += len(text)
    return "\n".join(lines)
