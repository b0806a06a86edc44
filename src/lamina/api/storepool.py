"""Store handles kept between requests: opening a `System` (its database connection,
the store's directories) costs more than answering a `docker ps`, so the service
keeps a few that requests gave back and lends them again.

A kept handle answers as a fresh one would: its connection reads what other commands
committed meanwhile (each query is a transaction of its own, SQLite WAL); it is kept
only with no transaction open; parts a writer wired to its leases are built again;
and what opening a store checks for a command is checked again on each loan (a
container whose keeper died is reaped before the request sees it).
"""

from __future__ import annotations

import threading

IDLE = 4  # handles kept (a few concurrent clients' worth)


class StorePool:
    def __init__(self, root: str | None, storage_driver: str | None, runtime: str | None) -> None:
        self.root, self.storage_driver, self.runtime = root, storage_driver, runtime
        self._lock = threading.Lock()
        self._idle: list = []

    def take(self):
        with self._lock:
            system = self._idle.pop() if self._idle else None
        if system is None:
            from lamina.system import System

            return System(self.root, storage_driver=self.storage_driver, runtime=self.runtime)
        if system.db.execute("SELECT EXISTS(SELECT 1 FROM containers WHERE state='running')").fetchone()[0]:
            from lamina.recovery import reap_orphans

            reap_orphans(system)
        return system

    def give_back(self, system) -> None:
        if system.db.in_transaction or len(self._idle) >= IDLE:
            system.close()
            return
        parts = system.__dict__
        if "leases" in parts:
            for name in ("leases", "content", "layers", "images"):
                part = parts.pop(name, None)
                if name == "leases":
                    part.close()
        with self._lock:
            self._idle.append(system)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for system in idle:
            system.close()
