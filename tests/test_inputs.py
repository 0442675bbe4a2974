"""Every input a pipeline has: archives compressed as a whole (gzip, zstd, xz) from a file and a
pipe, transport names as skopeo, syft and crane users type them, references normalised as
Docker does, OCI layouts with artifacts beside the image, the layers umoci 0.4.7's `insert`
writes, and a layer cache that never bypasses a safety limit."""

from __future__ import annotations

import gzip
import json
import lzma
import shutil
import subprocess
from pathlib import Path

import pytest
import zstandard

import hostile
from builders import File, analysis_of, image, layer, slimmer_run, write

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "single-stage.tar"






COMPRESSORS = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "xz": lambda data: lzma.compress(data),
}


@pytest.mark.parametrize("name", COMPRESSORS)
def test_an_archive_compressed_as_a_whole_reads_from_a_file_and_a_pipe(tmp_path, name):
    """`docker save app | gzip > app.tar.gz` (and zstd, xz): the JSON of the plain archive,
    from the file and from a pipe, found by magic bytes whatever the name says."""
    plain = analysis_of(slimmer_run("analyze", FIXTURE, "--json", "--no-cache"))
    packed = tmp_path / "image.bin"
    packed.write_bytes(COMPRESSORS[name](FIXTURE.read_bytes()))
    assert analysis_of(slimmer_run("analyze", packed, "--json", "--no-cache")) == plain
    assert analysis_of(slimmer_run("analyze", "-", "--json", "--no-cache", stdin=packed.read_bytes())) == plain


def test_a_compressed_archive_is_exported_and_slimmed_too(tmp_path):
    """Layers of a .tar.gz are read again by decompressing it anew: export and slim work."""
    packed = tmp_path / "image.tar.gz"
    packed.write_bytes(gzip.compress(FIXTURE.read_bytes(), mtime=0))
    out = tmp_path / "root.tar"
    assert slimmer_run("export", packed, out).returncode == 0
    direct = tmp_path / "direct.tar"
    assert slimmer_run("export", FIXTURE, direct).returncode == 0
    assert out.read_bytes() == direct.read_bytes()
    assert slimmer_run("slim", packed, "-o", tmp_path / "slim.tar").returncode == 0


def test_a_truncated_compressed_archive_is_one_error(tmp_path):
    """A .tar.gz cut short is refused in one line, from a file and from a pipe."""
    data = gzip.compress(FIXTURE.read_bytes(), mtime=0)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    for args, stdin in (((cut,), None), (("-",), cut.read_bytes())):
        done = slimmer_run("analyze", *args, stdin=stdin)
        err = done.stderr.decode()
        assert done.returncode == 2 and err.count("\n") == 1 and "truncated" in err, err


def test_transport_names_read_as_skopeo_names_them(tmp_path):
    """docker-archive:FILE, docker-archive:FILE:REF, oci-archive:FILE:TAG and oci:DIR:TAG give
    the analysis of the archive itself; a tag the archive lacks is an error listing none."""
    plain = analysis_of(slimmer_run("analyze", FIXTURE, "--json", "--no-cache"))
    tag = plain["image"]["tags"][0]
    for source in (f"docker-archive:{FIXTURE}", f"docker-archive:{FIXTURE}:{tag}"):
        assert analysis_of(slimmer_run("analyze", source, "--json", "--no-cache")) == plain
    spec = image(layer({"a": 10}), tag="test/app:v1")
    layout = write(spec, tmp_path / "layout", "oci-dir")
    archive = write(spec, tmp_path / "oci.tar", "oci-tar")
    want = analysis_of(slimmer_run("analyze", layout, "--json", "--no-cache"))
    got = analysis_of(slimmer_run("analyze", f"oci:{layout}:v1", "--json", "--no-cache"))
    assert (got["sizes"], got["layers"]) == (want["sizes"], want["layers"])
    packed = analysis_of(slimmer_run("analyze", f"oci-archive:{archive}:v1", "--json", "--no-cache"))
    assert packed["sizes"] == want["sizes"]
    done = slimmer_run("analyze", f"oci:{layout}:v2")
    assert done.returncode == 2 and b"no image 'v2'" in done.stderr


@pytest.mark.parametrize("ref", ["nginx:latest", "docker.io/library/nginx", "ghcr.io/acme/app:1.2", "busybox"])
def test_a_reference_that_is_no_file_says_how_to_make_an_archive(ref):
    """A registry reference is not read from a registry (slimmer is offline): the one error line
    says how to save it first."""
    done = slimmer_run("analyze", ref)
    err = done.stderr.decode()
    assert done.returncode == 2 and err.count("\n") == 1
    assert f"docker save -o image.tar {ref}" in err and "skopeo copy" in err


@pytest.mark.parametrize("stored, wanted", [
    ("name", "name:latest"), ("name:latest", "name"), ("docker.io/library/nginx:1.25", "nginx:1.25"),
    ("nginx:1.25", "docker.io/library/nginx:1.25"), ("library/busybox:latest", "busybox"),
    ("index.docker.io/library/alpine:3", "alpine:3"),
], ids=lambda v: v)
def test_image_names_are_matched_as_docker_normalises_them(tmp_path, stored, wanted):
    """--image matches a stored RepoTag with implicit :latest and Docker Hub's prefixes."""
    files: dict[str, bytes] = {}
    manifest = []
    for tag, size in ((stored, 10), ("other/app:v9", 20)):
        one = hostile.docker_files([hostile.blob(hostile.raw_tar([hostile.F("a", b"x" * size)]))])
        entry = json.loads(one.pop("manifest.json"))[0]
        manifest.append({**entry, "RepoTags": [tag]})
        files.update(one)
    files["manifest.json"] = json.dumps(manifest).encode()
    archive = hostile.write_tar(files, tmp_path / "multi.tar")
    doc = analysis_of(slimmer_run("analyze", archive, "--image", wanted, "--json", "--no-cache"))
    assert doc["sizes"]["total_bytes"] == 10


