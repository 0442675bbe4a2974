"""Threshold settings for ``slimmer check`` from ``.slimmer.toml`` or ``[tool.slimmer]`` in
``pyproject.toml`` (read with tomllib).

Keys (kebab-case, snake_case and dive's camelCase are all accepted)::

    [tool.slimmer]                       # or top level of .slimmer.toml
    lowest-efficiency = 0.95             # dive's lowestEfficiency (ratio)
    highest-wasted-bytes = "20MB"        # dive's highestWastedBytes ("disabled" turns a rule off)
    highest-user-wasted-percent = 0.1    # dive's highestUserWastedPercent (ratio)
    max-size = "500MB"                   # bytes of all layers
    forbidden-categories = ["toolchain"]
    [tool.slimmer.max-category-bytes]
    cache = "10MB"

A ``[tool.slimmer.check]`` (or ``[check]``) table is read too, for settings kept apart from
other commands'. Imports the gate's Thresholds and the category names only.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimmer.analyzer.categories import CATEGORIES
from slimmer.analyzer.gate import Thresholds
from slimmer.errors import ConfigError
from slimmer.sizes import parse_size

FILES = (".slimmer.toml", "pyproject.toml")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def parse_ratio(value: Any, where: str) -> float:
    """Return a ratio in [0, 1] (``0.9``, or ``"90%"``); raise ConfigError."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ConfigError(f"{where}: expected a ratio like 0.9 or 90%, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"{where}: expected a ratio between 0 and 1 (0.1 for 10%), got {value!r}")
    return float(value)


def _key(name: str) -> str:
    return _CAMEL.sub("_", name).lower().replace("-", "_")


def _off(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("disabled", "off", "none")


def _category(name: Any, where: str) -> str:
    if name not in CATEGORIES:
        raise ConfigError(f"{where}: unknown category {name!r}; expected one of {', '.join(CATEGORIES)}")
    return name


def thresholds_from(settings: Mapping[str, Any], where: str, base: Thresholds | None = None) -> Thresholds:
    """Return ``base`` (dive's defaults if None) with the ``settings`` table applied."""
    out = base or Thresholds()
    changes: dict[str, Any] = {}
    for raw, value in settings.items():
        key = _key(raw)
        at = f"{where}: {raw}"
        if key == "check" and isinstance(value, Mapping):
            out = thresholds_from(value, f"{where} [check]", dataclasses.replace(out, **changes))
            changes = {}
            continue
        if key in ("lowest_efficiency", "highest_user_wasted_percent"):
            changes[key] = None if _off(value) else parse_ratio(value, at)
        elif key in ("highest_wasted_bytes", "max_size"):
            changes[key] = None if _off(value) else parse_size(value, at)
        elif key == "max_category_bytes":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{at}: expected a table of category = size")
            changes[key] = {_category(c, at): parse_size(v, f"{at}.{c}") for c, v in value.items()}
        elif key == "forbidden_categories":
            if not isinstance(value, list):
                raise ConfigError(f"{at}: expected a list of categories")
            changes[key] = tuple(_category(c, at) for c in value)
        elif key == "rules" and isinstance(value, Mapping):  # dive's .dive-ci layout
            out = thresholds_from(value, f"{where} [rules]", dataclasses.replace(out, **changes))
            changes = {}
        elif isinstance(value, Mapping):
            continue  # another command's table, e.g. [tool.slimmer.slim]
        else:
            raise ConfigError(f"{at}: unknown setting; expected lowest-efficiency, highest-wasted-bytes, "
                              f"highest-user-wasted-percent, max-size, max-category-bytes or forbidden-categories")
    return dataclasses.replace(out, **changes)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err


def settings_of(path: Path) -> dict | None:
    """Return the slimmer table of a settings file (None if a pyproject.toml has none)."""
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("slimmer") if isinstance(tool, dict) else None
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [tool.slimmer] is not a table")
        return table
    return data


def find_config(start: Path) -> Path | None:
    """Return the nearest ``.slimmer.toml`` or ``pyproject.toml`` with a ``[tool.slimmer]``
    table, looking in ``start`` and its parents."""
    for d in (start, *start.parents):
        for name in FILES:
            candidate = d / name
            if candidate.is_file() and settings_of(candidate) is not None:
                return candidate
    return None


def load_thresholds(path: Path | None = None, start: Path | None = None) -> tuple[Thresholds, Path | None]:
    """Return the thresholds of the settings file ``path`` (or the one ``find_config`` finds
    from ``start``), with dive's defaults for what it leaves out, and the file used."""
    if path is None:
        path = find_config((start or Path.cwd()).resolve())
        if path is None:
            return Thresholds(), None
    table = settings_of(path)
    if table is None:
        raise ConfigError(f"{path}: has no [tool.slimmer] table")
    return thresholds_from(table, str(path)), path
