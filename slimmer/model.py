"""The image model: the only vocabulary shared by readers, analyzer, rewriter and exporter.

Words, defined once:
- *digest*: ``sha256:<hex>`` of a blob exactly as stored in the archive (maybe compressed).
- *diff_id*: ``sha256:<hex>`` of a layer's uncompressed tar stream (config ``rootfs.diff_ids``).
- *entry*: one member of a layer's tar stream, with its path normalised (no leading ``/`` or
  ``./``, no trailing ``/``; the root directory itself is not an entry).
- *whiteout*: an entry named ``.wh.NAME``; it deletes ``NAME`` (and its subtree) from lower layers.
- *opaque dir*: a directory holding ``.wh..wh..opq``; everything lower layers put below it is hidden.
- *shadowed*: a version of a path that a later layer overwrote or deleted.

Whiteouts and shadowing are interpreted only in ``slimmer.layers``; here an entry is just a tar
member. All classes are frozen: operations return new objects (``dataclasses.replace``).
This module imports nothing of slimmer.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
CHAR = "char"
BLOCK = "block"
FIFO = "fifo"

KINDS = (FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO)


class Stream(Protocol):
    """What blobs are read through: ``read(n)`` gives up to ``n`` bytes (all that is left with
    -1, b"" at the end), ``close`` lets go of what it holds. Files, pipes and slimmer's own
    views of them all are one."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


def normalize_path(name: str) -> str:
    """Return ``name`` as a model path: relative, without ``.`` parts, duplicate or trailing
    slashes; ``..`` cannot climb above the root ("" is the root itself). The one place paths
    are normalised: tar members, package databases, link targets and user globs all use it."""
    if name and "//" not in name and "/." not in name and name[0] not in "./" and name[-1] != "/":
        return name
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def join_path(base: str, name: str) -> str:
    """Return the model path ``name`` names relative to directory ``base`` (an absolute
    ``name`` starts again from the root), as the kernel resolves a symlink target."""
    if name.startswith("/"):
        return normalize_path(name)
    return normalize_path(f"{base}/{name}" if base else name)


class Entry(NamedTuple):
    """One tar member of a layer. ``size`` is the header's size (0 for dirs and links);
    ``link`` is a symlink's target as written, or a hardlink's target path normalised.

    A NamedTuple rather than a frozen dataclass: images hold hundreds of thousands of entries,
    and a tuple is built four times faster (``entry._replace(...)`` returns a changed copy)."""

    path: str
    kind: str
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""
    mtime: int = 0
    offset: int = -1  # where the data starts in the layer's uncompressed tar stream (-1: unknown)


@dataclass(frozen=True, slots=True)
class HistoryStep:
    """One entry of the config's ``history``: a Dockerfile step (``created_by``)."""

    created_by: str = ""
    created: str = ""
    comment: str = ""
    author: str = ""
    empty_layer: bool = False


def _no_content() -> Stream:
    raise RuntimeError("this layer has no content source")


@dataclass(frozen=True)
class Layer:
    """One filesystem layer, in stacking order.

    ``opener`` returns a new binary stream of the layer blob *as stored* (``compression``
    says how it is compressed; ``digest`` is its sha256) each time it is called. Nobody reads
    it directly: ``slimmer.tar.restream`` reads it again, verified against ``digest`` and
    ``diff_id``. ``facts`` holds what the scan pass learnt from file contents, by kind then
    path (``slimmer.tar.collect``), and ``facts_policy`` names the policy that gathered them;
    None when the layer was never scanned with one.
    """

    diff_id: str
    digest: str
    stored_size: int
    entries: tuple[Entry, ...]
    uncompressed_size: int = 0
    media_type: str = "application/vnd.oci.image.layer.v1.tar"
    compression: str = "none"
    history: HistoryStep | None = None
    opener: Callable[[], Stream] = field(default=_no_content, compare=False, repr=False)
    facts: Mapping[str, Mapping[str, Any]] | None = field(default=None, compare=False, repr=False)
    facts_policy: str = field(default="", compare=False)  # the key of the policy that gathered them


@dataclass(frozen=True)
class Image:
    """An image: its config (raw JSON object), layers in stacking order and full history
    (empty-layer steps included)."""

    config: Mapping
    layers: tuple[Layer, ...]
    history: tuple[HistoryStep, ...] = ()
    tags: tuple[str, ...] = ()
    config_digest: str = ""
    manifest_digest: str = ""
    source: str = ""
    format: str = ""
    notes: tuple[str, ...] = ()  # what the reader accepted though it is odd


# ---- derived facts: plain functions, computed from the model ------------------------------


def layer_size(layer: Layer) -> int:
    """Return the sum of the entry sizes of ``layer`` (what dive calls a layer's size)."""
    return sum(e.size for e in layer.entries)


def total_size(image: Image) -> int:
    """Return the sum of the entry sizes of every layer of ``image``."""
    return sum(layer_size(layer) for layer in image.layers)


def stored_size(image: Image) -> int:
    """Return the bytes the layer blobs take as stored (compressed where they are)."""
    return sum(layer.stored_size for layer in image.layers)


def runtime_config(image: Image) -> Mapping:
    """Return the ``config`` object of the image config (Entrypoint, Cmd, Env, ...), or {}."""
    cfg = image.config.get("config") if isinstance(image.config, Mapping) else None
    return cfg if isinstance(cfg, Mapping) else {}


def command_line(image: Image) -> list[str]:
    """Return the argv the image starts with: Entrypoint followed by Cmd (a string runs with
    ``/bin/sh -c``, as Docker runs it)."""
    cfg = runtime_config(image)
    argv: list[str] = []
    for key in ("Entrypoint", "Cmd"):
        value = cfg.get(key)
        if isinstance(value, str):
            value = ["/bin/sh", "-c", value]
        if isinstance(value, list):
            argv += [str(v) for v in value]
    return argv


def platform(image: Image) -> str:
    """Return ``os/arch[/variant]`` from the image config."""
    parts = [str(image.config.get("os", "") or "unknown"), str(image.config.get("architecture", "") or "unknown")]
    if image.config.get("variant"):
        parts.append(str(image.config["variant"]))
    return "/".join(parts)


def with_layers(image: Image, layers: tuple[Layer, ...], history: tuple[HistoryStep, ...]) -> Image:
    """Return a copy of ``image`` with new layers and history, its config's rootfs and
    history kept in step with them."""
    config = dict(image.config)
    config["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    config["history"] = [history_to_json(step) for step in history]
    return dataclasses.replace(image, config=config, layers=tuple(layers), history=tuple(history))


def history_to_json(step: HistoryStep) -> dict:
    """Return the config JSON object for one history step."""
    out: dict = {}
    if step.created:
        out["created"] = step.created
    if step.created_by:
        out["created_by"] = step.created_by
    if step.author:
        out["author"] = step.author
    if step.comment:
        out["comment"] = step.comment
    if step.empty_layer:
        out["empty_layer"] = True
    return out
