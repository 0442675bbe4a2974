"""A slimming plan: which paths of the merged filesystem the new image keeps, which files
slimmer writes itself, and why; plus the user's ``--keep``/``--drop`` globs.

A plan is data: ``prune`` and ``distroless`` make one, ``flatten`` carries one out, the CLI
renders one (``--dry-run`` stops there). Imports the model, ``slimmer.layers`` and the category
rules of the analyzer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from slimmer.analyzer.categories import glob_regex
from slimmer.errors import SlimError
from slimmer.layers import MergedFS
from slimmer.model import DIR, KINDS
from slimmer.rewriter.closure import Reason

PRUNE = "prune"
DISTROLESS = "distroless"
MODES = (PRUNE, DISTROLESS)

SHADOWED = "shadowed"  # bytes a later layer overwrote or deleted: flattening drops them
REPLACED = "replaced"  # files slimmer rewrote (e.g. /etc/passwd with a nonroot user)


@dataclass(frozen=True)
class Synthetic:
    """A file or directory slimmer writes into the new image itself."""

    path: str
    kind: str  # FILE or DIR
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    why: str = ""


class Removed(NamedTuple):
    """A path of the merged filesystem the new image leaves out (a tuple: a plan may remove
    100,000s)."""

    path: str
    kind: str
    size: int
    category: str


@dataclass(frozen=True)
class Plan:
    """What the new image holds. ``keep`` paths are copied from the layers with their final
    version; ``synthetic`` ones are written by slimmer (and replace a kept path of that name)."""

    mode: str
    keep: frozenset[str]
    synthetic: tuple[Synthetic, ...]
    removed: tuple[Removed, ...]
    reasons: tuple[Reason, ...]
    notes: tuple[str, ...]
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class Globs:
    """The user's ``--keep`` and ``--drop`` patterns, compiled.

    A pattern is an absolute path glob (``/usr/share/zoneinfo/**``); ``*`` stays inside one
    path segment, ``**`` spans segments; a pattern without ``/`` matches a name at any depth
    (``*.pyc``). A pattern that matches a directory also matches everything below it.
    ``--keep`` wins over ``--drop`` and over every rule.
    """

    keep: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()

    _keep: re.Pattern | None = field(default=None, init=False, repr=False, compare=False)
    _drop: re.Pattern | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keep", _compile(self.keep))
        object.__setattr__(self, "_drop", _compile(self.drop))

    def kept(self, path: str) -> bool:
        """Return whether a --keep pattern matches ``path`` (a model path)."""
        return bool(self._keep and self._keep.match(path))

    def dropped(self, path: str) -> bool:
        """Return whether a --drop pattern matches ``path`` and no --keep pattern does."""
        return bool(self._drop and self._drop.match(path)) and not self.kept(path)


def _compile(patterns: Sequence[str]) -> re.Pattern | None:
    if not patterns:
        return None
    parts = []
    for pattern in patterns:
        text = pattern.strip()
        if not text or "\0" in text:
            raise SlimError(f"--keep/--drop pattern {pattern!r} is empty or holds a NUL byte")
        body = text.lstrip("/") if text.startswith("/") else ("**/" + text if "/" not in text else text)
        body = body.rstrip("/") or "**"
        parts.append(glob_regex(body))
    return re.compile(r"(?:" + "|".join(parts) + r")(?:/.*)?\Z", re.DOTALL)


def with_ancestors(fs: MergedFS, paths: Iterable[str]) -> set[str]:
    """Return ``paths`` plus every ancestor directory the merged filesystem lists as an entry."""
    out = set(paths)
    listed = fs.refs()
    # one level of parents at a time, for all paths at once (directories only implied by
    # deeper entries are passed through, never added)
    level = {path.rpartition("/")[0] for path in out}.difference(out)  # model paths: no leading slash
    while level:
        level.discard("")
        out.update(path for path in level if path in listed)
        level = {path.rpartition("/")[0] for path in level}.difference(out)
    return out


def removed_list(fs: MergedFS, keep: set[str] | frozenset[str], category_of,
                 synthetic: Sequence[Synthetic] = ()) -> list[Removed]:
    """Return every final path of ``fs`` not in ``keep``, with its category (``category_of(path)``;
    ``REPLACED`` for the paths ``synthetic`` entries take over). Records are made for the
    removed paths only, from the columns of ``fs.table()``."""
    replaced = {s.path for s in synthetic}
    table = fs.table()
    gone = [(path, KINDS[kind], size) for path, kind, size in zip(table.paths, table.kinds, table.sizes)
            if path not in keep]
    return [Removed(path, kind, size if kind != DIR else 0, REPLACED if path in replaced else category_of(path))
            for path, kind, size in gone]
