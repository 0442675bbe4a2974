"""Test images built in code from dicts, in every archive format slimmer reads: no Docker, no
checked-in blobs.

    img = image(layer({"app/big.bin": 5_000}), layer({"app/.wh.big.bin": WHITEOUT}))
    path = write(img, tmp_path / "app.tar", "docker-legacy")

A file spec is an ``int`` (that many bytes: the first n bytes of one fixed pseudo-random
stream, so equal sizes mean equal content), ``bytes`` (that content), ``File(...)``, ``Dir()``,
``Symlink(target)``, ``Hardlink(target)`` or ``WHITEOUT`` (the empty file a ``.wh.NAME`` or
``.wh..wh..opq`` entry is). Parent directories are added only with ``auto_dirs=True``.

The archives are assembled here by hand, not with slimmer's writer, so that reader tests do not
trust the code a round trip would also use; a spec knows the diff_ids, entries and config
digest a reader must report. Everything is small and built in memory.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import platform as host
import posixpath
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zstandard

from slimmer.model import DIR, FILE, HARDLINK, KINDS, SYMLINK, Entry, HistoryStep, Image, Layer

EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
FORMATS = ("docker-legacy", "docker-oci", "oci-dir", "oci-tar")
COMPRESSIONS = ("none", "gzip", "zstd")
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
TAR_FORMATS = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i686": "386"}


# ---- file specs -------------------------------------------------------------------------


class _Whiteout:
    def __repr__(self) -> str:
        return "WHITEOUT"


WHITEOUT = _Whiteout()


@dataclass(frozen=True)
class File:
    """A regular file: ``content`` bytes, or an int for that many deterministic bytes."""

    content: bytes | int = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0


@dataclass(frozen=True)
class Dir:
    """A directory entry."""

    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    mtime: int = 0


@dataclass(frozen=True)
class Symlink:
    """A symbolic link to ``target``, written as given."""

    target: str


@dataclass(frozen=True)
class Hardlink:
    """A hard link to the earlier member ``target`` of the same layer."""

    target: str


Spec = int | bytes | File | Dir | Symlink | Hardlink | _Whiteout


def content(size: int) -> bytes:
    """Return the ``size`` deterministic bytes an ``int`` file spec stands for."""
    return hashlib.shake_256(b"slimmer test content").digest(size) if size else b""


def _norm(path: str) -> str:
    return posixpath.normpath("/" + path).lstrip("/")


def _as_file(spec: Spec) -> File | Dir | Symlink | Hardlink:
    if isinstance(spec, bool):
        raise TypeError("a file spec cannot be a bool")
    if isinstance(spec, int | bytes):
        return File(spec)
    if spec is WHITEOUT:
        return File(b"")
    if isinstance(spec, File | Dir | Symlink | Hardlink):
        return spec
    raise TypeError(f"unknown file spec {spec!r}")


# ---- layers and images ------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its members in order, the history step that made it, its tar dialect."""

    files: tuple[tuple[str, Spec], ...]
    created_by: str = ""
    tar_format: str = "pax"

    @functools.cached_property
    def tar(self) -> bytes:
        """The uncompressed tar stream of this layer."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=TAR_FORMATS[self.tar_format]) as tf:
            for path, spec in self.files:
                item = _as_file(spec)
                info = tarfile.TarInfo(path)
                info.uname = info.gname = ""
                data = None
                if isinstance(item, Dir):
                    info.type, info.mode, info.uid, info.gid, info.mtime = (
                        tarfile.DIRTYPE, item.mode, item.uid, item.gid, item.mtime)
                elif isinstance(item, Symlink):
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, item.target, 0o777
                elif isinstance(item, Hardlink):
                    info.type, info.linkname = tarfile.LNKTYPE, item.target
                else:
                    data = content(item.content) if isinstance(item.content, int) else item.content
                    info.size, info.mode, info.uid, info.gid, info.mtime = (
                        len(data), item.mode, item.uid, item.gid, item.mtime)
                tf.addfile(info, io.BytesIO(data) if data else None)
        # end at the two zero blocks, as Go's archive/tar (Docker, BuildKit) writes layers;
        # tarfile pads further to a 10240-byte record
        return buf.getvalue()[: tf.offset]

    @property
    def diff_id(self) -> str:
        return _digest(self.tar)

    @property
    def entries(self) -> tuple[Entry, ...]:
        """The entries a reader must report for this layer, in order (with the offset of each
        member's data in the layer tar, as tarfile finds it)."""
        with tarfile.open(fileobj=io.BytesIO(self.tar)) as tf:
            offsets = iter([m.offset_data for m in tf.getmembers() if _norm(m.name)])
        out = []
        for path, spec in self.files:
            item = _as_file(spec)
            if not _norm(path):
                continue
            at = next(offsets)
            if isinstance(item, Dir):
                out.append(Entry(_norm(path), DIR, 0, item.mode, item.uid, item.gid, "", item.mtime, at))
            elif isinstance(item, Symlink):
                out.append(Entry(_norm(path), SYMLINK, 0, 0o777, 0, 0, item.target, 0, at))
            elif isinstance(item, Hardlink):
                out.append(Entry(_norm(path), HARDLINK, 0, 0o644, 0, 0, _norm(item.target), 0, at))
            else:
                size = item.content if isinstance(item.content, int) else len(item.content)
                out.append(Entry(_norm(path), FILE, size, item.mode, item.uid, item.gid, "", item.mtime, at))
        return tuple(out)


def layer(files: dict[str, Spec], *, created_by: str = "", auto_dirs: bool = False,
          tar_format: str = "pax") -> LayerSpec:
    """Return a layer holding ``files`` in order (parent dirs first too, with ``auto_dirs``)."""
    items: list[tuple[str, Spec]] = []
    seen = {_norm(p) for p in files}
    for path, spec in files.items():
        if auto_dirs:
            parts = _norm(path).split("/")[:-1]
            for i in range(1, len(parts) + 1):
                parent = "/".join(parts[:i])
                if parent not in seen:
                    seen.add(parent)
                    items.append((parent, Dir()))
        items.append((path, spec))
    return LayerSpec(tuple(items), created_by, tar_format)


def layer_tar(files: dict[str, Spec] | LayerSpec) -> bytes:
    """Return the uncompressed tar (PAX) of one layer holding ``files``."""
    return (files if isinstance(files, LayerSpec) else layer(files)).tar


@dataclass(frozen=True)
class ImageSpec:
    """An image: layers, the config JSON object, and the tag archives record (None: untagged)."""

    layers: tuple[LayerSpec, ...]
    config: dict
    tag: str | None = "test/app:latest"

    @property
    def config_bytes(self) -> bytes:
        return _json(self.config)

    @property
    def config_digest(self) -> str:
        return _digest(self.config_bytes)

    @property
    def diff_ids(self) -> list[str]:
        return [lay.diff_id for lay in self.layers]

    @property
    def history(self) -> tuple[HistoryStep, ...]:
        """The config history as the model's steps (empty-layer steps included)."""
        return tuple(HistoryStep(created_by=h.get("created_by", ""), created=h.get("created", ""),
                                 comment=h.get("comment", ""), author=h.get("author", ""),
                                 empty_layer=bool(h.get("empty_layer", False)))
                     for h in self.config.get("history", []))

    @property
    def layer_steps(self) -> list[HistoryStep]:
        """The history step of each layer, in order."""
        return [step for step in self.history if not step.empty_layer]


def host_platform() -> str:
    """Return ``linux/<GOARCH>`` of this machine."""
    return "linux/" + _ARCH.get(host.machine(), host.machine())


def image(*layers: LayerSpec, config: dict | None = None, tag: str | None = "test/app:latest",
          entrypoint: list[str] | str | None = None, cmd: list[str] | str | None = None,
          env: list[str] | None = None, empty_steps=()) -> ImageSpec:
    """Return an image of ``layers`` with a valid config for this machine's platform.

    ``config`` keys replace the generated ones (``rootfs`` is always computed; ``history`` is
    generated unless given). ``empty_steps`` adds empty-layer history steps: a string is
    appended after the last layer, ``(n, created_by)`` goes after the first n layers.
    """
    runtime: dict = {"Env": list(DEFAULT_ENV if env is None else env)}
    if entrypoint is not None:
        runtime["Entrypoint"] = [entrypoint] if isinstance(entrypoint, str) else list(entrypoint)
    if cmd is not None:
        runtime["Cmd"] = [cmd] if isinstance(cmd, str) else list(cmd)
    os_name, arch = host_platform().split("/")[:2]
    cfg: dict = {"created": EPOCH, "architecture": arch, "os": os_name, "config": runtime}
    cfg.update(copy.deepcopy(config or {}))
    cfg["rootfs"] = {"type": "layers", "diff_ids": [lay.diff_id for lay in layers]}
    if "history" not in (config or {}):
        cfg["history"] = _history(layers, empty_steps)
    return ImageSpec(tuple(layers), cfg, tag)


def _history(layers: tuple[LayerSpec, ...], empty_steps) -> list[dict]:
    after: dict[int, list[str]] = {}
    for step in empty_steps:
        n, text = (len(layers), step) if isinstance(step, str) else step
        after.setdefault(n, []).append(text)
    out = []
    for i in range(len(layers) + 1):
        for text in after.get(i, []):
            out.append({"created": EPOCH, "created_by": text, "empty_layer": True})
        if i < len(layers):
            out.append({"created": EPOCH, "created_by": layers[i].created_by} if layers[i].created_by
                       else {"created": EPOCH})
    return out


def for_platform(spec: ImageSpec, plat: str) -> ImageSpec:
    """Return ``spec`` with its config's os/architecture/variant set to ``plat``."""
    parts = plat.split("/")
    cfg = dict(spec.config, os=parts[0], architecture=parts[1])
    cfg.pop("variant", None)
    if len(parts) > 2:
        cfg["variant"] = parts[2]
    return dataclasses.replace(spec, config=cfg)


def to_model(spec: ImageSpec) -> Image:
    """Return ``spec`` as a model Image whose layers' openers return the built tars."""
    steps = spec.layer_steps
    layers = tuple(
        Layer(diff_id=lay.diff_id, digest=lay.diff_id, stored_size=len(lay.tar), entries=lay.entries,
              uncompressed_size=len(lay.tar), history=steps[i] if i < len(steps) else None,
              opener=functools.partial(io.BytesIO, lay.tar))
        for i, lay in enumerate(spec.layers))
    return Image(config=copy.deepcopy(spec.config), layers=layers, history=spec.history,
                 tags=(spec.tag,) if spec.tag else (), config_digest=spec.config_digest,
                 source="builders", format="builders")


# ---- archives ---------------------------------------------------------------------------


LayerBlobHook = Callable[[int, bytes], bytes]
ManifestHook = Callable[[object], object]


def compress(data: bytes, compression: str) -> bytes:
    """Return ``data`` compressed as one gzip member or zstd frame (or as is, for "none")."""
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}")


