"""A corpus of hostile and broken image archives, built in code, each with the exact outcome
every command must give.

A case builds its archive from bytes it controls completely: tar headers are written by hand
here (``raw_tar``), so names with ``..``, NUL bytes, invalid UTF-8, bad checksums or lying size
fields are possible. ``Case.analyze`` / ``Case.export`` / ``Case.slim`` say what must happen:
``OK(...)`` (and what the result must hold) or ``Fail(fragment)``: exit 2 with exactly one
stderr line ``slimmer: error: ...`` containing ``fragment``; ``Case.distroless`` and ``Case.diff``
do the same for ``slim --mode distroless`` and ``diff``. ``Case.shown``, ``paged`` and ``warned``
are what analyze's table, its HTML report and export's warnings must show of the image's strings
(escaped), ``Case.exact`` what analyze's JSON must hold exactly. ``test_hostile.py`` runs them,
and checks that no run puts a raw control character on standard output or standard error.

``OUTSIDE`` is a directory outside every export destination (one per test process); members
point symlinks at it, and the test checks that nothing ever appears in it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zstandard

from builders import host_platform

OUTSIDE = f"/tmp/slimmer-outside-{os.getpid()}"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {"none": "application/vnd.oci.image.layer.v1.tar",
               "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}
BOMB_LIMIT = "50MB"


# ---- raw tar members -----------------------------------------------------------------------


@dataclass(frozen=True)
class M:
    """One raw tar member. ``type`` is the typeflag byte; ``pax`` adds a PAX header before it;
    ``gnu_long`` puts the name in a GNU ``L`` header; ``size`` overrides the size field."""

    name: str | bytes
    data: bytes = b""
    type: bytes = b"0"
    link: str | bytes = b""
    mode: int = 0o644
    pax: dict | None = None
    gnu_long: bool = False
    size: int | None = None
    mtime: int = 0
    devmajor: int = 0
    devminor: int = 0


def _b(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def header(name: bytes, typeflag: bytes, size: int, *, link: bytes = b"", mode: int = 0o644, mtime: int = 0,
           size_field: bytes | None = None, devmajor: int = 0, devminor: int = 0, checksum_delta: int = 0) -> bytes:
    """Return one 512-byte ustar header with a correct checksum (plus ``checksum_delta``)."""
    block = bytearray(512)
    block[0:100] = name[:100].ljust(100, b"\0")
    block[100:108] = b"%07o\0" % mode
    block[108:116] = b"%07o\0" % 0
    block[116:124] = b"%07o\0" % 0
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[136:148] = b"%011o\0" % mtime
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157:257] = link[:100].ljust(100, b"\0")
    block[257:265] = b"ustar\x0000"
    block[329:337] = b"%07o\0" % devmajor
    block[337:345] = b"%07o\0" % devminor
    chk = sum(block) + checksum_delta
    block[148:156] = b"%06o\0 " % chk
    return bytes(block)


def fix_checksum(block: bytes) -> bytes:
    """Return a 512-byte header block with its checksum field recomputed."""
    b = bytearray(block)
    b[148:156] = b" " * 8
    b[148:156] = b"%06o\0 " % sum(b)
    return bytes(b)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def pax_records(records: dict) -> bytes:
    out = b""
    for key, value in records.items():
        body = b" " + _b(key) + b"=" + _b(value) + b"\n"
        n = len(body) + 1
        while len(str(n).encode()) + len(body) != n:
            n = len(str(n).encode()) + len(body)
        out += str(n).encode() + body
    return out


def raw_tar(members: list[M], end: bool = True, headers: list[int] | None = None) -> bytes:
    """Return a tar stream of ``members`` exactly as described, hostile or not; the offset of
    every header block written is appended to ``headers`` if given."""
    out = io.BytesIO()
    seen = headers if headers is not None else []
    for m in members:
        name = _b(m.name)
        if m.pax:
            recs = pax_records(m.pax)
            seen.append(out.tell())
            out.write(header(b"././@PaxHeader", b"x", len(recs)) + _pad(recs))
        if m.gnu_long:
            seen.append(out.tell())
            out.write(header(b"././@LongLink", b"L", len(name) + 1) + _pad(name + b"\0"))
        size = len(m.data)
        size_field = None if m.size is None else b"%011o\0" % m.size
        seen.append(out.tell())
        out.write(header(name, m.type, size, link=_b(m.link), mode=m.mode, mtime=m.mtime, size_field=size_field,
                         devmajor=m.devmajor, devminor=m.devminor))
        out.write(_pad(m.data))
    if end:
        out.write(b"\0" * 1024)
    return out.getvalue()


def F(name, data: bytes = b"", **kw) -> M:
    return M(name, data, b"0", **kw)


def D(name, **kw) -> M:
    return M(name, b"", b"5", mode=kw.pop("mode", 0o755), **kw)


def S(name, target, **kw) -> M:
    return M(name, b"", b"2", link=target, mode=0o777, **kw)


def H(name, target, **kw) -> M:
    return M(name, b"", b"1", link=target, **kw)


# ---- blobs and archives --------------------------------------------------------------------


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """A stored layer blob and the diff_id the config will claim for it."""

    stored: bytes
    diff_id: str
    compression: str = "none"


def blob(tar: bytes, compression: str = "none", mutate: Callable[[bytes], bytes] | None = None) -> Blob:
    """Return ``tar`` stored with ``compression``, then passed through ``mutate``."""
    if compression == "gzip":
        stored = gzip.compress(tar, mtime=0)
    elif compression == "zstd":
        stored = zstandard.ZstdCompressor(write_checksum=True).compress(tar)
    else:
        stored = tar
    return Blob(mutate(stored) if mutate else stored, sha(tar), compression)


def config_for(blobs: list[Blob]) -> dict:
    os_name, arch = host_platform().split("/")[:2]
    return {"architecture": arch, "os": os_name, "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in blobs]},
            "history": [{"created_by": f"layer {i}"} for i in range(len(blobs))]}


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def docker_files(blobs: list[Blob], *, config: bytes | dict | None = None, manifest: bytes | list | None = None,
                 config_name: str | None = None, layer_names: list[str] | None = None) -> dict[str, bytes]:
    """Return the members of a Docker 25 style ``docker save`` archive (blobs/sha256 names);
    ``config_name`` and ``layer_names`` replace the names the manifest lists (not the stored ones)."""
    cfg = config if isinstance(config, bytes) else _json(config if config is not None else config_for(blobs))
    files = {"blobs/sha256/" + sha(cfg)[7:]: cfg}
    stored = ["blobs/sha256/" + sha(b.stored)[7:] for b in blobs]
    for name, b in zip(stored, blobs):
        files[name] = b.stored
    if manifest is None:
        manifest = [{"Config": config_name or "blobs/sha256/" + sha(cfg)[7:], "RepoTags": ["hostile/case:latest"],
                     "Layers": layer_names or stored}]
    files["manifest.json"] = manifest if isinstance(manifest, bytes) else _json(manifest)
    return files


def oci_files(blobs: list[Blob], *, index: bytes | dict | None = None, manifest: dict | None = None,
              layer_digests: list[str] | None = None) -> dict[str, bytes]:
    """Return the files of an OCI image layout for ``blobs``."""
    cfg = _json(config_for(blobs))
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "blobs/sha256/" + sha(cfg)[7:]: cfg}
    digests = layer_digests or [sha(b.stored) for b in blobs]
    for d, b in zip(digests, blobs):
        files["blobs/sha256/" + d[7:]] = b.stored
    if manifest is None:
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                    "config": {"mediaType": CONFIG_TYPE, "digest": sha(cfg), "size": len(cfg)},
                    "layers": [{"mediaType": LAYER_TYPES[b.compression], "digest": d, "size": len(b.stored)}
                               for d, b in zip(digests, blobs)]}
    mdata = _json(manifest)
    files["blobs/sha256/" + sha(mdata)[7:]] = mdata
    if index is None:
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPE,
                 "manifests": [{"mediaType": MANIFEST_TYPE, "digest": sha(mdata), "size": len(mdata)}]}
    files["index.json"] = index if isinstance(index, bytes) else _json(index)
    return files


def write_tar(files: dict[str, bytes], path: Path, cut: int | None = None) -> Path:
    """Write ``files`` as a plain tar archive at ``path`` (its first ``cut`` bytes, if given)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    path.write_bytes(data if cut is None else data[:cut])
    return path


