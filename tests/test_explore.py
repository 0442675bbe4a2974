"""`slimmer explore`: the explorer's model (marks, the two views of a layer, filters, the lazy
tree's rows) and its screen, driven by Textual's test pilot on an image built in code with
an add, an overwrite, a whiteout and an opaque dir; the first screen is compared with a
checked-in SVG snapshot, and the README's screenshot is made here too.

Snapshots: ``SLIMMER_UPDATE_SNAPSHOTS=1`` rewrites them (then look at them before committing).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from slimmer.analyzer import report
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.explorer import filters
from slimmer.explorer.index import ImageIndex
from slimmer.explorer.state import TreeState
from slimmer.explorer.tree import CHANGES, MERGED, build
from slimmer.layers import merge
from slimmer.reader import Options, open_image

from builders import WHITEOUT, Dir, File, Symlink, image, layer, to_model

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "snapshots" / "explore-first-screen.svg"
README_SHOT = ROOT / "docs" / "explore.svg"
UPDATE = bool(os.environ.get("SLIMMER_UPDATE_SNAPSHOTS"))

DPKG_STATUS = b"Package: demo\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n"


def sample():
    """Three layers: a small rootfs (a dpkg package owning /bin/sh and a README), then an app
    that adds files and overwrites /etc/os-release, then a cleanup that whites out
    /app/big.bin and makes /app/cache opaque (adding c). An ENV step makes no layer."""
    return image(
        layer({"bin/sh": 2_000, "etc/os-release": b"ID=test\n", "usr/lib": Symlink("../lib"),
               "usr/share/doc/README": 1_500, "var/lib/dpkg/status": DPKG_STATUS,
               "var/lib/dpkg/info/demo.list": b"/bin/sh\n/usr/share/doc/README\n"},
              created_by="ADD rootfs.tar /", auto_dirs=True),
        layer({"app": Dir(), "app/big.bin": 300_000, "app/cache": Dir(), "app/cache/a": 10,
               "app/cache/b": File(20, mode=0o600, uid=1000, gid=1000), "etc/os-release": b"ID=test\nVERSION=2\n"},
              created_by="COPY app /app"),
        layer({"app/.wh.big.bin": WHITEOUT, "app/cache": Dir(), "app/cache/.wh..wh..opq": WHITEOUT,
               "app/cache/c": 5}, created_by="RUN rm /app/big.bin && rm -rf /app/cache/* && touch /app/cache/c"),
        entrypoint=["/bin/sh"], empty_steps=[(1, "ENV APP=/app")], tag="sample/app:1")


@pytest.fixture(scope="module")
def ix():
    """The sample's index with its analysis attached."""
    img = to_model(sample())
    return ImageIndex(img, analysis=report.analyze(img))


def opened(ix, layer: int, mode: str, text: str = "") -> TreeState:
    """The tree state of a view under a filter line, every directory open."""
    state = TreeState(ix, build(ix, layer, mode), filters.parse(text))
    state.expand_all()
    return state


def paths_of(state: TreeState) -> list[str]:
    view = state.view
    return [view.path[n] + ("/" if view.is_dir(n) else "") for n in state.rows.nodes]


def rows_of(ix, layer: int, mode: str, text: str = "") -> list[str]:
    """The rows of a view, every directory open: mark, shadowed-later star, size, path."""
    state = opened(ix, layer, mode, text)
    view = state.view
    out = []
    for n in state.rows.nodes:
        star = "*" if view.flags[n] & 1 else " "
        out.append(f"{view.mark_of(n)}{star} {state.size[n] if view.is_dir(n) or view.entry[n] else '-'} "
                   f"{view.path[n]}{'/' if view.is_dir(n) else ''}")
    return out


