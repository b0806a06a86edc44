"""`save`: images as the tar `docker save` (moby ≥ 25) writes, which every `docker load` reads.

The archive is an OCI image layout plus docker's legacy index files:
`blobs/sha256/<hex>` for configs (exact bytes, so image IDs survive),
uncompressed layer tars (named by diff_id) and OCI manifests; `index.json`
with one descriptor per tag; `oci-layout`; `manifest.json` (Config/RepoTags/
Layers pointing into blobs/); `repositories`.  All mtimes are 0 and blobs are
written in name order, so saving the same images twice gives the same bytes.

Layers stored uncompressed are copied by the kernel; compressed ones (pulled)
are decompressed in parallel into temp files first, checking their diff_id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lamina import oci
from lamina.digest import CHUNK, Digest
from lamina.errors import DigestMismatch, InvalidReference, LaminaError, NotFound, StoreError
from lamina.store.content import corrupted
from lamina.reference import Reference, is_id_prefix, looks_like_id, parse
from lamina.store.images import ImageRecord
from lamina.transfer.streams import inflating
from lamina.transfer.tarwriter import TarWriter

OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'


@dataclass
class SavedImage:
    record: ImageRecord
    refs: list[Reference] = field(default_factory=list)


def select_images(system, names: list[str]) -> list[SavedImage]:
    """docker's rules: `name:tag` saves that tag, a bare repository name saves all of
    its tags, an ID (or digest reference) saves the image untagged."""
    chosen: dict[Digest, SavedImage] = {}

    def add(record: ImageRecord, ref: Reference | None) -> None:
        item = chosen.setdefault(record.id, SavedImage(record))
        if ref is not None and ref.tag and ref not in item.refs:
            item.refs.append(ref)

    all_tags = system.images.all_tags()
    for name in names:
        ref = None
        if not looks_like_id(name) and not name.startswith("sha256:"):
            try:
                ref = parse(name, default_tag=False)
            except InvalidReference:
                if not is_id_prefix(name):
                    raise
        if ref is not None and ref.tag is None and ref.digest is None:
            matches = [(image_id, parse(t)) for image_id, tags in all_tags.items() for t in tags
                       if parse(t).repository == ref.repository]
            for image_id, tagged in sorted(matches, key=lambda m: m[1].name):
                add(system.images.get(Digest(image_id)), tagged)
            if matches:
                continue
        record = system.images.resolve(name)
        add(record, ref if ref is not None and ref.tag else None)
    return list(chosen.values())


def save(system, names: list[str], fd: int, *, legacy: bool = True) -> None:
    """Write the archive of `names` to `fd` (a file or a pipe); without `legacy`, only
    the OCI image layout (no manifest.json, no repositories: BuildKit's oci exporter)."""
    images = select_images(system, names)
    from lamina.transfer.multiplatform import members_for_save

    # a multi-platform tag keeps its index: every member is saved, the tag names the index
    groups, members = members_for_save(system, images)
    configs: dict[Digest, bytes] = {}
    image_layers: dict[Digest, list[Digest]] = {}
    sources: dict[Digest, oci.Descriptor] = {}
    for img in images + members:
        configs[img.record.id] = system.images.raw_config(img.record.id)
        config = oci.loads_document(configs[img.record.id], f"config of image {img.record.id.short}")
        os_name = config.get("os", "linux")
        if os_name != "linux":
            raise StoreError(f"image {img.record.id.short}: os {os_name!r} is not supported")
        layers = system.images.layer_blobs(img.record)
        image_layers[img.record.id] = [l.diff_id for l in layers]
        for l in layers:
            sources.setdefault(l.diff_id, _stored_source(system, l))
    out = TarWriter(fd)
    out.directory("blobs")
    out.directory("blobs/sha256")
    sizes: dict[Digest, int] = {}
    with tempfile.TemporaryDirectory(dir=system.tmp_dir, prefix=f"save-{os.getpid()}-") as scratch:
        compressed = [(d, src) for d, src in sources.items() if src.digest != d]
        # a pipe cannot be patched afterwards: decompress to scratch files first (in parallel)
        spooled = {} if out.seekable else _decompress_all(system, compressed, scratch)
        for digest in sorted(list(configs) + list(sources)):
            name = f"blobs/sha256/{digest.hex}"
            if digest in configs:
                out.file_bytes(name, configs[digest])
            elif sources[digest].digest == digest:  # stored uncompressed: checked as it is copied
                with system.content.open_verified(digest) as blob:
                    sizes[digest] = out.file_reader(name, blob, system.content.size(digest))
            elif digest in spooled:
                sizes[digest] = out.file_copy(name, spooled[digest])
            else:
                sizes[digest] = _stream_layer(system, out, name, digest, sources[digest])
    # manifests come after the blobs they describe: their bytes depend on the layer sizes
    manifests, index, items, repositories = {}, [], [], {}
    descs = {}
    for img in images + members:
        raw = oci.dumps(oci.make_manifest(
            oci.Descriptor(oci.OCI_CONFIG, img.record.id, len(configs[img.record.id])),
            [oci.Descriptor(oci.OCI_LAYER, d, sizes[d]) for d in image_layers[img.record.id]]))
        digest = Digest.of_bytes(raw)
        manifests[digest] = raw
        descs[img.record.id] = oci.Descriptor(oci.OCI_MANIFEST, digest, len(raw)).to_json()
    for img in images:
        desc = descs[img.record.id]
        diff_ids = image_layers[img.record.id]
        for ref in img.refs:
            named = desc
            if ref.name in groups:  # the nested index of the platforms' manifests, as written here
                raw = oci.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
                    {**descs[image_id], "platform": platform} for platform, image_id in groups[ref.name]]})
                manifests[Digest.of_bytes(raw)] = raw
                named = oci.Descriptor(oci.OCI_INDEX, Digest.of_bytes(raw), len(raw)).to_json()
            index.append({**named, "annotations": {"io.containerd.image.name": ref.name,
                                                   "org.opencontainers.image.ref.name": ref.tag}})
            if diff_ids:
                repositories.setdefault(ref.familiar_repository, {})[ref.tag] = diff_ids[-1].hex
        if not img.refs:
            index.append(desc)
        items.append({"Config": f"blobs/sha256/{img.record.id.hex}",
                      "RepoTags": [r.familiar for r in img.refs] or None,
                      "Layers": [f"blobs/sha256/{d.hex}" for d in diff_ids]})
    for digest in sorted(manifests):
        out.file_bytes(f"blobs/sha256/{digest.hex}", manifests[digest])
    out.file_bytes("index.json", oci.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": index}))
    if legacy:
        out.file_bytes("manifest.json", json.dumps(items, separators=(",", ":")).encode() + b"\n")
    out.file_bytes("oci-layout", OCI_LAYOUT)
    if repositories and legacy:
        out.file_bytes("repositories",
                       json.dumps(repositories, separators=(",", ":"), sort_keys=True).encode() + b"\n")
    out.close()


def _stored_source(system, layer) -> oci.Descriptor:
    """The stored blob to write a layer from: the uncompressed one when there is one."""
    candidates = [layer.descriptor] + system.images.blob_for_diff_id(layer.diff_id)
    present = [d for d in candidates if system.content.has(d.digest)]
    if not present:
        raise StoreError(f"layer {layer.diff_id}: its blob is missing from the store")
    return next((d for d in present if d.digest == layer.diff_id), present[0])


def _stream_layer(system, out: TarWriter, name: str, diff_id: Digest, src: oci.Descriptor) -> int:
    """Decompress a stored layer straight into the archive."""
    return out.file_stream(name, _verified_chunks(system, diff_id, src))


def _decompress_all(system, todo: list, scratch: str) -> dict[Digest, str]:
    if not todo:
        return {}
    with ThreadPoolExecutor(min(len(todo), os.cpu_count() or 2)) as pool:
        paths = pool.map(lambda t: _decompress(system, t[0], t[1], scratch), todo)
        return {diff_id: path for (diff_id, _), path in zip(todo, paths)}


def _decompress(system, diff_id: Digest, src: oci.Descriptor, scratch: str) -> str:
    path = os.path.join(scratch, diff_id.hex)
    with open(path, "wb") as f:
        for chunk in _verified_chunks(system, diff_id, src):
            f.write(chunk)
    return path


def _verified_chunks(system, diff_id: Digest, src: oci.Descriptor):
    """The uncompressed tar of a stored compressed layer; raises at the end if it
    does not hash to its diff_id (the archive being written is then discarded)."""
    h = hashlib.sha256()
    try:
        with inflating(system.content.open_verified(src.digest)) as plain:
            while chunk := plain.read(CHUNK):
                h.update(chunk)
                yield chunk
    except (DigestMismatch, NotFound):
        raise
    except (LaminaError, OSError) as e:  # decoder errors arrive as InvalidArchive
        raise corrupted(src.digest, f"it cannot be decompressed: {e}") from None
    if h.hexdigest() != diff_id.hex:
        raise corrupted(src.digest, f"it decompresses to sha256:{h.hexdigest()}, not to layer {diff_id}")

