"""`slimmer export` and slimmer.exporter on well-formed images: the merged tree in every format,
agreement with umoci, modes, owners and times, the --devices/--setuid/--owners policy, --layer,
the destination rules, standard output, and a layer changed after the reader cached it."""

from __future__ import annotations

import functools
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from slimmer.errors import DigestMismatchError, OutputError, SlimmerError
from slimmer.exporter import ExportOptions, export
from slimmer.model import FILE, Entry, Image, Layer
from slimmer.reader import Options, open_image

import hostile
from builders import FORMATS, content, write
from hostile import D, F, H, M, S, docker, fingerprint, oci_dir, run_cli, temps_in, tree_of_dir, tree_of_tar


@pytest.fixture(autouse=True)
def cold_cache(tmp_path, monkeypatch):
    """Every test has a layer cache of its own."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


RICH_TREE = {
    "app": ("dir",), "app/cache": ("dir",), "app/cache/c": ("file", content(5)),
    "bin": ("dir",), "bin/sh": ("file", content(2000)), "bin/bash": ("file", content(2000)),
    "etc": ("dir",), "etc/os-release": ("file", b"ID=test\n"), "lib": ("dir",), "tmp": ("dir",),
    "usr": ("dir",), "usr/lib": ("symlink", "../lib"),
}


def _archive(tmp_path: Path, spec, fmt: str, compression: str = "none") -> Path:
    return write(spec, tmp_path / ("image" if fmt == "oci-dir" else "image.tar"), fmt, compression)


TO = [pytest.param("dir", id="to a directory"), pytest.param("tar", id="to a tar")]


@pytest.mark.parametrize("to", TO)
@pytest.mark.parametrize("fmt, compression", [
    pytest.param(f, c, id=f"{f} with {c} layers") for f in FORMATS for c in ("none", "gzip", "zstd")
    if not (f == "docker-legacy" and c != "none")])
def test_merged_tree_of_every_format(tmp_path, rich, fmt, compression, to):
    """Every archive format exports the same merged tree: whiteouts and opaque dirs applied, hardlinks kept."""
    img = open_image(_archive(tmp_path, rich, fmt, compression))
    dest = tmp_path / ("root.tar" if to == "tar" else "root")
    done = export(img, dest, ExportOptions(to=to))
    tree, links = tree_of_dir(dest) if to == "dir" else tree_of_tar(dest.read_bytes())
    assert tree == RICH_TREE
    assert links == {("bin/bash", "bin/sh")}
    assert (done.files, done.dirs, done.symlinks, done.hardlinks, done.bytes) == (3, 7, 1, 1, 2013)


# Layers written by hand, with what umoci must agree on: setuid bits, owners, odd modes,
# a fifo, hardlinks whose target is deleted or replaced, a dir replaced by a file and back.
TRICKY = [
    [D("bin"), F("bin/su", b"su", mode=0o4755), F("bin/data", b"d", mode=0o600, mtime=1_600_000_000),
     D("srv", mode=0o700, mtime=1_500_000_000), F("srv/a", b"aaa"), H("srv/b", "srv/a"), H("srv/c", "srv/a"),
     S("srv/link", "/etc/passwd"), M("srv/pipe", b"", b"6", mode=0o640), D("x"), F("x/in", b"in"), F("y", b"file"),
     D("o"), F("o/old", b"old")],
    [F("srv/.wh.a"), F("x", b"x is a file now"), D("y"), F("y/z", b"y is a dir now"),
     F("bin/data", b"new", mode=0o640)],
    [F("dup", b"1"), F("dup", b"2"), D("o"), F("o/.wh..wh..opq"), F("o/fresh", b"f")],
]


def _stat_tree(root: Path) -> dict:
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(base, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            what = (os.readlink(full) if stat.S_ISLNK(st.st_mode)
                    else Path(full).read_bytes() if stat.S_ISREG(st.st_mode) else None)
            mtime = None if stat.S_ISDIR(st.st_mode) else int(st.st_mtime)
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, mtime, what)
    return out


@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed")
@pytest.mark.parametrize("layers", [pytest.param(TRICKY, id="hand-made tricky layers"),
                                    pytest.param(None, id="the rich test image")])
def test_agrees_with_umoci_unpack(tmp_path, rich, layers):
    """A directory export (--owners --setuid) has the paths, kinds, modes, owners, mtimes and bytes umoci unpacks."""
    if layers is None:
        layout = write(rich, tmp_path / "layout", "oci-dir", "gzip")
        ref = f"{layout}:latest"
    else:
        layout = oci_dir(*layers)(tmp_path)
        _tag_latest(layout)
        ref = f"{layout}:latest"
    subprocess.run(["umoci", "raw", "unpack", "--image", ref, str(tmp_path / "umoci")], check=True,
                   capture_output=True)
    export(open_image(layout), tmp_path / "ours", ExportOptions(owners=True, setuid=True))
    assert _stat_tree(tmp_path / "ours") == _stat_tree(tmp_path / "umoci")
    assert tree_of_dir(tmp_path / "ours")[1] == tree_of_dir(tmp_path / "umoci")[1]


def _tag_latest(layout: Path) -> None:
    import json
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (layout / "index.json").write_text(json.dumps(index))


def _only(layers, tmp_path):
    """Return the image of one docker archive whose layers are lists of raw members."""
    return open_image(docker(*layers)(tmp_path))


POLICY = [M("dev/null", b"", b"3", mode=0o666, devmajor=1, devminor=3),
          M("dev/sda", b"", b"4", mode=0o660, devmajor=8, devminor=0),
          F("bin/su", b"su", mode=0o4755), F("bin/wall", b"w", mode=0o2755),
          F("bin/ping", b"p", mode=0o755, pax={"SCHILY.xattr.security.capability": b"\x01\x00\x00\x02",
                                              "SCHILY.xattr.user.note": b"kept"}),
          H("bin/su2", "bin/su"), H("dev/null2", "dev/null")]


@pytest.mark.parametrize("to", TO)
def test_devices_and_setid_bits_are_left_out_unless_asked(tmp_path, to):
    """By default device nodes (and hardlinks to them) are skipped, setuid/setgid bits and file
    capabilities cleared."""
    img = _only([[D("dev"), D("bin"), *POLICY]], tmp_path)
    dest = tmp_path / ("out.tar" if to == "tar" else "out")
    done = export(img, dest, ExportOptions(to=to))
    assert done.skipped_devices == ["dev/null", "dev/sda"]
    assert sorted(done.cleared_setid) == ["bin/su", "bin/wall"]
    if to == "dir":
        assert sorted(os.listdir(dest / "dev")) == []
        assert [stat.S_IMODE(os.lstat(dest / "bin" / n).st_mode) for n in ("su", "wall", "su2")] == [0o755] * 3
        return
    with tarfile.open(dest) as tf:
        members = {m.name: m for m in tf}
    assert sorted(members) == ["bin", "bin/ping", "bin/su", "bin/su2", "bin/wall", "dev"]
    assert (members["bin/su"].mode, members["bin/wall"].mode) == (0o755, 0o755)
    assert members["bin/ping"].pax_headers == {"SCHILY.xattr.user.note": "kept"}


@pytest.mark.parametrize("to", TO)
def test_devices_and_setid_bits_are_written_when_asked(tmp_path, to):
    """With --devices and --setuid, device nodes, setid bits and capabilities are written as the image has them."""
    img = _only([[D("dev"), D("bin"), *POLICY]], tmp_path)
    dest = tmp_path / ("out.tar" if to == "tar" else "out")
    done = export(img, dest, ExportOptions(to=to, devices=True, setuid=True))
    assert done.skipped_devices == [] and done.cleared_setid == []
    if to == "dir":
        st = os.lstat(dest / "dev" / "null")
        assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
        assert stat.S_ISBLK(os.lstat(dest / "dev" / "sda").st_mode)
        assert os.lstat(dest / "dev" / "null2").st_ino == st.st_ino
        assert stat.S_IMODE(os.lstat(dest / "bin" / "su").st_mode) == 0o4755
        assert stat.S_IMODE(os.lstat(dest / "bin" / "wall").st_mode) == 0o2755
        return
    with tarfile.open(dest) as tf:
        members = {m.name: m for m in tf}
    assert members["dev/null"].ischr() and (members["dev/null"].devmajor, members["dev/null"].devminor) == (1, 3)
    assert members["dev/null2"].islnk() and members["dev/null2"].linkname == "dev/null"
    assert members["bin/su"].mode == 0o4755
    assert "SCHILY.xattr.security.capability" in members["bin/ping"].pax_headers


@pytest.mark.parametrize("owners, expected", [(False, (0, 0)), (True, (1000, 2000))],
                         ids=["without --owners files belong to root", "with --owners files keep their owners"])
def test_owners_only_when_asked(tmp_path, owners, expected):
    """A directory export gives files their image owners only with --owners."""
    member = M("f", b"x", b"0", mode=0o644)
    raw = hostile.raw_tar([member])
    # uid 1000, gid 2000 written into the header by hand
    block = bytearray(raw[:512])
    block[108:116] = b"%07o\0" % 1000
    block[116:124] = b"%07o\0" % 2000
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    img = open_image(docker(hostile.Blob(bytes(block) + raw[512:], hostile.sha(bytes(block) + raw[512:])))(tmp_path))
    export(img, tmp_path / "out", ExportOptions(owners=owners))
    st = os.lstat(tmp_path / "out" / "f")
    assert (st.st_uid, st.st_gid) == expected


@pytest.mark.parametrize("owners", [pytest.param(False, id="without --owners it exports"),
                                    pytest.param(True, id="with --owners it is refused")])
def test_owner_beyond_any_uid(tmp_path, owners):
    """A PAX uid of 2**40 exports without --owners and is one clear error with it, never an OverflowError."""
    img = _only([[F("f", b"x", pax={"uid": str(1 << 40)})]], tmp_path)
    if owners:
        with pytest.raises(OutputError, match="not a valid uid:gid"):
            export(img, tmp_path / "out", ExportOptions(owners=True))
        assert not (tmp_path / "out").exists() and temps_in(tmp_path) == []
    else:
        export(img, tmp_path / "out")
        assert (tmp_path / "out" / "f").read_bytes() == b"x"


def test_owners_needs_root(tmp_path, monkeypatch):
    """--owners without root is refused before anything is written."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    img = _only([[F("f", b"x")]], tmp_path)
    with pytest.raises(OutputError, match="--owners needs root"):
        export(img, tmp_path / "out", ExportOptions(owners=True))
    assert not (tmp_path / "out").exists()


