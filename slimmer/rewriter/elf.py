"""What the dynamic loader needs to start an ELF file: its interpreter (PT_INTERP), the shared
objects it names (DT_NEEDED) and where it asks for them to be searched (DT_RPATH, DT_RUNPATH).

Only the ELF header, the program headers, the dynamic segment and the bytes of the dynamic
string table are read, from a seekable binary file (System V gABI, "Program Header" and
"Dynamic Section"). Section headers are not used: a stripped file has none that matter.
Imports only ``slimmer.errors``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from slimmer.errors import ElfError

MAGIC = b"\x7fELF"

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3

DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_SONAME = 14
DT_RPATH = 15
DT_STRSZ = 10
DT_RUNPATH = 29

ET_EXEC = 2
ET_DYN = 3

# Bounds against hostile headers: real files stay far below them.
MAX_PHNUM = 4096
MAX_DYNAMIC = 1 << 16
MAX_STRING = 1 << 16


@dataclass(frozen=True)
class ElfInfo:
    """The loader-facing facts of one ELF file.

    ``bits`` is 32 or 64, ``machine`` the ``e_machine`` number: a shared object serves a
    program only when both match (ld.so skips mismatching candidates).
    """

    bits: int
    little_endian: bool
    machine: int
    elf_type: int
    interpreter: str = ""
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    soname: str = ""

    @property
    def is_dynamic(self) -> bool:
        """Whether the loader must run: an interpreter or shared objects are named."""
        return bool(self.interpreter or self.needed)

    def matches(self, other: ElfInfo) -> bool:
        """Return whether ``other`` can be loaded into the same process as this file."""
        return (self.bits, self.little_endian, self.machine) == (other.bits, other.little_endian, other.machine)


def is_elf(head: bytes) -> bool:
    """Return whether ``head`` (a file's first bytes) starts with the ELF magic."""
    return head[:4] == MAGIC


def read_elf(f: BinaryIO, size: int, where: str) -> ElfInfo | None:
    """Return the loader facts of the ELF file open as ``f`` (``size`` bytes long), or None if
    it is not an ELF file. Raises ElfError, naming ``where``, for a broken one."""
    f.seek(0)
    ident = f.read(16)
    if not is_elf(ident):
        return None
    if len(ident) < 16 or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        raise ElfError(f"{where}: ELF header is truncated or has an unknown class or byte order")
    bits = 32 if ident[4] == 1 else 64
    end = "<" if ident[5] == 1 else ">"
    reader = _Reader(f, size, where)
    head_fmt = end + ("HHIQQQIHHH" if bits == 64 else "HHIIIIIHHH")
    ph_fmt = end + ("IIQQQQQQ" if bits == 64 else "IIIIIIII")
    (e_type, e_machine, _ver, _entry, phoff, _shoff, _flags, _ehsize, phentsize, phnum) = struct.unpack(
        head_fmt, reader.read(16, struct.calcsize(head_fmt)))
    if phnum > MAX_PHNUM:
        raise ElfError(f"{where}: ELF file claims {phnum} program headers")
    if phnum and phentsize < struct.calcsize(ph_fmt):
        raise ElfError(f"{where}: ELF program header size {phentsize} is too small")
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    interp = ""
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        raw = reader.read(phoff + i * phentsize, struct.calcsize(ph_fmt))
        if bits == 64:
            p_type, _pflags, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _align = struct.unpack(ph_fmt, raw)
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _pflags, _align = struct.unpack(ph_fmt, raw)
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == PT_INTERP:
            interp = _cstring(reader.read(p_offset, min(p_filesz, MAX_STRING)), 0, where)
        elif p_type == PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    info = ElfInfo(bits, end == "<", e_machine, e_type, interp)
    if dynamic is None:
        return info
    return _with_dynamic(info, reader, dynamic, loads, end, where)


def _with_dynamic(info: ElfInfo, reader: _Reader, dynamic: tuple[int, int], loads, end: str,
                  where: str) -> ElfInfo:
    fmt = end + ("qQ" if info.bits == 64 else "iI")
    width = struct.calcsize(fmt)
    offset, length = dynamic
    count = min(length // width, MAX_DYNAMIC)
    raw = reader.read(offset, count * width)
    tags: list[tuple[int, int]] = []
    for i in range(count):
        tag, val = struct.unpack_from(fmt, raw, i * width)
        if tag == DT_NULL:
            break
        tags.append((tag, val))
    strtab = next((v for t, v in tags if t == DT_STRTAB), None)
    strsz = next((v for t, v in tags if t == DT_STRSZ), None)
    wanted = [(t, v) for t, v in tags if t in (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH)]
    if not wanted:
        return info
    if strtab is None:
        raise ElfError(f"{where}: ELF dynamic segment names libraries but has no string table")
    table_off = _file_offset(strtab, loads, where)
    table_end = reader.size if strsz is None else min(reader.size, table_off + strsz)
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    soname = ""
    for tag, val in wanted:
        text = _dynstr(reader, table_off + val, table_end, where)
        if tag == DT_NEEDED:
            needed.append(text)
        elif tag == DT_SONAME:
            soname = text
        elif tag == DT_RPATH:
            rpath.extend(p for p in text.split(":") if p)
        else:
            runpath.extend(p for p in text.split(":") if p)
    return ElfInfo(info.bits, info.little_endian, info.machine, info.elf_type, info.interpreter,
                   tuple(needed), tuple(rpath), tuple(runpath), soname)


def _dynstr(reader: _Reader, start: int, table_end: int, where: str) -> str:
    """Read one string of the dynamic string table on its own, at most MAX_STRING bytes: a
    hostile DT_STRSZ never makes a large read."""
    if start >= table_end:
        raise ElfError(f"{where}: ELF string at byte {start} lies outside the string table")
    # most names are short: a first small read keeps the bytes touched near the string (the
    # scan pass buffers only part of a file)
    first = reader.read(start, min(256, table_end - start))
    if b"\0" in first:
        return _cstring(first, 0, where)
    return _cstring(reader.read(start, min(MAX_STRING, table_end - start)), 0, where)


def _file_offset(vaddr: int, loads: list[tuple[int, int, int]], where: str) -> int:
    """Map a virtual address to a file offset through the PT_LOAD segments."""
    for seg_vaddr, seg_offset, filesz in loads:
        if seg_vaddr <= vaddr < seg_vaddr + filesz:
            return vaddr - seg_vaddr + seg_offset
    raise ElfError(f"{where}: ELF string table address {vaddr:#x} lies in no loadable segment")


def _cstring(data: bytes, start: int, where: str) -> str:
    if start >= len(data):
        raise ElfError(f"{where}: ELF string offset {start} lies outside the string table")
    stop = data.find(b"\0", start)
    if stop < 0:
        raise ElfError(f"{where}: ELF string at offset {start} is not terminated")
    return data[start:stop].decode("utf-8", "surrogateescape")


class _Reader:
    """Reads exact byte ranges, raising ElfError for a range beyond the end of the file."""

    def __init__(self, f: BinaryIO, size: int, where: str):
        self.f, self.size, self.where = f, size, where

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ElfError(f"{self.where}: ELF header points at bytes {offset}..{offset + length}, "
                           f"past the end of the {self.size}-byte file")
        self.f.seek(offset)
        data = self.f.read(length)
        if len(data) != length:
            raise ElfError(f"{self.where}: ELF file ends at byte {offset + len(data)}, expected {offset + length}")
        return data
