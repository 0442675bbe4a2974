"""Installed packages and the files they own, from the package databases inside an image.

Formats read (all from file *contents* that the content pass hands over as bytes):
- dpkg: ``var/lib/dpkg/status`` (RFC 822 stanzas) with ``var/lib/dpkg/info/<pkg>[:arch].list``;
  distroless's ``var/lib/dpkg/status.d/<pkg>`` stanzas with ``<pkg>.md5sums`` file lists;
- apk: ``lib/apk/db/installed`` (``P:`` name, ``V:`` version, ``F:`` dir, ``R:`` file);
- Python: ``*.dist-info/RECORD`` (CSV of paths relative to the site-packages directory);
- npm: ``node_modules/[@scope/]name/package.json`` (owns its directory, less nested packages);
- Go: the build info embedded in a binary (module path and Go version).

``BUILD_ONLY_PACKAGES`` (data) marks packages only a build needs. Imports nothing of slimmer.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

DPKG = "dpkg"
APK = "apk"
PYTHON = "python"
NPM = "npm"
GO = "go"

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_INFO = "var/lib/dpkg/info/"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"

# (manager, fnmatch pattern on the package name, why it is only needed to build)
BUILD_ONLY_PACKAGES: tuple[tuple[str, str, str], ...] = (
    (DPKG, "build-essential", "meta-package of the C/C++ toolchain"),
    (DPKG, "gcc", "C compiler"), (DPKG, "gcc-[0-9]*", "C compiler"), (DPKG, "g++", "C++ compiler"),
    (DPKG, "g++-[0-9]*", "C++ compiler"), (DPKG, "cpp", "C preprocessor"), (DPKG, "cpp-[0-9]*", "C preprocessor"),
    (DPKG, "gfortran*", "Fortran compiler"), (DPKG, "binutils*", "assembler and linker"),
    (DPKG, "libbinutils", "assembler and linker"), (DPKG, "libgprofng*", "assembler and linker"),
    (DPKG, "libctf*", "assembler and linker"), (DPKG, "libsframe*", "assembler and linker"),
    (DPKG, "libcc1-*", "compiler plugin"), (DPKG, "libisl*", "compiler library"),
    (DPKG, "libmpc*", "compiler library"), (DPKG, "libmpfr*", "compiler library"),
    (DPKG, "lto-disabled-list", "compiler data"), (DPKG, "libasan*", "sanitizer runtime of the compiler"),
    (DPKG, "liblsan*", "sanitizer runtime of the compiler"), (DPKG, "libtsan*", "sanitizer runtime of the compiler"),
    (DPKG, "libubsan*", "sanitizer runtime of the compiler"), (DPKG, "libhwasan*", "sanitizer runtime"),
    (DPKG, "*-dev", "headers and static libraries"), (DPKG, "libc-dev-bin", "C library development tools"),
    (DPKG, "make", "build tool"), (DPKG, "dpkg-dev", "Debian build tools"),
    (DPKG, "libdpkg-perl", "Debian build tools"),
    (DPKG, "autoconf", "build tool"), (DPKG, "automake", "build tool"), (DPKG, "libtool", "build tool"),
    (DPKG, "pkg-config", "build tool"), (DPKG, "pkgconf*", "build tool"), (DPKG, "cmake*", "build tool"),
    (DPKG, "ninja-build", "build tool"), (DPKG, "m4", "build tool"), (DPKG, "bison", "build tool"),
    (DPKG, "flex", "build tool"), (DPKG, "patch", "build tool"), (DPKG, "clang*", "compiler"),
    (DPKG, "llvm*", "compiler"), (DPKG, "golang*", "Go toolchain"), (DPKG, "rustc", "Rust compiler"),
    (DPKG, "cargo", "Rust build tool"), (DPKG, "openjdk-*-jdk*", "JDK (a JRE runs programs)"),
    (DPKG, "default-jdk*", "JDK (a JRE runs programs)"), (DPKG, "maven", "build tool"), (DPKG, "gradle", "build tool"),
    (APK, "build-base", "meta-package of the C/C++ toolchain"), (APK, "gcc", "C compiler"),
    (APK, "g++", "C++ compiler"), (APK, "musl-dev", "C library headers"), (APK, "libc-dev", "C library headers"),
    (APK, "*-dev", "headers and static libraries"), (APK, "make", "build tool"), (APK, "binutils*", "linker"),
    (APK, "fortify-headers", "C headers"), (APK, "go", "Go toolchain"), (APK, "rust", "Rust compiler"),
    (APK, "cargo", "Rust build tool"), (APK, "clang*", "compiler"), (APK, "llvm*", "compiler"),
    (APK, "cmake", "build tool"), (APK, "autoconf", "build tool"), (APK, "automake", "build tool"),
    (APK, "libtool", "build tool"), (APK, "pkgconf", "build tool"), (APK, "openjdk*-jdk", "JDK"),
    (APK, "mpc1", "compiler library"), (APK, "isl*", "compiler library"), (APK, "patch", "build tool"),
    (PYTHON, "cython", "compiles extensions"), (PYTHON, "pybind11", "compiles extensions"),
    (PYTHON, "meson*", "build tool"), (PYTHON, "ninja", "build tool"), (PYTHON, "scikit-build*", "build tool"),
    (PYTHON, "maturin", "build tool"),
    (NPM, "node-gyp", "builds native addons"), (NPM, "typescript", "compiler (a devDependency)"),
    (NPM, "@types/*", "type declarations (a devDependency)"), (NPM, "webpack*", "bundler (a devDependency)"),
    (NPM, "esbuild", "bundler (a devDependency)"), (NPM, "eslint*", "linter (a devDependency)"),
    (NPM, "jest", "test runner (a devDependency)"), (NPM, "mocha", "test runner (a devDependency)"),
    (NPM, "ts-node", "compiler (a devDependency)"), (NPM, "@babel/core", "compiler (a devDependency)"),
)


@dataclass(frozen=True)
class GoBuildInfo:
    """What a Go binary says about how it was built (``go version -m``)."""

    go_version: str
    path: str  # the main package's import path ("path" line)
    module: str  # the main module ("mod" line)
    module_version: str
    deps: tuple[tuple[str, str], ...] = ()  # (module, version)

    def to_fact(self) -> tuple:
        return (self.go_version, self.path, self.module, self.module_version, tuple(self.deps))

    @classmethod
    def from_fact(cls, fact) -> GoBuildInfo:
        version, path, module, module_version, deps = fact
        return cls(version, path, module, module_version, tuple(tuple(d) for d in deps))



@dataclass(frozen=True)
class Package:
    """One installed package: who installed it (``manager``), its name and version, the files
    its database lists (model paths, not yet resolved through symlinked directories) and the
    database file it came from. npm packages own their directory instead (``root``)."""

    manager: str
    name: str
    version: str
    files: tuple[str, ...] = ()
    source: str = ""
    root: str = ""
    build_only: bool = False
    note: str = ""  # e.g. the Go version of a binary

    @property
    def key(self) -> str:
        """Return ``manager:name``: how reports name a package."""
        return f"{self.manager}:{self.name}"


def build_only_reason(manager: str, name: str) -> str | None:
    """Return why package ``name`` of ``manager`` is only needed to build, or None."""
    for mgr, pattern, reason in BUILD_ONLY_PACKAGES:
        if mgr == manager and fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


def _mark(pkg: Package) -> Package:
    if build_only_reason(pkg.manager, pkg.name):
        return replace(pkg, build_only=True)
    return pkg


def _path(p: str) -> str:
    return posixpath.normpath("/" + p.strip()).lstrip("/")


# ---- dpkg -------------------------------------------------------------------------------------


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """Return the RFC 822 stanzas of a dpkg status file (continuation lines joined with \\n)."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, last = {}, None
            continue
        if line[0] in " \t" and last:
            cur[last] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        last = name.strip()
        cur[last] = value.strip()
    if cur:
        out.append(cur)
    return out


