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
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, overload

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
CHAR = "char"
BLOCK = "block"
FIFO = "fifo"

KINDS = (FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO)
KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}  # a kind's code in ``Columns.kinds``
NO_RULE = -2  # ``Columns.rules``: no rule was looked up for this entry (not a file, or no classifier)


class Stream(Protocol):
    """What blobs are read through: ``read(n)`` gives up to ``n`` bytes (all that is left with
    -1, b"" at the end), ``close`` lets go of what it holds. Files, pipes and slimmer's own
    views of them all are one."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class ReadsInto:
    """For a stream class that defines ``read``: ``readinto`` by way of it (what
    ``io.BufferedReader`` and ``shutil`` call) and ``readable``. Put it before ``io.RawIOBase``
    among the bases."""

    def readinto(self: Stream, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


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


Numbers = array | list  # a number column of ``Columns``


class Columns:
    """A layer's entries as columns, one value per entry in each: how the scan pass returns
    a layer (an object per entry costs more time and memory than the entry's bytes are worth
    on layers of a hundred thousand files). ``kinds`` holds codes into ``KINDS``; ``rules``
    the category rule index of each file where the scan's policy gave one (``NO_RULE`` else),
    or is None. A number column is a 64-bit ``array``, or a list where a value does not fit
    (a PAX mtime forty digits long). The columns are never changed once built."""

    __slots__ = ("gids", "kinds", "links", "modes", "mtimes", "offsets", "paths", "rules", "sizes", "uids")

    def __init__(self, paths: list[str], kinds: bytes, sizes: Numbers, modes: Numbers, uids: Numbers, gids: Numbers,
                 links: list[str], mtimes: Numbers, offsets: Numbers, rules: array | None = None):
        self.paths, self.kinds, self.sizes, self.modes, self.uids, self.gids = paths, kinds, sizes, modes, uids, gids
        self.links, self.mtimes, self.offsets, self.rules = links, mtimes, offsets, rules

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> Columns:
        """Return the columns of ``entries`` (itself for a layer the scan returned as columns)."""
        if isinstance(entries, Entries):
            return entries.columns
        return cls([e.path for e in entries], bytes(KIND_CODES[e.kind] for e in entries),
                   array("q", [e.size for e in entries]), array("q", [e.mode for e in entries]),
                   array("q", [e.uid for e in entries]), array("q", [e.gid for e in entries]),
                   [e.link for e in entries], array("q", [e.mtime for e in entries]),
                   array("q", [e.offset for e in entries]))

    def __len__(self) -> int:
        return len(self.paths)

    def entry(self, i: int) -> Entry:
        """Return entry ``i`` as a record."""
        return Entry(self.paths[i], KINDS[self.kinds[i]], self.sizes[i], self.modes[i], self.uids[i], self.gids[i],
                     self.links[i], self.mtimes[i], self.offsets[i])

    def pack(self) -> tuple:
        """Return the columns as plain values (lists and bytes) that ``marshal`` takes."""
        rules = self.rules.tobytes() if self.rules is not None else None
        return (self.paths, self.kinds, _raw(self.sizes), _raw(self.modes), _raw(self.uids), _raw(self.gids),
                self.links, _raw(self.mtimes), _raw(self.offsets), rules)

    @classmethod
    def unpack(cls, packed: tuple) -> Columns:
        """Return the columns ``pack`` gave."""
        paths, kinds, sizes, modes, uids, gids, links, mtimes, offsets, rules = packed

        def ints(raw: bytes | list, code: str = "q") -> Numbers:
            if isinstance(raw, list):
                return raw
            out = array(code)
            out.frombytes(raw)
            return out

        rule_column = None
        if rules is not None:
            rule_column = array("h")
            rule_column.frombytes(rules)
        return cls(paths, bytes(kinds), ints(sizes), ints(modes), ints(uids), ints(gids), links, ints(mtimes),
                   ints(offsets), rule_column)


def _raw(column: array | list) -> bytes | list:
    return column.tobytes() if isinstance(column, array) else list(column)


class Entries(Sequence[Entry]):
    """A layer's entries backed by ``Columns``: a read-only sequence of Entry records, each
    built when it is asked for (nothing is kept)."""

    __slots__ = ("columns",)

    def __init__(self, columns: Columns):
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns.paths)

    @overload
    def __getitem__(self, i: int) -> Entry: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[Entry, ...]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self.columns.entry(k) for k in range(*i.indices(len(self))))
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("entry index out of range")
        return self.columns.entry(i)

    def __iter__(self) -> Iterator[Entry]:
        c = self.columns
        return map(Entry._make, zip(c.paths, map(KINDS.__getitem__, c.kinds), c.sizes, c.modes, c.uids, c.gids,
                                    c.links, c.mtimes, c.offsets))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Entries, tuple, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Entries({len(self)} entries)"


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
    entries: Sequence[Entry]  # a tuple, or (from the scan pass) an ``Entries`` over columns
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
    # a reader asked to return before its digests were all checked (``reader.Options.defer``)
    # leaves here the call that waits for the hashing and checks them, raising as the reader
    # would have; None when every byte was checked before the image was returned
    pending: Callable[[], None] | None = field(default=None, compare=False, repr=False)


# ---- derived facts: plain functions, computed from the model ------------------------------


def columns(layer: Layer) -> Columns:
    """Return the entries of ``layer`` as columns."""
    return Columns.of(layer.entries)


def verified(image: Image) -> Image:
    """Return ``image`` once every digest the reader left to check is checked (raising a
    DigestMismatchError as the reader would have)."""
    if image.pending is not None:
        image.pending()
    return image


def layer_size(layer: Layer) -> int:
    """Return the sum of the entry sizes of ``layer`` (what dive calls a layer's size)."""
    entries = layer.entries
    if isinstance(entries, Entries):
        return sum(entries.columns.sizes)
    return sum(e.size for e in entries)


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
