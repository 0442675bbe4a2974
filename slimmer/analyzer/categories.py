"""What each file of an image is for: one category per path, by rules that are data.

``RULES`` is the whole policy: each rule has a name, a category, a short reason and glob
patterns over model paths (no leading ``/``; ``*`` stays inside one path segment, ``**``
spans any number of segments, a pattern starting with ``**/`` matches at any depth). The
first rule that matches wins, so specific rules come before general ones. Paths no rule
matches are *ambiguous*: only for them does the content pass run libmagic, and
``MAGIC_RULES`` (also data) turn libmagic's description into a category.

``REMOVABLE`` names the categories that ``slimmer slim --mode prune`` may drop without
breaking a program; ``BUILD_ONLY`` the ones only a build needs (safe to drop unless the
program compiles code at run time). Imports only the model.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from slimmer.model import FILE, Entry

TOOLCHAIN = "toolchain"
BUILD_ONLY_FILES = "build-only"
CACHE = "cache"
PACKAGE_DB = "package-db"
DOCS = "docs"
MAN = "man"
INFO = "info"
LOCALE = "locale"
VCS = "vcs"
TESTS = "tests"
DEBUG = "debug"
RUNTIME = "runtime"
OTHER = "other"

CATEGORIES = (TOOLCHAIN, BUILD_ONLY_FILES, CACHE, PACKAGE_DB, DOCS, MAN, INFO, LOCALE, VCS, TESTS, DEBUG,
              RUNTIME, OTHER)

REMOVABLE = frozenset({CACHE, DOCS, MAN, INFO, LOCALE, VCS, TESTS, DEBUG})
BUILD_ONLY = frozenset({TOOLCHAIN, BUILD_ONLY_FILES})


@dataclass(frozen=True)
class Rule:
    """One categorisation rule: paths matching any of ``patterns`` belong to ``category``."""

    name: str
    category: str
    reason: str
    patterns: tuple[str, ...]


def _r(name: str, category: str, reason: str, *patterns: str) -> Rule:
    return Rule(name, category, reason, patterns)


RULES: tuple[Rule, ...] = (
    # -- version control and caches: never needed at run time, whatever tree they sit in
    _r("git", VCS, "version-control history is not needed to run the program",
       "**/.git", "**/.git/**", "**/.svn/**", "**/.hg/**", "**/.bzr/**"),
    _r("apt-lists", CACHE, "apt package lists are re-downloaded by `apt-get update`",
       "var/lib/apt/lists/**"),
    _r("apt-archives", CACHE, "downloaded .deb files and apt's binary caches",
       "var/cache/apt/**"),
    _r("apk-cache", CACHE, "downloaded apk packages", "var/cache/apk/**", "etc/apk/cache/**"),
    _r("dnf-yum-cache", CACHE, "dnf/yum metadata and downloaded rpms", "var/cache/dnf/**", "var/cache/yum/**",
       "var/cache/zypp/**"),
    _r("pip-cache", CACHE, "pip's wheel and HTTP cache", "**/.cache/pip/**"),
    _r("go-build-cache", CACHE, "Go's build cache (GOCACHE)", "**/.cache/go-build/**"),
    _r("go-module-cache", CACHE, "Go's module download cache (GOMODCACHE)", "go/pkg/mod/**", "**/go/pkg/mod/**"),
    _r("npm-cache", CACHE, "npm's download cache", "**/.npm/**"),
    _r("yarn-cache", CACHE, "yarn's download cache", "**/.cache/yarn/**", "**/.yarn-cache/**",
       "**/.yarn/berry/cache/**"),
    _r("pnpm-store", CACHE, "pnpm's content store", "**/.pnpm-store/**", "**/.local/share/pnpm/store/**",
       "**/.cache/pnpm/**"),
    _r("maven-cache", CACHE, "Maven's local repository", "**/.m2/repository/**"),
    _r("gradle-cache", CACHE, "Gradle's caches and wrapper downloads", "**/.gradle/caches/**",
       "**/.gradle/wrapper/dists/**"),
    _r("cargo-cache", CACHE, "cargo's registry and git checkouts", "**/.cargo/registry/**", "**/.cargo/git/**"),
    _r("ccache", CACHE, "compiler cache", "**/.ccache/**", "**/.cache/ccache/**"),
    _r("composer-cache", CACHE, "PHP composer's cache", "**/.composer/cache/**", "**/.cache/composer/**"),
    _r("node-gyp-cache", CACHE, "node-gyp's downloaded headers", "**/.cache/node-gyp/**", "**/.node-gyp/**"),
    _r("pycache-runtime", RUNTIME, "byte-code of installed Python code speeds up start-up",
       "**/site-packages/**/__pycache__/**", "**/dist-packages/**/__pycache__/**",
       "usr/lib/python*/**/__pycache__/**", "usr/local/lib/python*/**/__pycache__/**"),
    _r("pycache", CACHE, "byte-code outside site-packages is regenerated on demand",
       "**/__pycache__/**"),
    _r("user-cache", CACHE, "per-user cache directory", "root/.cache/**", "home/*/.cache/**"),
    _r("tmp", CACHE, "scratch files nothing needs at run time", "tmp/**", "var/tmp/**"),
    # -- package-manager state
    _r("dpkg-db", PACKAGE_DB, "dpkg's database of installed packages", "var/lib/dpkg/**"),
    _r("apt-state", PACKAGE_DB, "apt's state and configuration history", "var/lib/apt/**", "var/log/apt/**",
       "var/log/dpkg.log", "var/log/alternatives.log", "var/cache/debconf/**", "var/cache/ldconfig/**"),
    _r("apk-db", PACKAGE_DB, "apk's database of installed packages", "lib/apk/db/**", "var/lib/apk/**"),
    _r("rpm-db", PACKAGE_DB, "rpm/dnf databases", "var/lib/rpm/**", "usr/lib/sysimage/rpm/**", "var/lib/dnf/**",
       "var/lib/yum/**", "var/log/dnf*", "var/log/yum.log"),
    # -- debug information
    _r("debug-symbols", DEBUG, "separate debug symbols", "usr/lib/debug/**", "**/*.debug", "**/*.dSYM/**",
       "**/*.pdb"),
    _r("source-maps", DEBUG, "JavaScript/CSS source maps", "**/*.js.map", "**/*.css.map", "**/*.mjs.map"),
    # -- documentation
    _r("licenses", OTHER, "licence texts are kept for compliance", "usr/share/doc/*/copyright",
       "usr/share/common-licenses/**"),
    _r("docs", DOCS, "documentation is not needed to run the program", "usr/share/doc/**",
       "usr/local/share/doc/**", "usr/share/gtk-doc/**", "usr/share/help/**", "usr/share/doc-base/**",
       "**/node_modules/**/*.md", "**/node_modules/**/*.markdown", "**/node_modules/**/docs/**",
       "**/node_modules/**/CHANGELOG*", "**/node_modules/**/HISTORY*"),
    _r("man", MAN, "manual pages", "usr/share/man/**", "usr/local/share/man/**", "usr/local/man/**",
       "usr/man/**"),
    _r("info", INFO, "GNU info pages", "usr/share/info/**", "usr/local/share/info/**"),
    _r("locale-c", RUNTIME, "the C.UTF-8 locale that LANG=C.UTF-8 needs", "usr/lib/locale/C.*/**",
       "usr/lib/locale/C.*"),
    _r("locales", LOCALE, "message translations and locale data", "usr/share/locale/**", "usr/lib/locale/**",
       "usr/share/i18n/**", "usr/local/share/locale/**"),
    # -- tests shipped inside packages
    _r("package-tests", TESTS, "test suites shipped inside installed packages",
       "**/site-packages/**/tests/**", "**/site-packages/**/test/**", "**/dist-packages/**/tests/**",
       "**/dist-packages/**/test/**", "**/node_modules/**/test/**", "**/node_modules/**/tests/**",
       "**/node_modules/**/__tests__/**", "usr/lib/python3*/test/**", "usr/local/lib/python3*/test/**",
       "usr/lib/python3*/unittest/test/**", "usr/local/lib/python3*/unittest/test/**",
       "usr/lib/python3*/idlelib/idle_test/**", "usr/local/lib/python3*/idlelib/idle_test/**"),
    # -- toolchains and compilers
    _r("go-toolchain", TOOLCHAIN, "the Go toolchain (GOROOT): a compiled Go program does not need it",
       "usr/local/go/**", "usr/lib/go/**", "usr/lib/go-*/**", "usr/share/go-*/**", "usr/bin/go", "usr/bin/gofmt"),
    _r("gcc", TOOLCHAIN, "the GNU compiler collection",
       "usr/lib/gcc/**", "usr/libexec/gcc/**", "usr/lib/gcc-cross/**", "usr/bin/gcc*", "usr/bin/g++*",
       "usr/bin/cc", "usr/bin/c++", "usr/bin/c89*", "usr/bin/c99*", "usr/bin/cpp*", "usr/bin/gfortran*",
       "usr/bin/*-linux-gnu-gcc*", "usr/bin/*-linux-gnu-g++*", "usr/bin/*-linux-gnu-cpp*",
       "usr/bin/*-linux-gnu-gfortran*", "usr/bin/*-linux-musl-gcc*", "usr/bin/lto-dump*", "usr/bin/*-lto-dump*",
       "usr/local/bin/gcc*", "usr/local/bin/g++*"),
    _r("binutils", TOOLCHAIN, "the assembler, linker and binary tools of a build",
       "usr/bin/ld", "usr/bin/ld.*", "usr/bin/as", "usr/bin/gold", "usr/bin/objdump", "usr/bin/objcopy",
       "usr/bin/nm", "usr/bin/ar", "usr/bin/ranlib", "usr/bin/readelf", "usr/bin/strip", "usr/bin/gprof*",
       "usr/bin/dwp", "usr/bin/*-linux-gnu-ld*", "usr/bin/*-linux-gnu-as", "usr/bin/*-linux-gnu-objdump",
       "usr/bin/*-linux-gnu-objcopy", "usr/bin/*-linux-gnu-nm", "usr/bin/*-linux-gnu-ar",
       "usr/bin/*-linux-gnu-ranlib", "usr/bin/*-linux-gnu-readelf", "usr/bin/*-linux-gnu-strip",
       "usr/bin/*-linux-gnu-gprof*", "usr/bin/*-linux-gnu-dwp", "usr/bin/*-linux-gnu-elfedit",
       "usr/bin/*-linux-gnu-addr2line", "usr/bin/*-linux-gnu-size", "usr/bin/*-linux-gnu-strings",
       "usr/bin/*-linux-gnu-c++filt", "usr/lib/*-linux-gnu/libbfd*", "usr/lib/*-linux-gnu/libopcodes*",
       "usr/lib/*-linux-gnu/libctf*", "usr/lib/*-linux-gnu/libgprofng*", "usr/lib/*-linux-gnu/libsframe*",
       "usr/lib/*-linux-gnu/ldscripts/**", "usr/lib/bfd-plugins/**", "usr/libexec/gprofng/**"),
    _r("llvm", TOOLCHAIN, "clang and LLVM", "usr/lib/llvm-*/**", "usr/bin/clang*", "usr/bin/llvm-*",
       "usr/bin/lld*", "usr/lib/clang/**", "usr/local/bin/clang*"),
    _r("rust-toolchain", TOOLCHAIN, "rustc and cargo", "usr/local/rustup/**", "usr/local/cargo/bin/**",
       "**/.rustup/**", "**/.cargo/bin/**", "usr/bin/rustc", "usr/bin/cargo", "usr/lib/rustlib/**",
       "usr/lib/*-linux-gnu/librustc*"),
    _r("jdk", TOOLCHAIN, "JDK-only parts: a JRE runs the program",
       "**/jmods/**", "**/bin/javac", "**/bin/jlink", "**/bin/jar", "**/bin/jarsigner", "**/bin/javadoc",
       "**/bin/jdeps", "**/bin/jshell", "**/bin/jpackage", "**/bin/jdb", "**/lib/ct.sym", "**/lib/src.zip",
       "usr/share/maven/**", "usr/share/gradle/**", "opt/gradle/**", "opt/maven/**"),
    _r("node-gyp", TOOLCHAIN, "node-gyp builds native addons", "**/node_modules/node-gyp/**",
       "**/node_modules/npm/node_modules/node-gyp/**"),
    _r("build-tools", TOOLCHAIN, "build-essential and friends: make, autotools, cmake, dpkg-dev",
       "usr/bin/make", "usr/bin/gmake", "usr/bin/cmake", "usr/bin/ctest", "usr/bin/cpack", "usr/share/cmake*/**",
       "usr/bin/autoconf", "usr/bin/autoheader", "usr/bin/autom4te", "usr/bin/autoreconf", "usr/bin/automake*",
       "usr/bin/aclocal*", "usr/bin/libtool*", "usr/share/autoconf/**", "usr/share/automake*/**",
       "usr/share/libtool/**", "usr/bin/m4", "usr/bin/bison", "usr/bin/flex", "usr/bin/ninja",
       "usr/share/build-essential/**", "usr/bin/dpkg-buildpackage", "usr/bin/dpkg-source",
       "usr/bin/dpkg-genchanges", "usr/bin/dpkg-gencontrol", "usr/bin/dpkg-shlibdeps", "usr/share/dpkg/*.mk",
       "usr/share/perl5/Dpkg/**", "usr/bin/pkg-config", "usr/bin/pkgconf", "usr/bin/*-pkg-config"),
    # -- build-only files
    _r("headers", BUILD_ONLY_FILES, "C and C++ headers are read only by a compiler",
       "usr/include/**", "usr/local/include/**", "**/include/python3*/**", "**/*.h", "**/*.hpp", "**/*.hh",
       "**/*.hxx"),
    _r("static-libraries", BUILD_ONLY_FILES, "static libraries and libtool archives are linked at build time",
       "**/*.a", "**/*.la"),
    _r("object-files", BUILD_ONLY_FILES, "object files are intermediate build output", "**/*.o", "**/*.obj"),
    _r("pkg-config", BUILD_ONLY_FILES, "pkg-config files describe how to compile against a library",
       "**/pkgconfig/*.pc", "usr/share/aclocal/**"),
    _r("sources", BUILD_ONLY_FILES, "sources of compiled languages are not needed once compiled",
       "usr/src/**", "**/*.c", "**/*.cc", "**/*.cpp", "**/*.cxx", "**/*.go", "**/*.rs", "**/*.java",
       "**/*.f90", "**/go.sum", "**/go.mod", "**/Cargo.lock", "**/Makefile", "**/CMakeLists.txt"),
    # -- runtime
    _r("config", RUNTIME, "system configuration", "etc/**"),
    _r("executables", RUNTIME, "programs", "bin/**", "sbin/**", "usr/bin/**", "usr/sbin/**", "usr/local/bin/**",
       "usr/local/sbin/**", "usr/libexec/**", "usr/local/libexec/**"),
    _r("shared-libraries", RUNTIME, "shared libraries and loaders", "lib/**", "lib32/**", "lib64/**",
       "libx32/**", "usr/lib/**", "usr/lib32/**", "usr/lib64/**", "usr/local/lib/**", "**/*.so", "**/*.so.*"),
    _r("language-runtime", RUNTIME, "installed packages of interpreted languages",
       "**/site-packages/**", "**/dist-packages/**", "**/node_modules/**", "**/*.py", "**/*.pyc", "**/*.js",
       "**/*.mjs", "**/*.cjs", "**/*.json", "**/*.jar", "**/*.war", "**/*.class", "**/*.rb", "**/*.php",
       "**/*.pl", "**/*.pm", "**/*.sh", "usr/share/perl*/**", "usr/share/ruby*/**"),
    _r("data", RUNTIME, "shared data (time zones, certificates, terminfo, ...)", "usr/share/**",
       "usr/local/share/**", "var/lib/**"),
)

MAGIC_RULES: tuple[tuple[str, str, str, str], ...] = (
    # (name, category, reason, regex on libmagic's description)
    ("elf-debug", DEBUG, "an ELF file of debug information only", r"^ELF .*\(debug|, with debug_info.*, no "
                                                                   r"machine"),
    ("elf-object", BUILD_ONLY_FILES, "an ELF relocatable object: intermediate build output", r"^ELF .*relocatable"),
    ("ar-archive", BUILD_ONLY_FILES, "an ar archive: a static library", r"^current ar archive"),
    ("elf", RUNTIME, "an ELF executable or shared library", r"^ELF "),
    ("script", RUNTIME, "a script", r"script|executable"),
    ("archive", OTHER, "a compressed archive left in the image", r"(gzip|XZ|Zip|bzip2|Zstandard|POSIX tar) "),
)

_MAGIC = [(name, category, reason, re.compile(rx)) for name, category, reason, rx in MAGIC_RULES]


def glob_regex(pattern: str) -> str:
    """Return the regular expression (unanchored) for one rule pattern."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


