"""Time to the first screen of `slimmer explore` on the bench archive, next to `slimmer analyze`.

    python bench/explore.py                  # generate bench/out/bench.tar if missing, measure it
    python bench/explore.py ARCHIVE --reps 5

Both commands run interleaved, `--reps` times each, cold (``--no-cache``, as bench/run.py
runs analyze) and then with the layer cache filled. ``analyze --json`` is timed with
/usr/bin/time (wall time, peak RSS). ``explore`` runs in an 80x24 window of a tmux server of
its own: the clock starts when the command is started and stops when ``capture-pane`` first
shows the tree of layer 0 (*first screen*: layers and tree, browsable) and then the findings
(*complete*: the rest of the analysis, finished in a thread after the first screen); its peak
RSS is VmHWM of /proc/PID/status once complete. Then, on the largest layer, the time from a
key to the screen showing its effect: selecting the layer, opening every directory, paging
down, a filter, and the merged filesystem of the last layer (every file of the image). Results
go to bench/out/explore.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
POLL = 0.01

import timing


class Window:
    """An 80x24 window of a private tmux server."""

    def __init__(self, socket: Path):
        self.socket = str(socket)
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "-s", "b", "sh")
        self.tmux("set-option", "-t", "b", "status", "off")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], check=True, capture_output=True, text=True,
                              env=ENV).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "b")

    def keys(self, *keys: str) -> float:
        """Send keys; return the time they were sent."""
        self.tmux("send-keys", "-t", "b", *keys)
        return time.monotonic()

    def until(self, test, timeout: float = 300) -> float:
        """Wait until ``test(screen)``; return the time it first held."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if test(screen):
                return time.monotonic()
            if time.monotonic() > deadline:
                raise SystemExit(f"the screen never showed what was expected:\n{screen}")
            time.sleep(POLL)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], check=False, capture_output=True)


def timed_analyze(archive: Path, cache: bool) -> tuple[float, int]:
    """Return (wall seconds, peak RSS in KiB) of `slimmer analyze --json`."""
    flag = "" if cache else "--no-cache"
    return timing.timed(f"{sys.executable} -m slimmer analyze {flag} {archive} --json > /dev/null", ENV)


def layers_of(archive: Path) -> dict:
    """Return where the largest layer (most entries) and the last one sit in the layers pane."""
    out = subprocess.run([sys.executable, "-m", "slimmer", "analyze", str(archive), "--json"], env=ENV,
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)["layers"]
    best = max((r for r in rows if r["index"] is not None), key=lambda r: r["files"])
    last = [r for r in rows if r["index"] is not None][-1]
    return {"row": rows.index(best), "index": best["index"], "files": best["files"], "last": last["index"]}


def timed_explore(window: Window, archive: Path, cache: bool, layers: dict | None) -> dict:
    """Run explore in the window; return the times to its screens (and to keys, with ``layer``)."""
    pid_file = OUT / "explore.pid"
    flag = "" if cache else "--no-cache"
    window.tmux("send-keys", "-t", "b", "clear", "Enter")
    time.sleep(0.3)
    line = f"sh -c 'echo $$ > {pid_file}; exec {sys.executable} -m slimmer explore {flag} {archive}'; echo END"
    start = window.keys("-l", line)
    window.keys("Enter")
    first = window.until(lambda s: "Layer 0 · its changes" in s and " files, " in s)
    complete = window.until(lambda s: "could save" in s)
    status = Path(f"/proc/{int(pid_file.read_text())}/status").read_text()
    result = {"first_screen_s": first - start, "complete_s": complete - start,
              "peak_rss_kib": int(re.search(r"VmHWM:\s+(\d+)", status).group(1))}
    if layers is not None:
        result["keys"] = keys_on(window, layers)
        status = Path(f"/proc/{int(pid_file.read_text())}/status").read_text()
        result["keys"]["peak_rss_kib"] = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    window.keys("q")
    window.until(lambda s: "END" in s)
    return result


