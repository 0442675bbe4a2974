"""What the analysis learns from file contents, gathered in the scan pass (one read of every
layer): the policy that says which probe reads which file, and the probes.

The scanner records the category rule of each regular file (``Columns.rules``, matched once
per directory and base name by ``categories.CLASSIFIER``); with contents on the policy reads
only what paths cannot tell, and ``select`` tells the scanner which members those may be:
- ``MAGIC``: libmagic's description of the first bytes of a file no path rule matches;
- ``DATA``: the whole of a package database (``packages.is_database``), up to MAX_DB_BYTES
  (larger ones are listed under ``TOO_LARGE``);
- ``GO``: the build info a Go binary embeds (an executable of 1 MiB or more that no rule calls
  a toolchain or a cache);
- ``HASH``: an xxh3-128 content hash of files of DUPLICATE_MIN_BYTES or more, for duplicates.
Facts are keyed by kind then path within a layer (``slimmer.tar.collect``). Images that were
never scanned with the policy (built in code) get their facts from ``ensure_facts``, which
re-reads their layers verified. Imports the model, ``slimmer.tar`` and the category rules.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import threading
from collections.abc import Mapping

import xxhash

from slimmer.analyzer import categories as cats
from slimmer.analyzer import packages
from slimmer.analyzer.packages import GoBuildInfo
from slimmer.model import Entry, Image
from slimmer.tar.collect import Collector, Facts, as_mapping
from slimmer.tar.scan import Select

MAGIC = "magic"
DATA = "data"
TOO_LARGE = "too-large"
GO = "go"
HASH = "hash"

HEAD_BYTES = 4096  # enough for libmagic on ELF, scripts and archives, and ELF program headers
MAX_DB_BYTES = 32 << 20  # a package database larger than this is not read
MAX_DB_TOTAL = 256 << 20  # nor, in one layer, past this many database bytes in all
GO_SEARCH_BYTES = 1 << 20  # how far into the writable segment the Go build info may start
GO_MAX_OFFSET = 512 << 20  # do not look past this for Go build info
GO_MIN_BYTES = 1 << 20  # no Go binary is smaller than this
DUPLICATE_MIN_BYTES = 64 << 10  # smaller files are not hashed for duplicate detection
VERSION = 2  # of the probes: bump when a fact's meaning changes

GO_MAGIC = b"\xff Go buildinf:"
_GO_MODINFO_SENTINEL = 16


_local = threading.local()


def _describer():
    """Return libmagic's from_buffer for this thread (a handle is not thread-safe), or None."""
    describe = getattr(_local, "describe", False)
    if describe is False:
        try:
            import magic
            describe = magic.Magic().from_buffer
        except ImportError:  # libmagic missing: categories fall back to path rules
            describe = None
        _local.describe = describe
    return describe


def _describe(head: bytes) -> str | None:
    """Return libmagic's description of ``head`` (None without libmagic); ctypes lets go of
    the GIL for the call, so the reader may run it on a thread of its own."""
    describe = _describer()
    return describe(head) if describe is not None else None


class AnalysisPolicy:
    """The analyzer's content policy (see the module docstring); ``content`` False records
    only the rule of each file."""

    def __init__(self, content: bool = True):
        self.content = content
        self.key = self._key(content)
        self._budget: dict[int, int] = {}
        # every file sink() may want: hashed or Go-probed from DUPLICATE_MIN_BYTES (<= GO_MIN_BYTES)
        # on, package databases by their endings, libmagic for files no rule matches
        self.select: Select | None = Select(DUPLICATE_MIN_BYTES, packages.DB_ENDINGS, (packages.DPKG_STATUS_D,), True,
                             cats.CLASSIFIER) if content else Select(classifier=cats.CLASSIFIER)

    @staticmethod
    def _key(content: bool) -> str:
        return f"analyze-v{VERSION}-{cats.rules_key()}" + ("" if content else "-rules")

    def satisfied_by(self, key: str) -> bool:
        """Return whether facts gathered under policy ``key`` hold all this policy needs."""
        return key == self.key or (not self.content and key == self._key(True))

    def sink(self, entry: Entry, facts: Facts):
        path = entry.path
        size = entry.size
        if not self.content or not size or entry.offset < 0:
            return None  # empty, or sparse: its stream holds a map, not the file
        index = rule_index(path)
        need = 0
        if index < 0:
            need |= _HEAD
        if packages.is_database(path):
            need |= _FULL
        if size >= GO_MIN_BYTES and entry.mode & 0o111 and (index < 0 or cats.RULES[index].category in
                                                           (cats.RUNTIME, cats.OTHER)):
            need |= _GO
        if size >= DUPLICATE_MIN_BYTES:
            need |= _HASH
        if not need:
            return None
        if need & _FULL:
            used = self._budget.get(id(facts), 0)
            if size > MAX_DB_BYTES or used + size > MAX_DB_TOTAL:
                facts.put(TOO_LARGE, path, size)
                need &= ~_FULL
                if not need:
                    return None
            else:
                self._budget[id(facts)] = used + size
        return _Probe(path, size, need, facts)


