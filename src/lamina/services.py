"""Containers as services: starting one under its monitor, and stop/kill/wait from outside.

`Monitor` execs a monitor (lamina/monitor.py; `Monitor.forked`, for `run -d`, forks
it), which boots while `run -d` still creates the container, then gets its ID on one pipe and answers on another with
one word: the container runs ("ok"), or why it could not start (its exit code
and runc's message); `start_detached` does both for an existing container.  The monitor is then
the container's keeper; these functions act on it only through the runtime
(signals), the store (the "stopped by user" flag its restart policy reads) and
the monitor's pid (whose exit means everything it owned is cleaned up).

The monitor is exec'd by name, as the watchdog execs the reaper (and forked with
the CLI's function that enters it): importing it would close a cycle (monitor ->
lifecycle -> here).
"""

from __future__ import annotations

import os
import time

from lamina.errors import Conflict, RuntimeFailure
from lamina.store import runstate

_SIGKILL = 9  # Linux's number (the signal module's enum costs `run -d` ~4 ms)

BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from lamina.monitor import main; "
        "sys.exit(main(sys.argv[2:]))")


def start_detached(system, rec, *, user_start: bool = True) -> None:
    """Start `rec` under a new monitor; returns once it runs.  Raises the runtime's
    error (ContainerCommandNotFound: 127, ...) when it could not start."""
    if rec.running:
        return  # docker: starting a running container is no error
    Monitor(system, user_start=user_start).start(rec)


class Monitor:
    """A monitor spawned ahead of its container: it boots (interpreter, imports, store)
    while the caller still creates the container (`run -d`), then gets the ID over
    a pipe (`start`) and answers on the ready pipe once the container runs.  Without
    an ID (`cancel`, or the caller died) it exits."""

    def __init__(self, system, *, user_start: bool = True) -> None:
        import lamina
        from lamina.runtime.process import spawn

        src = os.path.dirname(os.path.dirname(os.path.abspath(lamina.__file__)))
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        try:
            # -S: no site (the monitor's memory stays small); lamina's source is put on the path instead
            argv = [_python(), "-S", "-c", BOOT, src, system.root, system.runtime.path, str(ready_w), str(go_r),
                    "start" if user_start else "boot"]
            os.set_inheritable(ready_w, True)
            os.set_inheritable(go_r, True)
            self.pid = spawn(argv, stdin=None, stdout=_devnull(), stderr=_devnull(), pass_fds=(ready_w, go_r))
        except BaseException:
            os.close(ready_r)
            os.close(go_w)
            raise
        finally:
            os.close(ready_w)
            os.close(go_r)
        self._ready, self._go, self._tie, self._forked = ready_r, go_w, None, False

    @classmethod
    def forked(cls, child) -> Monitor:
        """The same, forked from this process instead of exec'd: no interpreter to start,
        nothing imported twice (`run -d`, ~20 ms).  Only for a single-threaded process
        that has not opened its store yet (SQLite's state must not cross a fork): the
        child runs `child(ready_fd, go_fd)` (lamina/monitor.py `serve`) and exits.  It does
        not fork away (~1 ms): `pid` is the monitor's own, and it stays this process's
        child, reaped here only if it ended already (`cancel`; a CLI exits right after)."""
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(ready_r)
                os.close(go_w)
                code = child(ready_w, go_r)
            finally:
                os._exit(code or 0)  # never back into the caller's frames
        os.close(ready_w)
        os.close(go_r)
        self = cls.__new__(cls)
        self.pid, self._ready, self._go, self._tie, self._forked = pid, ready_r, go_w, None, True
        return self

    def keeper(self) -> int | None:
        """A forked monitor's pid (an exec'd one forks away from `pid`: None)."""
        return self.pid if self._forked else None

    def start(self, rec, waiting=None, *, tied: bool = False, network=None) -> None:
        """Raises MonitorGone when it had died (killed while it waited) before it could
        read the ID: the container is untouched, another monitor may run it.
        `waiting()`: what the caller does once the ID is sent, while the container starts.
        `tied` (a monitor forked with it): the ID's pipe stays open, the tie that ends
        the run if this process ends without `detached()` (lamina/tether.py).
        `network()`: attaches the container's network here meanwhile, the line for the
        monitor (lamina/network/handoff.py)."""
        gone = False
        try:
            try:
                os.write(self._go, rec.id.encode() + (b" net\n" if network is not None else b"\n"))
                if network is not None:
                    os.write(self._go, network())
            except BrokenPipeError:
                gone = True  # it died booting or waiting: the ready pipe may say why
            if tied and not gone:
                self._tie = self._go  # closed with this process: the kernel's word that it ended
            else:
                os.close(self._go)
            self._go = None
            if waiting is not None:
                waiting()
            word = _read_all(self._ready)
        finally:
            self.cancel()
        if word.startswith(b"ok"):
            return
        if gone and not word:
            raise MonitorGone("the container's monitor exited before the container started")
        code, _, message = word.decode("utf-8", "replace").partition(" ")
        raise _start_error(int(code) if code.isdigit() else 125,
                           message.strip() or "the container's monitor exited before the container started")

    def answered(self, timeout: float) -> bool:
        """Whether its answer (started, or why not) is there to read, waiting up to
        `timeout` seconds: for a start's `waiting()`."""
        import select

        ready = select.poll()
        ready.register(self._ready, select.POLLIN)
        return bool(ready.poll(int(timeout * 1000)))

    def detached(self) -> None:
        """A tied run's client detached: the container runs on (lamina/tether.py)."""
        tie, self._tie = self._tie, None
        if tie is not None:
            try:
                os.write(tie, b"d")  # lamina/tether.py's RELEASE
            except OSError:
                pass
            os.close(tie)

    def cancel(self) -> None:
        for fd in (self._go, self._ready):
            if fd is not None:
                os.close(fd)
        self._go = self._ready = None
        if self.pid is not None:
            # an exec'd one forks away at once: no zombie, no long wait; a forked one runs on
            os.waitpid(self.pid, os.WNOHANG if self._forked else 0)
            self.pid = None