# ---- the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layer, mode, expected", [
    pytest.param(1, CHANGES, [
        "+  300030 app/", "+* 300000 app/big.bin", "+  30 app/cache/", "+* 10 app/cache/a", "+* 20 app/cache/b",
        "   18 etc/", "~  18 etc/os-release",
    ], id="a layer's changes: what it adds (and a later layer deletes) and what it overwrites"),
    pytest.param(2, CHANGES, [
        "   5 app/", "-  300000 app/big.bin", "   5 app/cache/", "-  10 app/cache/a", "-  20 app/cache/b",
        "+  5 app/cache/c",
    ], id="a whiteout and an opaque dir show what they delete, in place, with its sizes"),
    pytest.param(1, MERGED, [
        "+  300030 app/", "+* 300000 app/big.bin", "+  30 app/cache/", "+* 10 app/cache/a", "+* 20 app/cache/b",
        "   2000 bin/", "   2000 bin/sh", "   18 etc/", "~  18 etc/os-release", "   1500 usr/", "   0 usr/lib",
        "   1500 usr/share/", "   1500 usr/share/doc/", "   1500 usr/share/doc/README", "   107 var/",
        "   107 var/lib/",
        "   107 var/lib/dpkg/", "   30 var/lib/dpkg/info/", "   30 var/lib/dpkg/info/demo.list",
        "   77 var/lib/dpkg/status",
    ], id="the merged filesystem up to a layer marks that layer's changes only"),
    pytest.param(0, MERGED, [
        "+  2000 bin/", "+  2000 bin/sh", "+  8 etc/", "+* 8 etc/os-release", "+  1500 usr/", "+  0 usr/lib",
        "+  1500 usr/share/", "+  1500 usr/share/doc/", "+  1500 usr/share/doc/README", "+  107 var/",
        "+  107 var/lib/",
        "+  107 var/lib/dpkg/", "+  30 var/lib/dpkg/info/", "+  30 var/lib/dpkg/info/demo.list",
        "+  77 var/lib/dpkg/status",
    ], id="the first layer adds everything; the version a later layer overwrites is starred"),
])
def test_views_of_a_layer(ix, layer, mode, expected):
    """Each view shows exactly its versions with their marks and the bytes below each directory."""
    assert rows_of(ix, layer, mode) == expected


def test_the_merged_view_holds_what_merging_up_to_the_layer_holds(ix):
    """The merged view of layer i has the paths of merge(image, i + 1), and the removed ones
    of layer i besides (shown in place, as dive shows them)."""
    img = ix.image
    for i in range(len(img.layers)):
        view = build(ix, i, MERGED)
        fs = merge(img, i + 1)
        expected = {p for p, _v in fs.walk()}
        removed = {view.path[n] for n in range(1, len(view)) if view.mark_of(n) == "-"}
        assert {view.path[n] for n in range(1, len(view))} - removed == expected, f"layer {i}"
        for n in range(1, len(view)):
            path = view.path[n]
            if path in expected and fs.get(path) is not None:
                assert view.entry[n] == fs.get(path).entry and view.vlayer[n] == fs.get(path).layer


def test_a_directory_listed_again_unchanged_is_not_marked_modified(ix):
    """app/cache listed again by the cleanup layer with the same mode and owner is unchanged;
    it is flagged opaque."""
    view = build(ix, 2, CHANGES)
    n = view.node("app/cache")
    assert view.mark_of(n) == " " and view.flags[n] & 2


def test_a_whiteout_of_nothing_shows_as_a_removed_path_without_a_version():
    """A whiteout naming a path the layers below lack is a removed node with no entry."""
    img = to_model(image(layer({"a": 1}), layer({".wh.ghost": WHITEOUT})))
    ix = ImageIndex(img)
    view = build(ix, 1, CHANGES)
    n = view.node("ghost")
    assert view.mark_of(n) == "-" and view.entry[n] is None and view.flags[n] & 4


