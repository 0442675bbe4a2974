"""The require/import closure of a Node.js program, with Node's module resolution
(https://nodejs.org/api/modules.html#all-together and packages.html):

- a relative or absolute specifier is a file (as is, ``.js``, ``.json``, ``.node``, ``.cjs``,
  ``.mjs``) or a directory (its package.json ``main``, then ``index.*``);
- a bare specifier names a package (``@scope/name`` and a subpath) found in the
  ``node_modules`` directories from the requiring file's directory up to the root, then in
  ``NODE_PATH``, ``$HOME/.node_modules``, ``$HOME/.node_libraries``, ``PREFIX/lib/node`` and
  Debian's global directories (``/usr/share/nodejs``, ``/usr/lib/nodejs``,
  ``/usr/lib/ARCH/nodejs``); its package.json ``exports`` map (subpaths, ``*`` patterns and
  the ``node``, ``require``, ``import``, ``module-sync`` and ``default`` conditions: each that may
  apply is taken) picks the file, else ``main`` and index files; ``imports`` maps ``#name``
  specifiers;
- built-in modules (``fs``, ``node:fs``) are part of the binary.

A package reached this way is kept whole (packages read their own files by computed paths);
the files reached are followed through their specifiers (``slimmer.rewriter.imports``). A
package one of whose reached files requires by a computed name has its declared
``dependencies`` kept too, since which of them it loads cannot be seen. ``.node`` addons are
ELF objects: the closure follows their libraries. What no reached file names (npm, node-gyp,
devDependencies, caches) is left out. Imports the rewriter's lookup only.
"""

from __future__ import annotations

import posixpath

from slimmer.rewriter.lookup import resolve

BUILTINS = frozenset((
    "assert", "async_hooks", "buffer", "child_process", "cluster", "console", "constants", "crypto", "dgram",
    "diagnostics_channel", "dns", "domain", "events", "fs", "http", "http2", "https", "inspector", "module", "net",
    "os", "path", "perf_hooks", "process", "punycode", "querystring", "readline", "repl", "stream",
    "string_decoder", "sys", "timers", "tls", "trace_events", "tty", "url", "util", "v8", "vm", "wasi",
    "worker_threads", "zlib", "test",
))
EXTENSIONS = ("", ".js", ".json", ".node", ".cjs", ".mjs")
INDEXES = ("index.js", "index.json", "index.node", "index.cjs", "index.mjs")
CONDITIONS = ("node", "require", "import", "module-sync", "default", "node-addons")
# Debian builds nodejs with some built-in modules left outside the binary
# (NODE_SHARED_BUILTIN_*_PATH): libnode loads these files at start-up.
SHARED_BUILTINS = ("usr/share/nodejs/cjs-module-lexer/lexer.js", "usr/share/nodejs/cjs-module-lexer/dist/lexer.js",
                   "usr/share/nodejs/undici/undici-fetch.js", "usr/share/nodejs/acorn/dist/acorn.js",
                   "usr/share/nodejs/acorn-walk/dist/walk.js")
GLOBAL_DIRS = ("usr/share/nodejs", "usr/lib/nodejs", "usr/lib/x86_64-linux-gnu/nodejs",
               "usr/lib/aarch64-linux-gnu/nodejs", "usr/local/lib/node_modules")


