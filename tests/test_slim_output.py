"""What `slimmer slim` writes: archives that slimmer, skopeo and umoci accept; the new config and
history; metadata kept file by file (modes, owners, setuid, hard links, symlinks, mtimes, PAX
xattrs); byte-identical output with --reproducible; the input never touched; bytes accounted."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from slimmer.errors import OutputError, SlimmerError
from slimmer.layers import merge
from slimmer.model import HistoryStep, Image, Layer, with_layers
from slimmer.reader import open_image
from slimmer.rewriter.slim import SlimOptions, default_tags, reproducible_epoch, slim
from slimmer.rewriter.writer import write_docker_archive
from slimmer.tar.scan import TarScanner

from builders import WHITEOUT, Dir, File, Hardlink, Symlink, check_invariants, image, layer, layer_tar, write

REAL_TOOLS = bool(shutil.which("skopeo") and shutil.which("umoci"))
TOOLS = pytest.mark.skipif(not REAL_TOOLS, reason="needs skopeo and umoci")


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, f"{argv[0]} failed: {done.stderr}"
    return done.stdout


def skopeo_unpack(path: Path, fmt: str, where: Path) -> Path:
    """Copy the archive to an OCI layout with skopeo (which checks every digest), unpack that
    with umoci, and return the rootfs."""
    transport = "docker-archive" if fmt == "docker" else "oci-archive"
    layout = where / "skopeo-oci"
    _run(["skopeo", "copy", "-q", f"{transport}:{path}", f"oci:{layout}:img"])
    bundle = where / "bundle"
    _run(["umoci", "unpack", "--image", f"{layout}:img", str(bundle)])
    return bundle / "rootfs"


def check_output(path: Path, fmt: str, where: Path, compression: str = "gzip") -> tuple[Image, Path | None]:
    """Check an output the way the issue asks: slimmer reads it back, `skopeo inspect` accepts
    it, `skopeo copy` to an OCI layout verifies its digests, and umoci unpacks the OCI form
    (the archive itself when it is OCI with gzip layers: umoci 0.4.7 has no zstd). Return the
    image read back and the rootfs umoci unpacked (None for zstd)."""
    img = open_image(path)
    check_invariants(img)
    transport = "docker-archive" if fmt == "docker" else "oci-archive"
    inspected = json.loads(_run(["skopeo", "inspect", f"{transport}:{path}"]))
    assert inspected["Layers"] == [lay.digest for lay in img.layers]
    if fmt == "oci" and compression == "zstd":
        _run(["skopeo", "copy", "-q", f"{transport}:{path}", f"oci:{where / 'skopeo-oci'}:img"])
        return img, None
    if fmt == "oci":
        layout = where / "own-oci"
        with tarfile.open(path) as tf:
            tf.extractall(layout, filter="data")
        ref = json.loads((layout / "index.json").read_text())["manifests"][0]["annotations"][
            "org.opencontainers.image.ref.name"]
        _run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(where / "own-bundle")])
        _run(["skopeo", "copy", "-q", f"{transport}:{path}", f"oci:{where / 'skopeo-oci'}:img"])
        return img, where / "own-bundle" / "rootfs"
    return img, skopeo_unpack(path, fmt, where)


def slim_checked(img: Image, options: SlimOptions, out: Path, fmt: str = "docker", compression: str = "gzip"):
    """Run slim, then ``check_output`` on what it wrote (every output of these tests goes
    through slimmer's reader, skopeo and umoci); return slim's result."""
    result = slim(img, options, out, fmt, compression)
    if REAL_TOOLS:
        where = out.parent / (out.name + ".check")
        where.mkdir()
        check_output(out, fmt, where, compression)
        shutil.rmtree(where)
    return result


class Member:
    """A tar member of the slim layer and its bytes."""

    def __init__(self, info: tarfile.TarInfo, data: bytes | None):
        self.info, self.data = info, data

    def __getattr__(self, name):
        return getattr(self.info, name)


def members(img: Image) -> dict[str, Member]:
    """Return the members of a one-layer image by path (read with tarfile, bytes attached)."""
    assert len(img.layers) == 1
    out = {}
    with img.layers[0].opener() as f, tarfile.open(fileobj=f, mode="r|") as tf:
        for info in tf:
            data = tf.extractfile(info).read() if info.isreg() else None
            out[info.name.rstrip("/")] = Member(info, data)
    return out


# security.capability is a vfs_cap_data v2 granting cap_net_raw (bit 13), effective
XATTR = {"SCHILY.xattr.user.origin": "slimmer-test",
         "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12}


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """Return a PAX tar of hand-made members (what builders cannot express: devices, xattrs)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, kind=tarfile.REGTYPE, **attrs) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def raw_archive(path: Path, raw: bytes, entrypoint: list[str]) -> Path:
    """Write a one-layer image whose layer tar is ``raw``, through slimmer's writer."""
    scanner = TarScanner("raw layer")
    scanner.feed(raw)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    lay = Layer(diff_id=diff_id, digest=diff_id, stored_size=len(raw), entries=tuple(scanner.finish()),
                uncompressed_size=len(raw), opener=functools.partial(io.BytesIO, raw))
    config = image(entrypoint=entrypoint).config
    write_docker_archive(with_layers(Image(config=config, layers=(), tags=("test/raw:1",)), (lay,),
                                     (HistoryStep("ADD raw"),)), path)
    return path