class MonitorGone(RuntimeFailure):
    """A booted monitor was gone before it got its container's ID."""


def _python() -> str:
    import sys

    return sys.executable


_NULL: list[int] = []


def _devnull() -> int:
    if not _NULL:
        _NULL.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
    return _NULL[0]


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _start_error(code: int, message: str):
    from lamina.errors import ContainerCommandNotExecutable, ContainerCommandNotFound

    if code == 127:
        return ContainerCommandNotFound(message)
    if code == 126:
        return ContainerCommandNotExecutable(message)
    return RuntimeFailure(message)


# ---------------------------------------------------------------------- stop, kill, wait


def keeper(system, rec) -> int | None:
    """The pid whose exit means the container is down and cleaned up: its monitor,
    or a foreground run's watchdog."""
    from lamina.store.db import pid_alive

    state = runstate.get(system.db, rec.id)
    for pid in (state.monitor_pid, rec.pid):
        if pid and pid_alive(pid):
            return pid
    return None


def stop(system, rec, timeout: float | None = None) -> None:
    """docker stop: StopSignal, SIGKILL after `timeout` seconds (the container's
    StopTimeout, else 10; negative waits for ever), then wait until its keeper has
    cleaned up.  No restart follows.  A stopped container is no error."""
    from lamina.signals import stop_signal

    if not rec.running:
        return
    runstate.update(system.db, rec.id, stop_requested=1)
    if timeout is None:
        timeout = rec.config.get("StopTimeout")
        timeout = 10 if timeout is None else timeout
    if rec.state == "running":
        _signal(system, rec, stop_signal(rec))
        if wait_down(system, rec, None if timeout < 0 else timeout):
            return
        _signal(system, rec, _SIGKILL)
    wait_down(system, rec, None)


def kill(system, rec, sig: str | int = "KILL") -> None:
    """docker kill: `sig` to the container's init (a restarting container just stops
    restarting).  Not running: docker's Conflict."""
    from lamina.signals import parse_signal

    num = parse_signal(sig)
    if not rec.running:
        raise Conflict(f"Cannot kill container: {rec.name}: Container {rec.id} is not running")
    runstate.update(system.db, rec.id, stop_requested=1)
    if rec.state == "running":
        _signal(system, rec, num)
    if num == _SIGKILL:
        wait_down(system, rec, 10)


def halt(system, rec) -> None:
    """Before `rm -f` reaps a running container: a monitor's container is killed and
    its monitor let finish (so its cleanup does not race the removal)."""
    monitor = runstate.get(system.db, rec.id).monitor_pid
    if monitor is None or monitor == os.getpid():
        return
    runstate.update(system.db, rec.id, stop_requested=1)
    if rec.state == "running":
        _signal(system, rec, _SIGKILL)
    wait_down(system, rec, 10)


def _signal(system, rec, sig: int) -> None:
    from lamina.recovery import runtime_for
    from lamina.runtime.execproc import cgroups_path, frozen, resume
    from lamina.signals import stop_signal

    runtime = runtime_for(system, rec)
    try:
        if not _signal_init(system, rec, sig):
            runtime.kill(rec.id, sig)
    except RuntimeFailure:
        pass  # exited meanwhile (or not started yet): waiting tells
    # dockerd's killWithSignal: a paused container is resumed after SIGKILL or its stop
    # signal (any, without a StopSignal), so that it takes the signal (a frozen process
    # takes none, not even SIGKILL under cgroup v1); another one waits for `unpause`
    resumes = sig == _SIGKILL or not rec.config.get("StopSignal") or sig == stop_signal(rec)
    try:
        if resumes and frozen(cgroups_path(rec.id)):
            resume(runtime, rec.id)
    except RuntimeFailure:
        pass


