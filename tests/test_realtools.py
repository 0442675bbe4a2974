"""Archives made by real tools in the test run: umoci builds an OCI layout from a small rootfs
(a second layer deletes and overwrites files, a third replaces a directory and a file), skopeo
turns it into docker-archive and oci-archive (gzip, and zstd). slimmer's per-layer file lists
and sizes must equal what GNU ``tar -tv`` says of the same blobs (decompressed with the gzip and
zstd command-line tools), and its digests and config what ``skopeo inspect`` says.

``tool_archives(root)`` is also used by tests/test_dive.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slimmer.cli import cli
from slimmer.model import DIR, FILE, HARDLINK, SYMLINK
from slimmer.reader import Options, open_image

TOOLS = ("umoci", "skopeo", "tar", "gzip", "zstd")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (apt-get install skopeo umoci zstd)")

LONG_DIR = "usr/share/" + "/".join(["a-rather-long-directory-name"] * 4)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test reads with an empty layer cache of its own."""
    monkeypatch.setenv("SLIMMER_CACHE_DIR", str(tmp_path / "cache"))


def data(seed: str, size: int) -> bytes:
    return hashlib.shake_256(seed.encode()).digest(size)


def run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, **kw)


def _write(root: Path, rel: str, content: bytes, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)


def build_layout(workdir: Path) -> Path:
    """Build an OCI layout ``workdir/layout`` (tag ``t``) of three layers with umoci."""
    layout, bundle = workdir / "layout", workdir / "bundle"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:t")
    run("umoci", "config", "--image", f"{layout}:t", "--config.entrypoint", "/bin/tool",
        "--config.env", "PATH=/bin", "--architecture", "amd64", "--os", "linux")

    def step(created_by: str, change) -> None:
        shutil.rmtree(bundle, ignore_errors=True)
        run("umoci", "unpack", "--image", f"{layout}:t", str(bundle))
        change(bundle / "rootfs")
        run("umoci", "repack", "--image", f"{layout}:t", "--history.created_by", created_by, str(bundle))

    def base(root: Path) -> None:
        _write(root, "bin/tool", data("tool", 5_000), 0o755)
        os.link(root / "bin/tool", root / "bin/hard")
        os.symlink("tool", root / "bin/t2")
        _write(root, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        _write(root, "etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o600)
        _write(root, "usr/share/doc/x/README", data("readme", 3_000))
        _write(root, "usr/share/doc/caf\u00e9.txt", b"unicode name\n")
        _write(root, f"{LONG_DIR}/file-with-a-long-name-beyond-one-hundred-bytes.txt", data("long", 1_234))
        _write(root, "var/cache/big", data("big", 70_000))
        _write(root, "var/cache/sub/small", data("small", 10))
        _write(root, "var/lib/empty", b"")
        (root / "tmp").mkdir(mode=0o1777)
        (root / "tmp").chmod(0o1777)

    def cleanup(root: Path) -> None:
        shutil.rmtree(root / "var/cache")
        (root / "usr/share/doc/x/README").unlink()
        _write(root, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n")
        _write(root, "etc/new", b"new\n")

    def replace(root: Path) -> None:
        shutil.rmtree(root / "bin")
        _write(root, "bin/new", data("new", 2_000), 0o755)
        (root / "etc/new").unlink()
        _write(root, "etc/new/f", b"y\n")
        _write(root, "var/lib/empty", data("now-full", 500))

    step("ADD rootfs /", base)
    step("RUN rm -rf /var/cache /usr/share/doc/x/README && adduser app", cleanup)
    step("RUN rm -rf /bin && install new", replace)
    return layout


def skopeo_copy(src: str, dest: str, *extra: str) -> None:
    run("skopeo", "copy", "--insecure-policy", "--quiet", *extra, src, dest)


def tool_archives(workdir: Path) -> dict[str, Path]:
    """Return the images umoci and skopeo make: name -> path (the layout dir, docker-archive,
    oci-archive with gzip layers, and with zstd layers if this skopeo can write them)."""
    workdir.mkdir(parents=True, exist_ok=True)
    layout = build_layout(workdir)
    out = {"oci-dir": layout}
    out["docker-archive"] = workdir / "docker.tar"
    skopeo_copy(f"oci:{layout}:t", f"docker-archive:{out['docker-archive']}:test/app:latest")
    out["oci-archive-gzip"] = workdir / "oci-gzip.tar"
    skopeo_copy(f"oci:{layout}:t", f"oci-archive:{out['oci-archive-gzip']}:t")
    # skopeo keeps already-compressed blobs as they are, so zstd is asked for when copying from
    # the docker-archive, whose layers are uncompressed
    zstd = workdir / "oci-zstd.tar"
    try:
        skopeo_copy(f"docker-archive:{out['docker-archive']}", f"oci-archive:{zstd}:t",
                    "--dest-compress-format", "zstd")
    except subprocess.CalledProcessError:
        pass
    else:
        if any(d["mediaType"].endswith("+zstd") for d in inspect(f"oci-archive:{zstd}", "--raw")["layers"]):
            out["oci-archive-zstd"] = zstd
    return out


def inspect(ref: str, *flags: str) -> dict:
    return json.loads(run("skopeo", "inspect", *flags, ref).stdout)


def raw_config(ref: str) -> bytes:
    """Return the config blob exactly as stored (``--config`` alone re-encodes it)."""
    return run("skopeo", "inspect", "--config", "--raw", ref).stdout


def skopeo_ref(name: str, path: Path) -> str:
    return {"oci-dir": f"oci:{path}:t", "docker-archive": f"docker-archive:{path}"}.get(name, f"oci-archive:{path}")


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    return tool_archives(tmp_path_factory.mktemp("realtools"))


NAMES = ["oci-dir", "docker-archive", "oci-archive-gzip", "oci-archive-zstd"]
IDS = ["an OCI layout directory made by umoci", "a docker-archive made by skopeo",
       "an oci-archive with gzip layers made by skopeo", "an oci-archive with zstd layers made by skopeo"]


def pick(archives: dict[str, Path], name: str) -> Path:
    if name not in archives:
        pytest.skip(f"skopeo {run('skopeo', '--version').stdout.decode().split()[-1]} wrote no zstd layers")
    return archives[name]


def read(name: str, path: Path):
    return open_image(path, Options(image="t" if name == "oci-dir" else None))


# ---- what tar -tv says ---------------------------------------------------------------------

_TV = re.compile(r"^(?P<perm>\S{10})\s+(?P<uid>\d+)/(?P<gid>\d+)\s+(?P<size>\d+)\s+\S+\s+\S+\s(?P<rest>.*)$")
_TYPES = {"-": FILE, "d": DIR, "l": SYMLINK, "h": HARDLINK}


def layer_blobs(name: str, path: Path, workdir: Path) -> list[Path]:
    """Return the stored layer blobs of the image, in order, as files on disk."""
    if name == "oci-dir":
        root = path
    else:
        root = workdir / "unpacked"
        root.mkdir(exist_ok=True)
        run("tar", "-xf", str(path), "-C", str(root))
    if name == "docker-archive":
        manifest = json.loads((root / "manifest.json").read_text())[0]
        return [root / layer for layer in manifest["Layers"]]
    index = json.loads((root / "index.json").read_text())
    desc = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((root / "blobs/sha256" / desc).read_text())
    return [root / "blobs/sha256" / d["digest"].split(":")[1] for d in manifest["layers"]]


def tar_tv(blob: Path) -> list[tuple]:
    """Return (path, kind, size, mode, uid, gid, link) per member, as GNU tar lists the blob."""
    head = blob.read_bytes()[:4]
    tool = ["gzip", "-dc"] if head[:2] == b"\x1f\x8b" else ["zstd", "-dc"] if head == b"\x28\xb5\x2f\xfd" else ["cat"]
    plain = run(*tool, str(blob)).stdout
    listing = subprocess.run(["tar", "--numeric-owner", "--quoting-style=literal", "-tvf", "-"], input=plain,
                             check=True, capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout
    out = []
    for line in listing.decode("utf-8", "surrogateescape").splitlines():
        m = _TV.match(line)
        assert m, line
        kind = _TYPES[m["perm"][0]]
        rest, link = m["rest"], ""
        if kind == SYMLINK:
            rest, link = rest.split(" -> ", 1)
        elif kind == HARDLINK:
            rest, link = rest.split(" link to ", 1)
        path = rest.rstrip("/").removeprefix("./")
        if path in ("", "."):
            continue
        out.append((path, kind, int(m["size"]), m["perm"][1:], int(m["uid"]), int(m["gid"]), link))
    return out


def perm_string(mode: int) -> str:
    """Return the rwx string `ls -l` and `tar -tv` print for permission bits ``mode``."""
    return stat.filemode(mode)[1:]


def slimmer_listing(layer) -> list[tuple]:
    return [(e.path, e.kind, e.size, perm_string(e.mode), e.uid, e.gid, e.link) for e in layer.entries]


# ---- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES, ids=IDS)
def test_layer_files_equal_tar_listing(archives, name, tmp_path):
    """Every layer's entries (path, type, size, mode, owner, link) equal GNU tar's listing of the blob."""
    path = pick(archives, name)
    image = read(name, path)
    blobs = layer_blobs(name, path, tmp_path)
    assert len(image.layers) == len(blobs) == 3
    for layer, blob in zip(image.layers, blobs):
        assert slimmer_listing(layer) == tar_tv(blob)


@pytest.mark.parametrize("name", NAMES, ids=IDS)
def test_digests_and_config_equal_skopeo_inspect(archives, name):
    """Layer digests and sizes, the config and its digest equal what skopeo inspect reports."""
    path = pick(archives, name)
    image = read(name, path)
    ref = skopeo_ref(name, path)
    assert [layer.digest for layer in image.layers] == inspect(ref)["Layers"]
    config = raw_config(ref)
    assert image.config == json.loads(config)
    assert image.config_digest == "sha256:" + hashlib.sha256(config).hexdigest()
    assert [layer.diff_id for layer in image.layers] == json.loads(config)["rootfs"]["diff_ids"]
    raw = inspect(ref, "--raw")
    assert image.config_digest == raw["config"]["digest"]
    assert [layer.stored_size for layer in image.layers] == [d["size"] for d in raw["layers"]]
    assert [layer.digest for layer in image.layers] == [d["digest"] for d in raw["layers"]]


@pytest.mark.parametrize("name", NAMES, ids=IDS)
def test_diff_ids_are_the_sha256_of_the_uncompressed_blobs(archives, name, tmp_path):
    """Each layer's diff_id is the sha256 of its blob decompressed by the gzip or zstd tool."""
    path = pick(archives, name)
    image = read(name, path)
    for layer, blob in zip(image.layers, layer_blobs(name, path, tmp_path)):
        head = blob.read_bytes()[:4]
        tool = (["gzip", "-dc"] if head[:2] == b"\x1f\x8b"
                else ["zstd", "-dc"] if head == b"\x28\xb5\x2f\xfd" else ["cat"])
        plain = run(*tool, str(blob)).stdout
        assert layer.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
        assert layer.uncompressed_size == len(plain)
        assert layer.compression == {"cat": "none", "gzip": "gzip", "zstd": "zstd"}[tool[0]]


def test_every_format_holds_the_same_layers(archives):
    """The layout and every skopeo copy of it give the same diff_ids and entries."""
    images = {name: read(name, path) for name, path in archives.items()}
    first = images["oci-dir"]
    for name, image in images.items():
        assert [layer.diff_id for layer in image.layers] == [layer.diff_id for layer in first.layers], name
        assert [layer.entries for layer in image.layers] == [layer.entries for layer in first.layers], name


def test_the_umoci_layers_show_the_deletes_and_overwrites(archives):
    """The second layer's whiteouts and overwrite land in the merged view as built."""
    from slimmer.layers import merge

    fs = merge(read("oci-dir", archives["oci-dir"]))
    assert not fs.exists("var/cache") and not fs.exists("usr/share/doc/x/README")
    assert fs.get("etc/passwd").layer == 1
    assert fs.get("etc/new").entry.kind == DIR and fs.get("etc/new/f").layer == 2
    assert not fs.exists("bin/tool") and fs.get("bin/new").entry.size == 2_000
    assert fs.get("var/lib/empty").entry.size == 500
    assert fs.get(f"{LONG_DIR}/file-with-a-long-name-beyond-one-hundred-bytes.txt").entry.size == 1_234
    assert fs.get("usr/share/doc/caf\u00e9.txt").layer == 0


def test_analyze_reads_the_layout_directory_by_tag(archives):
    """`slimmer analyze DIR --image t` reads the umoci layout directory."""
    result = CliRunner().invoke(cli, ["analyze", str(archives["oci-dir"]), "--image", "t", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["sizes"]["layer_count"] == 3
    assert report["image"]["entrypoint"] == ["/bin/tool"]


@pytest.mark.parametrize("name", ["docker-archive", "oci-archive-gzip", "oci-archive-zstd"],
                         ids=["a docker-archive piped in", "an oci-archive with gzip layers piped in",
                              "an oci-archive with zstd layers piped in"])
def test_analyze_from_a_pipe_equals_analyze_of_the_file(archives, name):
    """`cat ARCHIVE | slimmer analyze -` reports what analyzing the file reports."""
    path = pick(archives, name)
    cmd = [sys.executable, "-m", "slimmer.cli", "analyze", "--json", "--no-content"]
    piped = subprocess.run(f"cat {path} | {' '.join(cmd)} -", shell=True, capture_output=True, check=True)
    direct = subprocess.run([*cmd, str(path)], capture_output=True, check=True)
    from_pipe, from_file = json.loads(piped.stdout), json.loads(direct.stdout)
    assert from_pipe["image"].pop("source") == "-"
    assert from_file["image"].pop("source") == str(path)
    assert from_pipe == from_file


@pytest.mark.parametrize("archive, ref", [
    pytest.param("single-stage.tar", "docker-archive", id="the single-stage docker-archive fixture"),
    pytest.param("multistage.tar", "docker-archive", id="the multistage docker-archive fixture"),
    pytest.param("single-stage-oci.tar", "oci-archive", id="the single-stage oci-archive fixture"),
])
def test_skopeo_reads_the_fixtures_as_slimmer_does(archive, ref):
    """skopeo accepts each shipped fixture and reports the digests and config slimmer reads."""
    path = Path(__file__).resolve().parent.parent / "fixtures" / archive
    image = open_image(path)
    assert [layer.digest for layer in image.layers] == inspect(f"{ref}:{path}")["Layers"]
    config = raw_config(f"{ref}:{path}")
    assert image.config == json.loads(config)
    assert image.config_digest == "sha256:" + hashlib.sha256(config).hexdigest()
    assert image.config_digest == inspect(f"{ref}:{path}", "--raw")["config"]["digest"]
