"""Resizing a running -t container's terminal (POST /containers/{id}/resize).

The pty's master belongs to the container's monitor; its slave is the init's stdio, and
TIOCSWINSZ on either end is the same: the slave is reached through /proc/PID/fd
(runtime/console.py), so the monitor needs no resize channel."""

from __future__ import annotations


def resize(system, name: str, height: int, width: int) -> None:
    """dockerd's ContainerResize: Conflict when not running; a container without a tty
    has nothing to resize (accepted, as the CLI sends one per attach)."""
    from lamina.engine.journal import record
    from lamina.engine.stats import init_pid
    from lamina.errors import Conflict
    from lamina.runtime.console import resize_process_tty

    rec = system.containers.resolve(name)
    if rec.state != "running":
        raise Conflict(f"Container {rec.id} is not running")
    pid = init_pid(system, rec)
    if pid is None or not rec.config.get("Tty"):
        return
    if resize_process_tty(pid, height, width):
        record(system, "container", "resize", rec.id, {"height": str(height), "width": str(width),
                                                      "image": rec.image_ref, "name": rec.name})
