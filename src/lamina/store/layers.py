"""Unpacked layers, shared between images by chain ID.

A layer lives in `layers/<dir>/diff` in overlay form (whiteouts are 0:0
character devices, opaque directories carry trusted.overlay.opaque=y) and has a
short link `l/<link>` so that long lower-dir chains fit in one page of mount
data, as Docker's overlay2 driver does.

Crash safety: the row is inserted with complete=0 and our pid *before* the
directory is filled; it is flipped to complete=1 only after the content was
verified against its diff_id.  An incomplete row whose process is gone is
removed (with its directory) by `cleanup_incomplete`, so a half-unpacked layer
is never used as a parent.  A per-chain flock serialises concurrent unpacks of
the same layer across processes.
"""

from __future__ import annotations

import errno
import fcntl
import os

from lamina.digest import Digest, HashingReader, chain_ids
from lamina.errors import DigestMismatch, StoreError
from lamina.store.content import ContentStore, private_dir
from lamina.record import record
from lamina.store.db import pid_alive, transaction

# secrets, shutil and typing are imported where used: `diff` reads layers and makes none
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import BinaryIO, Callable


@record
class LayerRecord:
    chain_id: Digest
    diff_id: Digest
    parent: str | None
    dir: str       # absolute path of the diff directory
    link: str      # short link name under l/
    size: int


