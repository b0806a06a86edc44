"""A foreground run that keeps the stopped container, for a runtime without `run --keep`.

runc's `run --keep` leaves the container, and its cgroup, after the init exits, so
that the OOM-kill count can be read before the delete (runtime/cgroups.py OomProbe).
crun has no such flag: there we start the container with `run --detach` (a
detached container stays until it is deleted) on our own stdio, or on pipes teed
into the container's log, take its init as our child (we are its subreaper while
the runtime starts it), pass signals on, and wait for it, as `runc run` would.
"""

from __future__ import annotations

import os

from lamina.runtime.process import (ForwardSignals, Subreaper, adopt, exit_code, fresh, kill_and_reap, raise_if_failed,
                                    read_pid, spawn)


def run_kept(runtime, container_id: str, bundle_dir: str, log: str, *, interactive: bool, log_sink=None,
             learn=None) -> int:
    """The init's exit code as docker reports it (a signal n is 128+n); the stopped
    container is left for the caller to delete.  Raises the runtime's error when it
    could not start the container.  `learn(container_id)` runs once it runs."""
    pidfile = fresh(os.path.join(bundle_dir, "container.pid"))
    argv = [*runtime._base(log), "run", "--detach", "--pid-file", pidfile, "--bundle", bundle_dir, container_id]
    outputs: dict[int, str] = {}
    stdout, stderr = 1, 2
    if log_sink is not None:
        out_r, stdout = os.pipe()
        err_r, stderr = os.pipe()
        outputs = {out_r: "stdout", err_r: "stderr"}
    init = None
    try:
        with Subreaper():
            try:
                pid = spawn(argv, stdin=0 if interactive else None, stdout=stdout, stderr=stderr)
            finally:
                if outputs:
                    os.close(stdout)
                    os.close(stderr)
            try:
                code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # returns once the container runs
            except BaseException:
                kill_and_reap(pid)
                raise
            raise_if_failed(code, log, f"{runtime.name} run")
            init = read_pid(pidfile)
            adopt(init)
        if learn is not None:
            learn(container_id)
        with ForwardSignals(init) as forward:
            forward.same_group = False  # the detached container has a session of its own
            if outputs:
                from lamina.runtime.relay import relay
                from lamina.runtime.tee import OutputAndLog

                status = relay(outputs, init, OutputAndLog(log_sink))
            else:
                status = os.waitpid(init, 0)[1]
        init = None
    finally:
        for fd in outputs:
            os.close(fd)
        if init is not None:  # interrupted: the container must not run on unkept
            runtime.discard(container_id, init)
    return exit_code(status)
