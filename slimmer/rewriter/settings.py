"""``slimmer slim`` settings from the settings file: ``--keep``/``--drop`` globs kept with the
project, in ``[tool.slimmer.slim]`` of pyproject.toml or ``[slim]`` of .slimmer.toml::

    [tool.slimmer.slim]
    keep = ["/usr/lib/python3*/lib-dynload/**", "/app/plugins/**"]
    drop = ["*.pyc"]

The file is found as ``slimmer check`` finds its own (``slimmer.config_file``).
"""

from __future__ import annotations

from pathlib import Path

from slimmer.config_file import find_config, settings_of
from slimmer.errors import ConfigError

KEYS = ("keep", "drop")


Globs = tuple[str, ...]


def slim_globs(path: Path | None = None, start: Path | None = None) -> tuple[Globs, Globs, Path | None]:
    """Return (keep, drop, file used) from the ``slim`` table of the settings file ``path``, or
    of the nearest one from ``start``; empty when there is none."""
    if path is None:
        path = find_config((start or Path.cwd()).resolve())
        if path is None:
            return (), (), None
    table = settings_of(path) or {}
    slim = table.get("slim", {})
    if not isinstance(slim, dict):
        raise ConfigError(f"{path}: [slim] is not a table")
    out = {}
    for key, value in slim.items():
        if key not in KEYS:
            raise ConfigError(f"{path}: slim.{key}: unknown setting; expected {' or '.join(KEYS)}")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: slim.{key}: expected a list of path globs")
        out[key] = tuple(value)
    return out.get("keep", ()), out.get("drop", ()), path
