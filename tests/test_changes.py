"""What each layer did (slimmer.analyzer.changes): added, modified and removed versions, read from
the merged filesystem, as the terminal explorer and the HTML page's layer view show them."""

from __future__ import annotations

import pytest

from slimmer.analyzer.attribution import attribute
from slimmer.analyzer.changes import ADDED, MODIFIED, REMOVED, UNCHANGED, LayerChanges, category_of
from slimmer.layers import merge
from slimmer.model import DIR, FILE, Entry, Image, Layer

from builders import WHITEOUT, image, layer, to_model


def _image(*layers) -> Image:
    built = []
    for i, entries in enumerate(layers):
        digest = f"sha256:{i:064x}"
        built.append(Layer(digest, digest, 0, tuple(entries)))
    return Image(config={}, layers=tuple(built))


STACK = to_model(image(
    layer({"a/keep": 10, "a/old": 20, "d/x": 5, "d/y": 6, "o/p": 7, "o/q": 8}),
    layer({"a/old": 30, "a/new": 40, "d/.wh.x": WHITEOUT, "o/.wh..wh..opq": WHITEOUT, "o/r": 9}),
    layer({"a/.wh.keep": WHITEOUT, "a/keep": 12, "a/new": 41, "a/new2": 1}),
))


@pytest.mark.parametrize("index, expected", [
    (0, {("a/keep", ADDED, 0), ("a/old", ADDED, 0), ("d/x", ADDED, 0), ("d/y", ADDED, 0), ("o/p", ADDED, 0),
         ("o/q", ADDED, 0)}),
    (1, {("a/old", MODIFIED, 1), ("a/new", ADDED, 1), ("d/x", REMOVED, 0), ("o/p", REMOVED, 0),
         ("o/q", REMOVED, 0), ("o/r", ADDED, 1)}),
    (2, {("a/keep", MODIFIED, 2), ("a/new", MODIFIED, 2), ("a/new2", ADDED, 2)}),
], ids=["the first layer adds everything it holds",
        "an overwrite is modified, a whiteout and an opaque dir remove the versions below, with their layer",
        "a path deleted and given again by one layer is modified, not removed"])
def test_each_layer_says_what_it_added_modified_and_removed(index, expected):
    """``of_layer`` marks each version a layer gives and lists what its whiteouts deleted."""
    changes = LayerChanges(merge(STACK))
    got = {(c.path, c.mark, c.layer) for c in changes.of_layer(index)}
    assert got == expected


def test_removed_versions_carry_the_size_of_what_was_deleted():
    """A removed change holds the deleted entry, so its bytes can be shown where it was removed."""
    changes = LayerChanges(merge(STACK))
    sizes = {c.path: c.entry.size for c in changes.of_layer(1) if c.mark == REMOVED}
    assert sizes == {"d/x": 5, "o/p": 7, "o/q": 8}


def test_a_path_listed_twice_in_one_layer_is_one_change():
    """The last of two entries for one path in a layer is the version it gives."""
    img = _image([Entry("a", FILE, 1)], [Entry("a", FILE, 2), Entry("a", FILE, 3)])
    changes = LayerChanges(merge(img))
    assert [(c.path, c.entry.size, c.mark) for c in changes.of_layer(1)] == [("a", 3, MODIFIED)]


@pytest.mark.parametrize("old, new, mark", [
    (Entry("d", DIR, 0, 0o755), Entry("d", DIR, 0, 0o755), UNCHANGED),
    (Entry("d", DIR, 0, 0o755), Entry("d", DIR, 0, 0o700), MODIFIED),
    (Entry("d", DIR, 0, 0o755), Entry("d", DIR, 0, 0o755, uid=1000), MODIFIED),
], ids=["a directory listed again as it was is unchanged", "a new mode modifies it", "a new owner modifies it"])
def test_a_directory_listed_again(old, new, mark):
    """Directories that later layers list again (every layer lists its parents) are marked by their attributes."""
    changes = LayerChanges(merge(_image([old], [new])))
    assert [c.mark for c in changes.of_layer(1)] == [mark]


def test_shadowed_later_and_the_category_of_every_version():
    """A version a later layer replaces is shadowed later; the category lookup finds final files
    and replaced versions alike, and nothing for what is not a file."""
    fs = merge(STACK)
    changes = LayerChanges(fs)
    assert changes.shadowed_later("a/old", 0) and not changes.shadowed_later("a/old", 1)
    category = category_of(attribute(STACK, fs, read=False))
    assert category("a/old", 1) == "other" and category("a/old", 0) == "other"
    assert category("a/old", 2) is None and category("nothing/here", 0) is None