def xattr_layer() -> bytes:
    """A layer holding a file with PAX extended attributes and a sub-second mtime."""
    ping = member("usr/bin/ping", mode=0o755, mtime=1_650_000_000.25, uname="root", gname="root",
                  pax_headers=dict(XATTR))
    return tar_of([(member("usr", tarfile.DIRTYPE), None), (member("usr/bin", tarfile.DIRTYPE), None),
                   (ping, b"\x7fELF-not-really")])


def metadata_image():
    """Every kind of metadata the slim layer must keep, spread over layers with whiteouts."""
    return image(
        layer({"bin": Dir(), "bin/tool": File(b"#!/bin/tool\n", mode=0o4755, uid=0, gid=0, mtime=1_500_000_000),
               "etc": Dir(mode=0o755), "etc/app.conf": File(b"a=1\n", mode=0o600, uid=1000, gid=2000, mtime=1_234),
               "data": Dir(mode=0o2770, uid=1000, gid=2000, mtime=99), "data/one": File(b"same bytes", mtime=7),
               "data/two": Hardlink("data/one"), "data/link": Symlink("one"), "data/abs": Symlink("/etc/app.conf"),
               "old": 30_000, "old2": Hardlink("old"), "docs": Dir(), "usr/share/doc/x/README": 5_000},
              auto_dirs=True, created_by="ADD base"),
        layer({"old": 10, "gone": 777}, created_by="RUN overwrite"),
        layer({".wh.gone": WHITEOUT}, created_by="RUN rm gone"),
        config={"config": {"Entrypoint": ["/bin/tool"], "Cmd": ["--serve"], "Env": ["PATH=/bin", "A=1"],
                           "WorkingDir": "/data", "ExposedPorts": {"80/tcp": {}},
                           "Labels": {"team": "x"}, "User": "1000", "Healthcheck": {"Test": ["CMD", "curl"]}}},
    )


@pytest.fixture
def meta_archive(tmp_path) -> Path:
    return write(metadata_image(), tmp_path / "in.tar", "docker-legacy")


@pytest.mark.parametrize("mode", ["prune", "distroless"])
def test_metadata_of_every_kept_path_is_kept(tmp_path, meta_archive, mode):
    """Modes, owners, setuid/setgid bits, mtimes, symlinks and hard links survive slimming."""
    slim_checked(open_image(meta_archive), SlimOptions(mode=mode, keep=("/data",)), tmp_path / "out.tar")
    got = members(open_image(tmp_path / "out.tar"))
    tool = got["bin/tool"]
    assert (tool.mode, tool.uid, tool.gid, tool.mtime, tool.data) == (0o4755, 0, 0, 1_500_000_000, b"#!/bin/tool\n")
    data = got["data"]
    assert (data.isdir(), data.mode, data.uid, data.gid, data.mtime) == (True, 0o2770, 1000, 2000, 99)
    assert got["data/two"].islnk() and got["data/two"].linkname == "data/one"
    assert got["data/link"].issym() and got["data/link"].linkname == "one"
    assert got["data/abs"].linkname == "/etc/app.conf"


