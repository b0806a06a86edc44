"""Crash recovery: what a killed lamina process may leave behind, and its removal.

Every temporary name carries the pid of its maker (`blob-<pid>-…`,
`import-<pid>-…`), and half-made layers carry it in their row, so a later
process can tell abandoned work from work still in progress.  A container
record says running with the pid of its keeper (the front's watchdog); if that
process is gone, nobody watches the container: `reap` takes it down.
"""

from __future__ import annotations

import os

from lamina.store.db import pid_alive


def _owner(name: str) -> int | None:
    parts = name.split("-")
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


def abandoned_temp_files(system) -> list[str]:
    out = []
    for d in (system.content.ingest_dir, system.tmp_dir):
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:
            pid = _owner(name)
            if pid is None or not pid_alive(pid):
                out.append(os.path.join(d, name))
    return out


def recover(system) -> int:
    """Remove abandoned temp files and half-unpacked layers; returns how many."""
    from lamina.archive.rmtree import remove_path

    n = system.layers.cleanup_incomplete()
    for path in abandoned_temp_files(system):
        try:
            _unmount_below(path)  # a killed build's read-only `--from` view (snapshot/view.py)
            remove_path(path)  # no-follow fd walk: a build's copy of a stage may hold hostile links
        except OSError:
            continue  # removed by a concurrent recovery, or not removable: counted next time
        n += 1
    return n


def _unmount_below(path: str) -> None:
    if not os.path.isdir(path) or os.path.islink(path):
        return
    from lamina.snapshot.mount import mounts_below, unmount

    for target in mounts_below(path):
        unmount(target)


def orphaned_containers(db) -> list[str]:
    """IDs of containers recorded as running whose keeper process is gone.  One
    query: cheap enough for every command's start-up."""
    rows = db.execute("SELECT id, pid FROM containers WHERE state='running'").fetchall()
    return [cid for cid, pid in rows if not pid or not pid_alive(pid)]


def reap(system, rec) -> None:
    """Take down what a container's front left: every process of it and its runtime
    state (through the runtime), its rootfs mount, its network; then a record still
    saying running becomes Exited (137), as docker records a SIGKILL.  Idempotent:
    the watchdog, the next command (`reap_orphans`) and `rm -f` all use it."""
    from lamina.network import release

    runtime_for(system, rec).destroy(rec.id)
    from lamina.runtime.cgroups import remove as remove_cgroup

    remove_cgroup(f"/lamina/{rec.id}")  # a runtime killed before it recorded its state leaves it
    system.snapshotter_for(rec).unmount(system.containers.path(rec.id))
    release(system, rec.id)
    if system.containers.get(rec.id).running:
        system.containers.set_exited(rec.id, 137)


def reap_orphans(system) -> None:
    """Reap every container whose keeper died (the watchdog too: OOM, reboot)."""
    import sys

    from lamina.errors import LaminaError
    from lamina.store.db import sqlite3  # the C module: the package would import datetime on every `ps`

    for cid in orphaned_containers(system.db):
        try:
            reap(system, system.containers.get(cid))
        except (LaminaError, OSError, sqlite3.Error) as e:  # never block the command the user asked for
            sys.stderr.write(f"warning: container {cid[:12]} was left running and could not be stopped: {e}\n")


def runtime_for(system, rec):
    """The runtime that ran `rec` (its state lives under that runtime's own root)."""
    name = rec.host_config.get("Runtime") or system.runtime.name
    if name == system.runtime.name:
        return system.runtime
    from lamina.runtime.oci import select_runtime

    return select_runtime(name, state_root=os.path.dirname(system.runtime.state_root))
