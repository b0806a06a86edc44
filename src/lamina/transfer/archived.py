"""What an image archive says it holds: the images of a `docker save` archive
(manifest.json) or of an OCI image layout (index.json, indexes nested at most
MAX_INDEX_DEPTH deep), as archive paths of their configs and layers and their
tags.  `archive` is load.Archive: the documents are read from its members."""

from __future__ import annotations

from dataclasses import dataclass

from lamina import oci
from lamina.digest import Digest
from lamina.errors import InvalidArchive, InvalidReference
from lamina.reference import Reference, parse
from lamina.transfer import manifests
from lamina.transfer.platforms import host_platform, is_attestation

MAX_INDEX_DEPTH = 4


@dataclass(frozen=True)
class ArchivedImage:
    """One image of the archive: where its parts are, what it is called."""

    config: str                     # archive path of the config
    layers: tuple[str, ...]         # archive paths of the layer blobs, bottom first
    tags: tuple[Reference, ...]
    manifest: bytes | None = None   # the OCI manifest to keep, when the archive has one that fits
    layer_types: tuple[str, ...] = ()
    index_tags: tuple[Reference, ...] = ()  # a member of a multi-platform index these tags stand for


def docker_images(archive) -> list[ArchivedImage]:
    items = oci.parse_json(archive.document("manifest.json", "manifest"), "manifest.json", InvalidArchive)
    if not isinstance(items, list):
        raise InvalidArchive("manifest.json is not a list of images")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                or not isinstance(item.get("Layers"), list) or not all(isinstance(l, str) for l in item["Layers"]):
            raise InvalidArchive(f"manifest.json entry {i} is malformed")
        tags = []
        for t in item.get("RepoTags") or []:
            try:
                ref = parse(str(t), default_tag=False)
            except InvalidReference:
                raise InvalidArchive(f"invalid tag {str(t)[:200]!r} in manifest.json") from None
            if ref.tag is None:
                raise InvalidArchive(f"invalid tag {t!r} in manifest.json: want name:tag")
            tags.append(ref)
        out.append(ArchivedImage(item["Config"], tuple(item["Layers"]), tuple(tags)))
    return out


def oci_images(archive) -> list[ArchivedImage]:
    def blob(desc: oci.Descriptor, what: str) -> bytes:
        data = archive.document(f"blobs/sha256/{desc.digest.hex}", what)
        if Digest.of_bytes(data) != desc.digest or len(data) != desc.size:
            raise InvalidArchive(f"{what} {desc.digest} in the archive does not match its descriptor")
        return data

    raw = archive.document("index.json", "index")
    _, index = manifests.classify(raw, oci.OCI_INDEX, "index.json", InvalidArchive)
    out = []
    # (entry, depth, the tags of the index it is a member of, whether it takes them itself)
    todo = [(e, 0, (), False) for e in manifests.index_entries(index, "index.json", InvalidArchive)]
    while todo:
        entry, depth, index_tags, tagged = todo.pop(0)
        what = f"manifest {entry.descriptor.digest}"
        data = blob(entry.descriptor, "manifest")
        media_type, doc = manifests.classify(data, entry.descriptor.media_type, what, InvalidArchive)
        if media_type in oci.INDEX_TYPES:  # every platform's image: the tag names the host's (else the first)
            if depth >= MAX_INDEX_DEPTH:
                raise InvalidArchive(f"{what}: indexes nested too deep")
            entries = [e for e in manifests.index_entries(doc, what, InvalidArchive)
                       if not is_attestation(e.platform) and _present(archive, e)]  # a save may hold some only
            tags = _named(entry) or index_tags
            host = next((e for e in entries if host_platform().matches(e.platform)), entries[0] if entries else None)
            todo += [(e, depth + 1, tags, e is host and (tagged or not index_tags)) for e in entries]
            continue
        m = manifests.image_manifest(data, media_type, doc, what, InvalidArchive)
        tags = _named(entry) if not index_tags else (index_tags if tagged else ())
        blob(m.config, "config")
        out.append(ArchivedImage(f"blobs/sha256/{m.config.digest.hex}",
                                 tuple(f"blobs/sha256/{l.digest.hex}" for l in m.layers), tags,
                                 manifest=data, layer_types=tuple(l.media_type for l in m.layers),
                                 index_tags=index_tags))
    return out


def _present(archive, entry) -> bool:
    try:
        archive.resolve(f"blobs/sha256/{entry.descriptor.digest.hex}")
        return True
    except InvalidArchive:
        return False


def _named(entry) -> tuple[Reference, ...]:
    """The tag an index entry's annotations give (containerd's name, else the OCI ref name
    when it is a whole reference)."""
    name = entry.annotations.get("io.containerd.image.name") or entry.annotations.get(
        "org.opencontainers.image.ref.name", "")
    if "/" in name or ":" in name:
        try:
            ref = parse(name)
            return (ref,) if ref.tag else ()
        except InvalidReference:
            return ()
    return ()


def multi_platform(archive) -> bool:
    """Whether index.json names an index (a multi-platform image): then it is read rather
    than manifest.json, which lists one platform's image only."""
    if "index.json" not in archive.small:
        return False
    try:
        _, index = manifests.classify(archive.document("index.json", "index"), oci.OCI_INDEX, "index.json",
                                      InvalidArchive)
        return any(e.descriptor.media_type in oci.INDEX_TYPES
                   for e in manifests.index_entries(index, "index.json", InvalidArchive))
    except InvalidArchive:
        return False