def test_pax_extended_attributes_and_subsecond_mtimes_are_kept(tmp_path):
    """SCHILY.xattr records (file capabilities included) and a fractional mtime are copied."""
    archive = raw_archive(tmp_path / "in.tar", xattr_layer(), ["/usr/bin/ping"])
    slim_checked(open_image(archive), SlimOptions(mode="distroless", tzdata=False), tmp_path / "out.tar")
    ping = members(open_image(tmp_path / "out.tar"))["usr/bin/ping"]
    assert {k: v for k, v in ping.pax_headers.items() if k.startswith("SCHILY.xattr.")} == XATTR
    assert ping.mtime == 1_650_000_000.25
    assert (ping.uname, ping.gname, ping.data) == ("root", "root", b"\x7fELF-not-really")


def test_hard_link_whose_file_is_dropped_becomes_a_file(tmp_path):
    """A kept hard link to a dropped file is written as a regular file with its bytes; a second
    link to the same bytes links to that file."""
    spec = image(layer({"usr/share/doc/pkg/data.txt": b"shared bytes", "app/a": Hardlink("usr/share/doc/pkg/data.txt"),
                        "app/b": Hardlink("usr/share/doc/pkg/data.txt"), "app/run": File(b"x", mode=0o755)},
                       auto_dirs=True), entrypoint=["/app/run"])
    archive = write(spec, tmp_path / "in.tar", "docker-legacy")
    result = slim_checked(open_image(archive), SlimOptions(keep=("/app",)), tmp_path / "out.tar")
    got = members(open_image(tmp_path / "out.tar"))
    assert "usr/share/doc/pkg/data.txt" not in got
    assert got["app/a"].isreg() and got["app/a"].data == b"shared bytes"
    assert got["app/b"].islnk() and got["app/b"].linkname == "app/a"
    assert result.added_bytes == len(b"shared bytes")


