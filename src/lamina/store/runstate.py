"""What a monitored container's record adds to its row (`container_runs`).

A detached container (run -d, start) is kept by its monitor (lamina/monitor.py),
not by the command that started it.  Its row in `containers` says running or
restarting with a keeper pid as before; this table holds what docker's State
adds for such a container: the monitor's pid, the init's host pid (State.Pid),
RestartCount, OOMKilled, Error, and whether a user stopped it (a user's
stop/kill/rm -f: the restart policy must not bring it back).  One row per
container that ever had a monitor; removed with the container.
"""

from __future__ import annotations

from lamina.record import record
from lamina.store.db import transaction


@record
class RunState:
    monitor_pid: int | None = None
    init_pid: int | None = None
    restart_count: int = 0
    stop_requested: bool = False
    oom_killed: bool = False
    error: str = ""


_COLS = "monitor_pid, init_pid, restart_count, stop_requested, oom_killed, error"


def get(db, container_id: str) -> RunState:
    row = db.execute(f"SELECT {_COLS} FROM container_runs WHERE id=?", (container_id,)).fetchone()
    if row is None:
        return RunState()
    return RunState(row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[5])


def update(db, container_id: str, **fields) -> None:
    """Set some of RunState's fields (the row is made on first use, never for a
    container removed meanwhile: its rows go together)."""
    names = list(fields)
    with transaction(db) as conn:
        conn.execute("INSERT OR IGNORE INTO container_runs(id) SELECT id FROM containers WHERE id=?",
                     (container_id,))
        conn.execute(f"UPDATE container_runs SET {', '.join(f'{n}=?' for n in names)} WHERE id=?",
                     (*[fields[n] for n in names], container_id))


def delete(db, container_id: str) -> None:
    with transaction(db) as conn:
        conn.execute("DELETE FROM container_runs WHERE id=?", (container_id,))
