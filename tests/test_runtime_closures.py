"""The import closure of Python programs and the require closure of Node.js programs, on trees
built in code: what the program reaches is kept with a reason, what it does not is left out,
and what static analysis cannot see is said."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from test_elf import make_elf

from slimmer.layers import merge
from slimmer.rewriter.closure import Closure, entrypoint_closure
from slimmer.rewriter.contents import Contents
from slimmer.rewriter.facts import SlimPolicy
from slimmer.rewriter.imports import (
    LAZY,
    MAIN,
    OTHER_OS,
    TOP,
    js_requires,
    python_imports,
)

from builders import File, Symlink, image, layer, to_model

LD = "/lib64/ld-linux-x86-64.so.2"
MULTI = "usr/lib/x86_64-linux-gnu"
STD = "usr/lib/python3.11"
SITE = "usr/local/lib/python3.11/dist-packages"
DIST = "usr/lib/python3/dist-packages"
EXT = "cpython-311-x86_64-linux-gnu.so"


def prog(**kw) -> File:
    return File(make_elf(**kw), mode=0o755)


BASE = {
    "usr/bin/python3": Symlink("python3.11"), "usr/bin/python3.11": prog(interp=LD, needed=("libc.so.6",)),
    "lib64/ld-linux-x86-64.so.2": prog(), f"{MULTI}/libc.so.6": prog(),
    f"{STD}/os.py": b"import abc, stat\n", f"{STD}/abc.py": b"", f"{STD}/stat.py": b"",
    f"{STD}/site.py": b"import os\n",
    f"{STD}/codecs.py": b"", f"{STD}/encodings/__init__.py": b"import codecs\nfrom . import aliases\n",
    f"{STD}/encodings/aliases.py": b"", f"{STD}/encodings/utf_8.py": b"import codecs\n",
    f"{STD}/__pycache__/os.cpython-311.pyc": b"pyc", f"{STD}/__pycache__/unused.cpython-311.pyc": b"pyc",
    f"{STD}/unused.py": b"", f"{STD}/tkinter/__init__.py": b"", f"{STD}/test/support/__init__.py": b"",
    f"{STD}/config-3.11-x86_64-linux-gnu/libpython3.11.a": 5000, f"{STD}/lib2to3/__init__.py": b"",
    f"{STD}/json/__init__.py": b"from .decoder import JSONDecoder\n", f"{STD}/json/decoder.py": b"import re\n",
    f"{STD}/re.py": b"", f"{STD}/doctest.py": b"import unittest\n", f"{STD}/unittest/__init__.py": b"",
    f"{STD}/shutil.py": b"import os\ndef unpack():\n    import zipfile\n", f"{STD}/zipfile.py": b"",
    f"{STD}/importlib/__init__.py": b"", f"{STD}/ensurepip/__init__.py": b"",
    f"{DIST}/pip/__init__.py": b"", f"{DIST}/pip-23.0.1.dist-info/RECORD": b"pip/__init__.py,,\n",
    f"{DIST}/setuptools/__init__.py": b"", f"{DIST}/_distutils_hack/__init__.py": b"",
    f"{DIST}/setuptools-66.1.1.egg-info/top_level.txt": b"_distutils_hack\npkg_resources\nsetuptools\n",
    f"{DIST}/distutils-precedence.pth":
        b"import os; enabled = 1; enabled and __import__('_distutils_hack').add_shim()\n",
}


def closure_of(files: dict, argv: list[str], workdir: str = "/app", env=None) -> Closure:
    cfg = {"Cmd": argv, "WorkingDir": workdir, "Env": env or ["PATH=/usr/local/bin:/usr/bin:/bin"]}
    img = to_model(image(layer({**BASE, **files}, auto_dirs=True), config={"config": cfg}))
    fs = merge(img)
    return entrypoint_closure(img, fs, Contents(img, fs, Path(tempfile.mkdtemp())))


def test_python_keeps_what_the_program_imports_and_leaves_the_rest():
    """The start-up modules that are not frozen, the imported modules with their parents and
    byte code, and the program's own directory are kept; unused standard-library modules,
    tests, tkinter, lib2to3, ensurepip, config-*, pip and setuptools are not."""
    closure = closure_of({"app/main.py": b"import json, shutil\n",
                          f"{STD}/json/__pycache__/decoder.cpython-311.pyc": b"pyc"}, ["python3", "/app/main.py"])
    for path in (f"{STD}/os.py", f"{STD}/json/__init__.py", f"{STD}/json/decoder.py",
                 f"{STD}/json/__pycache__/decoder.cpython-311.pyc", f"{STD}/re.py", f"{STD}/shutil.py",
                 f"{STD}/encodings/__init__.py", f"{STD}/encodings/aliases.py", f"{STD}/encodings/utf_8.py",
                 "usr/bin/python3.11", f"{MULTI}/libc.so.6"):
        assert closure.covers(path), path
    for gone in (f"{STD}/unused.py", f"{STD}/__pycache__/unused.cpython-311.pyc", f"{STD}/tkinter/__init__.py",
                 f"{STD}/test/support/__init__.py", f"{STD}/config-3.11-x86_64-linux-gnu/libpython3.11.a",
                 f"{STD}/lib2to3/__init__.py", f"{STD}/ensurepip/__init__.py", f"{DIST}/pip/__init__.py",
                 f"{DIST}/setuptools/__init__.py", f"{DIST}/_distutils_hack/__init__.py",
                 f"{DIST}/distutils-precedence.pth", f"{STD}/zipfile.py", f"{STD}/doctest.py"):
        assert not closure.covers(gone), gone
    assert "app" in closure.trees
    assert any("distutils-precedence.pth was left out" in n for n in closure.notes)


CASES = [
    pytest.param(
        {"app/main.py": b"import importlib\nm = importlib.import_module('plugins.alpha')\n__import__('beta')\n"
                        b"name = 'gam' + 'ma'\nimportlib.import_module(name)\n",
         f"{SITE}/plugins/__init__.py": b"", f"{SITE}/plugins/alpha.py": b"", f"{SITE}/plugins/unused.py": b"",
         f"{SITE}/beta.py": b"", f"{SITE}/gamma.py": b"", f"{STD}/importlib/__init__.py": b""},
        ["python3", "/app/main.py"], None,
        {f"{SITE}/plugins/__init__.py", f"{SITE}/plugins/alpha.py", f"{SITE}/beta.py"},
        {f"{SITE}/plugins/unused.py", f"{SITE}/gamma.py"}, ["import modules by computed names"],
        id="importlib.import_module and __import__ with literal names are followed, a computed one is a note"),
    pytest.param(
        {"app/main.py": b"import extra_mod\n", f"{SITE}/extra.pth": b"/opt/extra\n# a comment\n",
         "opt/extra/extra_mod.py": b"", "opt/extra/other.py": b""},
        ["python3", "/app/main.py"], None,
        {f"{SITE}/extra.pth", "opt/extra/extra_mod.py"}, {"opt/extra/other.py"}, [],
        id="a .pth file adds its directory to sys.path and is kept with what it made importable"),
    pytest.param(
        {"app/main.py": b"import ns.a\nfrom ns import b\n", f"{SITE}/ns/a.py": b"", f"{DIST}/ns/b.py": b"",
         f"{DIST}/ns/c.py": b""},
        ["python3", "/app/main.py"], None,
        {f"{SITE}/ns/a.py", f"{DIST}/ns/b.py"}, {f"{DIST}/ns/c.py"}, [],
        id="a namespace package is found in every portion on sys.path"),
    pytest.param(
        {"app/main.py": b"import fast\n", f"{SITE}/fast.{EXT}": prog(needed=("libfast.so.1", "libc.so.6")),
         f"{MULTI}/libfast.so.1": prog(needed=("libc.so.6",)), f"{MULTI}/libslow.so.1": prog()},
        ["python3", "/app/main.py"], None,
        {f"{SITE}/fast.{EXT}", f"{MULTI}/libfast.so.1"}, {f"{MULTI}/libslow.so.1"}, [],
        id="a C extension module is kept with the shared library it needs"),
    pytest.param(
        {"app/main.py": b"import req\n", f"{SITE}/req/__init__.py": b"from . import api\n",
         f"{SITE}/req/api.py": b"import idn\n", f"{SITE}/req/cacert.pem": b"certs",
         f"{SITE}/req-2.0.dist-info/RECORD": b"req/__init__.py,,\nreq/api.py,,\nreq/cacert.pem,,\n"
                                             b"req-2.0.dist-info/RECORD,,\n",
         f"{SITE}/idn/__init__.py": b"", f"{SITE}/idn-3.0.dist-info/RECORD": b"idn/__init__.py,,\n",
         f"{SITE}/other/__init__.py": b"", f"{SITE}/other-1.0.dist-info/RECORD": b"other/__init__.py,,\n"},
        ["python3", "/app/main.py"], None,
        {f"{SITE}/req/cacert.pem", f"{SITE}/req-2.0.dist-info/RECORD", f"{SITE}/idn/__init__.py"},
        {f"{SITE}/other/__init__.py", f"{SITE}/other-1.0.dist-info/RECORD"}, [],
        id="an imported distribution is kept whole with its data and dist-info, and what it imports"),
    pytest.param(
        {"app/tool.py": b"import lib_a\n", "app/lib_a.py": b"def f():\n    import lib_b\n"
                                                          b"if __name__ == '__main__':\n    import lib_c\n",
         f"{SITE}/lib_b.py": b"", f"{SITE}/lib_c.py": b""},
        ["python3", "-m", "tool"], None,
        {f"{SITE}/lib_b.py"}, {f"{SITE}/lib_c.py"}, [],
        id="python -m follows a function's imports but not the main block of an imported module"),
    pytest.param(
        {"usr/local/bin/serve": File(b"#!/usr/bin/python3\nfrom serve_pkg.cli import main\nmain()\n", mode=0o755),
         f"{SITE}/serve_pkg/__init__.py": b"", f"{SITE}/serve_pkg/cli.py": b"import json\n"},
        ["serve"], None,
        {"usr/local/bin/serve", f"{SITE}/serve_pkg/cli.py", f"{STD}/json/decoder.py"}, set(), [],
        id="a console-script wrapper is followed through its #! line"),
]


@pytest.mark.parametrize("files, argv, env, kept, gone, notes", CASES)
def test_python_import_closure(files, argv, env, kept, gone, notes):
    """Each kind of import reaches exactly the modules Python would load."""
    closure = closure_of(files, argv, env=(env or []) + ["PATH=/usr/local/bin:/usr/bin:/bin"])
    assert {p for p in kept if not closure.covers(p)} == set(), closure.reasons
    assert {p for p in gone if closure.covers(p)} == set()
    text = "\n".join(closure.notes + closure.blind_spots)
    for note in notes:
        assert note in text


NODE = {
    "usr/bin/node": prog(interp=LD, needed=("libnode.so.108", "libc.so.6")), f"{MULTI}/libnode.so.108": prog(),
    "lib64/ld-linux-x86-64.so.2": prog(), f"{MULTI}/libc.so.6": prog(),
    "usr/share/nodejs/npm/index.js": b"require('semver')\n", "usr/share/nodejs/semver/index.js": b"",
    "usr/share/nodejs/cjs-module-lexer/lexer.js": b"",
}


def _pkg(name: str, **fields) -> bytes:
    return json.dumps({"name": name, **fields}).encode()


def node_closure(files: dict, argv: list[str]) -> Closure:
    cfg = {"Cmd": argv, "WorkingDir": "/app", "Env": ["PATH=/usr/bin:/bin"]}
    img = to_model(image(layer({**NODE, **files}, auto_dirs=True), config={"config": cfg}))
    fs = merge(img)
    return entrypoint_closure(img, fs, Contents(img, fs, Path(tempfile.mkdtemp())))


APP = {
    "app/package.json": _pkg("app", dependencies={"pkg": "1"}, devDependencies={"jest": "1"}),
    "app/index.js": b"const f = require('pkg/feature');\nimport('@s/p');\nconst l = require('./lib');\n"
                    b"const a = require('./build/Release/addon.node');\nconst fs = require('node:fs');\n",
    "app/lib/index.js": b"module.exports = require('../util')\n", "app/util.js": b"",
    "app/build/Release/addon.node": prog(needed=("libaddon.so.1", "libc.so.6")),
    f"{MULTI}/libaddon.so.1": prog(), f"{MULTI}/libother.so.1": prog(),
    "app/node_modules/pkg/package.json": _pkg("pkg", exports={".": "./main.js",
                                                               "./feature": {"require": "./lib/feat.js",
                                                                             "import": "./esm/feat.mjs",
                                                                             "browser": "./browser.js"}}),
    "app/node_modules/pkg/main.js": b"require('dep-c')\n", "app/node_modules/pkg/lib/feat.js": b"require('dep-b')\n",
    "app/node_modules/pkg/esm/feat.mjs": b"import x from 'dep-e'\n",
    "app/node_modules/pkg/browser.js": b"require('dep-f')",
    "app/node_modules/dep-b/package.json": _pkg("dep-b", main="b.js"), "app/node_modules/dep-b/b.js": b"",
    "app/node_modules/dep-c/index.js": b"", "app/node_modules/dep-e/index.js": b"",
    "app/node_modules/dep-f/index.js": b"",
    "app/node_modules/@s/p/package.json": _pkg("@s/p", main="./dist/p.js"), "app/node_modules/@s/p/dist/p.js": b"",
    "app/node_modules/jest/index.js": b"", "app/node_modules/.cache/babel/x.json": b"{}",
}


def test_node_require_closure_follows_resolution():
    """Node's resolution picks the files: an exports map (each condition that may apply in
    node, not ``browser``), main, index files, scoped packages, an addon and its library;
    unreached packages (devDependencies, npm's own, caches) are left out."""
    closure = node_closure(APP, ["node", "index.js"])
    for path in ("app/index.js", "app/lib/index.js", "app/util.js", "app/node_modules/pkg/lib/feat.js",
                 "app/node_modules/dep-b/b.js", "app/node_modules/dep-e/index.js", "app/node_modules/@s/p/dist/p.js",
                 "app/build/Release/addon.node", f"{MULTI}/libaddon.so.1",
                 "usr/share/nodejs/cjs-module-lexer/lexer.js"):
        assert closure.covers(path), path
    for path in ("app/node_modules/dep-c/index.js", "app/node_modules/dep-f/index.js", "app/node_modules/jest/index.js",
                 "app/node_modules/.cache/babel/x.json", "usr/share/nodejs/npm/index.js",
                 "usr/share/nodejs/semver/index.js", f"{MULTI}/libother.so.1"):
        assert not closure.covers(path), path
    assert "app/node_modules/pkg" in closure.trees  # a reached package is kept whole


def test_node_computed_require_keeps_declared_dependencies():
    """A reached file that requires by a computed name keeps its package's dependencies and
    says so; other packages still go."""
    files = {"app/index.js": b"require('loader')\n",
             "app/node_modules/loader/package.json": _pkg("loader", dependencies={"plugin": "1"}),
             "app/node_modules/loader/index.js": b"const n = 'plug' + 'in'; require(n)\n",
             "app/node_modules/plugin/index.js": b"", "app/node_modules/unrelated/index.js": b""}
    closure = node_closure(files, ["node", "/app/index.js"])
    assert closure.covers("app/node_modules/plugin/index.js")
    assert not closure.covers("app/node_modules/unrelated/index.js")
    assert any("require modules by computed names" in b for b in closure.blind_spots)


@pytest.mark.parametrize("source, expected", [
    pytest.param(b"import os\nimport a.b as c, d\n", [(0, "os", (), TOP), (0, "a.b", (), TOP), (0, "d", (), TOP)],
                 id="plain imports, dotted and aliased"),
    pytest.param(b"from . import (x,\n   y)  # two\nfrom ..pkg import *\n", [(1, "", ("x", "y"), TOP),
                                                                            (2, "pkg", ("*",), TOP)],
                 id="relative imports across lines and a star"),
    pytest.param(b"try:\n    import fast\nexcept ImportError:\n    fast = None\n", [(0, "fast", (), TOP)],
                 id="a conditional import at module level runs on import"),
    pytest.param(b"def f():\n    import lazy\nclass C:\n    import attr\n",
                 [(0, "lazy", (), LAZY), (0, "attr", (), TOP)],
                 id="an import in a function body is lazy, one in a class body is not"),
    pytest.param(b"if __name__ == '__main__':\n    import cli\n", [(0, "cli", (), MAIN)],
                 id="an import in the main block runs only for the program"),
    pytest.param(b"x = '''\nimport fake\n'''\n", [(0, "fake", (), TOP)],
                 id="an import line inside a string counts (it can only keep more)"),
    pytest.param(b"if sys.platform == 'win32':\n    import winreg\nelif sys.platform.startswith('linux'):\n"
                 b"    import fcntl\nif os.name == 'nt':\n    import nt\nif sys.platform in ('emscripten', 'wasi'):\n"
                 b"    import js\nelse:\n    import posix\n",
                 [(0, "winreg", (), OTHER_OS), (0, "fcntl", (), TOP), (0, "nt", (), OTHER_OS), (0, "js", (), OTHER_OS),
                  (0, "posix", (), TOP)],
                 id="an import under a platform test false on Linux is marked, its else branch is not"),
])
def test_python_import_scanner(source, expected):
    """The import scanner reads statements as Python does, erring only towards more."""
    found, computed = python_imports(source)
    assert list(found) == expected
    assert not computed


def test_js_scanner_finds_literal_specifiers_only():
    """require, import, dynamic import and export-from with literal names; comments ignored;
    a computed require flagged."""
    src = b"const a = require('a') // require('no')\nimport b from \"b/x\"\nimport 'c'\n/* require('no2') */\n" \
          b"export * from './d.js'\nconst e = await import('e')\nrequire(name)\n"
    specs, computed = js_requires(src)
    assert specs == ("a", "b/x", "c", "./d.js", "e") and computed


def test_slim_policy_learns_elf_facts_while_streaming():
    """The scan pass records the loader facts of an ELF file whose bytes arrive in small
    pieces, and the #! line of a script, without buffering whole files."""
    from slimmer.model import Entry
    from slimmer.rewriter.facts import ELF, HEAD, elf_info
    from slimmer.tar.collect import Facts

    elf = make_elf(interp=LD, needed=("liba.so.1", "libc.so.6"), runpath=("$ORIGIN/../lib",)) + bytes(100_000)
    facts = Facts()
    policy = SlimPolicy()
    for path, data, mode in (("usr/bin/app", elf, 0o755), ("usr/bin/run.sh", b"#!/bin/sh\necho hi\n", 0o755)):
        sink = policy.sink(Entry(path, "file", len(data), mode, offset=512), facts)
        for i in range(0, len(data), 7):
            sink.write(memoryview(data)[i:i + 7])
        sink.end()
    info = elf_info(facts.kinds[ELF]["usr/bin/app"])
    assert (info.interpreter, info.needed, info.runpath) == (LD, ("liba.so.1", "libc.so.6"), ("$ORIGIN/../lib",))
    assert facts.kinds[HEAD]["usr/bin/run.sh"] == b"#!/bin/sh"


def test_java_home_without_jdk_parts_and_libjvm_found_in_its_tree():
    """java -jar keeps the Java home but the JDK's development parts (jmods, include, src.zip,
    ct.sym, javac); a library that needs libjvm.so finds it in the home (the JVM loads it by
    path first) instead of a note about the loader's directories."""
    home = "usr/lib/jvm/java-17-openjdk-amd64"
    files = {"usr/bin/java": Symlink(f"/{home}/bin/java"),
             f"{home}/bin/java": prog(interp=LD, needed=("libjli.so", "libc.so.6"), runpath=("$ORIGIN/../lib",)),
             f"{home}/bin/javac": prog(), f"{home}/bin/keytool": prog(), f"{home}/lib/libjli.so": prog(),
             f"{home}/lib/libjava.so": prog(needed=("libjvm.so",)), f"{home}/lib/server/libjvm.so": prog(),
             f"{home}/lib/modules": 5000, f"{home}/lib/src.zip": 3000, f"{home}/lib/ct.sym": 2000,
             f"{home}/jmods/java.base.jmod": 4000, f"{home}/include/jni.h": b"", f"{home}/release": b"",
             "lib64/ld-linux-x86-64.so.2": prog(), f"{MULTI}/libc.so.6": prog(), "app/app.jar": 100}
    cfg = {"Cmd": ["java", "-jar", "/app/app.jar"], "Env": ["PATH=/usr/bin:/bin"]}
    img = to_model(image(layer(files, auto_dirs=True), config={"config": cfg}))
    fs = merge(img)
    closure = entrypoint_closure(img, fs, Contents(img, fs, Path(tempfile.mkdtemp())))
    for path in (f"{home}/bin/java", f"{home}/bin/keytool", f"{home}/lib/modules", f"{home}/lib/server/libjvm.so",
                 f"{home}/lib/libjli.so", "app/app.jar"):
        assert closure.covers(path), path
    for path in (f"{home}/bin/javac", f"{home}/lib/src.zip", f"{home}/lib/ct.sym", f"{home}/jmods/java.base.jmod",
                 f"{home}/include/jni.h"):
        assert not closure.covers(path), path
    assert not any("libjvm.so" in n for n in closure.notes)
