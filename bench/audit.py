"""Benchmark `slimmer audit` of a registry's storage: local worker processes against a Dask
cluster of two workers on this machine, and what a re-audit costs.

    python bench/audit.py                      # 20 repositories, 10 tags each (220 images)
    python bench/audit.py --repos 40 --tags 10

The storage is written directly in the distribution registry's layout (tests/builders.py,
the layout the tests check against the real registry): four base layers of 1,500 files, one
runtime layer per repository, one app layer per tag, every tag on its repository's base; the
first two repositories push each tag as a two-platform index. Each run is a fresh
`python -m slimmer audit` process; wall time from time.perf_counter, peak memory from
/usr/bin/time, blobs read and layers scanned from the audit database. Results go to
bench/out/audit.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from builders import image, layer, write_registry

STATUS = "".join(f"Package: lib{i}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.{i}\n\n"
                 for i in range(30)).encode()


def data(seed: str, size: int) -> bytes:
    """Return ``size`` bytes that differ per ``seed`` (incompressible, as binaries mostly are)."""
    return hashlib.shake_256(seed.encode()).digest(size)


def base(k: int):
    files = {f"usr/lib/base{k}/lib{i}.so": data(f"b{k}.{i}", 1_000 + (i * 37) % 7_000) for i in range(1_500)}
    files.update({"var/lib/dpkg/status": STATUS, f"usr/share/doc/base{k}/README": data(f"doc{k}", 30_000)})
    return layer(files, created_by=f"ADD base{k}.tar /", auto_dirs=True)


def runtime(r: int):
    return layer({f"opt/runtime{r}/mod{i}.py": data(f"r{r}.{i}", 3_000) for i in range(300)},
                 created_by=f"RUN install runtime {r}", auto_dirs=True)


def app(r: int, t: int, arch: str = ""):
    files = {f"app/{arch}part{i}.bin": data(f"a{r}.{t}.{arch}{i}", 5_000) for i in range(40)}
    files[f"var/cache/build{t}.tmp"] = data(f"c{r}.{t}", 20_000)
    return layer(files, created_by=f"COPY app {r}:{t} /app", auto_dirs=True)


def generate(root: Path, repos: int, tags: int) -> dict:
    """Write the storage; return what it holds."""
    bases = [base(k) for k in range(4)]
    images: dict = {}
    for r in range(repos):
        rt = runtime(r)
        for t in range(tags):
            ref = f"team{r % 5}/service{r}:1.{t}"
            spec = image(bases[r % 4], rt, app(r, t), tag=ref)
            images[ref] = ({"linux/amd64": spec, "linux/arm64/v8": image(bases[r % 4], rt, app(r, t, "arm"), tag=ref)}
                           if r < 2 else spec)
    write_registry(images, root)
    blobs = list((root / "docker/registry/v2/blobs/sha256").glob("*/*/data"))
    return {"repositories": repos, "tags": repos * tags,
            "images": sum(len(v) if isinstance(v, dict) else 1 for v in images.values()),
            "blobs": len(blobs), "stored_bytes": sum(p.stat().st_size for p in blobs)}


def audit(storage: Path, db: Path, *args: str) -> dict:
    """Run one audit in a fresh process; return its time, peak memory and what it read."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name, sys.executable, "-m", "slimmer", "audit",
                               str(storage), "--db", str(db), *args], capture_output=True, text=True, env=env,
                              check=False)
        wall = time.perf_counter() - start
        rss = int(tf.read().strip().splitlines()[-1])
    if proc.returncode != 0:
        raise SystemExit(f"audit failed ({proc.returncode}):\n{proc.stderr}")
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT images, blobs_read, bytes_read, layers_scanned, reused FROM audits "
                           "ORDER BY id DESC LIMIT 1").fetchone()
    return {"seconds": round(wall, 2), "peak_rss_mib": round(rss / 1024), "images": row[0], "blobs_read": row[1],
            "bytes_read": row[2], "layers_scanned": row[3], "images_unchanged": row[4],
            "summary": [line for line in proc.stderr.splitlines() if line.startswith("slimmer:")]}


def start_cluster(workers: int):
    """Start a Dask scheduler and ``workers`` single-threaded worker processes on 127.0.0.1."""
    import distributed

    os.environ["PYTHONPATH"] = str(ROOT)  # the workers import this slimmer
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3, help="cold runs of each kind, interleaved (default 3)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="slimmer-bench-audit-"))
    try:
        storage = work / "storage"
        start = time.perf_counter()
        held = generate(storage, args.repos, args.tags)
        held["generate_seconds"] = round(time.perf_counter() - start, 1)
        print(f"storage: {held}", flush=True)
        cold: dict[str, list[dict]] = {"local, cold": [], "local, cold, --jobs 1": [], "dask, 2 workers, cold": []}
        cluster = start_cluster(2)
        try:
            for rep in range(args.reps):  # interleaved: this machine is shared and noisy
                cold["local, cold"].append(audit(storage, work / f"local{rep}.sqlite", "--jobs", str(args.jobs)))
                cold["dask, 2 workers, cold"].append(audit(storage, work / f"dask{rep}.sqlite", "--scheduler",
                                                           cluster.scheduler_address, "--jobs", str(args.jobs)))
                cold["local, cold, --jobs 1"].append(audit(storage, work / f"serial{rep}.sqlite", "--jobs", "1"))
        finally:
            cluster.close()
        runs = {name: min(rs, key=lambda r: r["seconds"]) | {"median_seconds": statistics.median(
            r["seconds"] for r in rs)} for name, rs in cold.items()}
        runs["local, again (nothing new)"] = audit(storage, work / "local0.sqlite", "--jobs", str(args.jobs))
        write_registry({"team0/service0:2.0": image(base(0), runtime(0), app(0, 999), tag="team0/service0:2.0")},
                       storage)
        runs["local, after one more push"] = audit(storage, work / "local0.sqlite", "--jobs", str(args.jobs))
        for name, r in runs.items():
            print(f"{name}: {r['summary']}", flush=True)
        result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                              "platform": platform.platform()}, "storage": held, "runs": runs}
        (OUT / "audit.json").write_text(json.dumps(result, indent=2))
        print()
        print(f"{'run':<28} {'min s':>6} {'med s':>6} {'MiB':>5} {'images':>6} {'blobs read':>10} {'MB read':>8} "
              f"{'scanned':>7}  time spent")
        for name, r in runs.items():
            spent = next((line.split("time spent ", 1)[1] for line in r["summary"] if "time spent" in line), "")
            print(f"{name:<28} {r['seconds']:>6.2f} {r.get('median_seconds', r['seconds']):>6.2f} "
                  f"{r['peak_rss_mib']:>5} {r['images']:>6} {r['blobs_read']:>10} {r['bytes_read'] / 1e6:>8.1f} "
                  f"{r['layers_scanned']:>7}  {spent}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
