"""The optional compiled part of slimmer, ``slimmer/_ctar.c`` (built by setup.py where a C
compiler and Python's headers are there): the tar scanner's fast path (``slimmer.tar.scan``),
the loop that stacks a layer onto the merged filesystem (``slimmer.layers``) and madvise with
the GIL let go (``slimmer.reader.blobs``). Each has a pure-Python fallback that gives the same
results; ``SLIMMER_PURE=1`` runs the fallbacks although the module is built. Imports nothing
of slimmer but the module.
"""

from __future__ import annotations

import os

try:
    from slimmer import _ctar as ctar  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: the pure-Python code does it all
    ctar = None

COMPILED = ctar is not None  # whether the compiled module is built


def uses_compiled() -> bool:
    """Return whether code starting now runs the compiled paths (built, and not turned off by
    ``SLIMMER_PURE=1``)."""
    return ctar is not None and os.environ.get("SLIMMER_PURE") != "1"
