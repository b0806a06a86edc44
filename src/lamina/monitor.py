"""A detached container's monitor: the process that keeps it while no command does.

There is no daemon, so `run -d` and `start` exec one monitor per container (as
Podman's conmon): `python -S -c ... ROOT RUNTIME READY_FD GO_FD start|boot`
(lamina/services.py `Monitor`).  It forks away from its parent (which the CLI
reaps at once), starts a new session, puts its stdio on /dev/null and closes
every fd it inherited but its two pipes; it imports what it needs and opens the
store, then reads the container's ID on the go pipe (`run -d` creates the
container meanwhile: EOF instead means there is none to run; on the default bridge the CLI
then attaches its network, and the endpoint follows the ID: network/handoff.py).  Then it
runs the container through
the one runner (lamina/runner.py `run_container`, detached: runtime/detached.py)
as a child subreaper, so the container's init is its child and its exit status
is known; the runner's watchdog reaps the container if the monitor is killed.

Once the container runs it writes "ok" on the ready pipe (or the exit code and
runc's message when it could not start) and closes it: the CLI returns then.
`run -d` forks it instead (`serve`, before the CLI opens its store): no second
interpreter to start, no fork away (its CLI exits right after).  With nothing else to
do while the container runs, it execs
its lean relay and is exec'd back once the container exited (lamina/handover.py:
~9 MB per container instead of ~13).  Otherwise it drains the container's output
into the json-file log itself, runs the HEALTHCHECK
on a thread (lamina/health.py), records the exit code (Restarting straight away when
the restart policy brings it back: the decision and RestartCount+1 in the transaction
that records the exit, as dockerd; never Exited between), and after the runner's own
cleanup (runc delete, unmount, network release) applies `--rm` or the restart's
back-off: 100 ms doubling to a minute, reset after 10 s up.
A user's stop/kill/rm -f sets the "stopped by user" flag it reads: no restart; a
restart that fails to start ends it too (Exited with the last run's code, as dockerd).
"""

from __future__ import annotations

import os
import sys
import time

_BACKOFF_FIRST, _BACKOFF_MAX, _RESET_AFTER = 0.1, 60.0, 10.0


def main(args: list[str]) -> int:
    root, runtime, ready, go, mode = args[:5]
    if mode == "resume":
        return _resume(root, runtime, args[5:])

    def open_system():
        from lamina.system import System

        return System(root, runtime=runtime)

    return serve(open_system, int(ready), int(go), mode)


