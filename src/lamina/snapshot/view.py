"""A read-only view of an image's own layers: no container, no init layer.

`COPY --from` and `RUN --mount=type=bind,from=` read a stage or an image as its
layers have it.  A container's rootfs would show what lamina's init layer adds
(/.dockerenv, /etc/mtab, empty /etc/hosts, /etc/hostname, /etc/resolv.conf, a
/dev/console file over the image's device node), and `COPY --from=x / /` would copy
that into the new image.  With overlayfs the view is a mount of the layer dirs
alone, read-only (an empty dir at the bottom: overlay wants two lower dirs without
an upper); elsewhere the layers are applied from their blobs into a scratch dir.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Sequence

from lamina.snapshot.mount import is_mounted, mount, unmount

MS_RDONLY = 1


def open_view(system, layers: Sequence) -> str:
    """The root of a new read-only view of `layers` (bottom first); close_view() it."""
    # named like every temp entry (`<what>-<pid>-`): recovery leaves a live build's alone
    where = tempfile.mkdtemp(dir=system.tmp_dir, prefix=f"view-{os.getpid()}-")
    root = os.path.join(where, "root")
    try:
        os.mkdir(root, 0o755)
        if not layers:
            return root
        if system.snapshotter.name == "overlay":
            from lamina.snapshot.overlay import FAITHFUL

            empty = os.path.join(where, "empty")
            os.mkdir(empty)
            # relative to the store root, as the snapshotter's own chains (one page of mount data)
            lowers = [f"l/{layer.link}" for layer in reversed(layers)] + [os.path.relpath(empty, system.root)]
            mount("overlay", root, "overlay", f"lowerdir={':'.join(lowers)},{FAITHFUL}", cwd=system.root,
                  flags=MS_RDONLY)
        else:
            from lamina.archive.extract import apply_layer, open_layer_stream
            from lamina.errors import StoreError

            for layer in layers:
                blobs = system.images.blob_for_diff_id(layer.diff_id)
                if not blobs:
                    raise StoreError(f"layer {layer.diff_id}: no blob in the store to read from")
                with system.content.open(blobs[0].digest) as f:
                    apply_layer(open_layer_stream(f), root, overlay_whiteouts=False)
    except BaseException:
        close_view(root)
        raise
    return root


def close_view(root: str) -> None:
    if is_mounted(root):
        unmount(root)
        if is_mounted(root):
            return  # never remove through a mount: that would delete layer content
    shutil.rmtree(os.path.dirname(root), ignore_errors=True)
