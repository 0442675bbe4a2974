"""`slimmer check`: the CI gate, its thresholds, settings files, and JUnit/SARIF outputs."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

from slimmer.analyzer.gate import Share, Thresholds, check
from slimmer.analyzer.report import analyze
from slimmer.config_file import Loaded, load_thresholds, thresholds_from
from slimmer.errors import ConfigError

from builders import WHITEOUT, File, image, layer, to_model, write
from hostile import run_cli

# dive: layer 1 puts 60 kB in app/blob, layer 2 replaces it (60 kB) -> a wasted path counted twice
WASTEFUL = image(
    layer({"usr/bin/server": File(b"\x7fELF" + bytes(39_996), mode=0o755), "usr/local/go/bin/go": 30_000},
          created_by="ADD rootfs.tar /"),
    layer({"app/blob": 60_000, "var/cache/apt/archives/x.deb": 20_000}, created_by="RUN fetch"),
    layer({"app/blob": b"\x03" * 60_000, "var/cache/apt/.wh.archives": WHITEOUT}, created_by="RUN refetch"),
)


@pytest.fixture(scope="module")
def result():
    return analyze(to_model(WASTEFUL))


RULES = [
    (Thresholds(lowest_efficiency=0.9), "lowest_efficiency", "fail", "efficiency below 90%"),
    (Thresholds(lowest_efficiency=0.2), "lowest_efficiency", "pass", "efficiency above 20%"),
    (Thresholds(highest_wasted_bytes=100_000), "highest_wasted_bytes", "fail", "120 kB wasted over a 100 kB limit"),
    (Thresholds(highest_wasted_bytes=200_000), "highest_wasted_bytes", "pass", "120 kB wasted under a 200 kB limit"),
    (Thresholds(highest_user_wasted_percent=0.5), "highest_user_wasted_percent", "fail",
     "a user wasted share over 50%"),
    (Thresholds(highest_user_wasted_percent=0.9), "highest_user_wasted_percent", "pass",
     "a user wasted share under 90%"),
    (Thresholds(max_size=200_000), "max_size", "fail", "210 kB over a 200 kB size limit"),
    (Thresholds(max_size=300_000), "max_size", "pass", "210 kB under a 300 kB size limit"),
    (Thresholds(max_category_bytes={"toolchain": 10_000}), "max_category_bytes.toolchain", "fail",
     "30 kB of toolchain over a 10 kB limit"),
    (Thresholds(max_category_bytes={"cache": 0}), "max_category_bytes.cache", "pass",
     "a cache deleted later is no final byte"),
    (Thresholds(forbidden_categories=("toolchain",)), "forbidden_categories.toolchain", "fail",
     "a forbidden toolchain present"),
    (Thresholds(forbidden_categories=("vcs",)), "forbidden_categories.vcs", "pass", "a forbidden category absent"),
]


@pytest.mark.parametrize("thresholds,rule,status", [r[:3] for r in RULES], ids=[f"{r[2]}s with {r[3]}" for r in RULES])
def test_each_rule_passes_or_fails_on_its_threshold(result, thresholds, rule, status):
    """Each rule compares one measured figure with its limit."""
    verdict = {r.rule: r for r in check(result, thresholds, "img.tar").results}
    assert verdict[rule].status == status, verdict[rule].message


def test_dive_rules_measure_what_dive_measures(result):
    """The dive rules read dive's efficiency figures: 120 kB wasted (both copies of app/blob)."""
    verdict = {r.rule: r for r in check(result, Thresholds(highest_wasted_bytes=1), "x").results}
    assert verdict["highest_wasted_bytes"].actual == result.dive.wasted_bytes == 120_000
    assert verdict["lowest_efficiency"].actual == result.dive.efficiency


def test_rules_left_off_are_skipped_and_never_fail(result):
    """A rule with no limit is reported as skipped."""
    verdict = check(result, Thresholds(lowest_efficiency=None, highest_user_wasted_percent=None), "x")
    assert {r.status for r in verdict.results} == {"skip"} and verdict.passed