def serve(open_system, ready_fd: int, go_fd: int, mode: str, *, tied: bool = False, forked: bool = False,
          handed_network: bool = False) -> int:
    """The monitor's life: `open_system()` gives its store (its own: never a connection
    of the process it was forked from).  Also entered in a child `run -d` forks
    before it opens the store (lamina/services.py `Monitor.forked`).  `tied`: a
    foreground run's, killed if its CLI vanishes without detaching (lamina/tether.py).
    `forked` (that child): no fork away, its CLI knows our pid (services.Monitor.keeper);
    `handed_network`: the CLI is expected to attach the network itself (network/handoff.py)."""
    if not forked and os.fork():
        os._exit(0)  # the CLI reaps this parent at once; the monitor is an orphan of init
    from lamina.monitorproc import detach, hold_namespace, read_id, sole_monitor

    detach((ready_fd, go_fd))
    # booted while the CLI creates the container: the store first (the CLI closes its own
    # while it waits: not as the last connection, which would checkpoint and drop the WAL
    # that the next command then makes and syncs again), the imports...
    system = open_system()
    import lamina.lifecycle  # noqa: F401
    import lamina.runner  # noqa: F401
    import lamina.runtime.detached  # noqa: F401
    import lamina.runtime.rootfs  # noqa: F401
    import lamina.runtime.seccomp  # noqa: F401
    import lamina.runtime.spec  # noqa: F401
    import lamina.runtime.watchdog  # noqa: F401
    _preload(network=not handed_network)
    from lamina.errors import LaminaError
    from lamina.store import runstate

    # built now, not once the ID is there (the start reads images and layers)
    system.runtime, system.snapshotter, system.images, system.layers, system.containers  # noqa: B018
    container_id, pending = read_id(go_fd, keep=tied)  # ...then the ID it is to run
    if not container_id:
        system.close()
        return 0  # the CLI failed to create it, or died: nothing to keep
    tether = None
    if tied:
        from lamina.tether import Tether

        tether = Tether(go_fd)
    try:
        if not sole_monitor(system, container_id, _LOCK):
            _tell(ready_fd, b"ok")  # another monitor keeps it running: docker's start of a running one
            return 0
        fields = {"monitor_pid": os.getpid(), "stop_requested": 0, "init_pid": None, "error": ""}
        if mode == "start":
            fields["restart_count"] = 0  # a user's start resets docker's RestartCount
        runstate.update(system.db, container_id, **fields)
        held = hold_namespace()
        try:
            return _supervise(system, container_id, ready_fd, tether=tether, pending=pending)
        finally:
            runstate.update(system.db, container_id, monitor_pid=None, init_pid=None)
            if held:
                from lamina.userns import unhold

                unhold(held)
    except LaminaError as e:  # removed under us (rm -f while starting): nothing left to keep
        _tell(ready_fd, f"{e.exit_code} {e}".encode())
        return 1
    except Exception as e:  # a bug or a broken store: the CLI says why rather than "failed"
        _tell(ready_fd, f"125 the container's monitor failed: {e}".encode())
        return 1
    finally:
        _tell(ready_fd, b"125 the container's monitor failed")  # no-op once told
        if pending is not None:  # the CLI's attach, unused: not started here
            pending.drop(system, container_id)
        system.close()


def _preload(network: bool = True) -> None:
    """What the start imports once it has the ID (its network, the rootfs walk, the
    log writer), imported while the CLI still creates the container: off the path
    between the ID and runc (~10 ms).  A monitor that keeps no network gives them
    back with the hand-over's exec (lamina/handover.py).  Not the attach code when
    the CLI attaches the network (`network` False): its endpoint's value only."""
    import lamina.libc  # noqa: F401 - the subreaper's prctl, the namespaces' setns
    import lamina.archive.inroot  # noqa: F401
    import lamina.image  # noqa: F401
    import lamina.logs.jsonfile  # noqa: F401
    import lamina.logs.options  # noqa: F401
    import lamina.network.endpointrecord  # noqa: F401
    if network:
        import lamina.network.endpoint  # noqa: F401
    import lamina.network.resolvconf  # noqa: F401


def _resume(root: str, runtime: str, rest: list[str]) -> int:
    """Exec'd by the lean relay (runtime/relay.py) once the container's init exited:
    finish the run it handed over (as the runner would have), then go on supervising
    (`--rm`, the restart policy) as the monitor that started it (lamina/handover.py)."""
    from lamina.handover import finish_run
    from lamina.runtime.watchdog import Watchdog
    from lamina.store import runstate
    from lamina.system import System

    container_id, watchdog_pid, watchdog_fd, lock_fd, started_at, delay, status, deleting = rest
    _told.append(True)  # the CLI was told when it started
    _LOCK.append(int(lock_fd))
    system = System(root, runtime=runtime)
    try:
        rec = system.containers.get(container_id)
        restart = None
        if rec.host_config.get("AutoRemove") or (rec.host_config.get("RestartPolicy") or {}).get("Name") \
                not in (None, "", "no"):
            # imported before the exit is recorded: the removal or the restart follows at once
            import lamina.engine.journal  # noqa: F401
            import lamina.lifecycle  # noqa: F401
            from lamina.services import restarts_after as restart  # Restarting at the exit, never Exited
        code = finish_run(system, rec, int(status), Watchdog.adopt(int(watchdog_pid), int(watchdog_fd)),
                          int(deleting), restart)
        return _supervise(system, container_id, -1, resumed=(code, float(started_at), float(delay)))
    finally:
        try:
            runstate.update(system.db, container_id, monitor_pid=None, init_pid=None)
        finally:
            system.close()


