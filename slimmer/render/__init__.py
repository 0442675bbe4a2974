"""Rendering: the only code that turns records into text. Knows nothing of archives; the CLI
hands it records (numbers and the strings found in an image) and prints what it returns.

- ``slimmer.render.text``: tables for people (they fit the width they are given:
  ``terminal_width``);
- ``slimmer.render.json``: the documented JSON documents, every schema written out key by key;
- ``slimmer.render.html``: the self-contained HTML report of an analysis;
- ``slimmer.render.ci``: JUnit XML and SARIF reports of a ``slimmer check`` verdict.

This module holds what they share: byte counts for people (``human``), cutting to a width
(``clip``), tables that fit a width (``table``), the width of the terminal
(``terminal_width``), styles (``style``: bold headings, PASS in green, FAIL in red, coloured
only on a terminal and never with ``NO_COLOR``), and ``safe``, which makes any string from an
image visible and inert on a terminal or in a page; ``echo`` is the one way the CLI prints.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from collections.abc import Collection, Sequence

import click
from tabulate import tabulate

__all__ = ["WIDTH", "cells", "clip", "clip_left", "color_enabled", "echo", "human", "safe", "style", "table",
           "terminal_width"]

WIDTH = 100  # when neither COLUMNS nor a terminal says otherwise
MIN_WIDTH = 60  # narrower than this, tables overflow rather than cut every path to nothing

# Code points a terminal may act on or that reorder what is shown: C0 controls (ESC starts CSI
# and OSC sequences, CR rewrites the line), DEL, C1 controls (U+009B is a one-character CSI on
# some terminals), the Unicode line and paragraph separators, the bidirectional marks, embeddings,
# overrides and isolates (CVE-2021-42574, "Trojan Source"), and surrogates: a name that is not
# UTF-8 reaches us with its bytes as U+DC80..U+DCFF (surrogateescape), and JSON may hold a lone
# surrogate ("\ud800"); neither can be encoded to UTF-8.
# The three private-use code points style() marks text with are escaped too: no string from an
# image can style what is shown.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
                     "\U000f0000-\U000f0002]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
                                 "\ud800-\udfff\U000f0000-\U000f0002]")
_UNSAFE_BUT_STYLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
                               "\ud800-\udfff]")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    o = ord(char)
    if 0xDC80 <= o <= 0xDCFF:
        return f"\\x{o - 0xDC00:02x}"  # the byte that was not UTF-8
    if o < 0x100:
        return f"\\x{o:02x}"
    if o > 0xFFFF:
        return f"\\U{o:08x}"
    return f"\\u{o:04x}"


def safe(text: object, newlines: bool = False) -> str:
    """Return ``text`` visible and inert on a terminal: control characters (ESC, CSI, OSC, C0,
    C1, DEL, CR), bidirectional controls and surrogates (bytes that were not UTF-8) shown as
    escapes like ``\\x1b``, ``\\r``, ``\\xe9`` or ``\\ud800``; any other Unicode text is kept as
    it is. ``newlines`` keeps line feeds (for a whole report whose lines are ours)."""
    text = str(text)
    pattern = _UNSAFE_BUT_NEWLINE if newlines else _UNSAFE
    return pattern.sub(_escaped, text) if pattern.search(text) else text


def echo(text: str, err: bool = False, styled: bool = False) -> None:
    """Print ``text`` (one or more lines) to standard output, or to standard error with ``err``,
    with nothing in it a terminal would act on: the last guard behind the renderers' ``safe``.
    With ``styled``, the ``style`` marks become colours when ``color_enabled`` says so (and are
    dropped otherwise)."""
    if not styled:
        click.echo(safe(text, newlines=True), err=err)
        return
    stream = sys.stderr if err else sys.stdout
    text = _UNSAFE_BUT_STYLE.sub(_escaped, str(text))
    click.echo(_apply_styles(text, color_enabled(stream)), err=err, color=True)


# ---- styles and widths -----------------------------------------------------------------------

_OPEN, _MID, _CLOSE = "\U000f0000", "\U000f0001", "\U000f0002"
_STYLED = re.compile(f"{_OPEN}([a-z]+){_MID}(.*?){_CLOSE}", re.DOTALL)
STYLES = {"bold": "1", "dim": "2", "red": "1;31", "green": "32", "yellow": "33", "cyan": "36"}


def style(text: str, name: str) -> str:
    """Return ``text`` (already safe) marked to be shown in style ``name`` (one of ``STYLES``)
    by ``echo(..., styled=True)``; the marks take no columns once shown."""
    if name not in STYLES:
        raise ValueError(f"unknown style {name!r}")
    return f"{_OPEN}{name}{_MID}{text}{_CLOSE}"


def unstyled(text: str) -> str:
    """Return ``text`` without its style marks."""
    return _STYLED.sub(lambda m: m.group(2), text)


def _apply_styles(text: str, color: bool) -> str:
    if not color:
        return unstyled(text)
    return _STYLED.sub(lambda m: f"\x1b[{STYLES[m.group(1)]}m{m.group(2)}\x1b[0m", text)


def color_enabled(stream) -> bool:
    """Return whether to colour what goes to ``stream``: it is a terminal (or FORCE_COLOR is
    set), NO_COLOR is not (https://no-color.org) and TERM is not ``dumb``."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def terminal_width(stream=None) -> int:
    """Return the width tables are made to: ``COLUMNS`` if set, else the terminal's width (of
    ``stream``, standard output by default), else 100."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    stream = stream if stream is not None else sys.stdout
    try:
        return os.get_terminal_size(stream.fileno()).columns or WIDTH
    except (AttributeError, ValueError, OSError):
        return WIDTH


def cells(text: str) -> int:
    """Return the columns ``text`` takes on a terminal: East Asian wide and full-width
    characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    n = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        n += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return n


def human(n: float) -> str:
    """Return a byte count as ``12.3 MB`` (decimal units, as dive and docker print them)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _cut(text: str, width: int, left: bool = False) -> str:
    """Return ``text`` cut to ``width`` columns with an ellipsis on the cut side."""
    if cells(text) <= width:
        return text
    width = max(width, 1)
    out, used = [], 1
    for ch in (reversed(text) if left else text):
        w = cells(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    kept = "".join(reversed(out)) if left else "".join(out)
    return "…" + kept if left else kept + "…"


def clip(text: object, width: int) -> str:
    """Return ``text`` made safe, its runs of white space as one space, cut to ``width``."""
    return _cut(" ".join(safe(text).split()), width)


def clip_left(text: object, width: int) -> str:
    """Return ``text`` made safe and cut to ``width`` from the left (paths: the file name is
    what counts)."""
    return _cut(safe(text), width, left=True)


def table(rows: list[list], headers: list[str], colalign=None, width: int | None = None,
          flex: int | Sequence[int] | None = None, left: bool | Collection[int] = False) -> str:
    """Return ``rows`` as a plain text table under ``headers``; cells are shown as given. With
    ``width`` and ``flex`` (a column index, the path or command, or several), the cells of the
    flexible columns are cut so that no line is wider than ``width`` (never narrower than
    ``MIN_WIDTH``): the room the other columns leave is shared out, each flexible column
    getting what it needs up to an equal share, the widest ones the rest. ``left`` cuts from
    the left (the end of a name is what counts): all flexible columns, or those listed."""
    if width is not None and flex is not None and rows:
        flexible = (flex,) if isinstance(flex, int) else tuple(flex)
        from_left = set(flexible) if left is True else set(left or ())

        def natural(i: int) -> int:  # tabulate makes a column at least its header plus two wide
            return max([cells(str(headers[i])) + 2] + [cells(str(r[i])) for r in rows])

        fixed = sum(natural(i) for i in range(len(headers)) if i not in flexible)
        room = max(width, MIN_WIDTH) - fixed - 2 * (len(headers) - 1)
        shares = {}
        for n, i in enumerate(sorted(flexible, key=natural)):
            fair = room // (len(flexible) - n)
            shares[i] = min(natural(i), max(fair, cells(str(headers[i])) + 2, 8))
            room -= shares[i]
        rows = [[_cut(str(c), shares[i], i in from_left) if i in shares else c for i, c in enumerate(r)]
                for r in rows]
    return tabulate(rows, headers=headers, tablefmt="simple", colalign=colalign, disable_numparse=True)
