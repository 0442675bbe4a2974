"""The scan pass: a stored layer blob read exactly once.

Its stored bytes are hashed (*digest*), decompressed in bounded chunks, hashed again
(*diff_id*) and fed to the one layer tar parser, which records the entries and lets a content
policy (``slimmer.tar.collect``) learn what it needs from file data as it passes. Nothing else
ever reads a layer for the analysis. Also: bounded JSON parsing for manifests and configs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from slimmer.errors import FormatError, LimitError, TruncatedError
from slimmer.model import Entry
from slimmer.tar.codec import CHUNK, BlobStream, compression_of  # noqa: F401  (re-exported)
from slimmer.tar.collect import SPANS, Collector, Policy, as_mapping
from slimmer.tar.scan import TarScanner

DEFAULT_MAX_LAYER_SIZE = 64 << 30
MAX_JSON = 64 << 20
BACKGROUND_HASH_MIN = 4 << 20  # smaller layers are hashed inline: a thread costs more than it saves


@dataclass(frozen=True)
class LayerScan:
    """What one pass over a stored layer blob found. ``facts`` are the content policy's
    (``policy`` names it; "" when none ran); ``notes`` say what was accepted though odd."""

    digest: str
    stored_size: int
    diff_id: str
    uncompressed_size: int
    compression: str
    entries: tuple[Entry, ...]
    facts: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)
    policy: str = ""
    notes: tuple[str, ...] = ()


def scan_layer(raw: BinaryIO, where: str, max_layer_size: int = DEFAULT_MAX_LAYER_SIZE,
               size_hint: int = -1, policy: Policy | None = None, threads: bool = False) -> LayerScan:
    """Read a stored layer blob once; return its digests, sizes, tar entries and the facts
    ``policy`` gathered from its files.

    With ``threads``, blobs of BACKGROUND_HASH_MIN bytes or more (or of unknown size,
    ``size_hint`` < 0) are hashed on threads beside the parsing."""
    blob = BlobStream(raw, where, threads and (size_hint < 0 or size_hint >= BACKGROUND_HASH_MIN))
    try:
        return _scan(blob, where, max_layer_size, policy)
    finally:
        blob.close()


def _scan(blob: BlobStream, where: str, max_layer_size: int, policy: Policy | None) -> LayerScan:
    collector = Collector(policy) if policy is not None else None
    scanner = TarScanner(where, max_layer_size, collector.visit if collector else None,
                         spans=bool(getattr(policy, "spans", False)))
    for chunk in blob.chunks():
        if blob.uncompressed_size > max_layer_size:
            raise LimitError(
                f"{where}: layer expands past --max-layer-size ({max_layer_size} bytes); refusing to read on")
        scanner.feed(chunk)
    total = blob.uncompressed_size
    notes: tuple[str, ...] = ()
    if total and not scanner.headers and not scanner.ended:
        raise FormatError(f"{where}: layer is not a tar stream")
    if not scanner.ended and (total or blob.compression != "none"):
        if not scanner.complete_members():
            raise TruncatedError(f"{where}: layer tar is truncated (ends inside a member)")
        # umoci 0.4.7's `insert` writes layers that stop right after the last member's data
        # (no padding, no end blocks); docker, containerd and dive read them, and the diff_id
        # the config promises is checked against exactly these bytes.
        notes = (f"{where}: the layer tar ends after its last member without end-of-archive blocks "
                 f"(as umoci 0.4.7 insert writes them); its members are complete",)
    else:
        scanner.finish()
    entries = scanner.entries
    facts = as_mapping(collector.facts) if collector else {}
    if scanner.spans is not None:
        facts[SPANS] = {"": scanner.spans.tobytes()}  # where each member lies, for a writer that copies
    return LayerScan(blob.digest(), blob.stored_size, blob.diff_id(), total, blob.compression, tuple(entries),
                     facts, policy.key if policy else "", notes)


def parse_json(data: bytes, where: str, kind: type = dict):
    """Parse a JSON document that must be of ``kind`` (dict or list)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise FormatError(f"{where}: not valid JSON ({err})") from err
    if not isinstance(value, kind):
        raise FormatError(f"{where}: expected a JSON {'object' if kind is dict else 'array'}")
    return value
