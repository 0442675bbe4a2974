"""Writers: a model Image back into bytes, as a ``docker save`` archive or an OCI image layout.

Each layer's uncompressed tar comes from the verified re-stream (``slimmer.tar.restream``). It
is read once, in chunks: hashed
(its *diff_id*), compressed and hashed again (its *digest*) into a temp file in a staging
directory beside the output, so no layer is ever held in memory. The config written is the
image's config with ``rootfs.diff_ids`` recomputed from those streams, so an Image whose layers
were replaced still yields a consistent archive.

Output is byte-reproducible: JSON is compact and keeps the config's key order, gzip carries
mtime 0 and no file name, and the outer tar's members are sorted, with mtime 0, uid/gid 0 and
no user names. Output is atomic (``slimmer.atomic``): layer blobs are staged in a scratch
directory beside the output, the archive (or layout directory) is built under a temp name beside
it, fsynced and renamed into place; on any failure every temp is removed and the destination is
left as it was.

Imports the model, ``slimmer.tar``, ``slimmer.atomic`` and the errors: never the reader or the
analyzer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from slimmer.atomic import atomic_dir, atomic_file, fsync_dir, output_error, scratch_dir
from slimmer.errors import OutputError
from slimmer.model import Image, Layer, ReadsInto, with_layers
from slimmer.tar import restream

__all__ = ["Written", "config_with_diff_ids", "json_bytes", "write_docker_archive", "write_oci", "write_streamed"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20
EPOCH = "1970-01-01T00:00:00Z"
OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
DOCKER_LAYOUTS = ("legacy", "oci")
GZIP_LEVEL = 6
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class Blob:
    """A layer blob staged on disk: ``digest`` and ``size`` as stored, ``diff_id`` of its tar."""

    path: Path
    digest: str
    size: int
    diff_id: str
    media_type: str

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class Written:
    """What a writer emitted: the output path and the digests a reader will find there.

    ``manifest_digest`` is "" for a legacy docker archive, which has no manifest blob.
    """

    path: Path
    config_digest: str
    manifest_digest: str
    diff_ids: tuple[str, ...]
    layer_digests: tuple[str, ...]


# Members of an output, by archive-relative name: bytes (a small file), a staged Blob, or
# None (a directory).
Members = dict[str, "bytes | Blob | None"]


def write_docker_archive(image: Image, out_path: str | os.PathLike, tags: Sequence[str] | None = None,
                         layout: str = "legacy") -> Written:
    """Write ``image`` as a ``docker save`` archive at ``out_path``; return what was written.

    ``layout="legacy"`` writes ``<id>/layer.tar`` directories (Docker before 25);
    ``layout="oci"`` writes the Docker 25+ form: an OCI layout plus ``manifest.json``.
    Layers are stored uncompressed, as ``docker save`` does. ``tags`` defaults to the image's
    own tags; ``()`` writes an untagged image. Raises OutputError if the output cannot be written.
    """
    if layout not in DOCKER_LAYOUTS:
        raise ValueError(f"layout must be one of {DOCKER_LAYOUTS}, not {layout!r}")
    out = Path(out_path)
    refs = _refs(image.tags if tags is None else tags)
    with _staging(out, as_dir=False) as stage:
        layers = _stage_layers(image, stage, "none")
        config = json_bytes(config_with_diff_ids(image.config, [b.diff_id for b in layers]))
        if layout == "legacy":
            members, manifest_digest = _docker_legacy(image.config, layers, config, refs), ""
        else:
            members, manifest_digest = _oci(image.config, layers, config, refs)
            members["manifest.json"] = json_bytes([{
                "Config": "blobs/sha256/" + _sha256_hex(config),
                "RepoTags": refs or None,
                "Layers": ["blobs/sha256/" + b.hex for b in layers],
            }])
            if refs and layers:
                members["repositories"] = json_bytes(_repositories(refs, layers[-1].hex))
        _commit_tar(members, out)
    return _written(out, config, manifest_digest, layers)


def write_oci(image: Image, out_path: str | os.PathLike, tags: Sequence[str] | None = None,
              compression: str = "gzip", as_dir: bool = False) -> Written:
    """Write ``image`` as an OCI image layout at ``out_path``; return what was written.

    The layout is a tar (``oci-archive``) or, with ``as_dir``, a directory, which must not exist
    or be empty. Layers are compressed with ``compression`` ("gzip", "zstd" or "none").
    ``index.json`` lists the manifest once per tag, annotated with the full reference
    (``io.containerd.image.name``) and the tag (``org.opencontainers.image.ref.name``).
    ``tags`` defaults to the image's own tags. Raises OutputError if the output cannot be written.
    """
    if compression not in LAYER_TYPES:
        raise ValueError(f"compression must be one of {tuple(LAYER_TYPES)}, not {compression!r}")
    out = Path(out_path)
    refs = _refs(image.tags if tags is None else tags)
    with _staging(out, as_dir) as stage:
        layers = _stage_layers(image, stage, compression)
        config = json_bytes(config_with_diff_ids(image.config, [b.diff_id for b in layers]))
        members, manifest_digest = _oci(image.config, layers, config, refs)
        if as_dir:
            _commit_dir(members, out)
        else:
            _commit_tar(members, out)
    return _written(out, config, manifest_digest, layers)


# The header of a layer written in place: a PAX header whose one record is the size, then the
# ustar header; three blocks whatever the size, so they can be written once the layer is.
_INPLACE_HEADER = 3 * 512


class _InPlace:
    """The stream a layer is written into inside the archive being built: it compresses,
    and hashes and counts what is stored (the producer hashes the tar: its diff_id; stored
    plain, the two are one digest)."""

    def __init__(self, raw: BinaryIO, compression: str):
        self.plain = compression == "none"
        self.raw, self.pack = raw, _compressor(compression)
        self.stored = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        if self.plain:
            self.raw.write(data)
            self.size += len(data)
            return len(data)
        out = self.pack.compress(data)
        if out:
            self._out(out)
        return len(data)

    def _out(self, data) -> None:
        self.raw.write(data)
        self.stored.update(data)
        self.size += len(data)

    def close(self) -> None:
        if not self.plain:
            self._out(self.pack.flush())

    def digest(self, diff_id: str) -> str:
        return diff_id if self.plain else "sha256:" + self.stored.hexdigest()


def write_streamed(image: Image, out_path: str | os.PathLike, produce, fmt: str = "docker",
                   compression: str = "gzip", tags: Sequence[str] | None = None) -> tuple[Written, Image]:
    """Write ``image`` (its config and history; no layers yet) with one new layer whose tar
    ``produce(stream)`` writes straight into the archive being staged, and returns as a model
    Layer whose ``diff_id`` is the sha256 of exactly the bytes it wrote (the stored digest is
    filled in here). ``fmt`` is "docker" (a legacy ``docker save``
    archive, layers stored plain) or "oci" (an oci-archive, layers compressed with
    ``compression``). The layer is never copied: its member's header is written once its size
    and digest are known, in blocks reserved for it. Returns what was written and the image
    with its layer. Output is atomic, as for the other writers."""
    out = Path(out_path)
    refs = _refs(image.tags if tags is None else tags)
    if fmt == "docker":
        compression = "none"
    _check_destination(out, as_dir=False)
    with atomic_file(out) as raw:
        raw.write(bytes(_INPLACE_HEADER))
        sink = _InPlace(raw, compression)
        layer: Layer = produce(sink)
        sink.close()
        if sink.size % 512:
            raw.write(bytes(512 - sink.size % 512))
        if not sink.plain and layer.uncompressed_size and not sink.size:
            raise OutputError(f"cannot write {out}: the new layer compressed to nothing")
        blob = Blob(out, sink.digest(layer.diff_id), sink.size, layer.diff_id, LAYER_TYPES[compression])
        layer = dataclasses.replace(layer, digest=blob.digest, stored_size=blob.size, compression=compression,
                                    media_type=blob.media_type)
        new = with_layers(image, (layer,), image.history)
        config = json_bytes(config_with_diff_ids(new.config, [blob.diff_id]))
        if fmt == "docker":
            members, manifest_digest = _docker_legacy(new.config, [blob], config, refs), ""
        else:
            members, manifest_digest = _oci(new.config, [blob], config, refs)
        name = next(n for n, m in members.items() if m is blob)
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for member in sorted((n for n in members if n != name), key=_member_order):
                _add_member(tf, member, members[member], out)
        raw.seek(0)
        raw.write(_layer_header(name, blob.size))
    # the layer as written can be read again from the output (``--verify`` exports it)
    layer = dataclasses.replace(layer, opener=functools.partial(_Range, out, _INPLACE_HEADER, blob.size))
    new = dataclasses.replace(new, layers=(layer,))
    return _written(out, config, manifest_digest, [blob]), new


class _Range(ReadsInto, io.RawIOBase):
    """``size`` bytes at ``offset`` of the file ``path``, read-only."""

    def __init__(self, path: Path, offset: int, size: int):
        self._f = open(path, "rb")
        self._pos, self._end = offset, offset + size

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._pos
        n = left if n is None or n < 0 else min(n, left)
        data = os.pread(self._f.fileno(), n, self._pos) if n > 0 else b""
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


def _layer_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0o644, 0, 0, 0, "", ""
    info.pax_headers = {"size": str(size)}
    header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    if len(header) != _INPLACE_HEADER:
        raise ValueError(f"the header of {name!r} takes {len(header)} bytes, {_INPLACE_HEADER} were reserved")
    return header


def json_bytes(value) -> bytes:
    """Return the compact JSON the writers emit for ``value`` (key order kept).

    ASCII with escapes: a config may hold lone surrogates (``"\\ud800"`` parses), which UTF-8
    cannot encode."""
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def config_with_diff_ids(config: Mapping, diff_ids: Sequence[str]) -> dict:
    """Return a copy of ``config`` whose ``rootfs`` lists ``diff_ids``."""
    out = dict(config)
    out["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    return out


# ---- layers -----------------------------------------------------------------------------


class _Plain:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _compressor(compression: str):
    if compression == "gzip":
        # wbits 16+: zlib's own gzip wrapper has mtime 0 and no file name, so equal input
        # gives equal bytes (gzip.GzipFile would record the time and the temp file's name).
        return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compressobj()
    return _Plain()


def _stage_layers(image: Image, stage: Path, compression: str) -> list[Blob]:
    return [_stage_layer(layer, i, stage / f"layer-{i}", compression) for i, layer in enumerate(image.layers)]


def _stage_layer(layer: Layer, index: int, dest: Path, compression: str) -> Blob:
    """Compress layer ``index``'s tar stream into ``dest``, hashing both sides on the way. The
    tar is read through the verified re-stream: a layer that changed since it was read fails
    here, before anything is committed."""
    plain, stored = hashlib.sha256(), hashlib.sha256()
    size = 0
    pack = _compressor(compression)
    with open(dest, "xb") as out:
        for chunk in restream.chunks(layer, f"layer {index} ({layer.diff_id})"):
            plain.update(chunk)
            data = pack.compress(chunk)
            if data:
                stored.update(data)
                out.write(data)
                size += len(data)
        data = pack.flush()
        stored.update(data)
        out.write(data)
        size += len(data)
        out.flush()
        os.fsync(out.fileno())
    return Blob(dest, "sha256:" + stored.hexdigest(), size, "sha256:" + plain.hexdigest(), LAYER_TYPES[compression])


# ---- archive layouts --------------------------------------------------------------------


def _docker_legacy(config: Mapping, layers: list[Blob], config_bytes: bytes, refs: list[str]) -> Members:
    members: Members = {}
    created = str(config.get("created") or EPOCH)
    parent = ""
    ids = []
    for blob in layers:
        # Docker's v1 layer id: sha256 of the v1 JSON with the layer's diff_id and parent
        # (distribution/daemon v1.CreateID), so equal stacks get equal ids.
        v1 = {"created": created, "layer_id": blob.diff_id, "parent": parent}
        layer_id = _sha256_hex(json_bytes(v1))
        legacy = {"id": layer_id, **({"parent": parent} if parent else {}), "created": created}
        members[layer_id] = None
        members[f"{layer_id}/VERSION"] = b"1.0"
        members[f"{layer_id}/json"] = json_bytes(legacy)
        members[f"{layer_id}/layer.tar"] = blob
        ids.append(layer_id)
        parent = layer_id
    config_name = _sha256_hex(config_bytes) + ".json"
    members[config_name] = config_bytes
    members["manifest.json"] = json_bytes([{
        "Config": config_name,
        "RepoTags": refs or None,
        "Layers": [f"{i}/layer.tar" for i in ids],
    }])
    if refs and ids:
        members["repositories"] = json_bytes(_repositories(refs, ids[-1]))
    return members


def _oci(config: Mapping, layers: list[Blob], config_bytes: bytes, refs: list[str]) -> tuple[Members, str]:
    manifest = json_bytes({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": _descriptor(CONFIG_TYPE, config_bytes),
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": b.size} for b in layers],
    })
    desc = _descriptor(MANIFEST_TYPE, manifest)
    plat = _platform(config)
    if plat:
        desc["platform"] = plat
    entries = [{**desc, "annotations": {"io.containerd.image.name": ref,
                                        "org.opencontainers.image.ref.name": _split_ref(ref)[1]}}
               for ref in refs]
    index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries or [desc]}
    members: Members = {"blobs": None, "blobs/sha256": None}
    for blob in layers:
        members["blobs/sha256/" + blob.hex] = blob
    members["blobs/sha256/" + _sha256_hex(config_bytes)] = config_bytes
    members["blobs/sha256/" + _sha256_hex(manifest)] = manifest
    members["index.json"] = json_bytes(index)
    members["oci-layout"] = json_bytes(OCI_LAYOUT)
    return members, desc["digest"]


def _descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + _sha256_hex(data), "size": len(data)}


def _platform(config: Mapping) -> dict | None:
    if not config.get("os") or not config.get("architecture"):
        return None
    plat = {"architecture": str(config["architecture"]), "os": str(config["os"])}
    if config.get("variant"):
        plat["variant"] = str(config["variant"])
    return plat


def _repositories(refs: list[str], top: str) -> dict:
    repos: dict[str, dict[str, str]] = {}
    for ref in refs:
        repo, tag = _split_ref(ref)
        repos.setdefault(repo, {})[tag] = top
    return repos


def _split_ref(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    return repo, tag


def _refs(tags: Sequence[str]) -> list[str]:
    """Return ``tags`` as ``name:tag`` references (``name`` means ``name:latest``), deduplicated."""
    refs: list[str] = []
    for tag in tags:
        if not tag or "@" in tag or any(c.isspace() for c in tag) or tag.endswith(":"):
            raise OutputError(f"cannot tag the output {tag!r}: expected NAME[:TAG]")
        ref = tag if ":" in tag.rsplit("/", 1)[-1] else tag + ":latest"
        if ref not in refs:
            refs.append(ref)
    return refs


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _written(out: Path, config: bytes, manifest_digest: str, layers: list[Blob]) -> Written:
    return Written(out, "sha256:" + _sha256_hex(config), manifest_digest,
                   tuple(b.diff_id for b in layers), tuple(b.digest for b in layers))


# ---- atomic output ----------------------------------------------------------------------


def _check_destination(out: Path, as_dir: bool) -> None:
    if as_dir:
        if out.is_symlink() or (out.exists() and not out.is_dir()):
            raise OutputError(f"cannot write {out}: it exists and is not a directory")
        if out.is_dir() and any(out.iterdir()):
            raise OutputError(f"cannot write {out}: the directory exists and is not empty")
    elif out.is_dir():
        raise OutputError(f"cannot write {out}: it is a directory, expected a file name")


@contextlib.contextmanager
def _staging(out: Path, as_dir: bool) -> Iterator[Path]:
    """Yield a fresh staging directory beside ``out`` for the layer blobs; remove it however the
    block ends. An OSError in the block becomes an OutputError naming ``out``."""
    _check_destination(out, as_dir)
    with scratch_dir(out) as stage:
        try:
            yield stage
        except OSError as err:
            raise output_error(out, err) from err


def _member_order(name: str) -> tuple[str, ...]:
    # by path components, so a directory comes right before its contents
    return tuple(name.split("/"))


def _commit_tar(members: Members, out: Path) -> None:
    with atomic_file(out) as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(members, key=_member_order):
            _add_member(tf, name, members[name], out)


def _add_member(tf: tarfile.TarFile, name: str, src: bytes | Blob | None, out: Path) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if src is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(info)
    elif isinstance(src, bytes):
        info.size, info.mode = len(src), 0o644
        tf.addfile(info, io.BytesIO(src))
    else:
        info.size, info.mode = src.size, 0o644
        with open(src.path, "rb") as f:
            reader = _HashingFile(f)
            tf.addfile(info, reader)
        if reader.digest() != src.digest:
            raise OutputError(f"cannot write {out}: staged layer {src.path.name} changed while it was "
                              f"copied (digest {reader.digest()}, expected {src.digest})")


class _HashingFile:
    """A read-only file wrapper that hashes every byte read through it."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha.update(data)
        return data

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _commit_dir(members: Members, out: Path) -> None:
    with atomic_dir(out) as root:
        dirs = [root]
        for name in sorted(members, key=_member_order):
            src, target = members[name], root / name
            if src is None:
                target.mkdir(mode=0o755)
                dirs.append(target)
            elif isinstance(src, bytes):
                with open(target, "xb") as f:
                    f.write(src)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                os.replace(src.path, target)  # staged and fsynced already
            if src is not None:
                os.chmod(target, 0o644)
        for d in dirs:
            os.chmod(d, 0o755)
            fsync_dir(d)