@pytest.mark.parametrize("layer, mode, text, expected", [
    pytest.param(1, CHANGES, "*.bin", ["app/", "app/big.bin"], id="a glob without a slash matches names"),
    pytest.param(1, CHANGES, "app/cache/*", ["app/", "app/cache/", "app/cache/a", "app/cache/b"],
                 id="a glob with a slash matches whole paths"),
    pytest.param(1, CHANGES, "cache", ["app/", "app/cache/", "app/cache/a", "app/cache/b"],
                 id="a plain word is a substring of the path"),
    pytest.param(1, CHANGES, "OS-RELEASE", [], id="a word with capitals matches case"),
    pytest.param(1, CHANGES, "os-RELEASE", [], id="mixed case too"),
    pytest.param(1, MERGED, "re:^etc/", ["etc/", "etc/os-release"], id="re: searches a regular expression"),
    pytest.param(1, MERGED, "/release$/", ["etc/", "etc/os-release"], id="/REGEX/ is a regular expression too"),
    pytest.param(0, CHANGES, "cat:docs", ["usr/", "usr/share/", "usr/share/doc/", "usr/share/doc/README"],
                 id="cat: keeps the files of a category"),
    pytest.param(0, CHANGES, "pkg:demo", ["bin/", "bin/sh", "usr/", "usr/share/", "usr/share/doc/",
                                          "usr/share/doc/README"], id="pkg: keeps the files a package owns"),
    pytest.param(1, CHANGES, "pkg:none >15", ["app/", "app/big.bin", "app/cache/", "app/cache/b", "etc/",
                                               "etc/os-release"], id="pkg:none and a size combine"),
    pytest.param(1, CHANGES, ">100k", ["app/", "app/big.bin"], id=">SIZE keeps files larger than it"),
    pytest.param(1, CHANGES, ">=20", ["app/", "app/big.bin", "app/cache/", "app/cache/b"],
                 id=">=SIZE keeps files at least that large"),
    pytest.param(1, MERGED, "changed", ["app/", "app/big.bin", "app/cache/", "app/cache/a", "app/cache/b", "etc/",
                                        "etc/os-release"], id="changed keeps what the layer changes"),
    pytest.param(1, CHANGES, "wasted", ["app/", "app/big.bin", "app/cache/", "app/cache/a", "app/cache/b"],
                 id="wasted keeps what a later layer deletes or replaces"),
    pytest.param(2, CHANGES, "removed", ["app/", "app/big.bin", "app/cache/", "app/cache/a", "app/cache/b"],
                 id="removed keeps what the layer deletes"),
    pytest.param(2, MERGED, "added", ["app/", "app/cache/", "app/cache/c"], id="added keeps what the layer adds"),
])
def test_filters(ix, layer, mode, text, expected):
    """A filter line keeps the files it asks for and the directories above them."""
    assert paths_of(opened(ix, layer, mode, text)) == expected


@pytest.mark.parametrize("text, message", [
    pytest.param("re:(", "bad regular expression", id="a regular expression that does not compile"),
    pytest.param("cat:nonsense", "unknown category 'nonsense'", id="an unknown category"),
    pytest.param(">lots", "expected a size like 500MB", id="a size that is not one"),
    pytest.param('"unclosed', "unreadable filter", id="an unclosed quote"),
])
def test_filter_errors_say_what_is_wrong(text, message):
    """An unreadable filter raises FilterError naming the word and why."""
    with pytest.raises(filters.FilterError, match=message):
        filters.parse(text)


def test_sizes_under_a_filter_count_what_it_keeps(ix):
    """With a filter, a directory's size is that of the files the filter keeps below it."""
    state = TreeState(ix, build(ix, 1, CHANGES), filters.parse("cache"))
    assert state.size[state.view.node("app")] == 30 and state.matches == 2


def test_the_tree_opens_collapses_sorts_and_reveals(ix):
    """Directories open and close one by one or all at once, sort by name or size, and a
    revealed node has its parents opened and the cursor on it."""
    state = TreeState(ix, build(ix, 1, MERGED))
    view = state.view
    top = [view.path[n] for n in state.rows.nodes if view.depth(n) == 0]
    assert top == ["app", "bin", "etc", "usr", "var"]
    state.collapse_all()
    assert [view.path[n] for n in state.rows.nodes] == top
    state.set_sort("size")
    assert [view.path[n] for n in state.rows.nodes] == ["app", "bin", "usr", "var", "etc"]
    state.set_sort("name")
    assert state.reveal(view.node("usr/share/doc/README"))
    assert view.path[state.node] == "usr/share/doc/README"
    assert [view.path[n] for n in state.rows.nodes][:7] == ["app", "bin", "etc", "usr", "usr/lib", "usr/share",
                                                          "usr/share/doc"]
    state.move_to(state.rows.index(view.node("usr")))
    state.toggle()
    assert "usr/lib" not in [view.path[n] for n in state.rows.nodes]
    state.collapse_all()
    state.toggle_all()
    assert len(state.rows) == len(view) - 1
    state.toggle_all()
    assert [view.path[n] for n in state.rows.nodes] == top


def test_a_large_view_opens_only_its_top_levels():
    """A view of thousands of files opens level by level within a budget of rows: never a
    row per file up front."""
    files = {f"srv/d{i}/f{j}": 1 for i in range(50) for j in range(100)}
    img = to_model(image(layer(files, auto_dirs=True)))
    state = TreeState(ImageIndex(img), build(ImageIndex(img), 0, CHANGES))
    assert len(state.view) == 1 + 1 + 50 + 5000
    assert len(state.rows) == 51  # srv and its 50 directories, closed
    state.expand_all()
    assert len(state.rows) == 5051


