"""How dive 0.13.1 reads a rule value of ``.dive-ci``, reproduced so that slimmer gives dive's
verdict for every rules file.

dive reads the file with viper (keys case-insensitive, ``rules.lowestEfficiency`` as a nested
or a dotted key), which decodes YAML with go-yaml v3 (YAML 1.2: ``yes`` and ``off`` are
strings, ``1_000`` and ``0x10`` are integers, ``010`` is octal) and turns the value into a
string with spf13/cast (``0.95`` -> ``"0.95"``, ``1e3`` -> ``"1000"``). A rule whose string is
exactly ``disabled`` is off; otherwise ``lowestEfficiency`` and ``highestUserWastedPercent``
go through Go's ``strconv.ParseFloat`` and must lie in [0, 1] (NaN passes that test), and
``highestWastedBytes`` through go-humanize's ``ParseBytes``. A value that fails is
"misconfigured": dive prints "CI Misconfigured" and exits 1.

Pure functions of strings; imports nothing of slimmer.
"""

from __future__ import annotations

import decimal
import math
import re

__all__ = ["DISABLED", "go_parse_float", "go_string", "humanize_parse_bytes", "yaml_v3_plain"]

DISABLED = "disabled"

# go-yaml v3 resolve.go: the plain scalars that are not strings
_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
                   ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
                   "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
                   "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf}
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64_MAX = (1 << 64) - 1

# go-humanize bytesSizeTable (v1.0.1)
_BYTE_UNITS = {"b": 1, "": 1}
for _i, _p in enumerate("kmgtpe", start=1):
    _BYTE_UNITS[f"{_p}ib"] = _BYTE_UNITS[f"{_p}i"] = 1024 ** _i
    _BYTE_UNITS[f"{_p}b"] = _BYTE_UNITS[_p] = 1000 ** _i


class _Null:
    """The YAML null: viper treats the key as unset (the default applies)."""


NULL = _Null()


def _go_parse_int(text: str) -> int | None:
    """Return ``strconv.ParseInt(text, 0, 64)`` (then ParseUint) as go-yaml v3 uses it, or None."""
    sign, body = 1, text
    if body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    base, digits = 10, body
    low = body[:2].lower()
    if low in ("0x", "0o", "0b"):
        base, digits = {"0x": 16, "0o": 8, "0b": 2}[low], body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, digits = 8, body[1:]
    valid = "0123456789abcdef"[:base]
    if not digits or any(c not in valid for c in digits.lower()):
        return None
    value = sign * int(digits, base)
    if _INT64[0] <= value <= _INT64[1]:
        return value
    if sign > 0 and text[:1] != "+" and value <= _UINT64_MAX:
        return value  # ParseUint takes no sign
    return None


def yaml_v3_plain(text: str) -> object:
    """Return what go-yaml v3 decodes the plain (unquoted) scalar ``text`` to, as Python:
    NULL, a bool, an int, a float or the string itself."""
    if text in _NULLS:
        return NULL
    if text in _BOOLS:
        return _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    hint = text[:1]
    if hint == ".":
        try:
            return go_parse_float(text)
        except ValueError:
            return text
    if hint.isdigit() or hint in ("+", "-"):
        # (a timestamp, YYYY-..., decodes to a time that no rule can parse, as the string can't)
        plain = text.replace("_", "")
        number = _go_parse_int(plain)
        if number is not None:
            return number
        if _YAML_FLOAT.match(plain):
            try:
                return go_parse_float(plain)
            except ValueError:
                pass
    return text


def _format_float(x: float) -> str:
    """Return strconv.FormatFloat(x, 'f', -1, 64): the shortest digits, never an exponent."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    text = format(decimal.Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def go_string(value: object) -> str | None:
    """Return the string viper's GetString gives for a decoded YAML value (spf13/cast), or
    None for a null (the rule's default applies). A list or a mapping gives ""."""
    if value is NULL:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, str):
        return value
    return ""


def _underscore_ok(s: str) -> bool:
    """Go strconv's underscoreOK: underscores only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if c.isascii() and (c.isdigit() or (hexa and c.lower() in "abcdef")):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


_DECIMAL = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_HEX = re.compile(r"^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?[pP]([+-]?[0-9]+)$")


def go_parse_float(text: str) -> float:
    """Return ``strconv.ParseFloat(text, 64)``; raise ValueError where Go returns an error
    (bad syntax, or a value out of range)."""
    low = text.lower()
    unsigned = low[1:] if low[:1] in ("+", "-") else low
    if unsigned in ("inf", "infinity"):
        return -math.inf if low[0] == "-" else math.inf
    if low == "nan":
        return math.nan
    if "_" in text:
        if not _underscore_ok(text):
            raise ValueError(f"invalid syntax: {text!r}")
        text = text.replace("_", "")
    hexa = _HEX.match(text)
    if hexa:
        sign, whole, frac, exp = hexa.groups()
        if not (whole or frac):
            raise ValueError(f"invalid syntax: {text!r}")
        try:
            value = float.fromhex(f"{sign}0x{whole or '0'}.{frac or '0'}p{exp}")
        except OverflowError:
            raise ValueError(f"value out of range: {text!r}") from None
    elif _DECIMAL.match(text):
        value = float(text)
    else:
        raise ValueError(f"invalid syntax: {text!r}")
    if math.isinf(value):
        raise ValueError(f"value out of range: {text!r}")
    return value


def humanize_parse_bytes(text: str) -> int:
    """Return go-humanize's ``ParseBytes(text)``: leading digits, dots and commas, then a unit
    (``20MB``, ``1.5 GiB``, ``1,000``, ``10k``); raise ValueError where it returns an error."""
    end = 0
    while end < len(text) and ((text[end].isascii() and text[end].isdigit()) or text[end] in ".,"):
        end += 1
    number = go_parse_float(text[:end].replace(",", ""))
    unit = text[end:].strip().lower()
    if unit not in _BYTE_UNITS:
        raise ValueError(f"unhandled size name: {unit}")
    value = number * float(_BYTE_UNITS[unit])
    if value >= float(_UINT64_MAX):
        raise ValueError(f"too large: {text}")
    return int(value)
