"""Byte counts as people write them: ``500MB``, ``2GiB``, ``1.5k``, ``1000``. The one parser of
sizes: command-line options (``slimmer.cli.options.Size``), settings files
(``slimmer.config_file``) and the explorer's filter all read sizes through ``parse_size``.
Imports only ``slimmer.errors``."""

from __future__ import annotations

import re

from slimmer.errors import ConfigError

__all__ = ["UNITS", "parse_size"]

# decimal units as docker and dive print sizes; an ``i`` makes them binary
UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)


def parse_size(value: object, where: str = "") -> int:
    """Return the bytes ``value`` names: a size like ``500MB``, ``2GiB`` or ``1000`` (any case,
    a space before the unit allowed), or an int that is not negative. Raise ConfigError,
    naming ``where`` (an option or a settings key) when given, if it names no size."""
    at = f"{where}: " if where else ""
    if isinstance(value, bool):
        raise ConfigError(f"{at}expected a size like 500MB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{at}a size cannot be negative")
        return value
    m = _SIZE.match(str(value))
    if m:
        try:
            return int(float(m.group(1)) * UNITS[(m.group(2) or "").lower()])
        except OverflowError:
            pass
    raise ConfigError(f"{at}expected a size like 500MB or 2GiB, got {value!r}")
