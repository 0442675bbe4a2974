"""Categories: every path gets one category by the rule table; libmagic only for ambiguous files."""

import dataclasses
import gzip
import time
from pathlib import Path

import pytest

from slimmer.analyzer import categories as cats
from slimmer.analyzer.attribution import attribute, by_category
from slimmer.analyzer.content import AnalysisPolicy
from slimmer.errors import SlimmerError
from slimmer.model import DIR, FILE, KINDS, NO_RULE, Entry, columns
from slimmer.reader import Options, open_image

from builders import File, image, layer, to_model, write

PATHS = [
    # toolchains and compilers
    ("usr/local/go/bin/go", "toolchain", "the Go toolchain in GOROOT"),
    ("usr/local/go/src/fmt/print.go", "toolchain", "Go's standard library sources in GOROOT"),
    ("usr/lib/go-1.19/pkg/tool/linux_amd64/compile", "toolchain", "Debian's golang GOROOT"),
    ("usr/lib/gcc/x86_64-linux-gnu/12/cc1", "toolchain", "gcc's cc1"),
    ("usr/libexec/gcc/x86_64-linux-gnu/12/cc1plus", "toolchain", "gcc's cc1plus in libexec"),
    ("usr/bin/x86_64-linux-gnu-gcc-12", "toolchain", "the gcc driver"),
    ("usr/bin/ld.bfd", "toolchain", "the linker"),
    ("usr/bin/x86_64-linux-gnu-as", "toolchain", "the assembler"),
    ("usr/lib/llvm-14/bin/clang", "toolchain", "clang"),
    ("usr/local/cargo/bin/cargo", "toolchain", "cargo"),
    ("usr/local/rustup/toolchains/stable/bin/rustc", "toolchain", "rustc"),
    ("usr/lib/jvm/java-17-openjdk-amd64/bin/javac", "toolchain", "a JDK's javac"),
    ("opt/java/openjdk/jmods/java.base.jmod", "toolchain", "a JDK's jmods"),
    ("app/node_modules/node-gyp/lib/build.js", "toolchain", "node-gyp"),
    ("usr/bin/make", "toolchain", "make"),
    # build-only files
    ("usr/include/stdio.h", "build-only", "a C header"),
    ("usr/lib/x86_64-linux-gnu/libc.a", "build-only", "a static library"),
    ("usr/lib/x86_64-linux-gnu/crt1.o", "build-only", "an object file"),
    ("usr/lib/x86_64-linux-gnu/pkgconfig/zlib.pc", "build-only", "a pkg-config file"),
    ("src/cmd/server/main.go", "build-only", "Go sources"),
    ("build/foo.c", "build-only", "C sources"),
    # caches
    ("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "cache", "apt lists"),
    ("var/cache/apt/archives/make_4.3-4.1_amd64.deb", "cache", "downloaded .deb files"),
    ("var/cache/apt/pkgcache.bin", "cache", "apt's binary cache"),
    ("var/cache/apk/APKINDEX.abc.tar.gz", "cache", "apk's cache"),
    ("var/cache/dnf/repodata.xml", "cache", "dnf's cache"),
    ("root/.cache/pip/http/a/b", "cache", "pip's cache"),
    ("root/.cache/go-build/ab/abcdef-d", "cache", "Go's build cache"),
    ("go/pkg/mod/github.com/x/y@v1/y.go", "cache", "Go's module cache in GOPATH=/go"),
    ("root/go/pkg/mod/cache/download/x/@v/v1.zip", "cache", "Go's module cache in ~/go"),
    ("root/.npm/_cacache/content-v2/sha512/ab", "cache", "npm's cache"),
    ("usr/local/share/.cache/yarn/v6/npm-x/index.js", "cache", "yarn's cache"),
    ("root/.local/share/pnpm/store/v3/files/00/ab", "cache", "pnpm's store"),
    ("root/.m2/repository/org/x/x.jar", "cache", "Maven's repository"),
    ("home/app/.gradle/caches/modules-2/x.jar", "cache", "Gradle's caches"),
    ("root/.ccache/a/b.o", "cache", "ccache"),
    ("app/__pycache__/main.cpython-311.pyc", "cache", "__pycache__ outside site-packages"),
    ("tmp/go1.21.5.linux-amd64.tar.gz", "cache", "a download left in /tmp"),
    # package-manager state, docs, man, info, locales, VCS, tests, debug
    ("var/lib/dpkg/status", "package-db", "dpkg's database"),
    ("var/lib/dpkg/info/make.list", "package-db", "dpkg's file lists"),
    ("lib/apk/db/installed", "package-db", "apk's database"),
    ("var/lib/rpm/Packages", "package-db", "rpm's database"),
    ("usr/share/doc/make/changelog.Debian.gz", "docs", "package documentation"),
    ("usr/share/man/man1/make.1.gz", "man", "a man page"),
    ("usr/share/info/make.info.gz", "info", "an info page"),
    ("usr/share/locale/de/LC_MESSAGES/make.mo", "locale", "a translation"),
    ("usr/lib/locale/locale-archive", "locale", "compiled locales"),
    ("app/.git/objects/pack/pack-1.pack", "vcs", "git objects"),
    ("usr/lib/python3/dist-packages/numpy/core/tests/test_api.py", "tests", "tests inside a Python package"),
    ("app/node_modules/lodash/test/test.js", "tests", "tests inside an npm package"),
    ("usr/lib/python3.11/test/test_re.py", "tests", "CPython's own test suite"),
    ("usr/lib/debug/.build-id/ab/cdef.debug", "debug", "separate debug symbols"),
    ("app/dist/main.js.map", "debug", "a source map"),
    # runtime and other
    ("usr/lib/x86_64-linux-gnu/libc.so.6", "runtime", "a shared library"),
    ("usr/bin/grep", "runtime", "a program"),
    ("etc/ssl/certs/ca-certificates.crt", "runtime", "configuration"),
    ("usr/share/zoneinfo/UTC", "runtime", "shared data"),
    ("usr/lib/python3/dist-packages/requests/__pycache__/api.cpython-311.pyc", "runtime",
     "byte-code inside site-packages"),
    ("usr/lib/locale/C.utf8/LC_CTYPE", "runtime", "the C.UTF-8 locale"),
    ("usr/share/doc/make/copyright", "other", "a licence file (kept)"),
    ("srv/data/blob", "other", "an unknown file"),
]


@pytest.mark.parametrize("path,category", [(p, c) for p, c, _ in PATHS], ids=[f"{w} is {c}" for _p, c, w in PATHS])
def test_path_rules_give_each_kind_of_file_its_category(path, category):
    """A path's category comes from the first matching rule of the table."""
    assert cats.categorize(path, Entry(path, FILE, 10)) == category


def test_every_category_is_covered_by_the_table():
    """The path table above exercises every category there is."""
    assert {c for _p, c, _w in PATHS} == set(cats.CATEGORIES)


def test_rules_are_data_with_unique_names_known_categories_and_reasons():
    """Each rule has a unique name, a known category, a reason and at least one pattern."""
    names = [r.name for r in cats.RULES]
    assert len(names) == len(set(names))
    for rule in cats.RULES:
        assert rule.category in cats.CATEGORIES and rule.reason and rule.patterns, rule


def test_removable_categories_are_known_and_exclude_what_programs_need():
    """Prune mode may drop REMOVABLE categories: never runtime, package databases or unknowns."""
    assert set(cats.CATEGORIES) >= cats.REMOVABLE
    assert not {"runtime", "other", "package-db"} & cats.REMOVABLE
    assert {"toolchain", "build-only"} == cats.BUILD_ONLY


@pytest.mark.parametrize("pattern,path,matches", [
    ("usr/include/**", "usr/include/a/b.h", True),
    ("usr/include/**", "usr/include", False),
    ("**/*.a", "libx.a", True),
    ("**/*.a", "deep/dir/libx.a", True),
    ("usr/bin/gcc*", "usr/bin/gcc-12", True),
    ("usr/bin/gcc*", "usr/bin/sub/gcc", False),
    ("**/.git/**", "a/.git/HEAD", True),
    ("**/.git/**", "a/.github/x", False),
], ids=["a double star spans directories", "a double star needs a child", "a leading double star matches the root",
        "a leading double star matches any depth", "a star matches within a segment",
        "a star does not cross a slash", "a named directory matches at any depth", "a prefix of a name is not a match"])
def test_glob_patterns_follow_the_documented_syntax(pattern, path, matches):
    """Rule patterns are globs anchored at the root; ``*`` stays in a segment, ``**`` spans them."""
    import re
    assert bool(re.fullmatch(cats.glob_regex(pattern), path)) is matches


@pytest.mark.parametrize("path,entry,ambiguous", [
    ("srv/data/blob", Entry("srv/data/blob", FILE, 10), True),
    ("usr/bin/grep", Entry("usr/bin/grep", FILE, 10), False),
    ("srv/empty", Entry("srv/empty", FILE, 0), False),
    ("srv/dir", Entry("srv/dir", DIR, 0), False),
], ids=["a file no rule matches is ambiguous", "a file a rule matches is not",
        "an empty file has nothing to look at", "a directory is never ambiguous"])
def test_only_files_whose_path_leaves_the_question_open_are_ambiguous(path, entry, ambiguous):
    """libmagic runs only on regular files with bytes that no path rule matches."""
    assert cats.is_ambiguous(path, entry) is ambiguous


def _real(path: str) -> bytes:
    p = Path(path)
    if not p.exists():
        pytest.skip(f"{path} is not on this machine")
    return p.read_bytes()


CONTENT_CASES = [
    ("app/tool", lambda: File(_real("/bin/ls"), mode=0o755), "runtime", "elf", "an ELF executable"),
    ("app/part", lambda: _real("/usr/lib/x86_64-linux-gnu/crt1.o"), "build-only", "elf-object",
     "an ELF relocatable object"),
    ("app/archive", lambda: _real("/usr/lib/x86_64-linux-gnu/libc_nonshared.a"), "build-only", "ar-archive",
     "an ar archive (a static library)"),
    ("app/run", lambda: File(b"#!/bin/sh\nexec /app/tool \"$@\"\n", mode=0o755), "runtime", "script",
     "a shell script"),
    ("app/download", lambda: gzip.compress(b"payload " * 500), "other", "archive", "a gzip download"),
    ("app/data", lambda: bytes(range(256)) * 4, "other", "unmatched", "opaque data"),
]


@pytest.mark.parametrize("path,make,category,rule", [c[:4] for c in CONTENT_CASES],
                         ids=[f"{c[4]} without a telling path is {c[2]}" for c in CONTENT_CASES])
def test_libmagic_decides_for_files_whose_path_leaves_the_kind_open(path, make, category, rule):
    """An ambiguous file is read (first 4 KiB) and its libmagic description picks the category."""
    img = to_model(image(layer({path: make()}, created_by="COPY app /app")))
    fact = {f.path: f for f in attribute(img).files}[path]
    assert (fact.category, fact.rule) == (category, rule)


def test_a_path_rule_wins_over_the_content():
    """A file whose path a rule matches is not looked at: a text file in usr/bin is still a program."""
    img = to_model(image(layer({"usr/bin/hello": b"not an ELF at all\n", "usr/include/x.h": _real("/bin/ls")})))
    facts = {f.path: f.category for f in attribute(img).files}
    assert facts == {"usr/bin/hello": "runtime", "usr/include/x.h": "build-only"}


def _unreadable(img):
    def cannot():
        raise SlimmerError("this layer must not be read again")
    return dataclasses.replace(img, layers=tuple(dataclasses.replace(lay, opener=cannot) for lay in img.layers))


def test_an_image_the_reader_scanned_is_analysed_without_reading_a_layer_again(tmp_path):
    """The scan pass gathered every content fact: the attribution never opens a layer, and it
    equals the attribution of the same image built in code (whose facts come from a re-read)."""
    spec = image(layer({"app/tool": File(_real("/bin/ls"), mode=0o755), "usr/include/x.h": 300,
                        "var/lib/dpkg/status": b"Package: x\nStatus: install ok installed\nVersion: 1\n\n",
                        "var/lib/dpkg/info/x.list": b"/app/tool\n"}))
    scanned = open_image(write(spec, tmp_path / "img.tar", "docker-legacy"), Options(policy=AnalysisPolicy()))
    a = attribute(_unreadable(scanned))
    assert {f.path: f.category for f in a.files}["app/tool"] == "runtime"
    assert [p.key for p in a.packages] == ["dpkg:x"] and a.content_read
    b = attribute(to_model(spec))
    assert (a.files, a.waste, a.packages, a.duplicates) == (b.files, b.waste, b.packages, b.duplicates)


def test_a_model_without_facts_whose_layers_cannot_be_read_is_one_clear_error():
    """Facts for an image built in code come from reading its layers again; when that fails the
    error says so (no silent path-only analysis)."""
    img = _unreadable(to_model(image(layer({"app/tool": File(_real("/bin/ls"), mode=0o755)}))))
    with pytest.raises(SlimmerError, match="must not be read again"):
        attribute(img)
    assert attribute(img, read=False).files[0].category == "other"


def test_bytes_by_category_add_up_to_the_final_and_wasted_bytes():
    """Every final byte lands in exactly one category, every shadowed byte too."""
    img = to_model(image(layer({"usr/include/a.h": 100, "usr/bin/x": 200, "tmp/big": 5_000}),
                         layer({"tmp/.wh.big": b"", "usr/share/man/man1/x.1.gz": 70})))
    rows = {r.category: r for r in by_category(attribute(img))}
    assert sum(r.final_bytes for r in rows.values()) == 370
    assert (rows["build-only"].final_bytes, rows["runtime"].final_bytes, rows["man"].final_bytes) == (100, 200, 70)
    assert rows["cache"].wasted_bytes == 5_000 and rows["cache"].final_bytes == 0


def test_categorising_many_paths_is_cheap():
    """Directory parts are matched once per directory: 100,000 paths take well under three seconds
    (a single alternation over all rules took about nine)."""
    paths = [f"usr/lib/python3/dist-packages/pkg{i % 300}/mod{i}.py" for i in range(50_000)]
    paths += [f"srv/app/data/file{i}" for i in range(50_000)]
    start = time.perf_counter()
    found = [cats.rule_for(p) for p in paths]
    elapsed = time.perf_counter() - start
    assert found[0].category == "runtime" and found[-1] is None
    assert elapsed < 3.0, elapsed


def test_rules_of_the_scan_name_the_same_rule_as_matching_here(tmp_path):
    """The rule index the scan pass records per file in its columns (in worker processes too)
    names the rule ``rule_for`` finds, unmatched files record -1, and other entries none."""
    spec = image(
        layer({"usr/local/go/bin/go": 5_000, "var/lib/apt/lists/x_Packages": 900, "app/server": File(700, mode=0o755),
               "usr/share/doc/a/README": 50}),
        layer({"var/lib/apt/lists/x_Packages": 950, "app/unknown.bin": 300, "root/.cache/pip/http/a": 20}))
    img = open_image(write(spec, tmp_path / "img.tar", "docker-legacy"), Options(policy=AnalysisPolicy(), jobs=2))
    seen = {}
    for layer_ in img.layers:
        cols = columns(layer_)
        assert cols.rules is not None
        for path, kind, index in zip(cols.paths, cols.kinds, cols.rules):
            if KINDS[kind] != FILE:
                assert index == NO_RULE
                continue
            rule = cats.rule_for(path)
            assert index == (cats.RULES.index(rule) if rule else -1)
            seen[path] = index
    assert len(seen) == 6 and seen["app/unknown.bin"] == -1

