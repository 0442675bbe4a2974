"""The compiled tar scanner (slimmer/_ctar.c) and the pure-Python one give the same results:
the same entries (every column, category rules included), the same members shown to the visit
with the same data and headers (raw header blocks included), the same spans, the same header
counts and the same errors, on the fixtures, the hostile
corpus and random tars from hypothesis fed in random chunks; and `analyze --json` is the same
byte for byte either way. Without a C compiler the extension is not built and these are
skipped, but a machine that has one must have built it."""

from __future__ import annotations

import array
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.report import analyze
from slimmer.compiled import COMPILED, uses_compiled
from slimmer.errors import SlimmerError
from slimmer.model import columns
from slimmer.reader import Options, open_image
from slimmer.render.json import analysis_json, dumps
from slimmer.tar.codec import uncompressed_chunks
from slimmer.tar.scan import Select, TarScanner

import hostile
from hostile import CASES, M, raw_tar

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "fixtures").glob("*.tar"))
needs_compiled = pytest.mark.skipif(not COMPILED, reason="the compiled scanner is not built (no C compiler)")


def test_a_machine_with_a_c_compiler_builds_the_compiled_scanner():
    """Where a C compiler and Python's headers are present, the install built the extension
    (the build's fallback must never hide a broken C file)."""
    import sysconfig

    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not (shutil.which(os.environ.get("CC", "cc")) and headers.exists()):
        pytest.skip("no C compiler or no Python headers here")
    assert COMPILED


class _Recorder:
    """A visit that shows every member to a sink hashing its data, and records it all."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def __call__(self, index, entry, header):
        record = [index, tuple(entry), tuple(header) if header is not None else None, hashlib.sha256(), 0]
        self.seen.append(record)
        recorder = self

        class Sink:
            def write(self, data):
                record[3].update(data)
                record[4] += len(data)

            def end(self):
                record[3] = record[3].hexdigest()
                recorder.seen.append(("end", index))

        return Sink()


def _scan(data: bytes, cuts: list[int], pure: bool, detail: bool, select: Select | None, visit: bool = True):
    """Scan ``data`` fed in pieces cut at ``cuts``; return everything the scan gave (or the error),
    the members' spans included where the scan visits."""
    recorder = _Recorder()
    scanner = TarScanner("layer", 1 << 40, recorder if visit else None, detail, select, spans=visit, pure=pure)
    out: dict = {}
    try:
        last = 0
        for cut in [*sorted(set(cuts)), len(data)]:
            scanner.feed(data[last:cut])
            last = cut
        out["complete"] = scanner.complete_members()
        if scanner.ended:
            scanner.finish()
    except SlimmerError as err:
        out["error"] = (type(err).__name__, str(err))
    cols = scanner.columns()
    spans = scanner.spans
    assert (spans is not None) == visit
    out.update(columns=cols.pack(), headers=scanner.headers, ended=scanner.ended, count=scanner.count,
               seen=[_closed(r) for r in recorder.seen], spans=spans.tolist() if spans is not None else None)
    return out


def _closed(record):
    if not isinstance(record, list):
        return record
    digest = record[3]
    return (*record[:3], digest if isinstance(digest, str) else "open:" + digest.hexdigest(), record[4])


SELECTS = {
    "no select": None,
    "the analysis select": AnalysisPolicy().select,
    "big files only": Select(min_size=1000),
}


def _both(data: bytes, cuts: list[int] = ()) -> None:  # type: ignore[assignment]
    for name, select in SELECTS.items():
        for detail in (False, True):
            for visit in (True, False):
                pure = _scan(data, list(cuts), True, detail, select, visit)
                compiled = _scan(data, list(cuts), False, detail, select, visit)
                assert compiled == pure, (name, detail, visit)


def _layers_of(archive: Path) -> list[bytes]:
    """Return the uncompressed layer tars of a docker-archive or OCI tar."""
    out = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            f = tar.extractfile(member)
            assert f is not None
            data = f.read()
            plain = b"".join(uncompressed_chunks(io.BytesIO(data), member.name)) if data[:2] == b"\x1f\x8b" \
                or data[:4] == b"\x28\xb5\x2f\xfd" else data
            if len(plain) >= 1024 and len(plain) % 512 == 0:
                out.append(plain)
    return out


