"""Findings: each anti-pattern found on images built in code, with the bytes its fix saves."""

import importlib.util
import io
import json
from pathlib import Path

import pytest

from slimmer.analyzer import findings as fnd
from slimmer.analyzer.attribution import attribute
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.report import analyze
from slimmer.model import total_size
from slimmer.reader import Options, open_image

from builders import WHITEOUT, File, Symlink, image, layer, to_model, write
from hostile import run_cli

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def _findings(spec):
    img = to_model(spec)
    return fnd.find(img, attribute(img))


def _ids(found):
    return [f.id for f in found]


def _one(found, fid):
    hits = [f for f in found if f.id == fid]
    assert len(hits) == 1, _ids(found)
    return hits[0]


def test_a_toolchain_in_the_final_image_calls_for_a_multi_stage_build():
    """Compilers and build-only files in the final filesystem: their bytes are what a
    multi-stage build saves."""
    found = _findings(image(
        layer({"usr/local/go/bin/go": 50_000, "usr/local/go/src/fmt/print.go": 3_000}, created_by="RUN install go"),
        layer({"usr/include/zlib.h": 900, "app/server": File(2_000, mode=0o755)}, created_by="RUN go build")))
    f = _one(found, "toolchain-in-final-image")
    assert f.fix == "multi-stage" and f.savings_bytes == 53_900
    assert "go-toolchain" in f.title and "multi-stage" in f.title
    assert {e.what for e in f.evidence} == {"/usr/local/go", "/usr/include/zlib.h"}


def test_an_image_without_build_files_has_no_toolchain_finding():
    """A runtime-only image is not told to use a multi-stage build."""
    found = _findings(image(layer({"app/server": File(2_000, mode=0o755), "etc/passwd": b"root:x:0:0::/:\n"}),
                            config={"config": {"User": "65532"}}))
    assert "toolchain-in-final-image" not in _ids(found)


def test_a_cache_cleaned_in_a_later_step_stays_in_the_earlier_layer():
    """rm -rf in the step after the one that filled the cache saves nothing: the finding names
    both steps and the bytes still stored."""
    found = _findings(image(
        layer({"root/.cache/pip/http/a/b": 20_000, "root/.cache/pip/http/a/c": 5_000,
               "usr/lib/python3/dist-packages/flask/__init__.py": 800}, created_by="RUN pip install flask"),
        layer({"root/.cache/.wh.pip": WHITEOUT}, created_by="RUN rm -rf /root/.cache/pip")))
    f = _one(found, "cache-cleaned-too-late")
    assert f.savings_bytes == 25_000 and f.fix == "squash"
    assert f.layers == (0, 1) and f.steps == (0, 1)
    assert "/root/.cache/pip" in f.title and "RUN pip install flask" in f.title and "RUN rm -rf" in f.title


def test_a_cache_cleaned_in_the_same_step_leaves_no_finding():
    """Cleaning in the step that fills the cache leaves nothing behind to report."""
    found = _findings(image(layer({"usr/lib/python3/dist-packages/flask/__init__.py": 800},
                                  created_by="RUN pip install --no-cache-dir flask"),
                            config={"config": {"User": "1000"}}))
    assert found == []


INSTALLS = [
    ("RUN apt-get update && apt-get install -y curl", "var/lib/apt/lists/deb.debian.org_bookworm_Packages",
     "apt", "rm -rf /var/lib/apt/lists/*", "apt lists"),
    ("RUN apt-get install -y curl", "var/cache/apt/archives/curl_7.88_amd64.deb", "apt", "apt-get clean",
     "downloaded .deb files"),
    ("RUN apk add curl", "var/cache/apk/APKINDEX.5022a8a2.tar.gz", "apk", "apk add --no-cache", "apk's cache"),
    ("RUN pip install flask", "root/.cache/pip/wheels/ab/flask-3.0-py3-none-any.whl", "pip", "--no-cache-dir",
     "pip's cache"),
    ("RUN npm install", "root/.npm/_cacache/content-v2/sha512/ab/cd", "npm", "npm cache clean",
     "npm's cache"),
]


@pytest.mark.parametrize("step,path,manager,advice", [c[:4] for c in INSTALLS],
                         ids=[f"an {c[2]} install leaves {c[4]} behind" for c in INSTALLS])
def test_installs_that_leave_caches_behind_are_named_with_their_step(step, path, manager, advice):
    """A cache in the final filesystem is reported with the install step that filled it and the
    flag or command that avoids it."""
    f = _one(_findings(image(layer({path: 30_000, "usr/bin/curl": 2_000}, created_by=step))), "cache-left-behind")
    assert f.savings_bytes == 30_000 and f.fix == "prune"
    assert f"its {manager} install leaves the cache behind" in f.title and step in f.title
    assert advice in f.advice


