"""The merged filesystem view (slimmer.layers): whiteouts, opaque dirs, replacement of a
directory by a file and back, implied parents, hardlinks, duplicate paths in one layer.

Images are model objects built in code; each case lists the layers' entries in tar order and
the expected final view and shadowed versions.
"""

from __future__ import annotations

import pytest

from slimmer.layers import DELETED, OVERWRITTEN, is_whiteout, merge, visible_at, whiteout_target
from slimmer.model import DIR, FILE, HARDLINK, SYMLINK, Entry, Image, Layer

# ---- building images from short specs ------------------------------------------------------
# An entry spec: "d/" a directory, ".../.wh.x" a whiteout (an empty file), ("f", 10) a file of
# 10 bytes, ("l", "->t") a symlink to t, ("h", "=>t") a hardlink to t.


def entry(spec) -> Entry:
    if isinstance(spec, str):
        if spec.endswith("/"):
            return Entry(spec.rstrip("/"), DIR, 0, 0o755)
        return Entry(spec, FILE, 0)
    path, what = spec
    if isinstance(what, int):
        return Entry(path, FILE, what)
    if what.startswith("->"):
        return Entry(path, SYMLINK, 0, 0o777, link=what[2:])
    if what.startswith("=>"):
        return Entry(path, HARDLINK, 0, link=what[2:])
    raise ValueError(spec)


def image(*layers) -> Image:
    built = []
    for i, specs in enumerate(layers):
        digest = f"sha256:{i:064x}"
        built.append(Layer(digest, digest, 0, tuple(entry(s) for s in specs)))
    return Image(config={}, layers=tuple(built))


def final_view(fs) -> dict:
    """path -> (layer, kind, size) for entries; path -> None for implied directories."""
    return {path: (v.layer, v.entry.kind, v.entry.size) if v else None for path, v in fs.walk()}


def shadowed(fs) -> set:
    return {(s.path, s.layer, s.by_layer, s.how) for s in fs.shadowed}


# ---- the table -----------------------------------------------------------------------------

F, D, S, H = FILE, DIR, SYMLINK, HARDLINK
OVER, DEL = OVERWRITTEN, DELETED

