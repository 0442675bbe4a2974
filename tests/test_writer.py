"""The writers: round trips through the reader, byte-reproducible and atomic output, and archives
that skopeo and umoci accept."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from slimmer.errors import DigestMismatchError, OutputError, SlimmerError, TruncatedError
from slimmer.model import Image, with_layers
from slimmer.reader import open_image
from slimmer.rewriter.writer import Written, write_docker_archive, write_oci
from slimmer.tar import restream

from builders import File, Hardlink, ImageSpec, Symlink, check_invariants, image, layer, to_model, write

WRITERS = [
    pytest.param("docker", {"layout": "legacy"}, id="docker save, legacy layout"),
    pytest.param("docker", {"layout": "oci"}, id="docker save, Docker 25+ layout"),
    pytest.param("oci", {"compression": "none"}, id="OCI archive, plain layers"),
    pytest.param("oci", {"compression": "gzip"}, id="OCI archive, gzip layers"),
    pytest.param("oci", {"compression": "zstd"}, id="OCI archive, zstd layers"),
    pytest.param("oci", {"compression": "none", "as_dir": True}, id="OCI directory, plain layers"),
    pytest.param("oci", {"compression": "gzip", "as_dir": True}, id="OCI directory, gzip layers"),
    pytest.param("oci", {"compression": "zstd", "as_dir": True}, id="OCI directory, zstd layers"),
]
FORMAT_NAMES = {"legacy": "docker-archive", "oci": "docker-archive-oci"}


def emit(kind: str, options: dict, img: Image, path: Path, **more) -> Written:
    if kind == "docker":
        return write_docker_archive(img, path, **options, **more)
    return write_oci(img, path, **options, **more)


def out_path(tmp_path: Path, options: dict, name: str = "out") -> Path:
    return tmp_path / (name if options.get("as_dir") else name + ".tar")


def assert_round_trip(img: Image, spec: ImageSpec, written: Written) -> None:
    assert [lay.diff_id for lay in img.layers] == spec.diff_ids == list(written.diff_ids)
    assert [lay.digest for lay in img.layers] == list(written.layer_digests)
    assert [lay.entries for lay in img.layers] == [lay.entries for lay in spec.layers]
    assert img.config == spec.config
    assert img.config_digest == written.config_digest
    if img.format.startswith("oci"):
        assert img.manifest_digest == written.manifest_digest
    assert img.history == spec.history
    check_invariants(img)


@pytest.mark.parametrize("kind, options", WRITERS)
def test_round_trip_keeps_layers_config_and_tags(tmp_path, rich, kind, options):
    """Built image -> writer -> reader gives the same diff_ids, entries, config and tags."""
    written = emit(kind, options, to_model(rich), out_path(tmp_path, options))
    img = open_image(written.path)
    assert_round_trip(img, rich, written)
    assert [lay.compression for lay in img.layers] == [options.get("compression", "none")] * len(rich.layers)
    if kind == "docker":
        assert img.tags == ("test/app:latest",)
        assert img.format == FORMAT_NAMES[options["layout"]]
    else:
        assert "test/app:latest" in img.tags
        assert img.format == ("oci-layout" if options.get("as_dir") else "oci-archive")
    for lay, built in zip(img.layers, rich.layers, strict=True):
        assert b"".join(restream.chunks(lay, "test")) == built.tar


@pytest.mark.parametrize("kind, options", WRITERS)
@pytest.mark.parametrize("source", [
    pytest.param(("oci-tar", "gzip"), id="from an OCI archive with gzip layers"),
    pytest.param(("docker-legacy", "none"), id="from a legacy docker archive"),
    pytest.param(("oci-dir", "zstd"), id="from an OCI directory with zstd layers"),
])
def test_an_image_read_from_an_archive_writes_back_unchanged(tmp_path, rich, kind, options, source):
    """An Image the reader returned writes back (its layers re-read through their openers) with the
    same diff_ids, entries and config."""
    fmt, compression = source
    read = open_image(write(rich, tmp_path / ("src" if fmt == "oci-dir" else "src.tar"), fmt, compression))
    written = emit(kind, options, read, out_path(tmp_path, options))
    assert_round_trip(open_image(written.path), rich, written)


LONG_DIR = "deep/" + "d" * 120
SHAPES = [
    pytest.param(image(empty_steps=["CMD [\"true\"]"]), id="an image without layers"),
    pytest.param(image(layer({"a": 10}, created_by="ADD a"), layer({"b": 20}), layer({"a": 10}, created_by="ADD a")),
                 id="an image whose first layer repeats"),
    pytest.param(image(layer({LONG_DIR + "/" + "f" * 150: 3 * 2 ** 20 + 17, "données/ファイル": b"x",
                              "link": Symlink("/" + "t" * 200), "hard": Hardlink(LONG_DIR + "/" + "f" * 150),
                              "owned": File(5, uid=3_000_000, gid=3_000_001, mtime=2 ** 33 + 5)})),
                 id="long names, a multi-MiB file and large ids"),
    pytest.param(image(layer({"a": 1}), config={"config": {"Labels": {"name": "café ☕", "odd": "\ud800"}}},
                       tag="localhost:5000/team/app:v1"),
                 id="a config with non-ASCII text and a lone surrogate, tagged with a registry port"),
]


@pytest.mark.parametrize("kind, options", WRITERS)
@pytest.mark.parametrize("spec", SHAPES)
def test_round_trip_of_unusual_images(tmp_path, kind, options, spec):
    """Images without layers, with a repeated layer, long names or odd config text round-trip."""
    written = emit(kind, options, to_model(spec), out_path(tmp_path, options))
    img = open_image(written.path)
    assert_round_trip(img, spec, written)
    assert spec.tag in img.tags


@pytest.mark.parametrize("kind, options", WRITERS[:3])
def test_a_layer_whose_stream_changed_is_refused_and_nothing_is_written(tmp_path, rich, kind, options):
    """A layer whose bytes no longer hash to its diff_id fails the write with a digest error
    naming the layer; the output directory stays as it was."""
    new = layer({"app/new.txt": b"replaced\n"}, created_by="COPY new.txt /app/", auto_dirs=True)
    model = to_model(rich)
    stale = dataclasses.replace(model.layers[1], opener=functools.partial(io.BytesIO, new.tar))
    changed = with_layers(model, (model.layers[0], stale, model.layers[2]), model.history)
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(DigestMismatchError, match=f"layer 1 \\({model.layers[1].diff_id}\\)"):
        emit(kind, options, changed, out_path(outdir, options))
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize("kind, options", WRITERS)
@pytest.mark.parametrize("piped_source", [False, True], ids=["built in code", "read back from an archive"])
def test_output_is_byte_reproducible(tmp_path, rich, kind, options, piped_source):
    """Writing the same image twice gives identical bytes (identical trees for directories)."""
    model = to_model(rich)
    if piped_source:
        model = open_image(write(rich, tmp_path / "src.tar", "oci-tar", "gzip"))
    first = emit(kind, options, model, out_path(tmp_path, options, "first")).path
    second = emit(kind, options, model, out_path(tmp_path, options, "second")).path
    assert tree(first) == tree(second)


def tree(path: Path) -> dict[str, tuple[int, bytes]]:
    if path.is_file():
        return {"": (path.stat().st_mode, path.read_bytes())}
    return {str(p.relative_to(path)): (p.stat().st_mode, b"" if p.is_dir() else p.read_bytes())
            for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("tags, expected", [
    pytest.param(None, ("test/app:latest",), id="the image's own tags by default"),
    pytest.param((), (), id="no tags when given none"),
    pytest.param(("web",), ("web:latest",), id="a name without tag gets latest"),
    pytest.param(("registry.local:5000/a/b:1", "a:2", "a:2"), ("registry.local:5000/a/b:1", "a:2"),
                 id="several tags, a registry port and a repeat"),
])
def test_docker_archive_records_the_tags(tmp_path, rich, tags, expected):
    """write_docker_archive records the tags asked for in manifest.json."""
    written = write_docker_archive(to_model(rich), tmp_path / "out.tar", tags=tags)
    assert open_image(written.path).tags == expected


@pytest.mark.parametrize("tag", ["", "a b", "app@sha256:" + "0" * 64, "app:"])
def test_a_malformed_tag_is_an_output_error(tmp_path, rich, tag):
    """A tag that is not NAME[:TAG] raises OutputError and writes nothing."""
    with pytest.raises(OutputError, match="cannot tag"):
        write_oci(to_model(rich), tmp_path / "out.tar", tags=[tag])
    assert list(tmp_path.iterdir()) == []


def test_oci_index_lists_each_tag_with_both_annotations(tmp_path, rich):
    """index.json lists the manifest once per tag, with the full reference and the bare tag."""
    written = write_oci(to_model(rich), tmp_path / "out", tags=["test/app:1", "other/app"], as_dir=True)
    index = json.loads((written.path / "index.json").read_bytes())
    assert [d["annotations"] for d in index["manifests"]] == [
        {"io.containerd.image.name": "test/app:1", "org.opencontainers.image.ref.name": "1"},
        {"io.containerd.image.name": "other/app:latest", "org.opencontainers.image.ref.name": "latest"},
    ]
    assert {d["digest"] for d in index["manifests"]} == {written.manifest_digest}


# ---- atomicity --------------------------------------------------------------------------


class FailingStream(io.RawIOBase):
    """A layer stream that breaks after ``good`` bytes, as a truncated source layer does."""

    def __init__(self, data: bytes, good: int):
        self.data, self.good, self.pos = data, good, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.pos >= self.good:
            raise TruncatedError("source.tar: layer 1: gzip stream is truncated")
        n = min(len(buf), self.good - self.pos)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def failing(model: Image, index: int) -> Image:
    data = b"".join(restream.chunks(model.layers[index], "test"))
    broken = dataclasses.replace(model.layers[index],
                                 opener=lambda: io.BufferedReader(FailingStream(data, len(data) // 2)))
    return dataclasses.replace(model, layers=model.layers[:index] + (broken,) + model.layers[index + 1:])


@pytest.mark.parametrize("kind, options", WRITERS)
def test_a_failure_mid_write_leaves_no_output_and_no_temp_files(tmp_path, rich, kind, options):
    """A layer stream failing halfway raises its error, and the output directory stays empty."""
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    with pytest.raises(TruncatedError):
        emit(kind, options, failing(to_model(rich), 1), out_path(outdir, options))
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize("kind, options", [p for p in WRITERS if not p.values[1].get("as_dir")])
def test_a_failure_mid_write_keeps_the_previous_output(tmp_path, rich, kind, options):
    """A failed write over an existing archive leaves the old archive in place, byte for byte."""
    path = out_path(tmp_path, options)
    path.write_bytes(b"previous archive")
    with pytest.raises(TruncatedError):
        emit(kind, options, failing(to_model(rich), 2), path)
    assert path.read_bytes() == b"previous archive"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    sys.path[:0] = [{tests!r}, {root!r}]
    from builders import image, layer, to_model
    from slimmer.errors import OutputError
    from slimmer.rewriter.writer import write_docker_archive, write_oci
    # the file size limit makes write() fail with EFBIG, as a full disk fails it with ENOSPC
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    model = to_model(image(*(layer({{f"{{i}}.bin": size}}) for i, size in enumerate({sizes}))))
    try:
        {call}
    except OutputError as err:
        print("OutputError:", err)
""")


