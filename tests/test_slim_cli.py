"""`slimmer slim` end to end: the exact summary for one tiny image, the JSON document, --dry-run
writing nothing, settings-file globs, and one error line per kind of bad request."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_elf import make_elf
from test_slim_output import REAL_TOOLS, check_output

from slimmer.cli import cli, main
from slimmer.reader import open_image

from builders import WHITEOUT, File, image, layer, write


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own directory with its own layer cache."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")


def tiny() -> str:
    """A static program, a README, /etc/passwd, then a layer leaving a scratch file in /tmp."""
    spec = image(layer({"app/run": File(make_elf(elf_type=2), mode=0o755), "usr/share/doc/x/README": 5000,
                        "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"}, auto_dirs=True, created_by="COPY app /app"),
                 layer({"app/.wh.old": WHITEOUT, "tmp/scratch": 1000}, created_by="RUN build"),
                 tag="tiny/app:1", entrypoint=["/app/run"])
    write(spec, "tiny.tar", "docker-legacy")
    return "tiny.tar"


TINY_DRY_RUN = """\
dry run: tiny.tar (prune) would become tiny/app:1-slim; nothing written
size    before 6.2 kB   after 154 B   removed 6.0 kB (97.5 %)   added 0 B

removed      files    bytes
---------  -------  -------
docs             1   5.0 kB
cache            1   1.0 kB

largest paths that would go (3 in all)
  bytes  category    path
-------  ----------  -----------------------
 5.0 kB  docs        /usr/share/doc/x/README
 1.0 kB  cache       /tmp/scratch
    0 B  docs        /usr/share/doc/x

kept, and why (entrypoint: /app/run)
path      why
--------  --------------
/app/run  the entrypoint
"""


def test_dry_run_prints_the_exact_summary_and_writes_nothing():
    """--dry-run prints what would go and the size after, and leaves the directory as it was."""
    archive = tiny()
    before = sorted(p.name for p in Path.cwd().iterdir())
    result = CliRunner().invoke(cli, ["slim", archive, "--dry-run", "-o", "out.tar"])
    assert result.exit_code == 0, result.output
    assert result.output == TINY_DRY_RUN
    assert sorted(p.name for p in Path.cwd().iterdir()) == before


def test_slim_writes_a_readable_archive_and_says_so():
    """A real run writes OUT, names it and its tag, and slimmer reads it back with that tag."""
    archive = tiny()
    result = CliRunner().invoke(cli, ["slim", archive, "-o", "out.tar", "--mode", "distroless", "--tag", "x/y:z"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote out.tar (docker, x/y:z) from tiny.tar (distroless)\n")
    assert open_image("out.tar").tags == ("x/y:z",)
    if REAL_TOOLS:
        check_output(Path("out.tar"), "docker", Path.cwd())


def test_json_summary_is_documented():
    """--json gives the slimmer.slim/1 document: sizes, categories, kept with reasons, notes."""
    archive = tiny()
    result = CliRunner().invoke(cli, ["slim", archive, "-o", "out.oci.tar", "--format", "oci", "--compression", "zstd",
                                      "--mode", "distroless", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["schema"] == "slimmer.slim/1" and doc["mode"] == "distroless" and not doc["dry_run"]
    assert doc["output"]["format"] == "oci" and doc["output"]["tags"] == ["tiny/app:1-slim"]
    assert doc["output"]["manifest_digest"].startswith("sha256:")
    sizes = doc["sizes"]
    assert sizes["before_bytes"] - sizes["removed_bytes"] + sizes["added_bytes"] == sizes["after_bytes"]
    assert {r["category"] for r in doc["removed_by_category"]} >= {"docs", "cache"}
    assert {"path": "/app/run", "why": "the entrypoint"} in doc["kept"]
    assert "removed" not in doc
    assert open_image("out.oci.tar").layers[0].compression == "zstd"
    if REAL_TOOLS:
        check_output(Path("out.oci.tar"), "oci", Path.cwd(), "zstd")


def test_settings_file_globs_apply():
    """slim.keep in .slimmer.toml keeps what the mode would drop."""
    archive = tiny()
    Path(".slimmer.toml").write_text('[slim]\nkeep = ["/usr/share/doc/**"]\n')
    result = CliRunner().invoke(cli, ["slim", archive, "--dry-run", "--json"])
    removed = {r["path"] for r in json.loads(result.output)["removed"]}
    assert "/usr/share/doc/x/README" not in removed and "/tmp/scratch" in removed


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["slimmer", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


@pytest.mark.parametrize("args, message", [
    pytest.param(["slim", "tiny.tar"], "give -o OUT.tar, or --dry-run", id="no output and no dry run"),
    pytest.param(["slim", "tiny.tar", "-o", "o.tar", "--user", "admin"],
                 "slimmer: error: --user 'admin': expected nonroot, a numeric UID or UID:GID", id="a bad --user"),
    pytest.param(["slim", "missing.tar", "-o", "o.tar"], "slimmer: error: cannot open missing.tar",
                 id="a missing archive"),
    pytest.param(["slim", "tiny.tar", "-o", "tiny.tar"], "slimmer never touches its input",
                 id="writing over the input"),
])
def test_bad_requests_are_one_error_line(monkeypatch, capsys, args, message):
    """Each bad request exits 2 with one error line on stderr and no traceback."""
    tiny()
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == ""
