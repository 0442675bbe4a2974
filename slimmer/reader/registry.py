"""The storage of the CNCF distribution registry (``registry:2``, Debian's docker-registry),
read from its filesystem driver's root directory: offline, read-only, without the registry.

    docker/registry/v2/blobs/sha256/<xx>/<hex>/data                           every blob, by digest
    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link  "sha256:<hex>"
    docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link
    docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link

A repository sees only the blobs it links, as the registry serves them: manifests through
``_manifests/revisions``, configs and layers through ``_layers``. A link file holds a digest,
never a path; a file whose real path leaves the storage root is refused. A tag's manifest (an
image manifest, or an index of several platforms) is parsed by ``oci_layout`` and turned into
a verified Image by ``assemble``, as for every format. ``images_of`` lists the images of one
tag for ``slimmer audit``; ``detect`` and ``read`` let ``open_image`` read one image
(``--image REPO:TAG``). Imports no analyzer.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fnmatch
import os
import re
import stat
from pathlib import Path
from typing import Protocol

from slimmer.errors import (
    DigestMismatchError,
    FormatError,
    ImageSelectionError,
    SlimmerError,
)
from slimmer.model import Image
from slimmer.reader import oci_layout
from slimmer.reader.assemble import (
    DIGEST_RE,
    Chosen,
    Options,
    assemble,
    sha256,
    within_limit,
)
from slimmer.reader.blobs import MAX_JSON, LayerScan, parse_json
from slimmer.reader.store import DirStore, ScanOptions, Store

FORMAT = "registry"
V2 = os.path.join("docker", "registry", "v2")
MAX_LINK = 256  # a link file holds "sha256:" and 64 hex digits, maybe a newline
MAX_DEPTH = 32  # repository names nest at most this deep
# the reference grammar of distribution (reference/regexp.go)
COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_BLOB_NAME = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")


def find_root(path: str | os.PathLike) -> Path | None:
    """Return the storage root ``path`` is (the directory holding ``docker/``, or
    ``docker/registry/v2`` itself), or None."""
    path = Path(path)
    if (path / V2 / "repositories").is_dir():
        return Path(os.path.realpath(path))
    if path.name == "v2" and (path / "repositories").is_dir() and path.parent.name == "registry" \
            and path.parent.parent.name == "docker":
        return Path(os.path.realpath(path.parent.parent.parent))
    return None


def is_storage(path: str | os.PathLike) -> bool:
    """Return whether ``path`` is the root of a distribution registry's storage."""
    return find_root(path) is not None


def blob_name(digest: str) -> str:
    """Return the name a store gives the blob ``digest`` (as in an OCI layout)."""
    return "blobs/sha256/" + digest.split(":", 1)[1]


class Storage:
    """The blobs of one registry storage root. Small blobs (manifests, configs) are read once
    and kept; ``reads`` counts the times each blob was opened for reading, by digest."""

    def __init__(self, root: str | os.PathLike):
        found = find_root(root)
        if found is None:
            raise FormatError(f"{root}: not a registry storage root (no {V2}/repositories)")
        self.root = str(found)
        self.v2 = os.path.join(self.root, V2)
        self.reads: collections.Counter[str] = collections.Counter()
        self.bytes_read = 0
        self._small: dict[str, bytes] = {}

    def inside(self, path: str, what: str) -> str:
        """Return the real path of ``path``, or raise if it leads outside the storage root."""
        real = os.path.realpath(path)
        if real != self.root and not real.startswith(self.root + os.sep):
            raise FormatError(f"{self.root}: {what} leads outside the storage ({real})")
        return real

    def blob_path(self, digest: str) -> str:
        """Return the path of the data of blob ``digest`` (which may not exist)."""
        if not DIGEST_RE.match(digest):
            raise FormatError(f"{self.root}: {digest!r} is not a sha256 digest")
        hexpart = digest.split(":", 1)[1]
        return os.path.join(self.v2, "blobs", "sha256", hexpart[:2], hexpart, "data")

    def blob_file(self, digest: str) -> str | None:
        """Return the real path of blob ``digest``'s data if it is a regular file in the storage."""
        real = self.inside(self.blob_path(digest), f"blob {digest}")
        try:
            return real if stat.S_ISREG(os.stat(real).st_mode) else None
        except OSError:
            return None

    def read_small(self, digest: str, limit: int = MAX_JSON) -> bytes:
        """Return the verified bytes of blob ``digest`` (a manifest or a config), read at most once."""
        if digest in self._small:
            return self._small[digest]
        path = self.blob_file(digest)
        if path is None:
            raise FormatError(f"{self.root}: blob {digest} is missing from the storage")
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except OSError as err:
            raise SlimmerError(f"cannot read {path}: {err.strerror}") from err
        self.counted(digest, len(data))
        if len(data) > limit:
            raise FormatError(f"{self.root}: blob {digest} is larger than {limit} bytes, too large for a manifest")
        if sha256(data) != digest:
            raise DigestMismatchError(f"{self.root}: blob {digest} is damaged: its sha256 is {sha256(data)}")
        self._small[digest] = data
        return data

    def counted(self, digest: str, size: int) -> None:
        """Note that blob ``digest`` was read (``size`` bytes)."""
        self.reads[digest] += 1
        self.bytes_read += size

    def link(self, path: str, what: str) -> str:
        """Return the digest the link file at ``path`` holds; raise if it holds none."""
        real = self.inside(path, what)
        try:
            with open(real, "rb") as f:
                data = f.read(MAX_LINK + 1)
        except OSError as err:
            raise FormatError(f"{self.root}: {what}: cannot read {path}: {err.strerror}") from err
        text = data.decode("ascii", "replace").strip()
        if len(data) > MAX_LINK or not DIGEST_RE.match(text):
            raise FormatError(f"{self.root}: {what}: {path} does not hold a sha256 digest")
        return text


