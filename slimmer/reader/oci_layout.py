"""OCI image layouts (``oci-layout``, ``index.json``, ``blobs/sha256/...``), as a directory
or as a tar (``skopeo copy ... oci-archive:``). Indexes may nest and list several platforms.
"""

from __future__ import annotations

import platform as host

from slimmer.errors import FormatError, ImageSelectionError
from slimmer.model import Image
from slimmer.reader.assemble import DIGEST_RE, Chosen, Options, assemble, sha256
from slimmer.reader.blobs import parse_json
from slimmer.reader.docker_archive import matches
from slimmer.reader.store import Store

FORMAT = "oci-layout"

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json"}
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}
REF_KEYS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i686": "386"}
MAX_DEPTH = 8


def detect(store: Store) -> bool:
    return store.has("index.json") and store.has("oci-layout")


def _names(ann: dict) -> list[str]:
    """Return the references an index descriptor's annotations give it: containerd's full name
    where present, else the OCI ref name (a tag, or a full reference)."""
    if "io.containerd.image.name" in ann:
        return [str(ann["io.containerd.image.name"])]
    if "org.opencontainers.image.ref.name" in ann:
        return [str(ann["org.opencontainers.image.ref.name"])]
    return []


def host_platform() -> str:
    return "linux/" + _ARCH.get(host.machine(), host.machine())


def blob_name(desc: dict, where: str) -> str:
    digest = desc.get("digest")
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise FormatError(f"{where}: descriptor digest {digest!r} is not a sha256 digest")
    return "blobs/sha256/" + digest.split(":", 1)[1]


def read_blob_json(store: Store, desc: dict, where: str) -> tuple[dict, str]:
    name = blob_name(desc, where)
    data = store.read_bytes(name)
    if sha256(data) != desc["digest"]:
        raise FormatError(f"{where}: blob {name} does not match its digest {desc['digest']}")
    if isinstance(desc.get("size"), int) and desc["size"] != len(data):
        raise FormatError(f"{where}: blob {name} is {len(data)} bytes, its descriptor says {desc['size']}")
    return parse_json(data, f"{where}: {name}"), name


def _platform_of(desc: dict) -> str | None:
    p = desc.get("platform")
    if not isinstance(p, dict):
        return None
    parts = [str(p.get("os", "")), str(p.get("architecture", ""))]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts)


def _candidates(store: Store, index: dict, where: str, refs: list[str], plat: str | None, depth: int):
    if depth > MAX_DEPTH:
        raise FormatError(f"{where}: image indexes nest deeper than {MAX_DEPTH}")
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise FormatError(f"{where}: index has no manifests list")
    for desc in manifests:
        if not isinstance(desc, dict):
            raise FormatError(f"{where}: index lists a non-object descriptor")
        ann: dict = desc["annotations"] if isinstance(desc.get("annotations"), dict) else {}
        if ann.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        names = refs + _names(ann)
        p = _platform_of(desc) or plat
        media = desc.get("mediaType")
        if desc.get("artifactType"):
            continue  # an artifact (a signature, an SBOM) beside the images, not an image
        if media in INDEX_TYPES:
            sub, _ = read_blob_json(store, desc, where)
            yield from _candidates(store, sub, where, names, p, depth + 1)
        elif media in MANIFEST_TYPES or media is None:
            yield desc, names, p
        # image-spec (image-index.md): an entry of an unknown media type MUST be ignored


CONFIG_TYPES = {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}


def _is_image_manifest(store: Store, desc: dict, where: str) -> bool:
    """Return whether the manifest ``desc`` names is an image's (its config is an image
    config), not an artifact's."""
    manifest, _ = read_blob_json(store, desc, where)
    config = manifest.get("config")
    if manifest.get("artifactType") or not isinstance(config, dict):
        return False
    return config.get("mediaType", next(iter(CONFIG_TYPES))) in CONFIG_TYPES


def _norm_platform(text: str) -> list[str]:
    parts = text.split("/")
    # containerd's normalisation: arm64 means arm64/v8, arm means arm/v7, amd64 means amd64/v1
    defaults = {"arm64": "v8", "arm": "v7", "amd64": "v1"}
    if len(parts) == 2 and parts[1] in defaults:
        parts.append(defaults[parts[1]])
    return parts


def platform_matches(have: str | None, want: str) -> bool:
    """Return whether platform ``have`` (os/arch[/variant], None for any) satisfies ``want``."""
    if have is None:
        return True
    return _norm_platform(have) == _norm_platform(want)