CASES = [
    pytest.param(
        [["a/", ("a/f", 10)], ["a/", ("a/f", 20)]],
        {"a": (1, D, 0), "a/f": (1, F, 20)},
        {("a", 0, 1, OVER), ("a/f", 0, 1, OVER)},
        id="a file written again in a later layer keeps the later version and shadows the earlier"),
    pytest.param(
        [[("f", 10)], [("f", 20)], [("f", 30)]],
        {"f": (2, F, 30)},
        {("f", 0, 1, OVER), ("f", 1, 2, OVER)},
        id="the same path in three layers shadows the two lower versions"),
    pytest.param(
        [[("f", 10), ("g", 1)], [".wh.f"]],
        {"g": (0, F, 1)},
        {("f", 0, 1, DEL)},
        id="a whiteout deletes a lower file and is not itself in the view"),
    pytest.param(
        [["d/", ("d/x", 5), "d/y/", ("d/y/z", 7)], [".wh.d"]],
        {},
        {("d", 0, 1, DEL), ("d/x", 0, 1, DEL), ("d/y", 0, 1, DEL), ("d/y/z", 0, 1, DEL)},
        id="a whiteout of a directory deletes its whole subtree"),
    pytest.param(
        [[("d/x", 5), ("d/y/z", 7)], [".wh.d"]],
        {},
        {("d/x", 0, 1, DEL), ("d/y/z", 0, 1, DEL)},
        id="a whiteout of an implied directory deletes the files below it"),
    pytest.param(
        [[("f", 10)], [".wh.nothing", ("g", 1)]],
        {"f": (0, F, 10), "g": (1, F, 1)},
        set(),
        id="a whiteout of a path no lower layer has changes nothing"),
    pytest.param(
        [[".wh.f", ("f", 3)]],
        {"f": (0, F, 3)},
        set(),
        id="a whiteout in the first layer deletes nothing, not even its own layer's file"),
    pytest.param(
        [[("f", 10)], [("f", 4), ".wh.f"]],
        {"f": (1, F, 4)},
        {("f", 0, 1, DEL)},
        id="a whiteout listed after its layer's own file deletes only the lower version"),
    pytest.param(
        [["d/", ("d/x", 5), ("d/y", 6)], ["d/", "d/.wh..wh..opq", ("d/n", 3)]],
        {"d": (1, D, 0), "d/n": (1, F, 3)},
        {("d", 0, 1, OVER), ("d/x", 0, 1, DEL), ("d/y", 0, 1, DEL)},
        id="an opaque directory hides every lower child and keeps its own layer's children"),
    pytest.param(
        [["d/", ("d/x", 5)], ["d/", ("d/n", 3), "d/.wh..wh..opq"]],
        {"d": (1, D, 0), "d/n": (1, F, 3)},
        {("d", 0, 1, OVER), ("d/x", 0, 1, DEL)},
        id="an opaque marker listed after its layer's children still keeps them"),
    pytest.param(
        [["d/", "d/e/", ("d/e/x", 5)], ["d/", "d/e/", "d/e/.wh..wh..opq"]],
        {"d": (1, D, 0), "d/e": (1, D, 0)},
        {("d", 0, 1, OVER), ("d/e", 0, 1, OVER), ("d/e/x", 0, 1, DEL)},
        id="an opaque nested directory hides only what is below it"),
    pytest.param(
        [["d/", ("d/x", 5)], [("d", 9)]],
        {"d": (1, F, 9)},
        {("d", 0, 1, OVER), ("d/x", 0, 1, OVER)},
        id="a file replacing a directory hides the directory's subtree"),
    pytest.param(
        [["d/", ("d/x", 5)], [("d", "->elsewhere")]],
        {"d": (1, S, 0)},
        {("d", 0, 1, OVER), ("d/x", 0, 1, OVER)},
        id="a symlink replacing a directory hides the directory's subtree"),
    pytest.param(
        [[("d", 9)], [("d/x", 5)]],
        {"d": None, "d/x": (1, F, 5)},
        {("d", 0, 1, OVER)},
        id="a file below a lower file turns that path into an implied directory"),
    pytest.param(
        [[("d", 9)], ["d/", ("d/x", 5)], [("d", 3)]],
        {"d": (2, F, 3)},
        {("d", 0, 1, OVER), ("d", 1, 2, OVER), ("d/x", 1, 2, OVER)},
        id="a file replaced by a directory and that by a file again keeps only the last file"),
    pytest.param(
        [["d/", ("d/x", 5)], [".wh.d", ("d", 4)]],
        {"d": (1, F, 4)},
        {("d", 0, 1, DEL), ("d/x", 0, 1, DEL)},
        id="a whiteout and a new file of the same name in one layer replace the directory"),
    pytest.param(
        [[("a/b/c/f", 1)]],
        {"a": None, "a/b": None, "a/b/c": None, "a/b/c/f": (0, F, 1)},
        set(),
        id="parents never listed in the tar are implied directories without a version"),
    pytest.param(
        [[("a/f", 1)], ["a/"]],
        {"a": (1, D, 0), "a/f": (0, F, 1)},
        set(),
        id="a directory entry over an implied directory keeps the files below it"),
    pytest.param(
        [["a/", ("a/f", 1)], ["a/", ("a/g", 2)]],
        {"a": (1, D, 0), "a/f": (0, F, 1), "a/g": (1, F, 2)},
        {("a", 0, 1, OVER)},
        id="a directory listed again merges its children with the lower ones"),
    pytest.param(
        [["bin/", ("bin/busybox", 100), ("bin/sh", "=>bin/busybox"), ("bin/ls", "=>bin/busybox")]],
        {"bin": (0, D, 0), "bin/busybox": (0, F, 100), "bin/ls": (0, H, 0), "bin/sh": (0, H, 0)},
        set(),
        id="hardlinks are entries of their own with no bytes"),
    pytest.param(
        [["bin/", ("bin/busybox", 100), ("bin/sh", "=>bin/busybox")], ["bin/", ("bin/busybox", 50)]],
        {"bin": (1, D, 0), "bin/busybox": (1, F, 50), "bin/sh": (0, H, 0)},
        {("bin", 0, 1, OVER), ("bin/busybox", 0, 1, OVER)},
        id="overwriting a hardlink's target leaves the lower hardlink in place"),
    pytest.param(
        [[("f", 1), ("f", 2)]],
        {"f": (0, F, 2)},
        {("f", 0, 0, OVER)},
        id="a path listed twice in one layer keeps the later member"),
    pytest.param(
        [["d/", ("d/x", 1), ("d", 2)]],
        {"d": (0, F, 2)},
        {("d", 0, 0, OVER), ("d/x", 0, 0, OVER)},
        id="a file listed after a directory of the same name in one layer replaces it"),
    pytest.param(
        [[("l", "->target")], [("l", 7)]],
        {"l": (1, F, 7)},
        {("l", 0, 1, OVER)},
        id="a file replacing a symlink shadows the symlink"),
    pytest.param(
        [[("l", "->/real")], [("l/x", 7)]],
        {"l": None, "l/x": (1, F, 7)},
        {("l", 0, 1, OVER)},
        id="a file below a lower symlink replaces the symlink rather than following it"),
]


