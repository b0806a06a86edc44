"""Reaching a container's streams: `lamina attach` and the API's POST /containers/{id}/attach.

There is one way in.  A tty container created with stdin open has its monitor's relay
(runtime/stdinrelay.py): the raw terminal both ways, as a json-file log holds whole lines
only (a shell's prompt would never show).  Every other container's output is its
json-file log, followed from the moment of attaching; its input, when it was created
with stdin open, goes through the same relay (input only)."""

from __future__ import annotations

import time


def attachable(system, name: str):
    """The running container `name` for the attach verb, with docker's CLI refusals
    (its own words, bare: it checks the container before asking dockerd to attach)."""
    from lamina.engine.exec import is_paused
    from lamina.errors import UsageError

    rec = system.containers.resolve(name)
    if not rec.running:
        raise UsageError("You cannot attach to a stopped container, start it first")
    if is_paused(system, rec):
        raise UsageError("You cannot attach to a paused container, unpause it first")
    return rec


def uses_relay(rec) -> bool:
    """Whether the output comes over the relay (raw tty) rather than from the log."""
    return bool(rec.config.get("Tty") and rec.config.get("OpenStdin"))


def relay_dir(system, rec) -> str:
    return system.containers.path(rec.id) + "/bundle"


def connect_relay(system, rec, *, wait: bool = True, poll: float = 0.02):
    """A connection to the container's relay, or None when it has none.  With `wait`,
    until the run that `rec` saw (or, not started yet, its next one) has one: the relay
    is made once the container runs; None when that run ended first."""
    from lamina.errors import NoSuchContainer
    from lamina.runtime.stdinrelay import connect
    from lamina.store import runstate

    bundle, started = relay_dir(system, rec), rec.started
    while True:
        relay = connect(bundle)
        if relay is not None or not wait:
            return relay
        try:
            now = system.containers.get(rec.id)
        except NoSuchContainer:
            return None
        if not now.running and (now.started != started or rec.running):
            return None  # it ran and ended before we could connect
        if now.running and not runstate.get(system.db, rec.id).monitor_pid:
            return None  # a foreground run: it has no relay
        time.sleep(poll)


def output_alive(system, rec):
    """A callable telling whether the run attached to may still write: while it has not
    started since the attach (docker run and start -a attach first), then its log
    writer's life (the monitor closes the log last)."""
    from lamina.engine.logs import writer_alive
    from lamina.errors import NoSuchContainer

    started, was_running = rec.started, rec.running

    def alive() -> bool:
        try:
            now = system.containers.get(rec.id)
        except NoSuchContainer:  # removed (--rm): its monitor wrote the last line first
            return False
        if now.running or (not was_running and now.started == started):
            return True
        return writer_alive(system, rec.id)

    return alive


def forward_signal(system, rec, sig: int) -> None:
    """--sig-proxy: a signal the attached client received, to the container's init
    (docker's ContainerKill; gone already is no error)."""
    from lamina import services
    from lamina.errors import LaminaError, NotFound

    try:
        services.kill(system, system.containers.get(rec.id), sig)
    except (LaminaError, NotFound):
        pass


def exit_code(system, rec, since_ns: int | None = None) -> int:
    """The exit code of the run attached to, once it is over (docker's wait next-exit);
    with `since_ns` (when it started), also once --rm removed it."""
    from lamina import services
    from lamina.errors import NoSuchContainer

    code = services.wait(system, rec)
    if since_ns is not None:
        try:
            system.containers.get(rec.id)
        except NoSuchContainer:  # removed: its monitor journaled the code first
            from lamina.engine.journal import died_code

            return died_code(system.root, rec.id, since_ns, code)
    return code


def first_run_going(system, rec):
    """A callable telling whether the first run of `rec` (created, never started) has not
    exited yet: a foreground run under a restart policy is followed until then."""
    from lamina.errors import NoSuchContainer

    def going() -> bool:
        try:
            return system.containers.get(rec.id).finished is None
        except NoSuchContainer:
            return False

    return going


def first_exit_code(system, rec, since_ns: int, poll: float = 0.05) -> int:
    """The exit code of the first run of `rec` (created, never started; started after
    `since_ns`), once it is over: docker's `run` ends there even when the restart policy
    brings it back.  Its `die` event (the monitor journals one at each exit: by then the
    record may hold a later run's), or the recorded code when its monitor left none."""
    from lamina.engine.journal import read
    from lamina.errors import NoSuchContainer
    from lamina.services import keeper

    going = first_run_going(system, rec)
    while True:
        if not going():  # its exit is recorded; the die event follows it
            for event in read(system.root, since_ns):
                if event.get("Action") == "die" and event.get("id") == rec.id:
                    code = event["Actor"]["Attributes"].get("exitCode", "")
                    return int(code) if code.lstrip("-").isdigit() else 0
            try:
                now = system.containers.get(rec.id)
            except NoSuchContainer:
                return rec.exit_code or 0
            if keeper(system, now) is None:
                return now.exit_code or 0
        time.sleep(poll)
