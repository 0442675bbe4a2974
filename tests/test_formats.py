"""The readers against archives built in code: every format and compression, pipes, image and
platform selection, long names, multi-member streams, and bad input."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import itertools
import json
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import zstandard

from slimmer.errors import (
    DigestMismatchError,
    FormatError,
    ImageSelectionError,
    LimitError,
    SlimmerError,
    TruncatedError,
)
from slimmer.model import platform
from slimmer.reader import Options, open_image, store
from slimmer.reader.cache import LayerCache
from slimmer.tar import restream
from slimmer.workers import can_fork

from builders import (
    WHITEOUT,
    File,
    Hardlink,
    ImageSpec,
    Symlink,
    check_invariants,
    content,
    emit,
    for_platform,
    host_platform,
    image,
    layer,
    write,
    write_multi,
    write_multiplatform,
)

FORMS = [
    pytest.param("docker-legacy", "none", id="a legacy docker save archive"),
    pytest.param("docker-oci", "none", id="a Docker 25+ docker save archive"),
    pytest.param("docker-oci", "gzip", id="a Docker 25+ archive with gzip layers"),
    pytest.param("docker-oci", "zstd", id="a Docker 25+ archive with zstd layers"),
    pytest.param("oci-dir", "none", id="an OCI layout directory with plain layers"),
    pytest.param("oci-dir", "gzip", id="an OCI layout directory with gzip layers"),
    pytest.param("oci-dir", "zstd", id="an OCI layout directory with zstd layers"),
    pytest.param("oci-tar", "none", id="an OCI archive with plain layers"),
    pytest.param("oci-tar", "gzip", id="an OCI archive with gzip layers"),
    pytest.param("oci-tar", "zstd", id="an OCI archive with zstd layers"),
]
TAR_FORMS = [p for p in FORMS if p.values[0] != "oci-dir"]



def target(tmp_path: Path, fmt: str, name: str = "image") -> Path:
    return tmp_path / (name if fmt == "oci-dir" else name + ".tar")


def assert_reads_as(img, spec: ImageSpec) -> None:
    assert [lay.diff_id for lay in img.layers] == spec.diff_ids
    assert [lay.entries for lay in img.layers] == [lay.entries for lay in spec.layers]
    assert img.config_digest == spec.config_digest
    assert img.config == spec.config
    assert img.history == spec.history
    assert [lay.history for lay in img.layers] == spec.layer_steps
    check_invariants(img)


@pytest.mark.parametrize("fmt, compression", FORMS)
def test_reads_layers_entries_config_and_history(tmp_path, rich, fmt, compression):
    """Each format and compression reads back the built diff_ids, entries, config and history."""
    img = open_image(write(rich, target(tmp_path, fmt), fmt, compression), Options())
    assert_reads_as(img, rich)
    assert [lay.compression for lay in img.layers] == [compression] * len(rich.layers)
    for lay, built in zip(img.layers, rich.layers, strict=True):
        assert b"".join(restream.chunks(lay, "test")) == built.tar


@pytest.mark.parametrize("fmt", [
    pytest.param("docker-legacy", id="a legacy docker archive"),
    pytest.param("docker-oci", id="a Docker 25+ archive"),
    pytest.param("oci-dir", id="an OCI layout directory"),
    pytest.param("oci-tar", id="an OCI archive"),
])
def test_reports_the_tag_it_was_saved_with(tmp_path, rich, fmt):
    """The image's tags are exactly the full references the archive records."""
    assert open_image(write(rich, target(tmp_path, fmt), fmt)).tags == ("test/app:latest",)


@pytest.mark.parametrize("fmt", ["oci-dir", "oci-tar"])
def test_reports_every_tag_of_a_manifest_listed_twice(tmp_path, rich, fmt):
    """An index that lists one manifest under two tags yields one image with both tags."""
    path = write_multi({"test/app:1": rich, "test/app:2": rich}, target(tmp_path, fmt), fmt)
    assert {"test/app:1", "test/app:2"} <= set(open_image(path).tags)


@pytest.mark.parametrize("fmt, compression", TAR_FORMS)
def test_reads_the_same_image_from_a_pipe(tmp_path, rich, fmt, compression):
    """An archive piped on standard input reads exactly as the same archive from a file."""
    path = write(rich, target(tmp_path, fmt), fmt, compression)
    with open(path, "rb") as stdin:
        piped = open_image("-", Options(), stdin=stdin)
    from_file = open_image(path)
    assert_reads_as(piped, rich)
    assert (piped.tags, piped.manifest_digest) == (from_file.tags, from_file.manifest_digest)


def test_reads_from_a_named_pipe(tmp_path, rich):
    """A FIFO path is read once as a stream, like standard input."""
    path = write(rich, tmp_path / "image.tar", "docker-legacy")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as w:
            w.write(path.read_bytes())

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert_reads_as(open_image(fifo), rich)
    finally:
        feeder.join(timeout=10)