class NodeClosure:
    """Follows the specifiers of one Node.js program; keeps what they reach on ``walker``."""

    def __init__(self, walker, called: str, real: str):
        self.w = walker
        self.fs = walker.fs
        env = walker.env
        home = env.get("HOME", "/root").lstrip("/")
        prefix = posixpath.dirname(posixpath.dirname(real))
        self.global_dirs = [d.lstrip("/") for d in env.get("NODE_PATH", "").split(":") if d.startswith("/")]
        self.global_dirs += [posixpath.join(home, ".node_modules"), posixpath.join(home, ".node_libraries"),
                             posixpath.join(prefix, "lib", "node")] + list(GLOBAL_DIRS)
        self.files: set[str] = set()
        self.packages: set[str] = set()
        self.deps_done: set[str] = set()
        self.computed: list[str] = []
        self.queue: list[str] = []

    def run_script(self, path: str) -> None:
        """Follow the program file ``path`` and all it reaches."""
        for builtin in SHARED_BUILTINS:
            hit = resolve(self.fs, "/" + builtin)
            if hit is not None and hit.is_file:
                self.w.keep(hit, "a built-in module of Debian's nodejs, loaded by libnode at start-up")
        self.file(path, f"the Node.js program /{path}")
        self.drain()

    def drain(self) -> None:
        while self.queue:
            path = self.queue.pop()
            self._follow(path)

    def file(self, path: str, why: str) -> None:
        if path in self.files:
            return
        self.files.add(path)
        hit = resolve(self.fs, "/" + path)
        if hit is None:
            return
        package = self._package_of(hit.path)
        if package is not None:
            self.keep_package(package, why)
        else:
            self.w.keep(hit, why)
        if hit.path.endswith(".node"):
            self.w.look(hit.path)
        elif hit.path.endswith((".js", ".cjs", ".mjs")) or "." not in posixpath.basename(hit.path):
            self.queue.append(hit.path)

    def keep_package(self, package: str, why: str) -> None:
        if package in self.packages:
            return
        self.packages.add(package)
        self.w.keep_tree(package, f"the npm package {_name_of(package)} ({why})")

    def _follow(self, path: str) -> None:
        specifiers, computed = self.w.contents.javascript(path)
        package = self._package_of(path)
        if computed:
            if f"/{path}" not in self.computed:
                self.computed.append(f"/{path}")
            if package is not None:
                self._dependencies(package)
        for spec in specifiers:
            target = self.resolve(spec, posixpath.dirname(path))
            if target is None:
                if not _builtin(spec) and not spec.startswith("#"):
                    self.w.note(f"/{path} requires {spec!r}, which is not in the image")
                continue
            if target:
                self.file(target, f"required by /{path}")

    def _dependencies(self, package: str) -> None:
        """Keep the declared dependencies of ``package`` (it requires by computed names)."""
        if package in self.deps_done:
            return
        self.deps_done.add(package)
        fields = self.w.contents.package(posixpath.join(package, "package.json"))
        deps: dict = {}
        for key in ("dependencies", "optionalDependencies"):
            if isinstance(fields.get(key), dict):
                deps.update(fields[key])
        for name in sorted(deps):
            found = self._find_package(name, package)
            if found is not None:
                self.keep_package(found, f"a dependency of {_name_of(package)}, which requires by computed names")
                main = self._entry(found, ".")
                for target in main:
                    self.file(target, f"the entry point of {name}")

    # -- resolution --------------------------------------------------------------------------

    def resolve(self, spec: str, base: str) -> str | None:
        """Return the model path ``spec`` resolves to from directory ``base``; "" for a
        built-in module; None when it is not found."""
        if _builtin(spec):
            return ""
        if spec.startswith("#"):
            return self._imports(spec, base)
        if spec.startswith(("./", "../", "/")) or spec in (".", ".."):
            target = posixpath.normpath(posixpath.join("/" + base, spec)).lstrip("/")
            return self._as_file(target) or self._as_directory(target)
        name, sub = _split(spec)
        package = self._find_package(name, base)
        if package is None:
            return None
        targets = self._entry(package, "." + sub if sub else ".")
        for t in targets[1:]:
            self.file(t, f"another condition of {spec!r}")
        return targets[0] if targets else (self._as_file(posixpath.join(package, sub.lstrip("/"))) if sub else None) \
            or package

    def _find_package(self, name: str, base: str) -> str | None:
        d = base
        while True:
            if posixpath.basename(d) != "node_modules":
                candidate = posixpath.join(d, "node_modules", name) if d else posixpath.join("node_modules", name)
                hit = self._dir(candidate)
                if hit:
                    return hit
            if not d:
                break
            d = posixpath.dirname(d)
        for g in self.global_dirs:
            hit = self._dir(posixpath.join(g, name))
            if hit:
                return hit
        return None

    def _entry(self, package: str, subpath: str) -> list[str]:
        """Return the files ``subpath`` of ``package`` resolves to (several when conditions
        differ), through ``exports``, else ``main`` or an index file."""
        fields = self.w.contents.package(posixpath.join(package, "package.json"))
        exports = fields.get("exports")
        if exports is not None:
            out = []
            for target in _exports_targets(exports, subpath):
                path = posixpath.normpath(posixpath.join(package, target)).lstrip("/")
                hit = resolve(self.fs, "/" + path)
                if hit is not None and hit.is_file:
                    out.append(hit.path)
            if out:
                return list(dict.fromkeys(out))
        if subpath == ".":
            found = self._as_directory(package)
            return [found] if found else []
        target = posixpath.join(package, subpath[2:])
        found = self._as_file(target) or self._as_directory(target)
        return [found] if found else []

    def _imports(self, spec: str, base: str) -> str | None:
        package = self._package_of(base + "/x") or self._app_package(base)
        if package is None:
            return None
        fields = self.w.contents.package(posixpath.join(package, "package.json"))
        mapping = fields.get("imports")
        if not isinstance(mapping, dict):
            return None
        targets = _exports_targets(mapping, spec)
        for target in targets:
            if target.startswith("./"):
                path = posixpath.normpath(posixpath.join(package, target)).lstrip("/")
                found = self._as_file(path)
                if found:
                    return found
            else:
                return self.resolve(target, package)
        return None

    def _app_package(self, base: str) -> str | None:
        d = base
        while d:
            if self.fs.exists(posixpath.join(d, "package.json")):
                return d
            d = posixpath.dirname(d)
        return None

    def _as_file(self, path: str) -> str | None:
        for ext in EXTENSIONS:
            hit = resolve(self.fs, "/" + path + ext)
            if hit is not None and hit.is_file:
                return hit.path
        return None

    def _as_directory(self, path: str) -> str | None:
        d = self._dir(path)
        if d is None:
            return None
        main = self.w.contents.package(posixpath.join(d, "package.json")).get("main")
        if isinstance(main, str) and main:
            target = posixpath.normpath(posixpath.join(d, main)).lstrip("/")
            found = self._as_file(target) or self._index(target)
            if found:
                return found
        return self._index(d)

    def _index(self, d: str) -> str | None:
        for name in INDEXES:
            hit = resolve(self.fs, "/" + posixpath.join(d, name))
            if hit is not None and hit.is_file:
                return hit.path
        return None

    def _dir(self, path: str) -> str | None:
        hit = resolve(self.fs, "/" + path)
        return hit.path if hit is not None and hit.is_dir else None

    def _package_of(self, path: str) -> str | None:
        """Return the package directory (``.../node_modules/[@scope/]name`` or a global one)
        that holds ``path``, if any."""
        parts = path.split("/")
        best = None
        for i, part in enumerate(parts):
            if part == "node_modules" and i + 1 < len(parts):
                j = i + 2 if parts[i + 1].startswith("@") else i + 1
                if j < len(parts):
                    best = "/".join(parts[:j + 1])
        if best is not None:
            return best
        for g in self.global_dirs:
            if path.startswith(g + "/"):
                rest = path[len(g) + 1:].split("/")
                n = 2 if rest[0].startswith("@") else 1
                if len(rest) > n:
                    return posixpath.join(g, *rest[:n])
        return None


