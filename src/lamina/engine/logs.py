"""`logs`: a container's json-file log and whether its writer may still add to it."""

from __future__ import annotations

import os


def log_source(system, name: str):
    """(record, log path) of container `name`; dockerd's errors for an unknown container
    and for one whose logging driver cannot be read."""
    from lamina.errors import NotImplementedByDriver
    from lamina.logs.options import log_path

    rec = system.containers.resolve(name)
    if ((rec.host_config.get("LogConfig") or {}).get("Type") or "json-file") != "json-file":
        raise NotImplementedByDriver("configured logging driver does not support reading")
    return rec, log_path(system.containers.path(rec.id), rec.id)


def writer_alive(system, container_id: str) -> bool:
    """Whether more may be written to the container's log: it runs (or waits to restart),
    or its monitor, which closes the log last, is still there."""
    from lamina.errors import NotFound

    try:
        rec = system.containers.get(container_id)
    except NotFound:
        return False
    if rec.running:
        return True
    try:
        from lamina.store import runstate
    except ImportError:
        return False
    pid = runstate.get(system.db, container_id).monitor_pid
    return bool(pid) and os.path.exists(f"/proc/{pid}")