@dataclasses.dataclass(frozen=True)
class TagRef:
    """One tag of a repository: the digest its ``current/link`` names, or why it has none."""

    repository: str
    tag: str
    digest: str = ""
    error: str = ""

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else self.repository


def tags(storage: Storage, repo_glob: str = "*", tag_glob: str = "*") -> list[TagRef]:
    """Return every tag of every repository whose names match the globs, sorted; a tag or a
    repository the storage does not hold properly comes back with its error."""
    out: list[TagRef] = []
    top = os.path.join(storage.v2, "repositories")
    for repo, where, error in _repositories(storage, top, [], 0, set()):
        if not fnmatch.fnmatchcase(repo, repo_glob):
            continue
        if error:
            out.append(TagRef(repo, "", error=error))
            continue
        tag_dir = os.path.join(where, "_manifests", "tags")
        try:
            names = sorted(os.listdir(tag_dir))
        except OSError:
            names = []  # a repository with layers or manifests but no tag yet
        for tag in names:
            if not fnmatch.fnmatchcase(tag, tag_glob):
                continue
            ref = TagRef(repo, tag)
            if not TAG_RE.match(tag):
                out.append(dataclasses.replace(ref, tag=ascii(tag)[1:-1],
                                               error=f"{storage.root}: {repo}: {tag!a} is not a valid tag"))
                continue
            try:
                digest = storage.link(os.path.join(tag_dir, tag, "current", "link"), f"tag {ref.ref}")
                out.append(dataclasses.replace(ref, digest=digest))
            except FormatError as err:
                out.append(dataclasses.replace(ref, error=str(err)))
    return sorted(out, key=lambda r: (r.repository, r.tag))


def _repositories(storage: Storage, path: str, parts: list[str], depth: int, seen: set[str]):
    """Yield (name, directory, error) for each repository below ``path``: a directory holding
    ``_manifests`` or ``_layers``. Symbolic links are followed only inside the storage."""
    name = "/".join(parts)
    try:
        real = storage.inside(path, f"repository {name or '/'}")
    except FormatError as err:
        yield name, path, str(err)
        return
    if real in seen or depth > MAX_DEPTH:
        yield name, path, f"{storage.root}: repository {name}: directory loop or nesting deeper than {MAX_DEPTH}"
        return
    seen = seen | {real}
    try:
        children = sorted(os.listdir(real))
    except OSError as err:
        yield name, path, f"{storage.root}: cannot list {path}: {err.strerror}"
        return
    if parts and ("_manifests" in children or "_layers" in children):
        yield name, real, ""
    for child in children:
        if child.startswith("_") or not os.path.isdir(os.path.join(real, child)):
            continue  # _manifests, _layers, _uploads: the registry's own, never a name
        if not COMPONENT_RE.match(child):
            yield "/".join([*parts, ascii(child)[1:-1]]), "", \
                f"{storage.root}: {child!a} is not a valid repository name component"
            continue
        yield from _repositories(storage, os.path.join(real, child), [*parts, child], depth + 1, seen)


