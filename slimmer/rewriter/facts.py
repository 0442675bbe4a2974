"""What ``slimmer slim`` learns from file contents in the scan pass, so the entrypoint closure
never reads a layer again: the policy (``SlimPolicy``) and the probes it runs.

The scanner records the category rule of every file (``slimmer.analyzer.categories``, in
the layer's columns: ``Columns.rules``), for prune. Per regular file, by kind
(``slimmer.tar.collect``):
- ``ELF``: the loader facts of an ELF object (``slimmer.rewriter.elf.read_elf`` run over the
  bounded byte ranges it needs, buffered as they stream by: the head up to the dynamic
  segment, at most ELF_PREFIX bytes, and the dynamic segment itself); ``ELF_ERROR`` for a
  broken one; ``ELF_FAR`` when its string table lies past what was buffered (the closure
  reads that file again, alone);
- ``HEAD``: the first line of a ``#!`` script;
- ``TEXT``: the text of small files the closure reads: the loader's configuration, passwd
  and group, ``.pth`` files, shell scripts, ``*.dist-info`` RECORD, top_level.txt and
  entry_points.txt, at most TEXT_BYTES;
- ``PY``: the imports of a Python source or script (``slimmer.rewriter.imports``);
- ``CODECS``: the codec names it gives with literals, and whether it computes one (only for a
  file that names some or computes one: no fact is none);
- ``ALIASES``: the ``aliases`` dict of ``encodings/aliases.py``, as pairs;
- ``JS``: the ``require``/``import`` specifiers of a JavaScript file;
- ``JSON``: the fields of a ``package.json`` that Node's resolution reads.

The policy also asks the scanner for each member's span (``slimmer.tar.collect.SPANS``: where
its header blocks start and its data ends), so the write pass can copy runs of kept members as
they are. Which files are probed is decided from the entry alone (name, mode, size), so most
files of an image get no probe at all. Imports the model, ``slimmer.tar.collect`` and rewriter modules.
"""

from __future__ import annotations

import io
import json
import posixpath
import struct
from typing import BinaryIO, cast

from slimmer.analyzer import categories as cats
from slimmer.errors import ElfError
from slimmer.model import Entry
from slimmer.rewriter import imports
from slimmer.rewriter.elf import MAGIC, ElfInfo, read_elf
from slimmer.tar.collect import Facts
from slimmer.tar.scan import Select

ELF = "elf"
ELF_ERROR = "elf-error"
ELF_FAR = "elf-far"
HEAD = "head"
TEXT = "text"
PY = "py"
CODECS = "codecs"
ALIASES = "aliases"
ALIASES_FILE = "/encodings/aliases.py"
JS = "js"
JSON = "json"

VERSION = 4  # bump when a fact's meaning changes
ELF_PREFIX = 16 << 20  # an ELF object's head is buffered up to its dynamic segment, at most this far
TEXT_BYTES = 1 << 20  # small files kept as text
SOURCE_BYTES = 4 << 20  # Python and JavaScript sources parsed for imports, at most this large
HEAD_BYTES = 256

_TEXT_NAMES = frozenset({"etc/passwd", "etc/group", "etc/ld.so.conf", "etc/nsswitch.conf"})
_TEXT_BASENAMES = frozenset({"RECORD", "top_level.txt", "entry_points.txt", "namespace_packages.txt",
                             "installed-files.txt"})
JS_SUFFIXES = (".js", ".cjs", ".mjs")


def wants_text(path: str) -> bool:
    """Return whether the closure reads ``path``'s text (and so the policy records it)."""
    if path in _TEXT_NAMES or path.endswith((".pth", ".sh")):
        return True
    if path.startswith("etc/ld.so.conf.d/") or (path.startswith("etc/ld-musl-") and path.endswith(".path")):
        return True
    base = posixpath.basename(path)
    return base in _TEXT_BASENAMES and (".dist-info/" in path or ".egg-info/" in path)


def maybe_elf(path: str, mode: int) -> bool:
    """Return whether ``path`` may be an ELF object the loader maps (a program or a library)."""
    base = path.rpartition("/")[2]
    return bool(mode & 0o111) or base.endswith((".so", ".node")) or ".so." in base


