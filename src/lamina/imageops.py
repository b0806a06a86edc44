"""Making images locally: `import` of a rootfs tarball and `commit` of a container.

Both end the same way: a layer tar in the content store (uncompressed, so its
digest is its diff_id), a config derived from the parent, and one
`ImageStore.create` transaction that makes the image visible.  A failure (bad
tar, kill -9) before that transaction leaves no image; at worst an orphan blob
that `system check` reports and `system prune` removes.

`-c/--change` lines are Dockerfile instructions, the builder's language, and the
builder sits on this module: the caller (the engine) passes them in already made
into `edit_config(config)` (builder/configchanges.py `change_editor`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import BinaryIO, Callable

from lamina import oci
from lamina.digest import EMPTY_LAYER_DIFF_ID, Digest, TeeReader
from lamina.image import Image, append, edit, publish
from lamina.reference import Reference
from lamina.store.images import LayerBlob
from lamina.store.leases import leased

EditConfig = Callable[[dict], None]  # changes an image config in place (`--change` lines)


@leased("import")
def import_tarball(system, stream: BinaryIO, *, source: str = "-", message: str = "",
                   edit_config: EditConfig | None = None, tags: tuple[Reference, ...] = ()) -> Digest:
    """`docker import`: one layer from a (possibly compressed) rootfs tarball."""
    from lamina.archive.extract import apply_layer, open_layer_stream
    from lamina.sourcedate import from_environment, rfc3339

    epoch = from_environment()  # SOURCE_DATE_EPOCH: the time recorded (the layer is the tar as given)
    staging = tempfile.mkdtemp(dir=system.tmp_dir, prefix=f"import-{os.getpid()}-")
    try:
        with system.content.writer() as blob:
            tee = TeeReader(open_layer_stream(stream), blob)
            size = apply_layer(tee, staging, overlay_whiteouts=True)
            tee.drain()
            diff_id = blob.commit()
        blob_size = blob.size
        if system.layers.get(diff_id) is None:
            system.layers.adopt(diff_id, diff_id, None, staging, size)
        config = oci.new_config()
        if epoch is not None:
            config["created"] = rfc3339(epoch)
        comment = message or f"Imported from {source}"
        config["comment"] = comment
        if edit_config:
            edit_config(config)
        layer = LayerBlob(oci.Descriptor(oci.OCI_LAYER, diff_id, blob_size), diff_id)
        image = append(Image.scratch(), config, {"created": config["created"], "comment": comment}, layer,
                       layer_size=size)
        return publish(system, image, tags).id
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@leased("commit")
def commit_container(system, container, *, author: str = "", message: str = "",
                     edit_config: EditConfig | None = None, tags: tuple[Reference, ...] = ()) -> Digest:
    """`docker commit`: the container's writable layer as a new image on its image."""
    parent = Image.load(system, Digest(container.image_id))
    snap = system.snapshotter_for(container)
    ctr_dir = system.containers.path(container.id)

    from lamina.sourcedate import from_environment, rfc3339

    epoch = from_environment()  # SOURCE_DATE_EPOCH: the time recorded, file times clamped in the layer
    with system.content.writer() as blob:
        snap.write_layer(ctr_dir, parent.layers(), blob, clamp=epoch)
        diff_id = blob.commit()
    empty = diff_id == EMPTY_LAYER_DIFF_ID

    config = edit(parent)
    config["config"] = merge_container_config(parent.container_config, container.config)
    if edit_config:
        edit_config(config)
    config["container"] = container.id
    config["container_config"] = container.config
    config["created"] = oci.now_rfc3339() if epoch is None else rfc3339(epoch)
    config.pop("comment", None)
    if author:
        config["author"] = author
    else:
        config.pop("author", None)
    entry = {"created": config["created"], "created_by": " ".join(container.config.get("Cmd") or [])}
    if author:
        entry["author"] = author
    if message:
        entry["comment"] = message
    layer = None if empty else LayerBlob(oci.Descriptor(oci.OCI_LAYER, diff_id, blob.size), diff_id)
    return publish(system, append(parent, config, entry, layer, layer_size=blob.size), tags).id


def merge_container_config(image_config: dict, container_config: dict) -> dict:
    """moby's merge for commit: the container's config, filled from the image
    where the container left a field empty; Env/Labels/ExposedPorts unioned."""
    merged = oci.empty_container_config()
    merged.update(container_config)
    for key in ("User", "WorkingDir"):
        if not merged.get(key) and image_config.get(key):
            merged[key] = image_config[key]
    if not merged.get("Cmd") and not merged.get("Entrypoint"):
        merged["Cmd"] = image_config.get("Cmd")
        merged["Entrypoint"] = image_config.get("Entrypoint")
    merged["Env"] = oci.merge_env(image_config.get("Env"), merged.get("Env")) or None
    for key in ("Labels", "ExposedPorts", "Volumes"):
        union = dict(image_config.get(key) or {})
        union.update(merged.get(key) or {})
        if union:  # else the container's own empty value stays (`Labels: {}`, as docker's)
            merged[key] = union
    for key in ("Healthcheck", "StopSignal", "OnBuild", "Shell"):
        if not merged.get(key) and image_config.get(key):
            merged[key] = image_config[key]
    return merged

