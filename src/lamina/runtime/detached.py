"""A container run by its monitor: `runc run --detach`, then keep it until it exits.

The monitor (lamina/monitor.py) is a child subreaper, so when `runc run --detach`
exits after starting the container, the container's init is re-parented to it:
waiting for that init is the only way to learn its exit status (128+n for a
signal, as docker reports it).  Its stdout/stderr are pipes we hold the read
ends of (or, with -t, the pty master runc hands over the console socket), drained
into `sink.write(stream, data)` (the json-file log) while it runs.  We never wait
for EOF on them: once the init is gone we read what is buffered, without
blocking, and close (another process the container left may hold a write end).
"""

from __future__ import annotations

import os

from lamina.runtime.process import Subreaper, adopt, exit_code, fresh, kill_and_reap, raise_if_failed, read_pid, spawn
from lamina.runtime.relay import relay as _relay


def run_detached(runtime, container_id: str, bundle_dir: str, *, tty: bool, sink, started,
                 after_exit=None, stdin: bool = False, stdin_once: bool = False, keep=None, learn=None) -> int:
    """Start the container detached, call `started(init_pid)` once it runs, relay its
    output into `sink` until its init exits; returns the exit code.  Raises the
    runtime's error (ContainerCommandNotFound, ...) when it could not start.
    `after_exit()` runs between the exit and the runtime's delete (its cgroup is
    still there: the OOM-kill count).  `stdin` (-i): input from attach clients through
    runtime/stdinrelay.py, closed when one leaves with `stdin_once`.  `keep(outputs,
    init, sink)`: what relays the output and returns the init's wait status, when
    there is no stdin to relay (the monitor's: it may exec its lean relay instead).
    `learn(container_id)` runs once it runs (the compiled seccomp filter: runtime/seccompcache.py)."""
    from lamina.runtime.oci import _check_id

    _check_id(container_id)
    log = fresh(os.path.join(bundle_dir, "runtime.log"))
    pidfile = fresh(os.path.join(bundle_dir, "container.pid"))
    argv = [*runtime._base(log), "run", "--detach", "--pid-file", pidfile]
    outputs: dict[int, str] = {}
    console = None
    init = None
    relay = None
    try:
        if stdin:
            from lamina.runtime.stdinrelay import StdinRelay

            relay = StdinRelay(bundle_dir, once=stdin_once)
        with Subreaper():
            if tty:
                from lamina.runtime.console import ConsoleSocket

                console = ConsoleSocket(bundle_dir).__enter__()
                argv += ["--console-socket", console.path]
                runc = spawn([*argv, "--bundle", bundle_dir, container_id], stdin=None)
            else:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                outputs = {out_r: "stdout", err_r: "stderr"}
                try:
                    runc = spawn([*argv, "--bundle", bundle_dir, container_id],
                                 stdin=relay.read_end if relay is not None else None, stdout=out_w, stderr=err_w)
                finally:
                    os.close(out_w)
                    os.close(err_w)
                    if relay is not None:
                        relay.spawned()
            try:
                status = os.waitpid(runc, 0)[1]  # returns once the container runs
            except BaseException:
                kill_and_reap(runc)
                raise
            raise_if_failed(os.waitstatus_to_exitcode(status), log, f"{runtime.name} run")
            init = read_pid(pidfile)
            adopt(init)
        if learn is not None:
            learn(container_id)
        # init, orphaned when runc exited, is our child now; the flag goes, so that a process
        # an exec's runc leaves behind (a health probe's, runc killed first) is not adopted
        # too: as a zombie in the container's pid namespace that nobody here waits for, it
        # would hold the init's exit (zap_pid_ns_processes) and the monitor with it
        if console is not None:
            outputs = {console.receive_master(): "stdout"}
            console.__exit__(None, None, None)
            console = None
            if relay is not None:
                relay.use_terminal(next(iter(outputs)))
                sink = _Tee(sink, relay)
        started(init)
        if relay is None and keep is not None:
            status = keep(outputs, init, sink)
        else:
            status = _relay(outputs, init, sink, relay)
        init = None
        if after_exit is not None:
            after_exit()
    finally:
        for fd in outputs:
            os.close(fd)
        if relay is not None:
            relay.close()
        if console is not None:
            console.__exit__(None, None, None)
        if init is not None:  # interrupted: the container must not run on unkept
            runtime.discard(container_id, init)
        if os.path.lexists(os.path.join(runtime.state_root, container_id)):
            runtime.delete(container_id, force=True, missing_ok=True)
    return exit_code(status)


class _Tee:
    """The log, and a tty's attach clients (runtime/stdinrelay.py)."""

    def __init__(self, sink, relay) -> None:
        self.sink, self.relay = sink, relay

    def write(self, stream: str, data: bytes) -> None:
        self.relay.output(data)
        self.sink.write(stream, data)
