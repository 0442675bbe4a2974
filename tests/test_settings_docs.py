"""The README's settings are the code's: every TOML and YAML example of the README is run through
`slimmer check` and each key it sets takes effect; the README's table of keys is the schema
(``gate.RULES``); a misspelt key is an error naming the file and its line."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from slimmer.analyzer.gate import RULES, Thresholds
from slimmer.config_file import load_thresholds
from slimmer.rewriter.settings import slim_globs

from builders import WHITEOUT, image, layer, write
from hostile import run_cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLES = re.findall(r"```(toml|yaml)\n(.*?)```", README, re.DOTALL)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    spec = image(layer({"usr/bin/app": 40_000, "var/cache/apt/archives/x.deb": 9_000}),
                 layer({"usr/bin/app": 41_000, "var/cache/apt/.wh.archives": WHITEOUT}))
    return write(spec, tmp_path_factory.mktemp("img") / "app.tar", "docker-legacy")


def test_the_readme_has_toml_and_yaml_examples():
    """There is something to run: at least one example of each."""
    assert {kind for kind, _ in EXAMPLES} == {"toml", "yaml"}


def _keys_of(kind: str, text: str) -> set[str]:
    """Return the rule keys an example sets (dive's names mapped to the schema's)."""
    names = {r.key: r.key for r in RULES} | {r.dive: r.key for r in RULES if r.dive}
    found = set()
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z-]+)\s*[=:]", line)
        if m and m.group(1) in names:
            found.add(names[m.group(1)])
    return found


@pytest.mark.parametrize("kind, text", EXAMPLES, ids=[f"README {k} example {i}" for i, (k, _) in enumerate(EXAMPLES)])
def test_every_readme_example_runs_and_every_key_in_it_takes_effect(kind, text, archive, tmp_path, monkeypatch):
    """The example, saved where `slimmer check` looks, is read without error, and every rule it
    names differs from dive's defaults in the thresholds read (none is silently ignored)."""
    name = ".dive-ci" if kind == "yaml" else ("pyproject.toml" if "[tool.slimmer]" in text else ".slimmer.toml")
    (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", archive)
    assert run.exc is None and run.code in (0, 1), run.err
    assert f"thresholds from {tmp_path / name}" in run.err and "warning" not in run.err
    loaded = load_thresholds(start=tmp_path)
    keys = _keys_of(kind, text)
    assert keys, text
    default = Thresholds()
    for rule in RULES:
        if rule.key in keys:
            assert getattr(loaded.thresholds, rule.field) != getattr(default, rule.field), rule.key
    assert loaded.thresholds.misconfigured == ()
    if "[tool.slimmer.slim]" in text:
        keep, _drop, _source = slim_globs(start=tmp_path)
        assert keep


def test_the_readme_table_of_keys_is_the_schema():
    """Each key of gate.RULES has a row in the README's table of rules, with its dive name."""
    table = README[README.index("### The rules"):README.index("### Coming from `dive --ci`")]
    rows = dict(re.findall(r"^\| `([a-z-]+)` \|.*\| (`\w+`|—) \|$", table, re.MULTILINE))
    assert set(rows) == {r.key for r in RULES}
    assert {k: v.strip("`") for k, v in rows.items() if v != "—"} == {r.key: r.dive for r in RULES if r.dive}


def test_the_readme_counts_the_dive_comparison_right():
    """The README says how many rules files and archives the dive comparison runs."""
    from test_dive_ci import ARCHIVES, RULES_FILES

    assert f"{len(RULES_FILES)} rules files and {len(ARCHIVES)} archives" in " ".join(README.split())


@pytest.mark.parametrize("name, text, line, message", [
    ("pyproject.toml", '[project]\nname = "app"\n\n[tool.slimmer]\nmax-size = "500MB"\nforbid-categroy = ["cache"]\n',
     6, "unknown key 'forbid-categroy' in [tool.slimmer]; did you mean forbid-category?"),
    (".slimmer.toml", 'max-category = { cache = "10MB" }\nmax-could-save = "lots"\n', 2,
     "max-could-save: expected a size like 500MB"),
    (".dive-ci", "rules:\n  lowestEfficiency: 0.9\nslimmer:\n  forbid-categories: [toolchain]\n", 4,
     "unknown key 'forbid-categories' in slimmer:; did you mean forbid-category?"),
], ids=["a misspelt key in pyproject.toml", "a bad value in .slimmer.toml", "a misspelt key of slimmer's in .dive-ci"])
def test_a_misspelt_key_fails_with_the_file_and_the_line(name, text, line, message, archive, tmp_path, monkeypatch):
    """`slimmer check` stops with exit status 2 and one line naming the file, the line and the key."""
    (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", archive)
    assert run.code == 2 and run.exc is None
    error = [ln for ln in run.err.splitlines() if ln.startswith("slimmer: error: ")]
    assert error == [f"slimmer: error: {tmp_path / name}:{line}: {message}"] or \
        (len(error) == 1 and error[0].startswith(f"slimmer: error: {tmp_path / name}:{line}: ") and message in error[0])


def test_a_misspelt_dive_rule_is_a_warning_with_its_line_and_keeps_dives_verdict(archive, tmp_path, monkeypatch):
    """dive ignores a rule it does not know, so slimmer does too (same verdict), but says so."""
    (tmp_path / ".dive-ci").write_text("rules:\n  lowestEfficiency: 0.1\n  highestUserWastedPercent: disabled\n"
                                       "  lowestEfficency: 0.999\n")
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", archive)
    assert run.code == 0 and load_thresholds().thresholds == Thresholds(0.1, None, None)
    assert (f"slimmer: warning: {tmp_path / '.dive-ci'}:4: rules: 'lowestEfficency' is not a rule dive knows "
            f"(did you mean lowestEfficiency?); ignored, as dive ignores it") in run.err


def test_a_slimmer_file_comes_before_dive_ci_and_says_so(archive, tmp_path, monkeypatch):
    """With both a .slimmer.toml that sets a rule and a .dive-ci, the first is read and the second named as not."""
    (tmp_path / ".slimmer.toml").write_text('max-size = "1kB"\n')
    (tmp_path / ".dive-ci").write_text("rules:\n  lowestEfficiency: disabled\n")
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", archive, "--json")
    assert run.code == 1
    assert f"{tmp_path / '.dive-ci'} not read: the thresholds in {tmp_path / '.slimmer.toml'} come first" in run.err


def test_a_pyproject_with_only_slim_globs_leaves_check_to_dive_ci(archive, tmp_path, monkeypatch):
    """[tool.slimmer.slim] alone sets no rule: the .dive-ci beside it is what check reads."""
    (tmp_path / "pyproject.toml").write_text('[tool.slimmer.slim]\nkeep = ["/etc/**"]\n')
    (tmp_path / ".dive-ci").write_text("rules:\n  highestWastedBytes: 1KB\n")
    monkeypatch.chdir(tmp_path)
    loaded = load_thresholds()
    assert loaded.source == tmp_path / ".dive-ci" and loaded.dive_format
    assert dataclasses.replace(loaded.thresholds, highest_wasted_bytes=None) == Thresholds()
