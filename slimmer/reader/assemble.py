"""Turns a chosen manifest (config bytes plus layer blob names) into a verified model Image.

Shared by every format module: digest checks against ``rootfs.diff_ids`` and blob names,
history steps matched to layers, media types from the detected compression.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from slimmer.errors import DigestMismatchError, FormatError, ImageSelectionError, LimitError
from slimmer.model import FILE, KIND_CODES, Columns, HistoryStep, Image, Layer
from slimmer.reader.blobs import DEFAULT_MAX_LAYER_SIZE, LayerScan, check_config, parse_json
from slimmer.reader.cache import LayerCache
from slimmer.reader.store import ScanOptions, Store
from slimmer.tar.collect import Policy

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_BLOB_NAME = re.compile(r"(?:^|/)blobs/sha256/([0-9a-f]{64})$")

MEDIA_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


@dataclass
class Options:
    """What the user asked the reader for: which image, the safety limit, the content
    ``policy`` the scan pass runs (None: entries only), how many ``jobs`` it may use, the
    layer cache, and a progress callback (bytes read)."""

    image: str | None = None
    platform: str | None = None
    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE
    progress: Callable[[int], None] | None = None
    cache: LayerCache | None = None
    policy: Policy | None = None
    jobs: int = 1
    # return the image while the hashing of its layers goes on, the digests checked by
    # ``model.verified(image)`` (``Image.pending``): the caller overlaps its work with hashing
    defer: bool = False

    def scan(self) -> ScanOptions:
        """Return the scan options these ask for."""
        return ScanOptions(self.max_layer_size, self.policy, self.jobs, self.progress, self.defer)


@dataclass
class Chosen:
    """One image picked out of an archive, before its layers are read."""

    config_name: str
    layer_names: list[str]
    tags: list[str] = field(default_factory=list)
    manifest_digest: str = ""
    expected_digests: list[str | None] = field(default_factory=list)
    media_types: list[str | None] = field(default_factory=list)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def name_digest(name: str) -> str | None:
    """Return the digest a content-addressed blob name promises, if it is one."""
    m = _BLOB_NAME.search(name)
    return "sha256:" + m.group(1) if m else None


def history_of(config: dict, where: str) -> tuple[HistoryStep, ...]:
    raw = config.get("history") or []
    if not isinstance(raw, list):
        raise FormatError(f"{where}: config history is not a list")
    steps = []
    for item in raw:
        if not isinstance(item, dict):
            raise FormatError(f"{where}: config history holds a non-object")
        steps.append(HistoryStep(
            created_by=str(item.get("created_by", "") or ""),
            created=str(item.get("created", "") or ""),
            comment=str(item.get("comment", "") or ""),
            author=str(item.get("author", "") or ""),
            empty_layer=bool(item.get("empty_layer", False)),
        ))
    return tuple(steps)


def steps_for_layers(history: tuple[HistoryStep, ...], count: int) -> list[HistoryStep | None]:
    """Return, for each of ``count`` layers, the non-empty history step that made it."""
    made = [step for step in history if not step.empty_layer]
    return [made[i] if i < len(made) else None for i in range(count)]


def assemble(store: Store, chosen: Chosen, fmt: str, source: str, options: Options) -> Image:
    """Read the chosen image's config and layers from ``store``; verify every digest."""
    where = store.where
    config_bytes = store.read_bytes(chosen.config_name)
    config_digest = sha256(config_bytes)
    promised = name_digest(chosen.config_name) or _legacy_config_digest(chosen.config_name)
    if promised and promised != config_digest:
        raise DigestMismatchError(f"{where}: config {chosen.config_name} has digest {config_digest}, "
                                  f"its name promises {promised}")
    config = parse_json(config_bytes, f"{where}: config {chosen.config_name}")
    check_config(config, f"{where}: config {chosen.config_name}")
    if options.platform:
        from slimmer.reader.oci_layout import platform_matches

        parts = [str(config.get("os", "")), str(config.get("architecture", ""))]
        if config.get("variant"):
            parts.append(str(config["variant"]))
        if not platform_matches("/".join(parts), options.platform):
            raise ImageSelectionError(f"{where}: the image is for {'/'.join(parts)}, not {options.platform}")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise FormatError(f"{where}: config {chosen.config_name} has no rootfs.diff_ids list")
    if len(diff_ids) != len(chosen.layer_names):
        raise FormatError(f"{where}: config lists {len(diff_ids)} diff_ids but the manifest lists "
                          f"{len(chosen.layer_names)} layers")
    scans, prints = _scan(store, chosen.layer_names, diff_ids, options)
    history = history_of(config, where)
    steps = steps_for_layers(history, len(scans))
    layers = []
    notes: list[str] = []
    later: list[Callable[[], None]] = []
    for i, (name, scan) in enumerate(zip(chosen.layer_names, scans)):
        expected = (chosen.expected_digests[i] if i < len(chosen.expected_digests) else None) or name_digest(name)

        def check(i: int = i, name: str = name, scan: LayerScan = scan, expected: str | None = expected) -> None:
            if scan.pending is not None:
                digest = scan.pending()
                scan = dataclasses.replace(scan, digest=digest, diff_id=digest, pending=None)
            if expected and expected != scan.digest:
                raise DigestMismatchError(f"{where}: layer {name} has digest {scan.digest}, expected {expected}")
            if scan.diff_id != diff_ids[i]:
                raise DigestMismatchError(f"{where}: layer {i} ({name}) has diff_id {scan.diff_id}, "
                                          f"config rootfs.diff_ids says {diff_ids[i]}")
            if options.cache is not None and i in prints:
                options.cache.put(scan, prints[i])

        if scan.pending is None:
            check()
        else:
            later.append(check)
            # what the check confirms: an uncompressed blob's digest is its diff_id
            scan = dataclasses.replace(scan, digest=diff_ids[i], diff_id=diff_ids[i])
        media = chosen.media_types[i] if i < len(chosen.media_types) and chosen.media_types[i] else None
        layers.append(Layer(
            diff_id=scan.diff_id, digest=scan.digest, stored_size=scan.stored_size, entries=scan.entries,
            uncompressed_size=scan.uncompressed_size, media_type=media or MEDIA_TYPES[scan.compression],
            compression=scan.compression, history=steps[i], opener=store.opener(name),
            facts=scan.facts if options.policy is not None else None, facts_policy=scan.policy,
        ))
        notes.extend(scan.notes)
    return Image(config=config, layers=tuple(layers), history=history, tags=tuple(chosen.tags),
                 config_digest=config_digest, manifest_digest=chosen.manifest_digest, source=source, format=fmt,
                 notes=tuple(notes), pending=_all(later) if later else None)


