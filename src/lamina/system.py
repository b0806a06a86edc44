"""Composition root: one `System` per command, built from the store root.

Everything that touches disk hangs off this object; nothing else creates stores
or runtimes.  Heavy parts (snapshotter, OCI runtime) are built on first use so
that cheap commands (`images`, `ps`) stay cheap.
"""

from __future__ import annotations

import os
from functools import cached_property

from lamina.store.content import ContentStore
from lamina.store.db import connect
from lamina.store.images import ImageStore
from lamina.store.layers import LayerStore

DEFAULT_ROOT = "/var/lib/lamina"


class System:
    def __init__(self, root: str | None = None, *, storage_driver: str | None = None,
                 runtime: str | None = None) -> None:
        self.root = os.path.abspath(root or os.environ.get("LAMINA_ROOT") or DEFAULT_ROOT)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.tmp_dir = os.path.join(self.root, "tmp")
        os.makedirs(self.tmp_dir, exist_ok=True)
        self.db = connect(os.path.join(self.root, "lamina.db"))
        self.content = ContentStore(self.root)
        self.images = ImageStore(self.db, self.content)
        self.layers = LayerStore(self.root, self.db, self.content)
        if os.listdir(self.content.ingest_dir) or os.listdir(self.tmp_dir) or self.layers.has_incomplete():
            from lamina.recovery import recover

            recover(self)
        self._storage_driver = storage_driver or os.environ.get("LAMINA_STORAGE_DRIVER")
        self._runtime_name = runtime or os.environ.get("LAMINA_RUNTIME")

    @cached_property
    def containers(self):
        from lamina.store.containers import ContainerStore

        return ContainerStore(self.root, self.db)

    @cached_property
    def snapshotter(self):
        from lamina.snapshot import select_snapshotter

        return select_snapshotter(self, self._storage_driver)

    def snapshotter_for(self, container):
        """The snapshotter that made a container (it keeps it for life)."""
        if container.driver == self.snapshotter.name:
            return self.snapshotter
        from lamina.snapshot import select_snapshotter

        return select_snapshotter(self, container.driver)

    @cached_property
    def runtime(self):
        from lamina.runtime.oci import select_runtime

        return select_runtime(self._runtime_name, state_root=os.path.join(self.root, "runtime"))

    def open_layer_blob(self, image_id, index: int):
        """Open the stored blob of layer `index` of an image (for lazy unpack)."""
        record = self.images.get(image_id)
        blob = self.images.layer_blobs(record)[index]
        return self.content.open(blob.descriptor.digest)

    def unpack(self, image_id) -> list:
        """Unpacked layers of an image, bottom-first, unpacking what is missing."""
        from lamina import oci

        diff_ids = oci.diff_ids(self.images.config(image_id))
        return self.layers.ensure(diff_ids, lambda i: self.open_layer_blob(image_id, i))

    def close(self) -> None:
        self.db.close()
