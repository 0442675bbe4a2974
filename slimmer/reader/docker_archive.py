"""`docker save` archives: legacy (``<id>/layer.tar``) and Docker 25+ (OCI blobs plus
manifest.json), and skopeo's docker-archive (layer names that are links to blobs).

Format: a top-level ``manifest.json`` array of ``{Config, RepoTags, Layers}``.
"""

from __future__ import annotations

from slimmer.errors import FormatError, ImageSelectionError
from slimmer.model import Image
from slimmer.reader.assemble import Chosen, Options, assemble
from slimmer.reader.blobs import parse_json
from slimmer.reader.store import Store

FORMAT = "docker-archive"


def detect(store: Store) -> bool:
    return store.has("manifest.json")


def read(store: Store, options: Options) -> Image:
    where = f"{store.where}: manifest.json"
    manifest = parse_json(store.read_bytes("manifest.json"), where, list)
    images = []
    for item in manifest:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                or not isinstance(item.get("Layers"), list) or not all(isinstance(x, str) for x in item["Layers"]):
            raise FormatError(f"{where}: each entry needs a Config string and a Layers list of strings")
        tags = item.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise FormatError(f"{where}: RepoTags must be a list of strings")
        images.append(Chosen(config_name=item["Config"], layer_names=list(item["Layers"]), tags=list(tags)))
    chosen = pick(images, options.image, store.where)
    fmt = FORMAT + ("-oci" if store.has("oci-layout") else "")
    return assemble(store, chosen, fmt, store.where, options)


def describe(c: Chosen) -> str:
    return ", ".join(c.tags) if c.tags else c.config_name


def pick(images: list[Chosen], wanted: str | None, where: str) -> Chosen:
    """Return the one image ``wanted`` names (a tag, or a config digest prefix), or the only one."""
    if not images:
        raise FormatError(f"{where}: the archive holds no image")
    if wanted is None:
        if len(images) == 1:
            return images[0]
        choices = "; ".join(describe(c) for c in images)
        raise ImageSelectionError(f"{where} holds {len(images)} images, pick one with --image: {choices}")
    for c in images:
        if matches(c.tags, wanted) or _is_config_prefix(wanted, c.config_name):
            return c
    choices = "; ".join(describe(c) for c in images)
    raise ImageSelectionError(f"{where}: no image {wanted!r}; the archive holds: {choices}")


def _is_config_prefix(wanted: str, config_name: str) -> bool:
    """Return whether ``wanted`` is an image ID prefix (12+ hex digits) of this config."""
    hexpart = wanted.removeprefix("sha256:")
    if len(hexpart) < 12 or not all(ch in "0123456789abcdef" for ch in hexpart):
        return False
    base = config_name.rsplit("/", 1)[-1].removesuffix(".json")
    return base.startswith(hexpart)


def normalize_ref(ref: str) -> str:
    """Return a reference as Docker reads it: ``name`` means ``name:latest``, and Docker Hub's
    ``docker.io/library/`` (or ``index.docker.io/``, or ``library/``) prefix is implied;
    podman's ``localhost/`` prefix is dropped too."""
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        ref += ":latest"
    for prefix in ("index.docker.io/", "docker.io/", "localhost/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    return ref.removeprefix("library/")


def matches(tags: list[str], wanted: str) -> bool:
    """Return whether ``wanted`` names one of ``tags``, both normalised as Docker does."""
    want = normalize_ref(wanted)
    return any(normalize_ref(tag) == want for tag in tags)
