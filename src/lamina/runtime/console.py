"""`-t`: a real pty for the container, relayed to our stdio.

runc creates the pty inside the container and hands us the master over a unix
socket (`--console-socket`, one fd in SCM_RIGHTS).  We copy bytes master ->
stdout, and stdin -> master when interactive.  Like docker, only with -i do we
put our stdin in raw mode, so keys (^C, ^D, arrows) reach the container's line
discipline untouched; without -i our terminal keeps turning ^C into a signal,
which oci.py forwards to the container.  We mirror our window size onto the
pty on SIGWINCH (TIOCSWINSZ on the master; the kernel then signals the
container's foreground process group).

The only module of lamina that prints: it is the container's output.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import struct

from lamina.fdio import write_all

_CHUNK = 65536


_handed: tuple[int, int] | None = None


def terminal_size(fds: tuple[int, ...] = (1, 0, 2)) -> tuple[int, int] | None:
    """(rows, cols) of the first terminal among `fds`, for RunSpec.console_size; else
    the size handed to this process (hand_size)."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        if size.lines and size.columns:
            return size.lines, size.columns
    return _handed


def hand_size(size: tuple[int, int] | None) -> None:
    """The size of the terminal a `run -it` client attaches from, for the monitor it
    forked (its stdio is /dev/null): the container's first size, so a command that asks
    at once (`stty size`) does not race the client's resize."""
    global _handed
    _handed = size


class ConsoleSocket:
    """A listening unix socket in a private place, removed on exit.

    The path must fit sun_path (108 bytes): the bundle dir is used when short
    enough, else a fresh 0700 directory under /tmp.
    """

    def __init__(self, bundle_dir: str) -> None:
        self.own_dir: str | None = None
        path = os.path.join(bundle_dir, "console.sock")
        if len(os.fsencode(path)) > 100:
            self.own_dir = f"/tmp/lamina-console-{os.urandom(8).hex()}"
            os.mkdir(self.own_dir, 0o700)
            path = os.path.join(self.own_dir, "sock")
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self) -> ConsoleSocket:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock.bind(self.path)
        self.sock.listen(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self.own_dir:
            os.rmdir(self.own_dir)

    def receive_master(self, timeout: float = 10.0) -> int:
        """Accept the runtime's connection and return the pty master it sends (close-on-exec).

        Called after `runc run --detach` succeeded, so the connection is already queued;
        the timeout only guards against a runtime that broke its protocol.
        """
        self.sock.settimeout(timeout)
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(timeout)
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        except OSError as e:  # socket.timeout is an OSError
            raise OSError(errno.EPROTO, f"no console received from the runtime: {e}") from None
        if not fds:
            raise OSError(errno.EPROTO, "no console received from the runtime")
        for extra in fds[1:]:
            os.close(extra)
        os.set_inheritable(fds[0], False)  # recv_fds does not ask for MSG_CMSG_CLOEXEC
        return fds[0]


def relay(master: int, pid: int, *, interactive: bool, stdin_fd: int = 0, stdout_fd: int = 1,
          detach_keys: bytes = b"", sink=None) -> int:
    """Relay between our stdio and the pty `master` until our child `pid` (the
    container's init) exits; returns its raw wait status, reaped.  Typing `detach_keys`
    raises runtime/detachkeys.Detached instead (the process goes on).  `sink`: the
    output also goes to its `write("stdout", data)` (a foreground run -t's json-file log)."""
    watch = _ExitWatch(pid)
    try:
        return _pump(master, watch, interactive=interactive, stdin_fd=stdin_fd, stdout_fd=stdout_fd,
                     detach_keys=detach_keys, sink=sink)
    finally:
        watch.close()


def run_tty(runtime, container_id: str, bundle_dir: str, log: str, *, interactive: bool, log_sink=None,
            learn=None) -> int:
    """A foreground run with -t (runtime/oci.py's run).  The runtime hands a console to
    `--console-socket` only when it detaches, so: become a child subreaper (the
    container's init is re-parented to us when the runtime exits, which is the only way
    to get its exit status), `run --detach`, take the pty master, relay until the init
    exits, reap it.  `learn(container_id)` runs once the container runs."""
    from lamina.runtime.process import (ForwardSignals, Subreaper, adopt, exit_code, fresh, kill_and_reap,
                                        raise_if_failed, read_pid, spawn)

    pidfile = fresh(os.path.join(bundle_dir, "container.pid"))
    with ConsoleSocket(bundle_dir) as sock, Subreaper():
        argv = [*runtime._base(log), "run", "--detach", "--console-socket", sock.path]
        argv += ["--pid-file", pidfile, "--bundle", bundle_dir, container_id]
        runc = spawn(argv, stdin=None)
        init = None
        try:
            with ForwardSignals(runc) as forward:
                status = os.waitpid(runc, 0)[1]  # returns once the container runs
                runc = None
                raise_if_failed(os.waitstatus_to_exitcode(status), log, f"{runtime.name} run")
                init = forward.pid = read_pid(pidfile)
                adopt(init)
                forward.same_group = False
                if learn is not None:
                    learn(container_id)
                master = sock.receive_master()
                try:
                    status = relay(master, init, interactive=interactive, sink=log_sink)
                finally:
                    os.close(master)
                init = None
        finally:
            if runc is not None:
                kill_and_reap(runc)
            if init is not None:  # relay failed: stop the container, reap our adopted child
                runtime.discard(container_id, init)
    return exit_code(status)


def _pump(master: int, watch: _ExitWatch, *, interactive: bool, stdin_fd: int, stdout_fd: int,
          detach_keys: bytes = b"", sink=None) -> int:
    os.set_blocking(master, False)  # never block writing to a container that does not read
    size_fd = next((fd for fd in (stdout_fd, stdin_fd) if os.isatty(fd)), None)
    if size_fd is not None:
        _copy_winsize(size_fd, master)
    raw = RawMode(stdin_fd if interactive and os.isatty(stdin_fd) else None)
    old_winch = None
    try:
        raw.__enter__()
        if size_fd is not None:
            try:
                old_winch = signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(size_fd, master))
            except ValueError:  # not the main thread: no resize forwarding
                pass
        pending = b""  # stdin bytes the container has not taken yet
        scanner = None
        if detach_keys and interactive:
            from lamina.runtime.detachkeys import Detached, Scanner

            scanner = Scanner(detach_keys)
        read_stdin = interactive
        master_open = True
        out_ok = True
        poller = select.poll()
        if watch.fd is not None:
            poller.register(watch.fd, select.POLLIN)
        while True:
            if master_open:
                poller.register(master, select.POLLIN | (select.POLLOUT if pending else 0))
            if read_stdin and not pending:  # backpressure: one chunk in flight at most
                poller.register(stdin_fd, select.POLLIN)
            else:
                _unregister(poller, stdin_fd)
            events = dict(poller.poll(watch.timeout_ms))
            if watch.exited(set(events)):
                if master_open:
                    _drain(master, stdout_fd, out_ok, sink)
                return watch.reap()
            ev = events.get(master, 0)
            if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                data = _read(master)
                if data is None:  # EIO: every slave fd is closed; the init's exit is next
                    master_open = False
                    _unregister(poller, master)
                elif data:
                    out_ok = _write_all(stdout_fd, data, out_ok)
                    if sink is not None:
                        sink.write("stdout", data)
            if master_open and ev & select.POLLOUT and pending:
                try:
                    pending = pending[os.write(master, pending):]
                except BlockingIOError:
                    pass
                except OSError:
                    pending = b""
            if events.get(stdin_fd, 0):
                try:
                    data = os.read(stdin_fd, _CHUNK)
                except OSError:  # stdin closed or unreadable: same as EOF
                    data = b""
                if data and scanner is not None:
                    data, detached = scanner.feed(data)
                    pending += data
                    if detached:
                        raise Detached()
                elif data:
                    pending += data
                else:  # EOF: a pty has no half-close; just stop forwarding
                    read_stdin = False
    finally:
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        raw.__exit__()


