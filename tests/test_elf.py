"""ELF loader facts (PT_INTERP, DT_NEEDED, DT_RPATH/DT_RUNPATH, DT_SONAME) read from crafted
files of both classes and byte orders and from this machine's real binaries, and where the
loader searches for a library."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess

import pytest

from slimmer.errors import ElfError
from slimmer.rewriter import loader
from slimmer.rewriter.elf import ElfInfo, read_elf

BASE = 0x400000


def make_elf(bits: int = 64, little: bool = True, machine: int = 62, interp: str = "", needed=(), rpath=(),
             runpath=(), soname: str = "", elf_type: int = 3) -> bytes:
    """Return a minimal valid ELF file: one PT_LOAD over the whole file, PT_INTERP and
    PT_DYNAMIC when there is anything to put in them."""
    end = "<" if little else ">"
    ehsize, phentsize = (64, 56) if bits == 64 else (52, 32)
    strings = b"\0"
    offsets = {}
    for text in [*needed, ":".join(rpath), ":".join(runpath), soname]:
        if text and text not in offsets:
            offsets[text] = len(strings)
            strings += text.encode() + b"\0"
    dyn = [(1, offsets[n]) for n in needed]
    if rpath:
        dyn.append((15, offsets[":".join(rpath)]))
    if runpath:
        dyn.append((29, offsets[":".join(runpath)]))
    if soname:
        dyn.append((14, offsets[soname]))
    has_dynamic = bool(dyn)
    phnum = 1 + bool(interp) + has_dynamic
    interp_off = ehsize + phnum * phentsize
    interp_bytes = interp.encode() + b"\0" if interp else b""
    str_off = interp_off + len(interp_bytes)
    dyn_off = str_off + len(strings)
    dyn_off += -dyn_off % 8
    dynfmt = end + ("qQ" if bits == 64 else "iI")
    dyn_entries = dyn + [(5, BASE + str_off), (10, len(strings)), (0, 0)] if has_dynamic else []
    dyn_bytes = b"".join(struct.pack(dynfmt, t, v) for t, v in dyn_entries)
    total = dyn_off + len(dyn_bytes)

    def ph(p_type, offset, size):
        if bits == 64:
            return struct.pack(end + "IIQQQQQQ", p_type, 4, offset, BASE + offset, BASE + offset, size, size, 8)
        return struct.pack(end + "IIIIIIII", p_type, offset, BASE + offset, BASE + offset, size, size, 4, 4)

    phdrs = ph(1, 0, total)
    if interp:
        phdrs += ph(3, interp_off, len(interp_bytes))
    if has_dynamic:
        phdrs += ph(2, dyn_off, len(dyn_bytes))
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if little else 2, 1]) + bytes(9)
    if bits == 64:
        header = ident + struct.pack(end + "HHIQQQIHHHHHH", elf_type, machine, 1, 0, ehsize, 0, 0, ehsize,
                                     phentsize, phnum, 64, 0, 0)
    else:
        header = ident + struct.pack(end + "HHIIIIIHHHHHH", elf_type, machine, 1, 0, ehsize, 0, 0, ehsize,
                                     phentsize, phnum, 40, 0, 0)
    body = header + phdrs + interp_bytes + strings
    body += bytes(dyn_off - len(body)) + dyn_bytes
    return body


def parse(data: bytes) -> ElfInfo | None:
    return read_elf(io.BytesIO(data), len(data), "test.elf")


@pytest.mark.parametrize("kwargs, expected", [
    pytest.param(dict(interp="/lib64/ld-linux-x86-64.so.2", needed=("libm.so.6", "libc.so.6")),
                 ElfInfo(64, True, 62, 3, "/lib64/ld-linux-x86-64.so.2", ("libm.so.6", "libc.so.6")),
                 id="a 64-bit little-endian program with an interpreter and two libraries"),
    pytest.param(dict(bits=32, little=False, machine=8, needed=("libfoo.so",), runpath=("$ORIGIN/../lib", "/opt/x")),
                 ElfInfo(32, False, 8, 3, "", ("libfoo.so",), (), ("$ORIGIN/../lib", "/opt/x")),
                 id="a 32-bit big-endian object with a two-entry RUNPATH"),
    pytest.param(dict(needed=("libz.so.1",), rpath=("/usr/local/lib",), soname="libapp.so.2"),
                 ElfInfo(64, True, 62, 3, "", ("libz.so.1",), ("/usr/local/lib",), (), "libapp.so.2"),
                 id="a library with an RPATH and a SONAME"),
    pytest.param(dict(elf_type=2), ElfInfo(64, True, 62, 2),
                 id="a static executable names nothing"),
])
def test_crafted_files_are_read(kwargs, expected):
    """Interpreter, needed libraries, rpaths and soname come out of files of every class and order."""
    info = parse(make_elf(**kwargs))
    assert info == expected
    assert info.is_dynamic == bool(expected.interpreter or expected.needed)


def test_a_file_without_the_magic_is_not_elf():
    """A script or data file is not ELF: None, not an error."""
    assert parse(b"#!/bin/sh\necho hi\n") is None
    assert parse(b"") is None


@pytest.mark.parametrize("data", [
    pytest.param(make_elf(needed=("libc.so.6",))[:80], id="cut inside the program headers"),
    pytest.param(make_elf(needed=("libc.so.6",))[:-8], id="cut inside the dynamic segment"),
    pytest.param(b"\x7fELF\x03\x01\x01" + bytes(60), id="an unknown ELF class"),
    pytest.param(make_elf(needed=("libc.so.6",)).replace(b"libc.so.6\0", b"libc.so.6x"), id="an unterminated string"),
])
def test_a_broken_elf_file_raises_elf_error(data):
    """Headers that point past the end or strings without an end raise ElfError naming the file."""
    with pytest.raises(ElfError, match=r"test\.elf"):
        parse(data)


def test_a_hostile_program_header_count_is_refused():
    """An ELF header claiming 65535 program headers is refused before any is read."""
    data = bytearray(make_elf(needed=("libc.so.6",)))
    data[56:58] = struct.pack("<H", 0xFFFF)
    with pytest.raises(ElfError, match="program headers"):
        parse(bytes(data))


def _readelf(path: str) -> tuple[str, list[str], list[str], str]:
    out = subprocess.run(["readelf", "-ldW", path], capture_output=True, text=True, check=True).stdout
    interp = re.search(r"Requesting program interpreter: ([^\]]+)\]", out)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    runpath = re.findall(r"\((?:RUNPATH)\)\s+Library runpath: \[([^\]]+)\]", out)
    soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    return (interp.group(1) if interp else "", needed, [p for r in runpath for p in r.split(":")],
            soname.group(1) if soname else "")


REAL = [p for p in ("/usr/bin/ls", "/usr/bin/python3.11", "/lib/x86_64-linux-gnu/libc.so.6",
                    "/lib/x86_64-linux-gnu/libselinux.so.1", "/usr/bin/skopeo") if os.path.exists(p)]


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs binutils' readelf")
@pytest.mark.parametrize("path", REAL)
def test_real_binaries_agree_with_readelf(path):
    """For this machine's programs and libraries, slimmer reads what readelf prints."""
    real = os.path.realpath(path)
    with open(real, "rb") as f:
        info = read_elf(f, os.path.getsize(real), path)
    assert (info.interpreter, list(info.needed), list(info.runpath), info.soname) == _readelf(real)