def read(store: Store, options: Options) -> Image:
    where = store.where
    index = parse_json(store.read_bytes("index.json"), f"{where}: index.json")
    desc, names = select(candidates(store, index, where), options, where)
    fmt = FORMAT if store.kind == "dir" else "oci-archive"
    return assemble(store, chosen_of(store, desc, names, where), fmt, store.where, options)


def candidates(store: Store, index: dict, where: str) -> list[tuple[dict, list[str], str | None]]:
    """Return the image manifests ``index`` leads to (through nested indexes), each as
    (descriptor, the references naming it, its platform or None), attestations and other
    artifacts left out."""
    found = [f for f in _candidates(store, index, where, [], None, 0) if f[2] != "unknown/unknown"]
    if len(found) > 1:
        # artifact manifests carry another config media type (OCI 1.1 artifacts, cosign)
        found = [f for f in found if _is_image_manifest(store, f[0], where)]
    return found


def select(found: list[tuple[dict, list[str], str | None]], options: Options, where: str) -> tuple[dict, list[str]]:
    """Return the one manifest of ``found`` that ``options`` picks (--image, --platform, else
    the host's platform where there are several) as (descriptor, references); raise if it is
    not exactly one."""
    if not found:
        raise FormatError(f"{where}: the index lists no image manifest")
    if options.image:
        found = [f for f in found if _ref_matches(f[1], options.image) or _ref_name(f[0]) == options.image]
        if not found:
            raise ImageSelectionError(f"{where}: no image {options.image!r} in the index")
    want = options.platform
    if want:
        found = [f for f in found if platform_matches(f[2], want)]
        if not found:
            raise ImageSelectionError(f"{where}: no manifest for platform {want}")
    if len({f[2] for f in found}) > 1 and not want:
        native = [f for f in found if platform_matches(f[2], host_platform())]
        found = native or found
    merged: dict[str, tuple[dict, list[str], str | None]] = {}
    for desc, names, plat in found:
        have = merged.setdefault(str(desc.get("digest")), (desc, [], plat))
        have[1].extend(n for n in names if n not in have[1])
    if len(merged) > 1:
        choices = "; ".join(f"{', '.join(n) or d['digest'][:19]} ({p or 'any platform'})"
                            for d, n, p in merged.values())
        raise ImageSelectionError(f"{where} holds {len(merged)} images, pick one with --image or --platform: "
                                  f"{choices}")
    desc, names, _ = next(iter(merged.values()))
    return desc, names


def chosen_of(store: Store, desc: dict, names: list[str], where: str) -> Chosen:
    """Return the image the manifest ``desc`` describes: its config and layer blob names,
    their digests and media types, checked against the blobs' sizes in ``store``."""
    manifest, mname = read_blob_json(store, desc, where)
    cfg = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(cfg, dict) or not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
        raise FormatError(f"{where}: manifest {mname} needs a config descriptor and a layers list")
    for layer in layers:
        if layer.get("mediaType") not in LAYER_TYPES:
            raise FormatError(f"{where}: manifest {mname} has a layer of unknown media type {layer.get('mediaType')!r}")
    chosen = Chosen(
        config_name=blob_name(cfg, where),
        layer_names=[blob_name(x, where) for x in layers],
        tags=sorted(set(names)),
        manifest_digest=desc["digest"],
        expected_digests=[x["digest"] for x in layers],
        media_types=[x["mediaType"] for x in layers],
    )
    for x, name in zip(layers, chosen.layer_names):
        if isinstance(x.get("size"), int) and x["size"] != store.size(name):
            raise FormatError(f"{where}: layer {name} is {store.size(name)} bytes, the manifest says {x['size']}")
    return chosen


def _ref_name(desc: dict) -> str | None:
    """Return the descriptor's ``org.opencontainers.image.ref.name`` (what ``oci:DIR:TAG`` names)."""
    ann = desc.get("annotations")
    return ann.get("org.opencontainers.image.ref.name") if isinstance(ann, dict) else None


def _ref_matches(names: list[str], wanted: str) -> bool:
    """Return whether ``wanted`` names a descriptor known by ``names``. A bare tag (what
    ``skopeo copy ... oci:DIR:TAG`` records) also matches ``anything:TAG``."""
    if wanted in names or matches(names, wanted):
        return True
    last = wanted.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else None
    bare = [n for n in names if "/" not in n and ":" not in n]
    return tag is not None and tag in bare
