"""Benchmark slimmer against dive and the cost of reading the archive once.

    python bench/run.py                 # both archives: the 155,252-file bench archive and the
                                        # few-large-files Go archive (generated if missing)
    python bench/run.py ARCHIVE ...     # measure the given docker-archive files instead
    python bench/run.py --reps 5 --scale 0.25

For each archive, side by side in one run and interleaved (this machine is noisy, so compare
ratios): `slimmer analyze --json` cold (`--no-cache`) and warm (its layer cache filled by an
earlier run), `dive --source docker-archive ARCHIVE --json OUT`, the physical baseline
`openssl dgst -sha256 ARCHIVE` (one SHA-256 pass over every byte), `slimmer analyze -`
reading the archive from a pipe (cold), and `slimmer slim` against `cp`, and against `cp` with
`sync` of the copy (slim fsyncs its output), with --slim. Wall time (min and median) and peak
RSS come from /usr/bin/time; the ratios are set against the targets of issue 15 (TARGETS).
`slimmer --help` is timed beside `python -c pass`. Results go to bench/out/results.json and a
table on stdout. slimmer runs from this checkout
(``python -m slimmer`` with PYTHONPATH set to it).

For the generated archive it also measures the layer cache: a second image on the same base
(only its last layer differs) analyzed after the first, against the same with --no-cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
from timing import timed

SLIMMER = f"PYTHONPATH={HERE.parent} {sys.executable} -m slimmer"

# issue 15's targets: (ratio name, kind of archive, the most it may be)
TARGETS = (
    ("slimmer cold/dive time", "many", 0.5), ("slimmer cold/openssl time", "many", 2.0),
    ("pipe/file time", "many", 1.1), ("slimmer/dive peak RSS", "many", 0.35),
    ("slimmer cold/dive time", "few", 0.9), ("slimmer/dive peak RSS", "few", 1.0),
    ("slimmer warm/dive time", "many", 0.3), ("slimmer warm/dive time", "few", 0.3),
)


def tools(archive: Path, work: Path, slim: bool) -> dict[str, str]:
    a = str(archive)
    cmds = {
        "slimmer cold": f"{SLIMMER} analyze --no-cache {a} --json > {work}/slimmer.json",
        "slimmer warm": f"SLIMMER_CACHE_DIR={work}/cache {SLIMMER} analyze {a} --json > {work}/warm.json",
        "slimmer pipe": f"cat {a} | {SLIMMER} analyze --no-cache - --json > {work}/slimmer-stdin.json",
        "openssl": f"openssl dgst -sha256 {a}",
    }
    if shutil.which("dive"):
        cmds["dive"] = f"dive --source docker-archive {a} --json {work}/dive.json"
    if slim:
        cmds["slimmer slim"] = f"{SLIMMER} slim {a} -o {work}/slim.tar --force"
        cmds["cp"] = f"cp {a} {work}/copy.tar && rm -f {work}/copy.tar"
        # slim's output is fsync'ed (atomic and durable); a copy whose pages are dropped before
        # they are written measures the page cache, so the copy made durable is timed beside it
        cmds["cp + sync"] = f"cp {a} {work}/copy.tar && sync {work}/copy.tar && rm -f {work}/copy.tar"
    return cmds


def _stats(rs: list[tuple[float, int]]) -> dict:
    walls = [w for w, _ in rs]
    return {"min_s": min(walls), "median_s": statistics.median(walls), "peak_rss_kib": max(r for _, r in rs)}


def measure(archive: Path, reps: int, slim: bool = False) -> dict:
    work = Path(tempfile.mkdtemp(dir=OUT))
    try:
        cmds = tools(archive, work, slim)
        runs: dict[str, list[tuple[float, int]]] = {name: [] for name in cmds}
        subprocess.run(["cat", str(archive)], stdout=subprocess.DEVNULL)  # warm the page cache
        timed(cmds["slimmer warm"])  # fill the layer cache the warm runs read
        for _ in range(reps):
            for name, cmd in cmds.items():
                runs[name].append(timed(cmd))
        result = {"archive": str(archive), "bytes": archive.stat().st_size, "reps": reps,
                  "tools": {name: _stats(rs) for name, rs in runs.items()}}
        mine = json.loads((work / "slimmer.json").read_text())
        piped = json.loads((work / "slimmer-stdin.json").read_text())
        warm = json.loads((work / "warm.json").read_text())
        result["stdin_json_equals_file"] = {**piped, "image": {**piped["image"], "source": None}} == \
            {**mine, "image": {**mine["image"], "source": None}}
        result["warm_json_equals_cold"] = warm == mine
        result["files"] = mine["sizes"]["file_count"]
        result["layers"] = mine["sizes"]["layer_count"]
        if (work / "dive.json").exists():
            dive = json.loads((work / "dive.json").read_text())["image"]
            result["agreement"] = {
                "slimmer_dive_wasted_bytes": mine["waste"]["dive_wasted_bytes"],
                "dive_inefficient_bytes": dive["inefficientBytes"],
                "slimmer_dive_efficiency": mine["waste"]["dive_efficiency"],
                "dive_efficiency": dive["efficiencyScore"],
            }
        t = result["tools"]

        def ratio(a: str, b: str, key: str = "median_s"):
            return round(t[a][key] / t[b][key], 3) if a in t and b in t and t[b][key] else None

        result["ratios"] = {
            "slimmer cold/dive time": ratio("slimmer cold", "dive"),
            "slimmer warm/dive time": ratio("slimmer warm", "dive"),
            "slimmer cold/openssl time": ratio("slimmer cold", "openssl"),
            "pipe/file time": ratio("slimmer pipe", "slimmer cold"),
            "slimmer/dive peak RSS": ratio("slimmer cold", "dive", "peak_rss_kib"),
            "slim/cp time": ratio("slimmer slim", "cp"),
            "slim/(cp + sync) time": ratio("slimmer slim", "cp + sync"),
            "slim peak RSS MiB": round(t["slimmer slim"]["peak_rss_kib"] / 1024) if "slimmer slim" in t else None,
        }
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_help(reps: int) -> dict:
    """`slimmer --help` beside the interpreter's own start-up."""
    runs: dict[str, list[tuple[float, int]]] = {"slimmer --help": [], "python -c pass": []}
    for _ in range(max(reps, 5)):
        runs["slimmer --help"].append(timed(f"{SLIMMER} --help"))
        runs["python -c pass"].append(timed(f"{sys.executable} -c pass"))
    return {name: _stats(rs) for name, rs in runs.items()}