_LOCK: list[int] = []
_told: list[bool] = []


def _tell(fd: int, word: bytes) -> None:
    """The one word for the CLI waiting on the ready pipe, then EOF."""
    if _told:
        return
    _told.append(True)
    try:
        os.write(fd, word)
    except OSError:
        pass  # the CLI was killed: the container runs on, kept by us
    os.close(fd)


def _supervise(system, container_id: str, ready_fd: int, resumed: tuple | None = None, tether=None,
               pending=None) -> int:
    """Run the container, then --rm or restart it as its policy says.  `resumed`: the
    (exit code, start time, back-off delay) of a run the lean relay handed back;
    `tether`: the first run's tie to a foreground CLI."""
    from lamina.errors import LaminaError

    delay = 0.0
    first = resumed is None
    while True:
        if resumed is not None:
            code, started_at, delay = resumed
            resumed = None
        else:
            from lamina.lifecycle import start  # not for a resumed run that ends here: `stop` waits for it

            rec = system.containers.get(container_id)
            started_at = time.monotonic()
            watch = _Run(system, rec, ready_fd, started_at, delay, tether if first else None)
            watch.pending, pending = pending, None
            watch.last_code = None if first else code  # what a failed restart ends with (runner.py)
            try:
                code = start(system, rec, detached=watch)
            except LaminaError as e:
                code = e.exit_code if e.exit_code in (126, 127) else 128  # State.Error: lifecycle.start's
                if first:
                    _tell(ready_fd, f"{e.exit_code} {e}".encode())
                    if rec.host_config.get("AutoRemove"):
                        from lamina.lifecycle import remove

                        remove(system, system.containers.get(container_id), force=True)
                    return 1
                if not watch.exited:  # a restart that failed to start: dockerd gives its policy up
                    system.containers.set_exited(container_id, watch.last_code)
                    return 0
            finally:
                watch.stop_health()
        first = False
        rec = system.containers.get(container_id)
        _died(system, rec, code)
        if rec.host_config.get("AutoRemove"):
            from lamina.lifecycle import remove

            remove(system, rec, force=True, exited_cleanly=True)
            return 0
        if rec.state != "restarting":  # its exit was recorded as final: the policy's word, or a user's stop
            return 0
        # moby's restartmanager: 100 ms, doubled per restart up to a minute, reset after 10 s up
        delay = _BACKOFF_FIRST if delay == 0 or time.monotonic() - started_at >= _RESET_AFTER \
            else min(delay * 2, _BACKOFF_MAX)
        if not _sleep_unless_stopped(system, container_id, delay):
            system.containers.set_exited(container_id, rec.exit_code or 0)
            return 0


def _died(system, rec, code: int) -> None:
    """docker's `die` event, with the exit code: /events shows it, and an API wait for a
    --rm container reads the code there once the record is gone."""
    from lamina.engine.journal import record

    record(system, "container", "die", rec.id, {"exitCode": str(code), "image": rec.image_ref, "name": rec.name})


def _sleep_unless_stopped(system, container_id: str, delay: float) -> bool:
    """The back-off, cut short by a user's stop (False then)."""
    from lamina.store import runstate

    end = time.monotonic() + delay
    while True:
        if runstate.get(system.db, container_id).stop_requested:
            return False
        left = end - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.05))


