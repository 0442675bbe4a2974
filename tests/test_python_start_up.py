"""What a Python interpreter needs at start-up, on trees built in code: the codecs in use rather
than the whole ``encodings`` package (named by literals, resolved through the image's own
aliases, a CJK codec with its extension modules; the rest said and restorable with --keep),
and no files for the modules frozen into the interpreter (unless it would not use them)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from test_elf import make_elf
from test_runtime_closures import BASE, EXT, STD, prog

from slimmer.layers import merge
from slimmer.rewriter.closure import Closure, entrypoint_closure
from slimmer.rewriter.contents import Contents
from slimmer.rewriter.imports import codec_aliases, codec_modules, codec_names, normalize_encoding
from slimmer.rewriter.python import frozen_modules_option
from slimmer.rewriter.slim import SlimOptions, plan_slim

from builders import File, Symlink, image, layer, to_model

DYN = f"{STD}/lib-dynload"
ALIASES = b"""\
# the table as CPython's encodings/aliases.py holds it (a part)
aliases = {
    # latin_1 codec
    '8859': 'latin_1', 'l1': 'latin_1', 'latin': 'latin_1', 'latin1': 'latin_1',
    'iso_8859_15': 'iso8859_15', 'latin9': 'iso8859_15',
    'utf8': 'utf_8', 'u8': 'utf_8',
    'windows_1252': 'cp1252',
    'ms932': 'cp932', 'mskanji': 'cp932',
    'euckr': 'euc_kr',
}
"""
CODECS = {
    f"{STD}/encodings/aliases.py": ALIASES,
    f"{STD}/encodings/latin_1.py": b"import codecs\n", f"{STD}/encodings/__pycache__/latin_1.cpython-311.pyc": 300,
    f"{STD}/encodings/cp1252.py": b"import codecs\n", f"{STD}/encodings/iso8859_15.py": b"import codecs\n",
    f"{STD}/encodings/idna.py": b"import stringprep, re, codecs\nfrom unicodedata import ucd_3_2_0\n",
    f"{STD}/stringprep.py": b"", f"{DYN}/unicodedata.{EXT}": prog(),
    f"{STD}/encodings/cp932.py": b"import _codecs_jp, codecs\nimport _multibytecodec as mbc\n",
    f"{STD}/encodings/__pycache__/cp932.cpython-311.pyc": 900,
    f"{STD}/encodings/euc_kr.py": b"import _codecs_kr, codecs\nimport _multibytecodec as mbc\n",
    f"{DYN}/_codecs_jp.{EXT}": File(make_elf() + bytes(4000)),
    f"{DYN}/_codecs_kr.{EXT}": File(make_elf() + bytes(3000)),
    f"{DYN}/_multibytecodec.{EXT}": File(make_elf() + bytes(500)),
    f"{STD}/socket.py": b"import _socket, os\n", f"{DYN}/_socket.{EXT}": prog(),
}
ENV = ["PATH=/usr/local/bin:/usr/bin:/bin"]


def built(files: dict, argv: list[str], env=None, base=None):
    cfg = {"Cmd": argv, "WorkingDir": "/app", "Env": (env or []) + ENV}
    tree = {**BASE, **CODECS} if base is None else base
    return image(layer({**tree, **files}, auto_dirs=True), config={"config": cfg})


def closure_of(files: dict, argv: list[str], env=None, base=None) -> Closure:
    img = to_model(built(files, argv, env, base))
    fs = merge(img)
    return entrypoint_closure(img, fs, Contents(img, fs, Path(tempfile.mkdtemp())))


def run(main: bytes, env=None) -> Closure:
    return closure_of({"app/main.py": main}, ["python3", "/app/main.py"], env)


CODEC_CASES = [
    pytest.param(b"raw.decode('L1')\nopen('f', encoding='Windows-1252')\n", None,
                 {"latin_1.py", "__pycache__/latin_1.cpython-311.pyc", "cp1252.py"},
                 id="names given by literals are resolved through the image's aliases and CPython's normalization"),
    pytest.param(b"text.encode('MS932')\n", None, {"cp932.py", "__pycache__/cp932.cpython-311.pyc",
                                                    f"/{DYN}/_codecs_jp.{EXT}", f"/{DYN}/_multibytecodec.{EXT}"},
                 id="a CJK codec named by a literal pulls its extension modules"),
    pytest.param(b"print(1)\n", ["LANG=de_DE.ISO-8859-15@euro", "PYTHONIOENCODING=cp1252:replace"],
                 {"iso8859_15.py", "cp1252.py"},
                 id="the image's locale and PYTHONIOENCODING name codecs start-up looks up"),
    pytest.param(b"# -*- coding: latin-1 -*-\nprint(1)\n", None, {"latin_1.py", "__pycache__/latin_1.cpython-311.pyc"},
                 id="a source file's coding declaration names the codec that decodes it"),
    pytest.param(b"import socket\n", None, {"idna.py", f"/{STD}/stringprep.py", f"/{DYN}/unicodedata.{EXT}"},
                 id="the socket module's C code encodes host names with idna, which is followed"),
]
EVERY = {"latin_1.py", "__pycache__/latin_1.cpython-311.pyc", "cp1252.py", "iso8859_15.py", "idna.py", "cp932.py",
         "__pycache__/cp932.cpython-311.pyc", "euc_kr.py", f"/{DYN}/_codecs_jp.{EXT}", f"/{DYN}/_codecs_kr.{EXT}",
         f"/{DYN}/_multibytecodec.{EXT}"}


def _path(name: str) -> str:
    return name[1:] if name.startswith("/") else f"{STD}/encodings/{name}"


@pytest.mark.parametrize("main, env, kept", CODEC_CASES)
def test_codecs_in_use_are_kept_and_the_others_left_out(main, env, kept):
    """The codecs start-up looks up and those a followed module names are kept (with their
    byte code and what they import); every other codec of the package is left out."""
    closure = run(main, env)
    assert {n for n in kept if not closure.covers(_path(n))} == set(), closure.reasons
    assert {n for n in EVERY - kept if closure.covers(_path(n))} == set()
    for always in ("__init__.py", "aliases.py", "utf_8.py"):
        assert closure.covers(_path(always))
    assert f"{STD}/encodings" not in closure.trees


def test_a_kept_codec_says_which_name_chose_it():
    """The reason of a codec module names the literal and the file that gave it."""
    why = {r.path: r.why for r in run(b"raw.decode('latin1')\n").reasons}
    assert why[f"{STD}/encodings/latin_1.py"] == "the codec 'latin1' named by /app/main.py"
    assert why[f"{STD}/encodings/utf_8.py"] == "the UTF-8 codec, looked up at start-up"


def _left_out_line(closure: Closure) -> str:
    lines = [b for b in closure.blind_spots if "codec modules of" in b]
    assert len(lines) == 1, closure.blind_spots
    return lines[0]


def test_what_the_codec_rule_leaves_out_is_said_with_its_size_and_who_computes_names():
    """One blind spot counts the codec modules left out and their bytes (with the extension
    modules only they import), names the modules that look codecs up by computed names, and
    says how to keep them."""
    spec = built({"app/main.py": b"import mail, unicodedata\n", "app/mail.py": b"def body(raw, charset):\n"
                                                                 b"    return raw.decode(charset)\n"},
                 ["python3", "/app/main.py"])
    img = to_model(spec)
    fs = merge(img)
    closure = entrypoint_closure(img, fs, Contents(img, fs, Path(tempfile.mkdtemp())))
    line = _left_out_line(closure)
    left = [p for p, v in fs.files() if v.entry.kind == "file" and not closure.covers(p) and
            p.startswith((f"{STD}/encodings/", f"{DYN}/_codecs_", f"{DYN}/_multibyte"))]
    size = sum(fs.get(p).entry.size for p in left)
    modules = [p for p in left if p.endswith(".py")]
    assert f"python: {len(modules)} codec modules of /{STD}/encodings and the 3 extension modules only they import " \
           f"({size:,} bytes with their byte code) were left out" in line
    assert "/app/mail.py look codecs up by names computed at run time" in line
    assert f"--keep '/{STD}/encodings/**' --keep '/{DYN}/_*codec*'" in line and line.endswith("or use --probe")


def test_without_computed_names_the_line_still_says_what_was_left_out():
    """A program naming only literals still hears which codecs were left out, without a claim
    about computed names."""
    line = _left_out_line(run(b"print(b'x'.decode('ascii'))\n"))
    assert "were left out: no module of the program names them with a literal; add --keep" in line


def test_keep_of_the_globs_the_line_gives_brings_every_codec_back():
    """--keep with the globs the blind spot gives keeps the whole package and the extension
    modules of its codecs (here also unicodedata, which only the idna codec imports)."""
    spec = built({"app/main.py": b"print(1)\n"}, ["python3", "/app/main.py"])
    line = _left_out_line(closure_of({"app/main.py": b"print(1)\n"}, ["python3", "/app/main.py"]))
    globs = tuple(re.findall(r"--keep '([^']+)'", line))
    plain = plan_slim(to_model(spec), SlimOptions(mode="distroless")).plan.keep
    kept = plan_slim(to_model(spec), SlimOptions(mode="distroless", keep=globs)).plan.keep
    every = {p for p in (*CODECS, *BASE) if p.startswith((f"{STD}/encodings/", f"{DYN}/_codecs", f"{DYN}/_multibyte"))}
    assert every - plain and every <= kept


@pytest.mark.parametrize("source, names, computed", [
    pytest.param(b"b.decode('utf-8', 'replace')\ns.encode(encoding='latin-1', errors='strict')\n",
                 ("utf-8", "latin-1"), False, id="an error handler is not a codec"),
    pytest.param(b"open(p, 'w', encoding='cp1252')\ndef f(encoding: str = 'koi8-r'): pass\n"
                 b"if encoding == 'big5': pass\n", ("cp1252", "koi8-r"), False,
                 id="a keyword argument and an annotated default count, a comparison does not"),
    pytest.param(b"codecs.lookup('euc-jp')\ncodecs.open(p, 'r', 'gbk')\nstr(raw, 'shift_jis')\n"
                 b"TextIOWrapper(buf, 'utf-16')\nmystr(raw, 'nope')\n",
                 ("euc-jp", "gbk", "shift_jis", "utf-16"), False, id="codecs functions and positional encodings"),
    pytest.param(b"raw.decode(charset)\n", (), True, id="a codec name held by a variable is computed"),
    pytest.param(b"json.JSONEncoder().encode(obj)\nopen(p, encoding=None)\n", (), False,
                 id="an encoder's encode() and the default encoding are no look-up"),
])
def test_codec_name_scanner(source, names, computed):
    """The codec scanner reads the names given as encodings, and only those."""
    assert codec_names(source) == (names, computed)


@pytest.mark.parametrize("name, modules", [
    pytest.param("latin-1", ("latin_1",), id="latin-1 is the module latin_1"),
    pytest.param("UTF8", ("utf_8", "utf8"), id="utf8 is an alias of utf_8"),
    pytest.param("Windows 1252", ("cp1252", "windows_1252"), id="spaces and case are normalized before the alias"),
    pytest.param("x.y", (), id="a name with a dot imports nothing"),
])
def test_codec_names_resolve_as_the_search_function_does(name, modules):
    """encodings.search_function tries the alias's module, then the normalized name."""
    assert codec_modules(name, dict(codec_aliases(ALIASES))) == modules