def _installed(stanza: Mapping[str, str]) -> bool:
    status = stanza.get("Status", "install ok installed").split()
    return bool(status) and status[-1] in ("installed", "half-configured", "unpacked", "triggers-awaited",
                                           "triggers-pending")


def dpkg_packages(status: bytes, lists: Mapping[str, bytes]) -> list[Package]:
    """Return the installed packages of a dpkg ``status`` file; ``lists`` maps each
    ``info/*.list`` file's basename to its content."""
    by_name: dict[str, bytes] = {}
    for base, data in lists.items():
        stem = base[:-len(".list")] if base.endswith(".list") else base
        by_name[stem] = data
    out = []
    for st in parse_stanzas(status.decode("utf-8", "replace")):
        name = st.get("Package")
        if not name or not _installed(st):
            continue
        arch = st.get("Architecture", "")
        data = by_name.get(f"{name}:{arch}") or by_name.get(name) or b""
        files = tuple(_path(line) for line in data.decode("utf-8", "replace").splitlines() if line.strip() not in
                      ("", "/."))
        out.append(_mark(Package(DPKG, name, st.get("Version", ""), files, DPKG_STATUS)))
    return out


def distroless_packages(status_d: Mapping[str, bytes]) -> list[Package]:
    """Return the packages of a distroless ``status.d/`` directory ({basename: content}); each
    ``<pkg>`` stanza file may come with ``<pkg>.md5sums`` listing its files."""
    out = []
    for base in sorted(status_d):
        if "." in base and base.rsplit(".", 1)[1] in ("md5sums", "list", "sha256sums"):
            continue
        for st in parse_stanzas(status_d[base].decode("utf-8", "replace")):
            name = st.get("Package")
            if not name:
                continue
            sums = status_d.get(base + ".md5sums", b"").decode("utf-8", "replace")
            files = tuple(_path(line.split(None, 1)[1]) for line in sums.splitlines() if len(line.split(None, 1)) == 2)
            out.append(_mark(Package(DPKG, name, st.get("Version", ""), files, DPKG_STATUS_D + base)))
    return out