def test_layer_exports_one_layer_as_it_is(tmp_path, rich):
    """--layer N writes that layer's members alone, whiteout and opaque files included."""
    img = open_image(_archive(tmp_path, rich, "docker-oci"))
    export(img, tmp_path / "l2", ExportOptions(layer=2))
    tree, _ = tree_of_dir(tmp_path / "l2")
    assert tree == {"app": ("dir",), "app/.wh.big.bin": ("file", b""), "app/cache": ("dir",),
                    "app/cache/.wh..wh..opq": ("file", b""), "app/cache/c": ("file", content(5))}


@pytest.mark.parametrize("layer", [pytest.param(3, id="one past the last"), pytest.param(99, id="far past")])
def test_layer_out_of_range_is_refused(tmp_path, rich, layer):
    """A --layer the image does not have is an error naming the layers it has."""
    img = open_image(_archive(tmp_path, rich, "docker-oci"))
    with pytest.raises(SlimmerError, match=r"has no layer \d+: it has layers 0-2"):
        export(img, tmp_path / "out", ExportOptions(layer=layer))
    assert not (tmp_path / "out").exists() and temps_in(tmp_path) == []


def _setup_dest(tmp_path: Path, what: str) -> Path:
    dest = tmp_path / "dest"
    if what == "empty dir":
        dest.mkdir()
    elif what == "non-empty dir":
        dest.mkdir()
        (dest / "keep").write_text("mine")
    elif what == "file":
        dest.write_text("old")
    elif what == "symlink to a dir":
        (tmp_path / "elsewhere").mkdir()
        dest.symlink_to(tmp_path / "elsewhere")
    return dest