_HEAD, _FULL, _GO, _HASH = 1, 2, 4, 8
rule_index = cats.rule_index


class _Probe:
    """Reads one file's bytes as they stream by and records what the policy asked for."""

    __slots__ = (
        "facts",
        "full",
        "go_hi",
        "go_lo",
        "go_next",
        "go_window",
        "hasher",
        "head",
        "need",
        "path",
        "pos",
        "size",
    )

    def __init__(self, path: str, size: int, need: int, facts: Facts):
        self.path, self.size, self.need, self.facts = path, size, need, facts
        self.head: bytearray | None = bytearray() if need & (_HEAD | _GO) else None
        self.full: bytearray | None = bytearray() if need & _FULL else None
        self.hasher = xxhash.xxh3_128() if need & _HASH else None
        self.pos = 0
        self.go_lo = self.go_hi = self.go_next = 0  # the Go build info search window, file offsets
        self.go_window: bytearray | None = None

    def write(self, data: memoryview) -> None:
        start = self.pos
        self.pos = pos = start + len(data)
        if self.hasher is not None:
            self.hasher.update(data)
        if self.full is not None:
            self.full += data
        head = self.head
        if head is not None and len(head) < HEAD_BYTES:
            head += data[:HEAD_BYTES - len(head)]
            if (len(head) >= HEAD_BYTES or pos >= self.size) and self.need & _GO:
                self._go_window(head)
        window = self.go_window
        if window is not None:
            lo, hi = max(start, self.go_next), min(pos, self.go_hi)
            if lo < hi:
                window += data[lo - start:hi - start]
                self.go_next = hi

    def _go_window(self, head: bytearray) -> None:
        """Once the head is in: find where a Go binary's build info may start, and keep the
        bytes of that window as they pass."""
        layout = _elf_layout(bytes(head))
        if layout is None or not layout[0] or layout[1] > min(self.size, GO_MAX_OFFSET):
            return
        self.go_lo = layout[1]
        self.go_hi = min(self.size, self.go_lo + GO_SEARCH_BYTES)
        self.go_window = bytearray(head[self.go_lo:self.go_hi])
        self.go_next = max(self.go_lo, min(len(head), self.go_hi))

    def end(self) -> None:
        facts, path = self.facts, self.path
        if self.need & _HEAD and self.head:
            facts.later(MAGIC, path, functools.partial(_describe, bytes(self.head)))
        if self.full is not None:
            facts.put(DATA, path, bytes(self.full))
        if self.hasher is not None:
            facts.put(HASH, path, self.hasher.digest())
        if self.go_window is not None:
            found = _find_go(bytes(self.go_window), self.go_lo)
            if found is not None:
                facts.put(GO, path, found.to_fact())


def collect(image: Image, layers: list[int], policy: AnalysisPolicy) -> dict[int, dict]:
    """Return {layer index: facts} for ``layers`` of ``image``, read again through the verified
    re-stream (for images the reader did not scan with ``policy``, such as ones built in code)."""
    from slimmer.tar.restream import restream

    out = {}
    for i in layers:
        collector = Collector(policy)
        restream(image.layers[i], collector.visit, f"{image.source or 'image'}: layer {i}")
        out[i] = as_mapping(collector.facts)
    return out


def ensure_facts(image: Image, policy: AnalysisPolicy) -> Image:
    """Return ``image`` with every layer carrying facts of ``policy`` (as the reader's scan
    gives them); layers without are read again, verified."""
    missing = [i for i, layer in enumerate(image.layers)
               if layer.facts is None or not policy.satisfied_by(layer.facts_policy)]
    if not missing:
        return image
    found = collect(image, missing, policy)
    layers = tuple(dataclasses.replace(layer, facts=found[i], facts_policy=policy.key) if i in found else layer
                   for i, layer in enumerate(image.layers))
    return dataclasses.replace(image, layers=layers)