# ---- apk ----------------------------------------------------------------------------------------


def apk_packages(installed: bytes) -> list[Package]:
    """Return the packages of an apk ``installed`` database."""
    out = []
    name = version = ""
    files: list[str] = []
    folder = ""

    def flush() -> None:
        if name:
            out.append(_mark(Package(APK, name, version, tuple(files), APK_INSTALLED)))

    for line in installed.decode("utf-8", "replace").splitlines() + [""]:
        if not line.strip():
            flush()
            name, version, files, folder = "", "", [], ""
            continue
        tag, _, value = line.partition(":")
        if tag == "P":
            name = value
        elif tag == "V":
            version = value
        elif tag == "F":
            folder = value
        elif tag == "R":
            files.append(_path(f"{folder}/{value}" if folder else value))
    return out


# ---- Python ------------------------------------------------------------------------------------


_DIST_INFO = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+)\.dist-info$")


def python_distribution(record_path: str, record: bytes) -> Package:
    """Return the distribution whose ``*.dist-info/RECORD`` is at ``record_path``."""
    info_dir = posixpath.dirname(record_path)
    site = posixpath.dirname(info_dir)
    m = _DIST_INFO.match(posixpath.basename(info_dir))
    name, version = (m.group("name"), m.group("version")) if m else (posixpath.basename(info_dir), "")
    files = []
    for row in csv.reader(io.StringIO(record.decode("utf-8", "replace"))):
        if row and row[0]:
            files.append(_path(posixpath.join(site, row[0])))
    return _mark(Package(PYTHON, name.replace("_", "-").lower(), version, tuple(files), record_path))


# ---- npm -----------------------------------------------------------------------------------------


def npm_package_root(path: str) -> str | None:
    """Return the package directory if ``path`` is the ``package.json`` at the root of an npm
    package (``.../node_modules/name/`` or ``.../node_modules/@scope/name/``), else None."""
    if not path.endswith("/package.json"):
        return None
    parts = path.split("/")[:-1]
    if len(parts) >= 2 and parts[-2] == "node_modules" and not parts[-1].startswith("@"):
        return "/".join(parts)
    if len(parts) >= 3 and parts[-3] == "node_modules" and parts[-2].startswith("@"):
        return "/".join(parts)
    return None


