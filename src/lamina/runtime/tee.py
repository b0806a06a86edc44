"""A foreground container's output teed into its log: what `docker run` (not -t)
shows and also keeps for `docker logs`.

`runc run` gets pipes for the container's stdout and stderr instead of ours (the
container then sees pipes, as under dockerd); we copy each read to our own fd 1 or 2
and into the sink (logs/jsonfile.py's writer) until runc exits, then what is still
buffered, never waiting for an EOF (a process the container left may hold a write
end): runtime/detached.py's relay, with runc's pid where the monitor has the init's.
"""

from __future__ import annotations

import errno
import os

from lamina.runtime.process import ForwardSignals, kill_and_reap, spawn


class OutputAndLog:
    """Each read to our stdout/stderr, then to the log.  A closed stdout (`run … | head`)
    ends the copy to it, not the container nor its log."""

    def __init__(self, log) -> None:
        self.log = log
        self.fds = {"stdout": 1, "stderr": 2}

    def write(self, stream: str, data: bytes) -> None:
        fd = self.fds.get(stream)
        if fd is not None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.EBADF):
                    raise
                self.fds[stream] = None
        self.log.write(stream, data)


def run_teed(argv: list[str], *, stdin: int | None, log) -> int:
    """Spawn the runtime's foreground `run` with output pipes, copy its output to ours
    and into `log` while signals to us are passed on; its wait status."""
    from lamina.runtime.relay import relay as _relay

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    outputs = {out_r: "stdout", err_r: "stderr"}
    try:
        try:
            pid = spawn(argv, stdin=stdin, stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            with ForwardSignals(pid):
                status = _relay(outputs, pid, OutputAndLog(log))
            pid = None
        finally:
            if pid is not None:  # interrupted: do not leave runc behind
                kill_and_reap(pid)
    finally:
        for fd in outputs:
            os.close(fd)
    return status
