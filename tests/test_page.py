"""The page explorer in a real browser: the report `slimmer analyze --html` writes, opened from a
file:// URL in Debian's headless Chromium driven by Playwright (it starts /usr/bin/chromium;
nothing is downloaded). Each test clicks, types and reads the DOM as a user would see it.

Screenshots at 1400 and 800 px are written to the test's directory, and to docs/ (shown in the
README) with ``SLIMMER_UPDATE_SNAPSHOTS=1``: look at them before committing.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from slimmer.analyzer.content import AnalysisPolicy
from slimmer.analyzer.findings import claims_of, layers_of
from slimmer.analyzer.report import analyze
from slimmer.reader import open_image
from slimmer.reader.assemble import Options
from slimmer.render import human

from builders import WHITEOUT, File, Symlink, image, layer, write
from hostile import run_cli

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (tests/run.sh does)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="apt-get install chromium (tests/run.sh does)")

ROOT = Path(__file__).resolve().parent.parent
UPDATE = bool(os.environ.get("SLIMMER_UPDATE_SNAPSHOTS"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# recorded before the page's own script runs: what the policy refused, and what was requested
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
"""

DEB = {f"var/cache/apt/archives/pkg{i}.deb": 1_200_000 + 40_000 * i for i in range(6)}
GIT = {f"app/.git/objects/{i:02x}/obj": 120_000 + 5_000 * i for i in range(30)}
DATA = {"app/data/big.bin": 6_000_000, "app/data/mid.bin": 3_000_000, "app/data/small.bin": 1_000_000}


