"""`slimmer analyze` end to end: the exact report for one tiny image, the JSON document, image
selection, one error line per kind of bad input, and the sample archives in fixtures/ (rebuilt
byte for byte by fixtures/build.py, and showing the single-stage build's waste).

Errors go through the real entry point, ``slimmer.cli.main`` (it turns a SlimmerError into one
``slimmer: error: ...`` line and exit status 2), called in-process with sys.argv set; one test
runs ``python -m slimmer.cli`` in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slimmer.cli import cli, main

from builders import WHITEOUT, Dir, content, image, layer, write, write_multi

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test reads with an empty layer cache of its own."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


def tiny():
    """Two layers: a 5000-byte file and a config file, then the file deleted and the config
    rewritten; an empty-layer ENV step between them."""
    return image(
        layer({"app": Dir(), "app/big.bin": 5000, "app/conf": b"x=1\n"},
              created_by="/bin/sh -c #(nop) COPY dir:abc in /app "),
        layer({"app/.wh.big.bin": WHITEOUT, "app/conf": b"x=2\n"}, created_by="/bin/sh -c rm /app/big.bin"),
        tag="tiny/app:1", entrypoint=["/app/run"], empty_steps=[(1, "/bin/sh -c #(nop)  ENV A=1")])


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run slimmer's entry point with ``args``; return (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["slimmer", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out, err


# ---- one tiny image ------------------------------------------------------------------------

TINY_REPORT = """\
Image        tiny/app:1
Format       docker-archive   Platform linux/amd64   Created 1970-01-01T00:00:00Z
Entrypoint   /app/run   Cmd -
Layers       2   Files 1   User root
Size         total 5.0 kB   final 4 B   stored 10.8 kB
Efficiency   0.08 % (dive)   wasted 5.0 kB (dive, counts kept copies)   truly wasted 5.0 kB

  #    size    files  created by
---  ------  -------  --------------------
  0  5.0 kB        2  COPY dir:abc in /app
                      ENV A=1
  1     4 B        1  RUN rm /app/big.bin

Largest wasted paths (dive: path in several layers)
  bytes    copies  layers    path
-------  --------  --------  ------------
 5.0 kB         2  0,1       /app/big.bin
    8 B         2  0,1       /app/conf

Truly wasted (in a layer, not in the final filesystem)
  bytes    layer    by  how          path
-------  -------  ----  -----------  ------------
 5.0 kB        0     1  deleted      /app/big.bin
    4 B        0     1  overwritten  /app/conf

Largest files
  bytes    layer  path
-------  -------  ---------
    4 B        1  /app/conf

Largest directories
  bytes  path
-------  ------
    4 B  /app

Bytes by category
category      final    files    wasted  removable
----------  -------  -------  --------  -----------
other           4 B        1    5.0 kB

Findings: could save 5.0 kB of 5.0 kB (estimated 8 B after slimming)
  by fix: squash 5.0 kB
    5.0 kB  squash      Files at /app/big.bin added by step 0 `COPY dir:abc in /app` and deleted by
                        step 2 `RUN rm /app/big.bin`: still stored in layer 0
                        /app/big.bin  5.0 kB  layer 0
                        » Delete files in the step that creates them, or produce them in a build
                          stage and COPY only what the final image needs.
         -  user        The image runs as root (no USER, or USER root)
                        config.User
                        » Add a `USER` with a non-zero uid (e.g. `USER 65532:65532`) in the final
                          stage.
