"""Composition root: one `System` per command, built from the store root.

Everything that touches disk hangs off this object; nothing else creates stores
or runtimes.  Opening it opens the database only: every part (content, image and
layer stores, leases, containers, snapshotter, OCI runtime) is built, and its
modules imported, on first use, so that `ps` imports no image code and `images`
no snapshotter (the CLI's start-up time is most of a read verb's time).
"""

from __future__ import annotations

import os

from lamina import DEFAULT_ROOT, runtime_state_root, store_root  # noqa: F401 - DEFAULT_ROOT: its old home
from lamina.errors import StoreError
from lamina.store.db import connect
from lamina.store.dirs import private_dir


class System:
    def __init__(self, root: str | None = None, *, storage_driver: str | None = None,
                 runtime: str | None = None) -> None:
        self.root = store_root(root)
        self._storage_driver = storage_driver or os.environ.get("LAMINA_STORAGE_DRIVER")
        self._runtime_name = runtime or os.environ.get("LAMINA_RUNTIME")
        try:
            self._open()
        except OSError as e:
            raise StoreError(f"store {self.root}: {e.strerror or e}"
                             + (f": {e.filename}" if e.filename else "")) from None
        # A container whose keeper died (front and watchdog killed, a reboot) must not
        # run on untracked: the next command reaps it.  One cheap query when none runs.
        if self._running:
            from lamina.recovery import reap_orphans

            reap_orphans(self)

    def _open(self) -> None:
        # As docker keeps /var/lib/docker: others may traverse the root (0711), never
        # list or read what is below it (0700 directories, a 0600 database).
        private_dir(self.root, 0o711)
        self.tmp_dir = os.path.join(self.root, "tmp")
        # Every store directory is made, or its mode fixed, on every open (a few syscalls)
        # although the stores that own them are built lazily: a read verb fixes them too.
        for d in _STORE_DIRS:
            private_dir(os.path.join(self.root, d))
        self._db_path = os.path.join(self.root, "lamina.db")
        _private_files(self._db_path)
        self.db = connect(self._db_path)
        # What an interrupted command left (half-made layers: LayerStore.has_incomplete;
        # running containers) in one query, without building the stores to ask them.
        incomplete, self._running = self.db.execute(
            "SELECT EXISTS(SELECT 1 FROM layers WHERE complete=0), "
            "EXISTS(SELECT 1 FROM containers WHERE state='running')").fetchone()
        if incomplete or os.listdir(self.tmp_dir) or _non_empty(os.path.join(self.root, "ingest")):
            from lamina.recovery import recover

            recover(self)

    def __getattr__(self, name: str):
        """The parts, each built on first use and kept (as functools.cached_property would,
        without importing functools on the read verbs' path)."""
        build = _PARTS.get(name)
        if build is None or "db" not in self.__dict__:
            raise AttributeError(f"'System' object has no attribute {name!r}")
        value = build(self)
        self.__dict__[name] = value
        return value

    def lease(self, what: str):
        """`with system.lease("pull x"):` around any work that writes blobs or layers
        before an image refers to them: sweeps leave them alone until it ends."""
        return self.leases.hold(what)

    @property
    def snapshotter_name(self) -> str:
        """The default snapshotter's name, without building it where the answer is known
        (`inspect` and `info` show it; building it imports and may probe overlay)."""
        built = self.__dict__.get("snapshotter")
        if built is not None:
            return built.name
        if self._storage_driver in ("overlay", "copy"):
            return self._storage_driver
        # overlay_supported()'s marker: the probe succeeded once on this store
        if not self._storage_driver and os.path.exists(os.path.join(self.root, "overlay-ok")):
            return "overlay"
        return self.snapshotter.name

    def snapshotter_for(self, container):
        """The snapshotter that made a container (it keeps it for life)."""
        if container.driver == self.snapshotter_name:
            return self.snapshotter
        from lamina.snapshot import select_snapshotter

        return select_snapshotter(self, container.driver)

    def unpack(self, image_id) -> list:
        """Unpacked layers of an image, bottom-first, unpacking what is missing: through
        one `Image` value, so its config and manifest are read once, not per layer."""
        from lamina.image import Image

        return Image.load(self, image_id).layers()

    def close(self) -> None:
        if "leases" in self.__dict__:
            self.leases.close()
        self.db.close()


def _content(system: System):
    from lamina.store.content import ContentStore

    store = ContentStore(system.root)
    store.leases = system.__dict__.get("leases")  # a writer's lease builds and wires it (_leases)
    return store


def _images(system: System):
    from lamina.store.images import ImageStore

    return ImageStore(system.db, system.content)


def _layers(system: System):
    from lamina.store.layers import LayerStore

    store = LayerStore(system.root, system.db, system.content)
    store.leases = system.__dict__.get("leases")
    return store


def _leases(system: System):
    from lamina.store.leases import Leases

    # Built on the first lease (or sweep): a read verb needs none.  Until then no lease is
    # held, so the stores had nothing to protect; from now on they report to it.
    leases = Leases(system.root, system._db_path)
    for part in ("content", "layers"):
        if part in system.__dict__:
            system.__dict__[part].leases = leases
    return leases


def _containers(system: System):
    from lamina.store.containers import ContainerStore

    return ContainerStore(system.root, system.db)


def _snapshotter(system: System):
    from lamina.snapshot import select_snapshotter

    return select_snapshotter(system, system._storage_driver)


def _runtime(system: System):
    from lamina.runtime.oci import select_runtime

    return select_runtime(system._runtime_name, state_root=runtime_state_root(system.root))


_STORE_DIRS = ("tmp", "containers", "blobs", "blobs/sha256", "ingest", "layers", "l", "locks")  # content, layers
_PARTS = {"content": _content, "images": _images, "layers": _layers, "leases": _leases,
          "containers": _containers, "snapshotter": _snapshotter, "runtime": _runtime}


def _non_empty(path: str) -> bool:
    try:
        return bool(os.listdir(path))
    except FileNotFoundError:
        return False


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
