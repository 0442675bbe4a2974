"""Where the dynamic loader looks for a shared object, per ld.so(8) and musl's ldso:

1. a name holding ``/`` is a path; otherwise
2. DT_RPATH of the object (only when it has no DT_RUNPATH) and of the program that loads it,
3. ``LD_LIBRARY_PATH`` from the image's environment,
4. DT_RUNPATH of the object itself,
5. the directories of ``/etc/ld.so.conf`` and the files it includes (what ``ldconfig`` puts in
   ``ld.so.cache``), or musl's ``/etc/ld-musl-ARCH.path``,
6. the default directories (Debian's multiarch ones, then ``lib64``, ``lib``).

``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` in rpaths are expanded. Imports nothing of slimmer
but ``slimmer.rewriter.elf``.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re

from slimmer.rewriter.elf import ElfInfo

# e_machine -> Debian multiarch tuple (Debian's glibc searches these before lib64/lib)
MULTIARCH = {
    62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu", 3: "i386-linux-gnu", 40: "arm-linux-gnueabihf",
    21: "powerpc64le-linux-gnu", 22: "s390x-linux-gnu", 243: "riscv64-linux-gnu", 8: "mips64el-linux-gnuabi64",
}
PLATFORM = {62: "x86_64", 183: "aarch64", 3: "i686", 40: "v7l", 21: "powerpc64le", 22: "s390x", 243: "riscv64"}
_ORIGIN = re.compile(r"\$(\{ORIGIN\}|ORIGIN\b)")
_LIB = re.compile(r"\$(\{LIB\}|LIB\b)")
_PLATFORM = re.compile(r"\$(\{PLATFORM\}|PLATFORM\b)")


def default_dirs(info: ElfInfo) -> list[str]:
    """Return the loader's built-in directories for an object of ``info``'s class and machine."""
    dirs = []
    arch = MULTIARCH.get(info.machine)
    if arch:
        dirs += [f"/lib/{arch}", f"/usr/lib/{arch}"]
    if info.bits == 64:
        dirs += ["/lib64", "/usr/lib64"]
    return dirs + ["/lib", "/usr/local/lib", "/usr/lib"]


def expand(entry: str, origin: str, info: ElfInfo) -> list[str]:
    """Return the directories one rpath/runpath entry stands for (``$LIB`` has two spellings:
    glibc's ``lib64`` and Debian's ``lib/<multiarch>``)."""
    text = _ORIGIN.sub(origin.replace("\\", "\\\\"), entry)
    text = _PLATFORM.sub(PLATFORM.get(info.machine, ""), text)
    if _LIB.search(text):
        libs = ["lib64" if info.bits == 64 else "lib"]
        if info.machine in MULTIARCH:
            libs.insert(0, "lib/" + MULTIARCH[info.machine])
        return [_LIB.sub(lib, text) for lib in libs]
    return [text]


def search_dirs(obj_dir: str, info: ElfInfo, inherited_rpath: list[str], ld_library_path: list[str],
                conf_dirs: list[str]) -> list[str]:
    """Return, in order, the directories searched for the DT_NEEDED names of an object that
    lives in ``obj_dir`` (an absolute path) with loader facts ``info``."""
    origin = obj_dir or "/"
    dirs: list[str] = []
    if not info.runpath:
        for entry in list(info.rpath) + inherited_rpath:
            dirs += expand(entry, origin, info)
    dirs += ld_library_path
    for entry in info.runpath:
        dirs += expand(entry, origin, info)
    dirs += conf_dirs
    dirs += default_dirs(info)
    out: list[str] = []
    for d in dirs:
        d = posixpath.normpath(d) if d.startswith("/") else posixpath.normpath(posixpath.join(origin, d))
        if d not in out:
            out.append(d)
    return out


def parse_ld_so_conf(text: str) -> tuple[list[str], list[str]]:
    """Return (directories, include patterns) of one ld.so.conf file's text."""
    dirs, includes = [], []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            includes += line.split()[1:]
        elif line.startswith("hwcap"):
            continue
        else:
            dirs += [d for d in re.split(r"[\s:,]+", line) if d.startswith("/")]
    return dirs, includes


def include_matches(pattern: str, conf_dir: str, children: list[str]) -> list[str]:
    """Return the paths among ``children`` of a pattern's directory that an ``include``
    pattern names (relative patterns are relative to the including file's directory)."""
    if not pattern.startswith("/"):
        pattern = posixpath.join(conf_dir, pattern)
    parent, base = posixpath.split(pattern)
    return sorted(posixpath.join(parent, c) for c in children if fnmatch.fnmatchcase(c, base))