class _Matcher:
    """Finds the first matching rule fast by splitting each pattern into a directory part and a
    base-name part: what the directory part says is worked out once per directory (images
    have far fewer directories than files), leaving one base-name regex call per file.

    A pattern ``D/**`` matches when the file's directory is ``D`` or below it; ``D/B`` (B
    without ``**``) when the directory matches ``D`` and the base name matches ``B``; anything
    else is matched against the whole path.
    """

    def __init__(self, rules: tuple[Rule, ...]):
        self.rules = rules
        # (rule index, kind, dir regex or None, base/whole regex or None, dir glob, literal the dir must hold)
        self._all = [(i, *self._split(p)) for i, rule in enumerate(rules) for p in rule.patterns]
        leads = {item[4].split("/", 1)[0] for item in self._all}
        self._wild = [item for item in self._all if not self._literal_lead(item[4])]
        self._by_first: dict[str, list] = {
            lead: [item for item in self._all if not self._literal_lead(item[4]) or item[4].split("/", 1)[0] == lead]
            for lead in leads if self._literal_lead(lead)}
        self._dirs: dict[str, tuple] = {}
        self._combined: dict[tuple, tuple] = {}

    @staticmethod
    def _literal_lead(glob: str) -> bool:
        lead = glob.split("/", 1)[0]
        return bool(lead) and "*" not in lead and "?" not in lead

    @staticmethod
    def _split(pattern: str):
        if pattern.endswith("/**"):
            d = pattern[:-3]
            return "D", re.compile(glob_regex(d) + "(?:/.*)?", re.DOTALL), None, d, _literal(d)
        d, _, b = pattern.rpartition("/")
        if "**" in b:
            return "G", None, re.compile(glob_regex(pattern), re.DOTALL), "*", ""
        dir_rx = None if d == "**" else re.compile(glob_regex(d), re.DOTALL)
        return "P", dir_rx, re.compile(glob_regex(b), re.DOTALL), d, _literal(d)

    def _for_first(self, first: str) -> list:
        """Return the patterns a directory whose first segment is ``first`` may match."""
        return self._by_first.get(first, self._wild)

    def _candidates(self, d: str) -> tuple:
        cands = self._dirs.get(d)
        if cands is not None:
            return cands
        out = []
        for i, kind, dir_rx, rx, _glob, need in self._for_first(d.split("/", 1)[0]):
            if need and need not in d:
                continue
            if kind == "D":
                if dir_rx.fullmatch(d):
                    out.append((i, None, False))
                    break
            elif kind == "P":
                if dir_rx is None or dir_rx.fullmatch(d):
                    out.append((i, rx, False))
            else:
                out.append((i, rx, True))
        cands = self._combine(tuple(out))
        if len(self._dirs) < 200_000:
            self._dirs[d] = cands
        return cands

    def _combine(self, cands: tuple) -> tuple:
        """Return (one regex over the base name for the base-name tests, in order, the rule index
        per group, the rule of a trailing directory test, whole-path tests) for ``cands``."""
        key = tuple((i, rx.pattern if rx is not None else None, whole) for i, rx, whole in cands)
        found = self._combined.get(key)
        if found is not None:
            return found
        if any(whole for _i, _rx, whole in cands):
            found = (None, (), None, cands)  # rare: keep the plain ordered loop
        else:
            tail = cands[-1][0] if cands and cands[-1][1] is None else None
            tests = [(i, rx) for i, rx, _w in cands if rx is not None]
            combined = re.compile("|".join(f"(?P<g{k}>{rx.pattern})" for k, (_i, rx) in enumerate(tests)),
                                  re.DOTALL) if tests else None
            found = (combined, tuple(i for i, _rx in tests), tail, ())
        self._combined[key] = found
        return found

    def first_index(self, path: str) -> int:
        """Return the index in ``rules`` of the first rule matching ``path``, or -1."""
        d, _, base = path.rpartition("/")
        combined, groups, tail, loop = self._candidates(d)
        if loop:
            for i, rx, whole in loop:
                if rx is None or rx.fullmatch(path if whole else base):
                    return i
            return -1
        if combined is not None:
            m = combined.fullmatch(base)
            if m is not None:
                return groups[int(m.lastgroup[1:])]
        return tail if tail is not None else -1

    def first(self, path: str) -> Rule | None:
        i = self.first_index(path)
        return self.rules[i] if i >= 0 else None


