"""A detached container's output relay, and the lean monitor that runs only it.

`relay` copies the container's stdout/stderr (pipes, or the pty master) into the
json-file log until its init exits.  The monitor (lamina/monitor.py) needs the
whole engine to start a container and to clean up after it, but while it runs
it only relays: so once the container runs it execs `main` here in a bare
`python -S`, which imports this module and the json-file writer, nothing else
(a monitor's memory is per container: conmon's is ~2 MB).  The pid stays the
same across exec, so the container's init stays its child, its fds (the output,
the watchdog's pipe, the monitor lock) stay open, and once the init has exited
and the output is drained it execs the monitor again with the wait status
(`resume`), which tears down and applies --rm or the restart policy.

Only os, select and errno are imported (lamina.errors alone would add ~1 MB).
"""

from __future__ import annotations

import errno
import os
import select

_CHUNK = 65536

# what Monitor-side code execs: `python -S -c BOOT SRC ARGS...`
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from lamina.runtime.relay import main; main(sys.argv[2:])"


def relay(outputs: dict[int, str], init: int, sink, stdin=None) -> int:
    """Copy output to `sink` (and attach clients' input to the container: `stdin`, a
    StdinRelay) until `init` exits; its wait status.  Never waits for EOF: once the
    init is gone what is buffered is read without blocking (another process the
    container left may hold a write end for ever)."""
    exited = os.pidfd_open(init)  # readable once it exits (also when it already has)
    try:
        poller = select.poll()
        poller.register(exited, select.POLLIN)
        live = dict(outputs)
        for fd in live:
            poller.register(fd, select.POLLIN)
        while True:
            if stdin is not None:
                stdin.arm(poller)
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            done = False
            for fd, mask in events:
                if fd == exited:
                    done = True
                elif stdin is not None and stdin.owns(fd) and fd not in live:
                    stdin.handle(fd, poller, mask)
                elif fd in live and not copy(fd, live[fd], sink):
                    poller.unregister(fd)
                    del live[fd]
            if done:
                break
        for fd, stream in live.items():  # what is buffered, never waiting for an EOF
            os.set_blocking(fd, False)
            while copy(fd, stream, sink):
                pass
        return os.waitpid(init, 0)[1]
    finally:
        os.close(exited)


def copy(fd: int, stream: str, sink) -> bool:
    """One read from `fd` into the sink; False at EOF (or the pty's EIO), or nothing left."""
    try:
        data = os.read(fd, _CHUNK)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno == errno.EIO:  # a pty whose last slave closed
            return False
        raise
    if not data:
        return False
    try:
        sink.write(stream, data)
    except OSError:
        pass  # a full disk loses log lines, never the container
    return True


def lean_argv(python: str, src: str, outputs: dict[int, str], init: int, log, delete: list[str] | None,
              resume: list[str]) -> list[str]:
    """The command line of the lean monitor: `log` is (path, max_size, max_file,
    compress, attrs) of the json-file writer, or None (--log-driver none); `delete`,
    the runtime's delete it starts at the exit (while the monitor starts again)."""
    fds = ",".join(f"{fd}:{stream}" for fd, stream in outputs.items())
    if log is None:
        spec = ["-"]
    else:
        path, max_size, max_file, compress, attrs = log
        spec = [path, str(max_size or 0), str(max_file), "1" if compress else "0", (attrs or b"").hex()]
    return [python, "-S", "-c", BOOT, src, fds, str(init), *spec, "--", *(delete or ()), "--", *resume]


class _Discard:
    def write(self, stream: str, data: bytes) -> None:
        pass


def main(argv: list[str]) -> None:
    """The lean monitor: relay until the init exits, start the runtime's delete, then
    exec `resume` + [wait status, the delete's pid or 0] (lamina/handover.py)."""
    split = argv.index("--")
    head, rest = argv[:split], argv[split + 1:]
    split = rest.index("--")
    delete, resume = rest[:split], rest[split + 1:]
    outputs = {int(fd): stream for fd, _, stream in (x.partition(":") for x in head[0].split(",") if x)}
    init = int(head[1])
    sink = _Discard()
    if head[2] != "-":
        from lamina.logs.jsonfile import JsonFileWriter

        path, max_size, max_file, compress, attrs = head[2:7]
        try:
            sink = JsonFileWriter(path, int(max_size) or None, int(max_file), attrs=bytes.fromhex(attrs) or None,
                                  compress=compress == "1")
        except OSError:
            pass  # the log cannot be opened (disk full, removed): the container runs on, unlogged
    try:
        status = relay(outputs, init, sink)
    finally:
        close = getattr(sink, "close", None)
        if close is not None:
            try:
                close()
            except OSError:
                pass
        for fd in outputs:
            os.close(fd)
    deleting = _spawn_quietly(delete) if delete else 0
    os.execv(resume[0], [*resume, str(status), str(deleting)])  # should this fail: the watchdog reaps


def _spawn_quietly(argv: list[str]) -> int:
    """`argv` started with stdio on /dev/null and none of our other fds; its pid (0 if
    it could not start: the monitor then runs it itself).  Not runtime/process.py's
    spawn: it imports lamina.errors (~1 MB in this process)."""
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0), (os.POSIX_SPAWN_DUP2, 0, 1),
               (os.POSIX_SPAWN_DUP2, 0, 2)]
    actions += [(os.POSIX_SPAWN_CLOSE, int(fd)) for fd in os.listdir("/proc/self/fd") if int(fd) > 2]
    try:
        return os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    except OSError:
        return 0