def write_dir(files: dict[str, bytes], path: Path) -> Path:
    for name, data in files.items():
        full = path / name
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
    return path


def docker(*layers: list[M] | Blob, **kw) -> Callable[[Path], Path]:
    """A builder of a ``docker save`` tar whose layers are raw members (or ready blobs)."""
    def build(where: Path) -> Path:
        blobs = [x if isinstance(x, Blob) else blob(raw_tar(x)) for x in layers]
        return write_tar(docker_files(blobs, **kw), where / "image.tar")
    return build


def oci_dir(*layers: list[M] | Blob, **kw) -> Callable[[Path], Path]:
    def build(where: Path) -> Path:
        blobs = [x if isinstance(x, Blob) else blob(raw_tar(x)) for x in layers]
        return write_dir(oci_files(blobs, **kw), where / "layout")
    return build


# ---- expected outcomes ---------------------------------------------------------------------


@dataclass(frozen=True)
class OK:
    """Success. ``tree``: the exact exported filesystem, path -> ("file", bytes) | ("dir",) |
    ("symlink", target) | ("fifo",); ``links``: groups of paths that must share an inode
    (a hardlink in the tar); ``files``: the file count analyze must report."""

    tree: dict | None = None
    links: tuple[tuple[str, ...], ...] = ()
    files: int | None = None
    dir_fails: str | None = None  # a directory export fails with this, a tar export succeeds


@dataclass(frozen=True)
class Fail:
    """Exit status 2 and one stderr line ``slimmer: error: ...`` holding ``fragment``."""

    fragment: str


SAME = object()  # slim: the same outcome as analyze (with a readable output on success)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], Path]
    analyze: OK | Fail
    export: OK | Fail | None = None  # None: the same as analyze
    slim: object = SAME
    args: tuple[str, ...] = ()
    reader_bug: str | None = None  # a known reader bug: the case is an xfail(strict) until fixed
    bug_in: tuple[str, ...] = ("analyze", "export", "slim")  # the commands the reader bug shows in
    fifo: bool = False  # the archive is fed through a named pipe
    skip_slim: str | None = None  # why running slim on this case is not safe yet
    distroless: object = SAME  # slim --mode distroless: SAME as slim unless given
    diff: object = SAME  # diff of a benign image with this one: SAME as analyze unless given
    shown: tuple[str, ...] = ()  # what analyze's table must show (escaped strings)
    paged: tuple[str, ...] = ()  # what analyze's HTML report must show (escaped strings)
    warned: tuple[str, ...] = ()  # what export's warnings on stderr must show
    exact: tuple[tuple[str, object], ...] = ()  # analyze --json: key path ("image.tags") -> exact value
    seconds: float = 30.0  # every command on the case finishes within this (a loaded 2-core CI machine)
    memory_mb: int = 1024  # and grows the address space by at most this much

    @property
    def export_outcome(self) -> OK | Fail:
        return self.export if self.export is not None else self.analyze

    @property
    def slim_outcome(self) -> OK | Fail:
        return self.analyze if self.slim is SAME else self.slim

    @property
    def distroless_outcome(self) -> OK | Fail:
        return self.slim_outcome if self.distroless is SAME else self.distroless

    @property
    def diff_outcome(self) -> OK | Fail:
        return self.analyze if self.diff is SAME else self.diff


def _file(data: bytes):
    return ("file", data)


DIRX = ("dir",)
NO_EARLIER = Fail("which no earlier member holds")  # slim's words for a hardlink to nothing


# ---- builders for the cases that need more than a list of members --------------------------


def _manifest_files(manifest: bytes) -> Callable[[Path], Path]:
    def build(where: Path) -> Path:
        return write_tar(docker_files([blob(raw_tar([F("a", b"x")]))], manifest=manifest), where / "image.tar")
    return build


def _config(cfg: bytes | dict) -> Callable[[Path], Path]:
    def build(where: Path) -> Path:
        return write_tar(docker_files([blob(raw_tar([F("a", b"x")]))], config=cfg), where / "image.tar")
    return build


def _huge_manifest(where: Path) -> Path:
    path = where / "image.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("manifest.json")
        info.size = (64 << 20) + 1
        tf.addfile(info, _Zeros(info.size))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        buf[:n] = b" " * n
        self.left -= n
        return n


def _with_config(change: Callable[[dict], None]) -> Callable[[Path], Path]:
    """A one-layer docker archive whose (otherwise valid) config ``change`` edits."""
    def build(where: Path) -> Path:
        blobs = [blob(raw_tar([F("a", b"x")]))]
        cfg = config_for(blobs)
        change(cfg)
        return write_tar(docker_files(blobs, config=cfg), where / "image.tar")
    return build


