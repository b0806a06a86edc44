"""Committing build steps as images (the classic model: one image per step).

A step's image is its parent's config with the stage's container config, one
more history entry and, when the step changed files, one more layer.  With the
overlay snapshotter the step container's upper dir *is* the new layer: after its
tar blob is written it is moved into the layer store instead of being unpacked
again from the blob (the next step mounts it at once, and a 280 MB COPY is not
written twice more).
"""

from __future__ import annotations

import copy
import json
import os

from lamina import oci
from lamina.digest import EMPTY_LAYER_DIFF_ID, Digest, chain_ids
from lamina.store.images import LayerBlob


# Docker's limit (layer store maxLayerDepth); it also keeps overlay's lowerdir list
# within one page of mount data.
MAX_LAYERS = 125


class Parent:
    """The image a step builds on (None id = scratch)."""

    def __init__(self, system, image_id: Digest | None) -> None:
        self.system = system
        self.id = image_id
        if image_id is None:
            self.config = oci.new_config()
            self.config["config"] = oci.empty_container_config()
            self.blobs: list[LayerBlob] = []
            self.size = 0
        else:
            self.config = json.loads(system.images.raw_config(image_id))
            rec = system.images.get(image_id)
            self.size = rec.size
            self._record = rec
            self.blobs = None  # type: ignore[assignment]  # loaded on demand (commit only)

    def layer_blobs(self) -> list[LayerBlob]:
        if self.blobs is None:
            self.blobs = self.system.images.layer_blobs(self._record)
        return self.blobs

    def layers(self) -> list:
        return self.system.unpack(self.id) if self.id is not None else []


def commit(system, parent: Parent, cfg: dict, created_by: str, *, layer: tuple | None = None,
           author: str | None = None, container_id: str = "") -> Digest:
    """Publish the step image.  `layer` = (blob digest, blob size, diff_id, unpacked size)."""
    config = copy.deepcopy(parent.config)
    config["config"] = cfg
    # Like BuildKit, no step container's config is recorded (the classic builder's
    # `#(nop)` container_config would only repeat `created_by`).
    config["container_config"] = oci.empty_container_config()
    if container_id:
        config["container"] = container_id
    else:
        config.pop("container", None)
    config["created"] = oci.now_rfc3339()
    config.pop("comment", None)
    if author is not None:
        config["author"] = author
    entry: dict = {"created": config["created"], "created_by": created_by}
    blobs = list(parent.layer_blobs()) if (layer is not None or parent.id is not None) else []
    size = parent.size
    if layer is None or layer[2] == EMPTY_LAYER_DIFF_ID:
        entry["empty_layer"] = True
    else:
        digest, blob_size, diff_id, unpacked = layer
        ids = [str(d) for d in oci.diff_ids(parent.config)] + [str(diff_id)]
        if len(ids) > MAX_LAYERS:
            from lamina.errors import BuildError

            raise BuildError(f"max depth exceeded: an image has at most {MAX_LAYERS} layers")
        config["rootfs"] = {"type": "layers", "diff_ids": ids}
        blobs.append(LayerBlob(oci.Descriptor(oci.OCI_LAYER, digest, blob_size), diff_id))
        size += unpacked
    config["history"] = list(parent.config.get("history") or []) + [entry]
    if parent.id is None and "rootfs" not in config:
        config["rootfs"] = {"type": "layers", "diff_ids": []}
    return system.images.create(oci.dumps(config), blobs, size=size,
                                parent=str(parent.id) if parent.id else None)


def layer_from_container(system, snap, ctr_dir: str, parent: Parent) -> tuple:
    """Write the container's changes as a layer blob and register the unpacked layer.

    Returns (blob digest, blob size, diff_id, unpacked size)."""
    upper = os.path.join(ctr_dir, "upper")
    if snap.name == "overlay" and os.path.isdir(upper) and not os.listdir(upper):
        # Nothing changed: an empty layer, recorded as empty_layer history, no blob kept.
        return (EMPTY_LAYER_DIFF_ID, 1024, EMPTY_LAYER_DIFF_ID, 0)
    layers = parent.layers()
    with system.content.writer() as blob:
        snap.write_layer(ctr_dir, layers, blob)
        diff_id = blob.commit()
    if diff_id == EMPTY_LAYER_DIFF_ID and not system.images.blob_for_diff_id(diff_id):
        system.content.delete(diff_id)  # unreferenced: `system check` would call it an orphan
    return register_layer(system, snap, ctr_dir, parent, diff_id, blob.size)


def register_layer(system, snap, ctr_dir: str, parent: Parent, diff_id: Digest, blob_size: int) -> tuple:
    """Make the container's upper dir the unpacked layer `diff_id` (its uncompressed
    blob is already stored); returns what layer_from_container does."""
    if diff_id == EMPTY_LAYER_DIFF_ID:
        return (diff_id, blob_size, diff_id, 0)
    ids = oci.diff_ids(parent.config) + [diff_id]
    chain = chain_ids(ids)[-1]
    parent_chain = chain_ids(ids[:-1])[-1] if len(ids) > 1 else None
    upper = os.path.join(ctr_dir, "upper")
    unpacked = _tree_size(upper) if os.path.isdir(upper) else blob_size
    if system.layers.get(chain) is None and snap.name == "overlay" and os.path.isdir(upper):
        system.layers.create(chain, diff_id, parent_chain, lambda target: _adopt(upper, target, unpacked))
    return (diff_id, blob_size, diff_id, unpacked)


def _adopt(upper: str, target: str, size: int) -> int:
    """Move a container's upper dir in as a layer's diff dir, minus overlay bookkeeping."""
    from lamina.archive import whiteout as wh

    _strip_overlay_xattrs(upper, wh)
    os.rmdir(target)
    os.rename(upper, target)
    return size


def _strip_overlay_xattrs(root: str, wh) -> None:
    keep = wh.OPAQUE_XATTR
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            try:
                names = os.listxattr(name, follow_symlinks=False)
            except OSError:
                continue
            for x in names:
                if x.startswith(wh.OVERLAY_XATTR_PREFIXES) and x != keep:
                    try:
                        os.removexattr(name, x, follow_symlinks=False)
                    except OSError:
                        pass


def _tree_size(root: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not (st.st_mode & 0o170000 == 0o020000 and st.st_rdev == 0):
                total += st.st_size
    return total
