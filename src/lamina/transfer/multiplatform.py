"""Multi-platform images in the local store: the OCI index of a `build --platform a,b`
and choosing the image for a platform (`run --platform`, a build's FROM).

The index is BuildKit's: an OCI image index whose manifests carry `platform`
(architecture, os, variant); the tag names the member for the host (else the first),
store/indexes.py keeps which tags stand for an index.
"""

from __future__ import annotations

from lamina import oci
from lamina.digest import Digest
from lamina.errors import NotFound
from lamina.transfer.platforms import Platform, host_platform, parse_platform


def indexes(system):
    from lamina.store.indexes import IndexStore

    return IndexStore(system.db, system.content)


def platform_of(config: dict) -> Platform:
    return Platform(str(config.get("os") or "linux"), str(config.get("architecture") or ""),
                    str(config.get("variant") or "")).normalized()


def make_index(system, image_ids: list[Digest]) -> bytes:
    """The OCI index of the member images, in the order given (as BuildKit lists them)."""
    manifests = []
    for image_id in image_ids:
        rec = system.images.get(image_id)
        plat = platform_of(system.images.config(image_id))
        entry = {"architecture": plat.architecture, "os": plat.os}
        if plat.variant:
            entry["variant"] = plat.variant
        raw = system.images.raw_manifest(rec)  # a FROM-only stage's is the pulled one: its own type
        media_type = oci.loads_document(raw, f"manifest of image {image_id.short}").get("mediaType") or oci.OCI_MANIFEST
        manifests.append({"mediaType": media_type, "digest": str(rec.manifest), "size": len(raw),
                          "platform": entry})
    return oci.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": manifests})


def default_member(system, image_ids: list[Digest]) -> Digest:
    """What the tag names: the host's platform when built, else the first."""
    host = host_platform()
    for image_id in image_ids:
        if platform_of(system.images.config(image_id)) == host:
            return image_id
    return image_ids[0]


def tag_index(system, ref, raw_index: bytes | None) -> None:
    """The tag `ref` stands for the index `raw_index`; None: for its one image only."""
    store = indexes(system)
    if raw_index is not None:
        store.put(ref.name, raw_index)
    elif store.get(ref.name) is not None:
        store.drop(ref.name)


def retag(system, source: str, ref) -> None:
    """`tag SOURCE TARGET`: TARGET stands for SOURCE's index, or for one image only."""
    found = index_of(system, source)
    store = indexes(system)
    if found is not None:
        store.put(ref.name, store.raw(found[0]))
    elif store.get(ref.name) is not None:
        store.drop(ref.name)


def index_of(system, name: str) -> tuple[Digest, dict] | None:
    """(digest, document) of the index the tag `name` stands for, or None (a plain image,
    an ID, or a tag since moved to an image that is not a member)."""
    from lamina.reference import parse

    try:
        ref = parse(name)
    except Exception:  # noqa: BLE001 - an ID or a short ID: never an index
        return None
    store = indexes(system)
    digest = store.get(ref.name)
    if digest is None:
        return None
    try:
        doc = oci.loads_document(store.raw(digest), f"index of {ref.familiar}")
        tagged = system.images.resolve(name)
    except NotFound:  # the tag removed since (or the blob: a store swept by an older lamina)
        return None
    if not any(m.get("digest") == str(tagged.manifest) for m in doc.get("manifests") or []):
        store.drop(ref.name)  # re-tagged since: the tag names that one image now
        return None
    return digest, doc


def members(system, doc: dict) -> list[tuple[Platform, Digest]]:
    """(platform, image ID) of each member present in the store."""
    store = indexes(system)
    out = []
    for m in doc.get("manifests") or []:
        image_id = store.image_for_manifest(Digest(m["digest"]))
        if image_id is not None:
            out.append((Platform.from_json(m.get("platform")).normalized(), image_id))
    return out


def image_for_platform(system, name: str, platform: str | Platform):
    """The local image record `name` names for `platform`: the index member, or the
    image itself when its config says that platform; NoSuchImage when `name` is not
    here, docker's mismatch error when it is here for another platform."""
    want = parse_platform(platform) if isinstance(platform, str) else platform.normalized()
    rec = system.images.resolve(name)
    found = index_of(system, name)
    if found is not None:
        for plat, image_id in members(system, found[1]):
            if plat == want:
                return system.images.get(image_id)
    actual = platform_of(system.images.config(rec.id))
    if actual == want:
        return rec
    raise NotFound(f"image with reference {name} was found but does not match the specified "
                           f"platform: wanted {want}, actual: {actual}")



def members_for_save(system, images) -> tuple[dict, list]:
    """For `save`: {tag name: [(platform json, image ID)]} of the saved tags that stand for
    an index, and the member images not saved otherwise (transfer.save.SavedImage values)."""
    from lamina.transfer.save import SavedImage

    groups, extra, seen = {}, {}, {img.record.id for img in images}
    for img in images:
        for ref in img.refs:
            found = index_of(system, ref.name)
            if found is None:
                continue
            store = indexes(system)
            group = []
            for m in found[1].get("manifests") or []:
                image_id = store.image_for_manifest(Digest(m["digest"]))
                if image_id is None:
                    raise NotFound(f"{ref.familiar}: an image of its index ({m.get('digest')}) is not in the store")
                group.append((m.get("platform") or {}, image_id))
                if image_id not in seen:
                    seen.add(image_id)
                    extra[image_id] = SavedImage(system.images.get(image_id))
            groups[ref.name] = group
    return groups, list(extra.values())