def _config_text(replace: tuple[str, str]) -> Callable[[Path], Path]:
    """A one-layer docker archive whose config JSON has ``replace[0]`` replaced by ``replace[1]``
    (for what json.dumps cannot write: NaN, Infinity)."""
    def build(where: Path) -> Path:
        blobs = [blob(raw_tar([F("a", b"x")]))]
        cfg = config_for(blobs)
        cfg["config"]["Labels"] = {"v": "PLACEHOLDER"}
        text = _json(cfg).replace(b'"PLACEHOLDER"', replace[1].encode()) if replace[0] == "label" else \
            _json(cfg).replace(replace[0].encode(), replace[1].encode())
        return write_tar(docker_files(blobs, config=text), where / "image.tar")
    return build


def _device(major: int, minor: int = 0) -> Callable[[Path], Path]:
    """A layer with a character device whose major number needs GNU base-256 (no octal fits)."""
    def build(where: Path) -> Path:
        h = bytearray(header(b"dev/big", b"3", 0))
        h[329:337] = b"\x80" + major.to_bytes(7, "big") if major >= 1 << 21 else b"%07o\0" % major
        h[337:345] = b"%07o\0" % minor
        tar = header(b"dev", b"5", 0) + fix_checksum(h) + header(b"app", b"0", 1) + _pad(b"x") + b"\0" * 1024
        return write_tar(docker_files([blob(tar)]), where / "image.tar")
    return build


def skippable(payload: bytes = b"pzstd!") -> bytes:
    """Return a zstd skippable frame (RFC 8878 3.1.2), as pzstd writes one first."""
    return (0x184D2A50).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


def _zstd_with_skippable(where: Path) -> Path:
    tar = raw_tar([D("etc"), F("etc/motd", b"hello\n"), F("etc/big", _incompressible(70_000))])
    frames = zstandard.ZstdCompressor(write_checksum=True).compress(tar[:5120])
    rest = zstandard.ZstdCompressor(write_checksum=True).compress(tar[5120:])
    stored = skippable() + frames + skippable(b"between") + rest
    return write_tar(docker_files([Blob(stored, sha(tar), "zstd")]), where / "image.tar")


DEEP = "/".join(["d"] * 1000) + "/leaf"  # 1,000 components, 2,004 bytes: under PATH_MAX
DEEPER = "/".join(["e"] * 3000) + "/leaf"  # 3,000 components: a path no system call could take whole


def _thousand_layers(where: Path) -> Path:
    layers = []
    for i in range(1000):
        members = [F(f"f{i:04d}", b"%d" % i)]
        if i % 10 == 9:
            members.append(F(f".wh.f{i - 1:04d}"))
        layers.append(blob(raw_tar(members)))
    return write_tar(docker_files(layers), where / "image.tar")


def _thousand_tree() -> dict:
    tree = {}
    for i in range(1000):
        tree[f"f{i:04d}"] = _file(b"%d" % i)
        if i % 10 == 9:
            del tree[f"f{i - 1:04d}"]
    return tree


def _truncated_archive(where: Path) -> Path:
    layer = blob(raw_tar([F("big", b"y" * 20_000)]))
    files = docker_files([layer])
    # the manifest first, so that the cut falls in the layer, as in a half-copied docker save
    files = {"manifest.json": files.pop("manifest.json"), **files}
    full = write_tar(files, where / "full.tar")
    with tarfile.open(full) as tf:
        info = tf.getmember("blobs/sha256/" + sha(layer.stored)[7:])
    full.unlink()
    return write_tar(files, where / "image.tar", cut=info.offset_data + info.size // 2)


def _outer_member_climbs(where: Path) -> Path:
    files = docker_files([blob(raw_tar([F("a", b"x")]))])
    files["../evil"] = b"boom"
    return write_tar(files, where / "image.tar")


def _blob_symlink_out(where: Path) -> Path:
    b = blob(raw_tar([F("a", b"x")]))
    root = write_dir(oci_files([b]), where / "layout")
    outside = where / "secret"
    outside.write_bytes(b.stored)
    target = root / "blobs" / "sha256" / sha(b.stored)[7:]
    target.unlink()
    target.symlink_to(outside)
    return root


def _nested_indexes(where: Path) -> Path:
    b = blob(raw_tar([F("a", b"x")]))
    files = oci_files([b])
    index = json.loads(files["index.json"])
    for _ in range(10):
        data = _json(index)
        files["blobs/sha256/" + sha(data)[7:]] = data
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPE,
                 "manifests": [{"mediaType": INDEX_TYPE, "digest": sha(data), "size": len(data)}]}
    files["index.json"] = _json(index)
    return write_dir(files, where / "layout")


def _oci_index(index: bytes | dict) -> Callable[[Path], Path]:
    def build(where: Path) -> Path:
        return write_dir(oci_files([blob(raw_tar([F("a", b"x")]))], index=index), where / "layout")
    return build


def _digest_mismatch(where: Path) -> Path:
    b = blob(raw_tar([F("a", b"x")]))
    fake = sha(b"something else")
    return write_dir(oci_files([b], layer_digests=[fake]), where / "layout")


def _diff_id_mismatch(where: Path) -> Path:
    b = blob(raw_tar([F("a", b"x")]))
    return write_tar(docker_files([Blob(b.stored, sha(b"not this"))]), where / "image.tar")


def _cut(n: int) -> Callable[[bytes], bytes]:
    return lambda data: data[:n]


