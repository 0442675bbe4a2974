"""Wasted bytes two ways (slimmer.analyzer.waste): dive's figure, which counts every copy of a
path found in several layers (the kept copy too, dive issue #684) and sizes a whiteout by the
directory subtree it deletes, beside the true figure (bytes in the layers that the final
filesystem does not hold). Expected numbers are worked out by hand from dive's rules
(dive/filetree/efficiency.go); tests/test_dive.py checks the same rules against the real dive.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from slimmer.analyzer.waste import dive_efficiency, true_waste
from slimmer.layers import merge
from slimmer.model import DIR, FILE, HARDLINK, SYMLINK, Entry, Image, Layer


def entry(spec) -> Entry:
    """"d/" a directory, a bare string an empty file (whiteouts), ("f", 10) a file of 10 bytes,
    ("l", "->t") a symlink, ("h", "=>t") a hardlink."""
    if isinstance(spec, str):
        return Entry(spec.rstrip("/"), DIR, 0, 0o755) if spec.endswith("/") else Entry(spec, FILE, 0)
    path, what = spec
    if isinstance(what, int):
        return Entry(path, FILE, what)
    kind = SYMLINK if what.startswith("->") else HARDLINK
    return Entry(path, kind, 0, link=what[2:])


def image(*layers) -> Image:
    built = []
    for i, specs in enumerate(layers):
        digest = f"sha256:{i:064x}"
        built.append(Layer(digest, digest, 0, tuple(entry(s) for s in specs)))
    return Image(config={}, layers=tuple(built))


# Each case: layers; dive's (wasted bytes, efficiency as minimum/discovered, {path: (count, bytes,
# layers)}); the true waste as {(path, layer, by_layer, how): bytes}.
CASES = [
    pytest.param(
        [[("f", 10)], [("f", 20)]],
        30, Fraction(10, 30), {"f": (2, 30, (0, 1))},
        {("f", 0, 1, "overwritten"): 10},
        id="an overwrite counts both copies for dive and only the lower one as truly wasted"),
    pytest.param(
        [[("f", 10)], [("f", 20)], [("f", 30)]],
        60, Fraction(10, 60), {"f": (3, 60, (0, 1, 2))},
        {("f", 0, 1, "overwritten"): 10, ("f", 1, 2, "overwritten"): 20},
        id="the same path in three layers counts three copies for dive and two as truly wasted"),
    pytest.param(
        [[("f", 10), ("g", 5)], [".wh.f"]],
        10, Fraction(5, 15), {"f": (2, 10, (0, 1))},
        {("f", 0, 1, "deleted"): 10},
        id="a deleted file is wasted for both, its whiteout sized 0 by dive"),
    pytest.param(
        [["d/", ("d/x", 10), ("d/y", 5)], [".wh.d"]],
        0, Fraction(1), {},
        {("d/x", 0, 1, "deleted"): 10, ("d/y", 0, 1, "deleted"): 5},
        id="a deleted directory is invisible to dive's waste but truly wasted"),
    pytest.param(
        [["d/"], [("d/x", 10)], [".wh.d"]],
        0, Fraction(1), {"d": (2, 0, (0, 2))},
        {("d/x", 1, 2, "deleted"): 10},
        id="a directory implied by a later layer's file loses dive's dir flag, so its whiteout weighs 0"),
    pytest.param(
        [["d/"], ["d/", ("d/x", 10)], [".wh.d"]],
        10, Fraction(10, 20), {"d": (2, 10, (0, 2))},
        {("d/x", 1, 2, "deleted"): 10},
        id="a whiteout of a directory listed in the layer below is sized by its subtree"),
    pytest.param(
        [["d/", ("d/x", 4), ".wh.d"], [".wh.d"]],
        8, Fraction(8, 12), {"d": (2, 8, (0, 1))},
        {("d/x", 0, 1, "deleted"): 4},
        id="a whiteout in the first layer is sized from that layer's own tree"),
    pytest.param(
        [["a/", ("a/x", 10)], ["a/.wh..wh..opq"], [".wh.a"]],
        0, Fraction(1), {"a": (2, 0, (1, 2))},
        {("a/x", 0, 1, "deleted"): 10},
        id="an opaque marker without its directory entry leaves dive an empty leaf of that name"),
    pytest.param(
        [["-d/", ("-d/x", 5)], [".wh.-d", "-d/", ("-d/y", 7)], [".wh.-d"]],
        0, Fraction(1), {},
        {("-d/x", 0, 1, "deleted"): 5, ("-d/y", 1, 2, "deleted"): 7},
        id="a name sorting before its whiteout is re-added then removed by dive's stacking"),
    pytest.param(
        [[("f", 10)], [".wh.missing", ("f", 20)]],
        0, Fraction(9, 10), {},
        {("f", 0, 1, "overwritten"): 10},
        id="a whiteout of a missing path stops dive's visit of its layer and lowers the minimum by 1"),
    pytest.param(
        [[("f", 10)], [("f", 20), "zz/.wh.missing"]],
        30, Fraction(9, 30), {"f": (2, 30, (0, 1))},
        {("f", 0, 1, "overwritten"): 10},
        id="a whiteout of a missing path still counts the names dive visited before it"),
    pytest.param(
        [["d/", ("d/x", 10)], ["d/", "d/.wh..wh..opq", ("d/y", 1)]],
        0, Fraction(1), {},
        {("d/x", 0, 1, "deleted"): 10},
        id="an opaque directory is ignored by dive but its hidden children are truly wasted"),
    pytest.param(
        [["a/", "b/"], ["a/", "b/"]],
        0, Fraction(1), {"a": (2, 0, (0, 1)), "b": (2, 0, (0, 1))},
        {},
        id="empty directories listed in two layers are zero-byte inefficiencies for dive"),
    pytest.param(
        [["a/", ("a/f", 1)], ["a/", ("a/g", 2)]],
        0, Fraction(1), {},
        {},
        id="a directory with children is not a leaf, so dive never counts it"),
    pytest.param(
        [[("f", 4), ("f", 6)]],
        0, Fraction(1), {},
        {("f", 0, 0, "overwritten"): 4},
        id="a path listed twice in one layer is one leaf for dive but its first copy is truly wasted"),
    pytest.param(
        [["bin/", ("bin/busybox", 100), ("bin/sh", "=>bin/busybox")], ["bin/", ("bin/sh", "=>bin/busybox")]],
        0, Fraction(1), {"bin/sh": (2, 0, (0, 1))},
        {},
        id="hardlinks weigh nothing for either figure"),
    pytest.param(
        [[("f", 10)], [("f", 10)]],
        20, Fraction(10, 20), {"f": (2, 20, (0, 1))},
        {("f", 0, 1, "overwritten"): 10},
        id="an identical rewrite counts twice for dive and once as truly wasted"),
    pytest.param(
        [[("a", 1)], [("b", 2)]],
        0, Fraction(1), {},
        {},
        id="layers that never touch the same path waste nothing"),
    pytest.param(
        [],
        0, Fraction(1), {},
        {},
        id="an image without layers has efficiency 1"),
]


@pytest.mark.parametrize("layers, wasted, efficiency, paths, truth", CASES)
def test_dive_and_true_waste(layers, wasted, efficiency, paths, truth):
    """dive_efficiency and true_waste give the hand-computed figures."""
    img = image(*layers)
    dive = dive_efficiency(img)
    assert dive.wasted_bytes == wasted
    assert dive.efficiency == pytest.approx(float(efficiency), abs=1e-12)
    assert {w.path: (w.count, w.size, w.layers) for w in dive.paths} == paths
    true = true_waste(merge(img))
    assert {(w.path, w.layer, w.by_layer, w.how): w.size for w in true} == truth


def test_user_wasted_ratio_leaves_out_the_first_layer():
    """dive's user wasted figure divides the wasted bytes by the bytes of every layer but the first."""
    dive = dive_efficiency(image([("f", 100)], [("f", 20), ("g", 30)]))
    assert (dive.size_bytes, dive.user_size_bytes, dive.wasted_bytes) == (150, 50, 120)
    assert dive.user_wasted_percent == pytest.approx(120 / 50)


def test_paths_are_largest_first():
    """dive's inefficient paths come largest first, ties by path."""
    dive = dive_efficiency(image([("a", 1), ("b", 5), ("c", 1)], [("a", 1), ("b", 5), ("c", 1)]))
    assert [(w.path, w.size) for w in dive.paths] == [("b", 10), ("a", 2), ("c", 2)]


def test_true_waste_is_largest_first_and_skips_empty_versions():
    """true_waste lists byte-holding shadowed versions, largest first."""
    true = true_waste(merge(image(["d/", ("d/a", 3), ("d/b", 9), "d/e/"], [".wh.d"])))
    assert [(w.path, w.size) for w in true] == [("d/b", 9), ("d/a", 3)]
