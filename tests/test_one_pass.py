"""Every road gives the same answer: an archive analysed from a pipe equals the same archive
analysed from its file; a layer that changes after the image was opened is caught by the one
verified re-stream (slim, export, the writers) and nothing is written; a hard link to a file of
a lower layer gives the tree umoci's unpack gives, by export and by slim alike."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from slimmer.errors import DigestMismatchError
from slimmer.exporter import ExportOptions, export
from slimmer.reader import open_image
from slimmer.rewriter.slim import SlimOptions, slim

from builders import File, Hardlink, analysis_of, image, layer, slimmer_run, write
from hostile import tree_of_dir
from test_realtools import MISSING, run, skopeo_copy, tool_archives

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "fixtures").glob("*.tar"))






def assert_pipe_equals_file(archive: Path, tmp_path: Path) -> dict:
    """``analyze - --json`` from a pipe equals ``analyze FILE --json`` but for image.source,
    cold (--no-cache) and with the file's layers cached; return the analysis."""
    from_file = analysis_of(slimmer_run("analyze", archive, "--json", "--no-cache"))
    piped = analysis_of(slimmer_run("analyze", "-", "--json", "--no-cache", stdin=archive.read_bytes()))
    assert piped == from_file
    cache = tmp_path / "cache"
    slimmer_run("analyze", archive, "--json", cache=cache)
    warm = analysis_of(slimmer_run("analyze", archive, "--json", cache=cache))
    assert warm == from_file
    assert not any("re-read" in note for note in from_file["notes"])
    return from_file


@pytest.mark.parametrize("archive", FIXTURES, ids=[p.name for p in FIXTURES])
def test_a_fixture_analysed_from_a_pipe_equals_its_file(tmp_path, archive):
    """The fixtures: one analysis, whether read from the file, a pipe or the layer cache."""
    doc = assert_pipe_equals_file(archive, tmp_path)
    assert doc["sizes"]["file_count"] > 0


def _rich_spec():
    return image(
        layer({"usr/bin/tool": File(300_000, mode=0o755), "usr/share/doc/a/README": 70_000,
               "var/lib/dpkg/status": b"Package: a\nStatus: install ok installed\nVersion: 1\n\n",
               "var/lib/dpkg/info/a.list": b"/usr/bin/tool\n/usr/share/doc/a/README\n",
               "srv/copy1.bin": 90_000, "srv/unknown": b"\x7fELF\x02\x01\x01" + bytes(300)}, auto_dirs=True),
        layer({"srv/copy2.bin": 90_000, "usr/share/doc/a/README": 71_000,
               "usr/lib/python3/dist-packages/x-1.0.dist-info/RECORD": b"x/__init__.py,,\n",
               "usr/lib/python3/dist-packages/x/__init__.py": b"print(1)\n"}, auto_dirs=True),
        entrypoint=["/usr/bin/tool"])


@pytest.mark.parametrize("fmt, compression", [
    ("docker-legacy", "none"), ("docker-oci", "none"), ("docker-oci", "gzip"), ("oci-tar", "gzip"),
    ("oci-tar", "zstd"),
], ids=["docker save (legacy)", "Docker 25+ archive", "Docker 25+ archive, gzip layers", "oci-archive gzip",
        "oci-archive zstd"])
def test_every_format_analysed_from_a_pipe_equals_its_file(tmp_path, fmt, compression):
    """Packages, duplicates, categories from libmagic and the could-save figure come out the
    same from a pipe as from the file, in every archive format."""
    archive = write(_rich_spec(), tmp_path / "img.tar", fmt, compression)
    doc = assert_pipe_equals_file(archive, tmp_path)
    assert {p["key"] for p in doc["packages"]} >= {"dpkg:a", "python:x"}
    assert any(f["id"] == "duplicate-files" for f in doc["findings"])
    assert doc["could_save_bytes"] > 0