def keys_on(window: Window, layers: dict) -> dict:
    """Time, on the largest layer, from each key to the screen showing its effect (capture-pane
    is polled, so each figure is an upper bound)."""
    index = layers["index"]
    out = {"layer": index, "entries": layers["files"]}
    sent = window.keys(*["Down"] * layers["row"])
    out["select_layer_s"] = window.until(lambda s: f"Layer {index} · its changes" in s) - sent
    window.keys("Tab")
    window.until(lambda s: "Collapse" in s.splitlines()[-1])
    before = window.screen()
    sent = window.keys("]")
    out["expand_all_s"] = window.until(lambda s: s != before) - sent
    pages = []
    for _ in range(10):
        before = window.screen()
        sent = window.keys("PageDown")
        pages.append(window.until(lambda s, before=before: s != before) - sent)
    out["page_down_s"] = statistics.median(pages)
    out["page_down_max_s"] = max(pages)
    sent = window.keys("C-f")
    window.keys("-l", "index")
    window.keys("Enter")
    out["filter_s"] = window.until(lambda s: "index · " in s) - sent
    window.keys("Escape")
    window.until(lambda s: "index · " not in s)
    window.keys("BTab")  # back to the layers pane
    window.keys("End")
    window.until(lambda s: f"Layer {layers['last']} · its changes" in s)
    sent = window.keys("C-a")
    out["merged_last_layer_s"] = window.until(lambda s: "merged up to it" in s and " files, " in s) - sent
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive", nargs="?", type=Path)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("bench/explore.py needs tmux (apt-get install tmux)")
    OUT.mkdir(exist_ok=True)
    archive = args.archive
    if archive is None:
        archive = OUT / "bench.tar"
        if not archive.exists():
            from generate import write_archive

            print(f"generating {archive} ...", file=sys.stderr)
            write_archive(archive)
    archive = archive.resolve()
    subprocess.run(["cat", str(archive)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    layers = layers_of(archive)  # also fills the layer cache
    window = Window(Path(tempfile.mkdtemp(dir=OUT)) / "tmux.sock")
    results: dict = {"archive": str(archive), "bytes": archive.stat().st_size, "reps": args.reps}
    try:
        for cache in (False, True):
            analyze, explore = [], []
            for rep in range(args.reps):
                analyze.append(timed_analyze(archive, cache))
                explore.append(timed_explore(window, archive, cache, layers if cache and rep == 0 else None))
            key = "cached" if cache else "cold"
            results[key] = {
                "analyze_s": statistics.median(w for w, _ in analyze),
                "analyze_peak_rss_kib": max(r for _, r in analyze),
                "explore_first_screen_s": statistics.median(e["first_screen_s"] for e in explore),
                "explore_complete_s": statistics.median(e["complete_s"] for e in explore),
                "explore_peak_rss_kib": max(e["peak_rss_kib"] for e in explore),
                "runs": {"analyze": analyze, "explore": explore},
            }
    finally:
        window.close()
    (OUT / "explore.json").write_text(json.dumps(results, indent=2))
    print(f"{archive.name}: {results['bytes'] / 1e9:.2f} GB, {args.reps} runs each, medians")
    print(f"{'':8} {'analyze':>9} {'explore: first screen':>22} {'complete':>9}   {'peak RSS analyze':>16} "
          f"{'explore':>8}")
    for key in ("cold", "cached"):
        r = results[key]
        print(f"{key:8} {r['analyze_s']:>8.2f}s {r['explore_first_screen_s']:>21.2f}s {r['explore_complete_s']:>8.2f}s"
              f"   {r['analyze_peak_rss_kib'] / 1024:>13.0f} MB {r['explore_peak_rss_kib'] / 1024:>5.0f} MB"
              f"  ({r['explore_peak_rss_kib'] / r['analyze_peak_rss_kib']:.2f}x)")
    keys = results["cached"]["runs"]["explore"][0]["keys"]
    print(f"largest layer: {keys['layer']} ({keys['entries']} files); key to screen (peak RSS after: "
          f"{keys['peak_rss_kib'] / 1024:.0f} MB):")
    for name in ("select_layer_s", "expand_all_s", "page_down_s", "page_down_max_s", "filter_s",
                 "merged_last_layer_s"):
        print(f"  {name[:-2].replace('_', ' '):<22} {keys[name] * 1000:>7.0f} ms")


if __name__ == "__main__":
    main()