def _unregister(poller: select.poll, fd: int) -> None:
    try:
        poller.unregister(fd)
    except KeyError:
        pass


def _read(master: int) -> bytes | None:
    """Bytes from the master; b"" when nothing is ready; None once the slave side is gone."""
    try:
        return os.read(master, _CHUNK)
    except BlockingIOError:
        return b""
    except OSError as e:
        if e.errno == errno.EIO:
            return None
        raise


def _drain(master: int, stdout_fd: int, out_ok: bool, sink=None) -> None:
    while True:
        data = _read(master)
        if not data:
            return
        out_ok = _write_all(stdout_fd, data, out_ok)
        if sink is not None:
            sink.write("stdout", data)


def _write_all(fd: int, data: bytes, ok: bool) -> bool:
    """Write everything; after a failure (reader gone) keep discarding so the container never blocks."""
    if not ok:
        return False
    try:
        write_all(fd, data)
    except OSError:
        return False
    return True


def _copy_winsize(src_fd: int, master: int) -> None:
    try:
        size = os.get_terminal_size(src_fd)
        set_winsize(master, size.lines, size.columns)
    except OSError:
        pass


def set_winsize(fd: int, height: int, width: int) -> None:
    """TIOCSWINSZ on either end of a pty: the kernel signals SIGWINCH to its foreground group."""
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def resize_process_tty(pid: int, height: int, width: int) -> bool:
    """Resize the terminal process `pid` (a -t container's init, a tty exec) has on its
    stdio, through /proc/PID/fd: the same tty, so no channel to the monitor or relay that
    holds the master is needed.  False when none of its stdio is a terminal."""
    for n in (0, 1, 2):
        try:
            fd = os.open(f"/proc/{pid}/fd/{n}", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if os.isatty(fd):
                set_winsize(fd, height, width)
                return True
        except OSError:
            continue
        finally:
            os.close(fd)
    return False


class RawMode:
    """Raw mode on a tty fd (like docker's term.MakeRaw), restored on exit; a no-op for None."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.saved: list | None = None

    def __enter__(self) -> RawMode:
        if self.fd is not None:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSADRAIN)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None


class _ExitWatch:
    """Tells when the runtime process exits: a pidfd in the poll set (Linux ≥ 5.3),
    else a 50 ms poll timeout and waitpid(WNOHANG)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None
        try:
            self.fd: int | None = os.pidfd_open(pid)
            self.timeout_ms: int | None = None
        except (AttributeError, OSError):
            self.fd = None
            self.timeout_ms = 50

    def exited(self, ready: set[int]) -> bool:
        if self.fd is not None:
            return self.fd in ready
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.status = status
        return bool(done)

    def reap(self) -> int:
        if self.status is None:
            self.status = os.waitpid(self.pid, 0)[1]
        return self.status

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
