"""One rule for every output (slim -o, export DEST, --html, --junit, --sarif): `-` is standard
output, a tar's compression follows its name (or --compression), an existing path is replaced
only with --force, no output may be an input; and no option is silently ignored: the options of
one image are refused with several archives, --top takes no negative count, and audit lists a
bad archive in its row and says when it found no image at all."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from builders import WHITEOUT, image, layer, write
from hostile import fingerprint, run_cli


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    spec = image(layer({"bin/app": b"\x7fELF" + bytes(9_000), "usr/share/doc/app/README": 3_000,
                        "var/cache/apt/archives/x.deb": 4_000}, created_by="RUN install"),
                 layer({"var/cache/apt/.wh.archives": WHITEOUT, "etc/app.conf": b"a=1\n"}, created_by="RUN clean"),
                 entrypoint=["/bin/app"])
    return write(spec, tmp_path_factory.mktemp("in") / "app.tar", "docker-legacy")


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    spec = image(layer({"bin/app": 5_000}))
    return write(spec, tmp_path_factory.mktemp("oci") / "layout", "oci-dir")


def _members(data: bytes) -> dict[str, int]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m.size for m in tf.getmembers()}


# ---- - is standard output --------------------------------------------------------------------


def test_slim_to_standard_output_writes_the_archive_and_the_summary_to_stderr(archive, tmp_path, monkeypatch):
    """`slim -o -` writes the same archive as `slim -o FILE` (reproducible) on standard output
    and its summary on standard error; no file named - appears."""
    monkeypatch.chdir(tmp_path)
    piped = run_cli("slim", archive, "-o", "-", "--reproducible")
    to_file = run_cli("slim", archive, "-o", tmp_path / "slim.tar", "--reproducible")
    assert (piped.code, to_file.code) == (0, 0), piped.err
    assert piped.out == (tmp_path / "slim.tar").read_bytes()
    assert "wrote the slim image to standard output" in piped.err
    assert not (tmp_path / "-").exists()
    assert "manifest.json" in _members(piped.out)


def test_slim_json_summary_goes_to_stderr_when_the_archive_is_on_stdout(archive, tmp_path):
    """With -o - and --json the JSON summary is on standard error: standard output is the tar."""
    run = run_cli("slim", archive, "-o", "-", "--json")
    assert run.code == 0
    assert json.loads(run.err)["output"]["path"] == "-"
    assert "manifest.json" in _members(run.out)


@pytest.mark.parametrize("command", [["slim", "{a}", "-o", "-"], ["export", "{a}", "-"]], ids=["slim", "export"])
def test_a_tar_is_never_written_to_a_terminal(command, archive, tmp_path):
    """A tar for standard output is refused at once when standard output is a terminal."""
    leader, follower = os.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "slimmer", *[c.format(a=archive) for c in command]],
                              stdout=follower, stderr=subprocess.PIPE, text=True, check=False, timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 2 and "to a terminal" in done.stderr and done.stderr.count("\n") == 1


def test_html_to_standard_output_sends_the_report_to_stderr(archive):
    """`--html -` writes the page on standard output; the text report goes to standard error."""
    run = run_cli("analyze", archive, "--html", "-")
    assert run.code == 0
    assert run.out.decode().startswith("<!DOCTYPE html>") and run.out.decode().rstrip().endswith("</html>")
    assert run.err.startswith("Image ")


def test_junit_to_standard_output_sends_the_verdict_to_stderr(archive):
    """`check --junit -` writes the XML on standard output and the verdict on standard error."""
    run = run_cli("check", archive, "--junit", "-", "--lowest-efficiency", "0")
    assert run.out.startswith(b"<?xml") and "rules failed for" in run.err


def test_only_one_output_may_be_standard_output(archive):
    """--junit - and --sarif - together are refused before any work."""
    run = run_cli("check", archive, "--junit", "-", "--sarif", "-")
    assert run.code == 2 and "only one output can go to standard output" in run.err


# ---- compression by name --------------------------------------------------------------------


MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd", "xz": b"\xfd7zXZ\x00"}
OPEN = {"gzip": gzip.decompress, "zstd": lambda d: zstandard.ZstdDecompressor().decompressobj().decompress(d),
        "xz": lzma.decompress}


@pytest.mark.parametrize("name, compression", [("root.tar.gz", "gzip"), ("root.tgz", "gzip"),
                                                ("root.tar.zst", "zstd"), ("root.tar.xz", "xz")])
def test_export_compresses_a_tar_as_its_name_says(name, compression, archive, tmp_path):
    """`export IMAGE x.tar.gz` writes a gzip-compressed tar (not a directory), holding the same
    tar as `export IMAGE x.tar`."""
    assert run_cli("export", archive, tmp_path / "root.tar").code == 0
    run = run_cli("export", archive, tmp_path / name)
    assert run.code == 0, run.err
    data = (tmp_path / name).read_bytes()
    assert (tmp_path / name).is_file() and data.startswith(MAGIC[compression])
    assert OPEN[compression](data) == (tmp_path / "root.tar").read_bytes()


def test_export_compression_option_beats_the_name_and_works_on_stdout(archive, tmp_path):
    """--compression zstd on - gives a zstd stream; --compression none keeps x.tar.gz plain."""
    run = run_cli("export", archive, "-", "--compression", "zstd")
    assert run.code == 0 and run.out.startswith(MAGIC["zstd"])
    assert run_cli("export", archive, tmp_path / "plain.tar.gz", "--compression", "none").code == 0
    assert _members((tmp_path / "plain.tar.gz").read_bytes())


@pytest.mark.parametrize("name, compression", [("slim.tar.gz", "gzip"), ("slim.tar.zst", "zstd"), ("slim.txz", "xz")])
def test_slim_compresses_its_archive_as_its_name_says_and_it_reads_back(name, compression, archive, tmp_path):
    """`slim -o app-slim.tar.gz` writes the archive gzip-compressed (as `docker load` takes it);
    slimmer reads it back as the same image as the plain one."""
    assert run_cli("slim", archive, "-o", tmp_path / "plain.tar", "--reproducible").code == 0
    run = run_cli("slim", archive, "-o", tmp_path / name, "--reproducible")
    assert run.code == 0, run.err
    assert (tmp_path / name).read_bytes().startswith(MAGIC[compression])
    a, b = (json.loads(run_cli("analyze", p, "--json").out)["image"] for p in (tmp_path / "plain.tar", tmp_path / name))
    assert a["config_digest"] == b["config_digest"] and not list(tmp_path.glob(".slimmer-tmp-*"))


# ---- --force ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, target", [
    (["slim", "{a}", "-o", "{t}"], "out.tar"),
    (["export", "{a}", "{t}"], "root.tar"),
    (["export", "{a}", "{t}"], "rootdir"),
    (["analyze", "{a}", "--html", "{t}"], "report.html"),
    (["check", "{a}", "--lowest-efficiency", "0", "--junit", "{t}"], "check.xml"),
    (["check", "{a}", "--lowest-efficiency", "0", "--sarif", "{t}"], "check.sarif"),
], ids=["slim -o", "export to a tar", "export to a directory", "--html", "--junit", "--sarif"])
def test_an_existing_output_is_replaced_only_with_force(command, target, archive, tmp_path):
    """Without --force an existing output is refused (exit 2, left as it was) before any work;
    with --force it is replaced."""
    dest = tmp_path / target
    if target == "rootdir":
        dest.mkdir()
        (dest / "mine").write_text("keep me")
    else:
        dest.write_text("old")
    before = fingerprint(dest)
    args = [c.format(a=archive, t=dest) for c in command]
    refused = run_cli(*args)
    assert refused.code == 2 and "give --force to replace it" in refused.err and refused.err.count("\n") == 1
    assert fingerprint(dest) == before
    replaced = run_cli(*args, "--force")
    assert replaced.code in (0, 1), replaced.err
    assert fingerprint(dest) != before and not (dest / "mine").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".slimmer-tmp-")] == []


# ---- no output is an input ---------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["slim", "{a}", "-o", "{a}", "--force"],
    ["export", "{a}", "{a}", "--force"],
    ["analyze", "{a}", "--html", "{a}", "--force"],
    ["check", "{a}", "--junit", "{a}", "--force"],
    ["check", "{a}", "--sarif", "{a}", "--force"],
], ids=["slim -o INPUT", "export INPUT INPUT", "--html INPUT", "--junit INPUT", "--sarif INPUT"])
def test_no_output_may_be_the_input_even_with_force(command, archive):
    """Naming the input as an output is refused, --force or not, and the input is unchanged."""
    before = fingerprint(archive)
    run = run_cli(*[c.format(a=archive) for c in command])
    assert run.code == 2 and "slimmer never touches its input" in run.err and run.err.count("\n") == 1, run.err
    assert fingerprint(archive) == before


def test_no_output_may_lie_inside_an_input_layout_or_hold_it(layout, archive, tmp_path):
    """An output inside an OCI layout directory read as input is refused; so is a directory
    export with --force onto a directory that holds the input."""
    before = fingerprint(layout)
    run = run_cli("analyze", layout, "--html", layout / "report.html")
    assert run.code == 2 and "lies inside, the input" in run.err
    assert fingerprint(layout) == before
    holder = tmp_path / "holder"
    holder.mkdir()
    inside = holder / "app.tar"
    inside.write_bytes(archive.read_bytes())
    run = run_cli("export", inside, holder, "--force")
    assert run.code == 2 and "lies inside it" in run.err and inside.read_bytes() == archive.read_bytes()


def test_two_outputs_may_not_share_a_path(archive, tmp_path):
    """--junit and --sarif naming one file is refused."""
    run = run_cli("check", archive, "--junit", tmp_path / "x", "--sarif", tmp_path / "x")
    assert run.code == 2 and "would both be written to" in run.err


# ---- no silent options ----------------------------------------------------------------------------


@pytest.mark.parametrize("extra, named", [
    (["--html", "r.html"], "--html"), (["--by", "layer"], "--by"), (["--image", "x:1"], "--image"),
    (["--platform", "linux/arm64"], "--platform"), (["--top", "5"], "--top"),
    (["--by", "dir", "--image", "x"], "--image, --by"),
], ids=["--html", "--by", "--image", "--platform", "--top", "two at once"])
def test_options_of_one_image_are_refused_with_several_archives(extra, named, archive, tmp_path, monkeypatch):
    """With several archives the options that apply to one image are an error naming them, and
    nothing is read or written."""
    monkeypatch.chdir(tmp_path)
    run = run_cli("analyze", archive, archive, *extra)
    assert run.code == 2 and f"{named} cannot be used with several archives" in run.err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", [["analyze", "{a}", "--top", "-3"], ["diff", "{a}", "{a}", "--top", "-1"]],
                         ids=["analyze", "diff"])
def test_a_negative_top_is_refused(command, archive):
    """--top counts rows: a negative count is a usage error."""
    run = run_cli(*[c.format(a=archive) for c in command])
    assert run.code == 2 and "--top" in run.err


def test_audit_lists_a_bad_archive_in_its_row_and_goes_on(archive, tmp_path):
    """A tar that is no image, a truncated archive, a good one and its gzip: all get a row (a
    gzip file that holds no tar is not taken for an archive), the good images are listed, and
    the exit status (2) says some failed."""
    root = tmp_path / "images"
    root.mkdir()
    (root / "good.tar").write_bytes(archive.read_bytes())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("notes.txt")
        data = b"not an image\n" * 200
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (root / "notes.tar").write_bytes(buf.getvalue())
    (root / "cut.tar").write_bytes(archive.read_bytes()[:6_000])
    (root / "good.tar.gz").write_bytes(gzip.compress(archive.read_bytes()))
    (root / "logs.gz").write_bytes(gzip.compress(b"a log, not a tar\n" * 100))
    for jobs in ("1", "2"):
        run = run_cli("audit", root, "--json", "--jobs", jobs)
        assert run.code == 2 and run.exc is None
        rows = {Path(r["source"]).name: r for r in json.loads(run.out)["images"]}
        assert set(rows) == {"good.tar", "good.tar.gz", "notes.tar", "cut.tar"}
        assert rows["good.tar"]["error"] == "" and rows["good.tar"]["total_bytes"] > 0
        assert rows["good.tar.gz"]["error"] == ""
        assert rows["good.tar.gz"]["total_bytes"] == rows["good.tar"]["total_bytes"]
        assert rows["notes.tar"]["error"] and rows["cut.tar"]["error"]
        assert [ln for ln in run.err.splitlines() if ln.startswith("slimmer: error:")] == [
            f"slimmer: error: {rows[n]['error']}" for n in ("cut.tar", "notes.tar")]


def test_an_audit_that_finds_no_image_says_so_and_exits_2(tmp_path):
    """A directory without image archives: one error line, exit status 2 (not an empty table)."""
    (tmp_path / "readme.txt").write_text("nothing here")
    run = run_cli("audit", tmp_path)
    assert run.code == 2 and run.out == b""
    assert run.err == f"slimmer: error: no image found in {tmp_path}\n"
