"""A fuzz target for the reader (and what reads through it: merge, analyze, export), driven by
hypothesis: it builds archive structures from hostile parts (names with ``..``, whiteouts, odd
types, links outside the root, PAX records, GNU long names), edits bytes inside tar headers
(fixing their checksums, so the parsers see them), then mutates bytes of the layer tar, the
stored blob or the whole archive, or cuts it short.

The property: reading either succeeds or raises a SlimmerError; an image that reads satisfies
the model's invariants, analyzes without error (in the library and through the CLI, in both
output formats) and exports to a directory and to a tar with the
same tree (or both refuse it, writing nothing), and nothing ever appears outside the
destination. A bounded run is part of the test suite; ``bench/fuzz.py`` runs it for longer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimmer.analyzer.report import analyze
from slimmer.errors import OutputError, SlimmerError
from slimmer.exporter import ExportOptions, export
from slimmer.reader import Options, open_image

import hostile
from builders import check_invariants
from hostile import OUTSIDE, Blob, M, blob, raw_tar, run_cli, temps_in, tree_of_dir, tree_of_tar

# mostly plain names, so that most archives get past the reader and into merge and export
COMPONENTS = ["a", "b", "c"] * 6 + [".wh.a", ".wh.b", ".wh..wh..opq"] * 2 + [
    "..", ".", "", ".wh..", "\u00e9", "caf\udce9", "d" * 120, "\\..", "a\nb"]
TYPES = [b"0", b"5", b"2", b"1"] * 4 + [b"\0", b"6", b"3", b"4", b"7", b"V", b"x", b"g", b"L", b"K", b"S", b"Z"]
PAX_KEYS = ["path", "linkpath", "size", "uid", "gid", "mtime", "SCHILY.xattr.user.x",
            "SCHILY.xattr.security.capability", "GNU.sparse.realsize", "GNU.sparse.name"]
FUZZ_LAYER_LIMIT = 16 << 20

names = st.builds(lambda parts, lead: lead + "/".join(parts),
                  st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4), st.sampled_from(["", "/", "./"]))
targets = names | st.sampled_from(["a", "b", "a/b", OUTSIDE, OUTSIDE + "/x", "/", "/etc/passwd", "../" * 6 + "etc"])
pax_values = names | st.integers(-5, 10**12).map(str) | st.sampled_from(["", "1e3", "0x10", "-1", "\0", "9" * 40])
members = st.builds(
    M, name=names, data=st.binary(max_size=700), type=st.sampled_from(TYPES), link=targets,
    mode=st.sampled_from([0o644, 0o755, 0o4755, 0o2755, 0o777, 0o000, 0o1777]),
    pax=st.none() | st.dictionaries(st.sampled_from(PAX_KEYS), pax_values, max_size=3),
    gnu_long=st.booleans(), size=st.none() | st.integers(0, 3000), devmajor=st.integers(0, 9),
)
# half the archives keep their bytes: hostile structure alone must be handled too
mutations = st.just([]) | st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1,
                                   max_size=4)
# bytes changed inside a header block, whose checksum is then fixed: (which header, offset, value)
header_edits = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 511), st.integers(0, 255)),
                        max_size=4)
specs = st.fixed_dictionaries({
    "layers": st.lists(st.lists(members, max_size=6), max_size=3),
    "end": st.booleans(),
    "compression": st.sampled_from(["none", "gzip", "zstd"]),
    "form": st.sampled_from(["docker", "oci-dir"]),
    "where": st.sampled_from(["tar", "blob", "archive"]),
    "mutations": mutations,
    "cut": st.none() | st.none() | st.floats(0, 1),
    "header_edits": header_edits,
})


def _mutate(data: bytes, spec: dict) -> bytes:
    out = bytearray(data)
    for at, value in spec["mutations"]:
        if out:
            out[int(at * len(out))] = value
    if spec["cut"] is not None:
        out = out[: int(spec["cut"] * len(out))]
    return bytes(out)


def _edit_headers(tar: bytes, heads: list[int], edits) -> bytes:
    out = bytearray(tar)
    for which, offset, value in edits:
        if heads:
            at = heads[int(which * len(heads))]
            out[at + offset] = value
            out[at:at + 512] = hostile.fix_checksum(out[at:at + 512])
    return bytes(out)


def build(spec: dict, where: Path) -> Path:
    """Write the archive ``spec`` describes into ``where``; return its path."""
    blobs = []
    for members_ in spec["layers"]:
        heads: list[int] = []
        tar = raw_tar(members_, end=spec["end"], headers=heads)
        tar = _edit_headers(tar, heads, spec.get("header_edits", []))
        if spec["where"] == "tar":
            blobs.append(blob(_mutate(tar, spec), spec["compression"]))
        elif spec["where"] == "blob":
            good = blob(tar, spec["compression"])
            blobs.append(Blob(_mutate(good.stored, spec), good.diff_id, good.compression))
        else:
            blobs.append(blob(tar, spec["compression"]))
    if spec["form"] == "docker":
        path = hostile.write_tar(hostile.docker_files(blobs), where / "image.tar")
        if spec["where"] == "archive":
            path.write_bytes(_mutate(path.read_bytes(), spec))
        return path
    path = hostile.write_dir(hostile.oci_files(blobs), where / "layout")
    if spec["where"] == "archive":
        index = path / "index.json"
        index.write_bytes(_mutate(index.read_bytes(), spec))
    return path


def run_target(spec: dict) -> str:
    """Run the reader and its consumers on the archive ``spec`` describes; return the outcome
    ("rejected", "exported", "export refused"); raise if a property breaks."""
    outside = Path(OUTSIDE)
    outside.mkdir(exist_ok=True)
    where = Path(tempfile.mkdtemp(prefix="slimmer-fuzz-"))
    try:
        path = build(spec, where)
        try:
            image = open_image(path, Options(max_layer_size=FUZZ_LAYER_LIMIT))
        except SlimmerError:
            return "rejected"
        check_invariants(image)
        with contextlib.suppress(SlimmerError):
            analyze(image)
        for fmt in ("--json", "--format=table"):
            run = run_cli("analyze", path, fmt, "--max-layer-size", str(FUZZ_LAYER_LIMIT), "--no-cache")
            if run.exc is not None:
                raise run.exc
            assert run.code == 0 or (run.code == 2 and run.err.startswith("slimmer: error: ")
                                     and run.err.count("\n") == 1), (run.code, run.err)
        out = where / "out"
        out.mkdir()
        results = {}
        for to in ("dir", "tar"):
            dest = out / ("root.tar" if to == "tar" else "root")
            try:
                export(image, dest, ExportOptions(to=to))
            except SlimmerError as err:
                assert not os.path.lexists(dest), f"a failed {to} export left {dest}"
                results[to] = err
            else:
                results[to] = tree_of_dir(dest) if to == "dir" else tree_of_tar(dest.read_bytes())
        assert temps_in(out) == []
        assert os.listdir(outside) == [], f"written outside the destination: {os.listdir(outside)}"
        kinds = {to: isinstance(r, SlimmerError) for to, r in results.items()}
        if not any(kinds.values()):
            assert results["dir"] == results["tar"], "the directory and tar exports differ"
            return "exported"
        if kinds["dir"] != kinds["tar"]:
            # only the file system may refuse what a tar can hold (a name longer than NAME_MAX)
            assert isinstance(results["dir"], OutputError), results
        return "export refused"
    finally:
        shutil.rmtree(where, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)


FUZZ_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
                 "database": None}


@settings(max_examples=int(os.environ.get("SLIMMER_FUZZ_EXAMPLES", "150")), derandomize=True, **FUZZ_SETTINGS)
@given(specs)
def test_reader_survives_hostile_archives(spec):
    """Any archive built from hostile parts and mutated bytes reads, analyzes and exports
    cleanly or is refused with a SlimmerError."""
    run_target(spec)


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_target_exports_a_plain_image(compression):
    """The target really gets as far as exporting: an unmutated image exports identically to a dir and a tar."""
    spec = {"layers": [[hostile.D("etc"), hostile.F("etc/motd", b"hi")], [hostile.F("etc/.wh.motd")]],
            "end": True, "compression": compression, "form": "docker", "where": "tar", "mutations": [],
            "cut": None, "header_edits": []}
    assert run_target(spec) == "exported"
    assert run_target({**spec, "cut": 0.5, "where": "blob"}) in ("rejected", "export refused")
