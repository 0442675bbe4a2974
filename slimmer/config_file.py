"""Settings files for ``slimmer check`` (and ``slim``'s globs): found, read, checked key by key.

Where the thresholds come from, first found wins:

1. ``--config FILE`` or ``--ci-config FILE``: a ``*.toml`` file is slimmer's, anything else is a
   dive rules file (YAML);
2. the nearest ``.slimmer.toml``, or ``pyproject.toml`` with a ``[tool.slimmer]`` table, in the
   current directory or above, when it sets a rule;
3. ``.dive-ci`` in the current directory, as ``dive --ci`` reads it;
4. dive's defaults.

slimmer's files hold the keys of ``gate.RULES`` (kebab-case, as the options are spelt; dive's
camelCase names for dive's three) at the top of the table, and ``[slim]`` for ``slim``. A
``.dive-ci`` holds dive's ``rules:`` (read exactly as dive 0.13.1 reads them:
``slimmer.dive_values``) and, optionally, a ``slimmer:`` mapping of slimmer's keys, which dive
ignores. An unknown key of slimmer's is an error naming the file and its line; a key dive would
ignore is ignored with a warning, so the verdict stays dive's.

Imports the gate's schema, the category and finding names, and ``dive_values``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimmer.analyzer.categories import CATEGORIES
from slimmer.analyzer.findings import DESCRIPTIONS
from slimmer.analyzer.gate import (
    CATEGORIES as CATEGORY_LIST,
)
from slimmer.analyzer.gate import (
    CATEGORY_SIZES,
    DIVE_RULES,
    FINDING_SIZES,
    FINDINGS,
    RATIO,
    RULE_BY_KEY,
    RULES,
    SIZE,
    SIZE_OR_SHARE,
    Rule,
    Share,
    Thresholds,
)
from slimmer.dive_values import DISABLED, go_parse_float, go_string, humanize_parse_bytes, yaml_v3_plain
from slimmer.errors import ConfigError
from slimmer.sizes import parse_size

FILES = (".slimmer.toml", "pyproject.toml")
DIVE_FILE = ".dive-ci"
SLIM_TABLE = "slim"
DIVE_SECTION = "slimmer"  # slimmer's own keys inside a .dive-ci

_OFF = ("disabled", "off", "none")
# keys of old releases and of the README before this schema, and where they went
_RENAMED = {"forbidden-categories": "forbid-category", "max-category-bytes": "max-category",
            "forbidden_categories": "forbid-category", "max_category_bytes": "max-category",
            "check": "the top of the table (check's keys are not a sub-table)",
            "rules": "the top of the table (dive's rules: layout belongs in a .dive-ci YAML file)"}

Lines = Callable[[tuple[str, ...]], int | None]


@dataclass(frozen=True)
class Loaded:
    """The thresholds and where they came from: ``source`` (None: dive's defaults), whether it
    was read as dive's rules file, and warnings about what was ignored."""

    thresholds: Thresholds
    source: Path | None = None
    dive_format: bool = False
    warnings: tuple[str, ...] = ()


# ---- values --------------------------------------------------------------------------------


def parse_ratio(value: Any, where: str) -> float:
    """Return a ratio in [0, 1] from ``0.9``, ``"0.9"`` or ``"90%"``; raise ConfigError."""
    text = value.strip() if isinstance(value, str) else None
    number: Any = value
    if text is not None:
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a ratio like 0.9 or a percentage like 90%, got {value!r}") from None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number <= 1:
        raise ConfigError(f"{where}: expected a ratio between 0 and 1 (0.1, or 10%), got {value!r}")
    return float(number)


def _is_off(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in _OFF


def _names(value: Any, known: Mapping[str, Any] | tuple[str, ...], what: str, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list of {what} names")
    for name in items:
        if name not in known:
            raise ConfigError(f"{where}: unknown {what} {name!r}; expected one of {', '.join(known)}")
    return tuple(dict.fromkeys(items))


def _limits(value: Any, known: Mapping[str, Any] | tuple[str, ...], what: str, where: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table of {what} = size")
    out = {}
    for name, size in value.items():
        if name not in known:
            raise ConfigError(f"{where}: unknown {what} {name!r}; expected one of {', '.join(known)}")
        out[name] = parse_size(size, f"{where}.{name}")
    return out


def rule_value(rule: Rule, value: Any, where: str) -> Any:
    """Return the Thresholds value of ``rule`` for a settings or command-line ``value`` (None
    when it turns the rule off); raise ConfigError naming ``where``."""
    if rule.kind in (RATIO, SIZE, SIZE_OR_SHARE) and _is_off(value):
        return None
    if rule.kind == RATIO:
        return parse_ratio(value, where)
    if rule.kind == SIZE:
        return parse_size(value, where)
    if rule.kind == SIZE_OR_SHARE:
        if isinstance(value, str) and value.strip().endswith("%"):
            return Share(parse_ratio(value, where))
        if isinstance(value, float):
            raise ConfigError(f"{where}: expected a size like 50MB or a share like 20%, got {value!r}")
        return parse_size(value, where)
    if rule.kind == CATEGORY_SIZES:
        return _limits(value, CATEGORIES, "category", where)
    if rule.kind == CATEGORY_LIST:
        return _names(value, CATEGORIES, "category", where)
    if rule.kind == FINDING_SIZES:
        return _limits(value, DESCRIPTIONS, "finding", where)
    if rule.kind == FINDINGS:
        return _names(value, DESCRIPTIONS, "finding", where)
    raise ValueError(f"unknown kind of rule {rule.kind!r}")


# ---- slimmer's schema ----------------------------------------------------------------------


_ALIASES = {r.dive: r for r in DIVE_RULES}


def _unknown(raw: str, table: str, where: str) -> ConfigError:
    known = [r.key for r in RULES]
    hint = _RENAMED.get(raw) or _RENAMED.get(raw.lower())
    if hint is None:
        close = difflib.get_close_matches(raw.replace("_", "-").lower(), known, n=1, cutoff=0.6)
        hint = close[0] if close else None
    said = f"; did you mean {hint}?" if hint else ""
    return ConfigError(f"{where}: unknown key {raw!r} in {table}{said} (the keys: {', '.join(known)}, "
                       f"and [{SLIM_TABLE}] for slim)")


def thresholds_from(settings: Mapping[str, Any], where: str, base: Thresholds | None = None,
                    lines: Lines | None = None, table: str = "the settings",
                    prefix: tuple[str, ...] = ()) -> Thresholds:
    """Return ``base`` (dive's defaults if None) with slimmer's ``settings`` table applied. An
    unknown key or a bad value raises ConfigError naming ``where`` and, when ``lines`` knows
    it, the line (``where:LINE: ...``)."""
    out = base or Thresholds()
    changes: dict[str, Any] = {}
    seen: dict[str, str] = {}

    def at(*keys: str) -> str:
        line = lines(prefix + keys) if lines else None
        return f"{where}:{line}" if line else where

    for raw, value in settings.items():
        if raw == SLIM_TABLE and isinstance(value, Mapping):
            continue  # slim's globs: rewriter/settings.py
        rule = RULE_BY_KEY.get(raw) or _ALIASES.get(raw)
        if rule is None:
            raise _unknown(str(raw), table, at(str(raw)))
        if rule.field in seen:
            raise ConfigError(f"{at(raw)}: {raw} sets {rule.key} again (first set as {seen[rule.field]})")
        seen[rule.field] = raw
        changes[rule.field] = rule_value(rule, value, f"{at(raw)}: {raw}")
    broken = tuple(m for m in out.misconfigured if m[0] not in changes)
    return dataclasses.replace(out, **changes, misconfigured=broken)


def has_rules(table: Mapping[str, Any]) -> bool:
    """Return whether a slimmer settings table sets anything for ``check``."""
    return any(k != SLIM_TABLE for k in table)


# ---- TOML, with the lines tomllib does not give ----------------------------------------------

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_KEY})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_KEY})\s*=")
_PART = re.compile(rf"{_BARE}|{_QUOTED}")