INFO64 = ElfInfo(64, True, 62, 3, rpath=("/r",), runpath=())
WITH_RUNPATH = ElfInfo(64, True, 62, 3, rpath=("/r",), runpath=("$ORIGIN/../lib",))


@pytest.mark.parametrize("info, inherited, ld_path, conf, expected_head", [
    pytest.param(INFO64, [], [], [], ["/r", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64"],
                 id="RPATH comes first, then Debian's multiarch defaults"),
    pytest.param(WITH_RUNPATH, ["/exe-rpath"], ["/ldp"], ["/conf"], ["/ldp", "/opt/app/lib", "/conf"],
                 id="a RUNPATH silences every RPATH and follows LD_LIBRARY_PATH"),
    pytest.param(INFO64, ["/exe-rpath"], ["/ldp"], ["/conf"], ["/r", "/exe-rpath", "/ldp", "/conf"],
                 id="the program's RPATH serves its libraries too"),
])
def test_search_order_follows_ld_so(info, inherited, ld_path, conf, expected_head):
    """Directories come in ld.so(8) order, $ORIGIN expanded against the object's directory."""
    dirs = loader.search_dirs("/opt/app/bin", info, inherited, ld_path, conf)
    assert dirs[:len(expected_head)] == expected_head
    assert dirs[-3:] == ["/lib", "/usr/local/lib", "/usr/lib"]


@pytest.mark.parametrize("entry, expected", [
    pytest.param("$ORIGIN/../lib", ["/opt/app/bin/../lib"], id="$ORIGIN"),
    pytest.param("${ORIGIN}/plugins", ["/opt/app/bin/plugins"], id="${ORIGIN}"),
    pytest.param("/opt/$LIB", ["/opt/lib/x86_64-linux-gnu", "/opt/lib64"], id="$LIB in both spellings"),
    pytest.param("/opt/$PLATFORM/lib", ["/opt/x86_64/lib"], id="$PLATFORM"),
])
def test_rpath_tokens_expand(entry, expected):
    """$ORIGIN, $LIB and $PLATFORM expand as glibc does (and as Debian spells $LIB)."""
    assert loader.expand(entry, "/opt/app/bin", INFO64) == expected


def test_ld_so_conf_lists_dirs_and_includes():
    """ld.so.conf gives directories and include patterns; hwcap lines and comments are skipped."""
    text = "# comment\ninclude /etc/ld.so.conf.d/*.conf\n/usr/local/lib\nhwcap 0 nosegneg\n/opt/a:/opt/b\n"
    assert loader.parse_ld_so_conf(text) == (["/usr/local/lib", "/opt/a", "/opt/b"], ["/etc/ld.so.conf.d/*.conf"])
    assert loader.include_matches("ld.so.conf.d/*.conf", "/etc", ["a.conf", "b.txt", "c.conf"]) == [
        "/etc/ld.so.conf.d/a.conf", "/etc/ld.so.conf.d/c.conf"]
