"""The merged filesystem of an image: the only place that knows whiteouts, opaque dirs,
shadowing, link resolution and where a hard link's bytes are.

OCI image spec, "Representing Changes" (image-layer.md): a file ``.wh.NAME`` deletes ``NAME``
(and its subtree) from the layers below; ``.wh..wh..opq`` in a directory hides every child
that lower layers gave it. Whiteouts never delete entries of their own layer. A non-directory
entry over a directory replaces the whole subtree (as overlayfs shows it).

Symlinks resolve as the kernel resolves them inside a container (``resolve``): absolute
targets start again at the image's root, ``..`` stops at the root, at most MAX_LINKS links.
A hard link names a path as it stood when the link was made: an earlier member of the same
layer, else the merged filesystem of the layers below (a layer is applied on top of the ones
below it, as containerd and umoci apply it); ``hardlink_sources`` finds the member that holds
its bytes. Nothing here recurses on the depth of a path. Imports the model (and, where it is
built, the compiled loop that stacks a layer: ``slimmer.compiled``; ``SLIMMER_PURE=1`` turns
it off as it does the compiled scanner).
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from slimmer.compiled import ctar, uses_compiled
from slimmer.errors import FormatError
from slimmer.model import DIR, FILE, HARDLINK, KIND_CODES, KINDS, SYMLINK, Columns, Entry, Image, Layer, columns

MAX_LINKS = 40  # Linux MAXSYMLINKS

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OVERWRITTEN = "overwritten"
DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Version:
    """A path's entry as one layer gives it; ``index`` is the entry's position among the
    layer's entries (-1 where it was added without one)."""

    layer: int
    entry: Entry
    index: int = -1


_DIR = KIND_CODES[DIR]
_HARDLINK = KIND_CODES[HARDLINK]
_SHIFT = 32
_MASK = (1 << _SHIFT) - 1
Ref = int  # a final version kept as (layer << 32) | entry index, made into a Version when asked for


@dataclass(frozen=True, slots=True)
class Shadowed:
    """An earlier version of a path that layer ``by_layer`` overwrote or deleted."""

    path: str
    layer: int
    entry: Entry
    by_layer: int
    how: str  # OVERWRITTEN or DELETED


def whiteout_target(path: str) -> tuple[str, str] | None:
    """Return ("opaque", dir) or ("whiteout", deleted_path) for a whiteout entry path, else None."""
    if WHITEOUT_PREFIX not in path:
        return None
    base = path.rpartition("/")[2]
    if not base.startswith(WHITEOUT_PREFIX):
        return None
    parent = posixpath.dirname(path)
    if base == OPAQUE:
        return ("opaque", parent)
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return ("opaque", parent) if base == OPAQUE else ("other", parent)
    name = base[len(WHITEOUT_PREFIX):]
    if name in ("", ".", ".."):
        return ("other", parent)
    return ("whiteout", posixpath.join(parent, name) if parent else name)


def is_whiteout(entry: Entry) -> bool:
    """Return whether ``entry`` is a whiteout or an opaque marker rather than a file."""
    path = entry.path
    return WHITEOUT_PREFIX in path and path.rpartition("/")[2].startswith(WHITEOUT_PREFIX)


class Finals(NamedTuple):
    """The final versions of a merged filesystem as columns, one row per path (implied
    directories left out): the layer and entry index of each, its kind code
    (``slimmer.model.KIND_CODES``) and size."""

    paths: list[str]
    layers: list[int]
    indexes: list[int]
    kinds: bytes
    sizes: list[int]