def _builtin(spec: str) -> bool:
    if spec.startswith("node:"):
        return True
    return spec.split("/")[0] in BUILTINS


def _split(spec: str) -> tuple[str, str]:
    parts = spec.split("/")
    n = 2 if spec.startswith("@") else 1
    return "/".join(parts[:n]), ("/" + "/".join(parts[n:])) if len(parts) > n else ""


def _name_of(package: str) -> str:
    parts = package.split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 and parts[-2].startswith("@") else parts[-1]


def _exports_targets(exports, subpath: str) -> list[str]:
    """Return the targets an ``exports`` (or ``imports``) value gives ``subpath``, for every
    condition that may apply."""
    if isinstance(exports, (str, list)) or (isinstance(exports, dict) and exports and
                                            not any(k.startswith((".", "#")) for k in exports)):
        return _conditions(exports, "") if subpath == "." else []
    if not isinstance(exports, dict):
        return []
    if subpath in exports:
        return _conditions(exports[subpath], "")
    best = None
    for key in exports:
        if "*" in key:
            head, _, tail = key.partition("*")
            fits = subpath.startswith(head) and subpath.endswith(tail) and len(subpath) >= len(head) + len(tail)
            if fits and (best is None or len(head) > len(best[0])):
                best = (head, key, subpath[len(head):len(subpath) - len(tail) if tail else None])
        elif key.endswith("/") and subpath.startswith(key) and (best is None or len(key) > len(best[0])):
            best = (key, key, subpath[len(key):])
    if best is None:
        return []
    _head, key, star = best
    return _conditions(exports[key], star or "")


def _conditions(value, star: str) -> list[str]:
    if isinstance(value, str):
        return [value.replace("*", star) if "*" in value else (value + star if value.endswith("/") else value)]
    if isinstance(value, list):
        out = []
        for v in value:
            out += _conditions(v, star)
        return out
    if isinstance(value, dict):
        out = []
        for cond, v in value.items():
            if cond in CONDITIONS:
                out += _conditions(v, star)
        return out
    return []