# ---- several images ---------------------------------------------------------------------

ONE = image(layer({"one.txt": b"one\n"}, created_by="COPY one.txt /"), tag=None)
TWO = image(layer({"two.txt": b"two\n", "bin": 40}, created_by="COPY two.txt /"), tag=None)
ALL_FORMS = ["docker-legacy", "docker-oci", "oci-dir", "oci-tar"]


@pytest.mark.parametrize("fmt", ALL_FORMS)
@pytest.mark.parametrize("wanted, expected", [
    pytest.param("test/two:1.0", TWO, id="a full reference picks its image"),
    pytest.param("test/one", ONE, id="a name without tag means latest"),
])
def test_image_option_picks_one_of_several(tmp_path, fmt, wanted, expected):
    """--image picks one image out of an archive that holds several."""
    path = write_multi({"test/one:latest": ONE, "test/two:1.0": TWO}, target(tmp_path, fmt), fmt)
    assert_reads_as(open_image(path, Options(image=wanted)), expected)


@pytest.mark.parametrize("fmt", [
    pytest.param("docker-legacy", id="in a legacy docker archive"),
    pytest.param("docker-oci", id="in a Docker 25+ archive"),
    pytest.param("oci-dir", id="in an OCI layout directory"),
    pytest.param("oci-tar", id="in an OCI archive"),
])
def test_image_option_tells_apart_repositories_with_the_same_tag(tmp_path, fmt):
    """--image test/two:latest picks test/two even when test/one is also tagged latest."""
    path = write_multi({"test/one:latest": ONE, "test/two:latest": TWO}, target(tmp_path, fmt), fmt)
    assert_reads_as(open_image(path, Options(image="test/two:latest")), TWO)


@pytest.mark.parametrize("fmt", ALL_FORMS)
def test_several_images_without_image_option_list_the_choices(tmp_path, fmt):
    """Without --image, an archive of several images is refused with every choice named."""
    path = write_multi({"test/one:latest": ONE, "test/two:1.0": TWO}, target(tmp_path, fmt), fmt)
    with pytest.raises(ImageSelectionError) as err:
        open_image(path)
    assert "test/one:latest" in str(err.value) and "test/two:1.0" in str(err.value)
    assert "--image" in str(err.value)


@pytest.mark.parametrize("fmt", ALL_FORMS)
def test_image_option_naming_no_image_is_refused(tmp_path, fmt):
    """--image naming an image the archive lacks is an ImageSelectionError."""
    path = write_multi({"test/one:latest": ONE, "test/two:1.0": TWO}, target(tmp_path, fmt), fmt)
    with pytest.raises(ImageSelectionError, match="test/three"):
        open_image(path, Options(image="test/three"))


# ---- several platforms ------------------------------------------------------------------

AMD = image(layer({"amd64.txt": b"x86\n"}, created_by="COPY amd64.txt /"))
ARM = image(layer({"arm64.txt": b"arm\n", "lib/ld.so": 99}, created_by="COPY arm64.txt /"))
S390 = image(layer({"s390x.txt": b"z\n"}, created_by="COPY s390x.txt /"))
PLATFORMS = {"linux/amd64": AMD, "linux/arm64/v8": ARM, "linux/s390x": S390}


@pytest.mark.parametrize("fmt", ["oci-dir", "oci-tar"])
@pytest.mark.parametrize("attestations", [False, True], ids=["without attestations", "with attestations"])
@pytest.mark.parametrize("wanted, plat", [
    pytest.param("linux/arm64", "linux/arm64/v8", id="os/arch matches any variant"),
    pytest.param("linux/arm64/v8", "linux/arm64/v8", id="os/arch/variant matches exactly"),
    pytest.param("linux/s390x", "linux/s390x", id="another architecture"),
])
def test_platform_option_picks_from_a_nested_index(tmp_path, fmt, attestations, wanted, plat):
    """--platform picks one manifest of a nested multi-platform index."""
    path = write_multiplatform(PLATFORMS, target(tmp_path, fmt), fmt=fmt, attestations=attestations)
    img = open_image(path, Options(platform=wanted))
    assert_reads_as(img, for_platform(PLATFORMS[plat], plat))
    assert platform(img) == plat
    assert "test/app:latest" in img.tags


@pytest.mark.parametrize("fmt", ["oci-dir", "oci-tar"])
def test_without_platform_option_the_host_platform_is_read(tmp_path, fmt):
    """Without --platform, the manifest for this machine's platform is read."""
    here = host_platform()
    specs = {**PLATFORMS, here: PLATFORMS.get(here, AMD)}
    if here == "linux/arm64":
        specs = {"linux/amd64": AMD, "linux/arm64": ARM, "linux/s390x": S390}
    img = open_image(write_multiplatform(specs, target(tmp_path, fmt), fmt=fmt, attestations=True))
    assert platform(img) == here
    assert_reads_as(img, for_platform(specs[here], here))