def facts_of(image: Image, kind: str) -> list[Mapping]:
    """Return, per layer, its ``kind`` facts ({path: value}; empty where it has none)."""
    return [(layer.facts or {}).get(kind, {}) for layer in image.layers]


# ---- Go build info --------------------------------------------------------------------------
# Go's debug/buildinfo: the linker writes a 32-byte header starting with "\xff Go buildinf:"
# (then pointer size and flags) at a 16-byte boundary at the start of the writable data
# (the .go.buildinfo section). With flag 2 (Go 1.18+) the version and module info follow
# inline as varint-prefixed strings; the module info is wrapped in 16-byte sentinels.


def _elf_layout(head: bytes) -> tuple[bool, int] | None:
    """Return (has a Go build-id note, file offset of the first writable PT_LOAD), or None if
    ``head`` is not an ELF header whose program headers fit in it."""
    if len(head) < 64 or head[:4] != b"\x7fELF":
        return None
    is64 = head[4] == 2
    end = "<" if head[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(end + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
    else:
        phoff, = struct.unpack_from(end + "I", head, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
    if phoff + phentsize * phnum > len(head) or phentsize == 0:
        return None
    go_note = False
    data_off = None
    for k in range(phnum):
        base = phoff + k * phentsize
        if is64:
            p_type, p_flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(end + "IIQQQQ", head, base)
        else:
            p_type, p_offset, _va, _pa, p_filesz, _memsz, p_flags = struct.unpack_from(end + "IIIIIII", head, base)
        if p_type == 1 and p_flags & 2 and data_off is None:
            data_off = p_offset
        elif p_type == 4 and p_offset + p_filesz <= len(head):
            go_note = go_note or _has_go_note(head[p_offset:p_offset + p_filesz], end)
    if data_off is None:
        return None
    return go_note, data_off


def _has_go_note(notes: bytes, end: str) -> bool:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, _type = struct.unpack_from(end + "III", notes, pos)
        name = notes[pos + 12:pos + 12 + namesz].rstrip(b"\0")
        if name == b"Go":
            return True
        pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


def _find_go(window: bytes, base: int) -> GoBuildInfo | None:
    """Return the build info in ``window`` (file bytes from offset ``base``): its header starts
    at a 16-byte boundary of the file."""
    at = 0
    while True:
        at = window.find(GO_MAGIC, at)
        if at < 0:
            return None
        if (base + at) % 16 == 0:
            return parse_go_build_info(window[at:])
        at += 1


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def parse_go_build_info(blob: bytes) -> GoBuildInfo:
    """Return the build info in ``blob`` (starting at the ``\\xff Go buildinf:`` header). Old
    (pre-1.18) binaries keep it behind pointers: their info is reported as unknown."""
    flags = blob[15] if len(blob) > 15 else 0
    if not flags & 2:
        return GoBuildInfo("", "", "", "")
    try:
        n, pos = _varint(blob, 32)
        version = blob[pos:pos + n].decode("utf-8", "replace")
        pos += n
        n, pos = _varint(blob, pos)
        modinfo = blob[pos:pos + n].decode("utf-8", "replace")
    except ValueError:
        return GoBuildInfo("", "", "", "")
    if len(modinfo) >= 2 * _GO_MODINFO_SENTINEL + 1 and modinfo[-_GO_MODINFO_SENTINEL - 1] == "\n":
        modinfo = modinfo[_GO_MODINFO_SENTINEL:-_GO_MODINFO_SENTINEL]
    return _parse_modinfo(version, modinfo)


def _parse_modinfo(version: str, modinfo: str) -> GoBuildInfo:
    path = module = module_version = ""
    deps = []
    for line in modinfo.splitlines():
        parts = line.split("\t")
        if parts[0] == "path" and len(parts) > 1:
            path = parts[1]
        elif parts[0] == "mod" and len(parts) > 1:
            module = parts[1]
            module_version = parts[2] if len(parts) > 2 else ""
        elif parts[0] == "dep" and len(parts) > 2:
            deps.append((parts[1], parts[2]))
    return GoBuildInfo(version, path, module, module_version, tuple(deps))
