"""Content facts gathered while a layer's tar streams by: the scan pass reads every byte once,
so whatever a command needs to know from file contents is learnt then, not by reading again.

A *policy* (``Policy``) decides, per file entry, whether and how to look at its data: it
returns a sink that sees the member's bytes as they pass and records *facts* (small values:
strings, ints, bytes, tuples) by kind and path in a ``Facts``. The analyzer's policy
(``slimmer.analyzer.content``) asks for libmagic heads, package databases, Go build info and
content hashes; the reader only runs it. Facts follow the tar's own rule for a path given
twice: the later member wins, so a member's facts are dropped when a later one names its path.

Facts must survive ``marshal`` (worker processes hand them back that way, and the layer cache
stores them), and ``Policy.key`` names what a policy collects: a cached scan serves a request
only under the same key. Imports only the model.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Protocol

from slimmer.model import FILE, Entry
from slimmer.tar.scan import Select

# The fact kind of a layer's member spans (a policy with ``spans = True`` asks for them): one
# value, under the path "", the bytes of an ``array("q")`` of (start, end) stream offsets per
# entry, as ``slimmer.tar.scan.TarScanner`` records them.
SPANS = "spans"


class Sink(Protocol):
    def write(self, data: memoryview) -> None: ...

    def end(self) -> None: ...


class Facts:
    """Facts of one layer: ``kinds[kind][path] = value``. ``later`` runs work that lets go of
    the GIL (libmagic) on the reader's threads when it has some: its fact is recorded once
    the work is done (``as_mapping`` waits for it)."""

    __slots__ = ("_paths", "kinds", "pool")

    def __init__(self, kinds: dict[str, dict[str, Any]] | None = None, pool: Executor | None = None):
        self.kinds: dict[str, dict[str, Any]] = kinds if kinds is not None else {}
        self._paths: set[str] = set()
        self.pool = pool

    def later(self, kind: str, path: str, work: Callable[[], Any]) -> None:
        """Record what ``work()`` returns (nothing for None) as the ``kind`` fact of ``path``."""
        self.put(kind, path, self.pool.submit(work) if self.pool is not None else work())

    def put(self, kind: str, path: str, value: Any) -> None:
        """Record ``value`` as the ``kind`` fact of ``path``."""
        table = self.kinds.get(kind)
        if table is None:
            table = self.kinds[kind] = {}
        table[path] = value
        self._paths.add(path)

    def drop(self, path: str) -> None:
        """Forget every fact of ``path`` (a later member of the layer replaced it)."""
        if path in self._paths:
            self._paths.discard(path)
            for table in self.kinds.values():
                table.pop(path, None)


class Policy(Protocol):
    """What to learn from file contents during the scan pass. ``select`` names the members
    whose data it may want (every member the sink could want a look at, and more is fine),
    so the scanner shows it only those; None shows it every member."""

    key: str
    select: Select | None

    def sink(self, entry: Entry, facts: Facts) -> Sink | None:
        """Return a sink for the data of file ``entry`` (which records into ``facts`` at its
        end), or None to pass over its bytes. Called for every regular file entry."""
        ...


class Collector:
    """Runs a policy over one layer: the scanner's ``visit`` callback (with ``select``)."""

    def __init__(self, policy: Policy, pool: Executor | None = None):
        self.policy = policy
        self.facts = Facts(pool=pool)
        self.select = getattr(policy, "select", None)

    def visit(self, index: int, entry: Entry, header) -> Sink | None:
        facts = self.facts
        if entry.path in facts._paths:
            facts.drop(entry.path)
        if entry.kind != FILE:
            return None
        return self.policy.sink(entry, facts)


def as_mapping(facts: Facts | None) -> dict[str, dict[str, Any]]:
    """Return the facts as plain dicts (what the model and the layer cache hold), waiting for
    the work ``Facts.later`` handed out."""
    if facts is None:
        return {}
    out = {}
    for kind, table in facts.kinds.items():
        if any(isinstance(value, Future) for value in table.values()):
            table = {path: value.result() if isinstance(value, Future) else value for path, value in table.items()}
        table = {path: value for path, value in table.items() if value is not None}
        if table:
            out[kind] = table
    return out