def sample():
    """An image with what the page must show: a base, a toolchain layer with apt caches, an app,
    and a layer that overwrites the server, deletes the apt archives (opaque dir) and .git."""
    base = {"etc/os-release": 400, "usr/bin/bash": 1_250_000, "usr/bin/ls": 140_000, "usr/bin/cat": 40_000,
            "usr/lib/x86_64-linux-gnu/libc.so.6": 2_100_000, "usr/lib/x86_64-linux-gnu/libm.so.6": 900_000,
            "var/lib/dpkg/status": 180_000, "bin": Symlink("usr/bin")}
    for i in range(40):
        base[f"usr/share/doc/pkg{i}/copyright"] = 1_500 + 37 * i
        base[f"usr/share/locale/l{i % 8}/LC_MESSAGES/m{i}.mo"] = 9_000 + 311 * i
    tools = {"usr/lib/gcc/x86_64-linux-gnu/12/cc1": 31_000_000, "usr/bin/x86_64-linux-gnu-gcc-12": 1_100_000,
             "usr/bin/x86_64-linux-gnu-ld.bfd": 1_900_000, "usr/lib/x86_64-linux-gnu/libstdc++.so.6": 2_300_000,
             **DEB}
    for i in range(60):
        tools[f"usr/include/linux/h{i}.h"] = 3_000 + 101 * i
        tools[f"usr/share/man/man1/t{i}.1.gz"] = 2_000 + 53 * i
    for i in range(6):
        tools[f"var/lib/apt/lists/deb.debian.org_dists_{i}_Packages"] = 2_500_000 + 10_000 * i
    app = {"app/server": File(b"\x7fELF" + bytes(7_999_996), mode=0o755), "app/config.yaml": 900, **GIT, **DATA}
    for i in range(300):
        app[f"app/node_modules/m{i // 10}/lib/f{i}.js"] = 700 + 41 * (i % 37)
    for i in range(30):
        app[f"app/static/img{i}.png"] = 50_000 + 2_000 * i
    fix = {"var/cache/apt/archives/.wh..wh..opq": WHITEOUT, "app/.wh..git": WHITEOUT,
           "app/server": File(b"\x7fELF" + bytes(8_499_996), mode=0o755)}
    return image(layer(base, created_by="ADD rootfs.tar.xz /"),
                 layer(tools, created_by="RUN apt-get update && apt-get install -y build-essential"),
                 layer(app, created_by="COPY . /app"),
                 layer(fix, created_by="RUN rm -rf /var/cache/apt/archives /app/.git && make -C /app server"),
                 tag="example/app:1.0")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(the page written by `slimmer analyze --html`, the analysis of the same archive)."""
    where = tmp_path_factory.mktemp("page")
    archive = write(sample(), where / "app.tar", "docker-legacy")
    run = run_cli("analyze", str(archive), "--html", str(where / "report.html"))
    assert run.code == 0 and run.exc is None, run.err
    analysis = analyze(open_image(str(archive), Options(policy=AnalysisPolicy())))
    return where / "report.html", analysis


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1400, "height": 900})
        yield ctx
        ctx.close()


class Page:
    """One report opened in the browser, with what its console and policy said."""

    def __init__(self, browser, path: Path, width: int = 1400):
        self.page = page = browser.new_page()
        page.set_viewport_size({"width": width, "height": 900})
        self.console: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))
        page.add_init_script(WATCH)
        page.goto(path.as_uri())
        page.wait_for_selector("html[data-ready]", timeout=30_000)
        assert page.get_attribute("html", "data-ready") != "failed", page.inner_text("#map")

    def close(self) -> None:
        self.page.close()

    def text(self, selector: str) -> str:
        return " ".join(self.page.inner_text(selector).split())

    def list_rows(self) -> list[list[str]]:
        """The table under the map, a list of cells per row."""
        return self.page.eval_on_selector_all("#list tr.go",
                                              "rows => rows.map(r => [...r.cells].map(c => c.textContent))")

    def boxes(self, selector: str = ".box") -> list[dict]:
        """Every box of the map: its classes, first label, other labels and size on screen."""
        return self.page.eval_on_selector_all(selector, """els => els.map(b => ({
            cls: b.className, kind: b.dataset.kind, n: +b.dataset.n,
            label: b.querySelector('.l') ? b.querySelector('.l').textContent : '',
            detail: b.querySelector('.l.s') ? b.querySelector('.l.s').textContent : '',
            x: b.offsetLeft, y: b.offsetTop, w: b.offsetWidth, h: b.offsetHeight}))""")

    def box(self, label: str):
        return self.page.locator(".box", has=self.page.locator(".l", has_text=re.compile(f"^{re.escape(label)}")))

    def violations(self) -> list[str]:
        return self.page.evaluate("window.__violations")


@pytest.fixture
def opened(browser, report):
    page = Page(browser, report[0])
    yield page
    page.close()


def test_the_page_opens_offline_and_its_policy_holds(opened):
    """The script runs (allowed by its hash), nothing is fetched but the file itself, no error
    and no policy violation; and the policy is really enforced: a script added to the page is
    refused and reported."""
    assert opened.console == [] and opened.violations() == []
    assert {re.sub(r"^(\w+):.*", r"\1", url) for url in opened.requests} == {"file"}
    assert int(opened.page.get_attribute("#map", "data-boxes")) > 50
    opened.page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';
                                    document.body.append(s); document.body.setAttribute('style', 'color: red'); }""")
    opened.page.wait_for_timeout(100)
    assert opened.page.evaluate("window.__ran") is None
    assert sorted(v.split()[0] for v in opened.violations()) == ["script-src-elem", "style-src-attr"]


def test_clicking_a_directory_zooms_in_and_the_path_above_zooms_out(opened, report):
    """A click on a directory's label shows it alone, the path above the map names it and the
    table lists what it holds; a click on / (or Backspace) goes back."""
    page = opened.page
    assert opened.text("#crumbs").startswith("/ ")
    assert {row[0] for row in opened.list_rows()} == {"usr/", "var/", "app/", "etc/", "bin"}
    opened.box("usr/").first.click(position={"x": 6, "y": 6})
    assert opened.text("#crumbs").startswith("/ usr ")
    assert {row[0] for row in opened.list_rows()} == {"bin/", "lib/", "share/", "include/"}
    labels = {b["label"] for b in opened.boxes()}
    assert "gcc/x86_64-linux-gnu/12/cc1" in labels and not any(label.startswith("app/") for label in labels)
    page.locator("#crumbs button", has_text="/").click()
    assert {row[0] for row in opened.list_rows()} == {"usr/", "var/", "app/", "etc/", "bin"}
    opened.box("app/").first.click(position={"x": 6, "y": 6})
    page.keyboard.press("Backspace")
    assert opened.text("#crumbs").startswith("/ ") and "app" not in opened.text("#crumbs")


