"""Layer tar members as the rewriter addresses them: a *member* is ``(layer index, entry
index)``, the position of an entry in ``layer.entries``, which is also its position among the
tar members that name a path (the root directory member is skipped, as the model does), and
the index ``slimmer.tar.restream`` hands each member over with.

``source_of`` finds which member holds the bytes of a hard link. Imports only the model,
``slimmer.layers`` and the errors.
"""

from __future__ import annotations

from slimmer.layers import MergedFS, Version, hardlink_sources
from slimmer.model import HARDLINK, Image, Layer, columns

Member = tuple[int, int]  # (layer index, entry index)


class MemberIndex:
    """Finds members: the final version of a path, and the source of a hard link."""

    def __init__(self, image: Image, fs: MergedFS):
        self.image = image
        self.fs = fs
        self._last: dict[int, dict[str, int]] = {}
        self._sources: dict[Member, Member] | None = None

    def last_index(self, layer: int, path: str) -> int | None:
        """Return the index of the last entry of ``layer`` named ``path``."""
        table = self._last.get(layer)
        if table is None:
            paths = columns(self.image.layers[layer]).paths  # no record made per entry
            table = self._last[layer] = {path: i for i, path in enumerate(paths)}
        return table.get(path)

    def final(self, version: Version) -> Member:
        """Return the member that holds ``version`` (a final version of the merged filesystem)."""
        return self.final_member(version.layer, version.entry.path)

    def final_member(self, layer: int, path: str) -> Member:
        """Return the member that holds the final version of ``path``, which ``layer`` gives."""
        index = self.last_index(layer, path)
        assert index is not None
        return layer, index

    def source_of(self, member: Member) -> Member:
        """Return the member holding the bytes of ``member``: itself, or for a hard link the
        member ``slimmer.layers.hardlink_sources`` names. Raises FormatError for a link to
        nothing."""
        entry = self.image.layers[member[0]].entries[member[1]]
        if entry.kind != HARDLINK:
            return member
        if self._sources is None:
            self._sources = hardlink_sources(self.image)
        return self._sources[member]


def where(image: Image, layer: int) -> str:
    """Return how messages name layer ``layer`` of ``image``."""
    lay: Layer = image.layers[layer]
    return f"{image.source or 'image'}: layer {layer} ({lay.diff_id})"