def _literal(glob: str) -> str:
    """Return the longest run of literal characters a path matching ``glob`` must contain."""
    runs = re.split(r"[*?/]", glob)
    return max(runs, key=len) if runs else ""


_MATCHER = _Matcher(RULES)


class RuleClassifier:
    """The category rules as the tar scanner asks for them (``slimmer.tar.scan.Classifier``):
    directories whose candidate rules are the same share one cache of base name -> rule, so
    a rule is matched once per distinct directory and base name, not per file."""

    def __init__(self, matcher: _Matcher | None = None):
        self._matcher = matcher or _MATCHER
        self._groups: dict[int, dict[str, int]] = {}
        self._of_dir: dict[str, tuple[dict | None, tuple]] = {}  # directory -> (group, its candidates)

    def _lookup(self, directory: str) -> tuple[dict | None, tuple]:
        known = self._of_dir.get(directory)
        if known is not None:
            return known
        found = self._matcher._candidates(directory)
        group = None
        if not found[3]:  # else whole-path patterns: the rule depends on more than the base name
            group = self._groups.get(id(found))
            if group is None:
                group = self._groups[id(found)] = {}
        known = (group, found)
        if len(self._of_dir) < 200_000:
            self._of_dir[directory] = known
        return known

    def group(self, directory: str) -> dict | None:
        return self._lookup(directory)[0]

    def rule(self, directory: str, base: str) -> int:
        group, (combined, groups, tail, _loop) = self._lookup(directory)
        if group is None:
            return self._matcher.first_index(f"{directory}/{base}" if directory else base)
        if combined is not None:  # as _Matcher.first_index does once it has the candidates
            m = combined.fullmatch(base)
            if m is not None:
                return groups[int(m.lastgroup[1:])]
        return tail if tail is not None else -1

    def rules(self, paths: list[str]) -> list[int]:
        """Return the rule index of each file of ``paths`` (-1 where none matches)."""
        out = []
        last, group = None, None
        for path in paths:
            d, _, base = path.rpartition("/")
            if d != last:
                last, group = d, self.group(d)
            if group is None:
                out.append(self.rule(d, base))
                continue
            rule = group.get(base)
            if rule is None:
                rule = group[base] = self.rule(d, base)
            out.append(rule)
        return out