def npm_package(path: str, data: bytes) -> Package:
    """Return the npm package whose ``package.json`` (at ``path``) holds ``data``."""
    root = posixpath.dirname(path)
    parts = root.split("/")
    fallback = "/".join(parts[-2:]) if parts[-2].startswith("@") else parts[-1]
    try:
        meta = json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    name = meta["name"] if isinstance(meta.get("name"), str) else fallback
    version = meta["version"] if isinstance(meta.get("version"), str) else ""
    return _mark(Package(NPM, name, version, (), path, root=root))


# ---- Go --------------------------------------------------------------------------------------------


def go_binary(path: str, info: GoBuildInfo) -> Package:
    """Return a Go binary at ``path`` as a package named by its module (or main package)."""
    name = info.module or info.path or posixpath.basename(path)
    note = info.go_version or "Go binary (build info not readable)"
    return Package(GO, name, info.module_version, (path,), path, note=note)


# ---- all together ----------------------------------------------------------------------------------


DB_ENDINGS = ("/status", "/installed", ".list", "/RECORD", "/package.json")


def is_database(path: str) -> bool:
    """Return whether the content of ``path`` is a package database ``find_packages`` reads."""
    if not path.endswith(DB_ENDINGS) and not path.startswith(DPKG_STATUS_D):
        return False  # the common case, decided by one call
    if path in (DPKG_STATUS, APK_INSTALLED):
        return True
    if path.startswith(DPKG_INFO) and path.endswith(".list") and path.count("/") == 4:
        return True
    if path.startswith(DPKG_STATUS_D) and path.count("/") == 4:
        return True
    if path.endswith(".dist-info/RECORD"):
        return True
    return npm_package_root(path) is not None


def find_packages(databases: Mapping[str, bytes], go: Mapping[str, GoBuildInfo] | None = None) -> list[Package]:
    """Return every package the database files (``{path: content}``, as ``is_database``
    selects them) and Go binaries (``{path: build info}``) describe."""
    out: list[Package] = []
    if DPKG_STATUS in databases:
        lists = {p[len(DPKG_INFO):]: d for p, d in databases.items() if p.startswith(DPKG_INFO) and p.endswith(".list")}
        out.extend(dpkg_packages(databases[DPKG_STATUS], lists))
    status_d = {p[len(DPKG_STATUS_D):]: d for p, d in databases.items() if p.startswith(DPKG_STATUS_D)}
    if status_d:
        out.extend(distroless_packages(status_d))
    if APK_INSTALLED in databases:
        out.extend(apk_packages(databases[APK_INSTALLED]))
    for path in sorted(databases):
        if path.endswith(".dist-info/RECORD"):
            out.append(python_distribution(path, databases[path]))
        elif npm_package_root(path) is not None:
            out.append(npm_package(path, databases[path]))
    for path, info in sorted((go or {}).items()):
        out.append(go_binary(path, info))
    return out


def owners(packages: Iterable[Package], files: Iterable[str], resolve: Callable[[str], str] = lambda p: p
           ) -> dict[str, Package]:
    """Return {path: owning package} for the ``files`` of the merged filesystem.

    A path listed by a database is looked up through ``resolve`` (which follows symlinked
    directories such as ``/bin`` -> ``usr/bin``). The first database to list a file owns it
    (dpkg and apk before Python, Python before Go); files below an npm package's directory
    belong to the deepest such package.
    """
    files = set(files)
    owner: dict[str, Package] = {}
    npm_roots: dict[str, Package] = {}
    for pkg in packages:
        if pkg.root:
            npm_roots[pkg.root] = pkg
            continue
        for listed in pkg.files:
            path = listed if listed in files else resolve(listed)
            if path in files and path not in owner:
                owner[path] = pkg
    if npm_roots:
        below: dict[str, Package | None] = {}  # directory -> the deepest package root at or above it
        for path in files:
            if path in owner or "node_modules/" not in path:
                continue
            d = path.rpartition("/")[0]
            if d not in below:
                found = None
                parts = d.split("/")
                for cut in range(len(parts), 0, -1):
                    found = npm_roots.get("/".join(parts[:cut]))
                    if found is not None:
                        break
                below[d] = found
            root = below[d]
            if root is not None:
                owner[path] = root
    return owner