def test_normalize_encoding_is_cpythons():
    """Case folded, each run of other characters than ASCII letters, digits and '.' one '_'."""
    assert normalize_encoding("  UTF--8 ") == "utf_8"
    assert normalize_encoding("ISO 8859.1") == "iso_8859.1"
    assert normalize_encoding("latïn1") == "lat_n1"


# ---- frozen modules ----------------------------------------------------------------------

FROZEN_FILES = {
    f"{STD}/site.py": b"import os\nimport _site_helper\n", f"{STD}/_site_helper.py": b"",
    f"{STD}/io.py": b"import abc\n",
    f"{STD}/importlib/__init__.py": b"import _imp, sys\ntry:\n    import _frozen_importlib as _bootstrap\n"
                                    b"except ImportError:\n    from . import _bootstrap\n"
                                    b"from . import _bootstrap_external\n",
    f"{STD}/importlib/_bootstrap.py": b"", f"{STD}/importlib/_bootstrap_external.py": b"",
    f"{STD}/importlib/util.py": b"from ._abc import Loader\n", f"{STD}/importlib/_abc.py": b"",
    f"{STD}/importlib/machinery.py": b"", f"{STD}/zipimport.py": b"import marshal\n", f"{STD}/marshal.py": b"",
    f"{STD}/__pycache__/site.cpython-311.pyc": 400,
    "app/main.py": b"import importlib.util, zipimport\n",
}
STDLIB_FROZEN = {"site.py", "__pycache__/site.cpython-311.pyc", "__pycache__/os.cpython-311.pyc", "abc.py", "stat.py",
                 "codecs.py", "io.py", "importlib/util.py"}