def _tar_of_dir(layout: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tf:
        for child in sorted(layout.iterdir()):
            tf.add(child, arcname=child.name)
    return dest


@pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}")
def test_archives_made_by_skopeo_and_umoci_analysed_from_a_pipe_equal_their_files(tmp_path):
    """docker-archive, oci-archive (gzip and zstd) written by skopeo, and umoci's OCI directory
    as a tar: each analysed from a pipe equals the analysis of its file."""
    made = tool_archives(tmp_path / "tools")
    made["oci-dir-as-tar"] = _tar_of_dir(made.pop("oci-dir"), tmp_path / "oci-dir.tar")
    assert {"docker-archive", "oci-archive-gzip", "oci-dir-as-tar"} <= set(made)
    for name, archive in made.items():
        assert_pipe_equals_file(archive, tmp_path / name)


# ---- a layer that changes after the image was opened ------------------------------------------


def _changed_after_open(tmp_path: Path, fmt: str = "docker-legacy", compression: str = "none"):
    """Return an image opened from an archive whose largest layer blob was then edited in the
    middle (same size), and that blob's layer index."""
    spec = image(layer({"app/run": File(b"#!/bin/sh\necho hi\n", mode=0o755)}, auto_dirs=True),
                 layer({"app/data": 400_000}, auto_dirs=True), entrypoint=["/app/run"])
    archive = write(spec, tmp_path / "img.tar", fmt, compression)
    img = open_image(archive)
    data = bytearray(archive.read_bytes())
    raw = spec.layers[1].tar if compression == "none" else None
    at = data.find(raw[2048:2100]) if raw is not None else len(data) // 2
    assert at > 0
    data[at + 10:at + 16] = b"EVIL!!"
    archive.write_bytes(bytes(data))
    return img, 1


@pytest.mark.parametrize("mode", ["prune", "distroless"])
def test_slim_refuses_a_layer_changed_after_the_image_was_opened(tmp_path, mode):
    """slim reads the layer again through the verified re-stream: a digest error naming the
    layer, and no output (nor scratch files) appears."""
    img, index = _changed_after_open(tmp_path)
    out = tmp_path / "out" / "slim.tar"
    out.parent.mkdir()
    with pytest.raises(DigestMismatchError, match=f"layer {index}.*changed since the image was opened"):
        slim(img, SlimOptions(mode=mode), out)
    assert os.listdir(out.parent) == []


@pytest.mark.parametrize("to", ["dir", "tar"])
@pytest.mark.parametrize("fmt, compression", [("docker-legacy", "none"), ("oci-tar", "gzip")],
                         ids=["plain layers", "gzip layers"])
def test_export_refuses_a_layer_changed_after_the_image_was_opened(tmp_path, to, fmt, compression):
    """export checks every byte it re-reads: the error names the layer and no DEST appears."""
    img, index = _changed_after_open(tmp_path, fmt, compression)
    dest = tmp_path / "out" / ("root.tar" if to == "tar" else "root")
    dest.parent.mkdir()
    with pytest.raises(DigestMismatchError, match=f"layer {index}"):
        export(img, dest, ExportOptions(to=to))
    assert os.listdir(dest.parent) == []


def _mismatching_blob(tmp_path: Path) -> Path:
    """An archive whose second layer blob no longer matches the digest its config promises."""
    spec = image(layer({"a": 10}), layer({"big": 200_000}))
    archive = write(spec, tmp_path / "bad.tar", "docker-legacy")
    data = bytearray(archive.read_bytes())
    at = data.find(spec.layers[1].tar[1024:1100])
    data[at:at + 4] = b"EVIL"
    archive.write_bytes(bytes(data))
    return archive


@pytest.mark.parametrize("command", ["diff", "slim", "export", "analyze"])
def test_a_blob_that_no_longer_matches_is_a_digest_error_naming_the_layer(tmp_path, command):
    """Fed a blob that does not match its digest, every command gives one error naming the
    layer, exit 2, and writes nothing."""
    bad = _mismatching_blob(tmp_path)
    good = write(image(layer({"a": 10})), tmp_path / "good.tar", "docker-legacy")
    out = tmp_path / "out"
    out.mkdir()
    args = {"diff": ("diff", good, bad), "slim": ("slim", bad, "-o", out / "s.tar"),
            "export": ("export", bad, out / "root"), "analyze": ("analyze", bad)}[command]
    done = slimmer_run(*args, "--no-cache")
    err = done.stderr.decode()
    assert done.returncode == 2 and err.count("\n") == 1 and err.startswith("slimmer: error: ")
    assert "layer 1" in err and "diff_id" in err
    assert done.stdout == b"" and os.listdir(out) == []