class MergedFS:
    """The image's filesystem after stacking its layers, plus what stacking hid.

    Each path has its final version (``get``, ``files``); directories that deeper entries
    imply but no layer lists exist without a version. ``shadowed`` lists every earlier version
    that a later layer overwrote or deleted. Versions of layers stacked with ``apply_layer``
    are kept as references into the layers' columns (``refs``, ``columns``) and made into
    records only when asked for.
    """

    def __init__(self) -> None:
        self._final: dict[str, Ref | Version] = {}
        self._dirs: dict[str, set[str]] = {"": set()}  # directory -> names below it
        self._cols: dict[int, Columns] = {}
        self._table: Finals | None = None
        self.shadowed: list[Shadowed] = []

    # -- queries ---------------------------------------------------------------------------

    def _version(self, ref: Ref | Version) -> Version:
        if ref.__class__ is not int:
            return ref  # type: ignore[return-value]
        layer, k = ref >> _SHIFT, ref & _MASK
        return Version(layer, self._cols[layer].entry(k), k)

    def get(self, path: str) -> Version | None:
        """Return the final version of ``path``, or None if the merged filesystem lacks it."""
        ref = self._final.get(path)
        return None if ref is None else self._version(ref)

    def final_of(self, path: str) -> tuple[int, str, int] | None:
        """Return (layer, kind, size) of ``path``'s final version (None if it has none),
        without making the version's record."""
        ref = self._final.get(path)
        if ref is None:
            return None
        if ref.__class__ is not int:
            entry = ref.entry  # type: ignore[union-attr]
            return ref.layer, entry.kind, entry.size  # type: ignore[union-attr]
        layer, k = ref >> _SHIFT, ref & _MASK
        cols = self._cols[layer]
        return layer, KINDS[cols.kinds[k]], cols.sizes[k]

    def kind(self, path: str) -> str | None:
        """Return the kind of ``path``'s final version (None if it has none)."""
        final = self.final_of(path)
        return None if final is None else final[1]

    def exists(self, path: str) -> bool:
        """Return whether ``path`` exists (as an entry, or as a directory implied by one)."""
        return path in self._final or path in self._dirs

    def is_dir(self, path: str) -> bool:
        """Return whether ``path`` is a directory (listed or implied)."""
        return path in self._dirs

    def walk(self) -> Iterator[tuple[str, Version | None]]:
        """Yield (path, final version) for every path, sorted (parents before children).
        Directories implied by deeper entries but never listed have version None."""
        final = self._final
        for path in sorted(set(final).union(self._dirs)):
            if path:
                ref = final.get(path)
                yield path, None if ref is None else self._version(ref)

    def files(self) -> Iterator[tuple[str, Version]]:
        """Yield (path, version) for every final entry (implied directories left out)."""
        version = self._version
        return ((path, version(ref)) for path, ref in self._final.items())

    def refs(self) -> dict[str, Ref | Version]:
        """Return {path: final version} with versions of stacked layers as references
        (``layer, index = ref >> 32, ref & 0xFFFFFFFF`` into ``columns(layer)``); read only."""
        return self._final

    def columns(self, layer: int) -> Columns:
        """Return the columns of stacked layer ``layer``."""
        return self._cols[layer]

    def table(self) -> Finals:
        """Return the final versions as columns (what the analysis walks: no record per path)."""
        table = self._table
        if table is not None:
            return table
        paths = list(self._final)
        refs = list(self._final.values())
        if all(ref.__class__ is int for ref in refs):
            layers = [ref >> _SHIFT for ref in refs]  # type: ignore[operator]
            indexes = [ref & _MASK for ref in refs]  # type: ignore[operator]
            top = max(self._cols, default=-1) + 1
            kinds_of = [self._cols[i].kinds if i in self._cols else b"" for i in range(top)]
            sizes_of = [self._cols[i].sizes if i in self._cols else () for i in range(top)]
            kinds = bytes([kinds_of[li][k] for li, k in zip(layers, indexes)])
            sizes = [sizes_of[li][k] for li, k in zip(layers, indexes)]
        else:
            versions = [self._version(ref) for ref in refs]
            layers = [v.layer for v in versions]
            indexes = [v.index for v in versions]
            kinds = bytes(KIND_CODES[v.entry.kind] for v in versions)
            sizes = [v.entry.size for v in versions]
        table = self._table = Finals(paths, layers, indexes, kinds, sizes)
        return table

    def children(self, path: str) -> list[str]:
        """Return the names directly below directory ``path`` ("" is the root)."""
        return sorted(self._dirs.get(path, ()))

    # -- building --------------------------------------------------------------------------

    def _is_dir_version(self, ref: Ref | Version) -> bool:
        if ref.__class__ is int:
            return self._cols[ref >> _SHIFT].kinds[ref & _MASK] == _DIR
        return ref.entry.kind == DIR  # type: ignore[union-attr]

    def _shadow(self, path: str, ref: Ref | Version, by: int, how: str) -> None:
        old = self._version(ref)
        self.shadowed.append(Shadowed(path, old.layer, old.entry, by, how))

    def _ensure_dir(self, path: str, layer: int) -> set[str]:
        """Return the children set of directory ``path``, creating it and its parents."""
        self._table = None
        kids = self._dirs.get(path)
        if kids is not None:
            return kids
        missing = [path]  # the directories to create, deepest first (no recursion on depth)
        parent = path.rpartition("/")[0]
        while parent not in self._dirs:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for d in reversed(missing):
            parent, _, name = d.rpartition("/")
            self._dirs[parent].add(name)
            old = self._final.get(d)
            if old is not None and not self._is_dir_version(old):
                # a deeper entry turns a lower non-directory into a directory
                self._shadow(d, old, layer, OVERWRITTEN)
                del self._final[d]
            self._dirs[d] = set()
        return self._dirs[path]

    def _remove(self, path: str, by: int, how: str) -> None:
        """Remove ``path`` and its subtree, recording every version as shadowed."""
        self._table = None
        stack = [path]
        final, dirs = self._final, self._dirs
        while stack:
            p = stack.pop()
            old = final.pop(p, None)
            if old is not None:
                self._shadow(p, old, by, how)
            kids = dirs.pop(p, None)
            if kids:
                stack.extend(f"{p}/{name}" for name in kids)

    def delete(self, path: str, by: int) -> None:
        """Apply a whiteout: remove ``path`` and its subtree."""
        parent, _, name = path.rpartition("/")
        kids = self._dirs.get(parent)
        if not kids or name not in kids:
            return
        kids.discard(name)
        self._remove(path, by, DELETED)

    def make_opaque(self, path: str, by: int) -> None:
        """Apply an opaque marker: hide every child lower layers gave directory ``path``."""
        kids = self._dirs.get(path)
        if not kids:
            return
        for name in list(kids):
            self._remove(f"{path}/{name}" if path else name, by, DELETED)
        kids.clear()

    def add(self, entry: Entry, layer: int, index: int = -1) -> None:
        """Put ``entry`` of ``layer`` (its ``index``-th entry, if known) in place, shadowing
        what was there."""
        self._put(entry.path, entry.kind == DIR, Version(layer, entry, index), layer)

    def _put(self, path: str, is_dir: bool, ref: Ref | Version, layer: int) -> None:
        self._table = None
        parent, _, name = path.rpartition("/")
        kids = self._dirs.get(parent)
        if kids is None:
            kids = self._ensure_dir(parent, layer)
        old = self._final.get(path)
        if old is not None:
            self._shadow(path, old, layer, OVERWRITTEN)
        if is_dir:
            if path not in self._dirs:
                self._dirs[path] = set()
        elif path in self._dirs:
            self._replace_dir(path, layer)
        kids.add(name)
        self._final[path] = ref

    def stack(self, cols: Columns, layer: int, order: list[int] | None = None) -> None:
        """Put the entries of ``cols`` (layer ``layer``; those at ``order`` only, in that
        order, if given) in place as ``add`` would, keeping references, not records."""
        self._cols[layer] = cols
        self._table = None
        paths, kinds = cols.paths, cols.kinds
        base = layer << _SHIFT
        if uses_compiled():  # the same loop, compiled (slimmer/_ctar.c)
            ctar.stack(self, paths, kinds, _DIR, base, layer, order)
            return
        final, dirs = self._final, self._dirs
        for k in range(len(paths)) if order is None else order:
            path = paths[k]
            parent, _, name = path.rpartition("/")
            kids = dirs.get(parent)
            if kids is None:
                kids = self._ensure_dir(parent, layer)
            old = final.get(path)
            if old is not None:
                self._shadow(path, old, layer, OVERWRITTEN)
            if kinds[k] == _DIR:
                if path not in dirs:
                    dirs[path] = set()
            elif path in dirs:
                self._replace_dir(path, layer)
            kids.add(name)
            final[path] = base | k

    def _replace_dir(self, path: str, layer: int) -> None:
        """A non-directory of ``layer`` replaces directory ``path`` and its whole subtree."""
        for child in self._dirs.pop(path):
            self._remove(f"{path}/{child}", layer, OVERWRITTEN)