CLASSIFIER = RuleClassifier()


def rule_for(path: str) -> Rule | None:
    """Return the first rule of ``RULES`` whose patterns match ``path``, or None."""
    return _MATCHER.first(path)


def rule_index(path: str) -> int:
    """Return the index in ``RULES`` of the first rule matching ``path``, or -1."""
    return _MATCHER.first_index(path)


def rules_key() -> str:
    """Return a short digest of ``RULES`` and ``MAGIC_RULES``: facts that hold rule indexes are
    only valid for the rule table that made them (the layer cache keys on this)."""
    text = repr([(r.name, r.category, r.patterns) for r in RULES]) + repr(MAGIC_RULES)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def is_ambiguous(path: str, entry: Entry) -> bool:
    """Return whether only the file's content can tell its category (a regular file with bytes
    that no path rule matches): the content pass runs libmagic on these only."""
    return entry.kind == FILE and entry.size > 0 and rule_for(path) is None


def magic_rule(description: str) -> tuple[str, str, str] | None:
    """Return (name, category, reason) of the first ``MAGIC_RULES`` row matching libmagic's
    ``description``, or None."""
    for name, category, reason, rx in _MAGIC:
        if rx.search(description):
            return name, category, reason
    return None


def categorize(path: str, entry: Entry | None = None, magic: str | None = None) -> str:
    """Return the category of ``path``: by ``RULES``; for a path no rule matches, by libmagic's
    ``magic`` description when given; else ``other``."""
    rule = rule_for(path)
    if rule is not None:
        return rule.category
    if magic:
        found = magic_rule(magic)
        if found:
            return found[1]
    return OTHER


def explain(path: str, magic: str | None = None) -> tuple[str, str, str]:
    """Return (category, rule name, reason) for ``path``, the evidence behind ``categorize``."""
    rule = rule_for(path)
    if rule is not None:
        return rule.category, rule.name, rule.reason
    if magic:
        found = magic_rule(magic)
        if found:
            return found[1], found[0], found[2]
    return OTHER, "unmatched", "no rule says what this file is for"
