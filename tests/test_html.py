"""The HTML report: one self-contained page whose treemap shows the final filesystem by category."""

import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter

import pytest

from slimmer.analyzer.report import analyze
from slimmer.render.html import COLORS, page, squarify

from builders import File, image, layer, to_model, write
from hostile import run_cli


def _page(spec) -> str:
    return page(analyze(to_model(spec)), "test.tar")


SAMPLE = image(
    layer({"usr/local/go/bin/go": 300_000, "usr/local/go/pkg/tool/linux_amd64/compile": 150_000},
          created_by="RUN tar -C /usr/local -xzf go.tgz"),
    layer({"usr/bin/server": File(b"\x7fELF" + bytes(149_996), mode=0o755), "var/lib/apt/lists/x_Packages": 40_000,
           "usr/share/doc/x/README": 6_000}, created_by="RUN apt-get update && apt-get install -y x"))


def test_the_page_is_self_contained():
    """No script, stylesheet link, external image or URL to fetch: the page works offline."""
    html = _page(SAMPLE)
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>")
    for forbidden in ("<script", "<link", "src=", "url(", "@import"):
        assert forbidden not in html, forbidden
    assert re.findall(r"https?://[^\s\"'<>]+", html) == ["http://www.w3.org/2000/svg"]


def test_the_treemap_colours_each_box_by_its_category():
    """Every category holding final bytes has boxes of its colour class, and a legend entry."""
    html = _page(SAMPLE)
    svg = html[html.index("<svg"):html.index("</svg>")]
    classes = Counter(re.findall(r'class="c-([a-z-]+)"', svg))
    assert set(classes) == {"toolchain", "runtime", "cache", "docs"}
    for cat in classes:
        assert f"<span class='sw bg-{cat}'></span>{cat}</span>" in html


def test_the_page_lists_findings_layers_and_the_total_saving():
    """Findings with their savings, the step table and the "could save" figure are on the page."""
    result = analyze(to_model(SAMPLE))
    html = page(result, "test.tar")
    assert "Findings — could save 496.0 kB" in html
    for f in result.findings:
        assert f.title.replace("`", "`") in html.replace("&#x27;", "'").replace("&quot;", '"').replace("&amp;", "&")
    assert "RUN apt-get update &amp;&amp; apt-get install -y x" in html


def test_paths_are_escaped():
    """A file name holding markup is shown as text, never as markup."""
    html = _page(image(layer({"app/<script>alert(1)</script>": 50_000})))
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("sizes,box", [
    ([6, 6, 4, 3, 2, 2, 1], (0, 0, 600, 400)),
    ([100], (10, 20, 300, 50)),
    ([50, 25, 12.5, 12.5], (0, 0, 100, 100)),
    ([1] * 40, (0, 0, 1200, 620)),
], ids=["the textbook example", "a single box fills the rectangle", "halving sizes", "many equal sizes"])
def test_squarify_gives_each_size_its_share_of_the_area(sizes, box):
    """Boxes tile the rectangle: areas proportional to sizes, inside it, not overlapping."""
    x0, y0, w, h = box
    rects = squarify(sizes, x0, y0, w, h)
    total = sum(sizes)
    for size, (x, y, rw, rh) in zip(sizes, rects):
        assert rw * rh == pytest.approx(size / total * w * h, rel=1e-9)
        assert x0 - 1e-9 <= x and x + rw <= x0 + w + 1e-6 and y0 - 1e-9 <= y and y + rh <= y0 + h + 1e-6
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            overlap_w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
            overlap_h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
            assert overlap_w <= 1e-6 or overlap_h <= 1e-6


def test_analyze_html_writes_the_page(tmp_path):
    """``slimmer analyze --html FILE`` writes the page and still prints the report."""
    archive = write(SAMPLE, tmp_path / "img.tar", "docker-legacy")
    out = tmp_path / "report.html"
    run = run_cli("analyze", str(archive), "--html", str(out), "--by", "category")
    assert run.code == 0 and run.exc is None, run.err
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "Bytes by category" in run.out.decode()


def test_an_unwritable_html_destination_is_an_error_not_a_traceback(tmp_path):
    """A destination in a missing directory: one error line, exit status 2."""
    archive = write(SAMPLE, tmp_path / "img.tar", "docker-legacy")
    run = run_cli("analyze", str(archive), "--html", str(tmp_path / "missing" / "r.html"))
    assert run.code == 2 and run.exc is None
    assert run.err.startswith("slimmer: error: cannot write the HTML report to ")


# ---- it renders: headless Chromium --------------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Return (width, height, bytes per pixel, rows) of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, [], 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for r in range(height):
        kind = raw[r * (stride + 1)]
        line = bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def _count_colour(rows, bpp: int, hex_colour: str) -> int:
    want = bytes.fromhex(hex_colour[1:])
    return sum(sum(1 for i in range(0, len(row), bpp) if row[i:i + 3] == want) for row in rows)


def test_the_page_renders_in_headless_chromium_with_boxes_sized_by_bytes(tmp_path):
    """Chromium draws the treemap: toolchain red and runtime green cover areas in about the
    ratio of their bytes (450 kB to 150 kB)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    html = tmp_path / "report.html"
    html.write_text(_page(SAMPLE), encoding="utf-8")
    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(dir=tmp_path)
    cmd = [chromium, "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={shot}",
           "--window-size=1280,900", "--hide-scrollbars", html.as_uri()]
    if os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    width, height, bpp, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    red = _count_colour(rows, bpp, COLORS["toolchain"])
    green = _count_colour(rows, bpp, COLORS["runtime"])
    yellow = _count_colour(rows, bpp, COLORS["cache"])
    assert red > 50_000 and green > 15_000 and yellow > 3_000, (red, green, yellow)
    assert 2.2 < red / green < 3.8, red / green
