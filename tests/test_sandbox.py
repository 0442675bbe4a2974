"""``slim --probe`` and ``--verify``: the program runs in a sandbox (user, mount, PID and network
namespaces, the image's rootfs, strace), on a small real rootfs (Debian's python3.11-minimal
from this machine, as in test_runs_in_chroot)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from test_runs_in_chroot import LOADER_CONF, has_python_minimal, host_tree, python_paths

from slimmer.reader import open_image
from slimmer.rewriter.slim import SlimOptions, slim
from slimmer.sandbox import SandboxError, check_host, host_has_tools

from builders import File, image, layer, write

pytestmark = [
    pytest.mark.skipif(not host_has_tools(), reason="needs unshare and strace (tests/run.sh installs strace)"),
    pytest.mark.skipif(not has_python_minimal(), reason="needs Debian's python3.11-minimal"),
]

STD = "usr/lib/python3.11"
MAIN = (b"import importlib, os\n"
        b"name = 'hid' + 'den_mod'\n"  # a computed name: static analysis cannot see it
        b"mod = importlib.import_module(name)\n"
        b"print(mod.greet(open(os.path.join(os.path.dirname(__file__), 'name.txt')).read().strip()))\n")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A Python program that imports a standard-library-side module by a computed name and
    reads a data file beside it."""
    where = tmp_path_factory.mktemp("probe")
    base = host_tree(python_paths() + LOADER_CONF)
    app = {"app/main.py": File(MAIN, mode=0o755), "app/name.txt": b"slimmer\n",
           f"{STD}/hidden_mod.py": b"def greet(n):\n    return 'hello ' + n\n"}
    spec = image(layer(base, created_by="ADD rootfs"), layer(app, auto_dirs=True, created_by="COPY app"),
                 config={"config": {"Cmd": ["python3", "/app/main.py"], "Env": ["PATH=/usr/bin:/bin"],
                                    "WorkingDir": "/app"}})
    return write(spec, where / "in.tar", "docker-legacy")


def _kept(path):
    from slimmer.layers import merge

    return {p for p, _v in merge(open_image(path)).files()}


def test_without_probe_the_computed_import_is_missed_and_verify_says_which_file(tmp_path, archive):
    """Static analysis cannot see a module imported by a computed name: --verify runs both
    images, sees the slim one fail, and names the file it could not open."""
    result = slim(open_image(archive), SlimOptions(mode="distroless", verify=True), tmp_path / "slim.tar")
    assert f"{STD}/hidden_mod.py" not in _kept(tmp_path / "slim.tar")
    verdict = result.verdict
    assert verdict is not None and not verdict.same
    assert verdict.original.status == 0 and verdict.original.stdout == b"hello slimmer\n"
    assert verdict.slim.status != 0 and "exit status" in verdict.what
    assert verdict.first_missing == f"/{STD}/hidden_mod.py"


def test_probe_keeps_the_module_imported_by_a_computed_name(tmp_path, archive):
    """--probe runs the program, records what it opens and keeps it: the slim image then runs
    like the original, and says why the module is there."""
    result = slim(open_image(archive), SlimOptions(mode="distroless", probe=True, verify=True), tmp_path / "slim.tar")
    assert f"{STD}/hidden_mod.py" in _kept(tmp_path / "slim.tar")
    why = {r.path: r.why for r in result.plan.reasons}
    assert why[f"{STD}/hidden_mod.py"] == "opened by the --probe run of python3 /app/main.py"
    assert result.verdict is not None and result.verdict.same, result.verdict
    assert any(n.startswith("--probe ran python3 /app/main.py (exited 0)") for n in result.plan.notes)


def test_verify_catches_a_removed_file_the_program_reads(tmp_path, archive):
    """A file the program needs, taken away with --drop, fails --verify, which names it; the
    CLI exits 1 and says so in one line."""
    out = tmp_path / "slim.tar"
    done = subprocess.run([sys.executable, "-m", "slimmer", "slim", str(archive), "-o", str(out), "--mode",
                           "distroless", "--probe", "--verify", "--drop", "/app/name.txt", "--no-cache"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("slimmer: --verify failed: the slim image ran python3 /app/main.py with a different")
    assert line.endswith("the first missing file it tried to open: /app/name.txt")


def test_a_probe_that_cannot_start_changes_nothing(tmp_path, archive):
    """A probe command that is not in the image says why, and the plan is the static one."""
    static = slim(open_image(archive), SlimOptions(mode="distroless"), tmp_path / "a.tar")
    probed = slim(open_image(archive), SlimOptions(mode="distroless", probe=True, probe_cmd=("/no/such",)),
                  tmp_path / "b.tar")
    assert probed.plan.keep == static.plan.keep
    assert any(n.startswith("--probe failed: /no/such did not start") for n in probed.plan.notes)


def test_verify_is_refused_for_another_architecture(tmp_path):
    """An image for another architecture is refused before any work, in one line, exit 2."""
    spec = image(layer({"app/run": File(b"x", mode=0o755)}), config={"architecture": "s390x" if os.uname().machine
                                                                     != "s390x" else "arm64",
                                                                     "config": {"Cmd": ["/app/run"]}})
    archive = write(spec, tmp_path / "in.tar", "docker-legacy")
    with pytest.raises(SandboxError, match="cannot run the image here: it is for linux/"):
        check_host(open_image(archive))
    done = subprocess.run([sys.executable, "-m", "slimmer", "slim", str(archive), "-o", str(tmp_path / "o.tar"),
                           "--verify"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("slimmer: error: cannot run the image here")
    assert not (tmp_path / "o.tar").exists()
    assert shutil.which("unshare")
