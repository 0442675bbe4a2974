"""Bad registry storage is ordinary input: a dangling or garbled link, a missing, corrupt or
unlinked blob, a manifest that does not parse, a link out of the storage give the images they
touch an error row; the audit goes on, the other rows keep their figures, the exit status is
2 with one `slimmer: error:` line per failed row, and the storage is not changed. Storages are
written directly in the registry's layout (builders.write_registry)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from pushed import run_cli
from servers import tree_state

from builders import WHITEOUT, compress, image, layer, write_registry

BASE = layer({"bin/sh": 30_000, "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"}, created_by="ADD rootfs /")
GOOD = {"good/one:1": image(BASE, layer({"app/one": 10_000})),
        "good/two:1": image(BASE, layer({"app/two": 20_000, "tmp/x": 5_000}), layer({"tmp/.wh.x": WHITEOUT}))}
BAD = image(BASE, layer({"app/bad": 12_345}))


def v2(root: Path) -> Path:
    return root / "docker/registry/v2"


def blob(root: Path, digest: str) -> Path:
    return v2(root) / "blobs/sha256" / digest[7:9] / digest[7:] / "data"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tag_link(root: Path, ref: str) -> Path:
    repo, tag = ref.rsplit(":", 1)
    return v2(root) / "repositories" / repo / "_manifests/tags" / tag / "current/link"


def own_layer(root: Path) -> str:
    return sha(compress(BAD.layers[1].tar, "gzip"))


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def dangling(root: Path):
    tag_link(root, "bad/x:1").write_text(sha(b"nothing"))
    return "is missing from the storage (a dangling link)"


def garbled(root: Path):
    tag_link(root, "bad/x:1").write_text("latest\n")
    return "does not hold a sha256 digest"


def unparsable(root: Path):
    data = b'{"schemaVersion": 2, "layers": ['
    path = blob(root, sha(data))
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    link = v2(root) / "repositories/bad/x/_manifests/revisions/sha256" / sha(data)[7:] / "link"
    link.parent.mkdir(parents=True)
    link.write_text(sha(data))
    tag_link(root, "bad/x:1").write_text(sha(data))
    return "not valid JSON"


def missing_layer(root: Path):
    blob(root, own_layer(root)).unlink()
    return "missing from the storage"


def corrupt_layer(root: Path):
    flip(blob(root, own_layer(root)), 40)
    return own_layer(root)


def corrupt_config(root: Path):
    flip(blob(root, BAD.config_digest), 3)
    return f"blob {BAD.config_digest} is damaged"


def unlinked_layer(root: Path):
    (v2(root) / "repositories/bad/x/_layers/sha256" / own_layer(root)[7:] / "link").unlink()
    return "is not linked in the repository"


def link_outside(root: Path):
    outside = root.parent / "outside-link"
    outside.write_text(tag_link(root, "bad/x:1").read_text())
    tag_link(root, "bad/x:1").unlink()
    tag_link(root, "bad/x:1").symlink_to(outside)
    return "leads outside the storage"


def blob_outside(root: Path):
    path = blob(root, own_layer(root))
    outside = root.parent / "outside-blob"
    shutil.move(path, outside)
    path.symlink_to(outside)
    return "leads outside the storage"


def bad_name(root: Path):
    shutil.move(v2(root) / "repositories/bad/x", v2(root) / "repositories/bad/X\x1b[2J")
    return "is not a valid repository name component"


CASES = [dangling, garbled, unparsable, missing_layer, corrupt_layer, corrupt_config, unlinked_layer, link_outside,
         blob_outside, bad_name]


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    write_registry({**GOOD, "bad/x:1": BAD}, root)
    return root


def audit(root: Path, db: Path, *args) -> tuple[int, dict, str]:
    code, out, err = run_cli("audit", root, "--db", db, "--json", "--jobs", "1", *args)
    return code, json.loads(out) if out else {}, err


@pytest.mark.parametrize("damage", CASES, ids=[c.__name__.replace("_", " ") for c in CASES])
def test_damaged_storage_gives_the_image_an_error_row_and_the_others_their_figures(storage, tmp_path, damage):
    """The damaged tag's row carries the error; the good tags are audited; exit 2; one error
    line on stderr for the failed row, with no raw control character; nothing changed."""
    code, clean, err = audit(storage, tmp_path / "clean.sqlite")
    assert code == 0, err
    good = {i["tags"][0]: i for i in clean["images"] if i["tags"][0] in GOOD}
    expected = damage(storage)
    before = tree_state(storage)
    code, doc, err = audit(storage, tmp_path / "audit.sqlite")
    assert code == 2
    rows = {i["tags"][0]: i for i in doc["images"]}
    assert {r: rows[r] for r in GOOD} == good
    failed = [i for i in doc["images"] if i["error"]]
    assert len(failed) == 1 and expected in failed[0]["error"], failed
    errors = [line for line in err.splitlines() if line.startswith("slimmer: error: ")]
    assert len(errors) == 1 and expected in errors[0]
    assert "\x1b" not in err
    assert tree_state(storage) == before


def test_a_corrupt_base_layer_fails_every_image_on_it_and_is_read_again_once_repaired(storage, tmp_path):
    """A damaged shared blob fails all three images (its scan is not kept); put right, the
    next audit reads it and every row has its figures."""
    base_digest = sha(compress(BASE.tar, "gzip"))
    base = blob(storage, base_digest)
    good_bytes = base.read_bytes()
    flip(base, 30)
    code, doc, err = audit(storage, tmp_path / "audit.sqlite")
    assert code == 2 and len(doc["images"]) == 3
    assert all(base_digest in i["error"] for i in doc["images"]), doc
    base.write_bytes(good_bytes)
    code, doc, err = audit(storage, tmp_path / "audit.sqlite")
    assert code == 0, err
    assert all(not i["error"] and i["total_bytes"] > 30_000 for i in doc["images"])


def test_an_uncompressed_layer_changed_in_place_is_found_by_its_digest(tmp_path):
    """A byte changed inside a file of a plain tar layer (still a valid tar): the scan's sha256
    differs from the blob's name, and the image's row says the blob is damaged."""
    root = tmp_path / "storage"
    write_registry({"bad/x:1": BAD}, root, compression="none")
    path = blob(root, sha(BAD.layers[1].tar))
    flip(path, 512 + 100)  # inside the data of the first member
    code, doc, _err = audit(root, tmp_path / "audit.sqlite")
    assert code == 2
    assert "the stored blob is damaged" in doc["images"][0]["error"]


def test_one_broken_platform_of_an_index_fails_only_its_row(tmp_path):
    """An index whose arm64 layer is missing: the amd64 row has its figures, the arm64 row its error."""
    root = tmp_path / "storage"
    arm = image(BASE, layer({"app/arm": 7_777}))
    write_registry({"multi/app:1": {"linux/amd64": GOOD["good/one:1"], "linux/arm64/v8": arm}}, root)
    blob(root, sha(compress(arm.layers[1].tar, "gzip"))).unlink()
    code, doc, _err = audit(root, tmp_path / "audit.sqlite")
    assert code == 2
    rows = {i["platform"]: i for i in doc["images"]}
    assert not rows["linux/amd64"]["error"] and rows["linux/amd64"]["total_bytes"] > 0
    assert "missing from the storage" in rows["linux/arm64/v8"]["error"]


@pytest.mark.parametrize("args, message", [((), "no image found in"),
                                           (("--platform", "linux/s390x"), "for platform linux/s390x")],
                         ids=["an empty storage", "a platform no image has"])
def test_an_audit_that_finds_no_image_says_so_and_exits_2(tmp_path, args, message):
    """A storage with no tag (or none for the platform asked): one error line, exit 2."""
    root = tmp_path / "storage"
    (v2(root) / "repositories").mkdir(parents=True)
    if args:
        write_registry(GOOD, root)
    code, out, err = run_cli("audit", root, "--db", tmp_path / "a.sqlite", *args)
    assert code == 2 and out == ""
    assert message in err.splitlines()[-1] and err.splitlines()[-1].startswith("slimmer: error: ")


def test_a_tag_removed_from_the_storage_leaves_the_database(storage, tmp_path):
    """A re-audit drops the rows of a tag that is gone, and says so."""
    code, _doc, err = audit(storage, tmp_path / "audit.sqlite")
    assert code == 0, err
    shutil.rmtree(v2(storage) / "repositories/good/two/_manifests/tags/1")
    code, doc, err = audit(storage, tmp_path / "audit.sqlite")
    assert code == 0, err
    assert sorted(i["tags"][0] for i in doc["images"]) == ["bad/x:1", "good/one:1"]
    assert "1 image no longer in the storage dropped from the database" in err
    code, out, err = run_cli("audit", "--report", "--db", tmp_path / "audit.sqlite", "--json")
    assert sorted(i["tags"][0] for i in json.loads(out)["images"]) == ["bad/x:1", "good/one:1"]


def test_a_moved_tag_is_audited_again(storage, tmp_path):
    """A tag pointed at another manifest (a push over it) gets the new image's figures."""
    code, doc, _err = audit(storage, tmp_path / "audit.sqlite")
    before = {i["tags"][0]: i["total_bytes"] for i in doc["images"]}
    write_registry({"good/one:1": image(BASE, layer({"app/one": 10_000, "app/more": 4_000}))}, storage)
    code, doc, err = audit(storage, tmp_path / "audit.sqlite")
    assert code == 0, err
    after = {i["tags"][0]: i["total_bytes"] for i in doc["images"]}
    assert after["good/one:1"] == before["good/one:1"] + 4_000
    assert "2 images unchanged since the last audit" in err


def test_the_directory_audit_still_lists_archives_and_lands_them_in_the_database(tmp_path):
    """`slimmer audit DIR` of archives works as before, and --report answers for it."""
    from builders import write

    d = tmp_path / "images"
    d.mkdir()
    write(GOOD["good/one:1"], d / "one.tar", "docker-legacy")
    write(GOOD["good/two:1"], d / "two", "oci-dir")
    code, out, err = run_cli("audit", d, "--db", tmp_path / "a.sqlite", "--json", "--jobs", "1")
    assert code == 0, err
    assert sorted(Path(i["source"]).name for i in json.loads(out)["images"]) == ["one.tar", "two"]
    code, out, err = run_cli("audit", "--report", d, "--db", tmp_path / "a.sqlite", "--by", "repository", "--json")
    assert code == 0, err
    assert sorted(r["repository"] for r in json.loads(out)["repositories"]) == ["one.tar", "two"]
    assert os.path.exists(tmp_path / "a.sqlite")
