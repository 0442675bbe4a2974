"""`slimmer audit --scheduler`: the per-blob scans on a real Dask cluster (a scheduler and two
workers started with the dask CLIs on 127.0.0.1) give the rows of a local audit, each blob
opened once across the cluster; a worker that cannot see the storage has its scans retried
on another."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from pushed import db_figures, run_cli
from servers import BlobOpens, DaskCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask")).start(workers=2)
    yield c
    c.stop()


def rows(out: str) -> list[dict]:
    return sorted(json.loads(out)["images"], key=lambda i: (i["tags"], i["platform"]))


def test_a_dask_cluster_gives_the_rows_of_a_local_audit_reading_each_blob_once(pushed, cluster, tmp_path):
    """The same rows and kept figures as local worker processes; every blob opened once, the
    layers by the workers."""
    code, local, err = run_cli("audit", pushed.storage, "--db", tmp_path / "local.sqlite", "--jobs", "2", "--json")
    assert code == 0, err
    opens = BlobOpens(pushed.storage)
    code, out, err = run_cli("audit", pushed.storage, "--db", tmp_path / "dask.sqlite", "--scheduler",
                             cluster.address, "--json", "--jobs", "1")
    counts = opens.counts()
    opens.close()
    assert code == 0, err
    assert rows(out) == rows(local)
    assert db_figures(tmp_path / "dask.sqlite") == db_figures(tmp_path / "local.sqlite") == pushed.expected
    assert set(counts.values()) == {1}
    assert f"scans ran on {cluster.address} (2 workers)" in err


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare -m (a mount namespace) to hide the storage")
def test_a_worker_that_cannot_see_the_storage_has_its_scans_retried_on_another(pushed, cluster, tmp_path):
    """A third worker whose view of the storage path is an empty tmpfs: the scans it is given
    fail there and are retried on the others; the rows are those of the local audit."""
    code, local, err = run_cli("audit", pushed.storage, "--db", tmp_path / "local.sqlite", "--jobs", "1", "--json")
    assert code == 0, err
    hide = f'mount -t tmpfs slimmer-blind "{pushed.storage}" && exec "$0" "$@"'
    blind = cluster.add_worker(prefix=("unshare", "-m", "sh", "-c", hide))
    try:
        cluster.wait(3)
        code, out, err = run_cli("audit", pushed.storage, "--db", tmp_path / "dask.sqlite", "--scheduler",
                                 cluster.address, "--json", "--jobs", "1")
    finally:
        blind.terminate()
        blind.wait(10)
    assert code == 0, err
    assert rows(out) == rows(local)
    retried = re.search(r", (\d+) retried", err)
    assert retried and int(retried.group(1)) >= 1, err