def _then_half_frame(data: bytes) -> bytes:
    pad = zstandard.ZstdCompressor(write_checksum=True).compress(b"\0" * 100_000)
    return data + pad[: len(pad) // 2]


def _flip(at: float) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        i = int(len(data) * at)
        return data[:i] + bytes([data[i] ^ 0x55]) + data[i + 1:]
    return mutate


def _incompressible(n: int) -> bytes:
    return hashlib.shake_256(b"hostile").digest(n)


BOMB_GB = 4


def zstd_bomb(total: int = BOMB_GB << 30) -> bytes:
    """Return a small zstd stream of a tar holding one file of ``total`` zero bytes: frames of
    64 MiB of zeros repeated (the reader reads across frames)."""
    cctx = zstandard.ZstdCompressor(level=3)
    chunk = 64 << 20
    zeros = cctx.compress(b"\0" * chunk)
    head = cctx.compress(raw_tar([M("bomb", b"", b"0", size=total)], end=False)[:512])
    return head + zeros * (total // chunk) + cctx.compress(b"\0" * 1024)


def gzip_bomb(total: int = BOMB_GB << 30) -> bytes:
    chunk = 64 << 20
    zeros = gzip.compress(b"\0" * chunk, compresslevel=9, mtime=0)
    head = gzip.compress(raw_tar([M("bomb", b"", b"0", size=total)], end=False)[:512], mtime=0)
    return head + zeros * (total // chunk) + gzip.compress(b"\0" * 1024, mtime=0)


def sparse_bomb(real: int) -> bytes:
    """Return a tar of one old-GNU sparse member claiming ``real`` bytes, with no data at all."""
    h = bytearray(header(b"hole", b"S", 0))
    h[483:495] = b"%011o\0" % real
    return fix_checksum(h) + b"\0" * 1024


def _bomb(make: Callable[[], bytes], compression: str) -> Callable[[Path], Path]:
    def build(where: Path) -> Path:
        return write_tar(docker_files([Blob(make(), sha(b"unknowable"), compression)]), where / "image.tar")
    return build


def _empty_dir(where: Path) -> Path:
    (where / "emptydir").mkdir()
    return where / "emptydir"


def _empty_file(where: Path) -> Path:
    (where / "empty.tar").write_bytes(b"")
    return where / "empty.tar"


def _fifo(where: Path) -> Path:
    """The archive to feed through the pipe; the test makes the FIFO and a writer thread."""
    return write_tar(docker_files([blob(raw_tar([D("etc"), F("etc/motd", b"hi\n")]))]), where / "image.tar")


def configured(*layers: list[M], config: dict | None = None, history: list | None = None,
               tags: list | None = None) -> Callable[[Path], Path]:
    """A builder of a ``docker save`` tar whose config's ``config`` gets ``config`` (Entrypoint,
    User, Labels...), whose history is ``history`` and whose RepoTags are ``tags``, if given."""
    def build(where: Path) -> Path:
        blobs = [blob(raw_tar(x)) for x in layers]
        cfg = config_for(blobs)
        cfg["config"].update(config or {})
        if history is not None:
            cfg["history"] = history
        files = docker_files(blobs, config=cfg)
        if tags is not None:
            manifest = json.loads(files["manifest.json"])
            manifest[0]["RepoTags"] = tags
            files["manifest.json"] = _json(manifest)
        return write_tar(files, where / "image.tar")
    return build


def _devnull(where: Path) -> Path:
    return Path("/dev/null")


def _missing(where: Path) -> Path:
    return where / "no-such-archive.tar"


# ---- the corpus ----------------------------------------------------------------------------

ABS_ESCAPE = OUTSIDE
OSC = "\x1b]0;PWNED\x07"  # sets the terminal's title
CSI = "\x1b[2J"  # clears the screen
C1_CSI = "\u009b31m"  # the one-character CSI of C1 (red text on terminals that take it)
LONG = "/".join(["d" * 50] * 6) + "/leaf"  # 305 characters, deeper than ustar can name
TOO_LONG_COMPONENT = "n" * 300

CASES: list[Case] = [
    # -- member names
    Case("a member named ../evil is refused",
         docker([F("../evil", b"boom")]), Fail("points outside the root")),
    Case("a member climbing out mid-path (a/../../evil) is refused",
         docker([D("a"), F("a/../../evil", b"boom")]), Fail("points outside the root")),
    Case("an absolute member name lands inside the root",
         docker([F("/etc/motd", b"hello")]), OK({"etc": DIRX, "etc/motd": _file(b"hello")}, files=1)),
    Case("a member named /../x is refused",
         docker([F("/../x", b"boom")]), Fail("points outside the root")),
    Case("a NUL byte in a PAX path is refused",
         docker([F("safe", b"x", pax={"path": b"a\0b"})]), Fail("NUL")),
    Case("a name that is not UTF-8 is kept byte for byte",
         docker([F(b"caf\xe9", b"latin-1")]), OK({"caf\udce9": _file(b"latin-1")}, files=1)),
    Case("a 305-character PAX path is exported whole",
         docker([F("x", b"deep", pax={"path": LONG})]),
         OK({**{"/".join(["d" * 50] * n): DIRX for n in range(1, 7)}, LONG: _file(b"deep")}, files=1)),
    Case("a GNU long name is exported whole",
         docker([F(LONG, b"gnu", gnu_long=True)]),
         OK({**{"/".join(["d" * 50] * n): DIRX for n in range(1, 7)}, LONG: _file(b"gnu")}, files=1)),
    Case("a name component longer than NAME_MAX fails a directory export only",
         docker([F("x", b"long", pax={"path": TOO_LONG_COMPONENT})]),
         OK({TOO_LONG_COMPONENT: _file(b"long")}, files=1, dir_fails="File name too long")),
    Case("a path twice in one layer: the later member wins",
         docker([F("dup", b"first"), F("dup", b"second")]), OK({"dup": _file(b"second")}, files=1)),
    Case("a file then a member below it in one layer: the file becomes a directory",
         docker([F("a", b"file"), F("a/b", b"below")]), OK({"a": DIRX, "a/b": _file(b"below")}, files=1)),
    Case("a directory then a file of the same name: the file replaces the tree",
         docker([D("a"), F("a/x", b"in"), F("a", b"over")]), OK({"a": _file(b"over")}, files=1)),
    # -- links
    Case("a symlink to an outside directory, then a file below it in a later layer, stays inside",
         docker([S("etc", ABS_ESCAPE)], [F("etc/pwned", b"gotcha")]),
         OK({"etc": DIRX, "etc/pwned": _file(b"gotcha")}, files=1)),
    Case("a ../-climbing symlink, then a file below it in the same layer, stays inside",
         docker([S("up", "../" * 40 + ABS_ESCAPE.lstrip("/")), F("up/pwned", b"gotcha")]),
         OK({"up": DIRX, "up/pwned": _file(b"gotcha")}, files=1)),
    Case("a symlink to / below a directory, then a deep write through it, stays inside",
         docker([D("a"), S("a/root", "/"), F("a/root/tmp/x", b"deep")]),
         OK({"a": DIRX, "a/root": DIRX, "a/root/tmp": DIRX, "a/root/tmp/x": _file(b"deep")}, files=1)),
    Case("a symlink to an outside file, then a hardlink to the symlink's path, links the symlink",
         docker([S("pw", ABS_ESCAPE + "/target"), H("pw2", "pw")]),
         OK({"pw": ("symlink", ABS_ESCAPE + "/target"), "pw2": ("symlink", ABS_ESCAPE + "/target")},
            links=(("pw", "pw2"),), files=2)),
    Case("a hardlink to /etc/passwd (in no layer) is refused by export",
         docker([H("passwd", "/etc/passwd")]),
         OK(files=1), export=Fail("which no earlier member holds"),
         slim=NO_EARLIER, distroless=OK()),
    Case("a hardlink climbing out of the root is refused",
         docker([H("x", "../../etc/passwd")]), Fail("points outside the root")),
    Case("a hardlink to itself is refused by export",
         docker([H("self", "self")]), OK(files=1), export=Fail("which no earlier member holds"),
         slim=NO_EARLIER, distroless=OK()),
    Case("a hardlink replacing the file it names keeps that file's data",
         docker([F("f", b"data"), H("f", "f")]), OK({"f": _file(b"data")}, files=1)),
    Case("two hardlinks naming each other are refused by export",
         docker([H("a", "b"), H("b", "a")]), OK(files=2), export=Fail("which no earlier member holds"),
         slim=NO_EARLIER, distroless=OK()),
    Case("a hardlink to a file of a lower layer links to it, as containerd and umoci apply layers",
         docker([F("a", b"low")], [H("b", "a")]),
         OK({"a": _file(b"low"), "b": _file(b"low")}, links=(("a", "b"),), files=2)),
    Case("a hardlink to a file of a lower layer that a later layer deletes carries the data",
         docker([F("a", b"low")], [H("b", "a")], [F(".wh.a")]), OK({"b": _file(b"low")}, files=1)),
    Case("a hardlink to a lower file its own layer replaced first keeps the lower data",
         docker([F("a", b"low")], [F("a", b"new"), H("b", "a")]),
         OK({"a": _file(b"new"), "b": _file(b"new")}, links=(("a", "b"),), files=2)),
    Case("a hardlink to a directory is refused by export and slim",
         docker([D("d"), H("h", "d")]), OK(files=1), export=Fail("names directory"), slim=Fail("names directory"),
         distroless=OK()),
    Case("a hardlink whose target a later layer deletes carries the data",
         docker([F("a", b"kept"), H("b", "a"), H("c", "a")], [F(".wh.a")]),
         OK({"b": _file(b"kept"), "c": _file(b"kept")}, links=(("b", "c"),), files=2)),
    Case("a hardlink after its target was replaced in the same layer keeps the old data",
         docker([F("a", b"old"), H("b", "a"), F("a", b"new")]),
         OK({"a": _file(b"new"), "b": _file(b"old")}, files=2)),
    Case("a symlink target holding a NUL (a PAX linkpath) is read; a directory export refuses what no "
         "file system can hold, a tar export keeps it",
         docker([S("l", "x", pax={"linkpath": "a\0b"}), F("f", b"x")]), OK(files=2),
         export=OK(dir_fails="its target holds a NUL byte")),
    Case("symlinks in a loop are exported as they are",
         docker([S("a", "b"), S("b", "a")]), OK({"a": ("symlink", "b"), "b": ("symlink", "a")}, files=2)),
    Case("a symlink to itself is exported as it is",
         docker([S("me", "me")]), OK({"me": ("symlink", "me")}, files=1)),
    Case("a dangling symlink is exported as it is",
         docker([S("gone", "/no/such/file")]), OK({"gone": ("symlink", "/no/such/file")}, files=1)),
    Case("a global PAX header renaming members is read as docker reads it, by every command alike",
         docker([M("pax_global_header", pax_records({"path": "renamed"}), b"g"), F("a", b"x"), F("b", b"y")]),
         OK({"a": _file(b"x"), "b": _file(b"y")}, files=2)),
    Case("a git-archive style global PAX comment is harmless",
         docker([M("pax_global_header", pax_records({"comment": "0" * 40}), b"g"), F("a", b"x")]),
         OK({"a": _file(b"x")}, files=1)),
    # -- whiteouts
    Case("a whiteout named .wh.. deletes nothing",
         docker([F("keep", b"k")], [F(".wh..")]), OK({"keep": _file(b"k")}, files=1)),
    Case("a whiteout climbing out (../.wh.etc) is refused",
         docker([F("keep", b"k")], [F("../.wh.etc")]), Fail("points outside the root")),
    Case("an absolute whiteout (/.wh.etc) deletes inside the image only",
         docker([D("etc"), F("etc/x", b"x"), F("keep", b"k")], [F("/.wh.etc")]), OK({"keep": _file(b"k")}, files=1)),
    Case("an opaque marker at the root hides every lower path",
         docker([F("a", b"a"), D("d"), F("d/b", b"b")], [F(".wh..wh..opq"), F("c", b"c")]),
         OK({"c": _file(b"c")}, files=1)),
    Case("an opaque marker below a lower file leaves the file alone",
         docker([F("f", b"file")], [F("f/.wh..wh..opq")]), OK({"f": _file(b"file")}, files=1)),
    Case("an opaque marker that is a directory with children hides lower entries, keeps its children",
         docker([D("d"), F("d/old", b"o")], [D("d/.wh..wh..opq"), F("d/.wh..wh..opq/x", b"x")]),
         OK({"d": DIRX, "d/.wh..wh..opq": DIRX, "d/.wh..wh..opq/x": _file(b"x")}, files=1)),
    Case("a whiteout that is a symlink to /etc deletes and is not followed",
         docker([F("a", b"a"), F("b", b"b")], [S(".wh.a", "/etc")]), OK({"b": _file(b"b")}, files=1)),
    # -- manifest, index, config
    Case("manifest.json that is not JSON is refused", _manifest_files(b"{nope"), Fail("not valid JSON")),
    Case("manifest.json that is an object is refused", _manifest_files(b"{}"), Fail("expected a JSON array")),
    Case("a manifest.json entry that is not an object is refused", _manifest_files(b"[42]"),
         Fail("each entry needs a Config string")),
    Case("a manifest.json over 64 MiB is refused unread", _huge_manifest, Fail("too large for a JSON document")),
    Case("a manifest.json nested 100000 deep is refused", _manifest_files(b"[" * 100_000 + b"]" * 100_000),
         Fail("not valid JSON")),
    Case("a manifest naming ../config.json is refused",
         docker([F("a", b"x")], config_name="../config.json"), Fail("points outside the archive")),
    Case("a manifest naming an absolute layer path is refused",
         docker([F("a", b"x")], layer_names=["/etc/passwd"]), Fail("points outside the archive")),
    Case("a manifest naming a missing layer is refused",
         docker([F("a", b"x")], layer_names=["blobs/sha256/" + "0" * 64]), Fail("missing")),
    Case("an archive member named ../evil is refused", _outer_member_climbs, Fail("points outside the archive")),
    Case("a config that is not JSON is refused", _config(b"\xff\xfe not json"), Fail("not valid JSON")),
    Case("a config that is a list is refused", _config(b"[]"), Fail("expected a JSON object")),
    Case("a config without rootfs is refused", _config({"architecture": "amd64", "os": "linux"}),
         Fail("no rootfs.diff_ids list")),
    Case("a config with more diff_ids than layers is refused",
         _config({"rootfs": {"type": "layers", "diff_ids": [sha(b"1"), sha(b"2")]}}),
         Fail("diff_ids but the manifest lists 1 layers")),
    Case("a config whose history is not a list is refused",
         _config({"rootfs": {"type": "layers", "diff_ids": [sha(raw_tar([F("a", b"x")]))]}, "history": 7}),
         Fail("history must be a list")),
    Case("a config whose Env is a number is refused, naming the field",
         _with_config(lambda c: c["config"].update(Env=7)), Fail("config.Env must be a list of strings")),
    Case("a config whose Entrypoint is an object is refused",
         _with_config(lambda c: c["config"].update(Entrypoint={"sh": 1})), Fail("config.Entrypoint must be")),
    Case("a config whose Cmd holds a number is refused",
         _with_config(lambda c: c["config"].update(Cmd=["/bin/sh", 7])), Fail("config.Cmd must be")),
    Case("a config label that is not a string is refused",
         _with_config(lambda c: c["config"].update(Labels={"n": 7})), Fail("config.Labels['n'] must be a string")),
    Case("a config whose User is a list is refused",
         _with_config(lambda c: c["config"].update(User=["root"])), Fail("config.User must be a string")),
    Case("a history step whose empty_layer is a string is refused",
         _with_config(lambda c: c["history"][0].update(empty_layer="yes")), Fail("history[0].empty_layer")),
    Case("a config whose architecture is a number is refused",
         _with_config(lambda c: c.update(architecture=64)), Fail("config field architecture must be a string")),
    Case("NaN in a config label is refused: no JSON parser downstream takes it",
         _config_text(("label", "NaN")), Fail("NaN is not a JSON number")),
    Case("Infinity in a config is refused", _config_text(("label", "-Infinity")),
         Fail("-Infinity is not a JSON number")),
    Case("a lone surrogate in a label is kept exactly, escaped on output",
         _config_text(("label", '"\\ud800"')), OK({"a": _file(b"x")}, files=1)),
    Case("a device major of 2**40 is analysed; export skips devices, slim copies its header as it is",
         _device(1 << 40), OK(files=2), export=OK({"dev": DIRX, "app": _file(b"x")}, files=2),
         slim=OK(), distroless=OK()),
    Case("a config with Entrypoint and Cmd given as strings runs them with /bin/sh -c",
         _with_config(lambda c: c["config"].update(Entrypoint="echo hi", Cmd="there")),
         OK({"a": _file(b"x")}, files=1)),
    Case("an image of zero layers exports an empty root", docker(), OK({}, files=0)),
    Case("an image of a thousand layers exports its merged files", _thousand_layers,
         OK(_thousand_tree(), files=900)),
    Case("index.json that is not JSON is refused", _oci_index(b"\x00garbage"), Fail("not valid JSON")),
    Case("index.json without a manifests list is refused", _oci_index({"manifests": "all of them"}),
         Fail("index has no manifests list")),
    Case("an index digest holding ../ is refused",
         _oci_index({"manifests": [{"mediaType": MANIFEST_TYPE, "digest": "sha256:../../../etc/passwd"}]}),
         Fail("is not a sha256 digest")),
    Case("an index pointing at a missing blob is refused",
         _oci_index({"manifests": [{"mediaType": MANIFEST_TYPE, "digest": sha(b"absent")}]}), Fail("missing")),
    Case("a layout blob that is a symlink out of the layout is refused", _blob_symlink_out,
         Fail("leads outside the layout directory")),
    Case("indexes nested ten deep are refused", _nested_indexes, Fail("nest deeper than")),
    # -- streams
    Case("an archive cut inside a layer is refused", _truncated_archive, Fail("truncated")),
    Case("a layer tar cut inside a member is refused",
         docker(blob(raw_tar([F("big", _incompressible(5000))], end=False)[:3000])), Fail("truncated")),
    Case("a truncated gzip layer is refused",
         docker(blob(raw_tar([F("big", _incompressible(50_000))]), "gzip", _cut(20_000))), Fail("truncated")),
    Case("a corrupt gzip layer is refused",
         docker(blob(raw_tar([F("big", b"z" * 50_000)]), "gzip", _flip(0.5))), Fail("gzip")),
    Case("a truncated zstd layer is refused",
         docker(blob(raw_tar([F("big", _incompressible(50_000))]), "zstd", _cut(20_000))), Fail("truncated")),
    Case("a zstd layer missing only its frame checksum is refused",
         docker(blob(raw_tar([F("a", b"x" * 3000)]), "zstd", _cut(-4))), Fail("truncated")),
    Case("a zstd layer whose second frame is cut in half is refused",
         docker(blob(raw_tar([F("a", b"x" * 3000)]), "zstd", _then_half_frame)), Fail("truncated")),
    Case("a gzip layer missing only its CRC trailer is refused",
         docker(blob(raw_tar([F("a", b"x" * 3000)]), "gzip", _cut(-8))), Fail("truncated")),
    Case("a corrupt zstd layer is refused",
         docker(blob(raw_tar([F("big", _incompressible(50_000))]), "zstd", _flip(0.5))), Fail("zstd")),
    Case("a layer that is not a tar is refused",
         docker(Blob(_incompressible(4096), sha(b"?"))), Fail("in a tar header")),
    Case("a tar header with a wrong checksum is refused",
         docker(Blob(header(b"f", b"0", 0, checksum_delta=1) + b"\0" * 1024, sha(b"?"))), Fail("checksum")),
    Case("a PAX size of a petabyte is refused as truncated",
         docker([F("f", b"x", pax={"size": str(10**15)})]), Fail("truncated")),
    Case("a layer whose digest differs from its name is refused", _digest_mismatch, Fail("has digest")),
    Case("a layer whose diff_id differs from the config is refused", _diff_id_mismatch, Fail("diff_id")),
    Case("a 4 GiB zstd bomb stops at --max-layer-size", _bomb(zstd_bomb, "zstd"), Fail("--max-layer-size"),
         args=("--max-layer-size", BOMB_LIMIT)),
    Case("a 4 GiB gzip bomb stops at --max-layer-size", _bomb(gzip_bomb, "gzip"), Fail("--max-layer-size"),
         args=("--max-layer-size", BOMB_LIMIT)),
    Case("a sparse file claiming 2 GiB in a 2 KB layer stops at --max-layer-size",
         docker(blob(sparse_bomb(2 << 30))), Fail("--max-layer-size"), args=("--max-layer-size", BOMB_LIMIT)),
    Case("a PAX GNU.sparse.realsize of -1 is refused",
         docker([F("a", b"k@", pax={"GNU.sparse.realsize": "-1"})]), Fail("negative PAX GNU.sparse.realsize")),
    Case("a PAX mtime of infinity is refused",
         docker([F("a", b"x", pax={"mtime": "inf"})]), Fail("bad PAX number")),
    Case("a PAX mtime forty digits long exports, the time clamped for the file system",
         docker([F("a", b"x", pax={"mtime": "9" * 40}), F("b", b"y", pax={"mtime": "-" + "9" * 40})]),
         OK({"a": _file(b"x"), "b": _file(b"y")}, files=2)),
    Case("a zstd layer that starts with a skippable frame (as pzstd writes it) is read", _zstd_with_skippable,
         OK({"etc": DIRX, "etc/motd": _file(b"hello\n"), "etc/big": _file(_incompressible(70_000))}, files=2)),
    Case("a path of 1,000 components is analysed, exported and slimmed without recursion",
         docker([F(DEEP, b"deep", pax={"path": DEEP})]), OK(files=1)),
    Case("a path of 3,000 components (past PATH_MAX) is exported relative to open directories",
         docker([F(DEEPER, b"deeper", pax={"path": DEEPER})]), OK(files=1),
         seconds=90.0),  # 3,000 openat/mkdirat per export: slow, not unbounded, on a loaded machine
    Case("a thousand nested directories, each listed, then deleted by a whiteout",
         docker([D("/".join(["w"] * (i + 1))) for i in range(1000)] + [F("/".join(["w"] * 1000) + "/f", b"x",
                                                                       pax={"path": "/".join(["w"] * 1000) + "/f"})],
                [F(".wh.w")]), OK({}, files=0)),
    Case("a sparse file within --max-layer-size exports whole",
         docker(blob(sparse_bomb(3000))), OK({"hole": _file(b"\0" * 3000)}, files=1)),
    # -- what the archive path is
    Case("a directory that is no OCI layout is refused", _empty_dir, Fail("not an image archive")),
    Case("an empty file is refused", _empty_file, Fail("is empty")),
    Case("a missing archive is refused", _missing, Fail("cannot open")),
    Case("a character device is refused", _devnull, Fail("not a regular file, a directory or a pipe")),
    Case("an archive fed through a FIFO is analyzed; export needs to read it twice", _fifo,
         OK(files=1), export=Fail("cannot be read twice"), slim=Fail("cannot be read twice"), fifo=True,
         distroless=OK()),
    # -- strings a terminal would act on (issue 14, class 1): shown escaped, kept exact in JSON
    Case("member names holding OSC, CSI, C1 and CR are shown escaped and exported as they are",
         docker([F("evil" + OSC, b"1"), F("clear" + CSI, b"22"), F("c1" + C1_CSI, b"333"), F("cr\rover", b"4444")]),
         OK({"evil" + OSC: _file(b"1"), "clear" + CSI: _file(b"22"), "c1" + C1_CSI: _file(b"333"),
             "cr\rover": _file(b"4444")}, files=4),
         shown=(r"/evil\x1b]0;PWNED\x07", r"/clear\x1b[2J", r"/c1\x9b31m", r"/cr\rover"),
         paged=(r"evil\x1b]0;PWNED\x07", r"clear\x1b[2J", r"c1\x9b31m", r"cr\rover")),
    Case("RepoTags holding OSC, CSI and DEL are shown escaped",
         configured([F("a", b"x")], tags=["evil" + OSC + ":latest", "clear" + CSI + "\x7f:1"]),
         OK({"a": _file(b"x")}, files=1), shown=(r"evil\x1b]0;PWNED\x07:latest, clear\x1b[2J\x7f:1",),
         paged=(r"evil\x1b]0;PWNED\x07:latest, clear\x1b[2J\x7f:1",),
         exact=(("image.tags", ["evil" + OSC + ":latest", "clear" + CSI + "\x7f:1"]),)),
    Case("a created_by holding CSI, OSC, CR and a line feed is shown escaped on one line",
         configured([F("a", b"x")], history=[{"created_by": "RUN " + CSI + "make " + OSC + "\rdone\nrm -rf /"}]),
         OK({"a": _file(b"x")}, files=1), shown=(r"RUN \x1b[2Jmake \x1b]0;PWNED\x07\rdone\nrm -rf /",),
         paged=(r"RUN \x1b[2Jmake \x1b]0;PWNED\x07\rdone\nrm -rf /",),
         exact=(("layers.0.created_by", "RUN " + CSI + "make " + OSC + "\rdone\nrm -rf /"),)),
    Case("an Entrypoint, Cmd, User and labels holding OSC, C1 and CSI are shown escaped",
         configured([F("a", b"x")], config={"Entrypoint": ["/bin/" + OSC], "Cmd": [C1_CSI], "User": "r" + CSI + "oot",
                                            "Labels": {"k" + OSC: "v" + CSI}}),
         OK({"a": _file(b"x")}, files=1), shown=(r"/bin/\x1b]0;PWNED\x07", r"\x9b31m", r"User r\x1b[2Joot"),
         paged=(r"user r\x1b[2Joot",),
         exact=(("image.entrypoint", ["/bin/" + OSC]), ("image.user", "r" + CSI + "oot"))),
    Case("a symlink chain whose names and targets hold OSC is exported as it is and shown escaped",
         configured([D("bin"), F("bin/ev" + OSC, b"#!/bin/sh\necho hi\n", mode=0o755), S("bin/link", "ev" + OSC),
                     S("bin/up", "/bin/link" + CSI)], config={"Entrypoint": ["/bin/link"]}),
         OK({"bin": DIRX, "bin/ev" + OSC: _file(b"#!/bin/sh\necho hi\n"), "bin/link": ("symlink", "ev" + OSC),
             "bin/up": ("symlink", "/bin/link" + CSI)}, files=3), shown=(r"/bin/ev\x1b]0;PWNED\x07",),
         paged=(r"ev\x1b]0;PWNED\x07",)),
    Case("an error naming a hardlink and its target holding OSC and CSI is one escaped line",
         docker([H("h" + OSC, "gone" + CSI)]), OK(files=1),
         export=Fail(r"hard link 'h\x1b]0;PWNED\x07' names 'gone\x1b[2J', which no earlier member holds"),
         slim=NO_EARLIER, distroless=OK()),
    Case("an error naming a climbing member holding CSI is one escaped line",
         docker([F("../evil" + CSI, b"boom")]), Fail("points outside the root")),
    Case("an error naming a config path holding OSC is one escaped line",
         docker([F("a", b"x")], config_name="../conf" + OSC + ".json"), Fail(r"conf\x1b]0;PWNED\x07.json")),
    Case("export's warnings name a device node and a setuid file holding OSC and CSI escaped",
         docker([D("dev"), M("dev/tty" + OSC, type=b"3", devmajor=5, devminor=0, mode=0o666),
                 F("bin/su" + CSI, b"x", mode=0o4755)]),
         OK({"dev": DIRX, "bin": DIRX, "bin/su" + CSI: _file(b"x")}, files=2),
         warned=(r"skipped 1 device node (/dev/tty\x1b]0;PWNED\x07)", r"cleared 1 setuid/setgid bit (/bin/su\x1b[2J)")),
    # -- strings that are not Unicode (issue 14, class 2): shown escaped in tables and HTML alike
    Case("member names that are not UTF-8 are shown escaped in the table and the HTML report",
         docker([F(b"caf\xe9", b"latin-1"), D(b"\xff\xfe"), F(b"\xff\xfe/\x9b2J", b"bytes")]),
         OK({"caf\udce9": _file(b"latin-1"), "\udcff\udcfe": DIRX, "\udcff\udcfe/\udc9b2J": _file(b"bytes")}, files=2),
         shown=(r"/caf\xe9", r"/\xff\xfe/\x9b2J"), paged=(r"caf\xe9", r"\xff\xfe/\x9b2J")),
    Case("lone surrogates in the User, Entrypoint, labels and RepoTags are shown escaped",
         configured([F("a", b"x")],
                    config={"User": "\ud800", "Entrypoint": ["/x\udfff"], "Labels": {"\udc00": "\ud83d"}},
                    tags=["t\ud800:1"]),
         OK({"a": _file(b"x")}, files=1), shown=(r"User \ud800", r"/x\udfff", r"t\ud800:1"),
         paged=(r"user \ud800", r"t\ud800:1"),
         exact=(("image.user", "\ud800"), ("image.tags", ["t\ud800:1"]))),
    Case("a lone surrogate in a created_by is shown escaped",
         configured([F("a", b"x")], history=[{"created_by": "RUN \ud800 \udcff"}]),
         OK({"a": _file(b"x")}, files=1), shown=(r"RUN \ud800 \xff",), paged=(r"RUN \ud800 \xff",)),
]


# ---- running the CLI and reading what it wrote ---------------------------------------------


@dataclass
class Run:
    """One in-process run of ``slimmer``: exit code, output, and an exception that escaped
    ``main`` (a traceback, had it run in a terminal)."""

    code: int | None
    out: bytes
    err: str
    exc: BaseException | None = None

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run_cli(*args: str) -> Run:
    """Run ``slimmer ARGS`` through the real entry point, in this process."""
    import sys

    from slimmer.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.argv, sys.stdout, sys.stderr
    sys.argv = ["slimmer", *map(str, args)]
    stdout = sys.stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True)
    code, exc = None, None
    try:
        main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as escaped:  # noqa: BLE001 - exactly what the test must see
        exc = escaped
    finally:
        stdout.flush()
        stderr.flush()
        sys.argv, sys.stdout, sys.stderr = saved
    run = Run(code, out.getvalue(), err.getvalue().decode("utf-8", "replace"), exc)
    stdout.detach()
    stderr.detach()
    return run


def tree_of_dir(root: Path) -> tuple[dict, set]:
    """Return (path -> description, groups of paths sharing an inode) for a directory tree.
    Walks by directory descriptors, without recursion: trees deeper than PATH_MAX work too."""
    tree, inodes = {}, {}
    stack = [(os.open(root, os.O_RDONLY | os.O_DIRECTORY), "")]
    while stack:
        fd, prefix = stack.pop()
        try:
            for entry in sorted(os.scandir(fd), key=lambda e: e.name):
                rel = prefix + entry.name
                st = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    tree[rel] = ("symlink", os.readlink(entry.name, dir_fd=fd))
                elif stat.S_ISDIR(st.st_mode):
                    tree[rel] = DIRX
                    stack.append((os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd),
                                  rel + "/"))
                    continue
                elif stat.S_ISREG(st.st_mode):
                    f = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
                    with os.fdopen(f, "rb") as fh:
                        tree[rel] = ("file", fh.read())
                elif stat.S_ISFIFO(st.st_mode):
                    tree[rel] = ("fifo",)
                else:
                    tree[rel] = ("other", oct(st.st_mode))
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
        finally:
            os.close(fd)
    return tree, {tuple(sorted(g)) for g in inodes.values() if len(g) > 1}


def tree_of_tar(data: bytes) -> tuple[dict, set]:
    """Return (path -> description, groups of hardlinked paths) for a tar stream."""
    tree, groups = {}, {}
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8", errors="surrogateescape") as tf:
        for info in tf:
            if info.isdir():
                tree[info.name] = DIRX
            elif info.issym():
                tree[info.name] = ("symlink", info.linkname)
            elif info.islnk():
                tree[info.name] = tree[info.linkname]
                groups.setdefault(info.linkname, {info.linkname}).add(info.name)
            elif info.isreg():
                tree[info.name] = ("file", tf.extractfile(info).read())
            elif info.isfifo():
                tree[info.name] = ("fifo",)
            else:
                tree[info.name] = ("other", info.type)
    return tree, {tuple(sorted(g)) for g in groups.values()}


def fingerprint(path: Path) -> str:
    """Return a hash of a file's bytes or a directory tree (names, kinds, bytes, link targets)."""
    h = hashlib.sha256()
    if not os.path.lexists(path):
        return "missing"
    if path.is_file() and not path.is_symlink():
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    if not path.is_dir():
        return "special:" + oct(os.lstat(path).st_mode)
    for base, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = Path(base, name)
            h.update(str(full.relative_to(path)).encode("utf-8", "surrogateescape") + b"\0")
            h.update(os.readlink(full).encode() if full.is_symlink() else full.read_bytes())
    return h.hexdigest()


# what a terminal acts on: C0 controls but the line feed, DEL, C1 controls
_RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def raw_controls(data: bytes | str) -> list[str]:
    """Return the control characters in ``data`` a terminal would act on (and a note for bytes
    that are not UTF-8, which cannot reach a terminal as text)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            return [f"not UTF-8: {err}"]
    return _RAW.findall(data)


def temps_in(directory: Path) -> list[str]:
    """Return the exporter's temp names in ``directory``."""
    return sorted(n for n in os.listdir(directory) if n.startswith(".slimmer-tmp-"))