ORDERS = [
    (["COPY . . # buildkit", "RUN npm ci"], True, "npm after copying the whole context"),
    (["COPY . /app", "RUN pip install -r requirements.txt"], True, "pip after copying the whole context"),
    (["/bin/sh -c #(nop) COPY dir:9f86d081884c7d659a2feaa0c55ad015 in /src ", "RUN go mod download"], True,
     "go after a classic builder's directory copy"),
    (["COPY package.json package-lock.json ./", "RUN npm ci", "COPY . .", "RUN npm run build"], False,
     "npm with the manifests copied first"),
    (["COPY go.mod go.sum ./", "RUN go mod download", "COPY . .", "RUN go build -o /app ./cmd/app"], False,
     "go with go.mod downloaded first"),
    (["RUN npm ci", "COPY . ."], False, "an install before any copy"),
]


@pytest.mark.parametrize("steps,flagged", [o[:2] for o in ORDERS],
                         ids=[("flags " if o[1] else "accepts ") + o[2] for o in ORDERS])
def test_copying_the_whole_context_before_the_dependency_install_is_flagged(steps, flagged):
    """COPY . . before npm/pip/go dependency installs busts the build cache on every change."""
    layers = [layer({f"app/file{i}.txt": 10 + i}, created_by=s) for i, s in enumerate(steps)]
    found = _findings(image(*layers))
    hits = [f for f in found if f.id == "copy-context-before-install"]
    assert bool(hits) is flagged
    if flagged:
        assert hits[0].savings_bytes == 0 and hits[0].fix == "reorder" and hits[0].steps == (0, 1)


def test_large_files_deleted_later_are_wasted_bytes():
    """A file a later step deletes is still stored in the layer that added it."""
    f = _one(_findings(image(layer({"data/dump.sql": 100_000}, created_by="COPY dump.sql /data/"),
                             layer({"data/.wh.dump.sql": WHITEOUT}, created_by="RUN import && rm /data/dump.sql"))),
             "deleted-later")
    assert f.savings_bytes == 100_000 and f.fix == "squash" and f.evidence[0].what == "/data/dump.sql"


@pytest.mark.parametrize("second,identical", [
    (File(70_000, mode=0o755), True), (b"\x01" * 70_000, False),
], ids=["a chmod in a later step stores an identical copy", "a rewrite in a later step stores a new copy"])
def test_files_overwritten_later_are_wasted_bytes(second, identical):
    """An overwritten file's earlier copy is waste; an identical one is named a metadata-only change."""
    f = _one(_findings(image(layer({"app/lib.bin": 70_000}, created_by="COPY lib.bin /app/"),
                             layer({"app/lib.bin": second}, created_by="RUN chmod +x /app/lib.bin"))),
             "overwritten-later")
    assert f.savings_bytes == 70_000
    assert ("identical content" in f.title) is identical


def test_the_same_content_at_several_paths_is_a_duplicate():
    """Equal files (hashed only when sizes match and reach 64 KiB) are one duplicate group; equal
    sizes with different content are not."""
    found = _findings(image(layer({"a/x.bin": 80_000, "b/y.bin": 80_000, "c/z.bin": b"\x02" * 80_000,
                                   "d/small1": 1_000, "d/small2": 1_000})))
    f = _one(found, "duplicate-files")
    assert f.savings_bytes == 80_000 and f.fix == "dedupe"
    assert f.evidence[0].what == "/a/x.bin, /b/y.bin"


def test_a_root_image_with_a_shell_and_a_package_manager_could_be_distroless():
    """Running as root with a shell and a package manager: a distroless base would do, saving at
    least the package manager's state; merged-/usr symlinks are followed."""
    found = _findings(image(layer({"bin": Symlink("usr/bin"), "usr/bin/sh": File(120_000, mode=0o755),
                                   "usr/bin/apt-get": File(30_000, mode=0o755), "var/lib/dpkg/status": 9_000,
                                   "app/server": File(5_000, mode=0o755)})))
    f = _one(found, "shell-and-package-manager")
    assert f.title.startswith("Runs as root with a shell (/bin/sh) and a package manager (/usr/bin/apt-get)")
    assert f.savings_bytes == 120_000 + 30_000 + 9_000 and f.fix == "distroless"
    assert "runs-as-root" in _ids(found)


def test_a_non_root_image_without_shell_has_no_distroless_or_root_finding():
    """USER set to a non-zero uid and no shell: nothing to say about root or distroless."""
    found = _findings(image(layer({"app/server": File(5_000, mode=0o755)}), config={"config": {"User": "65532:65532"}}))
    assert not {"shell-and-package-manager", "runs-as-root"} & set(_ids(found))


