"""Container records and their directories (`containers/<id>/`).

There is no daemon: the lamina process that runs a container records its own
pid while it waits.  A container marked running whose watcher is gone was
interrupted (the machine rebooted or lamina was killed); it reads as exited.
"""

from __future__ import annotations

import os
import time

from lamina.errors import Conflict, InvalidParameter, NoSuchContainer
from lamina.leanjson import dumps, loads
from lamina.record import record
from lamina.store.db import pid_alive, transaction
from lamina.store.dirs import private_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3

_NAME_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

# A few of docker's name parts (moby pkg/namesgenerator), for `ps` familiarity.
_LEFT = ("admiring", "brave", "clever", "dreamy", "eager", "festive", "gifted", "happy", "jolly", "keen",
         "loving", "modest", "nifty", "optimistic", "peaceful", "quirky", "relaxed", "sharp", "tender", "vibrant")
_RIGHT = ("albattani", "bohr", "curie", "darwin", "euler", "fermi", "gauss", "hopper", "kepler", "lovelace",
          "meitner", "noether", "pasteur", "ritchie", "shannon", "tesla", "turing", "wozniak", "yalow", "zhukovsky")


@record
class ContainerRecord:
    """One container's row, read-only (a @record: `ps` must not import dataclasses)."""

    id: str
    name: str
    image_id: str
    image_ref: str
    created: float
    config: dict
    host_config: dict
    state: str
    pid: int | None
    exit_code: int | None
    started: float | None
    finished: float | None
    driver: str

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        """Running, or between two runs of its restart policy (docker's Running then too)."""
        return self.state in ("running", "restarting")


