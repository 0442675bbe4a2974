"""The one layer-tar parser: an incremental scanner that turns a layer's uncompressed byte
stream into Entries, and hands the data of chosen members to sinks.

It is fed chunks of any size and parses the 512-byte headers (ustar, GNU long names, PAX
extended headers, old GNU and PAX sparse members), passing over file data without copying it,
so a layer is never held in memory. Paths are normalised here (the model's *entry*
definition); whiteouts are left as plain entries for ``slimmer.layers``.

A ``visit(index, entry, header)`` callback sees every entry as it is parsed (``header`` is a
``Header`` with everything tar says about the member when the scanner runs with
``detail=True``, else None). If it returns a sink, the member's data goes to
``sink.write(view)`` in order (slices of the fed chunks, valid only during the call) and
``sink.end()`` follows the last byte. The scan pass (reader) collects content facts this way,
the verified re-stream (``slimmer.tar.restream``) copies members. With a ``Select`` the visit
sees only the members it names (files from a size on, paths with given endings or starts,
files no category rule matches, and any member whose path was visited before; or every
member), and the scanner records the category rule of every file, asking a ``Classifier``
once per directory and base name.

The entries land in columns (``slimmer.model.Columns``). The compiled module
(``slimmer.compiled``: built when a C compiler is there; ``SLIMMER_PURE=1`` turns it off)
parses the canonical members without a Python call per member, leaving every other header to
the code here at the block where it starts, so both give the same entries, spans, headers and
errors. Imports only the model, the errors and ``slimmer.compiled``.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from typing import NamedTuple, Protocol

from slimmer.compiled import ctar, uses_compiled
from slimmer.errors import FormatError, LimitError, TruncatedError
from slimmer.model import (
    BLOCK,
    CHAR,
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    KIND_CODES,
    NO_RULE,
    SYMLINK,
    Columns,
    Entries,
    Entry,
    normalize_path,
)

_STOP, _SKIP, _VISIT = 0, 1, 2
_LOW, _HIGH = -(1 << 63), (1 << 63) - 1
_NONE, _ALL, _SELECT = 0, 1, 2

BLOCKSIZE = 512
_KINDS = {
    b"0": FILE, b"\0": FILE, b"7": FILE, b"1": HARDLINK, b"2": SYMLINK,
    b"3": CHAR, b"4": BLOCK, b"5": DIR, b"6": FIFO,
}
# Go's archive/tar and GNU tar carry no data for these types whatever the size field says.
_HEADER_ONLY = {b"1", b"2", b"3", b"4", b"5", b"6"}
_META = {b"L", b"K", b"x", b"g"}
_MAX_META = 1 << 20
MAX_SPARSE_ENTRIES = 1 << 16  # a sparse map longer than this is refused (real ones have a few)

_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2x32s32s8s8s155s12x")


class Header(NamedTuple):
    """What a tar header says about one member beyond its Entry (``detail=True`` only).

    ``sparse`` is the map of data regions ((offset, size), ...) of a sparse file, whose data in
    the stream is those regions back to back; ``size`` is then the real (expanded) size.
    ``pax`` holds every PAX record of the member (extended attributes included)."""

    typeflag: bytes
    uname: str
    gname: str
    devmajor: int
    devminor: int
    pax: dict
    sparse: tuple[tuple[int, int], ...] | None = None
    stored: int = 0  # data bytes of the member in the stream (after any sparse map)
    raw: bytes | None = None  # the member's header blocks as they are (extended headers first), for a
    # plain member whose name is already a model path; a writer may copy them unchanged


class Sink(Protocol):
    def write(self, data: memoryview) -> None: ...

    def end(self) -> None: ...


Visit = Callable[[int, Entry, "Header | None"], "Sink | None"]


class Classifier(Protocol):
    """Gives the category rule index of a file from its directory and base name (-1: none)."""

    def group(self, directory: str) -> dict | None:
        """Return the cache of ``rule`` results shared by every directory whose files' rules
        depend on their base names alone the way this one's do, or None where a file's
        rule depends on more than its base name."""
        ...

    def rule(self, directory: str, base: str) -> int:
        """Return the rule index of file ``directory/base``."""
        ...


class Select(NamedTuple):
    """Which members the visit sees (see the module docstring). Endings and starts are ASCII."""

    min_size: int = 1 << 62  # files of this many bytes or more
    suffixes: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    unmatched: bool = False  # files no category rule matches
    classifier: Classifier | None = None
    every: bool = False  # every member, whatever the fields above say (the classifier still records rules)


class _Builder:
    """The columns as the pure-Python scanner builds them (the compiled one keeps its own)."""

    def __init__(self, spans: bool) -> None:
        self.paths: list[str] = []
        self.links: list[str] = []
        self.kinds = bytearray()
        self.sizes, self.modes, self.uids, self.gids = array("q"), array("q"), array("q"), array("q")
        self.mtimes, self.offsets, self.rules = array("q"), array("q"), array("h")
        self._spans = array("q") if spans else None

    @property
    def count(self) -> int:
        return len(self.paths)

    def append(self, path: str, kind: int, size: int, mode: int, uid: int, gid: int, link: str, mtime: int,
               offset: int, rule: int, start: int, end: int) -> None:
        self.paths.append(path)
        self.links.append(link)
        self.kinds.append(kind)
        for column, value in zip((self.sizes, self.modes, self.uids, self.gids, self.mtimes, self.offsets),
                                 (size, mode, uid, gid, mtime, offset)):
            column.append(value)
        self.rules.append(rule)
        if self._spans is not None:
            self._spans.append(start)
            self._spans.append(end)

    def spans(self) -> bytes | None:
        return self._spans.tobytes() if self._spans is not None else None

    def columns(self) -> tuple:
        return (self.paths, self.links, bytes(self.kinds), self.sizes.tobytes(), self.modes.tobytes(),
                self.uids.tobytes(), self.gids.tobytes(), self.mtimes.tobytes(), self.offsets.tobytes(),
                self.rules.tobytes())


KINDS_OF = tuple(KIND_CODES)


def _num(field: bytes, what: str) -> int:
    """Return a numeric header field (octal, or GNU base-256)."""
    try:
        return int(field.rstrip(b"\0 ") or b"0", 8)
    except ValueError:
        return _octal(field, what)


def _octal(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:
        # GNU base-256 for numbers too large for octal
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise FormatError(f"{what}: bad number {text[:20]!r} in a tar header") from None


def normalize(name: str, where: str) -> str:
    """Return tar member name ``name`` as a model path; raise FormatError if it escapes the
    root or holds a NUL."""
    if "\0" in name:
        raise FormatError(f"{where}: tar member name {name!r} holds a NUL byte")
    depth = 0
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            raise FormatError(f"{where}: tar member {name!r} points outside the root")
    return normalize_path(name)


def _text(field: bytes) -> str:
    return field.partition(b"\0")[0].decode("utf-8", "surrogateescape")


class TarScanner:
    """Parses tar headers from chunks given to ``feed``; the entries land in columns
    (``columns()``, or ``entries`` as records). ``pure`` True runs without the compiled path
    (None: as ``SLIMMER_PURE`` says)."""

    def __init__(self, where: str, max_size: int | None = None, visit: Visit | None = None,
                 detail: bool = False, select: Select | None = None, spans: bool = False,
                 pure: bool | None = None):
        self.where = where
        self.max_size = max_size  # a sparse member claiming more than this is refused
        self.visit = visit
        self.detail = detail
        self.select = select
        self._big: dict[tuple[int, int], int] = {}  # (number column, entry) -> a value past 64 bits
        self._visited: set[str] = set()  # paths the visit saw (a Select visits their later members too)
        self._suffixes = select.suffixes if select is not None else ()
        self._prefixes = select.prefixes if select is not None else ()
        self._classifier = select.classifier if select is not None else None
        self._groups: tuple[str, dict | None] | None = None  # the last directory and its rule group
        mode = _NONE if visit is None else (_ALL if select is None or select.every else _SELECT)
        self._mode = mode
        use_c = uses_compiled() if pure is None else (not pure and ctar is not None)
        self._fast = ctar.Fast(detail, mode, select.min_size if select else 0,
                                tuple(x.encode("ascii") for x in self._suffixes),
                                tuple(x.encode("ascii") for x in self._prefixes), bool(select and select.unmatched),
                                self._classifier, self._visited, spans) if use_c else None
        self._cols = self._fast if self._fast is not None else _Builder(spans)
        self.offset = 0  # stream offset of the next byte fed
        self._skip = 0  # data and padding still to pass over
        self._sink: Sink | None = None
        self._sink_left = 0  # data bytes still owed to the sink
        self._sink_pad = 0  # padding after them
        self._header = bytearray()
        self._meta_type = b""
        self._meta_left = 0
        self._meta_pad = 0
        self._meta = bytearray()
        self._longname: str | None = None
        self._longlink: str | None = None
        self._pax: dict[str, str] = {}
        self._sparse_ext = False
        self._sparse_map: list[tuple[int, int]] = []
        self._pending: tuple | None = None  # an entry waiting for its sparse map (extension blocks, PAX 1.0)
        self._map_left = 0  # PAX 1.0: bytes of the in-data sparse map still to read
        self._map_buf = bytearray()
        self._data_at = 0
        self._padding_left = 0  # of _skip, how much is padding after the last member's data
        self.ended = False  # an end-of-archive zero block was seen
        self._headers = 0
        self._raw = bytearray()  # detail: the header blocks of the member being read
        self._raw_ok = True
        self._block = b""
        self._member_start = 0  # where the member being read starts (its first header block)

    @property
    def headers(self) -> int:
        """How many tar headers were parsed."""
        return self._headers + (self._fast.headers if self._fast is not None else 0)

    @property
    def count(self) -> int:
        """How many entries were parsed."""
        return self._cols.count

    def columns(self) -> Columns:
        """Return the entries parsed so far as columns (rules included when a Select has a
        classifier)."""
        paths, links, kinds, *raw, rules = self._cols.columns()
        numbers: list[array | list] = [_ints(column) for column in raw]
        for (i, index), value in self._big.items():
            if isinstance(numbers[i], array):
                numbers[i] = list(numbers[i])
            numbers[i][index] = value
        sizes, modes, uids, gids, mtimes, offsets = numbers
        return Columns(paths, kinds, sizes, modes, uids, gids, links, mtimes, offsets,
                       _ints(rules, "h") if self._classifier is not None else None)

    @property
    def entries(self) -> Entries:
        """The entries parsed so far, as records."""
        return Entries(self.columns())

    @property
    def spans(self) -> array | None:
        """With ``spans``: for entry i, ``spans[2i]`` is where its first header block starts in
        the stream (extended headers included) and ``spans[2i+1]`` where its data and padding
        end; else None."""
        raw = self._cols.spans()
        return None if raw is None else _ints(raw)

    def feed(self, chunk) -> None:
        """Consume the next chunk of the stream."""
        view = memoryview(chunk)
        n = len(view)
        pos = 0
        base = self.offset
        self.offset += n
        fast = self._fast
        while pos < n:
            if self.ended:
                return
            if fast is not None and not (self._sink_left or self._skip or self._meta_left or self._map_left
                                         or self._header or self._sparse_ext or self._pending is not None
                                         or self._longname is not None or self._longlink is not None or self._pax
                                         or self._raw) and n - pos >= BLOCKSIZE:
                pos, code, extra = fast.scan(view, pos, base)
                if code == _SKIP:
                    self._skip, self._padding_left = extra
                    continue
                if code == _VISIT:
                    index, fields, data, pad, block, plain = extra
                    entry = Entry._make(fields)
                    detail = None
                    if block is not None:  # detail: the member is this one header block
                        detail = Header(block[156:157], _text(block[265:297]), _text(block[297:329]),
                                        _num(block[329:337], self.where), _num(block[337:345], self.where), {}, None,
                                        data, block if plain else None)
                    self._visit_member(index, entry, data, pad, detail)
                    continue
                if n - pos < BLOCKSIZE:
                    continue
                # the block at pos is left to the code below: a member's first header block
                self._member_start = base + pos
                self._data_at = base + pos + BLOCKSIZE
                block = view[pos:pos + BLOCKSIZE].tobytes()
                pos += BLOCKSIZE
                self._header_block(block)
                continue
            if self._sink_left:
                step = min(self._sink_left, n - pos)
                self._sink.write(view[pos:pos + step])  # type: ignore[union-attr]
                self._sink_left -= step
                pos += step
                if not self._sink_left:
                    self._end_sink()
                continue
            if self._skip:
                step = min(self._skip, n - pos)
                self._skip -= step
                pos += step
                continue
            if self._meta_left:
                step = min(self._meta_left, n - pos)
                self._meta += view[pos:pos + step]
                self._meta_left -= step
                pos += step
                if not self._meta_left:
                    self._finish_meta()
                    self._skip = self._meta_pad
                continue
            if self._map_left:
                step = min(self._map_left, n - pos)
                self._map_buf += view[pos:pos + step]
                self._map_left -= step
                pos += step
                self._data_at = base + pos
                self._sparse_map_block()
                continue
            if self._header or n - pos < BLOCKSIZE:
                need = BLOCKSIZE - len(self._header)
                self._header += view[pos:pos + need]
                pos += min(need, n - pos)
                if len(self._header) < BLOCKSIZE:
                    return
                block = bytes(self._header)
                self._header.clear()
            else:
                block = view[pos:pos + BLOCKSIZE].tobytes()
                pos += BLOCKSIZE
            self._data_at = base + pos
            if self._sparse_ext:
                self._sparse_extension(block)
                continue
            if not (self._pax or self._longname is not None or self._longlink is not None):
                self._member_start = self._data_at - BLOCKSIZE  # a member's first header block
            self._header_block(block)

    def finish(self) -> Entries:
        """Check the stream ended on a member boundary and return the entries."""
        if self._skip or self._meta_left or self._header or self._sink_left or self._map_left \
                or self._sparse_ext or self._pending is not None:
            raise TruncatedError(f"{self.where}: layer tar is truncated (ends inside a member)")
        if self._longname is not None or self._longlink is not None or self._pax:
            raise TruncatedError(f"{self.where}: layer tar ends after an extended header")
        return self.entries

    def complete_members(self) -> bool:
        """Return whether the stream so far ended exactly after a member's data: every member
        is whole, only its padding and the end-of-archive blocks are missing."""
        return not (self._meta_left or self._header or self._sink_left or self._map_left or self._sparse_ext
                    or self._pending is not None or self._longname is not None or self._longlink is not None
                    or self._pax) and self._skip <= self._padding_left

    # -- headers -----------------------------------------------------------------------------

    def _header_block(self, block: bytes) -> None:
        (name_f, mode_f, uid_f, gid_f, size_f, mtime_f, chksum_f, typeflag, link_f,
         magic, uname_f, gname_f, devmaj_f, devmin_f, prefix_f) = _HEADER.unpack(block)
        chksum = _num(chksum_f, self.where)
        # The header checksum is the sum of its bytes (the field itself as spaces). Summing 64
        # words instead of 512 bytes is 4x faster and equal modulo 255 (256**k = 1 mod 255): a
        # header that fails it is checked exactly; one passing it wrongly still has its layer's
        # digest checked against diff_ids, which is what guards content.
        if (sum(memoryview(block).cast("Q")) - sum(chksum_f) + 256 - chksum) % 255 \
                or chksum > BLOCKSIZE * 255:
            if block.count(0) != BLOCKSIZE:
                # historic tars summed signed chars
                signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 256
                if chksum != signed and chksum != sum(block) - sum(chksum_f) + 256:
                    raise FormatError(f"{self.where}: bad tar header checksum at byte {self._data_at - BLOCKSIZE}")
            else:
                self.ended = True
                return
        self._headers += 1
        size = _num(size_f, self.where)
        if size < 0:
            raise FormatError(f"{self.where}: negative member size in a tar header")
        if self.detail:
            if typeflag in _META:
                self._raw += block
                self._raw_ok = self._raw_ok and typeflag != b"g"
            else:
                self._block = block
        if typeflag in _META:
            if size > _MAX_META:
                raise FormatError(f"{self.where}: extended tar header of {size} bytes is too large")
            self._meta_type = typeflag
            self._meta_left = size
            self._meta_pad = -size % BLOCKSIZE
            self._meta.clear()
            if not size:
                self._finish_meta()
            return
        pax = self._pax
        extended = bool(pax) or self._longname is not None or self._longlink is not None
        if extended:
            name = pax.get("GNU.sparse.name") or pax.get("path")
            if name is None:
                name = self._longname if self._longname is not None else self._ustar_name(name_f, magic, prefix_f)
            link = pax["linkpath"] if "linkpath" in pax else \
                (self._longlink if self._longlink is not None else _text(link_f))
            if "size" in pax:
                size = self._pax_int(pax, "size", name)
            self._longname = self._longlink = None
            self._pax = {}
        else:
            name = _text(name_f)
            if magic == b"ustar\0" and prefix_f[0]:
                name = _text(prefix_f) + "/" + name
            link = _text(link_f) if link_f[0] else ""
            pax = {}
        header = (typeflag, mode_f, uid_f, gid_f, mtime_f, uname_f, gname_f, devmaj_f, devmin_f, pax)
        if typeflag == b"S":
            self._old_sparse(block, name, size, header)
            return
        real = None
        if pax:
            for key in ("GNU.sparse.realsize", "GNU.sparse.size"):
                if key in pax:
                    real = self._pax_int(pax, key, name)
                    break
        if real is not None and pax.get("GNU.sparse.major") == "1":
            # PAX sparse 1.0: the map is at the start of the data, as decimal lines padded to a block
            self._pending = (name, link, size, header, real)
            self._sparse_map = []
            self._map_left = min(size, BLOCKSIZE)
            self._map_buf.clear()
            if not size:
                raise FormatError(f"{self.where}: sparse member {name!r} has no room for its map")
            return
        if real is not None and "GNU.sparse.map" in pax:
            sparse = _pairs(pax["GNU.sparse.map"].split(","), self.where, name) if pax["GNU.sparse.map"] else ()
        else:
            sparse = None
        self._add(name, link, size, header, real, sparse)

    @staticmethod
    def _ustar_name(name_f: bytes, magic: bytes, prefix_f: bytes) -> str:
        name = _text(name_f)
        if magic == b"ustar\0" and prefix_f[0]:
            name = _text(prefix_f) + "/" + name
        return name

    def _pax_int(self, pax: dict, key: str, name: str) -> int:
        try:
            value = int(pax[key])
        except ValueError:
            raise FormatError(f"{self.where}: bad PAX {key} for {name!r}") from None
        if value < 0:
            raise FormatError(f"{self.where}: negative PAX {key} for {name!r}")
        return value

    # -- sparse members ----------------------------------------------------------------------

    def _old_sparse(self, block: bytes, name: str, size: int, header: tuple) -> None:
        """An old GNU sparse member: ``size`` bytes stored, the real size at byte 483, the map
        in the header (four pairs at 386) and in extension blocks when byte 482 says so."""
        real = _num(block[483:495], self.where)
        if real < 0:
            raise FormatError(f"{self.where}: negative real size in a GNU sparse header")
        self._sparse_map = list(self._map_pairs(block, 386, 4))
        args = (name, "", size, header, real)
        if block[482]:
            self._sparse_ext = True
            self._pending = args
        else:
            self._add(*args, sparse=tuple(self._sparse_map))

    def _map_pairs(self, block: bytes, at: int, count: int):
        for k in range(count):
            off = block[at + 24 * k:at + 24 * k + 12]
            if not off.strip(b"\0 "):
                return
            yield _num(off, self.where), _num(block[at + 24 * k + 12:at + 24 * k + 24], self.where)

    def _sparse_extension(self, block: bytes) -> None:
        self._sparse_map.extend(self._map_pairs(block, 0, 21))
        if len(self._sparse_map) > MAX_SPARSE_ENTRIES:
            raise FormatError(f"{self.where}: a sparse map of more than {MAX_SPARSE_ENTRIES} regions")
        if not block[504]:
            self._sparse_ext = False
            args, self._pending = self._pending, None
            self._add(*args, sparse=tuple(self._sparse_map))  # type: ignore[misc]

    def _sparse_map_block(self) -> None:
        """PAX 1.0: parse the map at the start of the data, one block at a time."""
        if self._map_left:
            return
        name, link, size, header, real = self._pending  # type: ignore[misc]
        lines = bytes(self._map_buf).split(b"\n")
        try:
            numbers = [int(x) for x in lines[:-1]]
        except ValueError:
            raise FormatError(f"{self.where}: bad sparse map of {name!r}") from None
        if numbers and len(numbers) >= 1 + 2 * numbers[0]:
            if numbers[0] > MAX_SPARSE_ENTRIES:
                raise FormatError(f"{self.where}: a sparse map of more than {MAX_SPARSE_ENTRIES} regions")
            pairs = tuple(zip(numbers[1:1 + 2 * numbers[0]:2], numbers[2:2 + 2 * numbers[0]:2]))
            used = len(self._map_buf)
            self._pending = None
            if used > size:
                raise TruncatedError(f"{self.where}: sparse member {name!r} is shorter than its map")
            self._add(name, link, size - used, header, real, sparse=pairs)
            return
        used = len(self._map_buf)
        if used >= size or used > _MAX_META:
            raise FormatError(f"{self.where}: bad sparse map of {name!r}")
        self._map_left = min(BLOCKSIZE, size - used)

    # -- entries -----------------------------------------------------------------------------

    def _add(self, name: str, link: str, size: int, header: tuple, real: int | None = None,
             sparse: tuple | None = None) -> None:
        typeflag, mode_f, uid_f, gid_f, mtime_f, uname_f, gname_f, devmaj_f, devmin_f, pax = header
        kind = _KINDS.get(typeflag, FILE)
        if typeflag == b"S":
            kind = FILE
        elif kind == FILE and name.endswith("/") and typeflag in (b"0", b"\0"):
            kind = DIR
        data = 0 if typeflag in _HEADER_ONLY else size
        plain = not (name.startswith(("/", ".")) or "//" in name or "/." in name or "\0" in name)
        if not plain:
            path = normalize(name, self.where)
        else:
            path = name.rstrip("/")
        where = self.where
        if kind == HARDLINK:
            link = normalize(link, where)
        try:
            if pax:
                uid = int(pax["uid"]) if "uid" in pax else _num(uid_f, where)
                gid = int(pax["gid"]) if "gid" in pax else _num(gid_f, where)
                mtime = int(float(pax["mtime"])) if "mtime" in pax else _num(mtime_f, where)
            else:
                uid, gid, mtime = _num(uid_f, where), _num(gid_f, where), _num(mtime_f, where)
        except (ValueError, OverflowError):
            raise FormatError(f"{where}: bad PAX number for {name!r}") from None
        offset = self._data_at
        file_size = data
        if real is not None:
            if self.max_size is not None and real > self.max_size:
                raise LimitError(f"{where}: sparse member {path!r} claims {real} bytes, past --max-layer-size "
                                 f"({self.max_size} bytes)")
            if kind == FILE:
                _check_sparse(sparse, data, real, f"{where}: sparse member {path!r}")
                file_size = real  # a sparse file: the size it has once extracted; its data is a map
                offset = -1
        mode = _num(mode_f, where) & 0o7777
        pad = -data % BLOCKSIZE
        raw = None
        if self.detail:
            if plain and self._raw_ok and real is None and typeflag != b"S":
                raw = bytes(self._raw) + self._block
            self._raw.clear()
            self._raw_ok = True
        if not path:
            self._skip = data + pad  # the root directory itself: not an entry
            self._padding_left = pad
            return
        size = file_size if kind == FILE else 0
        rule = self._rule(path) if kind == FILE else NO_RULE
        index = self._cols.count
        numbers = [size, mode, uid, gid, mtime, offset]
        for i, value in enumerate(numbers):
            if not _LOW <= value <= _HIGH:  # kept aside: the columns hold 64-bit numbers
                self._big[(i, index)] = value
                numbers[i] = 0
        # a member whose data would end past 64 bits ends no real stream (the scan stops at the
        # stream's end, truncated): its span's end is kept at the largest offset the column holds
        end = min(self._data_at + data + pad, _HIGH)
        self._cols.append(path, KIND_CODES[kind], numbers[0], numbers[1], numbers[2], numbers[3], link, numbers[4],
                          numbers[5], rule, self._member_start, end)
        if self.visit is None or (self._mode == _SELECT and not self._selected(path, kind, size, offset, rule)):
            self._skip = data + pad
            self._padding_left = pad
            return
        entry = Entry(path, kind, size, mode, uid, gid, link, mtime, offset)
        detail = None
        if self.detail:
            detail = Header(typeflag, _text(uname_f), _text(gname_f), _num(devmaj_f, where),
                            _num(devmin_f, where), dict(pax), sparse, data, raw)
            if pax:
                detail = detail._replace(uname=pax.get("uname", detail.uname), gname=pax.get("gname", detail.gname))
        self._visit_member(index, entry, data, pad, detail)

    def _selected(self, path: str, kind: str, size: int, offset: int, rule: int) -> bool:
        """Whether the Select names this member (the compiled path decides the same way)."""
        select = self.select
        assert select is not None
        if kind == FILE and size > 0 and offset >= 0 and (
                size >= select.min_size or path.endswith(self._suffixes) or path.startswith(self._prefixes)
                or (select.unmatched and rule == -1)):
            return True
        return path in self._visited

    def _rule(self, path: str) -> int:
        """The category rule of file ``path``, asked once per directory and base name."""
        classifier = self._classifier
        if classifier is None:
            return NO_RULE
        d, _, base = path.rpartition("/")
        last = self._groups
        if last is None or last[0] != d:
            last = self._groups = (d, classifier.group(d))
        group = last[1]
        if group is None:
            return classifier.rule(d, base)
        rule = group.get(base)
        if rule is None:
            rule = group[base] = classifier.rule(d, base)
        return rule

    def _visit_member(self, index: int, entry: Entry, data: int, pad: int, detail: Header | None) -> None:
        """Show member ``index`` to the visit; its data goes to the sink it returns."""
        if self._mode == _SELECT:
            self._visited.add(entry.path)
        sink = self.visit(index, entry, detail)  # type: ignore[misc]
        if sink is not None:
            if data:
                self._sink, self._sink_left, self._sink_pad = sink, data, pad
                self._padding_left = pad
                return
            sink.end()
        self._skip = data + pad
        self._padding_left = pad

    def _end_sink(self) -> None:
        sink, self._sink = self._sink, None
        self._skip = self._sink_pad
        sink.end()  # type: ignore[union-attr]

    def _finish_meta(self) -> None:
        raw = bytes(self._meta)
        if self.detail:
            self._raw += raw + bytes(self._meta_pad)
        kind = self._meta_type
        if kind == b"L":
            self._longname = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == b"K":
            self._longlink = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == b"x":
            self._pax.update(pax_records(raw, self.where))
        # b"g" (global PAX header): applies to no entry we model


def _ints(raw: bytes, code: str = "q") -> array:
    out = array(code)
    out.frombytes(raw)
    return out


def _check_sparse(sparse: tuple[tuple[int, int], ...] | None, stored: int, real: int, what: str) -> None:
    """Refuse a sparse map that does not describe the member: regions out of order, past the
    real size, or holding more or fewer bytes than the member's data (what a writer of the file
    would trust). Checked in every pass alike, so a re-read never finds what the scan did not."""
    if sparse is None:
        raise FormatError(f"{what} gives a real size but no map of its data")
    end = total = 0
    for offset, size in sparse:
        if offset < end or size < 0 or offset + size > real:
            raise FormatError(f"{what} has a sparse map whose regions overlap, run backwards or pass its real "
                              f"size ({real} bytes)")
        end = offset + size
        total += size
    if total != stored:
        raise FormatError(f"{what}: its sparse map names {total} bytes, its data holds {stored}")


def _pairs(numbers: list[str], where: str, name: str) -> tuple[tuple[int, int], ...]:
    if len(numbers) % 2 or len(numbers) > 2 * MAX_SPARSE_ENTRIES:
        raise FormatError(f"{where}: bad sparse map of {name!r}")
    try:
        values = [int(x) for x in numbers]
    except ValueError:
        raise FormatError(f"{where}: bad sparse map of {name!r}") from None
    if any(v < 0 for v in values):
        raise FormatError(f"{where}: bad sparse map of {name!r}")
    return tuple(zip(values[::2], values[1::2]))


def pax_records(raw: bytes, where: str) -> dict[str, str]:
    """Return the records of a PAX extended header; raise FormatError if it is malformed.

    GNU tar's sparse format 0.0 repeats ``GNU.sparse.offset`` and ``GNU.sparse.numbytes`` once
    per region; those pairs are gathered into ``GNU.sparse.map`` (format 0.1's spelling)."""
    out: dict[str, str] = {}
    regions: list[str] = []
    pos = 0
    while pos < len(raw):
        if raw[pos] == 0:
            break
        space = raw.find(b" ", pos)
        if space < 0:
            raise FormatError(f"{where}: malformed PAX header")
        try:
            length = int(raw[pos:space])
        except ValueError:
            raise FormatError(f"{where}: malformed PAX header") from None
        if length <= 0 or pos + length > len(raw):
            raise FormatError(f"{where}: malformed PAX header")
        record = raw[space + 1:pos + length - 1]
        key, sep, value = record.partition(b"=")
        if not sep:
            raise FormatError(f"{where}: malformed PAX record")
        name = key.decode("utf-8", "surrogateescape")
        text = value.decode("utf-8", "surrogateescape")
        if name in ("GNU.sparse.offset", "GNU.sparse.numbytes"):
            if len(regions) > 2 * MAX_SPARSE_ENTRIES:
                raise FormatError(f"{where}: a sparse map of more than {MAX_SPARSE_ENTRIES} regions")
            regions.append(text)
        out[name] = text
        pos += length
    if regions:
        out["GNU.sparse.map"] = ",".join(regions)
    return out