def test_could_save_counts_bytes_two_findings_share_once():
    """Two identical cached .deb files are both cache and one duplicate: the total counts them once."""
    img = to_model(image(layer({"var/cache/apt/archives/a.deb": 70_000, "var/cache/apt/archives/b.deb": 70_000,
                                "app/server": File(1_000, mode=0o755)}, created_by="RUN apt-get install -y a b"),
                         config={"config": {"User": "1"}}))
    result = analyze(img)
    assert sorted(f.savings_bytes for f in result.findings) == [70_000, 140_000]
    assert result.could_save_bytes == 140_000
    assert result.estimated_size_after_bytes == total_size(img) - 140_000
    assert result.could_save_by_fix == {"prune": 140_000, "dedupe": 70_000}


def test_findings_come_largest_savings_first():
    """The list is sorted by savings, largest first."""
    found = _findings(image(layer({"usr/local/go/bin/go": 9_000, "var/lib/apt/lists/x_Packages": 30_000,
                                   "usr/share/doc/x/README": 2_000}, created_by="RUN apt-get update")))
    assert [f.savings_bytes for f in found] == sorted((f.savings_bytes for f in found), reverse=True)
    assert _ids(found)[:3] == ["cache-left-behind", "toolchain-in-final-image", "removable-files"]


# ---- the single-stage sample in fixtures/ ------------------------------------------------


def _fixture_builder():
    spec = importlib.util.spec_from_file_location("fixture_build", FIXTURES / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def single_stage():
    path = FIXTURES / "single-stage.tar"
    if not path.exists():
        pytest.skip("fixtures/single-stage.tar is not built")
    return analyze(open_image(path)), _fixture_builder()


def test_the_single_stage_sample_names_its_toolchain(single_stage):
    """The Go toolchain and gcc of the single-stage build are named, with their bytes."""
    result, build = single_stage
    f = next(f for f in result.findings if f.id == "toolchain-in-final-image")
    assert "go-toolchain" in f.title and "gcc" in f.title
    go = sum(len(v[0]) if isinstance(v, tuple) else len(v) for v in build.go_layer().values())
    assert next(e for e in f.evidence if e.what == "/usr/local/go").size == go


def test_the_single_stage_sample_names_its_caches(single_stage):
    """apt's lists and .deb cache and Go's module cache are each a finding with the step that left them."""
    result, build = single_stage
    caches = {f.title.split(" ")[0]: f for f in result.findings if f.id == "cache-left-behind"}
    assert set(caches) == {"apt-lists", "apt-archives", "go-module-cache"}
    debs = sum(len(v) for p, v in build.apt_layer().items() if p.startswith("var/cache/apt/archives/")
               and isinstance(v, bytes))
    assert caches["apt-archives"].savings_bytes == debs
    assert "apt install leaves the cache behind" in caches["apt-lists"].title


def test_the_single_stage_sample_names_the_cache_cleaned_too_late(single_stage):
    """The Go build cache removed one step after the build is reported with all its bytes."""
    result, build = single_stage
    f = next(f for f in result.findings if f.id == "cache-cleaned-too-late")
    expected = sum(len(v) for p, v in build.build_layer().items() if p.startswith("root/.cache/go-build/"))
    assert f.savings_bytes == expected
    assert "/root/.cache/go-build" in f.title and "RUN rm -rf /root/.cache/go-build" in f.title


def test_the_multistage_sample_has_no_toolchain_or_cache_finding():
    """The same app on a distroless-like base, as a non-root user: nothing of the kind to fix."""
    path = FIXTURES / "multistage.tar"
    if not path.exists():
        pytest.skip("fixtures/multistage.tar is not built")
    found = analyze(open_image(path)).findings
    assert not {"toolchain-in-final-image", "cache-left-behind", "cache-cleaned-too-late", "runs-as-root"} & set(
        _ids(found))


def test_a_piped_archive_is_analysed_as_fully_as_the_file(tmp_path):
    """Standard input is read once, and that one pass gathers the contents: packages, findings
    and notes are those of the same archive read from its file."""
    spec = image(layer({"usr/local/go/bin/go": 9_000, "var/lib/apt/lists/x_Packages": 3_000,
                        "var/lib/dpkg/status": b"Package: x\nStatus: install ok installed\nVersion: 1\n\n"}))
    path = write(spec, tmp_path / "img.tar", "docker-legacy")
    policy = Options(policy=AnalysisPolicy())
    piped = analyze(open_image("-", policy, stdin=io.BytesIO(path.read_bytes())))
    from_file = analyze(open_image(path, policy))
    assert {"toolchain-in-final-image", "cache-left-behind"} <= set(_ids(piped.findings))
    keys = [p.key for p in piped.packages]
    assert keys == [p.key for p in from_file.packages] and "dpkg:x" in keys
    assert piped.findings == from_file.findings and piped.notes == from_file.notes == []


# ---- the command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    spec = image(layer({"usr/local/go/bin/go": 9_000, "var/lib/apt/lists/x_Packages": 3_000, "app/main": 500},
                       created_by="RUN apt-get update"), tag="test/app:latest")
    return write(spec, tmp_path_factory.mktemp("cli") / "img.tar", "docker-legacy")