def _signal_init(system, rec, sig: int) -> bool:
    """What `runc kill` does (the signal to the container's init), without starting a
    runtime process (~20 ms of `stop`): only for the init its monitor recorded, seen
    to be the live monitor's child in another pid namespace, and signalled through a
    pidfd taken before that check (a recycled pid cannot be hit).  False when any of
    it does not hold (a foreground run, rootless, gone): the runtime does it then."""
    from lamina import rootless

    state = runstate.get(system.db, rec.id)
    init, monitor = state.init_pid, state.monitor_pid
    if not init or not monitor or rootless():
        return False
    try:
        fd = os.pidfd_open(init)
    except OSError:
        return False
    try:
        from lamina.runtime.process import parent_pid

        if parent_pid(init) != monitor or os.readlink(f"/proc/{init}/ns/pid") == os.readlink("/proc/self/ns/pid"):
            return False
        import _signal  # the C module: signal.py's enums cost ~4 ms

        _signal.pidfd_send_signal(fd, sig)
        return True
    except (OSError, ValueError, IndexError):
        return False
    finally:
        os.close(fd)


def wait_down(system, rec, timeout: float | None) -> bool:
    """Wait until the container's keeper has exited (or `timeout` seconds); True when it has."""
    import select

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid = keeper(system, rec)
        if pid is None:
            return True
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            # a zombie keeper (a child of ours, in tests) never becomes readable: poll in steps
            step = 0.25 if left is None else min(left, 0.25)
            ready = select.poll()
            ready.register(fd, select.POLLIN)
            ready.poll(int(step * 1000))
        finally:
            os.close(fd)
        if deadline is not None and time.monotonic() >= deadline:
            return keeper(system, rec) is None


def wait(system, rec, died=None) -> int:
    """docker wait: block until it exits; its exit code (also when --rm removes it
    right after: the code was recorded first).  A container its restart policy brings
    back counts as running, so the wait ends at its next exit, Restarting or not (as
    dockerd's condition "not-running": its waiters are woken at every exit).  An exit
    whose Restarting window fell between two looks (a loaded machine: the next run
    clears the record's exit) is still seen by `died()`: the code of a `die` event
    journaled since the wait began, or None (engine/journal.py `die_watch`)."""
    from lamina.errors import NoSuchContainer

    before = rec  # as the caller resolved it: an exit since then ends the wait
    while True:
        try:
            rec = system.containers.get(rec.id)
        except NoSuchContainer:
            return rec.exit_code or 0
        if not rec.running or exited_since(rec, before):
            return rec.exit_code or 0
        code = None if died is None else died()
        if code is not None:
            return code
        wait_down(system, rec, 0.05)


def exited_since(rec, before) -> bool:
    """Whether `rec`, read again after `before`, recorded a run's exit since: also an
    exit its restart policy follows with a new run (state Restarting, or running again
    once that run ended too)."""
    return rec.finished is not None and rec.state != "running" \
        and (rec.finished, rec.started) != (before.finished, before.started)


# ---------------------------------------------------------------------- restart policy


def restart_policy(host_config: dict) -> tuple[str, int]:
    policy = host_config.get("RestartPolicy") or {}
    return policy.get("Name") or "no", int(policy.get("MaximumRetryCount") or 0)


def should_restart(host_config: dict, code: int, restarts: int, stopped_by_user: bool) -> bool:
    """moby's restartmanager.ShouldRestart."""
    name, limit = restart_policy(host_config)
    if stopped_by_user:
        return False
    if name == "always" or name == "unless-stopped":
        return True
    if name == "on-failure":
        return code != 0 and (limit == 0 or restarts < limit)
    return False


def restarts_after(host_config: dict, code: int, restarts: int, stopped_by_user: bool) -> bool:
    """The policy's word at a monitored run's exit, asked by containers.set_exited in the
    transaction that records it (Restarting then, never Exited between): --rm never."""
    return not host_config.get("AutoRemove") and should_restart(host_config, code, restarts, stopped_by_user)


def starts_at_boot(rec, state) -> bool:
    """What docker's daemon restarts when it starts (`start --all`): `always`, and
    `unless-stopped` not stopped by a user; only containers not running."""
    name, _ = restart_policy(rec.host_config)
    if rec.running:
        return False
    return name == "always" or (name == "unless-stopped" and not state.stop_requested)