def test_every_box_with_room_shows_its_size_and_category(opened, report):
    """A file's box tall and wide enough for two lines says its name, then its size and category."""
    _, analysis = report
    categories = {f.category for f in analysis.attribution.files}
    roomy = [b for b in opened.boxes(".box[data-kind=file]") if b["w"] >= 60 and b["h"] >= 30]
    assert len(roomy) >= 10
    for b in roomy:
        size, _, category = b["detail"].partition(" · ")
        assert re.fullmatch(r"\d+(\.\d)? (B|kB|MB|GB)", size) and category in categories, b


def test_boxes_share_the_space_in_proportion_to_their_bytes(opened):
    """Zoomed into one directory, each file's box has its share of the map, and no two overlap."""
    opened.page.locator("#q").fill("app/data/")
    opened.page.keyboard.press("Enter")
    opened.page.keyboard.press("Escape")  # the search zoomed there; now nothing is highlighted
    assert opened.text("#crumbs").startswith("/ app / data ")
    boxes = {b["label"]: b for b in opened.boxes()}
    assert set(boxes) == {"big.bin", "mid.bin", "small.bin"}
    total = sum(DATA.values())
    area = sum(b["w"] * b["h"] for b in boxes.values())
    for name, b in boxes.items():
        assert b["w"] * b["h"] / area == pytest.approx(DATA[f"app/data/{name}"] / total, rel=0.03), name
    rects = list(boxes.values())
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert min(a["x"] + a["w"], b["x"] + b["w"]) <= max(a["x"], b["x"]) + 1 or \
                min(a["y"] + a["h"], b["y"] + b["h"]) <= max(a["y"], b["y"]) + 1


def test_a_layer_shows_what_it_added_modified_and_removed(opened):
    """Picking the last layer: its summary counts what it changed, the boxes are coloured by
    change (the server modified, the apt archives and .git removed and struck through), and
    the colours switch to categories on request."""
    page = opened.page
    page.select_option("#view", "4")  # the final filesystem, then the layers
    removed = {**DEB, **GIT}
    assert opened.text("#vsum") == (
        f"Layer 3: added 0 files (0 B) · modified 1 file ({human(8_500_000)}) · removed {len(removed)} files "
        f"({human(sum(removed.values()))}). RUN rm -rf /var/cache/apt/archives /app/.git && make -C /app server")
    files = {b["label"]: b for b in opened.boxes(".box[data-kind=file]")}
    assert "m-mod" in files["server"]["cls"].split()
    for name in ("pkg0.deb", "pkg5.deb", "1d/obj"):
        assert {"m-rem", "gone"} <= set(files[name]["cls"].split()), name
    assert opened.text("#legend") == (f"removed {human(sum(removed.values()))} modified {human(8_500_000)}")
    page.select_option("#colour", "category")
    assert "c-cache" in {b["label"]: b for b in opened.boxes(".box[data-kind=file]")}["pkg0.deb"]["cls"].split()
    page.keyboard.press("[")
    assert page.input_value("#view") == "3" and "Layer 2:" in opened.text("#vsum")


def test_the_search_highlights_its_matches_and_lists_them(opened):
    """A glob finds the apt archives in the layer that added them: the boxes of the matches are
    marked, the rest dimmed, the table lists them largest first; Esc clears it all."""
    page = opened.page
    page.select_option("#view", "2")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("*.deb")
    page.keyboard.press("Enter")
    assert opened.text("#qn") == f"{len(DEB)} files, {human(sum(DEB.values()))}"
    hits = {b["label"] for b in opened.boxes(".box.hit[data-kind=file]")}
    assert hits == {p.rpartition("/")[2] for p in DEB}
    assert [row[1] for row in opened.list_rows()] == [f"/{p}" for p in sorted(DEB, key=DEB.get, reverse=True)]
    page.select_option("#view", "0")
    assert page.is_visible("#list caption") and opened.list_rows() == []
    assert opened.text("#list caption") == "Nothing in this view matches." and opened.text("#qn") == "0 files, 0 B"
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    assert page.input_value("#q") == "" and opened.boxes(".box.hit, .box.dim") == []


