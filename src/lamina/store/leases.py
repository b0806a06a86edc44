"""Leases: work in flight that `system prune` and `rmi` must not sweep.

A pull, load, import, commit, push or build writes blobs and unpacks layers
before the image that refers to them exists (and reuses blobs and layers that
only another image refers to).  Until that image is published, nothing but
this process knows those objects are wanted, so a sweep running beside it
would delete them: every command exits 0 and the new image lacks its blobs.

As in containerd, a writer holds a *lease* (a row with its pid and the start
time of that process) and every blob and layer it touches while holding it is
recorded against the lease (`protect`, called by the content and layer stores
themselves).  A sweep treats those records as roots.  A lease ends with the
`hold()` block, or when its process is gone: a killed writer's lease expires
at the next sweep.

Ordering.  A writer records an object *before* it decides the object exists
(and may be reused): `protect` runs under a shared flock of `locks/gc.lock`,
and a sweep holds that lock exclusively from reading the roots until its last
unlink.  So either the sweep saw the record, or the writer looks only after
the sweep has finished and finds the object gone (and makes it again).  The
records live in their own SQLite connection: download and compress threads
record blobs while the main thread is inside other transactions.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager

from lamina.store.db import connect, transaction

TYPE_CHECKING = False  # typing only for annotations: every verb that leases starts without it
if TYPE_CHECKING:
    import sqlite3  # the package imports datetime: only _sqlite3 (store/db.py) at run time
    from typing import Iterator


def process_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot), None when it is gone:
    with the pid it names a process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return stat.rsplit(b")", 1)[-1].split()[19].decode()


class Leases:
    def __init__(self, root: str, db_path: str) -> None:
        self._db_path = db_path
        self._lock_path = os.path.join(root, "locks", "gc.lock")
        self._mutex = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._id: str | None = None
        self._depth = 0
        self._seen: set[tuple[str, str]] = set()
        self._local = threading.local()  # .sweeping: this thread holds gc.lock exclusively

    # -- writers ------------------------------------------------------------------------
    @contextmanager
    def hold(self, what: str) -> Iterator[None]:
        """Protect everything this System touches until the block ends (nested holds
        share the outermost lease: a build that pulls its base image holds one)."""
        with self._mutex:
            if self._depth == 0:
                self._conn = self._conn or connect(self._db_path)
                lease = os.urandom(16).hex()  # secrets.token_hex, without importing hmac and hashlib
                with transaction(self._conn) as db:
                    db.execute("INSERT INTO leases(id, pid, started, what, created) VALUES (?,?,?,?,?)",
                               (lease, os.getpid(), process_start(os.getpid()), what[:200], time.time()))
                self._id = lease
            self._depth += 1
        try:
            yield
        finally:
            with self._mutex:
                self._depth -= 1
                if self._depth == 0:
                    lease, self._id = self._id, None
                    self._seen.clear()
                    with transaction(self._conn) as db:
                        _drop(db, lease)

    def protect(self, kind: str, key: str) -> None:
        """Record a blob ('blob', digest) or layer ('layer', chain id) against the
        lease held, if any; call it before deciding whether the object exists."""
        if self._id is None or (kind, key) in self._seen:
            return
        with self._mutex:
            if self._id is None:
                return
            shared = None if getattr(self._local, "sweeping", False) else fcntl.LOCK_SH
            with self._gc_lock(shared), transaction(self._conn) as db:
                db.execute("INSERT OR IGNORE INTO lease_refs(lease, kind, key) VALUES (?,?,?)",
                           (self._id, kind, key))
            self._seen.add((kind, key))

    # -- sweepers -----------------------------------------------------------------------
    @contextmanager
    def sweeping(self, db: sqlite3.Connection) -> Iterator[tuple[set[str], set[str]]]:
        """Hold off every writer's `protect` while a sweep decides and deletes; yields
        the (blobs, layer chain ids) that other processes' live leases protect.
        Leases of dead processes are dropped here.  Our own lease is not a root:
        a writer that sweeps (load dropping a blob it proved wrong) knows its work."""
        with self._gc_lock(fcntl.LOCK_EX):
            self._local.sweeping = True
            try:
                yield self._roots(db)
            finally:
                self._local.sweeping = False

    def _roots(self, db: sqlite3.Connection) -> tuple[set[str], set[str]]:
        blobs: set[str] = set()
        chains: set[str] = set()
        for lease, pid, started in db.execute("SELECT id, pid, started FROM leases").fetchall():
            if lease == self._id:
                continue
            if process_start(pid) != started:
                with transaction(db) as t:
                    _drop(t, lease)
                continue
            for kind, key in db.execute("SELECT kind, key FROM lease_refs WHERE lease=?", (lease,)):
                (blobs if kind == "blob" else chains).add(key)
        return blobs, chains

    def live(self, db: sqlite3.Connection) -> list[str]:
        """What the live leases of other processes are doing (for `system check`)."""
        rows = db.execute("SELECT id, pid, started, what FROM leases").fetchall()
        return [f"{what} (pid {pid})" for lease, pid, started, what in rows
                if lease != self._id and process_start(pid) == started]

    @contextmanager
    def _gc_lock(self, mode: int | None) -> Iterator[None]:
        if mode is None:
            yield
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _drop(db: sqlite3.Connection, lease: str | None) -> None:
    db.execute("DELETE FROM lease_refs WHERE lease=?", (lease,))
    db.execute("DELETE FROM leases WHERE id=?", (lease,))


def leased(what: str):
    """Decorator: the writer `f(system, ...)` runs under a lease (see System.lease)."""
    import functools

    def wrap(f):
        @functools.wraps(f)
        def run(system, *args, **kwargs):
            with system.lease(what):
                return f(system, *args, **kwargs)
        return run
    return wrap