def test_devices_and_fifos_are_copied_in_prune(tmp_path):
    """Prune keeps device nodes and FIFOs with their numbers and modes."""
    raw = tar_of([(member("dev", tarfile.DIRTYPE), None),
                  (member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), None),
                  (member("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660, gid=6), None),
                  (member("run.fifo", tarfile.FIFOTYPE, mode=0o600), None), (member("app", mode=0o755), b"x")])
    slim_checked(open_image(raw_archive(tmp_path / "in.tar", raw, ["/app"])), SlimOptions(), tmp_path / "out.tar")
    got = members(open_image(tmp_path / "out.tar"))
    assert (got["dev/null"].ischr(), got["dev/null"].devmajor, got["dev/null"].devminor) == (True, 1, 3)
    assert (got["dev/sda"].isblk(), got["dev/sda"].devmajor, got["dev/sda"].gid, got["dev/sda"].mode) == (
        True, 8, 6, 0o660)
    assert got["run.fifo"].isfifo()


def test_hard_link_across_layers_keeps_the_bytes_it_was_made_with(tmp_path):
    """A link to a lower layer's file that a later layer overwrote gets the old bytes, as a
    container would see them; a link to an unchanged lower file stays a link."""
    spec = image(layer({"a": b"old bytes", "c": b"stays", "run": File(b"x", mode=0o755)}),
                 layer({"b": Hardlink("a"), "d": Hardlink("c")}), layer({"a": b"new"}), entrypoint=["/run"])
    archive = write(spec, tmp_path / "in.tar", "docker-legacy")
    slim_checked(open_image(archive), SlimOptions(), tmp_path / "out.tar")
    got = members(open_image(tmp_path / "out.tar"))
    assert got["a"].data == b"new" and got["b"].isreg() and got["b"].data == b"old bytes"
    assert got["d"].islnk() and got["d"].linkname == "c"


def test_hard_link_to_a_dropped_symlink_becomes_that_symlink(tmp_path):
    """GNU tar may hard-link a symlink; when the symlink goes, the link is written as a copy of it."""
    raw = tar_of([(member("usr/share/doc/x/link", tarfile.SYMTYPE, linkname="../../../../app"), None),
                  (member("app", mode=0o755), b"x"),
                  (member("keep/link", tarfile.LNKTYPE, linkname="usr/share/doc/x/link"), None)])
    slim_checked(open_image(raw_archive(tmp_path / "in.tar", raw, ["/app"])), SlimOptions(keep=("/keep",)),
                 tmp_path / "out.tar")
    got = members(open_image(tmp_path / "out.tar"))
    assert "usr/share/doc/x/link" not in got
    assert got["keep/link"].issym() and got["keep/link"].linkname == "../../../../app"


def test_shadowed_bytes_are_flattened_away(tmp_path, meta_archive):
    """Overwritten and deleted versions leave no bytes: one layer, only final versions."""
    result = slim_checked(open_image(meta_archive), SlimOptions(keep=("/old",)), tmp_path / "out.tar")
    got = members(open_image(tmp_path / "out.tar"))
    assert got["old"].size == 10 and "gone" not in got
    shadowed = {c.category: c.bytes for c in result.by_category}["shadowed"]
    assert shadowed == 30_000 + 777


@TOOLS
@pytest.mark.parametrize("mode", ["prune", "distroless"])
@pytest.mark.parametrize("fmt, compression", [
    pytest.param("docker", "gzip", id="a docker archive"),
    pytest.param("oci", "gzip", id="an OCI archive with gzip layers"),
    pytest.param("oci", "zstd", id="an OCI archive with zstd layers"),
])
def test_real_tools_accept_the_output(tmp_path, meta_archive, mode, fmt, compression):
    """slimmer reads the output back; skopeo inspects and copies it (digests checked); umoci
    unpacks it (gzip) with the kept files in place."""
    slim(open_image(meta_archive), SlimOptions(mode=mode, keep=("/data",)), tmp_path / "out.tar", fmt, compression)
    img, rootfs = check_output(tmp_path / "out.tar", fmt, tmp_path, compression)
    assert img.tags == ("test/app:latest-slim",) or "test/app:latest-slim" in img.tags
    if rootfs is not None:
        assert (rootfs / "bin/tool").read_bytes() == b"#!/bin/tool\n"
        assert (rootfs / "data/two").stat().st_ino == (rootfs / "data/one").stat().st_ino


def test_config_keeps_the_runtime_settings_and_records_what_slimmer_did(tmp_path, meta_archive):
    """Entrypoint, Cmd, Env, WorkingDir, ExposedPorts and Labels stay; User is as asked; history
    ends with one step naming slimmer, the old steps kept as empty-layer steps."""
    before = open_image(meta_archive)
    slim_checked(before, SlimOptions(mode="distroless", user="nonroot"), tmp_path / "out.tar")
    after = open_image(tmp_path / "out.tar")
    cfg, old = after.config["config"], before.config["config"]
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "ExposedPorts", "Labels"):
        assert cfg[key] == old[key], key
    assert cfg["User"] == "65532:65532"
    assert "Healthcheck" not in cfg
    history = after.config["history"]
    assert [h.get("created_by") for h in history[:-1]] == [h.get("created_by") for h in before.config["history"]]
    assert all(h["empty_layer"] for h in history[:-1])
    assert history[-1]["created_by"].startswith("slimmer slim --mode distroless")
    assert "empty_layer" not in history[-1]
    assert after.config["rootfs"]["diff_ids"] == [after.layers[0].diff_id]


@pytest.mark.parametrize("tags, expected", [
    pytest.param(("test/app:latest",), ("test/app:latest-slim",), id="a tagged input gets -slim"),
    pytest.param(("localhost:5000/app",), ("localhost:5000/app:latest-slim",), id="a tag-less name gets latest-slim"),
    pytest.param((), (), id="an untagged input stays untagged"),
])
def test_default_tag_adds_slim(tags, expected):
    """The default output tag is the input's first tag with -slim."""
    assert default_tags(Image(config={}, layers=(), tags=tags)) == expected


@pytest.mark.parametrize("fmt, compression", [("docker", "gzip"), ("oci", "gzip"), ("oci", "zstd")],
                         ids=["docker archive", "OCI gzip", "OCI zstd"])