class ScanSource(Protocol):
    """Where a RepositoryStore finds layer scans already made: by blob digest, a scan, the
    error the blob gave, or None (not scanned yet)."""

    def get(self, digest: str) -> LayerScan | SlimmerError | None: ...


class RepositoryStore(DirStore):
    """The blobs one repository links, named ``blobs/sha256/<hex>`` as in an OCI layout, so the
    OCI parsing reads them unchanged. ``scans`` may hold scans already made of its layers, by
    digest (an exception: the blob failed); the others are scanned when asked for."""

    kind = "registry"

    def __init__(self, storage: Storage, repository: str, scans: ScanSource | None = None):
        super().__init__(Path(storage.root))
        self.storage = storage
        self.repository = repository
        self.where = f"{storage.root}: {repository}"
        self.repo_dir = os.path.join(storage.v2, "repositories", *repository.split("/"))
        self.scans = scans if scans is not None else {}

    def digest_of(self, name: str) -> str:
        m = _BLOB_NAME.match(name)
        if m is None:
            raise FormatError(f"{self.where}: {name!r} names no blob")
        return "sha256:" + m.group(1)

    def is_linked(self, digest: str) -> bool:
        """Return whether this repository links blob ``digest`` (as a layer, a config or a manifest)."""
        hexpart = digest.split(":", 1)[1]
        for kind in ("_layers", os.path.join("_manifests", "revisions")):
            path = os.path.join(self.repo_dir, kind, "sha256", hexpart, "link")
            if os.path.isfile(path) and self.storage.link(path, f"repository {self.repository}") == digest:
                return True
        return False

    def _resolve(self, name: str) -> str | None:
        digest = self.digest_of(name)
        found = self.storage.blob_file(digest)
        if not self.is_linked(digest):
            if found is None:
                raise FormatError(f"{self.where}: blob {digest} is missing from the storage (a dangling link)")
            raise FormatError(f"{self.where}: blob {digest} is not linked in the repository "
                              f"(no _layers or _manifests/revisions link)")
        return found

    def missing(self, name: str, what: str) -> FormatError:
        digest = self.digest_of(name)
        return FormatError(f"{self.where}: {what} {digest} is linked but missing from the storage "
                           f"({self.storage.blob_path(digest)} does not exist)")

    def names(self) -> set[str]:
        out: set[str] = set()
        for kind in ("_layers", os.path.join("_manifests", "revisions")):
            with contextlib.suppress(OSError):
                out.update("blobs/sha256/" + h for h in os.listdir(os.path.join(self.repo_dir, kind, "sha256")))
        return out

    def read_bytes(self, name: str, limit: int = MAX_JSON) -> bytes:
        self._full(name)
        return self.storage.read_small(self.digest_of(name), limit)

    def scan_layers(self, names: list[str], options: ScanOptions) -> list[LayerScan]:
        found: dict[str, LayerScan] = {}
        for name in names:
            known = self.scans.get(self.digest_of(name))
            if isinstance(known, SlimmerError):
                raise known
            if known is not None:
                within_limit(known, f"{self.where}: layer {name}", options.max_layer_size)
                found[name] = known
        todo = [n for n in names if n not in found]
        for name, scan in zip(todo, super().scan_layers(todo, options)):
            self.storage.counted(self.digest_of(name), scan.stored_size)
            found[name] = scan
        return [found[n] for n in names]