# ---- a hard link to a file of a lower layer ----------------------------------------------------


def _cross_layer_links():
    return image(
        layer({"app/a": File(b"from layer 0\n", mode=0o755), "app/gone": File(b"deleted later\n"),
               "app/kept": File(b"stays\n")}, auto_dirs=True),
        layer({"app/b": Hardlink("app/a"), "app/c": Hardlink("app/gone"), "app/d": Hardlink("app/kept")},
              auto_dirs=True),
        layer({"app/.wh.gone": b"", "app/kept": File(b"replaced\n")}, auto_dirs=True),
        entrypoint=["/app/a"])


def _umoci_unpack(layout_dir: Path, tag: str, dest: Path) -> Path:
    run("umoci", "unpack", "--image", f"{layout_dir}:{tag}", str(dest))
    return dest / "rootfs"


def _files_only(tree: tuple[dict, set]) -> tuple[dict, set]:
    files, groups = tree
    return {p: d for p, d in files.items() if d[0] != "dir"}, groups


@pytest.mark.skipif(shutil.which("umoci") is None or shutil.which("skopeo") is None, reason="needs umoci, skopeo")
def test_a_hard_link_to_a_lower_layer_gives_umocis_tree_by_export_and_by_slim(tmp_path):
    """umoci applies each layer on top of the ones below: a link to a lower file shares its
    inode, a link whose file a later layer deletes keeps the bytes, a link to a file a later
    layer replaces keeps the old bytes. export and slim --mode prune give that same tree."""
    spec = _cross_layer_links()
    layout = write(spec, tmp_path / "layout", "oci-dir")
    want = _files_only(tree_of_dir(_umoci_unpack(layout, "latest", tmp_path / "bundle")))
    assert want[0]["app/b"] == ("file", b"from layer 0\n") and ("app/a", "app/b") in want[1]
    assert want[0]["app/c"] == ("file", b"deleted later\n") and want[0]["app/d"] == ("file", b"stays\n")

    archive = write(spec, tmp_path / "img.tar", "oci-tar")
    img = open_image(archive)
    export(img, tmp_path / "exported", ExportOptions(to="dir"))
    assert _files_only(tree_of_dir(tmp_path / "exported")) == want

    slim(img, SlimOptions(mode="prune"), tmp_path / "slim.tar")
    slim_layout = tmp_path / "slim-layout"
    skopeo_copy(f"docker-archive:{tmp_path / 'slim.tar'}", f"oci:{slim_layout}:t")
    got = _files_only(tree_of_dir(_umoci_unpack(slim_layout, "t", tmp_path / "slim-bundle")))
    assert got == want


def test_the_layers_read_again_are_exactly_the_layers_read(tmp_path):
    """A layer's facts come from the scan pass: an image read from a file carries them for the
    policy it was read with, and analysing it opens no layer again."""
    from slimmer.analyzer.content import AnalysisPolicy
    from slimmer.analyzer.report import analyze
    from slimmer.reader import Options

    archive = write(_rich_spec(), tmp_path / "img.tar", "oci-tar", "gzip")
    img = open_image(archive, Options(policy=AnalysisPolicy()))
    opened = []

    def counting(layer):
        def opener():
            opened.append(layer.diff_id)
            return layer.opener()
        return dataclasses.replace(layer, opener=opener)

    counted = dataclasses.replace(img, layers=tuple(counting(lay) for lay in img.layers))
    result = analyze(counted)
    assert opened == [] and {p.key for p in result.packages} >= {"dpkg:a", "python:x"}