# ---- the screen ----------------------------------------------------------------------------------


def app_for(img, theme: str = "dark"):
    from slimmer.explorer.app import ExplorerApp

    pending = report.start(img)
    return ExplorerApp(ImageIndex(img, pending.fs), "sample.tar", theme, pending)


async def analysed(app, pilot) -> None:
    """Wait until the analysis thread has delivered (the findings and categories are shown)."""
    for _ in range(500):
        if app.ix.analysis is not None:
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError("the analysis never arrived")


def drawn(app) -> list[str]:
    """The tree's rows as it draws them."""
    from slimmer.explorer.widgets import FileTree

    tree = app.query_one(FileTree)
    if tree.state is None:
        return []
    return [tree.line(tree.state, r, tree.size.width).plain.rstrip() for r in range(len(tree.state.rows))]


def title(app) -> str:
    return str(app.query_one("#right").border_title)


def drive(img, steps, size=(80, 24)):
    """Run the explorer on ``img`` under the pilot: ``steps(app, pilot)`` is awaited after the
    analysis arrived."""
    async def main():
        app = app_for(img)
        async with app.run_test(size=size) as pilot:
            await analysed(app, pilot)
            await steps(app, pilot)
    asyncio.run(main())


def test_selecting_layers_shows_each_ones_changes():
    """Down in the layers pane walks the steps, the one without a layer in place; the tree
    shows the selected layer's own changes."""
    async def steps(app, pilot):
        assert title(app) == "Layer 0 · its changes"
        assert app.focused.id == "layers"
        await pilot.press("down")
        assert title(app) == "no layer"
        await pilot.press("down")
        assert title(app) == "Layer 1 · its changes"
        assert drawn(app) == [
            "+  300.0 kB ├─ app/",
            "+* 300.0 kB │  ├─ big.bin",
            "+      30 B │  └─ cache/",
            "+*     10 B │     ├─ a",
            "+*     20 B │     └─ b",
            "       18 B └─ etc/",
            "~      18 B    └─ os-release",
        ]
        await pilot.press("down")
        assert title(app) == "Layer 2 · its changes"
        assert drawn(app) == [
            "        5 B └─ app/",
            "-  300.0 kB    ├─ big.bin",
            "        5 B    └─ cache/ (opaque)",
            "-      10 B       ├─ a",
            "-      20 B       ├─ b",
            "+       5 B       └─ c",
        ]
    drive(to_model(sample()), steps)


def test_switching_views_shows_the_merged_filesystem_and_back():
    """Ctrl+A shows the merged filesystem up to the selected layer, its own changes marked;
    Ctrl+L its changes again; v switches between the two."""
    async def steps(app, pilot):
        await pilot.press("down", "down", "down")
        await pilot.press("ctrl+a")
        assert title(app) == "Layer 2 · merged up to it"
        assert drawn(app) == [
            "        5 B ├─ app/",
            "-  300.0 kB │  ├─ big.bin",
            "        5 B │  └─ cache/ (opaque)",
            "-      10 B │     ├─ a",
            "-      20 B │     ├─ b",
            "+       5 B │     └─ c",
            "     2.0 kB ├─ bin/",
            "     2.0 kB │  └─ sh",
            "       18 B ├─ etc/",
            "       18 B │  └─ os-release",
            "     1.5 kB ├─ usr/",
            "        0 B │  ├─ lib → ../lib",
            "     1.5 kB │  └─ share/",
            "     1.5 kB │     └─ doc/",
            "     1.5 kB │        └─ README",
            "      107 B └─ var/",
            "      107 B    └─ lib/",
            "      107 B       └─ dpkg/",
            "       30 B          ├─ info/",
            "       30 B          │  └─ demo.list",
            "       77 B          └─ status",
        ]
        await pilot.press("ctrl+l")
        assert title(app) == "Layer 2 · its changes"
        await pilot.press("v")
        assert title(app) == "Layer 2 · merged up to it"
    drive(to_model(sample()), steps)