@dataclass
class _Blobs:
    """One image's stored blobs, ready to lay out."""

    spec: ImageSpec
    config: bytes
    layers: list[tuple[bytes, str]]  # (stored blob, media type)


def _blobs(spec: ImageSpec, compression: str, layer_blob: LayerBlobHook | None) -> _Blobs:
    layers = []
    for i, lay in enumerate(spec.layers):
        blob = compress(lay.tar, compression)
        if layer_blob is not None:
            blob = layer_blob(i, blob)
        layers.append((blob, LAYER_TYPES[compression]))
    return _Blobs(spec, spec.config_bytes, layers)


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encode(value, hook: ManifestHook | None) -> bytes:
    if hook is not None:
        value = hook(value)
    return value if isinstance(value, bytes) else _json(value)


def _desc(media_type: str, data: bytes, **extra) -> dict:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data), **extra}


def _tag_of(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def _ref_annotations(ref: str) -> dict:
    # what containerd and Docker 25+ write: the full reference and the bare tag
    return {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": _tag_of(ref)}


def _docker_name(ref: str) -> str:
    """Return ``ref`` as Docker 25+ writes it in index.json: with its registry, docker.io by default."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return "docker.io/" + ref if "/" in ref else "docker.io/library/" + ref


def _oci_manifest(files: dict[str, bytes | None], built: _Blobs, hook: ManifestHook | None) -> bytes:
    files["blobs/sha256/" + _hex(built.config)] = built.config
    for blob, _media in built.layers:
        files["blobs/sha256/" + _hex(blob)] = blob
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": _desc(CONFIG_TYPE, built.config),
                "layers": [_desc(media, blob) for blob, media in built.layers]}
    data = _encode(manifest, hook)
    files["blobs/sha256/" + _hex(data)] = data
    return data


def _docker_files(images: list[tuple[str | None, _Blobs]], legacy: bool,
                  hook: ManifestHook | None) -> dict[str, bytes | None]:
    files: dict[str, bytes | None] = {}
    manifest, repositories, index = [], {}, []
    if not legacy:
        files["blobs"] = files["blobs/sha256"] = None
    for ref, built in images:
        if legacy:
            names, parent = [], ""
            for blob, _media in built.layers:
                layer_id = _hex(f"{parent}\n{_digest(blob)}".encode())
                if layer_id not in files:
                    files[layer_id] = None
                    files[f"{layer_id}/VERSION"] = b"1.0"
                    files[f"{layer_id}/json"] = _json({"id": layer_id, **({"parent": parent} if parent else {})})
                    files[f"{layer_id}/layer.tar"] = blob
                names.append(f"{layer_id}/layer.tar")
                parent = layer_id
            config_name = _hex(built.config) + ".json"
            files[config_name] = built.config
        else:
            data = _oci_manifest(files, built, None)
            index.append(_desc(MANIFEST_TYPE, data, **({"annotations": _ref_annotations(_docker_name(ref))}
                                                       if ref else {})))
            names = ["blobs/sha256/" + _hex(blob) for blob, _media in built.layers]
            config_name = "blobs/sha256/" + _hex(built.config)
        manifest.append({"Config": config_name, "RepoTags": [ref] if ref else None, "Layers": names})
        if ref and names:
            repo, tag = ref.rsplit(":", 1)
            repositories.setdefault(repo, {})[tag] = names[-1].split("/")[-2 if legacy else -1]
    if not legacy:
        files["index.json"] = _json({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": index})
        files["oci-layout"] = _json({"imageLayoutVersion": "1.0.0"})
    if repositories:
        files["repositories"] = _json(repositories)
    # manifest.json last, as docker save streams it: a piped reader must wait for it
    files["manifest.json"] = _encode(manifest, hook)
    return files


def _oci_files(images: list[tuple[str | None, _Blobs]], hook: ManifestHook | None) -> dict[str, bytes | None]:
    files: dict[str, bytes | None] = {"blobs": None, "blobs/sha256": None}
    index = []
    for ref, built in images:
        data = _oci_manifest(files, built, hook)
        index.append(_desc(MANIFEST_TYPE, data, **({"annotations": _ref_annotations(ref)} if ref else {})))
    files["index.json"] = _json({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": index})
    files["oci-layout"] = _json({"imageLayoutVersion": "1.0.0"})
    return files


def emit(files: dict[str, bytes | None], path: str | os.PathLike, as_dir: bool) -> Path:
    """Write ``files`` (name -> bytes, or None for a directory) as a tar or a directory."""
    path = Path(path)
    if as_dir:
        path.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            if data is None:
                (path / name).mkdir(parents=True, exist_ok=True)
            else:
                (path / name).parent.mkdir(parents=True, exist_ok=True)
                (path / name).write_bytes(data)
        return path
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
    return path


def _files(images: list[tuple[str | None, _Blobs]], fmt: str, hook: ManifestHook | None):
    if fmt in ("docker-legacy", "docker-oci"):
        return _docker_files(images, fmt == "docker-legacy", hook)
    if fmt in ("oci-dir", "oci-tar"):
        return _oci_files(images, hook)
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def write(spec: ImageSpec, path: str | os.PathLike, fmt: str, compression: str = "none", *,
          layer_blob: LayerBlobHook | None = None, edit_manifest: ManifestHook | None = None) -> Path:
    """Write ``spec`` at ``path`` in ``fmt`` (one of FORMATS), layers compressed as asked.

    ``layer_blob(index, blob)`` may replace a stored layer blob (digests follow it);
    ``edit_manifest(obj)`` may change the manifest (the manifest.json list for docker formats,
    the image manifest for OCI) before it is encoded, or return bytes to store as they are.
    """
    built = _blobs(spec, compression, layer_blob)
    return emit(_files([(spec.tag, built)], fmt, edit_manifest), path, fmt == "oci-dir")


def write_multi(specs: dict[str, ImageSpec], path: str | os.PathLike, fmt: str,
                compression: str = "none") -> Path:
    """Write several images into one archive (manifest.json entries or index descriptors),
    each recorded under its key as tag."""
    images = [(ref, _blobs(spec, compression, None)) for ref, spec in specs.items()]
    return emit(_files(images, fmt, None), path, fmt == "oci-dir")


def write_multiplatform(specs: dict[str, ImageSpec], path: str | os.PathLike, *, fmt: str = "oci-tar",
                        tag: str = "test/app:latest", compression: str = "none",
                        attestations: bool = False) -> Path:
    """Write an OCI layout whose index.json points at a nested index of one manifest per
    platform (keys like "linux/arm64/v8"; configs are set to match, see ``for_platform``).

    With ``attestations``, the nested index also lists a BuildKit attestation manifest per
    platform (platform unknown/unknown), as ``docker buildx`` pushes them.
    """
    if fmt not in ("oci-dir", "oci-tar"):
        raise ValueError("multi-platform images are written as OCI layouts only")
    files: dict[str, bytes | None] = {"blobs": None, "blobs/sha256": None}
    entries = []
    for plat, spec in specs.items():
        data = _oci_manifest(files, _blobs(for_platform(spec, plat), compression, None), None)
        parts = plat.split("/")
        platform = {"architecture": parts[1], "os": parts[0], **({"variant": parts[2]} if len(parts) > 2 else {})}
        entries.append(_desc(MANIFEST_TYPE, data, platform=platform))
        if attestations:
            statement = _json({"_type": "https://in-toto.io/Statement/v0.1", "subject": []})
            files["blobs/sha256/" + _hex(statement)] = statement
            empty = b"{}"
            files["blobs/sha256/" + _hex(empty)] = empty
            att = _json({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": _desc(CONFIG_TYPE, empty),
                         "layers": [_desc("application/vnd.in-toto+json", statement)]})
            files["blobs/sha256/" + _hex(att)] = att
            entries.append(_desc(MANIFEST_TYPE, att, platform={"architecture": "unknown", "os": "unknown"},
                                 annotations={"vnd.docker.reference.digest": _digest(data),
                                              "vnd.docker.reference.type": "attestation-manifest"}))
    nested = _json({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries})
    files["blobs/sha256/" + _hex(nested)] = nested
    files["index.json"] = _json({"schemaVersion": 2, "mediaType": INDEX_TYPE,
                                 "manifests": [_desc(INDEX_TYPE, nested, annotations=_ref_annotations(tag))]})
    files["oci-layout"] = _json({"imageLayoutVersion": "1.0.0"})
    return emit(files, path, fmt == "oci-dir")


# ---- large archives, written as holes ------------------------------------------------------


def _zero_sha256(prefix: bytes, n: int, suffix: bytes) -> str:
    h = hashlib.sha256(prefix)
    chunk = bytes(1 << 20)
    while n >= len(chunk):
        h.update(chunk)
        n -= len(chunk)
    h.update(bytes(n))
    h.update(suffix)
    return "sha256:" + h.hexdigest()


def write_zeros_archive(path: str | os.PathLike, sizes: list[int], tag: str = "big/app:latest") -> Path:
    """Write a legacy docker-archive whose layer i holds one file of ``sizes[i]`` zero bytes,
    the zeros left as holes of a sparse file: gigabytes to read, written in a moment (only the
    diff_ids take time to hash)."""
    layers = []
    for i, size in enumerate(sizes):
        info = tarfile.TarInfo(f"data/zeros{i}.bin")
        info.size, info.mtime = size, 0
        head = info.tobuf(tarfile.USTAR_FORMAT)
        tail = bytes((-size) % 512) + bytes(1024)
        layers.append((head, size, tail, _zero_sha256(head, size, tail)))
    config = _json({"architecture": "amd64", "os": "linux", "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [d for *_, d in layers]},
                    "history": [{"created_by": f"ADD zeros{i}.bin /data/"} for i in range(len(sizes))]})
    manifest = _json([{"Config": "config.json", "RepoTags": [tag],
                       "Layers": [f"l{i}/layer.tar" for i in range(len(sizes))]}])
    out = Path(path)
    with open(out, "wb") as f:
        def member(name: str, size: int, body: Callable[[], None]) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = size, 0
            f.write(info.tobuf(tarfile.USTAR_FORMAT))
            body()
            f.seek((-size) % 512, os.SEEK_CUR)

        for name, data in (("config.json", config), ("manifest.json", manifest)):
            member(name, len(data), lambda d=data: f.write(d))
        for i, (head, size, tail, _digest) in enumerate(layers):
            def body(head=head, size=size, tail=tail) -> None:
                f.write(head)
                f.seek(size, os.SEEK_CUR)
                f.write(tail)
            member(f"l{i}/layer.tar", len(head) + size + len(tail), body)
        f.seek(1024, os.SEEK_CUR)
        f.truncate()
    return out


def write_registry(images: dict[str, ImageSpec | dict[str, ImageSpec]], root: str | os.PathLike,
                   compression: str = "gzip") -> Path:
    """Write (or add to) the storage of a distribution registry at ``root`` as its filesystem
    driver lays it out, one tag per key ("repo/name:tag"): an ImageSpec is pushed as one image
    manifest, a dict {platform: ImageSpec} as an index of one manifest per platform. Returns
    ``root``. (The tests also push with skopeo to the real registry; this writes the same
    layout directly, fast, for the storages a test damages and for the benchmark.)"""
    root = Path(root)
    v2 = root / "docker" / "registry" / "v2"

    def put_blob(data: bytes) -> str:
        hexpart = _hex(data)
        path = v2 / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return "sha256:" + hexpart

    def link(path: Path, digest: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(digest)

    for ref, item in images.items():
        repo, tag = ref.rsplit(":", 1)
        repo_dir = v2 / "repositories" / repo
        (repo_dir / "_uploads").mkdir(parents=True, exist_ok=True)
        specs = item if isinstance(item, dict) else {"": item}
        entries = []
        for plat, spec in specs.items():
            spec = for_platform(spec, plat) if plat else spec
            built = _blobs(spec, compression, None)
            for data in [built.config] + [blob for blob, _media in built.layers]:
                digest = put_blob(data)
                link(repo_dir / "_layers" / "sha256" / digest[7:] / "link", digest)
            manifest = _json({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                              "config": _desc(CONFIG_TYPE, built.config),
                              "layers": [_desc(media, blob) for blob, media in built.layers]})
            digest = put_blob(manifest)
            link(repo_dir / "_manifests" / "revisions" / "sha256" / digest[7:] / "link", digest)
            parts = plat.split("/")
            entries.append(_desc(MANIFEST_TYPE, manifest, **({"platform": {
                "architecture": parts[1], "os": parts[0], **({"variant": parts[2]} if len(parts) > 2 else {})}}
                if plat else {})))
        if isinstance(item, dict):
            index = _json({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries})
            digest = put_blob(index)
            link(repo_dir / "_manifests" / "revisions" / "sha256" / digest[7:] / "link", digest)
        else:
            digest = entries[0]["digest"]
        link(repo_dir / "_manifests" / "tags" / tag / "current" / "link", digest)
        link(repo_dir / "_manifests" / "tags" / tag / "index" / "sha256" / digest[7:] / "link", digest)
    return root


def write_many_tags(root: str | os.PathLike, tags: int, files: int = 24) -> Path:
    """Write a registry storage (``write_registry``) of ``tags`` images "team/appNNN:1" on one
    base layer, each with a layer of ``files`` small files of its own: many blobs, for tests
    that need an audit to take a while (a Ctrl-C, the progress display)."""
    base = layer({"bin/sh": 30_000, "etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
                  "usr/share/doc/base/README": 5_000}, created_by="ADD rootfs /")
    return write_registry({f"team/app{k:03d}:1": image(base, layer({f"app/{k}/file{i}": 500 + k + i
                                                                    for i in range(files)},
                                                                   created_by=f"COPY app{k} /app"),
                                                       tag=f"team/app{k:03d}:1")
                           for k in range(tags)}, root)


# ---- checks -----------------------------------------------------------------------------

def slimmer_run(*args, stdin: bytes | None = None, cache: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``slimmer ARGS`` as a process (``stdin`` fed to it, its layer cache in ``cache``)."""
    env = dict(os.environ)
    if cache is not None:
        env["SLIMMER_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "slimmer", *map(str, args)], input=stdin, capture_output=True,
                          env=env, check=False)


def analysis_of(done: subprocess.CompletedProcess) -> dict:
    """The `analyze --json` document a successful run printed, without ``image.source`` (the
    one field by which a pipe's analysis may differ from the file's)."""
    assert done.returncode == 0, done.stderr.decode()
    doc = json.loads(done.stdout)
    doc["image"].pop("source")
    return doc


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_invariants(image: Image) -> None:
    """Assert what every Image must satisfy: digests well formed, rootfs.diff_ids in step with
    the layers, each layer's history step the matching non-empty config step, entries
    normalised and of known kinds."""
    assert image.config["rootfs"]["diff_ids"] == [lay.diff_id for lay in image.layers]
    assert not image.config_digest or _DIGEST.match(image.config_digest), image.config_digest
    made = [step for step in image.history if not step.empty_layer]
    for i, lay in enumerate(image.layers):
        assert _DIGEST.match(lay.diff_id) and _DIGEST.match(lay.digest), (lay.diff_id, lay.digest)
        assert lay.stored_size >= 0 and lay.uncompressed_size >= 0
        assert lay.history == (made[i] if i < len(made) else None)
        for entry in lay.entries:
            assert entry.kind in KINDS, entry
            assert entry.path and entry.path == _norm(entry.path), entry
            assert entry.size >= 0 and (entry.kind == FILE or entry.size == 0), entry