@pytest.mark.parametrize("fmt", ["oci-dir", "oci-tar"])
def test_platform_option_naming_no_platform_is_refused(tmp_path, fmt):
    """--platform naming a platform the index lacks is an ImageSelectionError."""
    path = write_multiplatform(PLATFORMS, target(tmp_path, fmt), fmt=fmt)
    with pytest.raises(ImageSelectionError, match="linux/ppc64le"):
        open_image(path, Options(platform="linux/ppc64le"))


# ---- names and streams ------------------------------------------------------------------

LONG_DIR = "deep/" + "d" * 120
LONG = image(layer({
    LONG_DIR + "/" + "f" * 150: 10,
    "n" * 99: 1,
    "n" * 100: 2,
    "données/ファイル.txt": b"unicode\n",
    "link-to-long": Symlink("/" + "t" * 200),
    "hard-to-long": Hardlink(LONG_DIR + "/" + "f" * 150),
    "big.bin": 3 * 2 ** 20 + 17,
    "owned": File(5, uid=3_000_000, gid=3_000_001, mtime=2 ** 33 + 5),
    "./dot/slash": 3,
}, created_by="COPY . /"), layer({LONG_DIR + "/.wh." + "f" * 150: WHITEOUT}, created_by="RUN rm"))


@pytest.mark.parametrize("tar_format, fmt, compression", [
    pytest.param("pax", "docker-legacy", "none", id="PAX headers in a legacy docker archive"),
    pytest.param("gnu", "docker-legacy", "none", id="GNU long names and base-256 numbers in a docker archive"),
    pytest.param("pax", "oci-tar", "gzip", id="PAX headers in gzip layers of an OCI archive"),
    pytest.param("gnu", "oci-dir", "zstd", id="GNU long names in zstd layers of an OCI layout"),
])
def test_reads_long_names_large_files_and_large_ids(tmp_path, tar_format, fmt, compression):
    """Names past 100 and 255 bytes, non-ASCII names, long link targets, multi-MiB files and
    ids past the octal fields read back exactly."""
    spec = image(*(dataclasses.replace(lay, tar_format=tar_format) for lay in LONG.layers))
    assert_reads_as(open_image(write(spec, target(tmp_path, fmt), fmt, compression)), spec)


def gzip_members(tar: bytes, cuts: list[int]) -> bytes:
    bounds = [0, *cuts, len(tar)]
    return b"".join(gzip.compress(tar[a:b], mtime=0) for a, b in itertools.pairwise(bounds))


def zstd_frames(tar: bytes, cut: int) -> bytes:
    cctx = zstandard.ZstdCompressor()
    return cctx.compress(tar[:cut]) + cctx.compress(tar[cut:])


