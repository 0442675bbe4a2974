"""Packages: bytes per installed package from the databases inside an image, in every format."""

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from slimmer.analyzer import packages as pk
from slimmer.analyzer.attribution import NO_PACKAGE, attribute, by_package
from slimmer.analyzer.report import analyze
from slimmer.reader import open_image

from builders import File, image, layer, to_model

STATUS = b"""Package: zlib1g-dev
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 1:1.2.13.dfsg-1
Description: compression library - development
 zlib is a library implementing the deflate compression method.

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
"""


def test_dpkg_status_and_lists_give_installed_packages_with_their_files():
    """Installed stanzas become packages (arch-qualified .list files too); removed ones do not."""
    lists = {"zlib1g-dev:amd64.list": b"/.\n/usr\n/usr/include/zlib.h\n",
             "base-files.list": b"/.\n/etc/os-release\n", "oldpkg.list": b"/etc/old.conf\n"}
    found = {p.name: p for p in pk.dpkg_packages(STATUS, lists)}
    assert set(found) == {"zlib1g-dev", "base-files"}
    assert found["zlib1g-dev"].version == "1:1.2.13.dfsg-1"
    assert found["zlib1g-dev"].files == ("usr", "usr/include/zlib.h")
    assert found["zlib1g-dev"].build_only and not found["base-files"].build_only


