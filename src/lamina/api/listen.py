"""Where the service listens, and who may talk to it.

The socket is as powerful as root (whoever reaches it runs containers as root), so:
a unix socket is made 0660 root:root (root:GROUP with `--group`), in a directory only
root can write (else another user could swap the path); a live socket at the path is
refused (a second service would steal it), a stale one from a dead service replaced;
each connection's peer is checked with SO_PEERCRED (root, or a member of the granted
group) even where the file mode would let it in (systemd made the socket).  TCP has no
peer identity: it binds loopback unless an address is named, and warns as dockerd.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys

from lamina import runtime_root
from lamina.errors import UsageError

DEFAULT_SOCKET = os.path.join(runtime_root(), "docker.sock")  # /run/lamina/docker.sock as root
SD_LISTEN_FDS_START = 3  # systemd's first passed descriptor (sd_listen_fds(3))


class Listener:
    """A listening socket and what the service must know about it."""

    def __init__(self, sock: socket.socket, *, path: str | None = None, gid: int = 0, activated: bool = False,
                 address: str = "") -> None:
        self.sock = sock
        self.path = path        # a unix socket file this process made (removed on exit)
        self.gid = gid          # the group granted besides root
        self.activated = activated
        self.address = address  # what to tell the user

    @property
    def is_unix(self) -> bool:
        return self.sock.family == socket.AF_UNIX

    def peer_allowed(self, conn: socket.socket) -> bool:
        """Root, or a process in the granted group: the file mode's rule, checked again."""
        if not self.is_unix:
            return True
        pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                               struct.calcsize("3i")))
        if uid == 0:
            return True
        if self.gid == 0:
            return False
        return gid == self.gid or self.gid in _groups_of(pid)

    def close(self) -> None:
        self.sock.close()
        if self.path and not self.activated:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _groups_of(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


def open_listener(host: str | None = None, socket_path: str | None = None, group: str | None = None) -> Listener:
    """The socket to serve: systemd's (LISTEN_FDS), else `host` (unix://PATH, tcp://ADDR:PORT),
    else `socket_path`, else /run/lamina/docker.sock."""
    gid = _group_id(group)
    activated = _activated_socket()
    if activated is not None:
        return Listener(activated, gid=gid, activated=True, address="systemd socket")
    if host and socket_path:
        raise UsageError("--socket and --host cannot be used together")
    if host and host.startswith("tcp://"):
        return _tcp(host[len("tcp://"):])
    if host:
        if not host.startswith("unix://"):
            raise UsageError(f"invalid host {host!r}: use unix:///PATH or tcp://ADDR:PORT")
        socket_path = host[len("unix://"):]
    return _unix(socket_path or DEFAULT_SOCKET, gid)


def _group_id(group: str | None) -> int:
    if not group:
        return 0
    import grp

    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise UsageError(f"group {group} not found") from None


def _activated_socket() -> socket.socket | None:
    """The first socket systemd passed (socket activation), if it passed one to us."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):  # not for our children
        os.environ.pop(name, None)
    if count < 1:
        return None
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    os.set_inheritable(sock.fileno(), False)
    return sock


def _unix(path: str, gid: int) -> Listener:
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755, exist_ok=True)
    st = os.stat(parent)
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise UsageError(f"refusing to listen in {parent}: it must belong to root and be writable only by root")
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # never visible with a wider mode, not even between bind and chmod
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise UsageError(f"listen unix {path}: {e.strerror or e}") from None
    finally:
        os.umask(old)
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(128)
    return Listener(sock, path=path, gid=gid, address=f"unix://{path}")


def _clear_stale(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise UsageError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # a dead service's socket: nobody accepts on it any more
        return
    except OSError:
        pass
    finally:
        probe.close()
    raise UsageError(f"{path} is in use by a running service")


def _tcp(address: str) -> Listener:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"invalid tcp address {address!r}: use tcp://ADDR:PORT")
    host = host.strip("[]") or "127.0.0.1"  # docker's `tcp://:2375`: here loopback, not every address
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(
            "WARNING: Binding to IP address without --tlsverify is insecure and gives root access on this "
            "machine to everyone who has access to your network.\n"
            f"WARNING: host={host}:{port}: the Engine API on TCP is unauthenticated\n")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as e:
        sock.close()
        raise UsageError(f"listen tcp {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    return Listener(sock, address=f"tcp://{host}:{sock.getsockname()[1]}")