def test_a_finding_shows_its_files_in_the_layer_that_holds_them(opened, report):
    """Its button switches to the layer holding most of its bytes and marks exactly its files there."""
    _, analysis = report
    k, finding = next((k, f) for k, f in enumerate(analysis.findings) if f.id == "cache-cleaned-too-late")
    opened.page.click(f"#finding-{k} button.show")
    layer = layers_of(finding)[0]
    assert opened.text("#vsum").startswith(f"Layer {layer}:")
    assert opened.text("#fbar").startswith(f"Finding {k + 1}: ")
    claimed = {f"/{path}" for at, path in claims_of(finding) if at == layer}
    assert {row[1] for row in opened.list_rows()} == claimed == {f"/{p}" for p in DEB}
    assert len(opened.boxes(".box.hit[data-kind=file]")) == len(claimed)
    opened.page.click("#fbar button[data-clear]")
    assert opened.page.is_hidden("#fbar") and opened.boxes(".box.hit") == []


def test_a_click_on_a_file_says_what_it_is(opened, report):
    """Its path, size, category and layer appear under the map, and its box is outlined."""
    cc1 = opened.box("gcc/x86_64-linux-gnu/12/cc1").first
    cc1.click()
    assert opened.text("#sel") == (f"/usr/lib/gcc/x86_64-linux-gnu/12/cc1 — {human(31_000_000)} · toolchain · "
                                   "from layer 1")
    assert "sel" in cc1.get_attribute("class").split()


def test_the_page_reads_at_800_px_and_the_screenshots(browser, report, tmp_path):
    """At 800 px nothing runs off to the side and the map fills the width; screenshots of the
    explorer at 1400 and 800 px (the README shows them; look at them after a change)."""
    path, _ = report
    for width, name, view in ((1400, "page.png", "0"), (800, "page-800.png", "4")):
        page = Page(browser, path, width)
        try:
            if view != "0":
                page.page.select_option("#view", view)
            doc = page.page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert doc[0] <= doc[1] == width, doc
            left, right = page.page.evaluate("(() => { const r = document.getElementById('map')"
                                             ".getBoundingClientRect(); return [r.left, r.right]; })()")
            assert left >= 0 and right <= width and right - left >= width * 0.9, (left, right)
            shot = page.page.locator("#explorer").screenshot(path=str(tmp_path / name))
            if UPDATE:
                (ROOT / "docs" / name).write_bytes(shot)
            assert page.console == [] and page.violations() == []
        finally:
            page.close()


def test_names_from_the_image_are_shown_as_text(browser, tmp_path):
    """Markup, terminal escapes and bidirectional controls in names are shown, escaped, as text:
    no element is made of them and nothing of them runs."""
    names = ["evil\x1b]0;PWNED\x07", "<img src=x onerror=window.__pwned=1>", "\u202egnp.exe", "<b>bold"]
    spec = image(layer({f"app/{n}": 10_000 + i for i, n in enumerate(names)}))
    archive = write(spec, tmp_path / "app.tar", "docker-legacy")
    run = run_cli("analyze", str(archive), "--html", str(tmp_path / "r.html"))
    assert run.code == 0, run.err
    page = Page(browser, tmp_path / "r.html")
    try:
        page.box("app/").first.click(position={"x": 6, "y": 6})
        assert {row[0] for row in page.list_rows()} == {
            r"evil\x1b]0;PWNED\x07", "<img src=x onerror=window.__pwned=1>", r"\u202egnp.exe", "<b>bold"}
        assert page.page.evaluate("window.__pwned") is None
        assert page.page.locator("#explorer img").count() == 0
        assert page.console == [] and page.violations() == []
    finally:
        page.close()