def apply_layer(fs: MergedFS, layer: Layer, index: int, cols: Columns | None = None) -> None:
    """Stack ``layer`` (the ``index``-th; ``cols`` its columns if at hand) onto ``fs``: its
    whiteouts first, then its entries."""
    cols = cols if cols is not None else columns(layer)
    paths = cols.paths
    if WHITEOUT_PREFIX not in "\n".join(paths):
        fs.stack(cols, index)
        return
    adds = []
    for k, path in enumerate(paths):
        if WHITEOUT_PREFIX not in path:
            adds.append(k)
            continue
        target = whiteout_target(path)
        if target is None:
            adds.append(k)
        elif target[0] == "whiteout":
            fs.delete(target[1], index)
        elif target[0] == "opaque":
            fs.make_opaque(target[1], index)
    fs.stack(cols, index, adds)


def merge(image: Image, upto: int | None = None) -> MergedFS:
    """Return the merged filesystem of ``image`` (of its first ``upto`` layers if given)."""
    fs = MergedFS()
    for i, layer in enumerate(image.layers[:upto]):
        apply_layer(fs, layer, i)
    return fs


def visible_at(fs: MergedFS, layer: int) -> Iterator[tuple[str, Version]]:
    """Yield (path, version) for every entry of ``merge(image, layer + 1)``, read from the
    merged filesystem ``fs`` of the whole image without merging again: a version is visible
    from its layer until the layer that shadowed it (a final one until the end). Directories
    only implied by deeper entries have no version and are not yielded; the parents of what
    is yielded are the implied ones, except one left empty by whiteouts of all it held."""
    for path, version in fs.files():
        if version.layer <= layer:
            yield path, version
    for s in fs.shadowed:
        if s.layer <= layer < s.by_layer:
            yield s.path, Version(s.layer, s.entry)


