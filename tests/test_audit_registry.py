"""`slimmer audit` of a real registry's storage: images pushed with skopeo to Debian's
docker-registry, audited offline from the storage directory (the registry stopped). One row
per repository:tag and platform with the figures `slimmer analyze` gives for each image's own
archive; every blob opened once (counted with inotify); the storage left as it was; a re-audit
after one more push opens only the new blobs."""

from __future__ import annotations

import json
import shutil

from pushed import LATER, analyzed, blob_digests, db_figures, figures, push, run_cli
from servers import BlobOpens, Registry, tree_state


def test_audit_gives_each_tag_and_platform_the_figures_analyze_gives_reading_each_blob_once(pushed, tmp_path):
    """Six rows (five tags, one an index of two platforms) with analyze's figures, categories,
    packages and savings; each blob opened once though the base is in every image; no change
    to the storage."""
    before = tree_state(pushed.storage)
    opens = BlobOpens(pushed.storage)
    code, out, err = run_cli("audit", pushed.storage, "--db", tmp_path / "audit.sqlite", "--jobs", "2", "--json")
    counts = opens.counts()
    opens.close()
    assert code == 0, err
    rows = {(i["tags"][0], i["platform"]): i for i in json.loads(out)["images"]}
    assert set(rows) == set(pushed.expected)
    kept = db_figures(tmp_path / "audit.sqlite")
    assert kept == pushed.expected
    for key, row in rows.items():
        assert {k: row[k] for k in ("total_bytes", "final_bytes", "layers", "dive_efficiency", "dive_wasted_bytes",
                                    "true_wasted_bytes", "could_save_bytes", "worst_finding",
                                    "worst_finding_bytes")} == {k: kept[key][k] for k in
                                                               ("total_bytes", "final_bytes", "layers",
                                                                "dive_efficiency", "dive_wasted_bytes",
                                                                "true_wasted_bytes", "could_save_bytes",
                                                                "worst_finding", "worst_finding_bytes")}
    assert counts == dict.fromkeys(blob_digests(pushed.storage), 1)
    assert f"{len(counts)} blobs read" in err
    assert tree_state(pushed.storage) == before


def test_analyze_reads_one_image_of_the_storage_as_from_its_own_archive(pushed):
    """`slimmer analyze STORAGE --image REPO:TAG --platform P` gives that image's figures."""
    for (ref, platform), want in pushed.expected.items():
        code, out, err = run_cli("analyze", pushed.storage, "--image", ref, "--platform", platform, "--json",
                                 "--no-cache")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["image"]["format"] == "registry" and doc["image"]["tags"] == [ref]
        assert figures(doc) == want


def test_platform_picks_one_image_of_the_index_and_says_what_was_left_out(pushed, tmp_path):
    """--platform linux/arm64 audits only the arm64 image of the index; the other tags (amd64)
    are left out, and stderr says so."""
    code, out, err = run_cli("audit", pushed.storage, "--db", tmp_path / "a.sqlite", "--platform", "linux/arm64",
                             "--json", "--jobs", "1")
    assert code == 0, err
    rows = [(i["tags"][0], i["platform"]) for i in json.loads(out)["images"]]
    assert rows == [("multi/app:1", "linux/arm64/v8")]
    assert "platform linux/arm64 chosen with --platform; left out: 5 linux/amd64" in err


def test_repo_and_tag_globs_select_what_is_audited(pushed, tmp_path):
    """--repo and --tag limit the audit to matching repositories and tags."""
    code, out, err = run_cli("audit", pushed.storage, "--db", tmp_path / "a.sqlite", "--repo", "team/*", "--tag",
                             "1.*", "--json", "--jobs", "1")
    assert code == 0, err
    assert sorted(i["tags"][0] for i in json.loads(out)["images"]) == ["team/api:1.0", "team/api:1.1"]


def test_reports_answer_from_the_database_without_opening_a_blob(pushed, tmp_path):
    """After an audit, --report gives the fleet table, could-save by repository, the shared
    base layer, and the images holding a package or a category, opening no blob."""
    db = tmp_path / "audit.sqlite"
    code, out, err = run_cli("audit", pushed.storage, "--db", db, "--json", "--jobs", "1")
    assert code == 0, err
    audited = json.loads(out)["images"]
    opens = BlobOpens(pushed.storage)

    def report(*args):
        code, out, err = run_cli("audit", "--report", "--db", db, "--json", *args)
        assert code == 0, err
        return json.loads(out)

    assert sorted(report()["images"], key=lambda i: (i["tags"], i["platform"])) == \
        sorted(audited, key=lambda i: (i["tags"], i["platform"]))
    repos = {r["repository"]: r for r in report("--by", "repository")["repositories"]}
    assert repos["team/api"]["images"] == 2
    assert repos["team/api"]["could_save_bytes"] == sum(i["could_save_bytes"] for i in audited
                                                        if i["tags"][0].startswith("team/api:"))
    assert list(repos) == sorted(repos, key=lambda r: -repos[r]["could_save_bytes"])
    base = report("--by", "layer")["layers"][0]
    assert (base["images"], base["repositories"], base["created_by"]) == (6, 4, "ADD rootfs.tar /")
    holding = report("--package", "libssl3")["packages"]
    assert len(holding) == 6 and {h["version"] for h in holding} == {"3.0.15-1~deb12u1"}
    docs = report("--category", "docs")["categories"]
    assert {(h["repository"], h["tag"]) for h in docs} >= {("team/web", "latest")}
    assert docs[0]["repository"] == "team/web"  # the manual makes it the largest
    assert opens.counts() == {}
    opens.close()


def test_a_reaudit_after_one_more_push_opens_only_the_new_blobs(pushed, tmp_path):
    """Push one more tag (the same base, a new app layer) and audit again: only the new tag's
    manifest, config and new layer are opened; the old rows stay, the new one has its figures."""
    storage = tmp_path / "storage"
    shutil.copytree(pushed.storage, storage, symlinks=True)
    db = tmp_path / "audit.sqlite"
    code, _out, err = run_cli("audit", storage, "--db", db, "--jobs", "2")
    assert code == 0, err
    old = blob_digests(storage)
    reg = Registry(storage, tmp_path).start()
    try:
        push(reg, tmp_path, *LATER)
        expected_new = analyzed(reg, tmp_path, *LATER)
    finally:
        reg.stop()
    new = blob_digests(storage) - old
    assert len(new) == 3  # manifest, config, the new app layer; the base and cleanup layers exist
    opens = BlobOpens(storage)
    code, out, err = run_cli("audit", storage, "--db", db, "--jobs", "2", "--json")
    counts = opens.counts()
    opens.close()
    assert code == 0, err
    assert counts == dict.fromkeys(new, 1)
    assert "6 images unchanged since the last audit" in err
    assert db_figures(db) == {**pushed.expected, **expected_new}
    assert len(json.loads(out)["images"]) == 7