@pytest.mark.parametrize("call, sizes", [
    pytest.param("write_docker_archive(model, {out!r})", [250_000], id="docker archive, staging a layer"),
    pytest.param("write_docker_archive(model, {out!r})", [120_000] * 2, id="docker archive, writing the tar"),
    pytest.param("write_oci(model, {out!r}, compression='none')", [250_000], id="OCI archive, staging a layer"),
    pytest.param("write_oci(model, {out!r}, compression='none')", [120_000] * 2, id="OCI archive, writing the tar"),
    pytest.param("write_oci(model, {out!r}, compression='none', as_dir=True)", [250_000],
                 id="OCI directory, staging a layer"),
])
def test_a_full_disk_is_an_output_error_and_leaves_nothing(tmp_path, call, sizes):
    """A write failing for lack of space raises OutputError naming the output; nothing is left."""
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    out = str(outdir / "out.tar")
    script = DISK_FULL.format(tests=str(Path(__file__).parent), root=str(Path(__file__).parent.parent),
                              call=call.format(out=out), sizes=sizes)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OutputError: cannot write {out}: File too large"), done.stdout
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize("kind, options", [WRITERS[0], WRITERS[5]])
def test_a_missing_destination_directory_is_an_output_error(tmp_path, rich, kind, options):
    """Writing into a directory that does not exist raises OutputError naming the output."""
    path = out_path(tmp_path / "no" / "such", options)
    with pytest.raises(OutputError, match=str(path)):
        emit(kind, options, to_model(rich), path)


