"""Interpreters whose programs static analysis cannot follow (Python, Node.js, Java): for each,
the runtime tree that must be kept whole beside the interpreter binary, and why.

A table (``RUNTIMES``) maps an interpreter's file name to a function that returns the trees
its installation uses, found from where the binary really lives (``prefix`` is the directory
above its ``bin``). Imports only ``slimmer.layers``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from slimmer.layers import MergedFS


@dataclass(frozen=True)
class Runtime:
    """An interpreter kind, how to recognise its binary, and what static analysis misses."""

    name: str
    pattern: re.Pattern
    trees: Callable[[MergedFS, str, str, dict], list[str]]
    blind_spot: str


def _existing(fs: MergedFS, paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        p = posixpath.normpath("/" + p).lstrip("/")
        if p and fs.exists(p) and p not in out:
            out.append(p)
    return out


def _env_dirs(env: dict, name: str) -> list[str]:
    return [d for d in env.get(name, "").split(":") if d.startswith("/")]


def _prefix(path: str) -> str:
    return posixpath.dirname(posixpath.dirname(path))


def _python_trees(fs: MergedFS, called: str, real: str, env: dict) -> list[str]:
    m = re.match(r"python(\d+(?:\.\d+)?)", posixpath.basename(real)) or \
        re.match(r"python(\d+(?:\.\d+)?)", posixpath.basename(called))
    version = m.group(1) if m else "3"
    out = []
    for prefix in dict.fromkeys([_prefix(real), _prefix(called)]):
        if fs.exists(posixpath.join(prefix, "pyvenv.cfg")):
            out.append(prefix)  # a virtual environment: its site-packages are the app's
        for lib in ("lib", "lib64"):
            parent = posixpath.join(prefix, lib)
            for child in fs.children(parent):
                if re.fullmatch(r"python" + re.escape(version) + r"(\.\d+)?", child) or child == "python3":
                    out.append(posixpath.join(parent, child))
            local = posixpath.join(prefix, "local", lib)
            for child in fs.children(local):
                if re.fullmatch(r"python" + re.escape(version) + r"(\.\d+)?", child):
                    out.append(posixpath.join(local, child))
    for child in fs.children("etc"):
        if re.fullmatch(r"python" + re.escape(version) + r"(\.\d+)?", child):
            out.append("etc/" + child)  # Debian's sitecustomize.py lives here
    out += _env_dirs(env, "PYTHONPATH") + ([env["VIRTUAL_ENV"]] if env.get("VIRTUAL_ENV") else [])
    return _existing(fs, out)


def _node_trees(fs: MergedFS, called: str, real: str, env: dict) -> list[str]:
    out = []
    for prefix in dict.fromkeys([_prefix(real), _prefix(called)]):
        out += [posixpath.join(prefix, "lib/node_modules"), posixpath.join(prefix, "lib/node"),
                posixpath.join(prefix, "share/nodejs"), posixpath.join(prefix, "lib/nodejs"),
                posixpath.join(prefix, "include/node")]
    out += ["usr/share/nodejs", "usr/lib/nodejs"] + _env_dirs(env, "NODE_PATH")
    return _existing(fs, out)


def _java_trees(fs: MergedFS, called: str, real: str, env: dict) -> list[str]:
    home = _prefix(real)
    out = [home] if home.count("/") >= 2 else []  # never keep /usr or / whole
    if env.get("JAVA_HOME"):
        out.append(env["JAVA_HOME"])
    out += [d for d in _env_dirs(env, "CLASSPATH") if not d.endswith("*")]
    return _existing(fs, out)


RUNTIMES = (
    Runtime("python", re.compile(r"^(python|pypy)\d*(\.\d+)?m?$"), _python_trees,
            "modules imported by a computed name and native libraries loaded with ctypes or dlopen"),
    Runtime("node", re.compile(r"^(node|nodejs)$"), _node_trees,
            "modules required by a computed name and native addons outside the runtime tree"),
    Runtime("java", re.compile(r"^java$"), _java_trees,
            "classes and JNI libraries loaded by name at run time from outside the Java home"),
)


def runtime_of(called: str, real: str) -> Runtime | None:
    """Return the interpreter kind of a program called as ``called`` whose file is ``real``."""
    for runtime in RUNTIMES:
        if runtime.pattern.match(posixpath.basename(real)) or runtime.pattern.match(posixpath.basename(called)):
            return runtime
    return None