BOOTSTRAP = {"importlib/_bootstrap.py", "importlib/_bootstrap_external.py", "zipimport.py"}
NEVER_FROZEN = {"os.py", "importlib/__init__.py", "importlib/_abc.py", "_site_helper.py", "marshal.py",
                "encodings/__init__.py"}


def version_tree(version: str, files: dict) -> dict:
    """Return BASE, CODECS and ``files`` for Python ``version`` instead of 3.11."""
    tag = "cpython-" + version.replace(".", "")
    out = {k.replace("python3.11", f"python{version}").replace("cpython-311", tag): v
           for k, v in {**BASE, **CODECS, **files}.items()}
    if "usr/bin/python3" not in files:
        out["usr/bin/python3"] = Symlink(f"python{version}")
    return out


FROZEN_CASES = [
    pytest.param("3.11", {}, ["python3", "/app/main.py"], [], BOOTSTRAP | STDLIB_FROZEN,
                 id="3.11 freezes its start-up modules and the import system"),
    pytest.param("3.11", {}, ["python3", "-X", "frozen_modules=off", "/app/main.py"], [], BOOTSTRAP,
                 id="with -X frozen_modules=off only the import system is frozen"),
    pytest.param("3.11", {}, ["python3", "-Xfrozen_modules=off", "/app/main.py"], [], BOOTSTRAP,
                 id="the joined form -Xfrozen_modules=off too"),
    pytest.param("3.11", {"usr/bin/pybuilddir.txt": b"build/lib.linux-x86_64-3.11\n"}, ["python3", "/app/main.py"],
                 [], BOOTSTRAP, id="an interpreter in its build tree does not use the frozen stdlib"),
    pytest.param("3.11", {"usr/bin/python3": Symlink("python3.11d"), "usr/bin/python3.11d": prog()},
                 ["python3", "/app/main.py"], [], BOOTSTRAP, id="nor does a debug build"),
    pytest.param("3.13", {}, ["python3", "/app/main.py"], ["PYTHON_FROZEN_MODULES=off"], BOOTSTRAP,
                 id="PYTHON_FROZEN_MODULES=off turns them off on 3.13"),
    pytest.param("3.12", {}, ["python3", "/app/main.py"], ["PYTHON_FROZEN_MODULES=off"], BOOTSTRAP | STDLIB_FROZEN,
                 id="PYTHON_FROZEN_MODULES means nothing before 3.13"),
    pytest.param("3.10", {}, ["python3", "/app/main.py"], [], BOOTSTRAP,
                 id="3.10 freezes only the import system"),
    pytest.param("3.11", {"usr/bin/python3": Symlink("pypy3.11"), "usr/bin/pypy3.11": prog()},
                 ["python3", "/app/main.py"], [], set(), id="PyPy is not CPython: nothing is taken as frozen"),
]


