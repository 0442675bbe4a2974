"""The import closure of a Python program, found statically over the image's own ``sys.path``.

``sys.path`` is built as CPython and Debian's ``site`` build it: the script's directory (the
working directory for ``-m`` and ``-c``), ``PYTHONPATH``, the standard library
(``PREFIX/lib/pythonX.Y``, its zip and ``lib-dynload``), then the site directories (Debian's
``/usr/local/lib/pythonX.Y/dist-packages``, ``/usr/lib/python3/dist-packages`` and
``/usr/lib/pythonX.Y/dist-packages``; ``site-packages`` elsewhere; a virtual environment's own;
the user site) with the directories their ``.pth`` files add.

From the program and what the interpreter imports at start-up (``site``, ``sitecustomize``,
the ``encodings`` package), every module is followed through its imports
(``slimmer.rewriter.imports``): packages and their ``__init__``, submodules named by ``from x
import y``, relative imports, namespace packages (every portion), extension modules (kept, and
their ELF needs followed by the closure). A module of a third-party distribution keeps the
whole distribution (its ``RECORD``, or its top-level directories when it has none) with its
``*.dist-info``, and every module in it is followed in turn. ``__pycache__`` files follow their
module. A ``.pth`` file that runs code at start-up is kept when what it imports is kept anyway
or is part of the standard library; one that only hooks a distribution the program never
imports (setuptools' ``distutils-precedence.pth``) goes with it.

Codecs in use, not the whole ``encodings`` package: codecs are modules of ``encodings`` looked
up by name at run time, so the closure keeps the ones start-up looks up (UTF-8, the codeset of
the image's locale, ``PYTHONIOENCODING``) and every codec a followed module names with a
literal (``.decode("latin-1")``, ``encoding="cp932"``: ``slimmer.rewriter.imports.codec_names``),
resolved through the image's own ``encodings/aliases.py`` as ``encodings.search_function``
resolves it; a kept codec's imports are followed as usual (a CJK codec pulls its extension
module). The rest is left out, and a blind spot says how much and how to keep it (a program
that decodes with a charset it reads at run time needs ``--keep`` or ``--probe``).

Frozen modules are not read from files: CPython freezes the import system into the interpreter
(``importlib._bootstrap`` since 3.3, ``importlib._bootstrap_external`` since 3.5, ``zipimport``
since 3.8: always used), and from 3.11 on the modules of start-up and of ``-m`` (``abc``,
``codecs``, ``io``, ``_collections_abc``, ``_sitebuiltins``, ``genericpath``, ``ntpath``,
``posixpath``, ``os``, ``site``, ``stat``, ``importlib.util``, ``importlib.machinery``,
``runpy``: Python/frozen.c), whose code objects name ``<frozen os>``, so not even a traceback
reads the sources. Their imports are followed, their files not kept, unless the interpreter
would not use the frozen stdlib modules: ``-X frozen_modules=off`` among its options,
``PYTHON_FROZEN_MODULES=off`` in the image's Env (3.13+), a build-tree interpreter
(``pybuilddir.txt`` beside it) or a debug build (``python3.11d``). ``os.py`` stays as the
landmark by which the interpreter finds its prefix.

Imports the rewriter's lookup only; the closure passes itself in as ``walker``.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import posixpath
import re
from dataclasses import dataclass, field

from slimmer.rewriter.imports import LAZY, MAIN, OTHER_OS, codec_modules, codec_names, python_imports
from slimmer.rewriter.lookup import resolve

START_UP = ("site", "sitecustomize", "usercustomize", "encodings", "codecs", "io", "abc", "os", "stat",
            "posixpath", "genericpath", "_collections_abc", "_sitebuiltins")
# Modules frozen into the interpreter (Python/frozen.c; Tools/build/freeze_modules.py), from
# the version on: the import system's are always used, the standard library's only while
# frozen modules are on (the default of an installed, non-debug build).
FROZEN_BOOTSTRAP = ((3, 3, "importlib._bootstrap"), (3, 5, "importlib._bootstrap_external"), (3, 8, "zipimport"))
FROZEN_STDLIB = (3, 11, frozenset("""
abc codecs io _collections_abc _sitebuiltins genericpath ntpath posixpath os site stat
importlib.util importlib.machinery runpy
""".split()))  # noqa: SIM905 -- the names read as a table
# Standard-library modules for developing, testing and interactive use: an import of one in a
# function body (``def _test(): import doctest``, site's ``register_readline``) is not
# followed, since nothing a program runs calls those functions. An import at module level is.
DEV_ONLY = frozenset("""
doctest unittest test pydoc pydoc_data lib2to3 idlelib tkinter turtle turtledemo ensurepip
distutils pdb profile cProfile pstats timeit trace tabnanny pyclbr py_compile compileall venv
zipapp readline rlcompleter code codeop _testcapi _testinternalcapi _testbuffer _testmultiphase
_xxtestfuzz xxlimited
""".split())  # noqa: SIM905 -- the names read as a table
# Modules of the standard library that import others by computed names (or from C): the names
# they load, as globs over the standard library's directories.
COMPANIONS = {
    "sysconfig": ("_sysconfigdata_*",),  # __import__(f"_sysconfigdata_{abiflags}_{platform}_{multiarch}")
    "datetime": ("_strptime",), "time": ("_strptime",),  # imported by strptime() from C
    "dbm": ("dbm.gnu", "dbm.ndbm", "dbm.dumb"),
    "pickle": ("copyreg", "_compat_pickle"),
    # the import system's own lazy imports, run whenever a package's resources are read
    "importlib.resources": ("importlib.readers", "importlib.resources.readers"),
    "importlib.metadata": ("importlib.readers",),
    "_socket": ("encodings.idna",),  # encodes a host name that is not ASCII with the idna codec, from C
}
_EXT = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\.(?:cpython-\d+[\w-]*|abi3|pypy[\w-]*))?\.so$")


@dataclass
class _Dist:
    """An installed distribution: its metadata directory, the files it lists and its top-level
    names."""

    name: str
    site: str
    meta: str
    files: list[str] = field(default_factory=list)
    tops: set[str] = field(default_factory=set)


class PythonClosure:
    """Follows the imports of one interpreter's programs; keeps what they reach on ``walker``."""

    def __init__(self, walker, called: str, real: str):
        self.w = walker
        self.fs = walker.fs
        self.real = real
        m = re.match(r"(?:python|pypy)(\d+\.\d+)", posixpath.basename(real)) or \
            re.match(r"(?:python|pypy)(\d+\.\d+)", posixpath.basename(called))
        self.version = m.group(1) if m else self._guess_version(real)
        self.prefixes = list(dict.fromkeys([_prefix(real), _prefix(called)]))
        self.stdlib: list[str] = []
        self.site: list[str] = []
        self.modules: set[str] = set()  # dotted names done
        self.files: set[str] = set()  # module files followed
        self.dists: dict[str, _Dist] | None = None
        self.kept_dists: set[str] = set()
        self.pth: list[tuple[str, str]] = []  # (pth path, code line)
        self.computed: list[str] = []
        self.path: list[str] = []
        self.frozen_off = False  # a program runs the interpreter with -X frozen_modules=off
        self.frozen_left: set[str] = set()  # frozen modules whose files were not kept
        self.codecs_done: set[str] = set()
        self.codec_computers: list[str] = []  # files that look codecs up by computed names
        self._alias_table: dict[str, str] | None = None
        self._paths()

    # -- sys.path ----------------------------------------------------------------------------

    def _guess_version(self, real: str) -> str:
        for prefix in (_prefix(real),):
            for child in sorted(self.fs.children(posixpath.join(prefix, "lib")), reverse=True):
                m = re.fullmatch(r"python(\d+\.\d+)", child)
                if m:
                    return m.group(1)
        return "3"

    def _dir(self, path: str) -> str | None:
        found = resolve(self.fs, "/" + path)
        return found.path if found is not None and found.is_dir else None

    def _paths(self) -> None:
        v, env = self.version, self.w.env
        self.pythonpath = [p.lstrip("/") for p in env.get("PYTHONPATH", "").split(":") if p.startswith("/")]
        venvs = [p for p in self.prefixes if self.fs.exists(posixpath.join(p, "pyvenv.cfg"))]
        bases = [p for p in self.prefixes if p not in venvs] or self.prefixes
        for prefix in bases:
            for lib in ("lib", "lib64"):
                std = posixpath.join(prefix, lib, f"python{v}")
                self.stdlib += [posixpath.join(prefix, lib, f"python{v.replace('.', '')}.zip"), std,
                                posixpath.join(std, "lib-dynload")]
        site: list[str] = []
        for venv in venvs:
            site.append(posixpath.join(venv, "lib", f"python{v}", "site-packages"))
        system = not venvs or any("include-system-site-packages = true" in self.w.contents.text(
            posixpath.join(p, "pyvenv.cfg")).replace("\t", " ").lower() for p in venvs)
        if system:
            home = env.get("HOME", "/root").lstrip("/")
            site.append(posixpath.join(home, ".local", "lib", f"python{v}", "site-packages"))
            for prefix in dict.fromkeys(["usr/local"] + bases):
                for lib in ("lib", "lib64"):
                    site += [posixpath.join(prefix, lib, f"python{v}", "site-packages"),
                             posixpath.join(prefix, lib, f"python{v}", "dist-packages")]
                site.append(posixpath.join(prefix, "lib", "python3", "dist-packages"))
        self.site = [d for d in dict.fromkeys(self._dir(s) for s in site) if d]
        self.stdlib = [d for d in dict.fromkeys(self._dir(s) for s in self.stdlib) if d]
        for d in list(self.site):
            for name in sorted(self.fs.children(d)):
                if name.endswith(".pth"):
                    self._read_pth(posixpath.join(d, name), d)

    def _read_pth(self, path: str, site: str) -> None:
        """A .pth line names a directory to add, or (``import ...``) code run at start-up."""
        for line in self.w.contents.text(path).splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(("import ", "import\t")):
                self.pth.append((path, line))
                continue
            d = self._dir(posixpath.join(site, line) if not line.startswith("/") else line)
            if d and d not in self.site:
                self.site.append(d)
                self.w.keep(resolve(self.fs, "/" + path), f"a .pth file of {site} adding /{d} to sys.path")

    def search_path(self, first: str | None) -> list[str]:
        """Return sys.path for a program whose first entry is ``first``."""
        head = [first] if first is not None else []
        return list(dict.fromkeys(head + self.pythonpath + self.stdlib + self.site))

    def options(self, options) -> None:
        """Take note of the interpreter options a program runs it with (``-X frozen_modules``)."""
        if frozen_modules_option(options) is False:
            self.frozen_off = True

    def frozen(self) -> frozenset[str]:
        """Return the modules the interpreter runs frozen, so never reads from files."""
        m = re.fullmatch(r"(\d+)\.(\d+)", self.version)
        if m is None or posixpath.basename(self.real).startswith("pypy"):
            return frozenset()  # the tables are CPython's
        version = (int(m.group(1)), int(m.group(2)))
        names = {name for major, minor, name in FROZEN_BOOTSTRAP if version >= (major, minor)}
        major, minor, stdlib = FROZEN_STDLIB
        if version >= (major, minor) and self._frozen_stdlib(version):
            names |= stdlib
        return frozenset(names)

    def _frozen_stdlib(self, version: tuple[int, int]) -> bool:
        """Return whether the interpreter uses its frozen standard-library modules: the default
        of an installed build, not of a debug build or one run from its build tree; then
        ``PYTHON_FROZEN_MODULES`` (3.13+), then ``-X frozen_modules``."""
        base = posixpath.basename(self.real)
        use = not (re.fullmatch(r"python\d+\.\d+d", base) or
                   self.fs.exists(posixpath.join(posixpath.dirname(self.real), "pybuilddir.txt")))
        env = self.w.env.get("PYTHON_FROZEN_MODULES")
        if version >= (3, 13) and env in ("on", "off"):
            use = env == "on"
        return use and not self.frozen_off

    # -- following ---------------------------------------------------------------------------

    def run_script(self, script: str) -> None:
        """Follow a script file (its directory first on sys.path)."""
        self._start(posixpath.dirname(script))
        self.follow_file(script, "__main__", False, f"the Python program /{script}")

    def run_module(self, name: str) -> None:
        """Follow ``python -m name`` (the working directory first on sys.path)."""
        self._start(self.w.cwd)
        self.module("runpy", f"runs the module of python -m {name}")
        self.module(name, f"the module run by python -m {name}")
        self.module(name + ".__main__", f"the module run by python -m {name}")

    def run_code(self, code: str) -> None:
        """Follow ``python -c code``."""
        self._start(self.w.cwd)
        source = code.encode("utf-8", "surrogateescape")
        found, computed = python_imports(source)
        self._imports(found, "", False, "the code of python -c", computed)
        self._codecs(codec_names(source), "the code of python -c")

    def _start(self, first: str) -> None:
        self.path = self.search_path(first)
        for d in self.stdlib:
            if d.endswith("/lib-dynload"):
                # the interpreter finds its exec_prefix by this directory (getpath's landmark)
                self.w.keep(resolve(self.fs, "/" + d), "the landmark of the interpreter's exec_prefix")
            elif not d.endswith(".zip"):
                hit = resolve(self.fs, "/" + posixpath.join(d, "os.py"))
                if hit is not None:  # and its prefix by this file, whether os is frozen or not
                    self.w.keep(hit, "the landmark of the interpreter's prefix (lib/pythonX.Y/os.py)")
        self.module("encodings", "imported by the interpreter at start-up")  # first, as the interpreter does
        for name, why in self._start_up_codecs():
            self._codec(name, why)
        for name in START_UP:
            self.module(name, "imported by the interpreter at start-up")

    def _start_up_codecs(self) -> list[tuple[str, str]]:
        """Return the codecs start-up looks up: UTF-8 (the file system encoding of the C and
        UTF-8 locales and of UTF-8 mode), the codeset of the image's locale and the encoding
        of PYTHONIOENCODING."""
        env = self.w.env
        out = [("utf-8", "the UTF-8 codec, looked up at start-up")]
        var = next((k for k in ("LC_ALL", "LC_CTYPE", "LANG") if env.get(k)), None)
        if var is not None:
            codeset = env[var].partition(".")[2].partition("@")[0]
            if codeset:
                out.append((codeset, f"the codec of the image's locale ({var}={env[var]}), looked up at start-up"))
        stdio = env.get("PYTHONIOENCODING", "").partition(":")[0]
        if stdio:
            out.append((stdio, f"the codec of PYTHONIOENCODING={env['PYTHONIOENCODING']}"))
        return out

    def _codecs(self, named: tuple, where: str) -> None:
        """Keep the codecs a source names with literals; note one that computes names."""
        names, computes = named
        if computes and where not in self.codec_computers:
            self.codec_computers.append(where)
        for name in names:
            self._codec(name, f"the codec {name!r} named by {where}")

    def _codec(self, name: str, why: str) -> None:
        """Follow the module of ``encodings`` that a look-up of codec ``name`` imports."""
        if name in self.codecs_done:
            return
        self.codecs_done.add(name)
        for module in codec_modules(name, self._aliases()):
            if self.module(f"encodings.{module}", why):
                return

    def _aliases(self) -> dict[str, str]:
        """Return the alias table of the image's ``encodings`` package."""
        if self._alias_table is None:
            self._alias_table = {}
            for d in self._package_dirs("encodings"):
                hit = resolve(self.fs, "/" + posixpath.join(d, "aliases.py"))
                if hit is not None and hit.is_file:
                    self._alias_table = self.w.contents.aliases(hit.path)
                    break
        return self._alias_table

    def finish(self) -> None:
        """Decide the .pth files that run code, now that the program's own imports are known."""
        for path, line in self.pth:
            found, _ = python_imports(line.encode("utf-8", "surrogateescape"))
            tops = {m.split(".")[0] for _, m, _n, _w in found if m}
            dynamic = re.findall(r"__import__\(\s*['\"]([\w.]+)['\"]", line)
            tops |= {d.split(".")[0] for d in dynamic}
            foreign = [t for t in tops if self._top_dist(t) is not None and self._top_dist(t) not in self.kept_dists]
            if foreign:
                self.w.note(f"/{path} was left out: it runs {', '.join(sorted(foreign))} at start-up, a distribution "
                            f"the program does not import")
                continue
            self.w.keep(resolve(self.fs, "/" + path), "a .pth file: site runs its code at start-up")
            for top in sorted(tops):
                self.module(top, f"imported by /{path} at start-up")
        self._say_frozen()
        self._say_codecs_left_out()

    def _say_frozen(self) -> None:
        if not self.frozen_left:
            return
        names = sorted(self.frozen_left)
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        stdlib = FROZEN_STDLIB[2] & self.frozen_left
        self.w.note(f"python: {shown} are frozen into /{self.real}, which runs their frozen code and never reads "
                    f"their files: they are not kept" +
                    (" (with -X frozen_modules=off they would be)" if stdlib else ""))

    def _say_codecs_left_out(self) -> None:
        """Say which codec modules of the standard library's ``encodings`` were left out, with
        the extension modules only they import, and how to keep them."""
        for d in self._package_dirs("encodings"):
            if not self._is_stdlib(d):
                continue
            modules, size, extensions = 0, 0, {}
            for path, version in self.w.tree_files(d):
                if self.w.covers(path):
                    continue
                size += version.entry.size
                if not path.endswith(".py") or "/__pycache__/" in path:
                    continue
                modules += 1
                found, _ = self.w.contents.python(path)
                for level, module, _names, _when in found:
                    spot = self._find(module.split(".")[0], self.stdlib) if not level and module else None
                    if spot and spot[0] == "module" and spot[1][0].endswith(".so") and \
                            not self.w.covers(spot[1][0]) and spot[1][0] not in extensions:
                        hit = resolve(self.fs, "/" + spot[1][0])
                        extensions[spot[1][0]] = hit.version.entry.size if hit is not None and hit.version else 0
            if not modules:
                continue
            size += sum(extensions.values())
            keeps = [f"/{d}/**"] + _globs(sorted(extensions))
            also = f" and the {len(extensions)} extension modules only they import" if extensions else ""
            users = ""
            if self.codec_computers:
                shown = ", ".join(self.codec_computers[:3]) + (
                    f" and {len(self.codec_computers) - 3} more" if len(self.codec_computers) > 3 else "")
                users = f"; {shown} look codecs up by names computed at run time"
            self.w.blind(f"python: {modules} codec modules of /{d}{also} ({size:,} bytes with their byte code) were "
                         f"left out: no module of the program names them with a literal{users}; add "
                         + " ".join(f"--keep '{k}'" for k in keeps) + " for them, or use --probe")

    def module(self, name: str, why: str) -> bool:
        """Follow module ``name`` (dotted, absolute) and its parents; return whether found."""
        if name in self.modules:
            return True
        parts = name.split(".")
        dirs = self.path
        for i in range(len(parts)):
            dotted = ".".join(parts[:i + 1])
            spot = self._find(parts[i], dirs)
            if spot is None:
                return False
            kind, where = spot
            first_time = dotted not in self.modules
            self.modules.add(dotted)
            if first_time and dotted in COMPANIONS:
                self._companions(dotted)
            if kind == "package":
                init = posixpath.join(where[0], "__init__.py")
                if first_time:
                    self._keep_module(init, dotted, True, why)
                dirs = where
            elif kind == "namespace":
                if first_time:
                    for d in where:
                        self.w.keep(resolve(self.fs, "/" + d), f"a portion of the namespace package {dotted}")
                dirs = where
            else:
                if first_time:
                    self._keep_module(where[0], dotted, False, why)
                if i < len(parts) - 1:
                    return True  # os.path: a module that sets its own attribute
        return True

    def _companions(self, dotted: str) -> None:
        for pattern in COMPANIONS[dotted]:
            names = [pattern]
            if "*" in pattern:
                names = sorted({c.rsplit(".", 2)[0] if c.endswith(".so") else c[:-3] for d in self.stdlib
                                for c in self.w.children(d) if fnmatch.fnmatchcase(c, pattern + ".py")})
            for name in names:
                self.module(name, f"imported by {dotted} by a computed name")

    def _find(self, name: str, dirs: list[str]) -> tuple[str, list[str]] | None:
        """Return how ``name`` is found in ``dirs`` as the path finder does: a regular package
        or module in the first directory that has one, else a namespace package of every
        directory holding a ``name`` directory."""
        portions = []
        for d in dirs:
            children = self.w.children(d)
            if not children:
                continue
            if name in children:
                sub = posixpath.join(d, name)
                if self.fs.exists(posixpath.join(sub, "__init__.py")) or "__init__.py" in self.w.children(sub):
                    return "package", [sub]
            for child in children:
                if child == name + ".py":
                    return "module", [posixpath.join(d, child)]
                if child.startswith(name + ".") and child.endswith(".so"):
                    m = _EXT.match(child)
                    if m and m.group("name") == name:
                        return "module", [posixpath.join(d, child)]
            if name in children and self._dir(posixpath.join(d, name)):
                portions.append(posixpath.join(d, name))
        return ("namespace", portions) if portions else None

    def _package_dirs(self, name: str) -> list[str]:
        spot = self._find(name, self.path)
        return spot[1] if spot and spot[0] in ("package", "namespace") else []

    def _keep_module(self, path: str, dotted: str, is_package: bool, why: str) -> None:
        hit = resolve(self.fs, "/" + path)
        if hit is None:
            return
        if dotted in self.frozen() and hit.path.endswith(".py") and self._is_stdlib(hit.path):
            self.frozen_left.add(dotted)  # its imports are followed, its files not kept
            self.follow_file(hit.path, dotted, is_package, "")
            return
        dist = self._dist_of(hit.path)
        if dist is not None:
            self._keep_dist(dist, dotted)
        else:
            self.w.keep(hit, why or f"module {dotted}")
        if hit.path.endswith(".so"):
            self.w.look(hit.path)
            return
        self._pycache(hit.path)
        self.follow_file(hit.path, dotted, is_package, "")

    def _pycache(self, path: str) -> None:
        d, base = posixpath.split(path)
        stem = base[:-3]
        cache = posixpath.join(d, "__pycache__")
        for child in self.w.children(cache):
            if child.startswith(stem + ".") and child.endswith(".pyc") and child[len(stem) + 1:].startswith(
                    ("cpython-", "pypy")):
                hit = resolve(self.fs, "/" + posixpath.join(cache, child))
                if hit is not None:
                    self.w.keep(hit, f"the byte code of /{path}")

    def follow_file(self, path: str, dotted: str, is_package: bool, why: str) -> None:
        """Follow the imports of the Python file ``path`` (module ``dotted``)."""
        if path in self.files:
            return
        self.files.add(path)
        found, computed = self.w.contents.python(path)
        self._imports(found, dotted, is_package, f"/{path}", computed, path)
        self._codecs(self.w.contents.codecs(path), f"/{path}")

    def _imports(self, found, dotted: str, is_package: bool, where: str, computed: bool, path: str = "") -> None:
        """Follow imports ``found`` in module ``dotted`` (of file ``path``). An import in a
        function body is not followed when the function is the standard library's own and
        imports more of it (``shutil`` importing ``zipfile`` when asked to unpack one): such
        lazy imports serve calls the program may never make; the program's own and third-party
        lazy imports are followed, but never of the DEV_ONLY modules."""
        if computed and where not in self.computed:
            self.computed.append(where)
        package = dotted if is_package else dotted.rpartition(".")[0]
        main = dotted == "__main__" or dotted.endswith(".__main__") or where == "the code of python -c"
        for level, module, names, when in found:
            if when == MAIN and not main:
                continue  # `if __name__ == "__main__":` of a module that is imported
            if when == OTHER_OS:
                continue  # `if sys.platform == "win32":`: the image runs Linux
            if level:
                base = package.split(".") if package else []
                if level - 1 > len(base) or not package:
                    continue
                anchor = ".".join(base[:len(base) - (level - 1)])
                target = f"{anchor}.{module}" if module else anchor
            else:
                target = module
            if not target:
                continue
            if when == LAZY and self._in_stdlib(target.split(".")[0]) and (
                    target.split(".")[0] in DEV_ONLY or (path and self._is_stdlib(path))):
                continue
            why = f"imported by {where}" if where else ""
            if not self.module(target, why):
                continue
            for name in names:
                if name != "*":
                    self.module(f"{target}.{name}", why)

    # -- distributions -----------------------------------------------------------------------

    def _index(self) -> dict[str, _Dist]:
        """Return the installed distributions of the site directories, by metadata dir."""
        if self.dists is not None:
            return self.dists
        self.dists = {}
        self.by_file: dict[str, str] = {}
        self.by_top: dict[tuple[str, str], str] = {}
        for site in self.site:
            for child in sorted(self.w.children(site)):
                if not child.endswith((".dist-info", ".egg-info")):
                    continue
                meta = posixpath.join(site, child)
                dist = _Dist(child.split("-")[0], site, meta)
                record = self.w.contents.text(posixpath.join(meta, "RECORD")) if child.endswith(".dist-info") else ""
                if not record and child.endswith(".egg-info"):
                    record = "\n".join(self.w.contents.text(posixpath.join(meta, "installed-files.txt")).splitlines())
                for row in csv.reader(io.StringIO(record)):
                    if not row or not row[0]:
                        continue
                    rel = posixpath.normpath(posixpath.join(site, row[0])) if not row[0].startswith("/") else \
                        row[0].lstrip("/")
                    dist.files.append(rel)
                    if rel.startswith(site + "/"):
                        top = rel[len(site) + 1:].split("/")[0]
                        top = top.removesuffix(".py")
                        m = _EXT.match(top)
                        dist.tops.add(m.group("name") if m else top)
                for line in self.w.contents.text(posixpath.join(meta, "top_level.txt")).splitlines():
                    if line.strip():
                        dist.tops.add(line.strip().split("/")[0])
                dist.tops.discard(child)
                dist.tops.discard("__pycache__")
                self.dists[meta] = dist
                for f in dist.files:
                    self.by_file[f] = meta
                for top in dist.tops:
                    self.by_top.setdefault((site, top), meta)
        return self.dists

    def _dist_of(self, path: str) -> _Dist | None:
        """Return the distribution a file of a site directory belongs to, if any."""
        site = next((s for s in self.site if path.startswith(s + "/")), None)
        if site is None:
            return None
        dists = self._index()
        meta = self.by_file.get(path)
        if meta is None:
            top = path[len(site) + 1:].split("/")[0]
            top = top.removesuffix(".py")
            m = _EXT.match(top)
            meta = self.by_top.get((site, m.group("name") if m else top))
        return dists.get(meta) if meta else None

    def _top_dist(self, top: str) -> str | None:
        self._index()
        for site in self.site:
            meta = self.by_top.get((site, top))
            if meta:
                return meta
        return None

    def _keep_dist(self, dist: _Dist, dotted: str) -> None:
        """Keep a distribution whole (packages read their data files by computed paths);
        its modules are followed as they are imported."""
        if dist.meta in self.kept_dists:
            return
        self.kept_dists.add(dist.meta)
        why = f"the distribution {dist.name} (imported as {dotted.split('.')[0]})"
        self.w.keep_tree(dist.meta, why)
        tops = set()
        for top in sorted(dist.tops):
            for child in self.w.children(dist.site):
                if child == top or child == top + ".py" or (child.startswith(top + ".") and child.endswith(".so")):
                    tops.add(posixpath.join(dist.site, child))
        files = [f for f in dist.files if not any(f == t or f.startswith(t + "/") for t in tops)]
        for top in sorted(tops):
            self.w.keep_tree(top, why)
        for f in files:
            hit = resolve(self.fs, "/" + f)
            if hit is not None and hit.is_file:
                self.w.keep(hit, why)

    def _in_stdlib(self, top: str) -> bool:
        spot = self._find(top, self.path)
        return spot is not None and all(self._is_stdlib(p) for p in spot[1])

    def _is_stdlib(self, path: str) -> bool:
        return any(path == s or path.startswith(s + "/") for s in self.stdlib)


