"""The HTML report on the bench archive: its size, what writing it adds to `slimmer analyze`, and
its time to interactive in headless Chromium.

    python bench/page.py                     # bench/out/bench-1.tar (generated if missing)
    python bench/page.py ARCHIVE --reps 5

`slimmer analyze --json` and `slimmer analyze --json --html OUT` run interleaved, `--reps` times
each, with the layer cache filled (the first run fills it), timed by /usr/bin/time (wall time,
peak RSS). The page is then opened `--reps` times from a file:// URL in Debian's Chromium,
driven by Playwright (nothing downloaded), at 1400x900: *interactive* is the page's own
``slimmer-ready`` mark (its script has unpacked the data, built the tree and drawn the first
treemap; milliseconds since navigation start), *script starts* the ``slimmer-start`` mark (the
HTML parsed). Then, on the same page, the time from a change to the screen drawn for it (the
script's ``slimmer-shown`` measure for searches; for the others, until the next animation
frame): the layer with the most entries, zooming into the largest directory, and searches.
Results go to bench/out/page.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SEARCHES = ("m00946", "*.go", "*.js", "node_modules/")  # one file, thousands, most of the image

import timing

from slimmer.render.html import DATA_ID, decode_data


def timed(args: list[str]) -> tuple[float, int]:
    """Run slimmer with ``args``; return (wall seconds, peak RSS in KiB)."""
    return timing.timed(shlex.join([sys.executable, "-m", "slimmer", *args]), ENV)


MARKS = "() => Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"
FRAME = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now()))))"


def in_browser(page_path: Path, reps: int, largest: int) -> dict:
    """Open the page ``reps`` times: its load marks; and, the first time, the changes timed on
    it (``largest``: the view of the layer with the most entries)."""
    from playwright.sync_api import sync_playwright

    loads, actions = [], {}
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(tempfile.mkdtemp(dir=OUT), executable_path=CHROMIUM, headless=True,
                                                   args=ARGS, viewport={"width": 1400, "height": 900})
        try:
            page = ctx.new_page()
            for rep in range(reps):
                page.goto(page_path.as_uri())
                page.wait_for_selector("html[data-ready]", timeout=60_000)
                if page.get_attribute("html", "data-ready") == "failed":
                    raise SystemExit("the page's script failed: " + page.inner_text("#map"))
                marks = page.evaluate(MARKS)
                loads.append({"script_starts_ms": marks["slimmer-start"], "unpacked_ms": marks["slimmer-unpacked"],
                              "interactive_ms": marks["slimmer-ready"],
                              "boxes": int(page.get_attribute("#map", "data-boxes"))})
                if rep == 0:
                    actions = _actions(page, largest)
        finally:
            ctx.close()
    return {"loads": loads, "actions": actions}


def _actions(page, largest: int) -> dict:
    """Times, in ms, from a change to the frame after it is drawn."""
    out = {}

    def timed_change(name: str, change) -> None:
        start = page.evaluate("performance.now()")
        change()
        out[name] = round(page.evaluate(FRAME) - start, 1)

    label = page.eval_on_selector(f"#view option[value='{largest}']", "o => o.textContent")
    timed_change(f"the largest layer's changes ({label[:30]}…)", lambda: page.select_option("#view", str(largest)))
    page.select_option("#view", "0")
    page.wait_for_timeout(200)
    timed_change("zoom into the largest directory",
                 lambda: page.locator(".box.dir").first.click(position={"x": 4, "y": 4}))
    page.keyboard.press("Backspace")
    for word in SEARCHES:
        page.evaluate("performance.clearMeasures()")
        page.fill("#q", word)
        page.press("#q", "Enter")
        page.wait_for_function("performance.getEntriesByName('slimmer-shown').length > 0")
        shown = page.evaluate("performance.getEntriesByName('slimmer-shown')[0].duration")
        out[f"search {word!r} ({page.inner_text('#qn')})"] = round(shown, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive", nargs="?", type=Path)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    archive = args.archive
    if archive is None:
        archive = OUT / "bench-1.tar"
        if not archive.exists():
            from generate import write_archive

            print(f"generating {archive} ...", file=sys.stderr)
            write_archive(archive)
    archive = archive.resolve()
    page_path = OUT / "report.html"
    subprocess.run(["cat", str(archive)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    timed(["analyze", str(archive), "--json"])  # fills the layer cache
    plain, html = [], []
    for _ in range(args.reps):
        plain.append(timed(["analyze", str(archive), "--json"]))
        html.append(timed(["analyze", str(archive), "--json", "--html", str(page_path)]))
    text = page_path.read_text(encoding="utf-8")
    data = decode_data(text)
    start = text.index(f'id="{DATA_ID}">') + len(f'id="{DATA_ID}">')
    block = text[start:text.index("</script>", start)]
    largest = 1 + max(range(len(data["layers"])), key=lambda i: data["layers"][i]["files"])
    browser = in_browser(page_path, args.reps, largest)
    loads = browser["loads"]
    results = {
        "archive": str(archive), "bytes": archive.stat().st_size, "reps": args.reps,
        "files": len(data["views"][0]["node"]), "nodes": len(data["names"]), "layers": len(data["layers"]),
        "page_bytes": len(text.encode("utf-8")), "data_block_bytes": len(block),
        "data_json_bytes": len(gzip.decompress(base64.b64decode(block))),
        "analyze_json_s": statistics.median(w for w, _ in plain),
        "analyze_html_s": statistics.median(w for w, _ in html),
        "analyze_json_peak_rss_kib": max(r for _, r in plain), "analyze_html_peak_rss_kib": max(r for _, r in html),
        "interactive_ms": statistics.median(x["interactive_ms"] for x in loads),
        "interactive_max_ms": max(x["interactive_ms"] for x in loads),
        "script_starts_ms": statistics.median(x["script_starts_ms"] for x in loads),
        "boxes": loads[0]["boxes"], "runs": {"analyze_json": plain, "analyze_html": html, "loads": loads},
        "actions_ms": browser["actions"],
    }
    (OUT / "page.json").write_text(json.dumps(results, indent=2))
    r = results
    print(f"{archive.name}: {r['bytes'] / 1e9:.2f} GB, {r['files']} files in the final filesystem, {r['nodes']} paths "
          f"in the page's tree, {r['layers']} layers; {args.reps} runs each, medians")
    print(f"page: {r['page_bytes'] / 1e6:.2f} MB (data {r['data_block_bytes'] / 1e6:.2f} MB base64 of "
          f"{r['data_json_bytes'] / 1e6:.2f} MB JSON)")
    print(f"analyze --json {r['analyze_json_s']:.2f} s, {r['analyze_json_peak_rss_kib'] / 1024:.0f} MiB; "
          f"with --html {r['analyze_html_s']:.2f} s, {r['analyze_html_peak_rss_kib'] / 1024:.0f} MiB")
    print(f"Chromium: interactive at {r['interactive_ms']:.0f} ms (at most {r['interactive_max_ms']:.0f}), "
          f"its script starts at {r['script_starts_ms']:.0f} ms; {r['boxes']} boxes drawn")
    for name, ms in r["actions_ms"].items():
        print(f"  {name:<58} {ms:>7.0f} ms")


if __name__ == "__main__":
    main()