class ContainerStore:
    def __init__(self, root: str, conn: sqlite3.Connection) -> None:
        self.dir = os.path.join(root, "containers")
        private_dir(self.dir)
        self._db = conn

    def path(self, container_id: str) -> str:
        return os.path.join(self.dir, container_id)

    def create(self, *, name: str | None, image_id: str, image_ref: str, config: dict,
               host_config: dict, driver: str) -> ContainerRecord:
        cid = os.urandom(32).hex()
        if name is not None:
            validate_name(name)
        with transaction(self._db) as db:
            if name is None:
                name = self._free_name(db)
            else:
                row = db.execute("SELECT id FROM containers WHERE name=?", (name,)).fetchone()
                if row:
                    raise Conflict(
                        f'Conflict. The container name "/{name}" is already in use by container "{row[0]}". '
                        "You have to remove (or rename) that container to be able to reuse that name."
                    )
            db.execute(
                "INSERT INTO containers(id, name, image_id, image_ref, created, config, host_config, state, driver) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (cid, name, image_id, image_ref, time.time(), dumps(config), dumps(host_config),
                 "created", driver),
            )
        os.makedirs(self.path(cid), mode=0o700)
        return self.get(cid)

    def rename(self, container_id: str, name: str) -> None:
        """A new name (docker rename): Conflict when another container has it."""
        validate_name(name)
        with transaction(self._db) as db:
            row = db.execute("SELECT id FROM containers WHERE name=?", (name,)).fetchone()
            if row:
                raise Conflict(
                    f'Error when allocating new name: Conflict. The container name "/{name}" is already in use by '
                    f'container "{row[0]}". You have to remove (or rename) that container to be able to reuse '
                    "that name."
                )
            db.execute("UPDATE containers SET name=? WHERE id=?", (name, container_id))

    @staticmethod
    def _free_name(db: sqlite3.Connection) -> str:
        for attempt in range(100):
            name = f"{_pick(_LEFT)}_{_pick(_RIGHT)}" + (str(attempt) if attempt > 10 else "")
            if db.execute("SELECT 1 FROM containers WHERE name=?", (name,)).fetchone() is None:
                return name
        return os.urandom(6).hex()

    def get(self, container_id: str) -> ContainerRecord:
        row = self._db.execute(f"SELECT {_COLS} FROM containers WHERE id=?", (container_id,)).fetchone()
        if row is None:
            raise NoSuchContainer(container_id)
        return self._fresh(_record(row))

    def resolve(self, text: str) -> ContainerRecord:
        """By full ID, by name (with or without leading /), then by unique ID prefix."""
        name = text[1:] if text.startswith("/") else text
        row = self._db.execute(f"SELECT {_COLS} FROM containers WHERE id=? OR name=?", (text, name)).fetchone()
        if row is None and text and all(c in "0123456789abcdef" for c in text):
            rows = self._db.execute(
                f"SELECT {_COLS} FROM containers WHERE id >= ? AND id < ? LIMIT 2", (text, text + "g")
            ).fetchall()
            if len(rows) == 1:
                row = rows[0]
        if row is None:
            raise NoSuchContainer(text)
        return self._fresh(_record(row))

    def list(self) -> list[ContainerRecord]:
        rows = self._db.execute(f"SELECT {_COLS} FROM containers ORDER BY created DESC").fetchall()
        return [self._fresh(_record(r)) for r in rows]

    def using_image(self, image_id: str) -> list[ContainerRecord]:
        rows = self._db.execute(f"SELECT {_COLS} FROM containers WHERE image_id=?", (image_id,)).fetchall()
        return [_record(r) for r in rows]

    def _fresh(self, rec: ContainerRecord) -> ContainerRecord:
        if rec.state in ("running", "restarting") and rec.pid and not pid_alive(rec.pid):
            self.set_exited(rec.id, 137 if rec.exit_code is None else rec.exit_code)
            return self.get(rec.id)
        return rec

    def set_config(self, container_id: str, config: dict) -> None:
        with transaction(self._db) as db:
            db.execute("UPDATE containers SET config=? WHERE id=?", (dumps(config), container_id))

    def set_host_config(self, container_id: str, host_config: dict) -> None:
        with transaction(self._db) as db:
            db.execute("UPDATE containers SET host_config=? WHERE id=?", (dumps(host_config), container_id))

    def set_running(self, container_id: str, pid: int) -> None:
        with transaction(self._db) as db:
            db.execute("UPDATE containers SET state='running', pid=?, started=?, exit_code=NULL, finished=NULL "
                       "WHERE id=?", (pid, time.time(), container_id))
            # State.Error of an earlier failed start goes, as dockerd's SetRunning clears it
            db.execute("UPDATE container_runs SET error='' WHERE id=? AND error!=''", (container_id,))

    def unstart(self, rec: ContainerRecord) -> None:
        """A start the runtime refused (runc create failed): the row as it was before
        it, as dockerd leaves it (Created, or Exited with its last run's times)."""
        with transaction(self._db) as db:
            db.execute("UPDATE containers SET state=?, pid=NULL, exit_code=?, started=?, finished=? WHERE id=?",
                       (rec.state, rec.exit_code, rec.started, rec.finished, rec.id))

    def set_exited(self, container_id: str, code: int, restart=None, oom_killed: bool | None = None) -> bool:
        """A run's exit.  `restart(host_config, code, restart_count, stopped_by_user)` (its
        monitor's policy: lamina/services.py `restarts_after`) decides in the same
        transaction, on the record as it is then (an `update --restart` meanwhile, a user's
        stop), whether it comes back: then it is Restarting, kept by this process, with
        RestartCount+1, never Exited in between (as dockerd decides under the container's
        lock: moby daemon/monitor.go handleContainerExit).  True when restarting.
        `oom_killed`: State.OOMKilled of this run (a memory-limited one's), recorded with
        its exit: no reader sees the exit with the previous run's word."""
        with transaction(self._db) as db:
            again = False
            if oom_killed is not None:  # store/runstate.py's row, made on first use
                db.execute("INSERT OR IGNORE INTO container_runs(id) SELECT id FROM containers WHERE id=?",
                           (container_id,))
                db.execute("UPDATE container_runs SET oom_killed=? WHERE id=?", (int(oom_killed), container_id))
            if restart is not None:
                row = db.execute("SELECT c.host_config, r.restart_count, r.stop_requested FROM containers c "
                                 "LEFT JOIN container_runs r ON r.id=c.id WHERE c.id=?", (container_id,)).fetchone()
                again = row is not None and restart(loads(row[0]), code, row[1] or 0, bool(row[2]))
            if again:
                db.execute("UPDATE containers SET state='restarting', pid=?, exit_code=?, finished=? WHERE id=?",
                           (os.getpid(), code, time.time(), container_id))
                db.execute("UPDATE container_runs SET restart_count=restart_count+1, init_pid=NULL WHERE id=?",
                           (container_id,))
            else:
                db.execute("UPDATE containers SET state='exited', pid=NULL, exit_code=?, finished=? WHERE id=?",
                           (code, time.time(), container_id))
        return again

    def set_exit_code(self, container_id: str, code: int) -> None:
        """A start that failed: its code, the state left as it was (docker's `created`)."""
        with transaction(self._db) as db:
            db.execute("UPDATE containers SET exit_code=? WHERE id=?", (code, container_id))

    def delete(self, container_id: str) -> None:
        with transaction(self._db) as db:
            db.execute("DELETE FROM containers WHERE id=?", (container_id,))
            db.execute("DELETE FROM container_runs WHERE id=?", (container_id,))  # store/runstate.py


def _pick(words: tuple[str, ...]) -> str:
    return words[int.from_bytes(os.urandom(2), "big") % len(words)]


def validate_name(name: str) -> None:
    if len(name) < 2 or name[0] not in _NAME_OK[:62] or any(c not in _NAME_OK for c in name):
        raise InvalidParameter(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')


_COLS = ("id, name, image_id, image_ref, created, config, host_config, state, pid, exit_code, "
         "started, finished, driver")


def _record(row) -> ContainerRecord:
    return ContainerRecord(row[0], row[1], row[2], row[3], row[4], loads(row[5]), loads(row[6]),
                           row[7], row[8], row[9], row[10], row[11], row[12])
