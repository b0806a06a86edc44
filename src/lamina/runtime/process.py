"""Process plumbing for driving a runtime: spawning, capturing, signals, reaping.

Kept apart from the runc/crun driver (oci.py) so that any long-lived keeper of
a container process (the watchdog, a monitor) can use it without the driver.
Cost matters: processes are started with os.posix_spawn (vfork-fast;
`subprocess` would add ~5 ms of imports), libc's prctl comes through lamina/libc.py
(not ctypes), and termios/select are imported only on the paths that need them.
"""

from __future__ import annotations

import os

# _signal, not signal: the same functions without the enum module (~3 ms of every verb
# that starts a runtime: exec, run, stop); handlers come back as ints, as they go in
import _signal as signal

from lamina.errors import RuntimeFailure

FORWARDED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# Reset in the child: posix_spawn keeps SIG_IGN across exec, and Python ignores SIGPIPE.
_CHILD_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, *FORWARDED)

def spawn(argv: list[str], *, stdin: int | None, stdout: int = 1, stderr: int = 2, pass_fds: tuple[int, ...] = ()) -> int:
    """posix_spawn with subprocess's hygiene: close_fds (every inheritable fd but
    stdio and `pass_fds` is closed in the child), default signal dispositions.
    `stdin` None means /dev/null."""
    actions: list[tuple] = []
    devnull = None
    if stdin is None:
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        stdin = devnull
    for want, have in ((0, stdin), (1, stdout), (2, stderr)):
        if want != have:
            actions.append((os.POSIX_SPAWN_DUP2, have, want))
    for fd in _inheritable_fds():
        if fd > 2 and fd not in pass_fds:
            actions.append((os.POSIX_SPAWN_CLOSE, fd))
    try:
        return os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsigdef=_CHILD_DEFAULT_SIGNALS)
    except OSError as e:
        raise RuntimeFailure(f"cannot execute {argv[0]}: {e.strerror}") from None
    finally:
        if devnull is not None:
            os.close(devnull)


def _inheritable_fds() -> list[int]:
    fds = []
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        try:
            if os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the directory fd listdir used, already closed
            pass
    return fds


def capture(argv: list[str]) -> tuple[int, bytes, bytes]:
    """Run a short runtime command; returns (exit code, stdout, stderr)."""
    import select

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = spawn(argv, stdin=None, stdout=out_w, stderr=err_w)
    finally:
        os.close(out_w)
        os.close(err_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    open_fds = set(chunks)
    try:
        while open_fds:
            for fd, _ in poller.poll():
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
    finally:
        os.close(out_r)
        os.close(err_r)
        status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status), b"".join(chunks[out_r]), b"".join(chunks[err_r])


def fresh(path: str) -> str:
    """`path`, with any file left there by an earlier run removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return path


def read_pid(pidfile: str) -> int:
    try:
        with open(pidfile, "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError) as e:
        raise RuntimeFailure(f"runtime did not report the container's pid: {e}") from None


class Subreaper:
    """PR_SET_CHILD_SUBREAPER for the duration: orphans of our children become ours."""

    PR_SET_CHILD_SUBREAPER = 36

    def __enter__(self) -> Subreaper:
        from lamina import libc  # not ctypes (~1 ms of a start)

        self.prctl = libc.function("prctl", libc.Int, libc.ULong, libc.ULong, libc.ULong, libc.ULong)
        if self.prctl(self.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            err = libc.errno()
            raise RuntimeFailure(f"cannot become a child subreaper: {os.strerror(err)}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.prctl(self.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def adopt(pid: int, timeout: float = 2.0) -> None:
    """Wait, as a child subreaper, until process `pid` is our child.  runc's container
    init is ours as soon as `runc run --detach` exits; crun's stays a moment longer
    under a helper of crun's that exits just after crun: that helper is ours by then
    (we are its subreaper), so we reap it, and the init comes to us."""
    import time

    me = os.getpid()
    deadline = time.monotonic() + timeout
    while (parent := parent_pid(pid)) not in (me, None, 1):
        try:  # crun's helper, ours once crun exited (we are its subreaper): it exits right
            os.waitpid(parent, 0)  # after reporting the start, however loaded the host
        except ChildProcessError:  # not ours (yet): look again, for a while
            if time.monotonic() >= deadline:
                return
            time.sleep(0.0002)


def raise_if_failed(code: int, log: str, command: str) -> None:
    """After a runtime command that exited `code` (`run --detach`, `exec`): nothing when it
    succeeded; else the error its `log` names, in docker's words (runtime/runcerrors.py,
    imported only then), or "<command> exited with <code>" when it names none."""
    if code != 0:
        from lamina.runtime.runcerrors import runtime_error

        raise runtime_error(log) or RuntimeFailure(f"{command} exited with {code}")


def exit_code(status: int) -> int:
    """A wait status as docker reports the exit: its code, or 128+n for signal n."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def parent_pid(pid: int) -> int | None:
    """The parent of process `pid`, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2:].split(None, 2)[1])  # after "(comm) S": the ppid


def kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class ForwardSignals:
    """While the runtime runs, signals sent to us are passed on instead of killing us.

    While the target is runc in our process group (`same_group`), SIGINT/SIGQUIT
    typed at our terminal already reached it, so those are not sent twice; the
    same signals sent to our pid alone (kill, a supervisor) are forwarded.  A
    detached container (the -t path) is in its own session: everything is
    forwarded.  In a non-main thread Python cannot set handlers: then nothing is.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.same_group = True
        self.saved: dict[int, object] = {}

    def _handler(self, signum: int, frame: object) -> None:
        if self.same_group and signum in (signal.SIGINT, signal.SIGQUIT) and _from_our_terminal():
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self) -> ForwardSignals:
        try:
            for sig in FORWARDED:
                self.saved[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)


def _from_our_terminal() -> bool:
    """True when our terminal generates signals for our process group (so runc got it too)."""
    import termios

    for fd in (0, 1, 2):
        try:
            if os.tcgetpgrp(fd) == os.getpgrp():
                return bool(termios.tcgetattr(fd)[3] & termios.ISIG)
        except (OSError, termios.error):
            continue
    return False
