"""Reading manifests, indexes and configs that came from outside (registry, archive).

Total parsers: every field is type-checked and every digest validated before
use, the document kind is decided once (CVE-2021-41190: a body with both
`manifests` and `layers`, or whose `mediaType` contradicts the Content-Type,
is refused), and the config must list one diff_id per layer.  Errors are
raised as the caller's error class so the message reads right in context
(RegistryError for pulls, InvalidArchive for loads).
"""

from __future__ import annotations

from lamina import oci
from lamina.digest import Digest
from lamina.errors import InvalidDigest, LaminaError
from lamina.record import record
from lamina.transfer.platforms import Platform

LAYER_TYPES = {
    oci.OCI_LAYER: "", oci.DOCKER_LAYER: "",
    oci.OCI_LAYER_GZIP: "gzip", oci.DOCKER_LAYER_GZIP: "gzip",
    oci.OCI_LAYER_ZSTD: "zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
}
CONFIG_TYPES = (oci.OCI_CONFIG, oci.DOCKER_CONFIG)
SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
GENERIC_TYPES = ("", "application/json", "text/plain", "application/octet-stream")
MAX_LAYERS = 1000
MAX_INDEX_ENTRIES = 10000


@record
class ImageManifest:
    raw: bytes
    media_type: str
    digest: Digest
    config: oci.Descriptor
    layers: tuple[oci.Descriptor, ...]


@record
class IndexEntry:
    descriptor: oci.Descriptor
    platform: Platform
    annotations: dict


def descriptor(d: object, what: str, error: type[LaminaError]) -> oci.Descriptor:
    if not isinstance(d, dict):
        raise error(f"{what}: descriptor is not an object")
    media_type, digest, size = d.get("mediaType"), d.get("digest"), d.get("size")
    if not isinstance(media_type, str):
        raise error(f"{what}: descriptor has no mediaType")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise error(f"{what}: descriptor has an invalid size {size!r}")
    try:
        return oci.Descriptor(media_type, Digest(digest), size)
    except InvalidDigest:
        raise error(f"{what}: invalid digest {str(digest)[:100]!r} (want sha256:<64 lowercase hex>)") from None


def classify(raw: bytes, content_type: str, what: str, error: type[LaminaError]) -> tuple[str, dict]:
    """-> (media type, document) for a manifest or an index, refusing ambiguity."""
    doc = oci.loads_document(raw, what, error)
    content_type = (content_type or "").split(";")[0].strip()
    if content_type in SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise error(f"{what} uses Docker schema 1, which is not supported")
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise error(f"{what} has an invalid mediaType")
    has_index = "manifests" in doc
    has_image = "layers" in doc or "config" in doc
    if has_index and has_image:
        raise error(f"{what} is ambiguous: it has both manifests and layers/config")
    if content_type not in GENERIC_TYPES and body_type and body_type != content_type:
        raise error(f"{what}: media type {content_type} does not match its content ({body_type})")
    media_type = content_type if content_type not in GENERIC_TYPES else (body_type or "")
    if not media_type:
        media_type = oci.OCI_INDEX if has_index else oci.OCI_MANIFEST
    if media_type in oci.INDEX_TYPES and not has_index or media_type in oci.MANIFEST_TYPES and not has_image:
        raise error(f"{what}: media type {media_type} does not match its content")
    if media_type not in oci.INDEX_TYPES + oci.MANIFEST_TYPES:
        raise error(f"{what} has unsupported media type {media_type}")
    if doc.get("schemaVersion") != 2:
        raise error(f"{what}: unsupported schemaVersion {doc.get('schemaVersion')!r}")
    return media_type, doc


def image_manifest(raw: bytes, media_type: str, doc: dict, what: str,
                   error: type[LaminaError]) -> ImageManifest:
    config = descriptor(doc.get("config"), f"{what} config", error)
    if config.media_type not in CONFIG_TYPES:
        raise error(f"{what}: not an image (config media type {config.media_type})")
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise error(f"{what}: layers must be a list of at most {MAX_LAYERS}")
    descs = tuple(descriptor(l, f"{what} layer {i}", error) for i, l in enumerate(layers))
    for d in descs:
        if d.media_type not in LAYER_TYPES:
            raise error(f"{what}: unsupported layer media type {d.media_type}")
    return ImageManifest(raw, media_type, Digest.of_bytes(raw), config, descs)


def index_entries(doc: dict, what: str, error: type[LaminaError]) -> list[IndexEntry]:
    entries = doc.get("manifests")
    if not isinstance(entries, list) or len(entries) > MAX_INDEX_ENTRIES:
        raise error(f"{what}: manifests must be a list of at most {MAX_INDEX_ENTRIES}")
    out = []
    for i, e in enumerate(entries):
        desc = descriptor(e, f"{what} entry {i}", error)
        ann = e.get("annotations") if isinstance(e.get("annotations"), dict) else {}
        out.append(IndexEntry(desc, Platform.from_json(e.get("platform")), ann))
    return out


def image_config(raw: bytes, manifest: ImageManifest, what: str, error: type[LaminaError]) -> dict:
    """Parse a config and check it against its manifest (one diff_id per layer)."""
    try:
        config = oci.loads_document(raw, what)
    except LaminaError as e:
        raise error(str(e)) from None
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise error(f"{what} has no rootfs.diff_ids")
    try:
        [Digest(d) for d in ids]
    except InvalidDigest:
        raise error(f"{what}: invalid diff_id in rootfs") from None
    if len(ids) != len(manifest.layers):
        raise error(f"{what} lists {len(ids)} diff_ids but the manifest has {len(manifest.layers)} layers")
    if not isinstance(config.get("os", ""), str) or not isinstance(config.get("architecture", ""), str):
        raise error(f"{what} has an invalid os/architecture")
    return config