@pytest.mark.parametrize("what, to, error", [
    pytest.param("absent", "dir", None, id="a directory export creates an absent DEST"),
    pytest.param("empty dir", "dir", None, id="a directory export replaces an empty DEST directory"),
    pytest.param("non-empty dir", "dir", "the directory is not empty", id="a directory export refuses a full DEST"),
    pytest.param("file", "dir", "exists and is not a directory", id="a directory export refuses a DEST file"),
    pytest.param("symlink to a dir", "dir", "exists and is not a directory",
                 id="a directory export refuses a DEST symlink and does not follow it"),
    pytest.param("absent", "tar", None, id="a tar export creates an absent DEST"),
    pytest.param("file", "tar", "it exists", id="a tar export refuses a DEST file without --force"),
    pytest.param("empty dir", "tar", "it is a directory", id="a tar export refuses a DEST directory"),
])
def test_destination_rules(tmp_path, rich, what, to, error):
    """A directory DEST must be absent or empty; a tar DEST must be absent (without --force)."""
    img = open_image(_archive(tmp_path, rich, "docker-oci"))
    dest = _setup_dest(tmp_path, what)
    before = fingerprint(dest) if os.path.lexists(dest) else None
    if error:
        with pytest.raises(OutputError, match=error):
            export(img, dest, ExportOptions(to=to))
        assert (fingerprint(dest) if os.path.lexists(dest) else None) == before
        if what == "symlink to a dir":
            assert os.listdir(tmp_path / "elsewhere") == []
    else:
        export(img, dest, ExportOptions(to=to))
        tree = tree_of_dir(dest)[0] if to == "dir" else tree_of_tar(dest.read_bytes())[0]
        assert tree == RICH_TREE
    assert temps_in(tmp_path) == []


