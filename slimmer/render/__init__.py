"""Rendering: the only code that turns records into text. Knows nothing of archives; the CLI
hands it records (numbers and the strings found in an image) and prints what it returns.

- ``slimmer.render.text``: tables for people (they fit 100 columns);
- ``slimmer.render.json``: the documented JSON documents, every schema written out key by key;
- ``slimmer.render.html``: the self-contained HTML report of an analysis;
- ``slimmer.render.ci``: JUnit XML and SARIF reports of a ``slimmer check`` verdict.

This module holds what they share: byte counts for people (``human``), cutting to a width
(``clip``), tables (``table``), and ``safe``, which makes any string from an image visible and
inert on a terminal or in a page; ``echo`` is the one way the CLI prints to a terminal.
"""

from __future__ import annotations

import re

import click
from tabulate import tabulate

__all__ = ["WIDTH", "clip", "clip_left", "echo", "human", "safe", "table"]

WIDTH = 100

# Code points a terminal may act on or that reorder what is shown: C0 controls (ESC starts CSI
# and OSC sequences, CR rewrites the line), DEL, C1 controls (U+009B is a one-character CSI on
# some terminals), the Unicode line and paragraph separators, the bidirectional marks, embeddings,
# overrides and isolates (CVE-2021-42574, "Trojan Source"), and surrogates: a name that is not
# UTF-8 reaches us with its bytes as U+DC80..U+DCFF (surrogateescape), and JSON may hold a lone
# surrogate ("\ud800"); neither can be encoded to UTF-8.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
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
    return f"\\u{o:04x}"


def safe(text: object, newlines: bool = False) -> str:
    """Return ``text`` visible and inert on a terminal: control characters (ESC, CSI, OSC, C0,
    C1, DEL, CR), bidirectional controls and surrogates (bytes that were not UTF-8) shown as
    escapes like ``\\x1b``, ``\\r``, ``\\xe9`` or ``\\ud800``; any other Unicode text is kept as
    it is. ``newlines`` keeps line feeds (for a whole report whose lines are ours)."""
    text = str(text)
    pattern = _UNSAFE_BUT_NEWLINE if newlines else _UNSAFE
    return pattern.sub(_escaped, text) if pattern.search(text) else text


def echo(text: str, err: bool = False) -> None:
    """Print ``text`` (one or more lines) to standard output, or to standard error with ``err``,
    with nothing in it a terminal would act on: the last guard behind the renderers' ``safe``."""
    click.echo(safe(text, newlines=True), err=err)


def human(n: float) -> str:
    """Return a byte count as ``12.3 MB`` (decimal units, as dive and docker print them)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def clip(text: object, width: int) -> str:
    """Return ``text`` made safe, its runs of white space as one space, cut to ``width``."""
    text = " ".join(safe(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def clip_left(text: object, width: int) -> str:
    """Return ``text`` made safe and cut to ``width`` from the left (paths: the file name is
    what counts)."""
    text = safe(text)
    return text if len(text) <= width else "…" + text[-(width - 1):]


def table(rows: list[list], headers: list[str], colalign=None) -> str:
    """Return ``rows`` as a plain text table under ``headers``; cells are shown as given."""
    return tabulate(rows, headers=headers, tablefmt="simple", colalign=colalign, disable_numparse=True)
