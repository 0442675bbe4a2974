"""Real servers the audit tests start on 127.0.0.1, each in a temporary directory, and stop:
the distribution registry (Debian's docker-registry), a private PostgreSQL cluster, a Dask
scheduler with workers. Plus ``BlobOpens``, which counts with inotify how often any process
opens each blob of a registry storage, and ``tree_state`` to prove a storage was not changed.

A server whose package is missing skips its tests on a developer's machine; under CI (the
``CI`` environment variable, as ``.ci/run`` runs) it fails them: tests/run.sh installs it.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(*tools: str) -> list[str]:
    """Return the paths of ``tools``; skip (fail under CI) when one is not installed."""
    found = [shutil.which(t) or (t if os.path.isabs(t) and os.access(t, os.X_OK) else None) for t in tools]
    missing = [t for t, f in zip(tools, found) if f is None]
    if missing:
        message = f"needs {', '.join(missing)} (bash tests/run.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return [f for f in found if f]


def need_module(name: str):
    """Return the imported module ``name``; skip (fail under CI) when it is not installed."""
    try:
        return __import__(name)
    except ImportError:
        message = f"needs the {name} Python package (bash tests/run.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def child_env() -> dict[str, str]:
    """The environment of a server that imports slimmer: this tree first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def wait_for(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up in {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Registry:
    """The distribution registry serving ``storage`` on 127.0.0.1 (no TLS, no auth)."""

    def __init__(self, storage: Path, workdir: Path):
        self.binary = need("docker-registry")[0]
        self.storage, self.workdir = storage, workdir
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        self.port = free_port()
        config = self.workdir / "registry.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                          f"    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
                          f"http:\n  addr: {self.address}\n")
        with open(self.workdir / "registry.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen([self.binary, "serve", str(config)], stdout=log, stderr=log)
        wait_for(self._up, "docker-registry")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(self.workdir / 'registry.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def push(self, layout: Path, tag: str, ref: str, all_platforms: bool = False) -> None:
        """Push the image ``tag`` of OCI layout ``layout`` as ``ref`` (repo:tag) with skopeo."""
        skopeo = need("skopeo")[0]
        cmd = [skopeo, "copy", "--quiet", "--dest-tls-verify=false", *(["--all"] if all_platforms else []),
               f"oci:{layout}:{tag}", f"docker://{self.address}/{ref}"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def pull(self, ref: str, dest: Path, all_platforms: bool = False) -> Path:
        """Copy ``ref`` back out of the registry into an OCI layout directory (tag "pulled")."""
        skopeo = need("skopeo")[0]
        dest.parent.mkdir(parents=True, exist_ok=True)
        cmd = [skopeo, "copy", "--quiet", "--src-tls-verify=false", *(["--all"] if all_platforms else []),
               f"docker://{self.address}/{ref}", f"oci:{dest}:pulled"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        return dest


class Postgres:
    """A private PostgreSQL cluster in a directory of its own under /tmp, listening on
    127.0.0.1 (trust auth); as root it runs as the ``postgres`` user, as initdb requires."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        bindir = Path(found[-1]).parent if found else None
        self.initdb, self.pg_ctl = need(str(bindir / "initdb") if bindir else "initdb",
                                        str(bindir / "pg_ctl") if bindir else "pg_ctl")
        self.workdir = Path(tempfile.mkdtemp(prefix="slimmer-pg-"))
        self.data = self.workdir / "pgdata"
        self.port = 0
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root needs the postgres user (the postgresql package creates it)")
            self.user = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://slimmer@127.0.0.1:{self.port}/slimmer"

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120, cwd="/")

    def start(self) -> Postgres:
        self.port = free_port()
        if self.user:
            info = pwd.getpwnam(self.user)
            os.chown(self.workdir, info.pw_uid, info.pw_gid)
        self._run(self.initdb, "-D", str(self.data), "-U", "slimmer", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} -c fsync=off"
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.workdir / "pg.log"), "-w",
                  "-t", "60", "start")
        self._run(str(Path(self.initdb).parent / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                  "slimmer", "slimmer")
        return self

    def database(self, name: str) -> str:
        """Return the URL of a new, empty database ``name`` on this cluster (dropped first if it exists)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        if self.port:
            subprocess.run([*(["runuser", "-u", self.user, "--"] if self.user else []), self.pg_ctl, "-D",
                            str(self.data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60,
                           cwd="/", check=False)
            self.port = 0
        shutil.rmtree(self.workdir, ignore_errors=True)


class DaskCluster:
    """A Dask scheduler and workers on 127.0.0.1, started with the dask-scheduler and
    dask-worker CLIs (as ``python -m``, so no script directory needs to be on PATH)."""

    def __init__(self, workdir: Path):
        need_module("distributed")
        self.scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        self.worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
        self.workdir = workdir
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, workers: int = 2) -> DaskCluster:
        with open(self.workdir / "scheduler.log", "ab") as log:
            self.procs.append(subprocess.Popen([*self.scheduler_cmd, "--host", "127.0.0.1", "--port",
                                                str(self.port), "--no-dashboard"], stdout=log, stderr=log,
                                               env=child_env()))
        for _ in range(workers):
            self.add_worker()
        self.wait(workers)
        return self

    def add_worker(self, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        """Start one more worker (one thread), its command behind ``prefix`` (e.g. unshare)."""
        n = len(self.workers)
        local = self.workdir / f"worker-{n}"
        local.mkdir(exist_ok=True)
        cmd = [*self.worker_cmd, self.address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
               "--no-dashboard", "--no-nanny", "--local-directory", str(local), "--name", f"w{n}"]
        with open(self.workdir / f"worker-{n}.log", "ab") as log:
            proc = subprocess.Popen([*prefix, *cmd], stdout=log, stderr=log, env=child_env())
        self.procs.append(proc)
        self.workers.append(proc)
        return proc

    def wait(self, workers: int) -> None:
        import distributed

        with distributed.Client(self.address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()


# ---- counting blob reads ------------------------------------------------------------------

IN_OPEN = 0x20
_EVENT = struct.Struct("iIII")


class BlobOpens:
    """Counts, with inotify, how often any process opens each blob of a registry storage.
    ``counts()`` returns {digest: opens} since the start (or the last ``reset``)."""

    def __init__(self, storage: Path):
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.by_wd: dict[int, str] = {}
        self.total: dict[str, int] = {}
        for data in glob.glob(str(storage / "docker/registry/v2/blobs/sha256/*/*/data")):
            self.watch(Path(data).parent)

    def watch(self, blob_dir: Path) -> None:
        wd = self.libc.inotify_add_watch(self.fd, str(blob_dir).encode(), IN_OPEN)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {blob_dir}")
        self.by_wd[wd] = "sha256:" + blob_dir.name

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            at = 0
            while at < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, at)
                name = data[at + _EVENT.size: at + _EVENT.size + length].rstrip(b"\0")
                at += _EVENT.size + length
                if mask & IN_OPEN and name == b"data" and wd in self.by_wd:
                    digest = self.by_wd[wd]
                    self.total[digest] = self.total.get(digest, 0) + 1

    def counts(self) -> dict[str, int]:
        time.sleep(0.2)  # events of processes that just exited are queued by now
        self._drain()
        return dict(self.total)

    def reset(self) -> None:
        self._drain()
        self.total.clear()

    def close(self) -> None:
        os.close(self.fd)


def tree_state(root: Path) -> dict[str, tuple]:
    """Return every path below ``root`` with its type, mode, size, mtime and content hash."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest,
                                                os.readlink(path) if os.path.islink(path) else "")
    return out