def _key_parts(text: str) -> tuple[str, ...]:
    parts = []
    for m in _PART.finditer(text):
        part = m.group()
        if part[0] in "\"'":
            part = part[1:-1].encode().decode("unicode_escape") if part[0] == '"' else part[1:-1]
        parts.append(part)
    return tuple(parts)


def toml_lines(text: str) -> Lines:
    """Return a function from a key's path (``("tool", "slimmer", "max-size")``) to the line of
    ``text`` where it is set (or the line of its nearest table), or None. tomllib reports no
    positions, so the text is scanned: table headers and ``key =`` lines outside multi-line
    strings."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    quote = None
    for number, line in enumerate(text.splitlines(), start=1):
        if quote:
            if quote in line:
                quote = None
            continue
        header = _HEADER.match(line)
        if header:
            table = _key_parts(header.group(1))
            found.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            found.setdefault(table + _key_parts(assign.group(1)), number)
            rest = line[assign.end():]
            for mark in ('"""', "'''"):
                if rest.count(mark) == 1:
                    quote = mark

    def line_of(path: tuple[str, ...]) -> int | None:
        for n in range(len(path), 0, -1):
            if path[:n] in found:
                return found[path[:n]]
        return None

    return line_of


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err


def _read_toml(path: Path) -> tuple[dict, str]:
    text = _read_text(path)
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err


