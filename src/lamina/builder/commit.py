"""Committing build steps as images (the classic model: one image per step).

A step's image is its parent's config with the stage's container config, one
more history entry and, when the step changed files, one more layer.  With the
overlay snapshotter the step container's upper dir *is* the new layer: after its
tar blob is written it is moved into the layer store instead of being unpacked
again from the blob (the next step mounts it at once, and a 280 MB COPY is not
written twice more).
"""

from __future__ import annotations

import os

from lamina import oci
from lamina.digest import EMPTY_LAYER_DIFF_ID, Digest, chain_ids
from lamina.image import Image, append, edit, publish
from lamina.store.images import LayerBlob


# Docker's limit (layer store maxLayerDepth); it also keeps overlay's lowerdir list
# within one page of mount data.
MAX_LAYERS = 125


# What mounts.py and runstep.py call the step's parent image (Image.load(system, None) is scratch).
Parent = Image.load


def commit(system, parent: Image, cfg: dict, created_by: str, *, layer: tuple | None = None,
           author: str | None = None, container_id: str = "", real_layer: bool = False,
           epoch: int | None = None) -> Image:
    """Publish the step image.  `layer` = (blob digest, blob size, diff_id, unpacked size).

    An empty `layer` is recorded as `empty_layer` history, unless `real_layer`: BuildKit's
    file steps (COPY, ADD, WORKDIR's mkdir) always add a layer, even one with no change.
    `epoch` (SOURCE_DATE_EPOCH) is the time recorded, and no step container is named."""
    if real_layer and (layer is None or layer[2] == EMPTY_LAYER_DIFF_ID):
        layer = _empty_tar(system)
    config = edit(parent)
    config["config"] = cfg
    # Like BuildKit, no step container's config is recorded (the classic builder's
    # `#(nop)` container_config would only repeat `created_by`).
    config["container_config"] = oci.empty_container_config()
    if container_id and epoch is None:
        config["container"] = container_id
    else:
        config.pop("container", None)
    if epoch is None:
        config["created"] = oci.now_rfc3339()
    else:
        from lamina.sourcedate import rfc3339

        config["created"] = rfc3339(epoch)
    config.pop("comment", None)
    if author is not None:
        config["author"] = author
    entry: dict = {"created": config["created"], "created_by": created_by}
    blob, unpacked = None, 0
    if layer is not None and (layer[2] != EMPTY_LAYER_DIFF_ID or real_layer):
        digest, blob_size, diff_id, unpacked = layer
        if len(parent.diff_ids) + 1 > MAX_LAYERS:
            from lamina.errors import BuildError

            raise BuildError(f"max depth exceeded: an image has at most {MAX_LAYERS} layers")
        blob = LayerBlob(oci.Descriptor(oci.OCI_LAYER, digest, blob_size), diff_id)
    return publish(system, append(parent, config, entry, blob, layer_size=unpacked))


def _empty_tar(system) -> tuple:
    """The empty layer (1024 zero bytes) as a stored blob, for a layer that changes nothing."""
    if not system.content.has(EMPTY_LAYER_DIFF_ID):
        system.content.put_bytes(bytes(1024), EMPTY_LAYER_DIFF_ID)
    return (EMPTY_LAYER_DIFF_ID, 1024, EMPTY_LAYER_DIFF_ID, 0)


def layer_from_container(system, snap, ctr_dir: str, parent: Image, *, epoch: int | None = None) -> tuple:
    """Write the container's changes as a layer blob and register the unpacked layer
    (`epoch`: SOURCE_DATE_EPOCH, mtimes clamped to it).

    Returns (blob digest, blob size, diff_id, unpacked size)."""
    upper = os.path.join(ctr_dir, "upper")
    if snap.name == "overlay" and os.path.isdir(upper) and not os.listdir(upper):
        # Nothing changed: an empty layer, recorded as empty_layer history, no blob kept.
        return (EMPTY_LAYER_DIFF_ID, 1024, EMPTY_LAYER_DIFF_ID, 0)
    if epoch is not None and snap.name == "overlay" and os.path.isdir(upper):
        from lamina.archive.layertar import clamp_times

        clamp_times(upper, epoch)  # the upper dir becomes the layer (register_layer): as its blob says
    layers = parent.layers()
    with system.content.writer() as blob:
        snap.write_layer(ctr_dir, layers, blob, clamp=epoch)
        diff_id = blob.commit()
    if diff_id == EMPTY_LAYER_DIFF_ID and not system.images.blob_for_diff_id(diff_id):
        system.content.delete(diff_id)  # unreferenced: `system check` would call it an orphan
    return register_layer(system, snap, ctr_dir, parent, diff_id, blob.size)


def register_layer(system, snap, ctr_dir: str, parent: Image, diff_id: Digest, blob_size: int, *,
                   written=None) -> tuple:
    """Commit the container's snapshot as the unpacked layer `diff_id` (its
    uncompressed blob is already stored); returns what layer_from_container does.
    `written`: see Snapshotter.commit."""
    if diff_id == EMPTY_LAYER_DIFF_ID:
        return (diff_id, blob_size, diff_id, 0)
    parent_chain = parent.chain_ids[-1] if parent.diff_ids else None
    chain = chain_ids([parent_chain, diff_id])[-1] if parent_chain else diff_id
    unpacked = snap.commit(ctr_dir, chain, diff_id, parent_chain, written=written)
    return (diff_id, blob_size, diff_id, blob_size if unpacked is None else unpacked)