def test_missing_parent_is_an_error(tmp_path, rich):
    """A DEST whose directory does not exist is an error naming that directory."""
    img = open_image(_archive(tmp_path, rich, "docker-oci"))
    with pytest.raises(OutputError, match="does not exist"):
        export(img, tmp_path / "no" / "such" / "root")


def test_refuses_to_overwrite_its_input(tmp_path, rich):
    """A tar export over the archive it reads is refused and the archive is left alone."""
    archive = _archive(tmp_path, rich, "docker-oci")
    before = fingerprint(archive)
    with pytest.raises(OutputError, match="over the input archive"):
        export(open_image(archive), archive)
    assert fingerprint(archive) == before


@pytest.mark.parametrize("dest, kind", [
    pytest.param("-", "tar", id="- is a tar on stdout"), pytest.param("x.tar", "tar", id="a .tar name is a tar"),
    pytest.param("rootfs", "dir", id="another name is a directory"),
    pytest.param("x.tar.d", "dir", id="a name merely holding .tar is a directory")])
def test_auto_picks_tar_or_dir_from_dest(tmp_path, rich, dest, kind, monkeypatch):
    """--to auto writes a tar for - or a .tar name, else a directory."""
    monkeypatch.chdir(tmp_path)
    out = io.BytesIO()
    done = export(open_image(_archive(tmp_path, rich, "docker-oci")), dest, stdout=out)
    assert done.kind == kind
    if dest == "-":
        assert tree_of_tar(out.getvalue())[0] == RICH_TREE


def test_cli_writes_a_tar_to_stdout_identical_to_the_file(tmp_path, rich):
    """`slimmer export IMAGE -` writes on stdout the same bytes as a tar file export, and nothing else."""
    archive = _archive(tmp_path, rich, "docker-oci")
    piped = run_cli("export", archive, "-")
    to_file = run_cli("export", archive, tmp_path / "root.tar")
    assert (piped.code, piped.err, to_file.code) == (0, "", 0)
    assert piped.out == (tmp_path / "root.tar").read_bytes()