@pytest.mark.parametrize("how", ["--reproducible", "SOURCE_DATE_EPOCH"])
def test_reproducible_output_is_byte_identical(tmp_path, meta_archive, fmt, compression, how):
    """Two runs with a pinned epoch write byte-identical archives."""
    img = open_image(meta_archive)
    epoch = reproducible_epoch(img, None, True) if how == "--reproducible" else reproducible_epoch(img, "1700000000",
                                                                                                  False)
    outs = []
    for name in ("a.tar", "b.tar"):
        slim_checked(open_image(meta_archive), SlimOptions(mode="distroless", epoch=epoch), tmp_path / name, fmt,
                     compression)
        outs.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert outs[0] == outs[1]
    created = open_image(tmp_path / "a.tar").config["created"]
    assert created == ("1970-01-01T00:00:00Z" if how == "--reproducible" else "2023-11-14T22:13:20Z")


def test_the_input_is_never_touched_and_no_scratch_is_left(tmp_path, meta_archive):
    """Slimming leaves the input byte-identical and the output directory holds only the output."""
    digest = hashlib.sha256(meta_archive.read_bytes()).hexdigest()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    slim_checked(open_image(meta_archive), SlimOptions(), out_dir / "slim.tar")
    assert hashlib.sha256(meta_archive.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in out_dir.iterdir()) == ["slim.tar"]


def test_writing_over_the_input_is_refused(tmp_path, meta_archive):
    """-o naming the input archive is an error, and the input stays as it was."""
    digest = hashlib.sha256(meta_archive.read_bytes()).hexdigest()
    with pytest.raises(OutputError, match="slimmer never touches its input"):
        slim(open_image(meta_archive), SlimOptions(), meta_archive)
    assert hashlib.sha256(meta_archive.read_bytes()).hexdigest() == digest


def test_writing_into_an_input_layout_directory_is_refused(tmp_path):
    """-o inside the OCI layout directory being read is an error: the directory is left as it was."""
    layout = write(metadata_image(), tmp_path / "layout", "oci-dir")
    before = sorted(p.relative_to(layout) for p in layout.rglob("*"))
    with pytest.raises(OutputError, match="slimmer never touches its input"):
        slim(open_image(layout), SlimOptions(), layout / "slim.tar")
    assert sorted(p.relative_to(layout) for p in layout.rglob("*")) == before


