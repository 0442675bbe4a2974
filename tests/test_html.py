"""The HTML report: one self-contained page, and the data its explorer draws (tests/test_page.py
drives it in Chromium)."""

import base64
import hashlib
import itertools
import re

from slimmer.analyzer.findings import claims_of, layers_of
from slimmer.analyzer.report import analyze
from slimmer.render.html import DATA_ID, decode_data, page

from builders import WHITEOUT, File, image, layer, to_model, write
from hostile import run_cli


def _page(spec) -> str:
    return page(analyze(to_model(spec)), "test.tar")


SAMPLE = image(
    layer({"usr/local/go/bin/go": 300_000, "usr/local/go/pkg/tool/linux_amd64/compile": 150_000},
          created_by="RUN tar -C /usr/local -xzf go.tgz"),
    layer({"usr/bin/server": File(b"\x7fELF" + bytes(149_996), mode=0o755), "var/lib/apt/lists/x_Packages": 40_000,
           "usr/share/doc/x/README": 6_000}, created_by="RUN apt-get update && apt-get install -y x"))


def test_the_page_is_self_contained():
    """Nothing to fetch: no stylesheet link, external image or URL; one inline script and one
    style sheet, each allowed by its sha256 in the Content-Security-Policy, which allows
    nothing else (no 'unsafe-inline', no source to load from)."""
    text = _page(SAMPLE)
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>")
    for forbidden in ("<link", "src=", "url(", "@import", "unsafe-inline", "unsafe-eval"):
        assert forbidden not in text, forbidden
    assert re.findall(r"https?://[^\s\"'<>]+", text) == []
    scripts = re.findall(r"<script( [^>]*)?>(.*?)</script>", text, re.S)
    assert [attrs for attrs, _ in scripts] == [f' type="application/octet-stream" id="{DATA_ID}"', ""]
    (style,) = re.findall(r"<style>(.*?)</style>", text, re.S)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', text).group(1)
    policy = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert policy == {"default-src": "'none'", "script-src": _sha256(scripts[1][1]), "style-src": _sha256(style),
                      "img-src": "data:", "base-uri": "'none'", "form-action": "'none'"}
    assert text.index("Content-Security-Policy") < text.index("<style>") < text.index("<script")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_data_holds_every_file_of_the_final_filesystem_with_its_category():
    """The final view lists each file once, with its bytes, its category and the layer it came from."""
    result = analyze(to_model(SAMPLE))
    data = decode_data(page(result, "test.tar"))
    paths = _paths(data)
    final = _view(data, 0)
    assert {paths[n]: (size, cat, layer) for n, size, cat, layer, _ in final} == {
        f.path: (f.size, f.category, f.layer) for f in result.attribution.files}
    assert {cat for _, _, cat, _, _ in final} == {"toolchain", "runtime", "cache", "docs"}


def test_the_data_says_what_each_layer_added_modified_and_removed():
    """A layer's view: an added file, an overwritten one, and what a whiteout and an opaque dir
    deleted, with the deleted bytes and the layer that held them."""
    spec = image(layer({"app/a": 100, "app/b": 200, "cache/x": 300, "cache/y": 400, "tmp/z": 50}),
                 layer({"app/b": 250, "app/c": 10, "cache/.wh..wh..opq": WHITEOUT, "tmp/.wh.z": WHITEOUT}))
    data = decode_data(_page(spec))
    paths = _paths(data)
    assert data["layers"] == [{"index": 0, "size": 1050, "files": 5, "step": ""},
                               {"index": 1, "size": 260, "files": 2, "step": ""}]
    assert {(paths[n], size, layer, mark) for n, size, _, layer, mark in _view(data, 2)} == {
        ("app/b", 250, 1, "~"), ("app/c", 10, 1, "+"), ("cache/x", 300, 0, "-"), ("cache/y", 400, 0, "-"),
        ("tmp/z", 50, 0, "-")}
    assert {paths[n] for n, *_ in _view(data, 0)} == {"app/a", "app/b", "app/c"}


def test_the_findings_point_at_their_files_in_the_data():
    """Each finding lists the (layer, file) versions it claims, as the terminal explorer shows them."""
    result = analyze(to_model(SAMPLE))
    data = decode_data(page(result, "test.tar"))
    paths = _paths(data)
    assert len(data["findings"]) == len(result.findings)
    for f, shown in zip(result.findings, data["findings"]):
        assert {(layer, paths[n]) for layer, n in shown["claims"]} == claims_of(f)
        assert shown["layers"] == layers_of(f)


def _paths(data: dict) -> list[str]:
    paths = [""]
    for n in range(1, len(data["names"])):
        up = paths[n - data["up"][n]]
        paths.append(f"{up}/{data['names'][n]}" if up else data["names"][n])
    return paths


def _view(data: dict, i: int) -> list[tuple]:
    """The rows of view ``i``: (node, size, category, layer, mark or package)."""
    v = data["views"][i]
    nodes = list(itertools.accumulate(v["node"]))
    last = v.get("mark") or v.get("pkg")
    cats = [data["categories"][ord(c) - ord("a")] if c != "." else None for c in v["cat"]]
    return list(zip(nodes, v["size"], cats, v["layer"], last, strict=True))


def test_the_page_lists_findings_layers_and_the_total_saving():
    """Findings with their savings, the step table and the "could save" figure are on the page."""
    result = analyze(to_model(SAMPLE))
    html = page(result, "test.tar")
    assert "Findings — could save 496.0 kB" in html
    for f in result.findings:
        assert f.title.replace("`", "`") in html.replace("&#x27;", "'").replace("&quot;", '"').replace("&amp;", "&")
    assert "RUN apt-get update &amp;&amp; apt-get install -y x" in html


def test_a_path_cannot_break_out_of_the_page():
    """A name holding markup, or the end of the data block, stays data: the page has its two script
    blocks only, and the name comes back whole from the data; the tables escape it."""
    name = "app/</script><script>alert(1)</script><!--"
    text = _page(image(layer({name: 50_000, "app/x": 10}), layer({name: 60_000})))
    assert text.count("<script") == 2 and text.count("</script>") == 2
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in text
    assert name in _paths(decode_data(text))


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