def verdicts(results: list[dict], kinds: list[str]) -> list[dict]:
    """Return each target with the ratio measured for it and whether it was met."""
    out = []
    for name, kind, most in TARGETS:
        for r, k in zip(results, kinds):
            if k == kind:
                value = r["ratios"].get(name)
                out.append({"target": f"{name} <= {most}", "archive": Path(r["archive"]).name, "ratio": value,
                            "met": value is not None and value <= most})
    return out


def measure_cache(first: Path, second: Path, reps: int) -> dict:
    """The layer cache: analyze ``second`` (sharing all but its last layer with ``first``) with
    a cache that ``first`` filled, against a cold cache and against --no-cache."""
    work = Path(tempfile.mkdtemp(dir=OUT))
    cache = work / "cache"
    env = f"SLIMMER_CACHE_DIR={cache}"
    out = f"> {work}/out.json"
    cmds = {
        "first image, cold cache": (f"rm -rf {cache}", f"{env} {SLIMMER} analyze {first} --json {out}"),
        "second image, base cached": (f"rm -rf {cache} && {env} {SLIMMER} analyze {first} --json {out}",
                                      f"{env} {SLIMMER} analyze {second} --json {out}"),
        "second image, --no-cache": ("true", f"{SLIMMER} analyze --no-cache {second} --json {out}"),
        "both as a fleet (--jobs 2), cold cache": (f"rm -rf {cache}",
                                                   f"{env} {SLIMMER} analyze {first} {second} --jobs 2 --json {out}"),
    }
    try:
        runs: dict[str, list[tuple[float, int]]] = {name: [] for name in cmds}
        for _ in range(reps):
            for name, (prepare, cmd) in cmds.items():
                subprocess.run(["bash", "-c", prepare], check=True, stdout=subprocess.DEVNULL)
                runs[name].append(timed(cmd))
        tools = {name: {"min_s": min(w for w, _ in rs), "median_s": statistics.median(w for w, _ in rs),
                        "peak_rss_kib": max(r for _, r in rs)} for name, rs in runs.items()}
        warm, cold = tools["second image, base cached"]["median_s"], tools["second image, --no-cache"]["median_s"]
        return {"first": str(first), "second": str(second), "reps": reps, "tools": tools,
                "cached/uncached time": round(warm / cold, 3)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(results: list[dict]) -> str:
    from tabulate import tabulate

    lines = []
    for r in results:
        lines.append(f"{r['archive']}: {r['bytes'] / 1e9:.2f} GB, {r.get('files', '?')} files, "
                     f"{r.get('layers', '?')} layers, {r['reps']} reps")
        rows = [[name, f"{v['min_s']:.2f}", f"{v['median_s']:.2f}", f"{v['peak_rss_kib'] / 1024:.0f}"]
                for name, v in r["tools"].items()]
        lines.append(tabulate(rows, ["tool", "min s", "median s", "peak RSS MiB"], colalign=("left",) + ("right",) * 3))
        lines.append("ratios (medians): " + ", ".join(f"{k} = {v}" for k, v in r["ratios"].items() if v is not None))
        if "agreement" in r:
            lines.append("agreement with dive: " + json.dumps(r["agreement"]))
        lines.append(f"analyze - (pipe) gives the JSON of analyze FILE but image.source: "
                     f"{r['stdin_json_equals_file']}; warm gives the cold JSON: {r['warm_json_equals_cold']}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark slimmer against dive and openssl.")
    ap.add_argument("archives", nargs="*", type=Path)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="size of the generated archive (1.0 = 2 GB)")
    ap.add_argument("--cache-bench", action="store_true",
                    help="also measure a second image sharing the first's base layers (generated if missing)")
    ap.add_argument("--slim", action="store_true", help="also time slimmer slim against cp")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    archives = args.archives
    kinds = ["given"] * len(archives)
    if not archives:
        from generate import write_archive

        target = OUT / f"bench-{args.scale:g}.tar"
        second = OUT / f"bench-{args.scale:g}-b.tar"
        if not target.exists():
            print(f"generating {target} ...", file=sys.stderr)
            write_archive(target, args.scale)
        if args.cache_bench and not second.exists():
            print(f"generating {second} (the same base, another last layer) ...", file=sys.stderr)
            write_archive(second, args.scale, "bench/app:v2", variant=1)
        go = OUT / "go-single.tar"
        if not go.exists():
            from go_image import build

            print(f"building {go} ...", file=sys.stderr)
            build(go)
        archives, kinds = [target, go], ["many", "few"]
    results = [measure(a.resolve(), args.reps, args.slim) for a in archives]
    cache = None
    if not args.archives and args.cache_bench:
        cache = measure_cache(target.resolve(), second.resolve(), args.reps)
    start = measure_help(args.reps)
    met = verdicts(results, kinds)
    machine = {"cpus": os.cpu_count(), "machine": platform.machine(), "cpu": _cpu(),
               "python": platform.python_version(), "kernel": platform.release(), "load_before": os.getloadavg()}
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "results": results, "help": start,
                                                  "targets": met, "layer_cache": cache}, indent=2))
    print(f"machine: {machine}")
    print(table(results))
    print("start-up: " + ", ".join(f"{k} median {v['median_s']:.3f} s (min {v['min_s']:.3f})"
                                   for k, v in start.items()))
    print("targets:")
    for row in met:
        print(f"  {'met    ' if row['met'] else 'NOT met'}  {row['target']:<34} {row['archive']:<16} {row['ratio']}")
    if cache:
        print(cache_table(cache))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cache_table(cache: dict) -> str:
    from tabulate import tabulate

    rows = [[name, f"{v['min_s']:.2f}", f"{v['median_s']:.2f}", f"{v['peak_rss_kib'] / 1024:.0f}"]
            for name, v in cache["tools"].items()]
    return (f"layer cache: {cache['second']} shares all layers but the last with {cache['first']}\n"
            + tabulate(rows, ["run", "min s", "median s", "peak RSS MiB"], colalign=("left",) + ("right",) * 3)
            + f"\nratio: second image with its base cached / without the cache = {cache['cached/uncached time']}")


if __name__ == "__main__":
    main()