def _oci_with_artifacts(tmp_path: Path) -> Path:
    """An OCI layout holding an image, an OCI 1.1 artifact manifest (a signature), a buildx
    attestation manifest and an index entry of a media type nobody knows."""
    layout = write(image(layer({"app/run": File(b"x", mode=0o755)}), tag="test/app:v1"), tmp_path / "layout",
                   "oci-dir")
    blobs = layout / "blobs" / "sha256"

    def put(value) -> tuple[str, int]:
        data = json.dumps(value).encode()
        digest = hostile.sha(data)
        (blobs / digest[7:]).write_bytes(data)
        return digest, len(data)

    empty, empty_size = put({})
    sig, sig_size = put({"schemaVersion": 2, "mediaType": hostile.MANIFEST_TYPE,
                         "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
                         "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                                    "size": empty_size}, "layers": []})
    att, att_size = put({"schemaVersion": 2, "mediaType": hostile.MANIFEST_TYPE,
                         "config": {"mediaType": "application/vnd.in-toto+json", "digest": empty, "size": empty_size},
                         "layers": []})
    index = json.loads((layout / "index.json").read_text())
    image_digest = index["manifests"][0]["digest"]
    index["manifests"] += [
        {"mediaType": hostile.MANIFEST_TYPE, "digest": sig, "size": sig_size,
         "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"},
        {"mediaType": hostile.MANIFEST_TYPE, "digest": att, "size": att_size,
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": image_digest}},
        {"mediaType": "application/vnd.example.unknown+json", "digest": empty, "size": empty_size},
    ]
    (layout / "index.json").write_text(json.dumps(index))
    return layout


def test_an_oci_layout_with_artifacts_beside_the_image_reads_the_image(tmp_path):
    """Signatures, attestations and entries of unknown media types are ignored, as the
    image-spec says an unknown entry MUST be; --image naming the image works too."""
    layout = _oci_with_artifacts(tmp_path)
    doc = analysis_of(slimmer_run("analyze", layout, "--json", "--no-cache"))
    assert doc["sizes"]["file_count"] == 1
    assert analysis_of(slimmer_run("analyze", layout, "--image", "test/app:v1", "--json", "--no-cache")) == doc


# ---- what umoci 0.4.7 insert writes -------------------------------------------------------------


@pytest.mark.skipif(shutil.which("umoci") is None, reason="needs umoci")
def test_a_layer_umoci_insert_wrote_is_read(tmp_path):
    """umoci 0.4.7's `insert` ends a layer right after its last member's data (no padding, no
    end blocks) and records the diff_id of exactly those bytes: slimmer reads it, with a note."""
    layout = tmp_path / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:t"], check=True)
    src = tmp_path / "f.txt"
    src.write_bytes(b"abcd")
    subprocess.run(["umoci", "insert", "--image", f"{layout}:t", str(src), "/f.txt"], check=True)
    done = slimmer_run("analyze", layout, "--json", "--no-cache")
    doc = analysis_of(done)
    assert doc["largest_files"][0]["path"] == "/f.txt" and doc["largest_files"][0]["size_bytes"] == 4
    export = slimmer_run("export", layout, tmp_path / "root")
    assert export.returncode == 0 and (tmp_path / "root" / "f.txt").read_bytes() == b"abcd"


def _layer_ending(tmp_path: Path, cut: int) -> Path:
    """A docker archive whose one layer is a tar stopped ``cut`` bytes into the last member's
    padding (0: right after its data), its config's diff_id being of exactly those bytes."""
    full = hostile.raw_tar([hostile.F("a", b"x" * 700), hostile.F("b", b"abcd")], end=False)
    tar = full[: len(full) - (512 - 4) + cut]
    return hostile.write_tar(hostile.docker_files([hostile.blob(tar)]), tmp_path / "image.tar")


def test_a_layer_without_end_blocks_is_read_with_a_note_and_one_cut_inside_data_is_refused(tmp_path):
    """Members complete and the digest matching: read, and the analysis says why it is odd.
    Cut inside the last member's data (digest matching too): refused as truncated."""
    good = analysis_of(slimmer_run("analyze", _layer_ending(tmp_path, 0), "--json", "--no-cache"))
    assert good["sizes"]["file_count"] == 2 and any("end-of-archive" in n for n in good["notes"])
    (tmp_path / "image.tar").unlink()
    done = slimmer_run("analyze", _layer_ending(tmp_path, -2), "--no-cache")
    assert done.returncode == 2 and b"truncated" in done.stderr


def test_a_warm_cache_never_bypasses_the_layer_size_limit(tmp_path):
    """A layer the cache holds is refused past --max-layer-size exactly as a cold read refuses it."""
    archive = write(image(layer({"big": 3_000_000})), tmp_path / "img.tar", "docker-legacy")
    cache = tmp_path / "cache"
    assert slimmer_run("analyze", archive, cache=cache).returncode == 0
    for extra in ((), ("--no-cache",)):
        done = slimmer_run("analyze", archive, "--max-layer-size", "1MB", *extra, cache=cache)
        assert done.returncode == 2 and b"--max-layer-size" in done.stderr, extra