"""


def test_table_report_of_a_tiny_image(tmp_path):
    """`slimmer analyze` exits 0 and prints exactly the expected report, no line past 100 columns."""
    archive = write(tiny(), tmp_path / "tiny.tar", "docker-legacy")
    result = CliRunner().invoke(cli, ["analyze", str(archive)])
    assert result.exit_code == 0, result.output
    assert result.stdout == TINY_REPORT
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


def test_json_report_of_a_tiny_image(tmp_path):
    """--json gives the documented sections with the hand-computed figures of the tiny image."""
    spec = tiny()
    archive = write(spec, tmp_path / "tiny.tar", "docker-legacy")
    result = CliRunner().invoke(cli, ["analyze", str(archive), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["schema"] == "slimmer.analyze/1"
    assert report["image"] == {
        "source": str(archive), "format": "docker-archive", "tags": ["tiny/app:1"], "platform": "linux/amd64",
        "created": "1970-01-01T00:00:00Z", "entrypoint": ["/app/run"], "cmd": None, "user": "", "workdir": "",
        "config_digest": spec.config_digest}
    stored = [len(lay.tar) for lay in spec.layers]
    assert report["sizes"] == {"layer_count": 2, "total_bytes": 5008, "final_bytes": 4,
                               "stored_bytes": sum(stored), "file_count": 1}
    assert report["layers"] == [
        {"index": 0, "diff_id": spec.diff_ids[0], "size_bytes": 5004, "stored_bytes": stored[0], "files": 2,
         "created_by": "COPY dir:abc in /app", "created": "1970-01-01T00:00:00Z", "empty_layer": False},
        {"index": None, "diff_id": None, "size_bytes": 0, "stored_bytes": 0, "files": 0, "created_by": "ENV A=1",
         "created": "1970-01-01T00:00:00Z", "empty_layer": True},
        {"index": 1, "diff_id": spec.diff_ids[1], "size_bytes": 4, "stored_bytes": stored[1], "files": 1,
         "created_by": "RUN rm /app/big.bin", "created": "1970-01-01T00:00:00Z", "empty_layer": False},
    ]
    assert report["waste"] == {
        "dive_efficiency": 4 / 5008, "dive_wasted_bytes": 5008, "dive_user_wasted_percent": 5008 / 4,
        "dive_size_bytes": 5008, "dive_user_size_bytes": 4, "true_wasted_bytes": 5004,
        "dive_paths": [{"path": "/app/big.bin", "count": 2, "size_bytes": 5000, "layers": [0, 1]},
                       {"path": "/app/conf", "count": 2, "size_bytes": 8, "layers": [0, 1]}],
        "shadowed": [{"path": "/app/big.bin", "size_bytes": 5000, "layer": 0, "by_layer": 1, "how": "deleted"},
                     {"path": "/app/conf", "size_bytes": 4, "layer": 0, "by_layer": 1, "how": "overwritten"}],
    }
    assert report["largest_files"] == [{"path": "/app/conf", "size_bytes": 4, "layer": 1}]
    assert report["largest_dirs"] == [{"path": "/app", "size_bytes": 4}]


@pytest.mark.parametrize("args", [["--json"], ["--format", "json"]], ids=["--json", "--format json"])
def test_json_spellings_give_the_same_document(tmp_path, args):
    """--json and --format json print the same document."""
    archive = write(tiny(), tmp_path / "tiny.tar", "docker-legacy")
    first = CliRunner().invoke(cli, ["analyze", str(archive), "--json"])
    second = CliRunner().invoke(cli, ["analyze", str(archive), *args])
    assert second.exit_code == 0 and second.stdout == first.stdout


def test_json_lists_every_dive_path_up_to_top(tmp_path):
    """waste.dive_paths lists up to --top paths, even when few versions are truly wasted."""
    spec = image(layer({"a": Dir(), "b": Dir(), "c": Dir(), "f": 10}), layer({"a": Dir(), "b": Dir(), "c": Dir(),
                                                                              "f": 20}))
    archive = write(spec, tmp_path / "dirs.tar", "docker-legacy")
    report = json.loads(CliRunner().invoke(cli, ["analyze", str(archive), "--json", "--top", "50"]).stdout)
    assert len(report["waste"]["shadowed"]) == 1
    assert [p["path"] for p in report["waste"]["dive_paths"]] == ["/f", "/a", "/b", "/c"]


# ---- image selection -----------------------------------------------------------------------


@pytest.fixture
def two_images(tmp_path) -> Path:
    return write_multi({"web/app:1": image(layer({"a": 1})), "web/app:2": image(layer({"b": 2}))},
                       tmp_path / "two.tar", "docker-legacy")


def test_image_option_picks_one_of_two(two_images, monkeypatch, capsys):
    """--image REPO:TAG analyzes that image."""
    code, out, err = run_main(monkeypatch, capsys, "analyze", two_images, "--image", "web/app:2", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["image"]["tags"] == ["web/app:2"]


@pytest.mark.parametrize("extra, message", [
    pytest.param([], "holds 2 images, pick one with --image: web/app:1; web/app:2",
                 id="two images and no --image is refused with the choices"),
    pytest.param(["--image", "web/app:3"], "no image 'web/app:3'; the archive holds: web/app:1; web/app:2",
                 id="an --image naming no image is refused with the choices"),
])
def test_image_selection_errors(two_images, monkeypatch, capsys, extra, message):
    """A selection that does not name exactly one image is one error line and exit status 2."""
    code, out, err = run_main(monkeypatch, capsys, "analyze", two_images, *extra)
    assert (code, out) == (2, "")
    assert err.startswith("slimmer: error: ") and err.count("\n") == 1
    assert message in err


# ---- bad input -----------------------------------------------------------------------------


def _flip(blob: bytes, at: float = 0.5) -> bytes:
    i = int(len(blob) * at)
    return blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1:]


def _layers(manifest, value):
    manifest[0]["Layers"][0] = value
    return manifest


def _media(manifest, value):
    manifest["layers"][0]["mediaType"] = value
    return manifest


def _bad(kind: str, tmp_path: Path) -> Path:
    spec = image(layer({"etc": Dir(), "etc/big": 50_000, "etc/small": 10}), layer({"etc/.wh.big": WHITEOUT}))
    path = tmp_path / "bad.tar"
    if kind == "text":
        path.write_bytes(b"this is not an image archive\n" * 100)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated-archive":
        good = write(spec, tmp_path / "good.tar", "docker-legacy").read_bytes()
        path.write_bytes(good[: len(good) // 2])
    elif kind == "truncated-layer":
        write(spec, path, "docker-legacy", layer_blob=lambda i, b: b[:3000] if i == 0 else b)
    elif kind == "corrupt-gzip":
        write(spec, path, "docker-legacy", "gzip", layer_blob=lambda i, b: _flip(b) if i == 0 else b)
    elif kind == "corrupt-zstd":
        write(spec, path, "oci-tar", "zstd", layer_blob=lambda i, b: _flip(b) if i == 0 else b)
    elif kind == "missing-blob":
        write(spec, path, "docker-legacy", edit_manifest=lambda m: _layers(m, "nothing/layer.tar"))
    elif kind == "outside-blob":
        write(spec, path, "docker-legacy", edit_manifest=lambda m: _layers(m, "../../etc/passwd"))
    elif kind == "invalid-json":
        write(spec, path, "docker-legacy", edit_manifest=lambda m: b'[{"Config": ')
    elif kind == "diff-id-mismatch":
        # the blob's name follows its new digest, but the config's rootfs.diff_ids does not
        write(spec, path, "docker-legacy", layer_blob=lambda i, b: b.replace(content(10), b"0123456789") if i == 0
              else b)
    elif kind == "unknown-media-type":
        write(spec, path, "oci-tar", edit_manifest=lambda m: _media(m, "application/x-not-a-layer"))
    elif kind == "no-such-file":
        return tmp_path / "missing.tar"
    elif kind == "plain-directory":
        (tmp_path / "dir").mkdir()
        (tmp_path / "dir" / "readme.txt").write_text("hello")
        return tmp_path / "dir"
    return path


BAD = [
    ("text", "not a readable tar", "a text file"),
    ("empty", "empty", "an empty file"),
    ("truncated-archive", "truncated", "an archive cut in half"),
    ("truncated-layer", "truncated", "a layer tar cut short"),
    ("corrupt-gzip", "gzip", "a corrupt gzip layer"),
    ("corrupt-zstd", "zstd", "a corrupt zstd layer"),
    ("missing-blob", "nothing/layer.tar", "a manifest naming a missing layer"),
    ("outside-blob", "outside", "a manifest naming a layer outside the archive"),
    ("invalid-json", "JSON", "a manifest that is not JSON"),
    ("diff-id-mismatch", "diff_id", "a layer that does not match its diff_id"),
    ("unknown-media-type", "application/x-not-a-layer", "an unknown layer media type"),
    ("no-such-file", "missing.tar", "a path that does not exist"),
    ("plain-directory", "not an image", "a directory that is not an OCI layout"),
]


@pytest.mark.parametrize("kind, words", [b[:2] for b in BAD], ids=[b[2] for b in BAD])
def test_bad_input_is_one_error_line_and_exit_2(kind, words, tmp_path, monkeypatch, capsys):
    """Bad input ends in exit status 2, nothing on stdout and one `slimmer: error:` line that
    says what is wrong."""
    path = _bad(kind, tmp_path)
    code, out, err = run_main(monkeypatch, capsys, "analyze", path)
    assert (code, out) == (2, "")
    assert err.startswith("slimmer: error: ") and err.count("\n") == 1, err
    assert words.lower() in err.lower()
    assert path.name in err


def test_error_through_the_installed_entry_point(tmp_path):
    """`python -m slimmer.cli analyze` on bad input prints one error line, no traceback, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "slimmer.cli", "analyze", str(_bad("text", tmp_path))],
                          check=False, capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith("slimmer: error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_docker_empty_layer_is_read(tmp_path, monkeypatch, capsys):
    """A layer of 1024 zero bytes (Docker's empty layer, diff_id sha256:5f70bf18...) is an empty
    layer, not an error."""
    spec = image(layer({"a": 1}), layer({}))
    assert spec.diff_ids[1] == "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    archive = write(spec, tmp_path / "empty-layer.tar", "docker-legacy")
    code, out, err = run_main(monkeypatch, capsys, "analyze", archive, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["sizes"]["layer_count"] == 2


# ---- the sample archives -------------------------------------------------------------------


def load_build():
    spec = importlib.util.spec_from_file_location("fixtures_build", FIXTURES / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixtures_are_rebuilt_byte_for_byte(tmp_path):
    """Running fixtures/build.py writes exactly the committed sample archives, under 10 MB in all."""
    build = load_build()
    written = build.build(tmp_path)
    assert sorted(p.name for p in written) == sorted(build.ARCHIVES)
    for path in written:
        assert path.read_bytes() == (FIXTURES / path.name).read_bytes(), f"{path.name} differs: rerun fixtures/build.py"
    assert sum((FIXTURES / name).stat().st_size for name in build.ARCHIVES) < 10_000_000


def test_fixture_build_script_runs_standalone(tmp_path):
    """`python fixtures/build.py OUT` runs on the standard library alone (no site-packages, so
    neither slimmer nor tests/ can be imported)."""
    proc = subprocess.run([sys.executable, "-I", "-S", str(FIXTURES / "build.py"), str(tmp_path)], check=False,
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(load_build().ARCHIVES)


def test_single_stage_fixture_shows_the_classic_waste(monkeypatch, capsys):
    """The single-stage sample's report shows the build cache deleted a layer too late, the
    overwritten files and the apt cache, with the waste fixtures/build.py put there."""
    build = load_build()
    code, out, err = run_main(monkeypatch, capsys, "analyze", FIXTURES / "single-stage.tar", "--json",
                              "--top", "1000")
    assert (code, err) == (0, "")
    report = json.loads(out)
    layers, _history, _config = build.single_stage()
    assert report["image"]["entrypoint"] == ["/app/server"]
    assert report["sizes"]["layer_count"] == len(layers) == 6
    shadowed = {(s["path"], s["layer"], s["by_layer"], s["how"]): s["size_bytes"] for s in report["waste"]["shadowed"]}
    cache = {k: len(v[0] if isinstance(v, tuple) else v) for k, v in layers[4].items()
             if k.startswith("root/.cache/go-build/")}
    assert {k[0][1:]: v for k, v in shadowed.items() if k[1:] == (4, 5, "deleted")} == \
        {**cache, "src/coverage.out": len(layers[4]["src/coverage.out"])}
    overwritten = {"etc/passwd": (0, 5), "etc/group": (0, 5), "var/lib/dpkg/status": (0, 1)}
    for path, (low, high) in overwritten.items():
        assert shadowed[("/" + path, low, high, "overwritten")] == len(layers[low][path])
    assert report["waste"]["true_wasted_bytes"] == sum(shadowed.values())
    largest = report["largest_files"][0]
    assert (largest["path"], largest["size_bytes"], largest["layer"]) == ("/app/server", len(build.server_binary()), 4)
    paths = {f["path"] for f in report["largest_files"]}
    assert any(p.startswith("/var/cache/apt/archives/") and p.endswith(".deb") for p in paths)
    assert any(p.startswith("/var/lib/apt/lists/") for p in paths)
    assert "/usr/local/go/pkg/tool/linux_amd64/compile" in paths


def test_single_stage_samples_in_both_formats_agree(monkeypatch, capsys):
    """The docker-archive and the OCI (gzip layers) samples of the single-stage build report the
    same layers and waste."""
    reports = {}
    for name in ("single-stage.tar", "single-stage-oci.tar"):
        code, out, _err = run_main(monkeypatch, capsys, "analyze", FIXTURES / name, "--json", "--no-content")
        assert code == 0
        reports[name] = json.loads(out)
    docker, oci = reports["single-stage.tar"], reports["single-stage-oci.tar"]
    assert (docker["image"]["format"], oci["image"]["format"]) == ("docker-archive", "oci-archive")
    assert oci["waste"] == docker["waste"]
    assert [(r["diff_id"], r["size_bytes"], r["files"], r["created_by"]) for r in oci["layers"]] == \
        [(r["diff_id"], r["size_bytes"], r["files"], r["created_by"]) for r in docker["layers"]]
    from slimmer.reader import open_image

    assert {layer.compression for layer in open_image(FIXTURES / "single-stage-oci.tar").layers} == {"gzip"}


@pytest.mark.parametrize("argv, words", [
    (["analyze", "--bogus", "x.tar"], "No such option '--bogus'"),
    (["analyze"], "Missing argument 'ARCHIVES...'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["analyze", "--top", "many", "x.tar"], "Invalid value for '--top'"),
    (["check", "--max-size", "huge", "x.tar"], "expected a size"),
], ids=["an unknown option", "a missing argument", "an unknown command", "a value of the wrong type",
        "a size that is not one"])
def test_usage_errors_are_one_line_too(argv, words, monkeypatch, capsys):
    """A mistyped command line is one `slimmer: error:` line naming the command's help and exit
    status 2, like every other bad input (click alone prints three lines)."""
    code, out, err = run_main(monkeypatch, capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("slimmer: error: ") and err.count("\n") == 1, err
    assert words in err and "--help'" in err
