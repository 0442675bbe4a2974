"""`slimmer diff A B`: paths added, removed and changed, bytes by category and by package, layers
shared or not; the library records, the exact table for one pair and the JSON document."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from slimmer.analyzer.diff import ADDED, CHANGED, ONLY_A, ONLY_B, REMOVED, SHARED, diff_images, path_changes
from slimmer.cli import cli, main
from slimmer.layers import merge

from builders import Dir, File, Symlink, image, layer, to_model, write

STATUS = (b"Package: tool\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n\n"
          b"Package: base\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2\n")
BASE = layer({"usr/bin/base": File(3_000, mode=0o755), "var/lib/dpkg/status": STATUS,
              "var/lib/dpkg/info/tool.list": b"/.\n/usr/bin/tool\n/usr/share/doc/tool/README\n",
              "var/lib/dpkg/info/base.list": b"/usr/bin/base\n"}, auto_dirs=True, created_by="ADD base")
APP = layer({"usr/bin/tool": File(2_000, mode=0o755), "usr/share/doc/tool/README": 700,
             "etc/app.conf": File(b"a=1\n", mode=0o644)}, auto_dirs=True, created_by="RUN install tool")


def pair():
    """A: base + tool with docs. B: the same base layer, then a layer changing the config,
    dropping the docs (whiteout) and adding a symlink."""
    a = image(BASE, APP, tag="d/a:1")
    b = image(BASE, APP, layer({"etc/app.conf": File(b"a=22\n", mode=0o600), "usr/share/doc/.wh.tool": b"",
                                "usr/bin/t": Symlink("tool")}, created_by="RUN slim"), tag="d/b:1")
    return a, b


@pytest.mark.parametrize("a_files, b_files, expected", [
    pytest.param({"x": 10}, {}, [("x", REMOVED, ())], id="a path only in A is removed"),
    pytest.param({}, {"x": 10}, [("x", ADDED, ())], id="a path only in B is added"),
    pytest.param({"x": File(b"ab", mode=0o644)}, {"x": File(b"ab", mode=0o755)}, [("x", CHANGED, ("mode",))],
                 id="a new mode is a change"),
    pytest.param({"x": File(b"ab", uid=1)}, {"x": File(b"abc", uid=2, mtime=5)},
                 [("x", CHANGED, ("size", "owner", "mtime"))], id="size, owner and mtime are told apart"),
    pytest.param({"x": Symlink("a")}, {"x": Symlink("b")}, [("x", CHANGED, ("link",))],
                 id="a retargeted symlink is a change"),
    pytest.param({"x": Dir()}, {"x": b""}, [("x", CHANGED, ("kind", "mode"))],
                 id="a directory become a file is a change"),
    pytest.param({"x": b"same"}, {"x": b"same"}, [], id="an equal path is no change"),
])
def test_path_changes(a_files, b_files, expected):
    """Each path differing between the merged filesystems is reported once, with what differs."""
    fs_a = merge(to_model(image(layer(a_files)))) if a_files else merge(to_model(image()))
    fs_b = merge(to_model(image(layer(b_files)))) if b_files else merge(to_model(image()))
    got = [(c.path, c.change, c.fields) for c in path_changes(fs_a, fs_b)]
    assert got == expected


def test_diff_of_an_image_and_its_successor():
    """Docs removed, a config changed, a symlink added; bytes by category and by dpkg package;
    the two shared layers and B's own layer."""
    a, b = (to_model(s) for s in pair())
    d = diff_images(a, b)
    changes = {c.path: c for c in d.changes}
    assert changes["usr/share/doc/tool/README"].change == REMOVED
    assert changes["usr/share/doc/tool/README"].package == "dpkg:tool"
    assert changes["etc/app.conf"].change == CHANGED and changes["etc/app.conf"].delta == 1
    assert changes["usr/bin/t"].change == ADDED
    docs = {g.name: g for g in d.by_category}["docs"]
    assert (docs.removed_files, docs.removed_bytes) == (1, 700)
    tool = {g.name: g for g in d.by_package}["dpkg:tool"]
    assert (tool.removed_bytes, tool.net_bytes) == (700, -700)
    assert [(r.status, r.index_a, r.index_b) for r in d.layers] == [(SHARED, 0, 0), (SHARED, 1, 1), (ONLY_B, None, 2)]
    assert d.b_bytes - d.a_bytes == -700 + 1