class SlimPolicy:
    """The content policy of ``slimmer slim`` (see the module docstring)."""

    spans = True  # where each member lies in the layer's tar: the write pass copies kept runs as they are
    # every member is shown (which files are probed depends on their mode too), and the scanner
    # records each file's category rule, once per directory and base name
    select: Select | None = Select(classifier=cats.CLASSIFIER, every=True)

    def __init__(self):
        # names what the facts mean: the layer cache keys on it
        self.key = f"slim-v{VERSION}-{imports.VERSION}-{cats.rules_key()}"

    def sink(self, entry: Entry, facts: Facts):
        path = entry.path
        size = entry.size
        if not size or entry.offset < 0:
            return None  # empty, or sparse: its stream holds a map, not the file
        need = 0
        if maybe_elf(path, entry.mode):
            need |= _ELF | _HEAD
        if entry.mode & 0o111 and size <= SOURCE_BYTES:
            need |= _HEAD | _SCRIPT
        if wants_text(path) and size <= TEXT_BYTES:
            need |= _TEXT
        if path.endswith(".py") and size <= SOURCE_BYTES:
            need |= _PY
        elif path.endswith(JS_SUFFIXES) and size <= SOURCE_BYTES:
            need |= _JS
        elif path.endswith("/package.json") and size <= TEXT_BYTES:
            need |= _JSON
        if not need:
            return None
        return _Probe(entry, need, facts)


_ELF, _HEAD, _SCRIPT, _TEXT, _PY, _JS, _JSON = 1, 2, 4, 8, 16, 32, 64
_WHOLE = _SCRIPT | _TEXT | _PY | _JS | _JSON


class _Probe:
    """One file's bytes as they stream by: the ranges the policy asked for."""

    __slots__ = ("buf", "dyn", "dyn_range", "entry", "facts", "limit", "need", "pos", "stage")

    def __init__(self, entry: Entry, need: int, facts: Facts):
        self.entry, self.need, self.facts = entry, need, facts
        self.pos = 0
        self.buf = bytearray()
        # how much of the head to keep: for a whole-file probe the file, else enough for the
        # ELF header; widened once the program headers are in
        self.limit = entry.size if need & _WHOLE else min(entry.size, 64 if need & _ELF else HEAD_BYTES)
        self.dyn: bytearray | None = None
        self.dyn_range = (0, 0)
        self.stage = 0  # ELF: 0 before the header, 1 before the program headers, 2 after

    def write(self, data: memoryview) -> None:
        start = self.pos
        self.pos = end = start + len(data)
        buf = self.buf
        while len(buf) < self.limit and len(buf) < end:
            buf += data[len(buf) - start:self.limit - start]
            if not (self.need & _ELF and self.stage < 2):
                break
            self._widen()
        if self.dyn is not None:
            lo, hi = self.dyn_range
            a, b = max(start, lo + len(self.dyn)), min(end, hi)
            if a < b:
                self.dyn += data[a - start:b - start]

    def _widen(self) -> None:
        """Once the ELF header (then the program headers) are in, say how far to buffer."""
        buf, size = self.buf, self.entry.size
        if self.stage == 0:
            if len(buf) < min(64, size):
                return
            if not buf.startswith(b"#!"):
                self.need &= ~_SCRIPT
            if bytes(buf[:4]) != MAGIC or len(buf) < 52:
                self.need &= ~_ELF
                self.limit = size if self.need & _WHOLE else min(size, HEAD_BYTES)
                return
            self.need &= ~_SCRIPT
            self.stage = 1
            phoff, phentsize, phnum = _phdr_table(buf)
            self.limit = size if self.need & _WHOLE else min(size, max(64, phoff + phentsize * phnum), ELF_PREFIX)
        if self.stage == 1 and len(buf) >= self.limit:
            self.stage = 2
            far = 0
            for p_type, offset, filesz in _segments(buf):
                if p_type == 3:  # PT_INTERP
                    far = max(far, offset + filesz)
                elif p_type == 2:  # PT_DYNAMIC: buffer the head up to it, and it apart
                    far = max(far, offset)
                    self.dyn_range = (offset, offset + min(filesz, 1 << 20))
                    self.dyn = bytearray()
                    if offset < len(buf):
                        self.dyn += buf[offset:offset + min(filesz, 1 << 20)]
            self.limit = max(self.limit, min(size, far, ELF_PREFIX))

    def end(self) -> None:
        entry, facts, path = self.entry, self.facts, self.entry.path
        data = bytes(self.buf)
        if self.need & _ELF and data[:4] == MAGIC:
            self._elf(data)
            return
        if data.startswith(b"#!"):
            facts.put(HEAD, path, data[:HEAD_BYTES].split(b"\n", 1)[0])
        whole = self.need & _WHOLE and len(data) == entry.size
        if not whole:
            return
        if self.need & _TEXT or (self.need & _SCRIPT and data.startswith(b"#!") and len(data) <= TEXT_BYTES):
            facts.put(TEXT, path, data.decode("utf-8", "surrogateescape"))
        if self.need & _PY or (self.need & _SCRIPT and _is_python_script(data)):
            facts.put(PY, path, imports.python_imports(data))
            named = imports.codec_names(data)
            if named[0] or named[1]:
                facts.put(CODECS, path, named)
            if path.endswith(ALIASES_FILE):
                facts.put(ALIASES, path, imports.codec_aliases(data))
        elif self.need & _JS or (self.need & _SCRIPT and _is_node_script(data)):
            found = imports.js_requires(data)
            if found[0] or found[1]:  # most files of a node_modules tree name nothing: no fact is none
                facts.put(JS, path, found)
        elif self.need & _JSON:
            facts.put(JSON, path, _package_fields(data))

    def _elf(self, data: bytes) -> None:
        path = self.entry.path
        try:
            ranges = cast(BinaryIO, _Ranges(data, self.dyn_range, bytes(self.dyn or b"")))
            info = read_elf(ranges, self.entry.size, "/" + path)
        except _NotBuffered:
            self.facts.put(ELF_FAR, path, True)
            return
        except ElfError as err:
            self.facts.put(ELF_ERROR, path, str(err))
            return
        if info is not None:
            self.facts.put(ELF, path, elf_fact(info))