@needs_compiled
@pytest.mark.parametrize("archive", FIXTURES, ids=[p.name for p in FIXTURES])
def test_both_scanners_read_every_layer_of_the_fixtures_alike(archive):
    """Every layer of every fixture, whole and cut at odd places, scans the same both ways."""
    layers = _layers_of(archive)
    assert layers
    for data in layers:
        _both(data)
        _both(data, [1, 511, 513, 100_000, len(data) // 2, len(data) - 700])


# path-like names: the parts that decide how a name is normalised
NAMES = st.one_of(st.text(min_size=1, max_size=120), st.lists(
    st.sampled_from(["a", "bin", ".", "..", "", ".wh.x", ".wh..wh..opq", ".bashrc", "a\\..", "..\\b", "é",
                     "\udcff"]),
    min_size=1, max_size=6).map("/".join))

MEMBERS = st.lists(st.one_of(
    st.builds(lambda n, d: M(n, d), NAMES, st.binary(max_size=1500)),
    st.builds(lambda n, t: M(n, type=b"1", link=t), NAMES, NAMES),
    st.builds(lambda n: M(n, type=b"5"), st.text(min_size=1, max_size=30)),
    st.builds(lambda n, t: M(n, type=b"2", link=t), st.text(min_size=1, max_size=30), st.text(max_size=30)),
    st.builds(lambda n, t: M(n, type=b"1", link=t), st.text(min_size=1, max_size=30), st.text(max_size=30)),
    st.builds(lambda n, d, p: M(n, d, pax=p), st.text(min_size=1, max_size=30), st.binary(max_size=700),
              st.dictionaries(st.sampled_from(["path", "linkpath", "uid", "gid", "mtime", "size", "uname", "atime",
                                               "SCHILY.xattr.user.x", "GNU.sparse.size"]),
                              st.one_of(st.text(max_size=20), st.integers(0, 10**12).map(str),
                                        st.sampled_from(["1.5", "12.", "-3", "+4", " 7", "1e3", "9" * 40])),
                              max_size=3)),
    st.builds(lambda n, d: M(n, d, gnu_long=True), st.text(min_size=100, max_size=300), st.binary(max_size=600)),
    st.builds(lambda n, t: M(n, type=t), st.text(min_size=1, max_size=20), st.sampled_from([b"3", b"4", b"6", b"7",
                                                                                        b"V", b"g", b"\0"])),
), max_size=12)


@needs_compiled
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=MEMBERS, cuts=st.lists(st.integers(0, 20_000), max_size=6),
       flips=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), max_size=3), end=st.booleans())
def test_both_scanners_agree_on_random_tars(members, cuts, flips, end):
    """Random members (long names, PAX records good and bad, links, devices, odd types), some
    bytes changed, fed in random pieces: both scanners give the same entries, visits and errors."""
    data = bytearray(raw_tar(members, end=end))
    for at, value in flips:
        if at < len(data):
            data[at] = value
    _both(bytes(data), [c for c in cuts if c <= len(data)])


def test_a_member_whose_data_would_end_past_64_bits_is_a_truncated_layer_both_ways():
    """A PAX size of 40 digits (found by the test above): the member's span cannot be held in
    a 64-bit column, yet the scan gives the same result both ways, an error rather than an
    OverflowError (the stream ends long before such a member)."""
    data = raw_tar([M("0", b"", pax={"path": "0", "size": "9" * 40})], end=False)
    if COMPILED:
        _both(data)
    out = _scan(data, [], True, True, None)
    assert out["complete"] is False and out["spans"] == [0, (1 << 63) - 1]


@needs_compiled
@settings(max_examples=60, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=200), min_size=1, max_size=8),
       fmt=st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
       cuts=st.lists(st.integers(0, 30_000), max_size=4))
