"""Composition root: one `System` per command, built from the store root.

Everything that touches disk hangs off this object; nothing else creates stores
or runtimes.  Heavy parts (snapshotter, OCI runtime) are built on first use so
that cheap commands (`images`, `ps`) stay cheap.
"""

from __future__ import annotations

import os
from functools import cached_property

from lamina.errors import StoreError
from lamina.store.content import ContentStore, private_dir
from lamina.store.db import connect
from lamina.store.images import ImageStore
from lamina.store.layers import LayerStore
from lamina.store.leases import Leases

DEFAULT_ROOT = "/var/lib/lamina"


class System:
    def __init__(self, root: str | None = None, *, storage_driver: str | None = None,
                 runtime: str | None = None) -> None:
        self.root = os.path.abspath(root or os.environ.get("LAMINA_ROOT") or DEFAULT_ROOT)
        try:
            self._open()
        except OSError as e:
            raise StoreError(f"store {self.root}: {e.strerror or e}"
                             + (f": {e.filename}" if e.filename else "")) from None
        self._storage_driver = storage_driver or os.environ.get("LAMINA_STORAGE_DRIVER")
        self._runtime_name = runtime or os.environ.get("LAMINA_RUNTIME")
        # A container whose keeper died (front and watchdog killed, a reboot) must not
        # run on untracked: the next command reaps it.  One cheap query when none runs.
        if self.db.execute("SELECT 1 FROM containers WHERE state='running' LIMIT 1").fetchone():
            from lamina.recovery import reap_orphans

            reap_orphans(self)

    def _open(self) -> None:
        # As docker keeps /var/lib/docker: others may traverse the root (0711), never
        # list or read what is below it (0700 directories, a 0600 database).
        private_dir(self.root, 0o711)
        self.tmp_dir = os.path.join(self.root, "tmp")
        private_dir(self.tmp_dir)
        private_dir(os.path.join(self.root, "containers"))  # ContainerStore is made lazily
        db_path = os.path.join(self.root, "lamina.db")
        _private_files(db_path)
        self.db = connect(db_path)
        self.content = ContentStore(self.root)
        self.images = ImageStore(self.db, self.content)
        self.layers = LayerStore(self.root, self.db, self.content)
        self.leases = Leases(self.root, db_path)
        self.content.leases = self.layers.leases = self.leases
        if os.listdir(self.content.ingest_dir) or os.listdir(self.tmp_dir) or self.layers.has_incomplete():
            from lamina.recovery import recover

            recover(self)

    def lease(self, what: str):
        """`with system.lease("pull x"):` around any work that writes blobs or layers
        before an image refers to them: sweeps leave them alone until it ends."""
        return self.leases.hold(what)

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
        self.leases.close()
        self.db.close()


def _private_files(db_path: str) -> None:
    """The database readable by root only (SQLite gives its -wal and -shm files the
    database's mode); an existing store is fixed on open."""
    if not os.path.exists(db_path):
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for path in (db_path, db_path + "-wal", db_path + "-shm"):
        try:
            if os.stat(path).st_mode & 0o777 != 0o600:
                os.chmod(path, 0o600)
        except FileNotFoundError:
            pass
