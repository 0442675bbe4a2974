"""Layer tar members as the rewriter addresses them: a *member* is ``(layer index, entry
index)``, the position of an entry in ``layer.entries``, which is also its position among the
tar members that name a path (the root directory member is skipped, as the model does).

``stream`` walks a layer's uncompressed tar with ``tarfile`` in stream mode (``r|``: never
seeking, never holding a member in memory) and checks, member by member, that tarfile and the
model's scanner agree on the path; ``source_of`` finds which member holds the bytes of a hard
link. Imports only the model, ``slimmer.layers`` and the errors.
"""

from __future__ import annotations

import contextlib
import posixpath
import tarfile
from typing import Iterator

from slimmer.errors import FormatError, TruncatedError
from slimmer.layers import MergedFS, Version, merge
from slimmer.model import HARDLINK, Image, Layer

Member = tuple[int, int]  # (layer index, entry index)
BUFSIZE = 1 << 20


def tar_path(name: str) -> str:
    """Return a tar member name as a model path (what the scanner records)."""
    return posixpath.normpath("/" + name).lstrip("/")


class MemberIndex:
    """Finds members: the final version of a path, and the source of a hard link."""

    def __init__(self, image: Image, fs: MergedFS):
        self.image = image
        self.fs = fs
        self._last: dict[int, dict[str, int]] = {}
        self._lower: dict[int, MergedFS] = {}

    def last_index(self, layer: int, path: str) -> int | None:
        """Return the index of the last entry of ``layer`` named ``path``."""
        table = self._last.get(layer)
        if table is None:
            table = self._last[layer] = {e.path: i for i, e in enumerate(self.image.layers[layer].entries)}
        return table.get(path)

    def final(self, version: Version) -> Member:
        """Return the member that holds ``version`` (a final version of the merged filesystem)."""
        index = self.last_index(version.layer, version.entry.path)
        assert index is not None
        return version.layer, index

    def source_of(self, member: Member) -> Member:
        """Return the member holding the bytes of ``member``: itself, or for a hard link the
        regular file it names, as that file stood when the link was made (earlier in the same
        layer, else in the layers below). Raises FormatError for a link to nothing."""
        seen = set()
        layer, index = member
        while True:
            entry = self.image.layers[layer].entries[index]
            if entry.kind != HARDLINK:
                return layer, index
            if (layer, index) in seen:
                raise FormatError(f"layer {layer}: hard link {entry.path!r} is part of a loop")
            seen.add((layer, index))
            target = entry.link
            earlier = self._earlier(layer, index, target)
            if earlier is not None:
                index = earlier
                continue
            below = self._below(layer).get(target)
            if below is None:
                raise FormatError(f"layer {layer} ({self.image.layers[layer].diff_id}): hard link "
                                  f"{entry.path!r} names {target!r}, which no earlier member holds")
            layer, index = self.final(below)

    def _earlier(self, layer: int, index: int, path: str) -> int | None:
        entries = self.image.layers[layer].entries
        for i in range(index - 1, -1, -1):
            if entries[i].path == path:
                return i
        return None

    def _below(self, layer: int) -> MergedFS:
        fs = self._lower.get(layer)
        if fs is None:
            fs = self._lower[layer] = merge(self.image, upto=layer)
        return fs


def where(image: Image, layer: int) -> str:
    """Return how messages name layer ``layer`` of ``image``."""
    lay: Layer = image.layers[layer]
    return f"{image.source or 'image'}: layer {layer} ({lay.diff_id})"


@contextlib.contextmanager
def stream(image: Image, layer: int) -> Iterator[Iterator[tuple[int, tarfile.TarInfo, tarfile.TarFile]]]:
    """Yield an iterator of (entry index, member, tar) over layer ``layer``'s tar, in order.

    ``tar.extractfile(member)`` reads a member's bytes while the iterator stands on it.
    Tar errors become FormatError naming the layer; the stream is closed however the block ends.
    """
    lay = image.layers[layer]
    name = where(image, layer)
    try:
        raw = lay.opener()
    except OSError as err:
        raise FormatError(f"{name}: cannot read the layer: {err.strerror or err}") from err
    try:
        try:
            tar = tarfile.open(fileobj=raw, mode="r|", bufsize=BUFSIZE)
        except tarfile.TarError as err:
            raise FormatError(f"{name}: not a tar stream ({err})") from err
        yield _members(tar, lay, name)
    except (tarfile.TarError, EOFError) as err:
        raise TruncatedError(f"{name}: tar stream breaks off or is corrupt ({err})") from err
    finally:
        raw.close()


def _members(tar: tarfile.TarFile, lay: Layer, name: str) -> Iterator[tuple[int, tarfile.TarInfo, tarfile.TarFile]]:
    index = 0
    entries = lay.entries
    for member in tar:
        path = tar_path(member.name)
        if not path:
            continue
        if index >= len(entries) or entries[index].path != path:
            expected = entries[index].path if index < len(entries) else "the end of the layer"
            raise FormatError(f"{name}: tar member {index} is {path!r} but the layer's scan says {expected!r}")
        yield index, member, tar
        index += 1
