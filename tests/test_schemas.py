"""Every JSON document a command prints has exactly the keys README.md's table for its schema
lists, at the top level and in every nested object: a key changes only when the README does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hostile import run_cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FIXTURES = ROOT / "fixtures"
SCHEMAS = ("slimmer.analyze/1", "slimmer.fleet/1", "slimmer.diff/1", "slimmer.slim/1", "slimmer.check/1")
_HEADING = re.compile(r"^#+ .*`schema: (slimmer\.[a-z]+/\d+)`")


def documented(schema: str) -> dict[str, str]:
    """Return key path -> type cell of README's table for ``schema`` (``a[].b``: key ``b`` of
    each object in the list ``a``)."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if (m := _HEADING.match(line)) and m.group(1) == schema)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert rows[0][:2] == ["key", "type"] and set(rows[1][0]) <= set("-:"), f"{schema}: not a key | type table"
    keys: dict[str, str] = {}
    for cells in rows[2:]:
        names = re.findall(r"`([^`]+)`", cells[0])
        assert names, f"{schema}: a row without a key: {cells}"
        for name in names:
            assert name not in keys, f"{schema}: {name} listed twice"
            keys[name] = cells[1]
    return keys


def _parent(key: str) -> str:
    return key.rpartition(".")[0]


def check_document(doc: dict, keys: dict[str, str], seen: set[str]) -> None:
    """Assert every object in ``doc`` has the documented keys (all but those marked "only
    with"), and no other; add every key path met to ``seen``."""
    children: dict[str, set[str]] = {}
    for key in keys:
        children.setdefault(_parent(key), set()).add(key.rpartition(".")[2])

    def walk(value, path: str) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, path + "[]")
            return
        if not isinstance(value, dict) or keys.get(path, "").startswith("map"):
            return
        have = set(value)
        allowed = children.get(path, set())
        required = {k for k in allowed if "only with" not in keys[f"{path}.{k}" if path else k]}
        where = path or "the top level"
        assert have <= allowed, f"{where}: keys not in the README: {sorted(have - allowed)}"
        assert required <= have, f"{where}: documented keys missing: {sorted(required - have)}"
        for k, v in value.items():
            full = f"{path}.{k}" if path else k
            seen.add(full)
            walk(v, full)

    walk(doc, "")


def _json(*args: str, codes=(0,)) -> dict:
    run = run_cli(*args)
    assert run.exc is None, run.exc
    assert run.code in codes, run.err
    return json.loads(run.out)


def _runs(schema: str, tmp_path: Path) -> list[dict]:
    single, multi = str(FIXTURES / "single-stage.tar"), str(FIXTURES / "multistage.tar")
    if schema == "slimmer.analyze/1":
        return [_json("analyze", single, "--json")]
    if schema == "slimmer.fleet/1":
        return [_json("analyze", single, multi, "--json"),
                _json("analyze", single, str(tmp_path / "missing.tar"), "--json", codes=(2,))]
    if schema == "slimmer.diff/1":
        return [_json("diff", single, multi, "--json")]
    if schema == "slimmer.slim/1":
        return [_json("slim", single, "-o", str(tmp_path / "slim.tar"), "--json"),
                _json("slim", single, "--dry-run", "--json")]
    return [_json("check", single, "--json", "--max-category", "cache=1", codes=(0, 1))]


def test_every_schema_has_a_table_in_the_readme():
    """README.md has a key table for each published schema, and no table for any other."""
    assert sorted(m.group(1) for line in README.splitlines() if (m := _HEADING.match(line))) == sorted(SCHEMAS)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_each_command_emits_exactly_the_documented_keys(schema, tmp_path):
    """The command's JSON has exactly the README's keys in every object, and uses every documented key."""
    keys = documented(schema)
    seen: set[str] = set()
    for doc in _runs(schema, tmp_path):
        assert doc["schema"] == schema
        check_document(doc, keys, seen)
    assert seen == set(keys), f"documented but never emitted: {sorted(set(keys) - seen)}"


@pytest.mark.parametrize("doc, complaint", [
    pytest.param({"schema": "x", "extra": 1}, "keys not in the README: ['extra']", id="an extra key"),
    pytest.param({"schema": "x", "images": [{"source": "a"}]}, "documented keys missing", id="a missing nested key"),
])
def test_the_check_catches_a_key_that_changed(doc, complaint):
    """A key added, or one left out of a nested object, fails the check."""
    keys = documented("slimmer.fleet/1")
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        check_document(doc, keys, set())