@pytest.mark.parametrize("text,expected", [
    ('lowest-efficiency = 0.95\nhighest-wasted-bytes = "20MB"\n',
     Thresholds(lowest_efficiency=0.95, highest_wasted_bytes=20_000_000)),
    ('lowestEfficiency = 0.5\nhighestUserWastedPercent = "disabled"\n',
     Thresholds(lowest_efficiency=0.5, highest_user_wasted_percent=None)),
    ('max-size = "1GiB"\nforbid-category = ["toolchain", "vcs"]\nmax-category = { cache = "10MB" }\n',
     Thresholds(max_size=2**30, forbidden_categories=("toolchain", "vcs"), max_category_bytes={"cache": 10_000_000})),
    ('lowest-efficiency = "95%"\nmax-true-waste = "5%"\nmax-could-save = "20MB"\n',
     Thresholds(lowest_efficiency=0.95, max_true_waste=Share(0.05), max_could_save=20_000_000)),
    ('forbid-finding = ["runs-as-root"]\n[max-finding]\ncache-left-behind = "1MB"\n',
     Thresholds(forbidden_findings=("runs-as-root",), max_finding_bytes={"cache-left-behind": 1_000_000})),
], ids=["kebab-case keys and a size with units", "dive's camelCase keys and disabled",
        "categories and per-category limits", "a percentage, a share of the image and a size",
        "findings forbidden and limited"])
def test_a_slimmer_toml_file_sets_the_thresholds(tmp_path, text, expected):
    """.slimmer.toml holds the thresholds at top level; what it leaves out keeps dive's defaults."""
    (tmp_path / ".slimmer.toml").write_text(text)
    loaded = load_thresholds(start=tmp_path)
    assert loaded.thresholds == expected
    assert loaded.source == tmp_path / ".slimmer.toml" and not loaded.dive_format


def test_pyproject_tool_slimmer_is_found_from_a_subdirectory(tmp_path):
    """[tool.slimmer] in pyproject.toml of a parent directory is found."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.slimmer]\nmax-size = "50MB"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    loaded = load_thresholds(start=sub)
    assert loaded.thresholds.max_size == 50_000_000 and loaded.source == tmp_path / "pyproject.toml"


def test_no_settings_file_means_dives_defaults(tmp_path):
    """Without a settings file (or with a pyproject.toml that has no [tool.slimmer]) dive's defaults apply."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_thresholds(start=tmp_path) == Loaded(Thresholds(0.9, None, 0.1), None)


@pytest.mark.parametrize("text,line,message", [
    ('lowest-efficiency = 0.9\n\nlowest-efficency = 0.9\n', 3,
     "unknown key 'lowest-efficency' in .slimmer.toml; did you mean lowest-efficiency?"),
    ('forbidden-categories = ["toolchain"]\n', 1, "did you mean forbid-category?"),
    ('max_size = "1GB"\n', 1, "did you mean max-size?"),
    ('[check]\nmax-size = "1GB"\n', 1, "unknown key 'check'"),
    ('lowest-efficiency = 90\n', 1, "expected a ratio between 0 and 1"),
    ('# sizes\nmax-size = "big"\n', 2, "expected a size like 500MB"),
    ('forbid-category = ["compilers"]\n', 1, "unknown category 'compilers'"),
    ('max-category = { cache = true }\n', 1, "expected a size like 500MB"),
    ('forbid-finding = ["root"]\n', 1, "unknown finding 'root'"),
    ('max-could-save = 0.2\n', 1, "expected a size like 50MB or a share like 20%"),
    ('lowest-efficiency = 0.5\nlowestEfficiency = 0.6\n', 2, "sets lowest-efficiency again"),
], ids=["a misspelt key", "a key of an old release", "a snake_case key", "a check table", "a percentage given as a "
        "whole number", "a size without a number", "an unknown category", "a boolean size", "an unknown finding",
        "a share without a percent sign", "a rule set twice"])