def _all(checks: list[Callable[[], None]]) -> Callable[[], None]:
    def check_all() -> None:
        for check in checks:
            check()
    return check_all


def _scan(store: Store, names: list[str], diff_ids: list[str], options: Options
          ) -> tuple[list[LayerScan], dict[int, str]]:
    """Scan the layers, taking what the layer cache already knows (for the same policy);
    return the scans and the fingerprints of the layers scanned here that the cache takes
    once their digests check out."""
    cache = options.cache
    scan_options = options.scan()
    if cache is None:
        return store.scan_layers(names, scan_options), {}
    key = options.policy.key if options.policy is not None else None
    prints = [store.fingerprint(n) for n in names]
    found: list[LayerScan | None] = [cache.get(d, store.size(n), p, key) if p else None
                                     for n, d, p in zip(names, diff_ids, prints)]
    for name, scan in zip(names, found):
        if scan is not None:
            within_limit(scan, f"{store.where}: layer {name}", options.max_layer_size)
    todo = [i for i, f in enumerate(found) if f is None]
    fresh: dict[int, str] = {}
    for i, scan in zip(todo, store.scan_layers([names[i] for i in todo], scan_options)):
        found[i] = scan
        fingerprint = prints[i]
        if fingerprint:
            fresh[i] = fingerprint
    return [f for f in found if f is not None], fresh


def within_limit(scan: LayerScan, where: str, limit: int) -> None:
    """Refuse a cached scan that the scan itself would refuse: the cache never bypasses
    --max-layer-size (the tar's length, and the size a sparse file claims)."""
    if scan.uncompressed_size > limit:
        raise LimitError(f"{where}: layer expands past --max-layer-size ({limit} bytes); refusing to read on")
    cols = Columns.of(scan.entries)
    file = KIND_CODES[FILE]
    if any(offset < 0 for offset in cols.offsets):  # sparse members are rare: look closer only then
        for path, kind, size, offset in zip(cols.paths, cols.kinds, cols.sizes, cols.offsets):
            if kind == file and offset < 0 and size > limit:
                raise LimitError(f"{where}: sparse member {path!r} claims {size} bytes, past "
                                 f"--max-layer-size ({limit} bytes)")


def _legacy_config_digest(name: str) -> str | None:
    m = re.fullmatch(r"([0-9a-f]{64})\.json", name)
    return "sha256:" + m.group(1) if m else None