@pytest.mark.parametrize("layers, view, hidden", CASES)
def test_merged_view(layers, view, hidden):
    """The merged view holds exactly the expected final versions, and shadowed the hidden ones."""
    fs = merge(image(*layers))
    assert final_view(fs) == view
    assert shadowed(fs) == hidden


@pytest.mark.parametrize("layers, upto, view", [
    pytest.param([[("f", 1)], [("f", 2)], [".wh.f"]], 1, {"f": (0, F, 1)},
                 id="merging only the first layer sees its own version"),
    pytest.param([[("f", 1)], [("f", 2)], [".wh.f"]], 2, {"f": (1, F, 2)},
                 id="merging two layers sees the overwrite but not the later delete"),
    pytest.param([[("f", 1)], [("f", 2)], [".wh.f"]], None, {},
                 id="merging every layer sees the delete"),
])
def test_merge_upto(layers, upto, view):
    """merge(image, upto) stacks only the first `upto` layers."""
    assert final_view(merge(image(*layers), upto)) == view


@pytest.mark.parametrize("layers, view, hidden", CASES)
def test_visible_at_reads_every_partial_merge_from_the_whole_one(layers, view, hidden):
    """visible_at(merge(image), i) yields exactly the entries merge(image, i + 1) holds, for
    every layer i, without merging again."""
    img = image(*layers)
    fs = merge(img)
    for i in range(len(img.layers)):
        expected = {path: (v.layer, v.entry) for path, v in merge(img, i + 1).walk() if v is not None}
        got = [(path, (v.layer, v.entry)) for path, v in visible_at(fs, i)]
        assert dict(got) == expected, f"after layer {i}"
        assert len(got) == len(expected), f"a path yielded twice after layer {i}"


@pytest.mark.parametrize("path, expected", [
    pytest.param("a/.wh.b", ("whiteout", "a/b"), id="a whiteout names the sibling it deletes"),
    pytest.param(".wh.top", ("whiteout", "top"), id="a whiteout at the root names a top-level path"),
    pytest.param("a/.wh..wh..opq", ("opaque", "a"), id="the opaque marker names its directory"),
    pytest.param("a/.wh..wh.plnk", ("other", "a"), id="another .wh..wh. name is a marker, not a whiteout"),
    pytest.param("a/.wh.", ("other", "a"), id="a bare .wh. prefix deletes nothing"),
    pytest.param("a/b.wh.c", None, id="a name holding .wh. but not starting with it is a plain file"),
    pytest.param("a/b", None, id="a plain path is not a whiteout"),
])
def test_whiteout_target(path, expected):
    """whiteout_target classifies an entry path by the OCI whiteout naming rules."""
    assert whiteout_target(path) == expected


@pytest.mark.parametrize("path, expected", [
    pytest.param("a/.wh.b", True, id="a whiteout entry is a whiteout"),
    pytest.param("a/.wh..wh..opq", True, id="an opaque marker is a whiteout"),
    pytest.param("a/b", False, id="a plain file is not"),
])
def test_is_whiteout(path, expected):
    """is_whiteout tells markers from files by the basename's .wh. prefix."""
    assert is_whiteout(Entry(path, FILE)) is expected


def test_queries_answer_from_the_final_view():
    """get, exists and children answer from the final view, implied directories included."""
    fs = merge(image([("a/b/f", 1), ("a/c", 2)], ["a/.wh.c"]))
    assert fs.get("a/b/f").layer == 0
    assert fs.get("a/b") is None and fs.exists("a/b")
    assert not fs.exists("a/c") and fs.get("a/c") is None
    assert fs.children("") == ["a"]
    assert fs.children("a") == ["b"]
    assert [p for p, _ in fs.files()] == ["a/b/f"]