@pytest.mark.parametrize("version, files, argv, env, gone", FROZEN_CASES)
def test_frozen_modules_are_followed_but_not_kept(version, files, argv, env, gone):
    """A frozen module's imports are followed but its source and byte code are not kept,
    exactly when the interpreter runs the frozen code; os.py stays as the prefix landmark."""
    tree = version_tree(version, {**FROZEN_FILES, **files})
    std = f"usr/lib/python{version}"
    link = files.get("usr/bin/python3")
    real = f"usr/bin/{link.target}" if link is not None else f"usr/bin/python{version}"
    if real != f"usr/bin/python{version}":
        del tree[f"usr/bin/python{version}"]
    closure = closure_of({}, argv, env, base=tree)
    every = STDLIB_FROZEN | BOOTSTRAP

    def path(name: str) -> str:
        return f"{std}/{name.replace('311', version.replace('.', ''))}"

    assert {n for n in every - gone if not closure.covers(path(n))} == set(), closure.reasons
    assert {n for n in gone if closure.covers(path(n))} == set()
    assert {n for n in NEVER_FROZEN if not closure.covers(path(n))} == set()
    notes = [n for n in closure.notes if "are frozen into" in n]
    assert len(notes) == bool(gone)
    if gone:
        assert f"frozen into /{real}, " in notes[0]
        assert ("with -X frozen_modules=off they would be" in notes[0]) is bool(gone & STDLIB_FROZEN)


@pytest.mark.parametrize("options, expected", [
    pytest.param(["-X", "frozen_modules=off"], False, id="off"),
    pytest.param(["-X", "frozen_modules=off", "-Xfrozen_modules"], True, id="the last one counts, bare is on"),
    pytest.param(["-X", "dev", "-u"], None, id="not given"),
])
def test_frozen_modules_option(options, expected):
    """-X frozen_modules is read as CPython reads it."""
    assert frozen_modules_option(options) is expected


def test_empty_modules_are_not_read_again():
    """An empty ``__init__.py`` (the scan probes no empty file) imports and names nothing: the
    closure learns that without streaming its layer a second time."""
    spec = built({"app/main.py": b"import pkg.sub\n", "app/pkg/__init__.py": b"", "app/pkg/sub.py": b"import json\n"},
                 ["python3", "/app/main.py"])
    img = to_model(spec)
    fs = merge(img)
    contents = Contents(img, fs, Path(tempfile.mkdtemp()))
    closure = entrypoint_closure(img, fs, contents)
    assert closure.covers("app/pkg/sub.py") and closure.covers(f"{STD}/json/decoder.py")
    assert contents.layer_passes == 1  # the facts of the one layer, gathered once