def test_a_failed_write_leaves_no_output_and_no_scratch(tmp_path, meta_archive):
    """A layer that breaks mid-stream raises; nothing is left beside the output."""
    img = open_image(meta_archive)
    cut = layer_tar(metadata_image().layers[0])[:1500]
    bad = dataclasses.replace(img, layers=(dataclasses.replace(img.layers[0], opener=lambda: io.BytesIO(cut)),)
                              + img.layers[1:])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(SlimmerError):
        slim(bad, SlimOptions(mode="prune"), out_dir / "slim.tar")
    assert list(out_dir.iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs mounted for the test (skipped where mounting is not permitted)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_is_an_output_error_and_leaves_nothing(tmp_path, tiny_disk):
    """Running out of space raises OutputError (ENOSPC) and leaves the disk empty."""
    spec = image(layer({"app/run": File(3_000_000, mode=0o755)}), entrypoint=["/app/run"])
    archive = write(spec, tmp_path / "in.tar", "docker-legacy")
    with pytest.raises(OutputError, match="No space left on device"):
        slim(open_image(archive), SlimOptions(), tiny_disk / "slim.tar")
    assert os.listdir(tiny_disk) == []


@pytest.mark.parametrize("mode", ["prune", "distroless"])
def test_bytes_are_accounted_for(tmp_path, meta_archive, mode):
    """before - removed + added == after, and after equals the file bytes of the new layer."""
    result = slim_checked(open_image(meta_archive), SlimOptions(mode=mode), tmp_path / "out.tar")
    assert result.before_bytes - result.removed_bytes + result.added_bytes == result.after_bytes
    img = open_image(tmp_path / "out.tar")
    assert sum(v.entry.size for _p, v in merge(img).files()) == result.after_bytes


def _tree(path: Path) -> dict:
    """Return every final path of the archive at ``path`` with its entry fields and, for a
    file, the sha256 of its bytes (read through the verified re-stream)."""
    from slimmer.tar.restream import restream

    img = open_image(path)
    out = {p: tuple(v.entry[:8]) for p, v in merge(img).files()}
    for i, lay in enumerate(img.layers):
        digests = {}

        class Sink:
            def __init__(self, name, into):
                self.name, self.sha, self.into = name, hashlib.sha256(), into

            def write(self, data):
                self.sha.update(data)

            def end(self):
                self.into[self.name] = self.sha.hexdigest()

        restream(lay, lambda _i, entry, _h, into=digests: Sink(entry.path, into) if entry.kind == "file" else None,
                 f"layer {i}")
        for name, digest in digests.items():
            out[name] = out.get(name, ()) + (digest,)
    return out


def test_copying_runs_of_members_as_they_are_gives_the_tree_of_parsing_each(tmp_path):
    """The write pass copies runs of kept members byte for byte where the scan recorded where
    they lie (the CLI's path), and parses members it rewrites; the tree it writes is the one
    the member-by-member path writes: root-directory members, long names (PAX and GNU), hard
    links within and across layers, whiteouts and overwritten files alike."""
    from slimmer.reader import Options
    from slimmer.rewriter.facts import SlimPolicy
    from slimmer.rewriter.slim import SlimOptions

    long = "usr/share/app/" + "deep/" * 30 + "file.txt"
    spec = image(
        layer({".": Dir(), "usr/bin/tool": File(b"#!/bin/sh\necho hi\n", mode=0o755), long: b"long name",
               "usr/lib/liba.so": b"lib" * 1000, "usr/share/doc/tool/README": 5000, "etc/conf": b"a=1\n",
               "usr/bin/tool2": Hardlink("usr/bin/tool")}, auto_dirs=True),
        layer({".": Dir(), "usr/lib/liba.so": b"new lib" * 500, "usr/bin/link": Hardlink("usr/lib/liba.so"),
               "usr/bin/old": Hardlink("etc/conf"), "usr/share/" + "g/" * 60 + "x": b"gnu long",
               "etc/.wh.conf": WHITEOUT, "var/cache/apt/x.deb": 20_000}, auto_dirs=True, tar_format="gnu"),
        layer({"app/run": Symlink("/usr/bin/tool"), "app/data": b"data" * 300}, auto_dirs=True, tar_format="ustar"),
        config={"config": {"Entrypoint": ["/usr/bin/tool"]}})
    archive = write(spec, tmp_path / "in.tar", "docker-legacy")
    with_spans = open_image(archive, Options(policy=SlimPolicy()))
    assert all(lay.facts and "spans" in lay.facts for lay in with_spans.layers)
    options = SlimOptions(mode="prune", epoch=0)
    slim(with_spans, options, tmp_path / "spans.tar")
    slim(open_image(archive), options, tmp_path / "parsed.tar")
    assert _tree(tmp_path / "spans.tar") == _tree(tmp_path / "parsed.tar")
    kept = _tree(tmp_path / "spans.tar")
    assert long in kept and "usr/bin/link" in kept and "usr/share/doc/tool/README" not in kept
    if REAL_TOOLS:
        (tmp_path / "check").mkdir()
        check_output(tmp_path / "spans.tar", "docker", tmp_path / "check")


def test_a_layer_changed_after_the_scan_fails_the_span_copy_and_writes_nothing(tmp_path):
    """The byte-for-byte copy parses nothing, so a layer edited after the scan (same size) is
    caught by the digest check at the end of the re-stream: a DigestMismatchError naming the
    layer, and no output, not even a temp file."""
    from slimmer.errors import DigestMismatchError
    from slimmer.reader import Options
    from slimmer.rewriter.facts import SlimPolicy

    payload = b"P" * 300_000
    spec = image(layer({"usr/bin/app": File(b"#!/bin/sh\n", mode=0o755), "data/big": payload}, auto_dirs=True),
                 config={"config": {"Entrypoint": ["/usr/bin/app"]}})
    archive = write(spec, tmp_path / "in.tar", "docker-legacy")
    img = open_image(archive, Options(policy=SlimPolicy()))
    data = bytearray(archive.read_bytes())
    at = data.find(payload) + 1000
    data[at:at + 4] = b"EVIL"
    archive.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=r"layer 0 .*changed since the image was opened"):
        slim(img, SlimOptions(mode="prune"), tmp_path / "out.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tar"]