def elf_fact(info: ElfInfo) -> tuple:
    """Return ``info`` as a fact (a tuple of plain values)."""
    return (info.bits, info.little_endian, info.machine, info.elf_type, info.interpreter, info.needed, info.rpath,
            info.runpath, info.soname)


def elf_info(fact: tuple) -> ElfInfo:
    """Return the ElfInfo an ``ELF`` fact holds."""
    bits, little, machine, elf_type, interp, needed, rpath, runpath, soname = fact
    return ElfInfo(bits, little, machine, elf_type, interp, tuple(needed), tuple(rpath), tuple(runpath), soname)


def _phdr_table(head: bytearray) -> tuple[int, int, int]:
    end = "<" if head[5] == 1 else ">"
    if head[4] == 2:
        phoff, = struct.unpack_from(end + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
    else:
        phoff, = struct.unpack_from(end + "I", head, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
    return phoff, phentsize, min(phnum, 4096)


def _segments(head: bytearray):
    """Yield (type, offset, filesz) of the program headers that lie in ``head``."""
    phoff, phentsize, phnum = _phdr_table(head)
    end = "<" if head[5] == 1 else ">"
    is64 = head[4] == 2
    for k in range(phnum):
        base = phoff + k * phentsize
        if base + (56 if is64 else 32) > len(head):
            return
        if is64:
            p_type, _f, offset, _v, _p, filesz = struct.unpack_from(end + "IIQQQQ", head, base)
        else:
            p_type, offset, _v, _p, filesz = struct.unpack_from(end + "IIIII", head, base)
        yield p_type, offset, filesz


class _NotBuffered(Exception):
    """A read of a range the probe did not keep (the file is read again, alone)."""


class _Ranges(io.RawIOBase):
    """A file made of the buffered head and the dynamic segment, for ``read_elf``."""

    def __init__(self, head: bytes, dyn_range: tuple[int, int], dyn: bytes):
        self.head, self.dyn_lo, self.dyn = head, dyn_range[0], dyn
        self.at = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        self.at = offset
        return offset

    def read(self, n: int = -1) -> bytes:
        lo, hi = self.at, self.at + n
        self.at = hi
        if hi <= len(self.head):
            return self.head[lo:hi]
        if self.dyn and self.dyn_lo <= lo and hi <= self.dyn_lo + len(self.dyn):
            return self.dyn[lo - self.dyn_lo:hi - self.dyn_lo]
        raise _NotBuffered()


def _is_python_script(data: bytes) -> bool:
    line = data[:HEAD_BYTES].split(b"\n", 1)[0]
    return data.startswith(b"#!") and b"python" in line


def _is_node_script(data: bytes) -> bool:
    line = data[:HEAD_BYTES].split(b"\n", 1)[0]
    return data.startswith(b"#!") and b"node" in line


PACKAGE_FIELDS = ("name", "version", "main", "exports", "type", "imports", "dependencies", "optionalDependencies")


def _package_fields(data: bytes):
    """Return the fields of a package.json that resolution reads ({} when it is not JSON)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: value[k] for k in PACKAGE_FIELDS if k in value}