def test_filtering_collapsing_and_expanding_the_tree():
    """Ctrl+F opens the filter line; what is typed filters the tree; Space collapses the
    directory under the cursor, Ctrl+Space collapses and expands them all; Esc clears."""
    async def steps(app, pilot):
        await pilot.press("ctrl+a", "tab")
        assert app.focused.id == "tree"
        await pilot.press("ctrl+f")
        assert app.focused.id == "filter"
        await pilot.press(*"share", "enter")
        assert app.focused.id == "tree"
        assert drawn(app) == [
            "+    1.5 kB └─ usr/",
            "+    1.5 kB    └─ share/",
            "+    1.5 kB       └─ doc/",
            "+    1.5 kB          └─ README",
        ]
        assert str(app.query_one("#right").border_subtitle) == "share · 1 files, 1.5 kB"
        await pilot.press("down", "space")
        assert drawn(app) == ["+    1.5 kB └─ usr/", "+    1.5 kB    └─ ▸ share/"]
        await pilot.press("ctrl+space")
        assert drawn(app) == ["+    1.5 kB └─ ▸ usr/"]
        await pilot.press("ctrl+space")
        assert len(drawn(app)) == 4
        await pilot.press("escape")
        assert len(drawn(app)) == 15 and app.flt.text == ""
    drive(to_model(sample()), steps)


def test_typing_a_bad_filter_says_why_and_keeps_the_tree():
    """An unreadable filter line is reported under the tree; the tree keeps its last filter."""
    async def steps(app, pilot):
        await pilot.press("ctrl+f", *"re:(", "enter")
        assert "bad regular expression" in str(app.query_one("#details").render())
        assert len(drawn(app)) == 15
    drive(to_model(sample()), steps)


def test_opening_a_finding_shows_its_files_in_the_layer_that_made_them():
    """Enter on a finding selects the layer holding its bytes and shows only its files there."""
    async def steps(app, pilot):
        await pilot.press("tab", "tab")
        assert app.focused.id == "findings"
        await pilot.press("enter")
        assert title(app) == "Layer 1 · its changes"
        assert app.query_one("#layers").highlighted == 2  # the layer, after the ENV step
        assert drawn(app) == [
            "+  300.0 kB └─ app/",
            "+* 300.0 kB    ├─ big.bin",
            "+      30 B    └─ cache/",
            "+*     10 B       ├─ a",
            "+*     20 B       └─ b",
        ]
        assert str(app.query_one("#right").border_subtitle).startswith("finding 1 · 3 files")
        await pilot.press("down")
        await pilot.press("enter")
        assert title(app) == "Layer 0 · its changes"
        assert drawn(app)[-1] == "+    1.5 kB          └─ README"
    drive(to_model(sample()), steps)


def test_choosing_wasted_bytes_puts_the_cursor_on_them():
    """Enter on a row of the waste pane shows that version in its layer, the cursor on it."""
    async def steps(app, pilot):
        assert "true     300.0 kB" in str(app.query_one("#waste").get_option_at_index(0).prompt)
        await pilot.press("tab", "tab", "tab", "enter")
        state = app.query_one("#tree").state
        assert title(app) == "Layer 1 · its changes"
        assert state.view.path[state.node] == "app/big.bin"
        assert app.focused.id == "tree"
        details = str(app.query_one("#details").render())
        assert "/app/big.bin" in details and "replaced or deleted by layer 2" in details
    drive(to_model(sample()), steps)


def test_the_keys_and_full_texts_open_on_demand():
    """? lists the keys; i on a layer shows its full step; Esc closes either."""
    async def steps(app, pilot):
        await pilot.press("question_mark")
        assert "Ctrl+Space" in str(app.screen.query_one("Static").render())
        await pilot.press("escape")
        await pilot.press("down", "down", "down", "i")
        text = str(app.screen.query_one("Static").render())
        assert "RUN rm /app/big.bin && rm -rf /app/cache/* && touch /app/cache/c" in text
        assert "diff_id sha256:" in text
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]
    drive(to_model(sample()), steps)


def test_a_click_selects_a_row_and_a_second_click_folds_it():
    """The mouse is optional but works: a click moves the cursor, a second one folds a directory."""
    async def steps(app, pilot):
        tree = app.query_one("#tree")
        await pilot.click("#tree", offset=(20, 1))
        assert tree.state.view.path[tree.state.node] == "bin/sh"
        await pilot.click("#tree", offset=(20, 0))
        assert tree.state.view.path[tree.state.node] == "bin"
        assert drawn(app)[1].endswith("sh")
        await pilot.click("#tree", offset=(20, 0))
        assert drawn(app)[0].endswith("▸ bin/") and drawn(app)[1].endswith("etc/")
    drive(to_model(sample()), steps)