STREAMS = [
    pytest.param("gzip", lambda tar: gzip_members(tar, [len(tar) // 3]), id="a gzip layer in two members"),
    pytest.param("gzip", lambda tar: gzip_members(tar, [100, 100, 200_001]),
                 id="a gzip layer in four members, one of them empty"),
    pytest.param("gzip", lambda tar: gzip.compress(tar, mtime=0) + b"\0" * 1024,
                 id="a gzip layer followed by zero padding"),
    pytest.param("zstd", lambda tar: zstd_frames(tar, len(tar) // 2), id="a zstd layer in two frames"),
]


@pytest.mark.parametrize("fmt", ["oci-tar", "docker-oci"])
@pytest.mark.parametrize("compression, recompress", STREAMS)
def test_reads_multi_member_compressed_streams(tmp_path, rich, fmt, compression, recompress):
    """A layer stored as several gzip members or zstd frames reads as one tar stream."""
    def stored(index, blob):
        return recompress(rich.layers[index].tar)

    path = write(rich, target(tmp_path, fmt), fmt, compression, layer_blob=stored)
    assert_reads_as(open_image(path), rich)
    with open(path, "rb") as stdin:
        assert_reads_as(open_image("-", stdin=stdin), rich)


# ---- bad input --------------------------------------------------------------------------


def cut(path: Path, at: int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:at])
    return path


def largest_member(path: Path) -> tarfile.TarInfo:
    with tarfile.open(path) as tf:
        return max(tf.getmembers(), key=lambda m: m.size)


def layer_blob_path(layout: Path, index: int) -> Path:
    index_json = json.loads((layout / "index.json").read_bytes())
    digest = index_json["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs/sha256" / digest).read_bytes())
    return layout / "blobs/sha256" / manifest["layers"][index]["digest"].split(":")[1]


def without_member(path: Path, drop: str) -> Path:
    with tarfile.open(path) as tf:
        members = {m.name: (tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()
                   if m.name != drop}
    path.unlink()
    return emit(members, path, as_dir=False)


def not_a_tar(tmp_path, rich):
    path = tmp_path / "junk.tar"
    path.write_bytes(b"this is not an image archive\n" * 100)
    return path


def empty_file(tmp_path, rich):
    path = tmp_path / "empty.tar"
    path.write_bytes(b"")
    return path


def tar_without_manifest(tmp_path, rich):
    return emit({"hello.txt": b"hello\n", "etc": None}, tmp_path / "plain.tar", as_dir=False)


def dir_not_a_layout(tmp_path, rich):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README").write_text("not an image\n")
    return tmp_path / "notes"


def dir_without_oci_layout(tmp_path, rich):
    path = write(rich, tmp_path / "layout", "oci-dir")
    (path / "oci-layout").unlink()
    return path


def archive_cut_inside_a_layer(tmp_path, rich):
    path = write(rich, tmp_path / "image.tar", "docker-legacy")
    big = largest_member(path)
    return cut(path, big.offset_data + big.size // 2)


def archive_cut_inside_a_header(tmp_path, rich):
    path = write(rich, tmp_path / "image.tar", "docker-legacy")
    big = largest_member(path)
    end = big.offset_data + big.size + (-big.size % 512)
    return cut(path, end + 100)


def archive_cut_at_a_member_boundary(tmp_path, rich):
    path = write(rich, tmp_path / "image.tar", "docker-legacy")
    big = largest_member(path)
    return cut(path, big.offset_data + big.size + (-big.size % 512))


def half(index, blob):
    return blob[: len(blob) // 2] if index == 1 else blob


def gzip_cut_in_half(tmp_path, rich):
    return write(rich, tmp_path / "image.tar", "oci-tar", "gzip", layer_blob=half)


def zstd_cut_in_half(tmp_path, rich):
    return write(rich, tmp_path / "image.tar", "oci-tar", "zstd", layer_blob=half)


def corrupt_deflate(tmp_path, rich):
    def flip(index, blob):
        if index != 1:
            return blob
        body = bytearray(blob)
        for i in range(20, 40):
            body[i] ^= 0xFF
        return bytes(body)
    return write(rich, tmp_path / "image.tar", "oci-tar", "gzip", layer_blob=flip)


def corrupt_zstd_frame(tmp_path, rich):
    def smash(index, blob):
        return blob[:6] + b"\xff" * 8 + blob[14:] if index == 1 else blob
    return write(rich, tmp_path / "image.tar", "oci-tar", "zstd", layer_blob=smash)


def layer_not_a_tar(tmp_path, rich):
    return write(rich, tmp_path / "image.tar", "oci-tar", "gzip",
                 layer_blob=lambda i, blob: gzip.compress(content(5000), mtime=0) if i == 1 else blob)


def missing_blob_in_layout(tmp_path, rich):
    path = write(rich, tmp_path / "layout", "oci-dir", "gzip")
    layer_blob_path(path, 1).unlink()
    return path


def missing_layer_in_docker_archive(tmp_path, rich):
    path = write(rich, tmp_path / "image.tar", "docker-legacy")
    with tarfile.open(path) as tf:
        name = next(m.name for m in tf.getmembers() if m.name.endswith("/layer.tar"))
    return without_member(path, name)


def manifest_json_not_json(tmp_path, rich):
    return write(rich, tmp_path / "image.tar", "docker-oci", edit_manifest=lambda m: b'[{"Config": ')


def oci_manifest_not_json(tmp_path, rich):
    return write(rich, tmp_path / "image.tar", "oci-tar", edit_manifest=lambda m: b"{not json")


def index_json_not_json(tmp_path, rich):
    path = write(rich, tmp_path / "layout", "oci-dir")
    (path / "index.json").write_bytes(b'{"manifests": [')
    return path


def manifest_entry_without_config(tmp_path, rich):
    return write(rich, tmp_path / "image.tar", "docker-legacy",
                 edit_manifest=lambda m: [{k: v for k, v in m[0].items() if k != "Config"}])


def layer_name_outside_archive(tmp_path, rich):
    def climb(m):
        m[0]["Layers"][0] = "../../etc/passwd"
        return m
    return write(rich, tmp_path / "image.tar", "docker-legacy", edit_manifest=climb)


def with_wrong_diff_id(spec: ImageSpec) -> ImageSpec:
    diff_ids = list(spec.diff_ids)
    diff_ids[1] = "sha256:" + "0" * 64
    return dataclasses.replace(spec, config={**spec.config, "rootfs": {"type": "layers", "diff_ids": diff_ids}})


def diff_id_mismatch_docker(tmp_path, rich):
    return write(with_wrong_diff_id(rich), tmp_path / "image.tar", "docker-legacy")


def diff_id_mismatch_oci(tmp_path, rich):
    return write(with_wrong_diff_id(rich), tmp_path / "image.tar", "oci-tar", "zstd")


def fewer_diff_ids_than_layers(tmp_path, rich):
    config = {**rich.config, "rootfs": {"type": "layers", "diff_ids": rich.diff_ids[:2]}}
    return write(dataclasses.replace(rich, config=config), tmp_path / "image.tar", "oci-tar")


def blob_changed_after_writing(tmp_path, rich):
    path = write(rich, tmp_path / "layout", "oci-dir")
    blob = layer_blob_path(path, 1)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside app/big.bin's content: headers stay valid
    blob.write_bytes(bytes(data))
    return path


def blob_size_disagrees(tmp_path, rich):
    def grow(m):
        m["layers"][0]["size"] += 1
        return m
    return write(rich, tmp_path / "layout", "oci-dir", edit_manifest=grow)


def unknown_layer_media_type(tmp_path, rich):
    def retype(m):
        m["layers"][1]["mediaType"] = "application/x-unknown"
        return m
    return write(rich, tmp_path / "image.tar", "oci-tar", edit_manifest=retype)



BAD = [
    pytest.param(not_a_tar, FormatError, id="a file that is not a tar"),
    pytest.param(empty_file, FormatError, id="an empty file"),
    pytest.param(tar_without_manifest, FormatError, id="a tar with neither manifest.json nor index.json"),
    pytest.param(dir_not_a_layout, FormatError, id="a directory that is not a layout"),
    pytest.param(dir_without_oci_layout, FormatError, id="a layout directory without oci-layout"),
    pytest.param(archive_cut_inside_a_layer, TruncatedError, id="an archive cut inside a layer"),
    pytest.param(archive_cut_inside_a_header, TruncatedError, id="an archive cut inside a tar header"),
    pytest.param(archive_cut_at_a_member_boundary, TruncatedError, id="an archive cut at a member boundary"),
    pytest.param(gzip_cut_in_half, TruncatedError, id="a gzip layer cut in half"),
    pytest.param(zstd_cut_in_half, TruncatedError, id="a zstd layer cut in half"),
    pytest.param(corrupt_deflate, FormatError, id="a gzip layer with corrupt deflate data"),
    pytest.param(corrupt_zstd_frame, FormatError, id="a zstd layer with a corrupt frame"),
    pytest.param(layer_not_a_tar, FormatError, id="a layer that is not a tar stream"),
    pytest.param(missing_blob_in_layout, FormatError, id="a layer blob missing from a layout"),
    pytest.param(missing_layer_in_docker_archive, FormatError, id="a layer.tar missing from a docker archive"),
    pytest.param(manifest_json_not_json, FormatError, id="manifest.json that is not JSON"),
    pytest.param(oci_manifest_not_json, FormatError, id="an OCI manifest blob that is not JSON"),
    pytest.param(index_json_not_json, FormatError, id="index.json that is not JSON"),
    pytest.param(manifest_entry_without_config, FormatError, id="a manifest.json entry without Config"),
    pytest.param(layer_name_outside_archive, FormatError, id="a layer name that leaves the archive"),
    pytest.param(diff_id_mismatch_docker, DigestMismatchError, id="a docker config with a wrong diff_id"),
    pytest.param(diff_id_mismatch_oci, DigestMismatchError, id="an OCI config with a wrong diff_id"),
    pytest.param(fewer_diff_ids_than_layers, FormatError, id="a config listing fewer diff_ids than layers"),
    pytest.param(blob_changed_after_writing, DigestMismatchError, id="a layer blob that does not match its digest"),
    pytest.param(blob_size_disagrees, FormatError, id="a layer blob whose size disagrees with its descriptor"),
    pytest.param(unknown_layer_media_type, FormatError, id="a layer of unknown media type"),
]


@pytest.mark.parametrize("make, error", BAD)
def test_bad_input_raises_a_slimmer_error_naming_the_archive(tmp_path, rich, make, error):
    """Broken or foreign input raises the matching SlimmerError subclass, naming the archive."""
    path = make(tmp_path, rich)
    with pytest.raises(error) as err:
        open_image(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("make, error", [
    pytest.param(not_a_tar, FormatError, id="a stream that is not a tar"),
    pytest.param(archive_cut_inside_a_layer, FormatError, id="a stream cut inside a layer"),
    pytest.param(gzip_cut_in_half, TruncatedError, id="a stream with a gzip layer cut in half"),
    pytest.param(diff_id_mismatch_docker, DigestMismatchError, id="a stream whose config has a wrong diff_id"),
])
def test_bad_input_on_a_pipe_raises_a_slimmer_error(tmp_path, rich, make, error):
    """Broken input piped on standard input raises the matching SlimmerError subclass."""
    with open(make(tmp_path, rich), "rb") as stdin, pytest.raises(error) as err:
        open_image("-", stdin=stdin)
    assert "<stdin>" in str(err.value)


def test_a_missing_path_is_a_slimmer_error(tmp_path):
    """A path that does not exist raises a SlimmerError naming it."""
    with pytest.raises(SlimmerError, match=r"nothing-here\.tar"):
        open_image(tmp_path / "nothing-here.tar")


# ---- more shapes of real archives -------------------------------------------------------

FORMAT_NAMES = {"docker-legacy": "docker-archive", "docker-oci": "docker-archive-oci", "oci-dir": "oci-layout",
                "oci-tar": "oci-archive"}


@pytest.mark.parametrize("fmt, name", [
    pytest.param("docker-legacy", "image.tar", id="a legacy docker archive"),
    pytest.param("docker-oci", "image.tar", id="a Docker 25+ archive"),
    pytest.param("oci-dir", "layout", id="an OCI layout directory"),
    pytest.param("oci-tar", "image.tar", id="an OCI archive"),
    pytest.param("oci-tar", "image.oci", id="an OCI archive not named .tar"),
    pytest.param("oci-dir", "layout.tar", id="an OCI layout directory named like a tar"),
])
def test_reports_the_format_it_found(tmp_path, rich, fmt, name):
    """Image.format names the format found by looking at the archive, whatever its name."""
    assert open_image(write(rich, tmp_path / name, fmt)).format == FORMAT_NAMES[fmt]


EMPTY = image(layer({}, created_by="WORKDIR /app"), layer({"app/x": 1}, auto_dirs=True, created_by="COPY x ."),
              layer({}, created_by="RUN true"))
NO_LAYERS = image(empty_steps=["CMD [\"true\"]"])


@pytest.mark.parametrize("fmt", ALL_FORMS)
@pytest.mark.parametrize("spec", [pytest.param(EMPTY, id="empty layers"),
                                  pytest.param(NO_LAYERS, id="an image without layers")])
def test_reads_empty_layers_and_images_without_layers(tmp_path, fmt, spec):
    """Empty 1024-byte layers and images with no layer at all read back as built, piped too."""
    path = write(spec, target(tmp_path, fmt), fmt)
    assert_reads_as(open_image(path), spec)
    if fmt != "oci-dir":
        with open(path, "rb") as stdin:
            assert_reads_as(open_image("-", stdin=stdin), spec)


def retar(path: Path, rename=lambda name: name, link=lambda name, data, seen: None) -> Path:
    """Rewrite the tar at path, renaming members, and turning those ``link`` names into symlinks."""
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]
    seen: dict[bytes, str] = {}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as out:
        for info, data in members:
            target_name = link(info.name, data, seen)
            info.name = rename(info.name)
            if target_name is not None:
                info.type, info.linkname, info.size = tarfile.SYMTYPE, target_name, 0
                out.addfile(info)
            else:
                out.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def link_repeats(name, data, seen):
    """Docker's legacy save stores a repeated layer.tar as a symlink to its first copy."""
    if not name.endswith("/layer.tar"):
        return None
    if data in seen:
        return "../" + seen[data]
    seen[data] = name
    return None


@pytest.mark.parametrize("piped", [False, True], ids=["from a file", "from a pipe"])
def test_reads_a_docker_archive_whose_repeated_layer_is_a_symlink(tmp_path, piped):
    """A layer.tar that is a symlink to an earlier layer.tar of the archive reads as that layer."""
    base = layer({"base.txt": 10}, created_by="ADD base")
    spec = image(base, layer({"mid": 20}), base)
    path = retar(write(spec, tmp_path / "image.tar", "docker-legacy"), link=link_repeats)
    with tarfile.open(path) as tf:
        assert sum(m.issym() for m in tf.getmembers()) == 1
    with open(path, "rb") as stdin:
        assert_reads_as(open_image("-", stdin=stdin) if piped else open_image(path), spec)


@pytest.mark.parametrize("fmt", ["oci-tar", "docker-oci", "docker-legacy"])
@pytest.mark.parametrize("piped", [False, True], ids=["from a file", "from a pipe"])
def test_reads_archives_whose_member_names_start_with_dot_slash(tmp_path, rich, fmt, piped):
    """An archive made with ``tar -C dir -cf x.tar .`` (names like ./index.json) reads as usual."""
    path = retar(write(rich, tmp_path / "image.tar", fmt, "gzip"), rename=lambda name: "./" + name)
    with open(path, "rb") as stdin:
        assert_reads_as(open_image("-", stdin=stdin) if piped else open_image(path), rich)


@pytest.mark.parametrize("fmt", ["oci-dir", "oci-tar"])
def test_a_single_foreign_platform_is_read_without_platform_option(tmp_path, fmt):
    """An index listing one platform that is not the host's reads that platform by default."""
    other = "linux/s390x" if host_platform() != "linux/s390x" else "linux/amd64"
    path = write_multiplatform({other: S390}, target(tmp_path, fmt), fmt=fmt)
    assert platform(open_image(path)) == other


def test_platform_option_with_the_default_arm64_variant_matches_an_entry_without_variant(tmp_path):
    """--platform linux/arm64/v8 picks an index entry listed as linux/arm64 (v8 is arm64's default)."""
    path = write_multiplatform({"linux/amd64": AMD, "linux/arm64": ARM}, tmp_path / "image.tar")
    assert platform(open_image(path, Options(platform="linux/arm64/v8"))) == "linux/arm64"


@pytest.mark.parametrize("fmt", ALL_FORMS)
def test_platform_option_is_checked_against_a_single_images_config(tmp_path, fmt):
    """--platform naming another platform than a single image's config is an ImageSelectionError."""
    spec = for_platform(AMD, "linux/amd64")
    with pytest.raises(ImageSelectionError):
        open_image(write(spec, target(tmp_path, fmt), fmt), Options(platform="linux/s390x"))


@pytest.mark.parametrize("fmt", ["docker-legacy", "docker-oci"])
def test_image_option_accepts_a_config_digest_prefix(tmp_path, fmt):
    """--image with the first hex digits of a config digest picks that image of a docker archive."""
    path = write_multi({"test/one:latest": ONE, "test/two:1.0": TWO}, target(tmp_path, fmt), fmt)
    hexdigits = TWO.config_digest.split(":")[1]
    assert_reads_as(open_image(path, Options(image=hexdigits[:12])), TWO)
    assert_reads_as(open_image(path, Options(image=TWO.config_digest)), TWO)


@pytest.mark.parametrize("wanted", [pytest.param(lambda spec: spec.config_digest[20:32], id="middle digits"),
                                    pytest.param(lambda spec: "blobs/", id="a path fragment")])
def test_image_option_does_not_match_inside_a_config_digest(tmp_path, wanted):
    """--image with digits from the middle of a config digest names no image."""
    path = write_multi({"test/one:latest": ONE, "test/two:1.0": TWO}, tmp_path / "image.tar", "docker-oci")
    with pytest.raises(ImageSelectionError):
        open_image(path, Options(image=wanted(TWO)))


@pytest.mark.parametrize("fmt, piped", [
    pytest.param("docker-legacy", False, id="a docker archive"),
    pytest.param("oci-dir", False, id="an OCI layout directory"),
    pytest.param("oci-tar", False, id="an OCI archive"),
    pytest.param("docker-legacy", True, id="a piped docker archive"),
    pytest.param("oci-tar", True, id="a piped OCI archive"),
])
def test_a_layer_past_max_layer_size_is_refused(tmp_path, rich, fmt, piped):
    """A layer expanding past --max-layer-size raises LimitError instead of reading on."""
    path = write(rich, target(tmp_path, fmt), fmt, "gzip")
    options = Options(max_layer_size=100_000)
    with pytest.raises(LimitError, match="max-layer-size"):
        if piped:
            with open(path, "rb") as stdin:
                open_image("-", options, stdin=stdin)
        else:
            open_image(path, options)


def test_a_layer_member_that_climbs_out_of_the_root_is_refused(tmp_path):
    """A layer member named ../x raises FormatError naming the archive."""
    path = write(image(layer({"../escape": 1})), tmp_path / "image.tar", "oci-tar")
    with pytest.raises(FormatError, match="outside the root") as err:
        open_image(path)
    assert str(path) in str(err.value)


# ---- archives written by skopeo ---------------------------------------------------------

SKOPEO = shutil.which("skopeo")


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
@pytest.mark.parametrize("dest, name", [
    pytest.param("docker-archive:{}:test/app:latest", "image.tar", id="skopeo's docker-archive"),
    pytest.param("oci-archive:{}:latest", "image.tar", id="skopeo's oci-archive"),
    pytest.param("oci:{}:latest", "layout", id="skopeo's oci layout directory"),
])
def test_reads_archives_written_by_skopeo(tmp_path, rich, dest, name):
    """Archives that skopeo writes from a built layout read back with the same layers and config."""
    source = write(rich, tmp_path / "source", "oci-dir", "gzip")
    out = tmp_path / name
    subprocess.run([SKOPEO, "copy", "--quiet", f"oci:{source}:latest", dest.format(out)], check=True,
                   capture_output=True, timeout=60)
    img = open_image(out)
    assert_reads_as(img, rich)
    assert img.tags and all(t.endswith("latest") for t in img.tags)


# ---- sparse files -----------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def gnu_sparse_tar(name: str, regions: list[tuple[int, bytes]], realsize: int, then: dict[str, bytes]) -> bytes:
    """Return a tar with an old-GNU sparse member (type S, more than four regions, so with an
    extended sparse header block), followed by plain members ``then``. GNU tar --sparse writes
    this; Python's tarfile reads it but cannot write it."""
    stored = b"".join(data for _, data in regions)
    info = tarfile.TarInfo(name)
    info.size = len(stored)
    head = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    head[156:157] = b"S"
    sparse = b"".join(_octal(off, 12) + _octal(len(data), 12) for off, data in regions[:4])
    head[386:386 + len(sparse)] = sparse
    head[482] = 1 if len(regions) > 4 else 0
    head[483:495] = _octal(realsize, 12)
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    extended = bytearray(512)
    more = b"".join(_octal(off, 12) + _octal(len(data), 12) for off, data in regions[4:25])
    extended[: len(more)] = more
    buf = io.BytesIO()
    buf.write(bytes(head) + bytes(extended) + stored + bytes(-len(stored) % 512))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for other, data in then.items():
            extra = tarfile.TarInfo(other)
            extra.size = len(data)
            tf.addfile(extra, io.BytesIO(data))
    return buf.getvalue()


def pax_sparse_tar(name: str, regions: list[tuple[int, bytes]], realsize: int, then: dict[str, bytes]) -> bytes:
    """Return a tar with a GNU PAX 1.0 sparse member (GNU tar --sparse --format=posix): the real
    name and size are PAX records; the data starts with the region map."""
    sparse_map = f"{len(regions)}\n" + "".join(f"{off}\n{len(data)}\n" for off, data in regions)
    body = sparse_map.encode() + bytes(-len(sparse_map) % 512) + b"".join(data for _, data in regions)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
        info.size = len(body)
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                            "GNU.sparse.realsize": str(realsize)}
        tf.addfile(info, io.BytesIO(body))
        for other, data in then.items():
            extra = tarfile.TarInfo(other)
            extra.size = len(data)
            tf.addfile(extra, io.BytesIO(data))
    return buf.getvalue()


SPARSE_REGIONS = [(i * 100_000, b"x" * 10) for i in range(10)]


@pytest.mark.parametrize("make", [
    pytest.param(gnu_sparse_tar, id="an old GNU sparse member with an extended header"),
    pytest.param(pax_sparse_tar, id="a GNU PAX 1.0 sparse member"),
])
def test_reads_sparse_members_and_what_follows_them(tmp_path, make):
    """A sparse member (GNU tar --sparse) reads under its real name, and the members after it read."""
    tar = make("sparse", SPARSE_REGIONS, 1_000_000, {"after": b"after\n"})
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        assert [(m.name, m.size) for m in tf] == [("sparse", 1_000_000), ("after", 6)]
    spec = image(layer({"before": 3}))
    config = {**spec.config, "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}
    path = write(dataclasses.replace(spec, config=config), tmp_path / "image.tar", "oci-tar",
                 layer_blob=lambda i, blob: tar)
    assert [e.path for e in open_image(path).layers[0].entries] == ["sparse", "after"]


# ---- scanning strategies ----------------------------------------------------------------


@pytest.mark.parametrize("fmt, compression", [
    pytest.param("docker-legacy", "none", id="a docker archive"),
    pytest.param("oci-tar", "gzip", id="an OCI archive with gzip layers"),
    pytest.param("oci-dir", "zstd", id="an OCI layout directory with zstd layers"),
])
@pytest.mark.parametrize("in_processes", [False, True], ids=["scanned in threads", "scanned in worker processes"])
def test_scanning_strategy_does_not_change_the_result(tmp_path, rich, monkeypatch, fmt, compression, in_processes):
    """Layers scanned in threads or in worker processes read the same, and progress adds up to
    the stored bytes of the layers."""
    if in_processes:
        monkeypatch.setattr(store, "PROCESS_THRESHOLD", 0)
        if not can_fork():
            pytest.skip("worker processes need fork and more than one CPU")
    done: list[int] = []
    img = open_image(write(rich, target(tmp_path, fmt), fmt, compression), Options(progress=done.append))
    assert_reads_as(img, rich)
    assert sum(done) == sum(lay.stored_size for lay in img.layers)


@pytest.mark.parametrize("fmt", ["docker-legacy", "oci-dir", "oci-tar"])
def test_layer_cache_gives_the_same_image_cold_and_warm(tmp_path, rich, fmt):
    """A second read served from the layer cache equals the first, uncached one."""
    path = write(rich, target(tmp_path, fmt), fmt, "gzip")
    cache = LayerCache(tmp_path / "cache.sqlite")
    try:
        cold = open_image(path, Options(cache=cache))
        warm = open_image(path, Options(cache=cache))
    finally:
        cache.close()
    assert cache.hits == len(rich.layers)
    for img in (cold, warm):
        assert_reads_as(img, rich)
        assert [lay.digest for lay in img.layers] == [lay.digest for lay in cold.layers]