def test_cli_refuses_a_tar_on_a_terminal(tmp_path, rich):
    """`slimmer export IMAGE -` with standard output on a terminal is refused before reading anything."""
    archive = _archive(tmp_path, rich, "docker-oci")
    controller, terminal = os.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "slimmer", "export", str(archive), "-"], stdout=terminal,
                              stderr=subprocess.PIPE, text=True, check=False)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 2
    assert "(a tar) to a terminal" in done.stderr and done.stderr.count("\n") == 1


def test_cli_summary_and_warnings(tmp_path):
    """The CLI prints one summary line on stdout and one warning line per policy on stderr."""
    archive = docker([D("dev"), D("bin"), *POLICY])(tmp_path)
    run = run_cli("export", archive, tmp_path / "root")
    assert run.exc is None and run.code == 0
    assert run.out.decode() == (f"{tmp_path / 'root'}: 3 files (4 B), 2 directories, 0 symlinks, "
                                f"1 hardlinks, 0 other\n")
    assert run.err.splitlines() == [
        "slimmer: warning: skipped 2 device nodes (/dev/null, /dev/sda); use --devices to keep them",
        "slimmer: warning: cleared 2 setuid/setgid bits (/bin/su, /bin/wall); use --setuid to keep them",
    ]


def test_cli_error_is_one_line(tmp_path, rich):
    """An export the destination rules refuse is one `slimmer: error:` line and exit status 2."""
    archive = _archive(tmp_path, rich, "docker-oci")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    run = run_cli("export", archive, tmp_path / "full")
    assert run.exc is None and run.code == 2
    assert run.err == (f"slimmer: error: cannot write the export to {tmp_path / 'full'}: the directory is not empty "
                       f"(give --force to replace it)\n")


def test_a_layer_changed_after_caching_is_caught(tmp_path):
    """A blob edited in the middle after the layer cache saw it: analyze trusts the cache,
    export refuses to write it."""
    payload = b"A" * 400_000
    archive = docker([F("big", payload)])(tmp_path)
    assert run_cli("analyze", archive).code == 0  # fills the cache
    data = bytearray(archive.read_bytes())
    at = data.find(payload) + 200_000
    data[at:at + 6] = b"EVIL!!"
    archive.write_bytes(bytes(data))
    assert run_cli("analyze", archive).code == 0
    run = run_cli("export", archive, tmp_path / "root")
    assert run.exc is None and run.code == 2
    assert "changed since the image was opened" in run.err and run.err.count("\n") == 1
    assert not (tmp_path / "root").exists() and temps_in(tmp_path) == []


def test_a_layer_repeating_one_entry_object_writes_the_path_once(tmp_path):
    """A model layer listing the same Entry object twice (as a rewriter may build it) exports the path once."""
    tar = hostile.raw_tar([F("dup", b"same"), F("dup", b"same")])
    entry = Entry("dup", FILE, 4)
    layer = Layer(hostile.sha(tar), hostile.sha(tar), len(tar), (entry, entry),
                  opener=functools.partial(io.BytesIO, tar))
    img = Image(config={}, layers=(layer,))
    for to in ("dir", "tar"):
        done = export(img, tmp_path / f"out-{to}", ExportOptions(to=to))
        assert (done.files, done.bytes) == (1, 4)
    assert tree_of_dir(tmp_path / "out-dir")[0] == {"dup": ("file", b"same")}


def test_library_raises_digest_mismatch_for_a_changed_layer(tmp_path):
    """The library raises DigestMismatchError when a layer's stream no longer hashes to its diff_id."""
    payload = b"B" * 300_000
    archive = docker([F("big", payload)])(tmp_path)
    img = open_image(archive, Options())
    data = bytearray(archive.read_bytes())
    at = data.find(payload) + 100
    data[at] = ord("C")
    archive.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        export(img, tmp_path / "root.tar")
    assert not (tmp_path / "root.tar").exists()