def test_names_with_control_characters_are_drawn_escaped():
    """A file name holding an escape sequence is drawn with the escape written out."""
    async def steps(app, pilot):
        assert any("evil\\x1b[2Jname" in line for line in drawn(app))
        assert not any("\x1b" in line for line in drawn(app))
    drive(to_model(image(layer({"evil\x1b[2Jname": 3}))), steps)


# ---- snapshots ------------------------------------------------------------------------------------


def screenshot(img, size, keys=(), theme="dark") -> str:
    """Return the SVG of the screen after ``keys``."""
    out = {}

    async def main():
        app = app_for(img, theme)
        async with app.run_test(size=size) as pilot:
            await analysed(app, pilot)
            for key in keys:
                await pilot.press(key)
            await pilot.pause()
            out["svg"] = app.export_screenshot(title="slimmer explore")
    asyncio.run(main())
    return out["svg"]


def check_snapshot(path: Path, svg: str) -> None:
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg)
        if not UPDATE:
            pytest.fail(f"{path} did not exist: written, look at it and commit it")
    assert svg == path.read_text(), f"the screen differs from {path} (SLIMMER_UPDATE_SNAPSHOTS=1 rewrites it)"


def test_the_first_screen_matches_its_snapshot():
    """The first screen at 80x24 is the checked-in SVG, byte for byte."""
    check_snapshot(SNAPSHOT, screenshot(to_model(sample()), (80, 24)))


def test_the_readme_screenshot_is_up_to_date():
    """docs/explore.svg, shown in the README, is the explorer on fixtures/single-stage.tar."""
    img = open_image(str(ROOT / "fixtures" / "single-stage.tar"), Options(policy=AnalysisPolicy()))
    check_snapshot(README_SHOT, screenshot(img, (110, 32), keys=("down", "down", "tab", "down")))


def test_the_other_commands_do_not_load_textual():
    """Importing the CLI (what every command does) leaves Textual unloaded."""
    code = "import sys, slimmer.cli; sys.exit(1 if any(m.split('.')[0] == 'textual' for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


class Held:
    """The real pending analysis of an image, held back until ``go`` is set."""

    def __init__(self, img):
        self.pending = report.start(img)
        self.fs = self.pending.fs
        self.go = threading.Event()

    def finish(self):
        self.go.wait(30)
        return self.pending.finish()


def test_the_screen_works_before_the_analysis_arrives_and_fills_in_after():
    """Before the rest of the analysis arrives the layers and the tree are there and answer
    keys (findings and waste say they are coming); when it arrives, they fill in."""
    from slimmer.explorer.app import ExplorerApp

    img = to_model(sample())
    held = Held(img)

    async def main():
        app = ExplorerApp(ImageIndex(img, held.fs), "sample.tar", "dark", held)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert "analysing…" in str(app.query_one("#summary").render())
            assert str(app.query_one("#findings").get_option_at_index(0).prompt) == "analysing…"
            await pilot.press("down", "down")
            assert title(app) == "Layer 1 · its changes"
            assert drawn(app)[1] == "+* 300.0 kB │  ├─ big.bin"
            await pilot.press("tab", "tab", "enter", "question_mark")
            held.go.set()
            await analysed(app, pilot)
            await pilot.press("escape")
            assert "wasted 300.0 kB" in str(app.query_one("#summary").render())
            assert "Files at /app/big.bin" in str(app.query_one("#findings").get_option_at_index(0).prompt)
    asyncio.run(main())


def test_an_image_without_layers_opens_and_says_so():
    """An image with no layers shows an empty tree that says why."""
    async def steps(app, pilot):
        assert title(app) == "no layers"
        assert drawn(app) == []
    drive(to_model(image()), steps)


def test_built_views_are_kept_within_a_node_budget(monkeypatch):
    """Views built before are kept for a quick return, but never more nodes in all than the
    budget allows; the current view always stays."""
    import slimmer.explorer.app as explorer_app

    monkeypatch.setattr(explorer_app, "CACHED_NODES", 40)

    async def steps(app, pilot):
        await pilot.press("ctrl+a", "down", "down")  # layer 0 (16 nodes in each view), then 1 (21)
        assert list(app.states) == [(0, "merged"), (1, "merged")]
        await pilot.press("down")  # layer 2 (22): 59 nodes would be over the budget
        assert list(app.states) == [(2, "merged")]
    drive(to_model(sample()), steps)
