"""Interpreters (Python, Node.js, Java): how to recognise one, the runtime trees kept whole
beside the interpreter binary, and the parts of those trees left out.

A table (``RUNTIMES``) maps an interpreter's file name to a function that returns the trees
its installation needs whole, found from where the binary really lives (``prefix`` is the
directory above its ``bin``). Python and Node.js need none: their import closures
(``slimmer.rewriter.python``, ``slimmer.rewriter.node``) say which files they load, and only
the virtual environment, ``PYTHONPATH``/``NODE_PATH`` directories the user set are kept
whole. Java keeps its home, less what only a JDK uses to build programs (``JDK_ONLY``: the
compilers and tools in ``bin``, ``jmods``, ``src.zip``, headers, demos, ``ct.sym``). Imports
only ``slimmer.layers``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from slimmer.layers import MergedFS


def _none_left(fs: MergedFS, tree: str) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class Runtime:
    """An interpreter kind, how to recognise its binary, and what static analysis misses."""

    name: str
    pattern: re.Pattern
    trees: Callable[[MergedFS, str, str, dict], list[str]]
    blind_spot: str
    leave_out: Callable[[MergedFS, str], list[tuple[str, str]]] = _none_left

    def left_out(self, fs: MergedFS, tree: str) -> list[tuple[str, str]]:
        """Return (path, why) for the parts of kept ``tree`` only a build needs."""
        return self.leave_out(fs, tree)


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
    out = [p for p in dict.fromkeys([_prefix(real), _prefix(called)]) if fs.exists(posixpath.join(p, "pyvenv.cfg"))]
    out += _env_dirs(env, "PYTHONPATH") + ([env["VIRTUAL_ENV"]] if env.get("VIRTUAL_ENV") else [])
    return _existing(fs, out)


def _node_trees(fs: MergedFS, called: str, real: str, env: dict) -> list[str]:
    return _existing(fs, _env_dirs(env, "NODE_PATH"))


def _java_trees(fs: MergedFS, called: str, real: str, env: dict) -> list[str]:
    home = _prefix(real)
    out = [home] if home.count("/") >= 2 else []  # never keep /usr or / whole
    if env.get("JAVA_HOME"):
        out.append(env["JAVA_HOME"])
    out += [d for d in _env_dirs(env, "CLASSPATH") if not d.endswith("*")]
    return _existing(fs, out)


# The JRE's own programs (what a JRE image ships in bin); every other program of a JDK's bin
# is a development tool (javac, jar, jlink, jshell, javadoc, jdb, ...).
JRE_PROGRAMS = frozenset({"java", "keytool", "rmiregistry", "jfr", "jrunscript"})
JDK_ONLY = (
    ("jmods", "the JDK's module files (jlink input)"),
    ("include", "the JDK's C headers (JNI builds)"),
    ("lib/src.zip", "the JDK's sources"),
    ("demo", "the JDK's demos"), ("sample", "the JDK's samples"),
    ("lib/ct.sym", "javac's symbol table"),
    ("man", "manual pages"),
)


def _java_left_out(fs: MergedFS, home: str) -> list[tuple[str, str]]:
    if not fs.exists(posixpath.join(home, "bin", "java")) and not fs.exists(posixpath.join(home, "release")):
        return []
    out = [(posixpath.join(home, rel), why) for rel, why in JDK_ONLY if fs.exists(posixpath.join(home, rel))]
    for name in sorted(fs.children(posixpath.join(home, "bin"))):
        if name not in JRE_PROGRAMS:
            out.append((posixpath.join(home, "bin", name), "a JDK development tool"))
    return out


RUNTIMES = (
    Runtime("python", re.compile(r"^(python|pypy)\d*(\.\d+)?m?$"), _python_trees,
            "modules imported by a computed name and native libraries loaded with ctypes or dlopen"),
    Runtime("node", re.compile(r"^(node|nodejs)$"), _node_trees,
            "modules required by a computed name and native addons outside the runtime tree"),
    Runtime("java", re.compile(r"^java$"), _java_trees,
            "classes and JNI libraries loaded by name at run time from outside the Java home", _java_left_out),
)


def runtime_of(called: str, real: str) -> Runtime | None:
    """Return the interpreter kind of a program called as ``called`` whose file is ``real``."""
    for runtime in RUNTIMES:
        if runtime.pattern.match(posixpath.basename(real)) or runtime.pattern.match(posixpath.basename(called)):
            return runtime
    return None