def _table_of(path: Path, data: dict) -> dict | None:
    if path.name != "pyproject.toml":
        return data
    tool = data.get("tool", {})
    table = tool.get("slimmer") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.slimmer] is not a table")
    return table


def settings_of(path: Path) -> dict | None:
    """Return the slimmer table of a settings file (None if a pyproject.toml has none)."""
    return _table_of(path, _read_toml(path)[0])


def find_config(start: Path) -> Path | None:
    """Return the nearest ``.slimmer.toml`` or ``pyproject.toml`` with a ``[tool.slimmer]``
    table, looking in ``start`` and its parents."""
    for d in (start, *start.parents):
        for name in FILES:
            candidate = d / name
            if candidate.is_file() and settings_of(candidate) is not None:
                return candidate
    return None


def _toml_thresholds(path: Path) -> Thresholds:
    data, text = _read_toml(path)
    table = _table_of(path, data)
    if table is None:
        raise ConfigError(f"{path}: has no [tool.slimmer] table")
    prefix = ("tool", "slimmer") if path.name == "pyproject.toml" else ()
    name = "[tool.slimmer]" if prefix else str(path.name)
    return thresholds_from(table, str(path), lines=toml_lines(text), table=name, prefix=prefix)


# ---- dive's .dive-ci -----------------------------------------------------------------------


def _yaml_error(path: Path, err) -> ConfigError:
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err)
    return ConfigError(f"{where}: not valid YAML ({problem}); dive cannot read it either")


def _line(node) -> int:
    return node.start_mark.line + 1


def _keys(path: Path, node) -> dict[str, tuple[Any, Any]]:
    """Return a mapping node's entries by lower-cased key (viper ignores case); a key given
    twice is an error (dive refuses an exact repeat; a repeat in another case, it reads one of
    the two at random)."""
    import yaml

    out: dict[str, tuple[Any, Any]] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise ConfigError(f"{path}:{_line(key)}: a mapping key must be a plain name")
        name = key.value.lower()
        if name in out:
            raise ConfigError(f"{path}:{_line(key)}: {key.value!r} is set twice (also on line "
                              f"{_line(out[name][0])}); dive's reading of it is undefined")
        out[name] = (key, value)
    return out


def _go_value(node) -> str | None:
    """Return the string dive gets for a value node (None: null, the default applies)."""
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        return ""
    if node.style is None:  # plain: resolved as go-yaml v3 does (YAML 1.2)
        return go_string(yaml_v3_plain(node.value))
    return node.value


def _dive_lookup(path: Path, top: dict[str, tuple[Any, Any]], name: str) -> tuple[str | None, int | None]:
    """Return what viper's GetString("rules.NAME") gives dive, and the line it came from:
    a dotted key ``rules.NAME`` first, then ``NAME`` inside ``rules`` (a ``rules`` that is not a
    mapping shadows every rule: "")."""
    import yaml

    flat = top.get(f"rules.{name}")
    if flat is not None:
        value = _go_value(flat[1])
        if value is not None:
            return value, _line(flat[1])
    rules = top.get("rules")
    if rules is None:
        return None, None
    node = rules[1]
    if isinstance(node, yaml.ScalarNode) and node.style is None and node.value in ("", "~", "null", "Null", "NULL"):
        return None, None
    if not isinstance(node, yaml.MappingNode):
        return "", _line(node)
    inner = _keys(path, node).get(name)
    if inner is None:
        return None, None
    return _go_value(inner[1]), _line(inner[1])


def _dive_rule(rule: Rule, text: str) -> tuple[Any, str | None]:
    """Return (value, None) for a rule value dive accepts, or (None, why) for one it calls
    misconfigured."""
    if text == DISABLED:
        return None, None
    try:
        if rule.kind == SIZE:
            return humanize_parse_bytes(text), None
        value = go_parse_float(text)
    except ValueError as err:
        hint = ""
        if text.strip().endswith("%"):
            try:
                hint = f"; dive takes a ratio: write {float(text.strip()[:-1]) / 100:g}"
            except ValueError:
                hint = "; dive takes a ratio (0.95), not a percentage"
        elif text.strip().lower() in _OFF:
            hint = f"; dive turns a rule off only with {DISABLED!r}"
        return None, f"{text!r} is not a value dive reads ({err}){hint}"
    if value < 0 or value > 1:  # NaN passes this test in dive too
        return None, f"{text!r} is outside the range dive allows (0-1)"
    return value, None


