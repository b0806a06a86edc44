"""A detached container's stdin (`-i` under a monitor): a unix socket in its bundle
directory that attach clients write to, relayed into the container; with a tty, the
pty's raw output goes back to them on the same connection (a json-file log holds
whole lines only: a shell's prompt would never reach an attached terminal).

The container's stdin is a pipe (or, with a tty, its pty) the monitor holds the
other end of, so the container never sees EOF while nobody is attached (docker's
`run -d -i` keeps STDIN open).  What an attached client sends is written on as the
container takes it (never blocking the monitor's output relay: one buffer in flight,
clients not read meanwhile); when a client leaves and the container was created with
StdinOnce (`docker run -i`), its stdin is closed after what is pending.

Output a tty container writes before its first client connects (`docker run -it`
attaches before the start, and connects once the relay is there) is kept (the last
64 KiB) for that first client.  A client that does not read loses what exceeds 1 MiB
rather than stall the container.

sun_path holds 108 bytes and a store root may be deep, so both sides name the socket
through an open directory fd (/proc/self/fd/N/NAME).
"""

from __future__ import annotations

import errno
import os
import select
import socket

NAME = "attach.sock"
_TTY_CHUNK = 512  # a pty write after POLLOUT: small enough not to block the relay
_BACKLOG = 64 << 10
_CLIENT_MAX = 1 << 20


def via_fd(dir_fd: int) -> str:
    return f"/proc/self/fd/{dir_fd}/{NAME}"


def connect(bundle_dir: str) -> socket.socket | None:
    """A connection to the relay of a running container, or None when it has none (yet)."""
    try:
        dir_fd = os.open(bundle_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(via_fd(dir_fd))
        return sock
    except OSError:
        sock.close()
        return None
    finally:
        os.close(dir_fd)


class StdinRelay:
    def __init__(self, bundle_dir: str, *, once: bool) -> None:
        self.once = once
        self.dir_fd = os.open(bundle_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            os.unlink(NAME, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        self.listener.bind(via_fd(self.dir_fd))
        os.chmod(NAME, 0o600, dir_fd=self.dir_fd)
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.read_end, self.target = os.pipe2(os.O_CLOEXEC)  # the container's stdin, and ours to write
        os.set_blocking(self.target, False)
        self.tty = False
        self.clients: dict[int, socket.socket] = {}
        self.outq: dict[int, bytearray] = {}  # tty output not yet sent, per client
        self.input_done: set[int] = set()     # clients that half-closed: output only
        self.backlog = bytearray()
        self.served = False
        self.pending = b""
        self.closing = False
        self._armed: set[int] = set()

    def spawned(self) -> None:
        """The runtime has the read end (the container's stdin): ours goes."""
        if self.read_end is not None:
            os.close(self.read_end)
            self.read_end = None

    def use_terminal(self, master: int) -> None:
        """With a tty, input goes to the pty master (a dup: its blocking mode is the relay's)."""
        self.spawned()
        os.close(self.target)
        self.target = os.dup(master)
        self.tty = True

    # ------------------------------------------------------------------ the poll loop's part
    def arm(self, poller) -> None:
        want = {self.listener.fileno(): select.POLLIN}
        for fd in self.clients:
            mask = select.POLLIN if not self.pending and fd not in self.input_done else 0
            if self.outq.get(fd):
                mask |= select.POLLOUT
            if mask:
                want[fd] = mask
        if self.pending and self.target is not None:
            want[self.target] = select.POLLOUT
        for fd in self._armed - want.keys():
            poller.unregister(fd)
        for fd, mask in want.items():
            poller.register(fd, mask)
        self._armed = set(want)

    def owns(self, fd: int) -> bool:
        return fd in self._armed

    def output(self, data: bytes) -> None:
        """Tty output (besides the log) for the clients, or kept for the first one."""
        if not self.served:
            self.backlog += data
            del self.backlog[:-_BACKLOG]
            return
        for fd in self.clients:
            q = self.outq.setdefault(fd, bytearray())
            q += data
            del q[:-_CLIENT_MAX]

    def _drop(self, fd: int, poller) -> None:
        if fd in self._armed:
            poller.unregister(fd)
            self._armed.discard(fd)
        self.clients.pop(fd).close()
        self.outq.pop(fd, None)
        self.input_done.discard(fd)

    def handle(self, fd: int, poller, events: int = select.POLLIN) -> None:
        if fd == self.listener.fileno():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.setblocking(False)
            self.clients[conn.fileno()] = conn
            if self.tty and not self.served:
                self.outq[conn.fileno()] = self.backlog
                self.backlog = bytearray()
            self.served = True
        elif fd in self.clients:
            if events & select.POLLOUT and self.outq.get(fd):
                try:
                    n = self.clients[fd].send(self.outq[fd])
                    del self.outq[fd][:n]
                except BlockingIOError:
                    pass
                except OSError:
                    self._drop(fd, poller)
                    return
            if not events & (select.POLLIN | select.POLLHUP | select.POLLERR) or fd in self.input_done:
                return
            try:
                data = self.clients[fd].recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                self.pending += data if self.target is not None else b""
                return
            if self.tty:  # a half-close ends its input only: it still reads the output
                self.input_done.add(fd)
                if not events & select.POLLHUP and not events & select.POLLERR:
                    return
            self._drop(fd, poller)
            if self.once:
                self.closing = True
        elif fd == self.target:
            try:
                n = os.write(self.target, self.pending[:_TTY_CHUNK] if self.tty else self.pending)
            except BlockingIOError:
                n = 0
            except OSError as e:  # the container closed its stdin (EPIPE): input goes nowhere
                if e.errno not in (errno.EPIPE, errno.EIO):
                    raise
                n = len(self.pending)
            self.pending = self.pending[n:]
        if self.closing and not self.pending and self.target is not None and not self.tty:
            if self.target in self._armed:
                poller.unregister(self.target)
                self._armed.discard(self.target)
            os.close(self.target)  # StdinOnce: the container reads EOF
            self.target = None

    def close(self) -> None:
        while self.tty and not self.served:  # a client that connected before the start, not
            try:                             # accepted yet: a short run's output is its
                conn, _ = self.listener.accept()
            except OSError:
                break
            self.clients[conn.fileno()] = conn
            self.outq[conn.fileno()] = self.backlog
            self.served = True
        for fd, conn in self.clients.items():
            if self.outq.get(fd):  # the last output (the shell's goodbye) before the close
                try:
                    conn.settimeout(1)
                    conn.sendall(self.outq[fd])
                except OSError:
                    pass
            conn.close()
        self.clients.clear()
        self.listener.close()
        try:
            os.unlink(NAME, dir_fd=self.dir_fd)
        except OSError:
            pass
        os.close(self.dir_fd)
        for fd in (self.read_end, self.target):
            if fd is not None:
                os.close(fd)
        self.read_end = self.target = None
