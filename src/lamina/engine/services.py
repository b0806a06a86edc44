"""Service operations on containers: run detached, start, stop, kill, wait, restart.

Thin over lamina/services.py (the monitor's outside): names are resolved here,
records and exit codes come back; nothing is printed.
"""

from __future__ import annotations


def start(system, rec) -> None:
    """POST /containers/{id}/start: under a monitor; returns once it runs."""
    from lamina import lifecycle, services

    if not rec.running:
        lifecycle.check_mount_sources(rec)
    services.start_detached(system, rec)


def prepare_start(system):
    """A monitor booting ahead of the container it will run (run -d): `.start(rec)` once
    created (returns once it runs), `.cancel()` if it never is."""
    from lamina import services

    return services.Monitor(system)


def stop(system, name: str, timeout: float | None = None) -> None:
    from lamina import services

    services.stop(system, system.containers.resolve(name), timeout)


def kill(system, name: str, signal: str = "KILL") -> None:
    from lamina import services
    from lamina.signals import parse_signal

    num = parse_signal(signal)  # dockerd checks the signal before the name
    services.kill(system, system.containers.resolve(name), num)


def wait(system, name: str) -> int:
    from lamina import services
    from lamina.engine.journal import die_watch

    rec = system.containers.resolve(name)
    return services.wait(system, rec, die_watch(system.root, rec.id))


def restart(system, name: str, timeout: float | None = None) -> None:
    """docker restart: stop (if running), then start under a monitor."""
    from lamina import services

    rec = system.containers.resolve(name)
    services.stop(system, rec, timeout)
    services.start_detached(system, system.containers.get(rec.id))


def start_all(system) -> list:
    """What dockerd restarts when it starts (after a reboot): containers with restart
    policy `always`, and `unless-stopped` ones no user stopped.  Returns
    [(record, error or None)]."""
    from lamina import services
    from lamina.errors import LaminaError
    from lamina.store import runstate

    out = []
    for rec in reversed(system.containers.list()):  # oldest first, as created
        if not services.starts_at_boot(rec, runstate.get(system.db, rec.id)):
            continue
        try:
            services.start_detached(system, rec, user_start=False)
            out.append((rec, None))
        except LaminaError as e:
            out.append((rec, e))
    return out


def health_word(system, rec) -> str | None:
    """ps's `(healthy)`, `(unhealthy)`, `(health: starting)` word, None without checks."""
    try:
        from lamina.health import health_of
    except ImportError:  # health checks not built in (yet)
        return None
    health = health_of(system, rec.id)
    status = (health or {}).get("Status")
    if not status:
        return None
    return "health: starting" if status == "starting" else status


def state_of(system, rec) -> tuple[dict, int]:
    """inspect's State (docker's shape) and RestartCount of a record."""
    from lamina.store import runstate

    run = runstate.get(system.db, rec.id)
    restarting = rec.state == "restarting"
    running = rec.state in ("running", "restarting")
    state = {
        "Status": rec.state, "Running": running, "Paused": False, "Restarting": restarting,
        "OOMKilled": run.oom_killed, "Dead": False,
        "Pid": (run.init_pid or rec.pid or 0) if rec.state == "running" else 0,
        "ExitCode": rec.exit_code or 0, "Error": run.error,
    }
    if rec.config.get("Healthcheck"):
        try:
            from lamina.health import health_of
        except ImportError:
            health_of = None
        health = health_of(system, rec.id) if health_of is not None else None
        if health is not None:
            state["Health"] = health
    return state, run.restart_count
