"""Many images: `slimmer audit DIR`, `slimmer analyze A B`, worker processes, and the layer
cache that lets images sharing a base read it once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from slimmer import fleet, reader
from slimmer.cli import main
from slimmer.reader.cache import LayerCache

from builders import WHITEOUT, image, layer, write

PASSWD = b"root:x:0:0::/root:/bin/sh\n"
BASE = layer({"bin/sh": 40_000, "etc/passwd": PASSWD}, created_by="ADD rootfs /")


def app(n: int):
    """An image on the shared base with an app layer of its own and a late cleanup."""
    return image(BASE, layer({f"app/{n}.bin": 10_000 + n, "var/cache/apt/archives/x.deb": 30_000},
                             created_by=f"COPY app{n} /app"),
                 layer({"var/cache/apt/.wh.archives": WHITEOUT}, created_by="RUN rm -rf /var/cache/apt/archives"),
                 tag=f"fleet/app{n}:1")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A directory with two images on one base (one of them an OCI layout directory, in a
    subdirectory), a truncated archive and a text file that is no archive."""
    root = tmp_path / "images"
    (root / "more").mkdir(parents=True)
    write(app(1), root / "one.tar", "docker-legacy")
    write(app(2), root / "more" / "two", "oci-dir")
    good = (root / "one.tar").read_bytes()
    (root / "broken.tar").write_bytes(good[: len(good) // 2])
    (root / "notes.txt").write_text("not an image\n" * 200)
    return root


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["slimmer", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return (exit_info.value.code or 0), out, err


def test_finds_tar_archives_and_layout_directories_but_not_other_files(images):
    """find_archives lists tar files and OCI layout directories, and skips other files."""
    found = [p.relative_to(images).as_posix() for p in fleet.find_archives(images)]
    assert found == ["broken.tar", "more/two", "one.tar"]


@pytest.mark.parametrize("jobs", [1, 2], ids=["one at a time", "two worker processes"])
def test_audit_gives_one_row_per_image_and_names_the_broken_one(images, jobs, monkeypatch, tmp_path):
    """Each readable image gets its numbers; the truncated one gets its error; jobs don't change rows."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))
    rows = {Path(r.source).name: r for r in fleet.audit([str(p) for p in fleet.find_archives(images)], jobs=jobs)}
    assert "truncated" in rows["broken.tar"].error
    for name, n in (("one.tar", 1), ("two", 2)):
        r = rows[name]
        assert r.error == ""
        assert r.total_bytes == 40_000 + len(PASSWD) + 10_000 + n + 30_000
        assert r.true_wasted_bytes == 30_000
        assert r.could_save_bytes >= 30_000
        assert r.worst_finding


def test_audit_command_prints_the_table_and_exits_2_for_an_unreadable_archive(images, monkeypatch, capsys, tmp_path):
    """The table lists every image; the broken archive is one stderr line and exit status 2."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = run_main(monkeypatch, capsys, "audit", images, "--jobs", "2")
    assert code == 2
    assert "fleet/app1:1" in out and "fleet/app2:1" in out and "broken.tar" in out
    assert err.count("\n") == 1 and err.startswith("slimmer: error: ") and "broken.tar" in err


def test_analyze_with_several_archives_prints_fleet_json(images, monkeypatch, capsys, tmp_path):
    """`slimmer analyze A B --json` gives the fleet document, one image each, in order."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))
    code, out, _ = run_main(monkeypatch, capsys, "analyze", images / "one.tar", images / "more" / "two", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "slimmer.fleet/1"
    assert [i["tags"] for i in doc["images"]] == [["fleet/app1:1"], ["fleet/app2:1"]]


def test_a_second_image_on_the_same_base_reads_only_its_own_layers(images, tmp_path):
    """With the layer cache, the shared base layer (and the identical cleanup layer) of the
    second image are cache hits; the app layer is read."""
    cache = LayerCache(tmp_path / "cache" / "layers.sqlite")
    first = reader.open_image(images / "one.tar", reader.Options(cache=cache))
    assert (cache.hits, cache.misses) == (0, 3)
    second = reader.open_image(images / "one.tar", reader.Options(cache=cache))
    assert (cache.hits, cache.misses) == (3, 3)
    assert second.layers == first.layers
    other = reader.open_image(images / "more" / "two", reader.Options(cache=cache))
    assert (cache.hits, cache.misses) == (3 + 2, 3 + 1)
    assert other.layers[0].entries == first.layers[0].entries


def test_a_changed_blob_of_the_same_size_at_its_start_misses_the_cache(images, tmp_path):
    """A hit needs the same fingerprint: a blob whose first bytes changed is read again, and
    its digest mismatch is reported."""
    cache = LayerCache(tmp_path / "cache" / "layers.sqlite")
    reader.open_image(images / "one.tar", reader.Options(cache=cache))
    data = bytearray((images / "one.tar").read_bytes())
    at = data.find(b"bin/sh") + 600  # inside the base layer's first member's data
    data[at] ^= 0xFF
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(Exception, match="diff_id"):
        reader.open_image(bad, reader.Options(cache=cache))
