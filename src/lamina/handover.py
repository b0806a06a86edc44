"""A detached container's monitor hands the running container to its lean relay, and takes it back.

Starting a container and cleaning up after it need the whole engine (~13 MB in a
monitor); keeping it while it runs needs only its output relayed into the log.
So once it runs, a monitor with nothing else to do (lamina/monitor.py `_lean`)
execs runtime/relay.py in a bare `python -S` (~9 MB, mostly the interpreter's
shared pages).  exec keeps the pid (the record's monitor_pid), the children (the
container's init, the watchdog) and the fds made inheritable for it: the output
pipes or pty, the watchdog's pipe and the monitor lock.  Once the init exited the
relay execs the monitor again (`python -S -c services.BOOT ... resume ...`) with
the wait status, and `finish_run` does what the runner's frames, gone with the
first exec, would have done; the monitor then applies --rm or the restart policy.
Should any exec fail, the watchdog sees its pipe close and reaps as usual.
"""

from __future__ import annotations

import os
import sys


def hand_over(run, lock_fd: int, outputs: dict[int, str], init: int) -> None:
    """Exec the lean relay for `run` (monitor.py's _Run: system, rec, sink, watchdog,
    started_at, delay); returns only when the exec failed (the caller relays then)."""
    import lamina
    from lamina.runtime.relay import lean_argv
    from lamina.services import BOOT

    python = sys.executable
    src = os.path.dirname(os.path.dirname(os.path.abspath(lamina.__file__)))
    watchdog = run.watchdog
    resume = [python, "-S", "-c", BOOT, src, run.system.root, run.system.runtime.path, "-1", "-1", "resume",
              run.rec.id, str(watchdog.pid), str(watchdog._w), str(lock_fd), repr(run.started_at), repr(run.delay)]
    keep = (*outputs, watchdog._w, lock_fd)
    runtime = run.system.runtime
    # the runtime's delete starts at the exit, while the monitor starts again; not with a
    # memory limit: its OOM-kill count is read in the cgroup the delete removes
    delete = None if run.rec.host_config.get("Memory") else \
        [runtime.path, f"--root={runtime.state_root}", "delete", "--force", run.rec.id]
    _wait_strays({init, watchdog.pid})
    try:
        for fd in keep:
            os.set_inheritable(fd, True)
        spec = _writer_spec(run.sink)
        close = getattr(run.sink, "close", None)
        if close is not None:
            close()  # nothing is written to it yet: no output was read so far
        os.execv(python, lean_argv(python, src, outputs, init, spec, delete, resume))
    except OSError:
        for fd in keep:
            os.set_inheritable(fd, False)
        close = getattr(run.sink, "close", None)
        if close is not None:
            close()  # the caller opens it again


def finish_run(system, rec, status: int, watchdog, deleting: int = 0, restart=None) -> int:
    """What runtime/detached.py and runner.run_container do once the init exited, for
    the run handed over: the OOM-kill count, the runtime's delete, the network
    released, the rootfs unmounted, the exit code recorded, the watchdog let go.
    The exit is recorded last here (the runner records it before its cleanup): this
    process imports what the cleanup needs as it goes, and the next start or --rm must
    follow at once.  `restart`: the policy's decision (services.restarts_after) that
    containers.set_exited takes in its transaction: Restarting, never Exited between.
    `deleting`: the pid of the runtime's delete the relay started, if it did."""
    from lamina.network import mode, release

    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    oom = None
    try:
        try:
            if rec.host_config.get("Memory"):  # read before the runtime's delete removes its cgroup
                from lamina.runtime.cgroups import OomProbe

                oom = OomProbe(f"/lamina/{rec.id}")
                oom()
            if deleting:
                try:
                    os.waitpid(deleting, 0)
                except ChildProcessError:
                    pass
            if os.path.lexists(os.path.join(system.runtime.state_root, rec.id)):  # it failed: say why
                system.runtime.delete(rec.id, force=True, missing_ok=True)
        finally:
            try:
                if mode(rec.host_config.get("NetworkMode", "host")) not in ("host", "none"):
                    release(system, rec.id)
                system.snapshotter_for(rec).unmount(system.containers.path(rec.id))
            finally:
                system.containers.set_exited(rec.id, code, restart, None if oom is None else oom.killed)
    finally:
        watchdog.done()
    return code


def _writer_spec(sink):
    """How the lean relay opens the same json-file log again (lamina/logs/jsonfile.py's
    writer), or None for --log-driver none."""
    if not hasattr(sink, "max_file"):
        return None
    attrs = sink._attrs[len(b'"attrs":'):-1] if sink._attrs else None
    return sink.path, sink.max_size, sink.max_file, sink.compress, attrs


def _wait_strays(keep: set[int], patience: float = 1.0) -> None:
    """Children the start left to be reaped on a thread (network/restore.py's
    iptables-restore, gone in ms) are waited for here, a second at most: after the
    exec no thread would reap them (they would stay zombies while the container runs)."""
    import select
    import time

    deadline = time.monotonic() + patience
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
        for pid in pids:
            if pid in keep:
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue  # gone (and reaped) meanwhile
            try:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                if poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                    os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass  # its thread reaped it first
            finally:
                os.close(fd)