# ---- links ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A path that resolved: the real path, its final version (None for a directory only
    implied by deeper entries) and every symlink passed on the way, in order."""

    path: str
    version: Version | None
    links: tuple[str, ...] = ()

    @property
    def is_dir(self) -> bool:
        """Whether the path is a directory (listed, or implied by deeper entries)."""
        return self.version is None or self.version.entry.kind == DIR

    @property
    def is_file(self) -> bool:
        """Whether the path holds bytes: a regular file or a hard link to one."""
        return self.version is not None and self.version.entry.kind in (FILE, HARDLINK)


def resolve(fs: MergedFS, path: str, cwd: str = "", follow_last: bool = True) -> Found | None:
    """Return where ``path`` (absolute, or relative to the model path ``cwd``) leads in ``fs``
    following symlinks (the last one only if ``follow_last``), or None if it leads nowhere,
    through a file used as a directory, or past MAX_LINKS links."""
    pending = deque(_parts(path if path.startswith("/") else f"{cwd}/{path}"))
    done: list[str] = []
    links: list[str] = []
    version: Version | None = None
    while pending:
        part = pending.popleft()
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            version = None
            continue
        here = f"{'/'.join(done)}/{part}" if done else part
        if not fs.exists(here):
            return None
        version = fs.get(here)
        if version is not None and version.entry.kind == SYMLINK and (pending or follow_last):
            if len(links) >= MAX_LINKS:
                return None
            links.append(here)
            target = version.entry.link
            if target.startswith("/"):
                done = []
            pending.extendleft(reversed(_parts(target)))
            version = None
            continue
        if pending and version is not None and version.entry.kind != DIR:
            return None  # a file used as a directory
        done.append(part)
    real = "/".join(done)
    return Found(real, fs.get(real) if real else None, tuple(links))


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


class DirResolver:
    """Resolves the symlinked directories of many paths through one merged filesystem (a
    package database lists ``/bin/ls`` where the image has ``bin -> usr/bin``), remembering
    each directory it has resolved."""

    def __init__(self, fs: MergedFS):
        self.fs = fs
        self._dirs: dict[str, str | None] = {}

    def __call__(self, path: str) -> str:
        """Return ``path`` with its directories resolved (itself where they do not resolve)."""
        d, _, name = path.rpartition("/")
        if not d:
            return path
        real = self._dirs.get(d, "\0")
        if real == "\0":
            found = resolve(self.fs, "/" + d)
            real = found.path if found is not None and found.is_dir else None
            self._dirs[d] = real
        if real is None:
            return path
        return f"{real}/{name}" if real else name


Member = tuple[int, int]  # (layer index, entry index)


def hardlink_sources(image: Image) -> dict[Member, Member]:
    """Return, for every hard link entry of ``image`` (as (layer, entry index)), the member
    holding its bytes: the regular file it names (through links to links) as that file stood
    when the link was made. Raises FormatError for a link to nothing, to a directory, or in a
    loop. One pass over the layers, whatever their number."""
    out: dict[Member, Member] = {}
    fs = MergedFS()
    cols = [columns(layer) for layer in image.layers]
    for li, layer in enumerate(image.layers):
        paths, kinds, links = cols[li].paths, cols[li].kinds, cols[li].links
        if _HARDLINK in kinds:
            here: dict[str, int] = {}  # path -> index of its latest member so far in this layer
            for k, path in enumerate(paths):
                if kinds[k] == _HARDLINK:
                    target = links[k]
                    j = here.get(target)
                    if j is not None:
                        source: Member = (li, j)
                    else:
                        below = fs.get(target)
                        if below is None:
                            raise FormatError(f"layer {li} ({layer.diff_id[:19]}): hard link {path!r} names "
                                              f"{target!r}, which no earlier member holds")
                        source = (below.layer, below.index)
                    source = out.get(source, source)
                    if cols[source[0]].kinds[source[1]] == _DIR:
                        raise FormatError(f"layer {li} ({layer.diff_id[:19]}): hard link {path!r} names "
                                          f"directory {target!r}")
                    if source == (li, k):
                        raise FormatError(f"layer {li} ({layer.diff_id[:19]}): hard link {path!r} names itself")
                    out[(li, k)] = source
                here[path] = k
        apply_layer(fs, layer, li, cols[li])
    return out