def test_both_scanners_agree_on_tars_python_writes(names, fmt, cuts):
    """Tars Python's tarfile writes in each format (GNU long names, PAX for what ustar cannot
    hold) scan the same both ways."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for i, name in enumerate(names):
            info = tarfile.TarInfo(name)
            info.size = i * 37
            info.mtime = 1_700_000_000 + i
            info.uid = 10**7 * i if fmt != tarfile.USTAR_FORMAT else i
            try:
                tar.addfile(info, io.BytesIO(bytes(info.size)))
            except ValueError:
                continue  # ustar cannot hold that name
    _both(out.getvalue(), cuts)


def _analysis(path: Path, args: tuple[str, ...]) -> tuple:
    limit = hostile.BOMB_LIMIT if "--max-layer-size" in args else None
    options = Options(policy=AnalysisPolicy(), jobs=1,
                      **({"max_layer_size": 50_000_000} if limit else {}))
    try:
        image = open_image(path, options)
        result = analyze(image)
        return ("ok", dumps(analysis_json(result, str(path), 20)),
                [(columns(layer).pack(), layer.facts) for layer in image.layers])
    except SlimmerError as err:
        return ("error", type(err).__name__, str(err))


@needs_compiled
@pytest.mark.parametrize("case", [c for c in CASES if not c.fifo], ids=lambda c: c.id)
def test_both_scanners_give_the_same_analysis_of_the_hostile_corpus(case, tmp_path, monkeypatch):
    """Each hostile archive gives the same analysis JSON (or the same error), the same columns
    and the same content facts with the compiled scanner and with SLIMMER_PURE=1."""
    archive = case.build(tmp_path)
    compiled = _analysis(archive, case.args)
    monkeypatch.setenv("SLIMMER_PURE", "1")
    assert not uses_compiled()
    assert _analysis(archive, case.args) == compiled


@needs_compiled
@pytest.mark.parametrize("archive", FIXTURES, ids=[p.name for p in FIXTURES])
def test_analyze_json_is_byte_identical_with_the_fallback(archive):
    """`slimmer analyze --json` prints the same bytes with the compiled scanner and with
    SLIMMER_PURE=1 (processes, worker processes and all)."""
    def run(pure: bool) -> bytes:
        env = dict(os.environ, SLIMMER_PURE="1" if pure else "0", PYTHONPATH=str(ROOT))
        done = subprocess.run([sys.executable, "-m", "slimmer", "analyze", "--no-cache", str(archive), "--json",
                               "--jobs", "2"], capture_output=True, env=env, check=True)
        return done.stdout

    compiled = run(False)
    assert json.loads(compiled)["sizes"]["file_count"] > 0
    assert run(True) == compiled


LAYER_PATHS = st.lists(st.tuples(
    st.lists(st.sampled_from(["a", "b", "c", ".wh.a", ".wh.b", ".wh..wh..opq", "d"]), min_size=1, max_size=4)
    .map("/".join), st.sampled_from(["file", "dir", "symlink"])), max_size=25)


@needs_compiled
@settings(max_examples=200, deadline=None)
@given(layers=st.lists(LAYER_PATHS, min_size=1, max_size=4))
def test_both_stacking_loops_merge_alike(layers):
    """Random layers (paths given twice, files over directories, whiteouts, opaque markers)
    merge to the same filesystem, the same shadowed versions and the same directories with the
    compiled stacking loop and with SLIMMER_PURE=1."""
    from slimmer.layers import merge
    from slimmer.model import Entry, Image, Layer

    image = Image(config={}, layers=tuple(
        Layer(f"sha256:{i}", f"sha256:{i}", 0, tuple(Entry(p, kind, 3 if kind == "file" else 0) for p, kind in entries))
        for i, entries in enumerate(layers)))

    def state():
        fs = merge(image)
        return (sorted((p, v.layer, v.index, v.entry) for p, v in fs.files()),
                [(s.path, s.layer, s.entry, s.by_layer, s.how) for s in fs.shadowed],
                sorted((d, fs.children(d)) for d in fs._dirs))

    old = os.environ.get("SLIMMER_PURE")
    try:
        os.environ["SLIMMER_PURE"] = "0"
        compiled = state()
        os.environ["SLIMMER_PURE"] = "1"
        assert state() == compiled
    finally:
        if old is None:
            os.environ.pop("SLIMMER_PURE", None)
        else:
            os.environ["SLIMMER_PURE"] = old


def _rich_image(tar_format: str):
    from builders import WHITEOUT, Dir, File, Hardlink, Symlink, image, layer

    deep = "/".join(f"dir{i:02d}" for i in range(12))  # past ustar's 100 characters
    return image(
        layer({"usr/bin/app": File(70_000, mode=0o755), "usr/lib/libx.so.1": 90_000,
               "usr/lib/libx.so": Symlink("libx.so.1"), "etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
               "var/lib/dpkg/status": b"Package: x\nVersion: 1\n\n", f"{deep}/file.txt": 200,
               "opt/é-unicode/ß.bin": 3_000, "app/.hidden": 10, "app/link": Hardlink("app/.hidden"),
               "app/static/a.css": b"body { color: red }\n" * 50, "tmp": Dir(mode=0o1777),
               "srv/big.bin": File(200_000, uid=10**6, gid=10**6, mtime=1_700_000_000)}, auto_dirs=True,
              tar_format=tar_format),
        layer({"usr/bin/app": File(80_000, mode=0o755), "etc/.wh.passwd": WHITEOUT, "opt/.wh..wh..opq": WHITEOUT,
               "opt/new": 5, f"{deep}/file.txt": 300}, auto_dirs=True, tar_format=tar_format))


@needs_compiled
@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("fmt", ["docker-legacy", "docker-oci", "oci-dir", "oci-tar"])
@pytest.mark.parametrize("tar_format", ["pax", "gnu", "ustar"])
def test_every_format_gives_the_same_analysis_both_ways(fmt, compression, tar_format, tmp_path, monkeypatch):
    """An image with long and non-ASCII names, links, whiteouts, an opaque directory, a package
    database and large ids, in every archive format, compression and tar flavour the builders
    write: the same analysis JSON, columns and facts with the compiled path and SLIMMER_PURE=1."""
    from builders import write

    try:
        archive = write(_rich_image(tar_format), tmp_path / "img", fmt, compression)
    except ValueError:
        pytest.skip(f"{tar_format} cannot hold this image")
    compiled = _analysis(archive, ())
    assert compiled[0] == "ok", compiled
    monkeypatch.setenv("SLIMMER_PURE", "1")
    assert _analysis(archive, ()) == compiled


def _slim_scan(archive: Path, args: tuple[str, ...] = ()) -> tuple:
    from slimmer.rewriter.facts import SlimPolicy

    bounded = {"max_layer_size": 50_000_000} if "--max-layer-size" in args else {}
    try:
        image = open_image(archive, Options(policy=SlimPolicy(), jobs=1, **bounded))
    except SlimmerError as err:
        return ("error", type(err).__name__, str(err))
    return ("ok", [(columns(layer).pack(), layer.facts) for layer in image.layers])


@needs_compiled
@pytest.mark.parametrize("fmt, compression", [("docker-legacy", "none"), ("oci-tar", "gzip"), ("oci-dir", "zstd")])
@pytest.mark.parametrize("tar_format", ["pax", "gnu", "ustar"])
def test_slim_facts_and_spans_are_the_same_both_ways(fmt, compression, tar_format, tmp_path, monkeypatch):
    """The scan slim asks for (its content facts and every member's span, where its header
    blocks start and its data ends) is the same with the compiled path and SLIMMER_PURE=1, and
    each span starts at the member's first header block and ends where the next one starts."""
    from builders import write

    try:
        archive = write(_rich_image(tar_format), tmp_path / "img", fmt, compression)
    except ValueError:
        pytest.skip(f"{tar_format} cannot hold this image")
    compiled = _slim_scan(archive)
    assert compiled[0] == "ok", compiled
    for packed, facts in compiled[1]:
        spans = array.array("q", facts["spans"][""])
        assert len(spans) == 2 * len(packed[0])
        starts, ends = spans[0::2], spans[1::2]
        assert all(start < end for start, end in zip(starts, ends))
        assert all(end <= start for end, start in zip(ends, starts[1:]))  # in order, never overlapping
    monkeypatch.setenv("SLIMMER_PURE", "1")
    assert _slim_scan(archive) == compiled


@needs_compiled
@pytest.mark.parametrize("case", [c for c in CASES if not c.fifo], ids=lambda c: c.id)
def test_both_scanners_give_the_same_slim_scan_of_the_hostile_corpus(case, tmp_path, monkeypatch):
    """Each hostile archive gives the same slim scan (columns, facts, spans) or the same error
    with the compiled scanner and with SLIMMER_PURE=1."""
    archive = case.build(tmp_path)
    compiled = _slim_scan(archive, case.args)
    monkeypatch.setenv("SLIMMER_PURE", "1")
    assert _slim_scan(archive, case.args) == compiled
