"""A fuzz target for the JSON of an image: the config and the manifest, driven by hypothesis.
Any field may get any JSON value (wrong types, numbers far out of range, NaN and Infinity
tokens, deep nesting, lone surrogates, control characters and escapes), and the documents may
be cut or spliced.

The property: `slimmer analyze` (JSON and table), `slimmer slim` (both modes) and `slimmer
export` each either succeed or print one `slimmer: error:` line with exit status 2: never a
traceback, never a raw control character on the terminal; what slimmer writes is strict JSON
(a parser that refuses NaN reads it), and a slim image reads back. A bounded run is part of the
suite; ``bench/fuzz.py --target json`` runs it for longer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz import FUZZ_SETTINGS

from slimmer.reader import open_image

import hostile
from hostile import F, blob, docker_files, raw_controls, raw_tar, run_cli, write_tar

CONFIG_FIELDS = ["architecture", "os", "variant", "created", "author", "config", "rootfs", "history",
                 "os.features", "os.version"]
RUNTIME_FIELDS = ["Env", "Entrypoint", "Cmd", "User", "WorkingDir", "Labels", "ExposedPorts", "Volumes",
                  "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell"]
MANIFEST_FIELDS = ["RepoTags", "Layers", "Config", "LayerSources"]
TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400, "-0", "0.0000001e-400",
          '"\\ud800"', '"\\udfff\\ud800"', '"\\u001b]0;x\\u0007"', '"\\u0000"', '"\\u009b2J"', '"\\r\\n"',
          "[" * 200 + "]" * 200, '{"a":' * 100 + "1" + "}" * 100, "true", "null", '""']

# JSON values as text: json.dumps of generated values, or a raw token json.dumps cannot write
scalars = (st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=False,
                                                                                     allow_infinity=False)
           | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x1b", "\x9b", "\r", "\0", "\u2028"]),
                     max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                           max_size=4), max_leaves=12)
texts = values.map(lambda v: json.dumps(v)) | st.sampled_from(TOKENS)
# values of the right type but hostile content: they get past the reader into every command
hostile_text = st.lists(st.characters(codec="utf-8") | st.sampled_from(
    ["\x1b", "\x9b", "\x07", "\r", "\ud800", "\udfff", "\u202e", "/", "..", "$", "*"]), max_size=20).map("".join)
strings = st.lists(hostile_text, max_size=5)
RIGHT_TYPES = {"Env": strings.map(lambda v: [f"K{i}={x}" for i, x in enumerate(v)] + ["PATH=/bin"]),
               "Entrypoint": strings, "Cmd": strings, "Shell": strings, "OnBuild": strings,
               "User": hostile_text, "WorkingDir": hostile_text, "StopSignal": hostile_text,
               "Labels": st.dictionaries(hostile_text, hostile_text, max_size=4),
               "ExposedPorts": st.dictionaries(hostile_text, st.just({}), max_size=3),
               "Volumes": st.dictionaries(hostile_text, st.just({}), max_size=3),
               "ArgsEscaped": st.booleans(), "Healthcheck": st.just({"Test": ["CMD", "true"]})}
runtime_values = st.fixed_dictionaries({}, optional={
    key: st.one_of(*[right.map(lambda v: json.dumps(v))] * 6, texts)
    for key, right in RIGHT_TYPES.items()})
specs = st.fixed_dictionaries({
    "config": st.just({}) | st.just({}) | st.dictionaries(st.sampled_from(CONFIG_FIELDS), texts, max_size=2),
    "runtime": runtime_values,
    "manifest": st.just({}) | st.just({}) | st.just({}) | st.dictionaries(st.sampled_from(MANIFEST_FIELDS), texts,
                                                                          max_size=1),
    "cut": st.none() | st.none() | st.none() | st.floats(0.3, 1, exclude_max=True),
})


def _document(base: dict, replaced: dict[str, str]) -> bytes:
    """``base`` as JSON, with the values of ``replaced`` (JSON text) put in place."""
    marks = {key: f"__FUZZ_{i}__" for i, key in enumerate(replaced)}
    doc = dict(base)
    for key, mark in marks.items():
        doc[key] = mark
    text = json.dumps(doc)
    for key, mark in marks.items():
        text = text.replace(json.dumps(mark), replaced[key])
    return text.encode("utf-8", "surrogatepass")


def build(spec: dict, where: Path) -> Path:
    """A one-layer docker archive whose config and manifest carry the spec's values."""
    layer = blob(raw_tar([hostile.D("app"), F("app/run", b"#!/bin/sh\necho hi\n", mode=0o755)]))
    config = hostile.config_for([layer])
    runtime = dict(config["config"])
    for key in spec["runtime"]:
        runtime[key] = f"__RT_{key}__"
    config["config"] = runtime
    cfg = _document(config, spec["config"])
    for key, text in spec["runtime"].items():
        cfg = cfg.replace(json.dumps(f"__RT_{key}__").encode(), text.encode("utf-8", "surrogatepass"))
    if spec["cut"] is not None:
        cfg = cfg[: int(len(cfg) * spec["cut"])]
    files = docker_files([layer], config=cfg)
    manifest = json.loads(files["manifest.json"])[0]
    files["manifest.json"] = b"[" + _document(manifest, spec["manifest"]) + b"]"
    return write_tar(files, where / "image.tar")


def _strict(data: bytes | str) -> object:
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")
    return json.loads(data, parse_constant=refuse)


def _clean(run) -> None:
    if run.exc is not None:
        raise run.exc
    assert raw_controls(run.out) == [] and raw_controls(run.err) == [], (run.out[:200], run.err[:200])
    assert "Traceback" not in run.err
    assert run.code == 0 or (run.code == 2 and len(run.err_lines) == 1
                             and run.err_lines[0].startswith("slimmer: error: ")), (run.code, run.err)


def run_target(spec: dict) -> str:
    """Run analyze, slim and export on the archive ``spec`` describes; return "rejected" or
    "read"; raise if a property breaks."""
    where = Path(tempfile.mkdtemp(prefix="slimmer-fuzz-json-"))
    try:
        path = build(spec, where)
        run = run_cli("analyze", path, "--json", "--no-cache")
        _clean(run)
        if run.code != 0:
            return "rejected"
        _strict(run.out)
        _clean(run_cli("analyze", path, "--no-cache"))
        for mode in ("prune", "distroless"):
            out = where / f"{mode}.tar"
            run = run_cli("slim", path, "--mode", mode, "-o", out, "--no-cache")
            _clean(run)
            if run.code == 0:
                slimmed = open_image(out)
                _strict(json.dumps(slimmed.config, allow_nan=False))
        _clean(run_cli("export", path, where / "root.tar", "--no-cache"))
        return "read"
    finally:
        shutil.rmtree(where, ignore_errors=True)


@settings(max_examples=int(os.environ.get("SLIMMER_FUZZ_JSON_EXAMPLES", "60")), derandomize=True, **FUZZ_SETTINGS)
@given(specs)
def test_commands_survive_hostile_config_and_manifest_json(spec):
    """Any config or manifest JSON: one error line or a clean result, strict JSON out."""
    run_target(spec)


def test_target_gets_past_the_reader():
    """The target really reads and slims: a config with every field of the right type reads."""
    spec = {"config": {"architecture": '"amd64"'}, "runtime": {"Env": '["PATH=/bin"]', "User": '"1000"'},
            "manifest": {}, "cut": None}
    assert run_target(spec) == "read"
    assert run_target({**spec, "runtime": {"Env": "7"}}) == "rejected"
    assert run_target({**spec, "runtime": {"Labels": '{"x": NaN}'}}) == "rejected"