@dataclasses.dataclass
class Planned:
    """One image a tag leads to (one per platform of an index), before its layers are read:
    what ``assemble`` needs, or why it cannot be had."""

    repository: str
    tag: str
    tag_digest: str
    store: RepositoryStore
    platform: str = ""
    chosen: Chosen | None = None
    error: str = ""

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def images_of(storage: Storage, ref: TagRef, platform: str | None = None,
              scans: ScanSource | None = None) -> tuple[list[Planned], list[str]]:
    """Return the images tag ``ref`` leads to (with ``platform``, only that platform's) and the
    platforms left out. A tag that cannot be read gives one Planned with its error; an index
    whose one platform cannot be read gives that platform's error and the others."""
    store = RepositoryStore(storage, ref.repository, scans)
    base = Planned(ref.repository, ref.tag, ref.digest, store)
    if ref.error:
        return [dataclasses.replace(base, error=ref.error)], []
    where = f"{store.where}:{ref.tag}"
    try:
        found = _manifests(store, ref.digest, where)
    except SlimmerError as err:
        return [dataclasses.replace(base, error=str(err))], []
    out, left_out = [], []
    for desc, plat in found:
        item = dataclasses.replace(base, platform=plat or "")
        try:
            item.chosen = oci_layout.chosen_of(store, desc, [ref.ref], where)
            item.platform = plat or config_platform(store, item.chosen, where)
        except SlimmerError as err:
            item.error = str(err)
        if platform and item.platform and not oci_layout.platform_matches(item.platform, platform):
            left_out.append(item.platform)
            continue
        out.append(item)
    return out, left_out


def _manifests(store: RepositoryStore, digest: str, where: str) -> list[tuple[dict, str | None]]:
    """Return (descriptor, platform or None) of each image manifest the manifest ``digest``
    is or lists."""
    data = store.read_bytes(blob_name(digest))
    if sha256(data) != digest:
        raise FormatError(f"{where}: manifest {digest} does not match its digest (it is {sha256(data)})")
    top = parse_json(data, f"{where}: manifest {digest}")
    media = top.get("mediaType")
    desc = {"digest": digest, "size": len(data), **({"mediaType": media} if media else {})}
    if media in oci_layout.INDEX_TYPES or (media is None and "manifests" in top):
        found = oci_layout.candidates(store, top, where)
        if not found:
            raise FormatError(f"{where}: the index {digest} lists no image manifest")
        return [(d, p) for d, _names, p in found]
    if media is not None and media not in oci_layout.MANIFEST_TYPES:
        raise FormatError(f"{where}: manifest {digest} has media type {media!r}, not an image manifest or index")
    return [(desc, None)]


def config_platform(store: Store, chosen: Chosen, where: str) -> str:
    """Return the os/arch[/variant] the image config of ``chosen`` names."""
    config = parse_json(store.read_bytes(chosen.config_name), f"{where}: config {chosen.config_name}")
    parts = [str(config.get("os", "") or "unknown"), str(config.get("architecture", "") or "unknown")]
    if config.get("variant"):
        parts.append(str(config["variant"]))
    return "/".join(parts)


def assemble_planned(item: Planned, options: Options) -> Image:
    """Return the verified Image of ``item`` (its layers from ``item.store.scans`` where known)."""
    if item.chosen is None:
        raise FormatError(item.error or f"{item.store.where}: {item.ref} has no image")
    return assemble(item.store, item.chosen, FORMAT, f"{item.store.storage.root}: {item.ref}", options)


# ---- one image, for open_image (slimmer analyze STORAGE --image REPO:TAG) ----------------------


def detect(store: Store) -> bool:
    return isinstance(store, DirStore) and store.kind == "dir" and is_storage(store.path)


def read(store: Store, options: Options) -> Image:
    if not isinstance(store, DirStore):
        raise FormatError(f"{store.where}: a registry storage is a directory")
    storage = Storage(store.path)
    known = tags(storage)
    if not options.image:
        listed = ", ".join(r.ref for r in known[:8]) + (", ..." if len(known) > 8 else "")
        raise ImageSelectionError(f"{storage.root} is a registry storage holding {len(known)} tags, pick one "
                                  f"with --image REPO:TAG: {listed}")
    wanted = options.image
    repo, _, tag = wanted.rpartition(":") if ":" in wanted.rsplit("/", 1)[-1] else (wanted, "", "latest")
    ref = next((r for r in known if r.repository == repo and r.tag == tag), None)
    if ref is None:
        raise ImageSelectionError(f"{storage.root}: no tag {repo}:{tag} in the registry storage")
    if ref.error:
        raise FormatError(ref.error)
    rstore = RepositoryStore(storage, ref.repository)
    where = f"{rstore.where}:{ref.tag}"
    found = [(d, [ref.ref], p) for d, p in _manifests(rstore, ref.digest, where)]
    desc, names = oci_layout.select(found, dataclasses.replace(options, image=None), where)
    chosen = oci_layout.chosen_of(rstore, desc, names, where)
    return assemble(rstore, chosen, FORMAT, f"{storage.root}: {ref.ref}", options)
