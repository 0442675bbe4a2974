"""Benchmark `slimmer slim --mode distroless` on real single-stage images of interpreted apps.

    python bench/slim_runtimes.py [python node java]   # build what is missing, slim, measure

The images are built once with debootstrap by bench/runtime_images.py (cached under
bench/out/runtimes/, gitignored; a build needs the Debian, PyPI and npm registries, measuring
does not). Needs root (the sandbox runs use user namespaces and chroot), unshare and strace.

For each app it reports: file bytes of the original and of the distroless image and their
ratio; the slim run's time; whether the entrypoint, run in the sandbox chroot (new user, mount,
PID and network namespaces: no network) on the original and on the slim image, exits and prints
the same; ``slimmer analyze`` of the slim image (toolchain and build-only bytes, its total
against the slim summary's); what is left, by directory, with the reason slim gave for it; and
per app:
- Python: the 30x target, and what one traced run of the original opens (what a tracer keeps);
- Node.js: the floor, measured independently of slim's closure: every file the original
  image's run opens (strace; the runtime, its libraries, ICU) with the whole npm packages those
  files belong to, plus the distroless base set; and how close the slim image comes to it;
- Java: that the JDK-only parts (jmods, include, src.zip, ct.sym, the development tools of
  bin) are gone.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from runtime_images import APPS, OUT, build

from slimmer import sandbox
from slimmer.layers import merge, resolve
from slimmer.reader import open_image
from slimmer.rewriter.closure import image_env
from slimmer.rewriter.distroless import base_set

JDK_ONLY = ("jmods", "include", "lib/src.zip", "lib/ct.sym", "bin/javac", "bin/jar", "bin/jlink", "bin/jshell",
            "bin/javadoc", "bin/jdb", "demo")


def slimmer(*args: str) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "slimmer", *args, "--json"], cwd=HERE.parent, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"slimmer {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), time.perf_counter() - start


def files_of(archive: Path) -> dict[str, int]:
    return {p: v.entry.size for p, v in merge(open_image(archive)).files() if v.entry.kind == "file"}


def left(archive: Path, kept: list[dict], depth: int = 4, top: int = 14) -> list[tuple[str, int, str]]:
    """Return the largest directories (or files) of the slim image with the reason slim gave
    for the largest file in each."""
    why = {k["path"].lstrip("/"): k["why"] for k in kept}
    sizes = files_of(archive)
    groups: dict[str, int] = collections.Counter()
    biggest: dict[str, tuple[int, str]] = {}
    for path, size in sizes.items():
        key = "/".join(path.split("/")[:depth])
        groups[key] += size
        if size >= biggest.get(key, (-1, ""))[0]:
            biggest[key] = (size, path)
    out = []
    for key, size in groups.most_common(top):
        path = biggest[key][1]
        reason = why.get(path) or next((w for p, w in sorted(why.items(), key=lambda x: -len(x[0]))
                                        if path.startswith(p.rstrip("/") + "/")), "the base set or a kept tree")
        out.append((key, size, reason))
    return out


def sandbox_run(archive: Path) -> sandbox.Run:
    img = open_image(archive)
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        return sandbox.run(img, sandbox.command_of(img), Path(scratch))


def traced_floor(original: Path, packages: bool) -> tuple[int, list[tuple[str, int]]]:
    """Return the bytes of what a run of the original image opens (strace, in the sandbox),
    with the whole npm packages of the files it opens when ``packages``, plus the distroless
    base set; and its parts. For Node.js this is the floor the module docstring describes; for
    Python it is what a tracer keeps (only the files one run opened)."""
    img = open_image(original)
    fs = merge(img)
    run = sandbox_run(original)
    parts: dict[str, int] = collections.Counter()
    counted: set[str] = set()

    def add(path: str, part: str) -> None:
        hit = resolve(fs, path)
        if hit is None or not hit.is_file or hit.path in counted:
            return
        counted.add(hit.path)
        parts[part] += hit.version.entry.size

    for path in run.found_paths():
        rel = path.lstrip("/")
        if packages and "/node_modules/" in rel:
            head, _, rest = rel.partition("/node_modules/")
            name = "/".join(rest.split("/")[:2 if rest.startswith("@") else 1])
            package = f"{head}/node_modules/{name}"
            for p, _v in _tree(fs, package):
                add(p, "npm packages the app requires (whole)")
        elif ".so" in rel.rsplit("/", 1)[-1] and "python3" not in rel:
            add(rel, "shared libraries it maps (libnode, ICU, OpenSSL, libc, ...)")
        else:
            add(rel, "the interpreter, its modules, the app and other files it opens")
    for path in sorted(base_set(fs, True, image_env(img))[0]):  # what slim keeps of it, the locale included
        add(path, "the distroless base set")
    return sum(parts.values()), sorted(parts.items(), key=lambda x: -x[1])


def _tree(fs, top: str):
    stack = [top]
    while stack:
        d = stack.pop()
        for name in fs.children(d):
            path = f"{d}/{name}"
            version = fs.get(path)
            if version is None or version.entry.kind == "dir":
                stack.append(path)
            elif version.entry.kind == "file":
                yield path, version


def report(name: str) -> dict:
    original = build(name)
    out = OUT / f"{name}-slim.tar"
    summary, seconds = slimmer("slim", str(original), "-o", str(out), "--mode", "distroless", "--no-cache", "--force")
    before, after = summary["sizes"]["before_bytes"], summary["sizes"]["after_bytes"]
    analysis, _ = slimmer("analyze", str(out), "--no-cache")
    cats = {c["category"]: c["final_bytes"] for c in analysis["categories"]}
    build_only = cats.get("toolchain", 0) + cats.get("build-only", 0)
    runs = [sandbox_run(original), sandbox_run(out)]
    same = (runs[0].status, runs[0].stdout, runs[0].stderr) == (runs[1].status, runs[1].stdout, runs[1].stderr)
    row = {"app": name, "before_bytes": before, "after_bytes": after, "ratio": round(before / after, 1),
           "slim_seconds": round(seconds, 1), "runs_alike": same, "status": runs[1].status,
           "stdout": runs[1].stdout.decode("utf-8", "replace"), "analyze_total_bytes": analysis["sizes"]["final_bytes"],
           "analyze_build_only_bytes": build_only, "left": left(out, summary["kept"]),
           "notes": summary["notes"]}
    if name in ("node", "python"):
        floor, parts = traced_floor(original, packages=name == "node")
        row["floor_bytes"], row["floor_parts"] = floor, parts
        row["floor_ratio"] = round(before / floor, 1)
    if name == "java":
        home = next(k["path"].lstrip("/").rstrip("/") for k in summary["kept"] if "runtime tree of java" in k["why"])
        files = files_of(out)
        orig = files_of(original)
        row["jdk_only_in_original"] = {p: sum(s for f, s in orig.items() if f == f"{home}/{p}" or
                                              f.startswith(f"{home}/{p}/")) for p in JDK_ONLY}
        row["jdk_only_in_slim"] = {p: sum(s for f, s in files.items() if f == f"{home}/{p}" or
                                          f.startswith(f"{home}/{p}/")) for p in JDK_ONLY}
    return row


def show(row: dict) -> None:
    print(f"== {row['app']}: {row['before_bytes']:,} -> {row['after_bytes']:,} file bytes = {row['ratio']}x smaller "
          f"(slim {row['slim_seconds']} s)")
    print(f"   runs in the sandbox chroot like the original: {row['runs_alike']} (exit {row['status']}); prints "
          f"{row['stdout'].strip()[:200]!r}")
    print(f"   slimmer analyze of the slim image: {row['analyze_total_bytes']:,} bytes "
          f"({'equal to' if row['analyze_total_bytes'] == row['after_bytes'] else 'DIFFERENT FROM'} the slim summary), "
          f"toolchain + build-only {row['analyze_build_only_bytes']:,} bytes "
          f"({row['analyze_build_only_bytes'] / row['after_bytes'] * 100:.2f} %)")
    if "floor_bytes" in row:
        what = "floor" if row["app"] == "node" else "traced run (what one run opens + the base set)"
        print(f"   {what}: {row['floor_bytes']:,} bytes ({row['floor_ratio']}x); the slim image is "
              f"{row['after_bytes'] / row['floor_bytes']:.3f}x that")
        for part, size in row["floor_parts"]:
            print(f"      {size:>13,}  {part}")
    if "jdk_only_in_slim" in row:
        for part, size in row["jdk_only_in_original"].items():
            print(f"   {part:14} original {size:>12,}  slim {row['jdk_only_in_slim'][part]:>8,}")
    print("   what is left, and why:")
    for key, size, why in row["left"]:
        print(f"      {size:>12,}  /{key:55}  {why[:90]}")


def main() -> None:
    names = sys.argv[1:] or list(APPS)
    rows = [report(n) for n in names]
    (OUT / "results.json").write_text(json.dumps(rows, indent=2))
    for row in rows:
        show(row)
        print()


if __name__ == "__main__":
    main()