def test_distroless_status_d_stanzas_and_md5sums_give_packages():
    """Distroless keeps one stanza file per package in status.d/, its files in <pkg>.md5sums."""
    status_d = {"libc6": b"Package: libc6\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\n",
                "libc6.md5sums": b"0123456789abcdef0123456789abcdef  lib/x86_64-linux-gnu/libc.so.6\n"
                                 b"fedcba9876543210fedcba9876543210  usr/share/doc/libc6/copyright\n",
                "tzdata": b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"}
    found = {p.name: p for p in pk.distroless_packages(status_d)}
    assert found["libc6"].files == ("lib/x86_64-linux-gnu/libc.so.6", "usr/share/doc/libc6/copyright")
    assert found["libc6"].version == "2.36-9+deb12u4"
    assert found["tzdata"].files == ()


APK_DB = b"""C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
F:lib
R:ld-musl-x86_64.so.1
Z:Q1xyz=
R:libc.musl-x86_64.so.1
a:0:0:777

C:Q1def=
P:build-base
V:0.5-r3
A:x86_64
T:Meta package for build base

C:Q1ghi=
P:zlib-dev
V:1.3.1-r0
F:usr/include
R:zlib.h
R:zconf.h
F:usr/lib/pkgconfig
R:zlib.pc
"""


def test_apk_installed_database_gives_packages_with_their_files():
    """P: names, V: versions, and each R: file joined to the F: folder before it."""
    found = {p.name: p for p in pk.apk_packages(APK_DB)}
    assert found["musl"].files == ("lib/ld-musl-x86_64.so.1", "lib/libc.musl-x86_64.so.1")
    assert found["zlib-dev"].files == ("usr/include/zlib.h", "usr/include/zconf.h", "usr/lib/pkgconfig/zlib.pc")
    assert [found[n].build_only for n in ("musl", "build-base", "zlib-dev")] == [False, True, True]
    assert found["zlib-dev"].version == "1.3.1-r0"


@pytest.mark.parametrize("manager,name,build_only", [
    ("dpkg", "gcc-12", True), ("dpkg", "build-essential", True), ("dpkg", "libc6-dev", True),
    ("dpkg", "libc6", False), ("dpkg", "binutils-x86-64-linux-gnu", True), ("dpkg", "make", True),
    ("apk", "build-base", True), ("apk", "musl", False), ("npm", "node-gyp", True), ("npm", "@types/node", True),
    ("npm", "express", False), ("python", "cython", True), ("python", "requests", False),
], ids=lambda v: str(v))
def test_build_only_packages_are_marked_by_the_table(manager, name, build_only):
    """Compilers, -dev packages, build-essential and friends are marked build-only; runtimes are not."""
    assert (pk.build_only_reason(manager, name) is not None) is build_only


def _site_packages_of(module) -> Path:
    return Path(module.__file__).resolve().parent.parent


def test_python_record_files_are_owned_by_their_distribution():
    """A real wheel's RECORD (tabulate's, from this machine) lists the files its distribution owns,
    scripts outside site-packages included."""
    import tabulate
    site = _site_packages_of(tabulate)
    infos = glob.glob(str(site / "tabulate-*.dist-info"))
    if not infos:
        pytest.skip("tabulate is not installed as a wheel here")
    info = Path(infos[0])
    prefix = "usr/local/lib/python3.11/site-packages"
    record = (info / "RECORD").read_bytes()
    files = {f"{prefix}/{info.name}/RECORD": record,
             f"{prefix}/{info.name}/METADATA": (info / "METADATA").read_bytes(),
             f"{prefix}/tabulate/__init__.py": (site / "tabulate" / "__init__.py").read_bytes(),
             "usr/local/bin/tabulate": File(b"#!/usr/local/bin/python3\nimport tabulate\n", mode=0o755),
             "app/main.py": b"print('hi')\n"}
    a = attribute(to_model(image(layer(files, created_by="RUN pip install tabulate"))))
    rows = {r.key: r for r in by_package(a)}
    name, version = info.name[: -len(".dist-info")].rsplit("-", 1)
    row = rows[f"python:{name}"]
    assert row.version == version and not row.build_only
    owned = [p for p in files if p != "app/main.py"]
    assert row.files == len(owned)
    assert row.bytes == sum(f.size for f in a.files if f.path in owned)
    assert rows[NO_PACKAGE].files == 1


def test_npm_packages_own_their_directory_less_nested_packages():
    """node_modules/<name>/ (and @scope/<name>/) belongs to that package; a nested node_modules
    package owns its own files."""
    files = {
        "app/node_modules/express/package.json": b'{"name": "express", "version": "4.18.2"}',
        "app/node_modules/express/lib/express.js": 3_000,
        "app/node_modules/express/node_modules/debug/package.json": b'{"name": "debug", "version": "2.6.9"}',
        "app/node_modules/express/node_modules/debug/src/index.js": 700,
        "app/node_modules/@types/node/package.json": b'{"name": "@types/node", "version": "20.1.0"}',
        "app/node_modules/@types/node/index.d.ts": 9_000,
        "app/server.js": 400,
    }
    rows = {r.key: r for r in by_package(attribute(to_model(image(layer(files)))))}
    assert (rows["npm:express"].version, rows["npm:express"].files) == ("4.18.2", 2)
    assert rows["npm:express"].bytes == 3_000 + len(files["app/node_modules/express/package.json"])
    assert (rows["npm:debug"].version, rows["npm:debug"].files) == ("2.6.9", 2)
    assert rows["npm:@types/node"].build_only and not rows["npm:express"].build_only
    assert (rows[NO_PACKAGE].files, rows[NO_PACKAGE].bytes) == (1, 400)


def _real(path: str) -> bytes:
    if not os.path.isfile(path):
        pytest.skip(f"{path} is not on this machine")
    return Path(path).read_bytes()


def test_go_binaries_are_packages_named_by_their_embedded_build_info():
    """A real Go binary (Debian's umoci) is reported with its main package path and Go version;
    a large ELF file that is not Go is not."""
    go = _real("/usr/bin/umoci")
    other = _real("/usr/bin/x86_64-linux-gnu-ld.bfd")
    img = to_model(image(layer({"usr/local/bin/umoci": File(go, mode=0o755),
                                "usr/local/bin/linker": File(other, mode=0o755)})))
    a = attribute(img)
    gos = [p for p in a.packages if p.manager == "go"]
    assert len(gos) == 1
    pkg = gos[0]
    assert pkg.files == ("usr/local/bin/umoci",)
    assert b"path\t" + pkg.name.encode() + b"\n" in go  # the modinfo line the name came from
    assert pkg.note.startswith("go1.") and pkg.note.encode() in go
    assert {f.path: f.package for f in a.files} == {"usr/local/bin/umoci": pkg.key, "usr/local/bin/linker": None}


def test_go_build_info_parses_the_inline_format():
    """The Go 1.18+ header: magic, pointer size, flags=2, then varint-prefixed version and modinfo."""
    from slimmer.analyzer.content import GO_MAGIC, parse_go_build_info
    sentinel = b"0123456789abcdef"
    modinfo = (sentinel + b"path\texample.com/app/cmd/app\nmod\texample.com/app\tv1.2.3\t\n"
               b"dep\tgolang.org/x/net\tv0.19.0\th1:abc=\nbuild\t-compiler=gc\n" + sentinel)
    version = b"go1.21.5"
    blob = GO_MAGIC + bytes([8, 2]) + bytes(16) + bytes([len(version)]) + version
    blob += bytes([len(modinfo) & 0x7F | 0x80, len(modinfo) >> 7]) + modinfo
    info = parse_go_build_info(blob)
    assert (info.go_version, info.path, info.module, info.module_version) == (
        "go1.21.5", "example.com/app/cmd/app", "example.com/app", "v1.2.3")
    assert info.deps == (("golang.org/x/net", "v0.19.0"),)


# ---- a real image: umoci, real Debian package files ----------------------------------------

REAL_PACKAGES = ("make", "zlib1g-dev", "grep")


def _dpkg(*args: str) -> str:
    return subprocess.run(["dpkg-query", *args], check=True, capture_output=True, text=True).stdout


def _list_file(pkg: str) -> Path:
    found = glob.glob(f"/var/lib/dpkg/info/{pkg}.list") + glob.glob(f"/var/lib/dpkg/info/{pkg}:*.list")
    return Path(found[0])


@pytest.fixture(scope="module")
def debian_image(tmp_path_factory):
    """An OCI layout built by umoci from a rootfs holding real files, status stanzas and .list
    files of Debian packages installed on this machine (merged /usr: bin -> usr/bin)."""
    if not shutil.which("umoci") or not shutil.which("dpkg-query"):
        pytest.skip("umoci and dpkg are needed")
    for pkg in REAL_PACKAGES:
        if "install ok installed" not in subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                                                        capture_output=True, text=True).stdout:
            pytest.skip(f"{pkg} is not installed here")
    work = tmp_path_factory.mktemp("umoci")
    rootfs = work / "rootfs"
    (rootfs / "usr/bin").mkdir(parents=True)
    os.symlink("usr/bin", rootfs / "bin")
    expected = {}
    stanzas = []
    info = rootfs / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    for pkg in REAL_PACKAGES:
        stanzas.append(_dpkg("-s", pkg).strip())
        listing = _list_file(pkg)
        shutil.copy(listing, info / listing.name)
        total, count, seen = 0, 0, set()
        for line in listing.read_text().splitlines():
            if not os.path.isfile(line) or os.path.islink(line):
                continue
            real = os.path.join(os.path.realpath(os.path.dirname(line)), os.path.basename(line))
            if real in seen:
                continue
            seen.add(real)
            dest = rootfs / real.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(line, dest)
            total += os.path.getsize(line)
            count += 1
        expected[pkg] = (_dpkg("-W", "-f=${Version}", pkg), total, count)
    (rootfs / "var/lib/dpkg/status").write_text("\n\n".join(stanzas) + "\n")
    layout = work / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:latest"], check=True)
    bundle = work / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True, capture_output=True)
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    subprocess.run(["umoci", "repack", "--image", f"{layout}:latest", "--history.created_by",
                    "/bin/sh -c apt-get install -y make zlib1g-dev grep", str(bundle)], check=True)
    return open_image(layout), expected


def test_real_debian_packages_in_an_umoci_image_are_attributed_byte_for_byte(debian_image):
    """dpkg's status and .list files of real packages give each its exact bytes, through the
    bin -> usr/bin symlink and arch-qualified list names."""
    img, expected = debian_image
    rows = {r.key: r for r in analyze(img).packages}
    for pkg, (version, total, count) in expected.items():
        row = rows[f"dpkg:{pkg}"]
        assert (row.version, row.bytes, row.files) == (version, total, count), pkg
    assert rows["dpkg:make"].build_only and rows["dpkg:zlib1g-dev"].build_only
    assert not rows["dpkg:grep"].build_only


def test_build_only_packages_of_a_real_image_make_the_toolchain_finding(debian_image):
    """make and zlib1g-dev are named in the multi-stage finding, with all their bytes counted."""
    img, expected = debian_image
    result = analyze(img)
    finding = next(f for f in result.findings if f.id == "toolchain-in-final-image")
    details = " ".join(e.detail for e in finding.evidence)
    assert "package make" in details and "package zlib1g-dev" in details
    assert finding.savings_bytes >= expected["make"][1] + expected["zlib1g-dev"][1]
    assert finding.savings_bytes < sum(total for _v, total, _c in expected.values())