def _spread_image(tmp_path: Path) -> Path:
    """An archive of four layers whose kept members lie between dropped ones, before and after
    them (documentation, caches), with hard links within and across layers and files of
    several megabytes: what the read-ahead copy hands over in pieces and in whole chunks."""
    big = bytes(range(256)) * (5 << 12)  # 5 MiB, no two chunks alike
    spec = image(
        layer({f"usr/share/doc/pkg{i}/README": 3000 + i for i in range(40)}
              | {f"usr/lib/lib{i}.so": bytes([i]) * (700 + i) for i in range(40)}
              | {"usr/bin/app": File(b"#!/bin/sh\necho hi\n", mode=0o755)}, auto_dirs=True),
        layer({"usr/share/doc/huge/manual.pdf": 3 << 20, "usr/lib/late.so": b"late" * 100,
               "var/cache/apt/pkg.deb": 2 << 20, "usr/lib/last.so": b"last" * 10}, auto_dirs=True),
        layer({"opt/data/model.bin": big, "opt/data/model.link": Hardlink("opt/data/model.bin"),
               "usr/lib/lib3.link": Hardlink("usr/lib/lib3.so"), "usr/share/man/man1/app.1": 9000,
               "opt/data/tail.txt": b"tail"}, auto_dirs=True),
        layer({"etc/app.conf": b"x=1\n", "usr/share/doc/pkg0/README": 10}, auto_dirs=True),
        config={"config": {"Entrypoint": ["/usr/bin/app"]}})
    return write(spec, tmp_path / "spread.tar", "docker-legacy")


@pytest.mark.parametrize("budget", [None, 4096], ids=["default budget", "a 4 KiB budget"])
def test_reading_layers_ahead_writes_the_archive_reading_them_in_turn_writes(tmp_path, monkeypatch, budget):
    """With jobs, layers are read ahead on threads of their own (``SpanReader``), each holding
    the bytes it found for the copy until the copy gets there (at most its budget: a small one
    makes the readers wait); the archive is byte for byte the one a single thread writes."""
    from slimmer.reader import Options
    from slimmer.rewriter.facts import SlimPolicy
    from slimmer.tar.restream import SpanReader

    if budget is not None:
        monkeypatch.setattr(SpanReader, "BUDGET", budget)
    img = open_image(_spread_image(tmp_path), Options(policy=SlimPolicy()))
    assert all(lay.facts and "spans" in lay.facts for lay in img.layers)
    for jobs in (1, 2, 4):
        slim(img, SlimOptions(mode="prune", epoch=0, jobs=jobs), tmp_path / f"jobs{jobs}.tar")
    serial = (tmp_path / "jobs1.tar").read_bytes()
    assert (tmp_path / "jobs2.tar").read_bytes() == serial
    assert (tmp_path / "jobs4.tar").read_bytes() == serial
    kept = _tree(tmp_path / "jobs1.tar")
    assert {"usr/lib/late.so", "usr/lib/last.so", "opt/data/model.bin", "opt/data/tail.txt"} <= set(kept)
    assert not any(p.startswith(("usr/share/doc/", "var/cache/")) and fields[1] == "file" for p, fields in kept.items())


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("where", ["before", "after"], ids=["among the copied members", "after the last one"])
def test_a_later_layer_changed_after_the_scan_fails_the_copy_and_writes_nothing(tmp_path, jobs, where):
    """A layer read ahead while an earlier one is copied, edited after the scan (same size)
    in bytes the copy takes or in bytes it only hashes: a DigestMismatchError naming that
    layer, and no output, not even a temp file."""
    from slimmer.errors import DigestMismatchError
    from slimmer.reader import Options
    from slimmer.rewriter.facts import SlimPolicy

    archive = _spread_image(tmp_path)
    img = open_image(archive, Options(policy=SlimPolicy()))
    data = bytearray(archive.read_bytes())
    marker = b"late" * 100 if where == "before" else b"last" * 10
    at = data.find(marker)
    assert at > 0
    data[at:at + 4] = b"EVIL"
    archive.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=r"layer 1 .*changed since the image was opened"):
        slim(img, SlimOptions(mode="prune", jobs=jobs), tmp_path / "slim.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spread.tar"]