def frozen_modules_option(options) -> bool | None:
    """Return what ``-X frozen_modules`` among interpreter ``options`` says: True (on), False
    (off) or None (not given; the last one given counts, a bare one means on)."""
    setting = None
    items = list(options)
    for i, opt in enumerate(items):
        value = items[i + 1] if opt == "-X" and i + 1 < len(items) else opt[2:] if opt.startswith("-X") else None
        if value is not None and (value == "frozen_modules" or value.startswith("frozen_modules=")):
            setting = value.partition("=")[2] != "off"
    return setting


def _globs(paths: list[str]) -> list[str]:
    """Return --keep globs for extension module files: one per directory for the codecs' own
    (``_codecs_jp``, ``_multibytecodec``), one per file for others."""
    out: list[str] = []
    for d in dict.fromkeys(posixpath.dirname(p) for p in paths):
        names = [posixpath.basename(p) for p in paths if posixpath.dirname(p) == d]
        if any(fnmatch.fnmatchcase(n, "_*codec*") for n in names):
            out.append(f"/{d}/_*codec*")
        out += [f"/{d}/{n}" for n in names if not fnmatch.fnmatchcase(n, "_*codec*")]
    return out


def _prefix(path: str) -> str:
    return posixpath.dirname(posixpath.dirname(path))