def read_dive_ci(path: Path, text: str | None = None) -> Loaded:
    """Return the thresholds of dive's rules file ``path`` as dive 0.13.1 reads it, with the
    rules of its ``slimmer:`` mapping applied; keys dive ignores give warnings."""
    import yaml

    text = _read_text(path) if text is None else text
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as err:
            raise _yaml_error(path, err) from err
        if root is None:
            return Loaded(Thresholds(), path, True)
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(f"{path}:{_line(root)}: expected a mapping (rules: ...); dive cannot read it either")
        top = _keys(path, root)
        changes: dict[str, Any] = {}
        broken: list[tuple[str, str]] = []
        for rule in DIVE_RULES:
            value, line = _dive_lookup(path, top, rule.dive.lower())
            if value is None:
                continue
            parsed, why = _dive_rule(rule, value)
            if why is None:
                changes[rule.field] = parsed
            else:
                broken.append((rule.field, f"{path}:{line}: {rule.dive}: {why}; dive reports CI Misconfigured"))
        warnings = _dive_ignored(path, top)
        thresholds = dataclasses.replace(Thresholds(), **changes, misconfigured=tuple(broken))
        own = top.get(DIVE_SECTION)
        if own is not None:
            if not isinstance(own[1], yaml.MappingNode):
                raise ConfigError(f"{path}:{_line(own[1])}: {DIVE_SECTION}: expected a mapping of slimmer's keys")
            keys = {k.value: _line(k) for k, _ in own[1].value if isinstance(k, yaml.ScalarNode)}
            settings = loader.construct_object(own[1], deep=True)
            thresholds = thresholds_from(settings, str(path), thresholds,
                                         lambda p: keys.get(p[0]) if p else None, f"{DIVE_SECTION}:")
        return Loaded(thresholds, path, True, tuple(warnings))
    finally:
        loader.dispose()


def _dive_ignored(path: Path, top: dict[str, tuple[Any, Any]]) -> list[str]:
    import yaml

    names = {r.dive.lower(): r.dive for r in DIVE_RULES}
    out: list[tuple[int, str]] = []
    for name, (key, _value) in top.items():
        if name in ("rules", DIVE_SECTION) or (name.startswith("rules.") and name[6:] in names):
            continue
        out.append((_line(key), f"{path}:{_line(key)}: {key.value!r} is not a key dive reads; ignored, as dive "
                                f"ignores it"))
    rules = top.get("rules")
    if rules is not None and isinstance(rules[1], yaml.MappingNode):
        for name, (key, _v) in _keys(path, rules[1]).items():
            if name not in names:
                close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
                said = f" (did you mean {names[close[0]]}?)" if close else ""
                out.append((_line(key), f"{path}:{_line(key)}: rules: {key.value!r} is not a rule dive knows{said}; "
                                        f"ignored, as dive ignores it"))
    return [text for _line_no, text in sorted(out)]


# ---- finding the file ----------------------------------------------------------------------


def is_dive_file(path: Path) -> bool:
    """Return whether ``path`` is read as dive's YAML rules file (anything but ``*.toml``)."""
    return path.suffix.lower() != ".toml"


def read_settings(path: Path) -> Loaded:
    """Return the thresholds of the settings file ``path``, by its kind."""
    if is_dive_file(path):
        return read_dive_ci(path)
    return Loaded(_toml_thresholds(path), path)


def load_thresholds(path: Path | None = None, start: Path | None = None) -> Loaded:
    """Return the thresholds of the settings file ``path``, or of the first file the search
    order finds from ``start`` (the current directory): the nearest slimmer file that sets a
    rule, else ``.dive-ci`` in ``start``, else dive's defaults."""
    if path is not None:
        return read_settings(path)
    here = (start or Path.cwd()).resolve()
    found = find_config(here)
    dive = here / DIVE_FILE
    if found is not None and has_rules(settings_of(found) or {}):
        loaded = read_settings(found)
        if dive.is_file():
            loaded = dataclasses.replace(loaded, warnings=loaded.warnings + (
                f"{dive} not read: the thresholds in {found} come first",))
        return loaded
    if dive.is_file():
        return read_dive_ci(dive)
    return Loaded(Thresholds())
