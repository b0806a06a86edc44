"""Copy fallback for hosts without overlayfs: each container gets a full copy
of the flattened image, and changes come from a two-tree comparison against
the flattened image (kept once per top layer under flat/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import BinaryIO, Sequence

from lamina.errors import StoreError
from lamina.snapshot import Mount, initlayer


class CopySnapshotter:
    name = "copy"

    def __init__(self, system) -> None:
        self.system = system
        self.flat_root = os.path.join(system.root, "flat")
        os.makedirs(self.flat_root, exist_ok=True)

    def _flat(self, layers: Sequence) -> str:
        """The image's layers applied in order onto one directory, with the init paths."""
        from lamina.archive.extract import apply_layer, open_layer_stream

        key = layers[-1].chain_id.hex if layers else "empty"
        path = os.path.join(self.flat_root, key)
        if os.path.isdir(path):
            initlayer.populate(path)  # no change unless an older lamina flattened it without neutralising
            return path
        tmp = tempfile.mkdtemp(dir=self.flat_root, prefix="tmp-")
        os.chmod(tmp, 0o755)  # the container's "/" (mkdtemp made it 0700); a layer entry for "./" may change it
        try:
            for layer in layers:
                blobs = self.system.images.blob_for_diff_id(layer.diff_id)
                if not blobs:
                    raise StoreError(f"layer {layer.diff_id}: no blob in the store to flatten from")
                with self.system.content.open(blobs[0].digest) as f:
                    apply_layer(open_layer_stream(f), tmp, overlay_whiteouts=False)
            # What the overlay init layer shadows is replaced here: an image's
            # `dev -> /host/dev` must never reach runc (see initlayer).
            initlayer.populate(tmp)
            os.rename(tmp, path)
        except FileExistsError:
            shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    def prepare(self, key: str, parent: Sequence) -> list[Mount]:
        target = os.path.join(key, "rootfs-copy")
        if not os.path.isdir(target):
            flat = self._flat(parent)
            tmp = target + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["cp", "-a", "--reflink=auto", flat, tmp], check=True)
            os.rename(tmp, target)
        return self.mounts(key, parent)

    def mounts(self, key: str, parent: Sequence) -> list[Mount]:
        root = os.path.join(key, "rootfs-copy")
        return [Mount("bind", root, root, ("rbind",))]  # the copy itself, in place

    def mount(self, key: str, parent: Sequence) -> str:
        root = os.path.join(key, "rootfs-copy")
        # Right before runc sees it: also covers a container an older lamina prepared.
        initlayer.populate(root)
        return root

    def commit(self, key: str, chain_id, diff_id, parent_chain, *, written=None) -> int | None:
        """A full copy is no layer: the layer is unpacked from its blob when first needed."""
        return None

    def unmount(self, ctr_dir: str) -> None:
        pass

    def changes(self, ctr_dir: str, layers: Sequence) -> list:
        from lamina.archive.changes import changes_between

        return changes_between(os.path.join(ctr_dir, "rootfs-copy"), self._flat(layers))

    def write_layer(self, ctr_dir: str, layers: Sequence, out: BinaryIO, *, clamp: int | None = None) -> None:
        from lamina.archive.layertar import write_layer_from_changes

        root = os.path.join(ctr_dir, "rootfs-copy")
        write_layer_from_changes(root, self.changes(ctr_dir, layers), out, clamp=clamp)

    def remove(self, ctr_dir: str) -> None:
        shutil.rmtree(ctr_dir, ignore_errors=True)