class LayerStore:
    def __init__(self, root: str, conn: sqlite3.Connection, content: ContentStore) -> None:
        self.root = root
        self.layers_dir = os.path.join(root, "layers")
        self.links_dir = os.path.join(root, "l")
        self.locks_dir = os.path.join(root, "locks")
        for d in (self.layers_dir, self.links_dir, self.locks_dir):
            private_dir(d)
        self._db = conn
        self._content = content
        self.leases = None  # see ContentStore.leases

    def _protect(self, chain_id: Digest) -> None:
        if self.leases is not None:
            self.leases.protect("layer", str(chain_id))

    # -- lookup -------------------------------------------------------------------
    def get(self, chain_id: Digest) -> LayerRecord | None:
        """The complete layer; under a lease, it stays while the lease lasts."""
        self._protect(chain_id)
        row = self._db.execute(
            "SELECT chain_id, diff_id, parent, dir, link, size FROM layers WHERE chain_id=? AND complete=1",
            (str(chain_id),),
        ).fetchone()
        return self._record(row) if row else None

    def _record(self, row) -> LayerRecord:
        return LayerRecord(Digest(row[0]), Digest(row[1]), row[2], os.path.join(self.layers_dir, row[3], "diff"), row[4], row[5])

    def all(self) -> list[LayerRecord]:
        rows = self._db.execute("SELECT chain_id, diff_id, parent, dir, link, size FROM layers WHERE complete=1")
        return [self._record(r) for r in rows]

    # -- creation -----------------------------------------------------------------
    def ensure(self, diff_ids: list[Digest], open_blob: Callable[[int], BinaryIO]) -> list[LayerRecord]:
        """Make sure every layer of a chain is unpacked; returns them bottom-first.

        `open_blob(i)` opens the (possibly compressed) blob of layer i; it is only
        called for layers that are not unpacked yet.  The uncompressed stream is
        verified against diff_ids[i] before the layer becomes visible."""
        out: list[LayerRecord] = []
        parent: Digest | None = None
        for i, (diff_id, chain) in enumerate(zip(diff_ids, chain_ids(diff_ids))):
            rec = self.get(chain)
            if rec is None:
                def fill(target: str, i=i, diff_id=diff_id) -> int:
                    from lamina.archive.extract import open_layer_stream

                    with open_blob(i) as blob:
                        plain = HashingReader(open_layer_stream(blob))
                        size = self._apply(plain, target)
                        plain.drain()
                    if plain.digest() != diff_id:
                        raise DigestMismatch(f"layer {diff_id}: uncompressed content hashes to {plain.digest()}")
                    return size
                rec = self.create(chain, diff_id, parent, fill)
            out.append(rec)
            parent = chain
        return out

    @staticmethod
    def _apply(stream: BinaryIO, target: str) -> int:
        from lamina.archive.extract import apply_layer

        return apply_layer(stream, target, overlay_whiteouts=True)

    def create(self, chain_id: Digest, diff_id: Digest, parent: Digest | None,
               fill: Callable[[str], int]) -> LayerRecord:
        """Create layer `chain_id` by calling fill(diff_dir) -> size, crash-safely."""
        with self._chain_lock(chain_id):
            rec = self.get(chain_id)
            if rec is not None:  # another process made it while we waited
                return rec
            self.cleanup_incomplete(only=chain_id)
            import secrets

            name = secrets.token_hex(16)
            link = secrets.token_hex(13).upper()
            with transaction(self._db) as db:
                db.execute(
                    "INSERT INTO layers(chain_id, diff_id, parent, dir, link, size, complete, owner_pid) "
                    "VALUES (?,?,?,?,?,0,0,?)",
                    (str(chain_id), str(diff_id), str(parent) if parent else None, name, link, os.getpid()),
                )
            base = os.path.join(self.layers_dir, name)
            diff = os.path.join(base, "diff")
            try:
                os.makedirs(diff)
                os.chmod(base, 0o700)
                size = fill(diff)
                _syncfs(diff)
                os.symlink(os.path.join("..", "layers", name, "diff"), os.path.join(self.links_dir, link))
            except BaseException:
                self._discard(str(chain_id), name, link)
                raise
            with transaction(self._db) as db:
                db.execute("UPDATE layers SET complete=1, size=?, owner_pid=NULL WHERE chain_id=?", (size, str(chain_id)))
            return self.get(chain_id)  # type: ignore[return-value]

    def adopt(self, chain_id: Digest, diff_id: Digest, parent: Digest | None, tree: str, size: int) -> LayerRecord:
        """Create layer `chain_id` by moving `tree` (already in overlay form, on the
        store's filesystem, verified by the caller against diff_id) in as its diff
        dir: an import's staging tree, a snapshot's upper dir (unless another process made
        the layer meanwhile, `tree` is gone after)."""

        def move(target: str) -> int:
            os.rmdir(target)
            os.rename(tree, target)
            return size

        return self.create(chain_id, diff_id, parent, move)

    # -- maintenance --------------------------------------------------------------
    def has_incomplete(self) -> bool:
        return self._db.execute("SELECT 1 FROM layers WHERE complete=0 LIMIT 1").fetchone() is not None

    def cleanup_incomplete(self, only: Digest | None = None) -> int:
        """Remove half-made layers whose creating process is gone."""
        query = "SELECT chain_id, dir, link, owner_pid FROM layers WHERE complete=0"
        args: tuple = ()
        if only is not None:
            query += " AND chain_id=?"
            args = (str(only),)
        removed = 0
        for chain, name, link, pid in self._db.execute(query, args).fetchall():
            if pid and pid_alive(pid) and pid != os.getpid():
                continue
            self._discard(chain, name, link)
            removed += 1
        return removed

    def _discard(self, chain: str, name: str, link: str) -> None:
        try:
            os.unlink(os.path.join(self.links_dir, link))
        except FileNotFoundError:
            pass
        import shutil

        shutil.rmtree(os.path.join(self.layers_dir, name), ignore_errors=True)
        with transaction(self._db) as db:
            db.execute("DELETE FROM layers WHERE chain_id=? AND complete=0", (chain,))

    def remove(self, chain_id: Digest) -> None:
        row = self._db.execute("SELECT dir, link FROM layers WHERE chain_id=?", (str(chain_id),)).fetchone()
        if row is None:
            return
        with transaction(self._db) as db:
            db.execute("DELETE FROM layers WHERE chain_id=?", (str(chain_id),))
        try:
            os.unlink(os.path.join(self.links_dir, row[1]))
        except FileNotFoundError:
            pass
        import shutil

        shutil.rmtree(os.path.join(self.layers_dir, row[0]), ignore_errors=True)

    def _chain_lock(self, chain_id: Digest) -> _ChainLock:
        return _ChainLock(os.path.join(self.locks_dir, f"layer-{chain_id.hex}"))


class _ChainLock:
    """`with`: an exclusive flock on a layer's lock file.  A class rather than a
    @contextmanager: contextlib (with functools and collections) would be an import
    every reader of layers (`diff`, `run`) pays for."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = -1

    def __enter__(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __exit__(self, *exc) -> bool:
        os.close(self._fd)
        return False


def _syncfs(path: str) -> None:
    """Flush the filesystem holding `path` once, instead of fsync per file."""
    from lamina import libc

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc.function("syncfs", libc.Int)(fd) != 0:
            err = libc.errno()
            if err not in (errno.ENOSYS,):
                raise StoreError(f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)