class _Run:
    """What one run of the container hands the runner: where its output goes and
    what happens once it runs (ready word, init pid, health checks)."""

    def __init__(self, system, rec, ready_fd: int, started_at: float = 0.0, delay: float = 0.0,
                 tether=None) -> None:
        self.system = system
        self.rec = rec
        self.ready_fd = ready_fd
        self.started_at, self.delay = started_at, delay  # the back-off's, for a resumed monitor
        self.sink = _log_sink(system, rec)
        self._health = None
        self.watchdog = self.oom = self.finish = None  # the runner's (runner.py), for the hand-over
        self.exited = False  # once the runner recorded this run's exit (through `restart`)
        self.ran = False  # once the runtime started it: a later error is not a refused start (runner.py)
        self.tether = tether
        self.pending = None  # the first run's network, attached by the CLI (network/handoff.py)

    def attach(self, system, container_id: str, network: str, rec=None):
        """The runner's attach (runner.py): the endpoint the CLI attached, when it did."""
        from lamina.network import attach

        pending, self.pending = self.pending, None
        ep = pending.take(system, container_id) if pending is not None else None
        return ep if ep is not None else attach(system, container_id, network, rec=rec)

    def restart(self, host_config: dict, code: int, restarts: int, stopped_by_user: bool) -> bool:
        """The restart policy's word at this run's exit, asked by containers.set_exited
        (runner.py) in the transaction that records it: Restarting then, never Exited."""
        from lamina.services import restarts_after

        self.exited = True
        cut = self.tether is not None and self.tether.release()  # its CLI killed: no restart
        return restarts_after(host_config, code, restarts, stopped_by_user or cut)

    def started(self, init_pid: int) -> None:
        from lamina.store import runstate

        self.ran = True
        runstate.update(self.system.db, self.rec.id, init_pid=init_pid, error="")
        _tell(self.ready_fd, b"ok")
        if self.tether is not None:
            self.tether.started(init_pid)
        if _has_healthcheck(self.rec.config):
            from lamina.health import start_thread

            self._health = start_thread(self.system, self.rec)
        if not self._lean():
            _give_back_memory()

    def _lean(self) -> bool:
        """Whether nothing but relaying the output needs this process while the container
        runs: no health checks, no stdin relay (-i), no tie to a CLI, no hook after the run,
        not rootless (its user namespace is held here)."""
        from lamina import rootless

        return self._health is None and not self.rec.config.get("OpenStdin") and self.tether is None \
            and self.finish is None \
            and self.watchdog is not None and bool(_LOCK) and not rootless()

    def keep(self, outputs: dict[int, str], init: int, sink) -> int:
        """Relay the running container's output until its init exits; its wait status.
        When that is all this process has left to do (`_lean`), it execs the lean relay
        instead (runtime/relay.py): its memory goes with the exec."""
        from lamina.runtime.relay import relay

        if self._lean() and sink is self.sink:
            from lamina.handover import hand_over

            hand_over(self, _LOCK[0], outputs, init)  # returns only if the exec failed
            sink = self.sink = _log_sink(self.system, self.rec)  # the hand-over closed it
        return relay(outputs, init, sink)

    def stop_health(self) -> None:
        if self.pending is not None:  # it did not get as far as its network
            self.pending.drop(self.system, self.rec.id)
            self.pending = None
        if self.tether is not None:
            self.tether.release()
        if self._health is not None:
            self._health()  # health.start_thread's stop
            self._health = None
        close = getattr(self.sink, "close", None)
        if close is not None:
            try:
                close()
            except OSError:
                pass


def _give_back_memory() -> None:
    """The monitor lives as long as its container: what starting it allocated and
    freed (the bundle, the seccomp profile, imports' garbage) goes back to the
    system (glibc keeps freed heap otherwise), through lamina/libc.py (loaded
    already: the subreaper's prctl)."""
    import gc

    gc.collect()
    try:
        from lamina import libc

        libc.function("malloc_trim", libc.ULong)(0)
    except (OSError, AttributeError):
        pass  # not glibc


class _Discard:
    def write(self, stream: str, data: bytes) -> None:
        pass


def _log_sink(system, rec):
    """docker's json-file log at `<container dir>/<id>-json.log` (lamina/logs), or
    nothing with `--log-driver none`."""
    from lamina.logs.options import open_writer

    writer = open_writer(rec.host_config, system.containers.path(rec.id), rec.id, record=rec)
    return _Discard() if writer is None else writer


def _has_healthcheck(config: dict) -> bool:
    test = (config.get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
