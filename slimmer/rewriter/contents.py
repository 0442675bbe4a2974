"""What the entrypoint closure knows about the contents of files of the merged filesystem
(ELF loader facts, ``#!`` lines, small texts, imports), taken from the facts the scan pass
gathered with ``slimmer.rewriter.facts.SlimPolicy``: slim reads no layer for them again.

Two cases still read a layer again, through the verified re-stream
(``slimmer.tar.restream``): a layer that was never scanned with the policy (an image built in
code) has its facts gathered once, and the rare file whose facts could not be gathered in one
pass (an ELF string table past the buffered head, a script too large to keep as text) has its
bytes copied into the scratch directory, in one batch per call of ``fetch``. The caller owns
the scratch directory (it lives beside the output and is removed with it). Imports only the
model, ``slimmer.layers``, ``slimmer.tar`` and rewriter modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from slimmer.errors import ElfError, FormatError, OutputError
from slimmer.layers import MergedFS
from slimmer.model import FILE, HARDLINK, Image, columns
from slimmer.rewriter import facts as kinds
from slimmer.rewriter import imports
from slimmer.rewriter.elf import ElfInfo, read_elf
from slimmer.rewriter.members import Member, MemberIndex, where
from slimmer.tar.collect import Collector, as_mapping
from slimmer.tar.restream import restream

_MISSING = object()

class Contents:
    """Facts about final-version files, and the bytes of the few that need reading again."""

    def __init__(self, image: Image, fs: MergedFS, scratch: Path, index: MemberIndex | None = None):
        self.policy = kinds.SlimPolicy()
        self.image = image
        self.fs = fs
        self.scratch = scratch
        self.index = index or MemberIndex(image, fs)
        self._facts: dict[int, Any] = {}
        self._spooled: dict[Member, Path] = {}
        self._member: dict[str, Member | None] = {}
        self.layer_passes = 0  # how many layer streams were opened (for tests and bench notes)

    # -- where a path's bytes are ------------------------------------------------------------

    def member(self, path: str) -> Member | None:
        """Return the member holding the bytes of final ``path`` (a regular file or a hard
        link to one), or None."""
        if path in self._member:
            return self._member[path]
        found = None
        version = self.fs.get(path)
        if version is not None and version.entry.kind in (FILE, HARDLINK):
            source = self.index.source_of(self.index.final(version))
            if self.image.layers[source[0]].entries[source[1]].kind == FILE:
                found = source
        self._member[path] = found
        return found

    def has(self, path: str) -> bool:
        """Return whether ``path`` is a regular file (or a hard link to one) with bytes."""
        return self.member(path) is not None

    def size(self, path: str) -> int:
        member = self.member(path)
        return 0 if member is None else self.image.layers[member[0]].entries[member[1]].size

    def fact(self, path: str, kind: str):
        """Return the ``kind`` fact of ``path`` (None when it has none), or ``_MISSING`` when
        the scan could not tell and only the bytes can."""
        member = self.member(path)
        if member is None:
            return None
        layer, index = member
        entry = self.image.layers[layer].entries[index]
        if self.index.last_index(layer, entry.path) != index:
            return _MISSING  # a hard link to a member its own layer replaced: facts are the later one's
        table = self._layer_facts(layer)
        value = table.get(kind, {}).get(entry.path)
        if value is None and self._undecided(table, entry, kind):
            return _MISSING
        return value

    @staticmethod
    def _undecided(table, entry, kind: str) -> bool:
        return kind == kinds.ELF and entry.path in table.get(kinds.ELF_FAR, {})

    def _scanned(self, path: str) -> bool:
        member = self.member(path)
        return member is not None and (member[0] in self._facts or self.image.layers[member[0]].facts_policy ==
                                       self.policy.key)

    def _layer_facts(self, layer: int):
        table = self._facts.get(layer)
        if table is None:
            lay = self.image.layers[layer]
            if lay.facts is not None and lay.facts_policy == self.policy.key:
                table = lay.facts
            else:
                self.layer_passes += 1
                collector = Collector(self.policy)
                restream(lay, collector.visit, where(self.image, layer))
                table = as_mapping(collector.facts)
            self._facts[layer] = table
        return table

    def rules(self) -> list | None:
        """Return, per layer, the category rule index of each entry as the scan recorded it
        (``Columns.rules``); None unless every layer was scanned with the policy (then prune
        matches the rules itself)."""
        layers = self.image.layers
        if not all(lay.facts is not None and lay.facts_policy == self.policy.key for lay in layers):
            return None
        found = [columns(lay).rules for lay in layers]
        return None if any(rules is None for rules in found) else found

    # -- what the closure asks ---------------------------------------------------------------

    def elf(self, path: str) -> ElfInfo | None:
        """Return the loader facts of ``path`` if it is an ELF object; raise ElfError for a
        broken one."""
        if not self.has(path):
            return None
        error = self.fact(path, kinds.ELF_ERROR)
        if isinstance(error, str):
            raise ElfError(error)
        value = self.fact(path, kinds.ELF)
        if value is _MISSING:
            with self._open(path) as f:
                return read_elf(f, self.size(path), "/" + path)
        return kinds.elf_info(value) if value is not None else None

    def head(self, path: str) -> bytes:
        """Return the ``#!`` line of ``path`` (b"" when it has none)."""
        value = self.fact(path, kinds.HEAD)
        if value is _MISSING or (value is None and self.has(path) and not self._probed_head(path)):
            with self._open(path) as f:
                line = f.read(kinds.HEAD_BYTES).split(b"\n", 1)[0]
            return line if line.startswith(b"#!") else b""
        return value or b""

    def _probed_head(self, path: str) -> bool:
        """Return whether the scan looked at the head of ``path`` (a program or a script)."""
        member = self.member(path)
        entry = self.image.layers[member[0]].entries[member[1]]  # type: ignore[index]
        return kinds.maybe_elf(path, entry.mode) or path.endswith((".py", ".sh", ".js", ".cjs", ".mjs"))

    def text(self, path: str, limit: int = 1 << 20) -> str:
        """Return the text of ``path`` (at most ``limit`` bytes; undecodable bytes escaped)."""
        value = self.fact(path, kinds.TEXT)
        if isinstance(value, str):
            return value[:limit]
        if not self.has(path):
            return ""
        with self._open(path) as f:
            return f.read(limit).decode("utf-8", "surrogateescape")

    def python(self, path: str):
        """Return the import facts of Python file ``path`` (``slimmer.rewriter.imports``)."""
        return self._source(path, kinds.PY)

    def codecs(self, path: str) -> imports.Codecs:
        """Return (the codec names Python file ``path`` gives with literals, whether it
        computes one)."""
        value = self.fact(path, kinds.CODECS)
        if isinstance(value, (tuple, list)):
            return value[0], value[1]
        if value is None and isinstance(self.fact(path, kinds.PY), (tuple, list)):
            return (), False  # probed, and it names none (the policy records no empty fact)
        if not self.has(path) or not 0 < self.size(path) <= kinds.SOURCE_BYTES:
            return (), False
        with self._open(path) as f:
            return imports.codec_names(f.read())

    def aliases(self, path: str) -> dict[str, str]:
        """Return the ``aliases`` dict of an ``encodings/aliases.py`` ({} if it has none)."""
        value = self.fact(path, kinds.ALIASES)
        if not isinstance(value, (tuple, list)):
            if not self.has(path) or not 0 < self.size(path) <= kinds.SOURCE_BYTES:
                return {}
            with self._open(path) as f:
                value = imports.codec_aliases(f.read())
        return dict(value)

    def javascript(self, path: str):
        """Return the require facts of JavaScript file ``path``."""
        return self._source(path, kinds.JS)

    def package(self, path: str) -> dict:
        """Return the resolution fields of package.json ``path`` ({} if unreadable)."""
        value = self.fact(path, kinds.JSON)
        if isinstance(value, dict):
            return value
        if not self.has(path) or self.size(path) > kinds.TEXT_BYTES:
            return {}
        with self._open(path) as f:
            return kinds._package_fields(f.read())

    def _source(self, path: str, kind: str):
        value = self.fact(path, kind)
        if isinstance(value, (tuple, list)):
            return value
        if value is None and kind == kinds.JS and path.endswith(kinds.JS_SUFFIXES) and self._scanned(path) \
                and self.size(path) <= kinds.SOURCE_BYTES:
            return (), False  # probed, and it names nothing (the policy records no empty fact)
        if not self.has(path) or not 0 < self.size(path) <= kinds.SOURCE_BYTES:
            return (), False  # an empty file (the policy probes none: an __init__.py) imports nothing
        with self._open(path) as f:
            data = f.read()
        return imports.python_imports(data) if kind == kinds.PY else imports.js_requires(data)

    # -- reading again -----------------------------------------------------------------------

    def fetch(self, paths: Iterable[str]) -> None:
        """Read again, in one pass per layer, the bytes of the listed paths whose facts the
        scan could not gather (ELF files with far string tables); others are ignored."""
        wanted: dict[int, set[int]] = {}
        for path in paths:
            member = self.member(path)
            if member is None or member in self._spooled:
                continue
            if self.fact(path, kinds.ELF) is _MISSING:
                wanted.setdefault(member[0], set()).add(member[1])
        for layer in sorted(wanted):
            self._spool_layer(layer, wanted[layer])

    def _open(self, path: str) -> BinaryIO:
        member = self.member(path)
        assert member is not None
        if member not in self._spooled:
            self._spool_layer(member[0], {member[1]})
        return open(self._spooled[member], "rb")

    def _spool_layer(self, layer: int, indexes: set[int]) -> None:
        self.layer_passes += 1
        files: dict[int, Path] = {}

        def visit(index, entry, header):
            if index not in indexes:
                return None
            dest = self.scratch / f"c{layer}-{index}"
            files[index] = dest
            return FileSink(dest)

        restream(self.image.layers[layer], visit, where(self.image, layer))
        missing = indexes - set(files)
        if missing:
            raise FormatError(f"{where(self.image, layer)}: the tar stream ended before member {min(missing)}")
        for index, dest in files.items():
            self._spooled[(layer, index)] = dest


class FileSink:
    """A re-stream sink that copies a member's data into a new file."""

    def __init__(self, dest: Path):
        self.dest = dest
        try:
            self._f = open(dest, "xb")
        except OSError as err:
            raise OutputError(f"cannot write {dest}: {err.strerror or err}") from err

    def write(self, data) -> None:
        try:
            self._f.write(data)
        except OSError as err:
            self._f.close()
            raise OutputError(f"cannot write {self.dest}: {err.strerror or err}") from err

    def end(self) -> None:
        self._f.close()