@pytest.mark.parametrize("existing, make", [
    pytest.param("a non-empty directory", lambda p: (p.mkdir(), (p / "keep.txt").write_text("keep")),
                 id="a directory with files"),
    pytest.param("a file", lambda p: p.write_text("keep"), id="a file"),
])
def test_an_oci_directory_is_not_written_over_existing_content(tmp_path, rich, existing, make):
    """write_oci(as_dir=True) refuses a destination holding content, and leaves it untouched."""
    path = tmp_path / "out"
    make(path)
    before = tree(path)
    with pytest.raises(OutputError, match="cannot write"):
        write_oci(to_model(rich), path, as_dir=True)
    assert tree(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_oci_directory_may_be_written_into_an_empty_directory(tmp_path, rich):
    """write_oci(as_dir=True) fills an existing empty directory."""
    (tmp_path / "out").mkdir()
    written = write_oci(to_model(rich), tmp_path / "out", as_dir=True)
    assert_round_trip(open_image(written.path), rich, written)


def test_an_archive_is_not_written_over_a_directory(tmp_path, rich):
    """write_docker_archive to a path that is a directory raises OutputError."""
    (tmp_path / "out.tar").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        write_docker_archive(to_model(rich), tmp_path / "out.tar")


def test_a_piped_image_cannot_be_written_and_leaves_nothing(tmp_path, rich):
    """An Image read from a pipe has no re-readable layers: writing it raises a SlimmerError."""
    path = write(rich, tmp_path / "src.tar", "docker-legacy")
    with open(path, "rb") as stdin:
        piped = open_image("-", stdin=stdin)
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    with pytest.raises(SlimmerError, match="cannot be read twice"):
        write_oci(piped, outdir / "out.tar")
    assert list(outdir.iterdir()) == []


# ---- other tools accept the output ------------------------------------------------------

SKOPEO = shutil.which("skopeo")
UMOCI = shutil.which("umoci")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
needs_umoci = pytest.mark.skipif(UMOCI is None, reason="umoci is not installed")


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout


@needs_skopeo
@pytest.mark.parametrize("kind, options, transport", [
    pytest.param("docker", {"layout": "legacy"}, "docker-archive:{}", id="docker-archive, legacy layout"),
    pytest.param("docker", {"layout": "oci"}, "docker-archive:{}", id="docker-archive, Docker 25+ layout"),
    pytest.param("oci", {"compression": "gzip"}, "oci-archive:{}", id="oci-archive, gzip layers"),
    pytest.param("oci", {"compression": "zstd"}, "oci-archive:{}", id="oci-archive, zstd layers"),
    pytest.param("oci", {"compression": "none", "as_dir": True}, "oci:{}:latest", id="oci directory, plain layers"),
])
def test_skopeo_inspect_accepts_the_output(tmp_path, rich, kind, options, transport):
    """skopeo inspect reads the written archive and sees its layers, platform and config."""
    written = emit(kind, options, to_model(rich), out_path(tmp_path, options))
    ref = transport.format(written.path)
    info = json.loads(run(SKOPEO, "inspect", ref))
    assert info["Layers"] == list(written.layer_digests)
    assert f"{info['Os']}/{info['Architecture']}" == f"{rich.config['os']}/{rich.config['architecture']}"
    config = json.loads(run(SKOPEO, "inspect", "--config", "--raw", ref))
    assert config == rich.config
    if kind == "oci":
        raw = subprocess.run([SKOPEO, "inspect", "--raw", ref], capture_output=True, check=True).stdout
        assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == written.manifest_digest


def assert_rootfs(rootfs: Path) -> None:
    """The merged filesystem of the ``rich`` image, as a runtime would unpack it."""
    assert (rootfs / "bin/sh").stat().st_size == 2_000
    assert (rootfs / "bin/bash").stat().st_ino == (rootfs / "bin/sh").stat().st_ino
    assert os.readlink(rootfs / "usr/lib") == "../lib"
    assert not (rootfs / "app/big.bin").exists()
    assert sorted(p.name for p in (rootfs / "app/cache").iterdir()) == ["c"]
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777


@needs_skopeo
@needs_umoci
@pytest.mark.parametrize("layout", ["legacy", "oci"])
def test_skopeo_copies_a_docker_archive_that_umoci_unpacks(tmp_path, rich, layout):
    """skopeo copy docker-archive:OUT oci:DIR:tag, then umoci unpack gives the merged filesystem."""
    written = write_docker_archive(to_model(rich), tmp_path / "out.tar", layout=layout)
    run(SKOPEO, "copy", "--quiet", f"docker-archive:{written.path}", f"oci:{tmp_path / 'layout'}:app")
    run(UMOCI, "unpack", "--image", f"{tmp_path / 'layout'}:app", str(tmp_path / "bundle"))
    assert_rootfs(tmp_path / "bundle/rootfs")


@needs_umoci
@pytest.mark.parametrize("compression", [
    "none", "gzip",
    pytest.param("zstd", marks=pytest.mark.skipif(
        UMOCI is not None and "0.4.7" in run(UMOCI, "--version"), reason="umoci 0.4.7 does not read zstd layers")),
])
def test_umoci_unpacks_an_oci_directory(tmp_path, rich, compression):
    """umoci unpack --image DIR:latest accepts write_oci's directory and gives the merged filesystem."""
    written = write_oci(to_model(rich), tmp_path / "layout", compression=compression, as_dir=True)
    run(UMOCI, "unpack", "--image", f"{written.path}:latest", str(tmp_path / "bundle"))
    assert_rootfs(tmp_path / "bundle/rootfs")