def test_bad_settings_name_the_file_and_the_line(tmp_path, text, line, message):
    """A bad setting raises ConfigError naming the file, the line and what was expected."""
    path = tmp_path / ".slimmer.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_thresholds(start=tmp_path)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_a_misspelt_key_of_pyproject_names_its_line(tmp_path):
    """In pyproject.toml the line is found below [tool.slimmer], not in another table with the same key."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nmax-szie = 1\n\n[tool.slimmer]\n'
                                             'lowest-efficiency = 0.9\nmax-szie = "1GB"\n')
    with pytest.raises(ConfigError) as err:
        load_thresholds(start=tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'pyproject.toml'}:7: unknown key 'max-szie' in [tool.slimmer]; "
                                     f"did you mean max-size?")


def test_thresholds_from_a_table_name_where_they_come_from():
    """thresholds_from names the given place in its messages."""
    with pytest.raises(ConfigError, match="unknown key 'lowest-efficency'") as err:
        thresholds_from({"lowest-efficency": 0.9}, "/x/.slimmer.toml")
    assert str(err.value).startswith("/x/.slimmer.toml: ")


# ---- the command ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write(WASTEFUL, tmp_path_factory.mktemp("check") / "img.tar", "docker-legacy")


def test_check_exits_1_and_says_which_rule_failed(archive, tmp_path, monkeypatch):
    """A failed rule: FAIL line, verdict line, exit status 1."""
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", str(archive), "--forbid-category", "toolchain", "--lowest-efficiency", "0",
                  "--highest-user-wasted-percent", "1")
    assert run.code == 1 and run.exc is None, run.err
    out = run.out.decode().splitlines()
    assert "FAIL  forbidden_categories.toolchain" in "\n".join(out)
    assert out[-1] == f"FAILED: 1 of 3 rules failed for {archive}"


def test_check_exits_0_when_every_rule_passes(archive, tmp_path, monkeypatch):
    """All rules met: exit status 0."""
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", str(archive), "--lowest-efficiency", "0.1", "--highest-user-wasted-percent", "1",
                  "--max-size", "1MB", "--max-category", "cache=1kB")
    assert run.code == 0 and run.exc is None, run.out
    assert run.out.decode().splitlines()[-1] == f"PASSED: 0 of 4 rules failed for {archive}"


def test_options_override_the_settings_file(archive, tmp_path, monkeypatch):
    """An option beats the same setting in .slimmer.toml; the file's other settings still apply."""
    (tmp_path / ".slimmer.toml").write_text('lowest-efficiency = 0.99\nmax-size = "100kB"\n')
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", str(archive), "--lowest-efficiency", "0.1", "--json")
    data = json.loads(run.out)
    statuses = {r["rule"]: (r["status"], r["limit"]) for r in data["rules"]}
    assert statuses["lowest_efficiency"] == ("pass", 0.1)
    assert statuses["max_size"] == ("fail", 100_000)
    assert run.code == 1 and data["passed"] is False


@pytest.mark.parametrize("args,message", [
    (["--config", "{tmp}/bad.toml"], "not valid TOML"),
    (["--max-category", "cache"], "expected CATEGORY=SIZE"),
    (["--lowest-efficiency", "2"], "2"),
], ids=["a broken settings file", "a category limit without a size", "an efficiency above 1"])
def test_check_errors_exit_2_with_one_line(archive, tmp_path, monkeypatch, args, message):
    """Errors are exit status 2 and a message, never a traceback (exit 1 is kept for failures)."""
    (tmp_path / "bad.toml").write_text("lowest-efficiency = = 1\n")
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", str(archive), *[a.format(tmp=tmp_path) for a in args])
    assert run.code == 2 and run.exc is None and message in run.err


def test_check_on_a_missing_archive_exits_2(tmp_path, monkeypatch):
    """An unreadable image is an error (2), not a failed check (1)."""
    monkeypatch.chdir(tmp_path)
    run = run_cli("check", str(tmp_path / "nope.tar"))
    assert run.code == 2 and run.err.startswith("slimmer: error: cannot open ")


def test_junit_report_has_one_case_per_rule_and_the_failures(archive, tmp_path, monkeypatch):
    """--junit writes JUnit XML: a test case per rule, <failure> for failed ones, <skipped> for off."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "junit.xml"
    run = run_cli("check", str(archive), "--forbid-category", "toolchain", "--junit", str(out))
    assert run.code == 1
    suite = ET.parse(out).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"lowest_efficiency", "highest_wasted_bytes", "highest_user_wasted_percent",
                          "forbidden_categories.toolchain"}
    failed = {n for n, c in cases.items() if c.find("failure") is not None}
    assert "forbidden_categories.toolchain" in failed and suite.get("failures") == str(len(failed))
    assert cases["highest_wasted_bytes"].find("skipped") is not None


def test_sarif_log_lists_failed_rules_as_errors_and_findings_as_notes(archive, tmp_path, monkeypatch):
    """--sarif writes a SARIF 2.1.0 log: failed rules are errors, findings notes with their savings."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "check.sarif"
    run = run_cli("check", str(archive), "--forbid-category", "toolchain", "--sarif", str(out))
    assert run.code == 1
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0" and log["runs"][0]["tool"]["driver"]["name"] == "slimmer"
    results = log["runs"][0]["results"]
    errors = [r for r in results if r["level"] == "error"]
    assert "forbidden_categories.toolchain" in {r["ruleId"] for r in errors}
    notes = {r["ruleId"]: r["properties"]["savings_bytes"] for r in results if r["level"] == "note"}
    assert notes["finding/toolchain-in-final-image"] == 30_000
    rule_ids = {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in results} <= rule_ids