def test_layers_only_in_a_are_marked():
    """A layer of A that B lacks is marked only in A."""
    a, b = (to_model(s) for s in pair())
    rows = diff_images(b, a, read=False).layers
    assert [(r.status, r.index_a, r.index_b) for r in rows] == [(SHARED, 0, 0), (SHARED, 1, 1), (ONLY_A, 2, None)]


@pytest.fixture
def archives(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "w").mkdir()
    monkeypatch.chdir(tmp_path / "w")
    a, b = pair()
    return str(write(a, "a.tar", "docker-legacy").name), str(write(b, "b.tar", "docker-legacy").name)


DIFF_TABLE = """\
A  a.tar   5.9 kB in files, 20.0 kB stored
B  b.tar   5.2 kB in files, 23.0 kB stored
paths  2 removed, 1 added, 1 changed   net -699 B

category      removed    bytes    added    bytes    changed    bytes     net
----------  ---------  -------  -------  -------  ---------  -------  ------
docs                1    700 B        0      0 B          0      0 B  -700 B
runtime             0      0 B        1      0 B          1     +1 B    +1 B

package         removed    bytes    added    bytes    changed    bytes     net
------------  ---------  -------  -------  -------  ---------  -------  ------
dpkg:tool             1    700 B        0      0 B          0      0 B  -700 B
(no package)          0      0 B        1      0 B          1     +1 B    +1 B

layer        A    B  diff_id         size    files  created by
---------  ---  ---  ------------  ------  -------  ----------------
shared       0    0  {l0}  3.2 kB        4  ADD base
shared       1    1  {l1}  2.7 kB        3  RUN install tool
only in B         2  {l2}     5 B        2  RUN slim

largest changes (4 in all)
change      bytes  what       category    path
--------  -------  ---------  ----------  --------------------------
removed    -700 B             docs        /usr/share/doc/tool/README
changed      +1 B  size,mode  runtime     /etc/app.conf
added         0 B             runtime     /usr/bin/t
removed       0 B             docs        /usr/share/doc/tool
"""


def test_diff_table_is_exact(archives):
    """The table shows totals, categories, packages, layers and the largest changes."""
    _a, b = pair()
    result = CliRunner().invoke(cli, ["diff", *archives])
    assert result.exit_code == 0, result.output
    ids = {f"l{i}": lay.diff_id.split(":")[1][:12] for i, lay in enumerate(b.layers)}
    assert result.output == DIFF_TABLE.format(**ids)


def test_diff_json_is_documented(archives):
    """--json gives the slimmer.diff/1 document with every changed path."""
    result = CliRunner().invoke(cli, ["diff", *archives, "--json"])
    doc = json.loads(result.output)
    assert doc["schema"] == "slimmer.diff/1"
    assert doc["counts"] == {"added": 1, "removed": 2, "changed": 1}
    readme = next(p for p in doc["paths"] if p["path"] == "/usr/share/doc/tool/README")
    assert readme == {"path": "/usr/share/doc/tool/README", "change": "removed", "kind": "file", "bytes_a": 700,
                      "bytes_b": 0, "layer_a": 1, "layer_b": None, "category": "docs", "package": "dpkg:tool",
                      "fields": []}
    assert [r["status"] for r in doc["layers"]] == ["shared", "shared", "only in B"]


def test_a_missing_archive_is_one_error_line(archives, monkeypatch, capsys):
    """A missing second archive exits 2 with one error line."""
    monkeypatch.setattr(sys, "argv", ["slimmer", "diff", archives[0], "nope.tar"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err == "slimmer: error: cannot open nope.tar: No such file or directory\n"