@pytest.mark.parametrize("by,title", [("category", "Bytes by category"), ("package", "Bytes by package"),
                                      ("layer", "Bytes by layer"), ("step", "Bytes by Dockerfile step"),
                                      ("dir", "Bytes by directory")],
                         ids=lambda v: f"--by {v}" if v in ("category", "package", "layer", "step", "dir") else v)
def test_analyze_by_prints_that_table_and_the_findings(archive, by, title):
    """``--by X`` shows the headline, the table grouped by X and the findings with the total."""
    run = run_cli("analyze", str(archive), "--by", by)
    assert run.code == 0 and run.exc is None, run.err
    out = run.out.decode()
    assert title in out and "Findings: could save 12.0 kB of 12.5 kB (estimated 500 B after slimming)" in out
    assert "Largest files" not in out


def test_analyze_json_keeps_its_keys_and_adds_the_attribution(archive):
    """--json carries the old keys and the new ones: categories, packages, steps, findings, savings."""
    run = run_cli("analyze", str(archive), "--json")
    data = json.loads(run.out)
    assert run.code == 0
    for key in ("schema", "image", "sizes", "layers", "waste", "largest_files", "largest_dirs", "categories",
                "packages", "steps", "dirs", "findings", "could_save_bytes", "could_save_by_fix",
                "estimated_size_after_bytes", "notes"):
        assert key in data, key
    assert data["could_save_bytes"] == 12_000 and data["estimated_size_after_bytes"] == 500
    assert {f["id"] for f in data["findings"]} == {"toolchain-in-final-image", "cache-left-behind", "runs-as-root"}
    assert {c["category"]: c["final_bytes"] for c in data["categories"]}["toolchain"] == 9_000


def test_analyze_rejects_an_unknown_grouping(archive):
    """--by with an unknown value is a usage error (exit 2), not a traceback."""
    run = run_cli("analyze", str(archive), "--by", "colour")
    assert run.code == 2 and run.exc is None and "colour" in run.err


def test_analyze_no_content_works_by_path_and_says_so(archive):
    """--no-content skips the content pass: same categories by path, a note, no packages."""
    run = run_cli("analyze", str(archive), "--json", "--no-content")
    data = json.loads(run.out)
    assert run.code == 0 and data["notes"] == [
        "file contents were not read: categories by path only, no packages, no duplicates"]
    assert [p["key"] for p in data["packages"]] == ["(no package)"]
    assert data["could_save_bytes"] == 12_000


def test_could_save_is_within_ten_percent_of_what_slim_removes(single_stage, tmp_path):
    """On the single-stage sample, "could save" matches the bytes `slimmer slim` (prune) really
    removes, within 10%."""
    result, _build = single_stage
    out = tmp_path / "slim.tar"
    run = run_cli("slim", str(FIXTURES / "single-stage.tar"), "-o", str(out))
    if run.code == 2 and "No such command" in run.err:
        pytest.skip("slimmer slim is not there yet")
    assert run.code == 0 and run.exc is None, run.err
    removed = result.summary.total_size - total_size(open_image(out))
    assert abs(result.could_save_bytes - removed) <= 0.1 * removed, (result.could_save_bytes, removed)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_duplicates_are_confirmed_by_the_whole_content(tmp_path, compression):
    """Large files of one size are first told apart by their first 64 KiB; those that agree
    there are hashed whole, so a difference after the sample still separates them. Read from a
    real archive: uncompressed layers are sampled and seeked, gzip ones hashed as they stream."""
    head = bytes(range(256)) * 512  # 128 KiB, past the sample
    same_a, same_b = head + b"tail-1" * 1000, head + b"tail-1" * 1000
    late_diff = head + b"tail-2" * 1000
    early_diff = b"X" + (head + b"tail-1" * 1000)[1:]
    spec = image(layer({"a/one.bin": same_a, "b/two.bin": same_b}),
                 layer({"c/three.bin": late_diff, "d/four.bin": early_diff}))
    archive = write(spec, tmp_path / "img.tar", "docker-legacy", compression)
    img = open_image(archive)
    groups = attribute(img).duplicates
    assert [[path for _layer, path, _final in g.copies] for g in groups] == [["a/one.bin", "b/two.bin"]]
    assert groups[0].size == len(same_a)
