"""The local end of pull and load: layers checked and unpacked, then the image record.

By the time an image is published every layer is either unpacked here (and
LayerStore.ensure verified its diff_id while unpacking) or its blob was
checked to decompress to the diff_id the config claims.  Layers are reused
only by chain IDs and (diff_id, blob) pairs we verified ourselves, never on
an image's word.  The image record is written last, in one transaction.
"""

from __future__ import annotations

import os

from lamina import oci
from lamina.digest import Digest, chain_ids
from lamina.errors import DigestMismatch, NoSuchImage
from lamina.record import record
from lamina.reference import Reference
from lamina.store.images import LayerBlob
from lamina.transfer.blobs import verify_stored_layer
from lamina.transfer.progress import CountingReader

TYPE_CHECKING = False  # typing only for annotations: push and pull start without it
if TYPE_CHECKING:
    from typing import BinaryIO

    from lamina.transfer.progress import Progress


@record
class LayerPlan:
    desc: oci.Descriptor
    diff_id: Digest
    chain_id: Digest
    download: bool      # the blob is not in the store yet
    unpack: bool        # the layer is not unpacked yet
    verify: bool        # the (diff_id, blob) pair must be checked (it will not be unpacked)

    @property
    def item(self) -> str:
        return self.desc.digest.short


def plan_layers(system, descs: list[oci.Descriptor] | tuple, diff_ids: list[Digest]) -> list[LayerPlan]:
    plans = []
    for desc, diff_id, chain in zip(descs, diff_ids, chain_ids(diff_ids)):
        known = desc.digest == diff_id or any(
            d.digest == desc.digest for d in system.images.blob_for_diff_id(diff_id))
        download = not system.content.has(desc.digest)
        unpack = system.layers.get(chain) is None
        plans.append(LayerPlan(desc, diff_id, chain, download, unpack, verify=not known and not unpack))
    return plans


@record
class Published:
    image_id: Digest
    replaced: dict          # Reference -> the other image ID the tag pointed at before
    retagged: tuple         # the tags that did not point at this image before (new or moved)
    existed: bool           # the image was already in the store


class Installer:
    def __init__(self, system, progress: Progress, *, unpacking: str = "Extracting",
                 done: str | None = "Pull complete") -> None:
        self.system = system
        self.progress = progress
        self.unpacking = unpacking
        self.done = done

    def verify(self, p: LayerPlan) -> int:
        """Check a stored blob against its diff_id; returns the uncompressed size."""
        return verify_stored_layer(self.system.content, p.desc.digest, p.diff_id)

    def unpack(self, plans: list[LayerPlan], i: int, *, drop_on_mismatch: bool = False,
               live: BinaryIO | None = None) -> int:
        """Unpack layer i (the ones below are unpacked already); returns its size.
        `live` is the blob still downloading (a Pipe): it is unpacked as it comes.
        A blob that does not hold the layer its config names is deleted when asked
        (one we just fetched): nothing unverified stays behind."""
        p = plans[i]
        content = self.system.content

        def open_blob(j: int):
            # a stored blob is inflated in this thread (LayerStore.ensure opens the layer
            # stream): a thread of its own added a hand-over per chunk, which costs more
            # than it overlaps on a busy 2-core machine; a `live` one comes inflated by the
            # thread that downloads it (streams.InflatingPipe), which counts the blob's bytes
            d = plans[j].desc
            source = live if live is not None and j == i else content.open(d.digest)
            fed = getattr(source, "fed", None)
            return CountingReader(source, lambda n: self.progress.progress(
                d.digest.short, self.unpacking, n if fed is None else source.fed, d.size))

        try:
            records = self.system.layers.ensure([q.diff_id for q in plans[:i + 1]], open_blob)
        except DigestMismatch:
            if drop_on_mismatch:
                content.delete(p.desc.digest)
            raise
        if self.done:
            self.progress.status(p.item, self.done)
        return records[-1].size

    def adopt(self, plans: list[LayerPlan], i: int, tree: str, size: int) -> int:
        """Make layer i (the ones below exist) from `tree`: a staging dir already
        unpacked and verified against its diff_id (early.py); returns its size."""
        p = plans[i]
        rec = self.system.layers.adopt(p.chain_id, p.diff_id, plans[i - 1].chain_id if i else None, tree, size)
        if os.path.isdir(tree):  # another process made the layer meanwhile: this copy is not needed
            import shutil

            shutil.rmtree(tree, ignore_errors=True)
        if self.done:
            self.progress.status(p.item, self.done)
        return rec.size

    def size(self, p: LayerPlan, uncompressed: int | None) -> int:
        """A layer's size as `images` counts it (unpacked bytes when it is unpacked)."""
        rec = self.system.layers.get(p.chain_id)
        if rec is not None:
            return rec.size
        return uncompressed if uncompressed is not None else p.desc.size

    def publish(self, raw_config: bytes, plans: list[LayerPlan], sizes: list[int], *,
                tags: tuple[Reference, ...], raw_manifest: bytes | None) -> Published:
        images = self.system.images
        image_id = Digest.of_bytes(raw_config)
        existed = images.exists(image_id)
        replaced, retagged = {}, []
        for ref in tags:
            try:
                before = images.resolve(ref.name).id
            except NoSuchImage:
                retagged.append(ref)
                continue
            if before != image_id:
                replaced[ref] = before
                retagged.append(ref)
        layers = [LayerBlob(p.desc, p.diff_id) for p in plans]
        images.create(raw_config, layers, size=sum(sizes), tags=tags, raw_manifest=raw_manifest)
        return Published(image_id, replaced, tuple(retagged), existed)
