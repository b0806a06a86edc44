"""The default network of a rootless lamina: a private namespace behind slirp4netns.

An ordinary user cannot make veth pairs into the host's namespace, bridges or NAT
rules.  slirp4netns (Debian's package of the same name) gives the container's own
namespace a tap device whose packets it turns into ordinary sockets of the user on
the host: outbound TCP/UDP and DNS work, `-p` forwards are its listening sockets
(added through its API socket, `add_hostfwd`), and the host ports it may take are
the user's (>= net.ipv4.ip_unprivileged_port_start).  Chosen over pasta (passt):
slirp4netns is what podman and rootlesskit have long used, Debian 12 has it, and its
JSON API adds forwards to a running instance; pasta is faster for bulk traffic, not
needed by builds and `-p` pages.

slirp4netns lives as long as the process that started the container (a `run`, or a
detached container's monitor): it gets the read end of a pipe as --exit-fd and leaves
when the last write end closes, so a kill -9 leaves no process behind.  The netns
bind mount lives in lamina's private mount namespace, gone with it too; `release`
removes the file and stops slirp4netns on a normal exit.
"""

from __future__ import annotations

import os
import signal

from lamina.errors import InvalidParameter, RuntimeFailure
from lamina.network import netns

GUEST_ADDR, GATEWAY, DNS = "10.0.2.100", "10.0.2.2", "10.0.2.3"  # slirp4netns --configure's
MTU = 65520  # slirp4netns's recommended: a large MTU is most of its throughput
DIR = os.path.join(netns.RUN_DIR, "slirp")
_exit_fds: dict[str, int] = {}  # container id -> write end holding its slirp4netns alive


def attach(system, container_id: str, network: str, host_config: dict, exposed=None):
    """A namespace on slirp4netns for a starting container, its -p/-P ports forwarded
    (`exposed`: the image's ExposedPorts, for -P); the Endpoint."""
    from lamina.network.addresses import Address
    from lamina.network.endpoint import Endpoint

    if network != "bridge":
        raise InvalidParameter(f"network {network}: a rootless lamina has only the networks default "
                               "(slirp4netns), host and none")
    forwards = _forwards(host_config, exposed)
    os.makedirs(netns.NETNS_DIR, mode=0o700, exist_ok=True)
    os.makedirs(DIR, mode=0o700, exist_ok=True)
    path = netns.path_for(container_id)
    release(system, container_id)  # an earlier start's, cut short
    try:
        netns.create(path)
        _start(container_id, path)
        _forward(system, container_id, forwards)
    except BaseException:
        release(system, container_id)
        raise
    return Endpoint(network="bridge", netns=path, address=Address(GUEST_ADDR), prefixlen=24,
                    gateway=Address(GATEWAY), mac="", nameserver=DNS)


def release(system, container_id: str) -> None:
    """Stop the container's slirp4netns, forget its ports, remove its namespace; idempotent."""
    from lamina.store.db import transaction

    if system.db.execute("SELECT 1 FROM ports WHERE container_id=? LIMIT 1", (container_id,)).fetchone():
        with transaction(system.db) as db:
            db.execute("DELETE FROM ports WHERE container_id=?", (container_id,))
    fd = _exit_fds.pop(container_id, None)
    if fd is not None:
        os.close(fd)
    pid_file = os.path.join(DIR, f"{container_id}.pid")
    try:
        with open(pid_file) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:  # still that slirp4netns, not a reused pid
            ours = f"{container_id}.sock".encode() in f.read()
        if ours:
            os.kill(pid, signal.SIGKILL)  # it keeps no state: its tap goes with the namespace
            _reap(pid)
    except (OSError, ValueError):
        pass
    for name in (f"{container_id}.pid", f"{container_id}.sock"):
        try:
            os.unlink(os.path.join(DIR, name))
        except FileNotFoundError:
            pass
    path = netns.path_for(container_id)
    if os.path.lexists(path):
        try:
            netns.remove(path)
        except RuntimeFailure:  # not mounted here (another command's namespace): the file only
            try:
                os.unlink(path)
            except OSError:
                pass


def unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024


def _forwards(host_config: dict, exposed) -> list[tuple[str, str, int, int, int]]:
    """(proto, host ip, low, high, container port) of -p/-P (portmap's parsing), privileged
    host ports refused; low = high = 0: any free port."""
    from lamina.network.portmap import wanted_ports

    out = []
    start = None
    for proto, container_port, host_ip, low, high in wanted_ports(host_config, exposed):
        if proto not in ("tcp", "udp"):  # slirp4netns forwards these two only
            raise InvalidParameter(f"cannot publish {container_port}/{proto}: a rootless lamina forwards tcp and udp")
        if low:
            start = unprivileged_port_start() if start is None else start
            if low < start:
                raise InvalidParameter(  # rootless docker's text (rootlesskit's port driver)
                    f"cannot expose privileged port {low}, you can add 'net.ipv4.ip_unprivileged_port_start={low}' "
                    f"to /etc/sysctl.conf (currently {start}), or choose a larger port number (>= {start})")
        out.append((proto, host_ip, low, high, container_port))
    return out


def _forward(system, container_id: str, forwards) -> None:
    """Each forward as a `ports` row (so `port`, `ps` and inspect show it, and another
    container of this store cannot take it), then slirp4netns's listening socket."""
    from lamina.store.db import pid_alive, transaction

    if not forwards:
        return
    with transaction(system.db) as db:  # rows of killed owners first: their slirp4netns is gone too
        for (cid, pid) in db.execute("SELECT DISTINCT container_id, owner_pid FROM ports").fetchall():
            if not pid_alive(pid):
                db.execute("DELETE FROM ports WHERE container_id=?", (cid,))
    for proto, host_ip, low, high, container_port in forwards:
        last_error = "all ports are allocated"
        for port in (range(low, high + 1) if low else [0] * 20):
            port = port or _free_port(proto)
            taken = system.db.execute("SELECT 1 FROM ports WHERE proto=? AND host_ip=? AND host_port=?",
                                      (proto, host_ip, port)).fetchone()
            if taken:
                last_error = f"Bind for {host_ip}:{port} failed: port is already allocated"
                continue
            busy = _bind_error(proto, host_ip, port)
            if busy:  # held by a host process: docker's proxy wording, not slirp4netns's bare failure
                last_error = f"Error starting userland proxy: listen {proto}4 {host_ip}:{port}: bind: {busy}"
                continue
            with transaction(system.db) as db:
                db.execute("INSERT INTO ports(proto, host_ip, host_port, container_id, container_port, address, "
                           "bridge, owner_pid) VALUES (?,?,?,?,?,?,?,?)",
                           (proto, host_ip, port, container_id, container_port, GUEST_ADDR, "slirp4netns",
                            os.getpid()))
            reply = _api(container_id, {"execute": "add_hostfwd", "arguments": {
                "proto": proto, "host_addr": host_ip, "host_port": port, "guest_port": container_port}})
            if reply is None:
                break
            with transaction(system.db) as db:
                db.execute("DELETE FROM ports WHERE proto=? AND host_ip=? AND host_port=?", (proto, host_ip, port))
            last_error = f"listen {proto}4 {host_ip}:{port}: {reply}"
        else:
            raise RuntimeFailure(f"driver failed programming external connectivity on endpoint {container_id[:12]}: "
                                 f"{last_error}")


def _bind_error(proto: str, host_ip: str, port: int) -> str:
    import socket

    with socket.socket(type=socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM) as s:
        try:
            s.bind((host_ip, port))
        except OSError as e:
            return (e.strerror or str(e)).lower()
    return ""


def _free_port(proto: str) -> int:
    """A port of the host's ephemeral range that is free now (slirp4netns binds it next)."""
    import socket

    with socket.socket(type=socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _start(container_id: str, path: str) -> None:
    import shutil

    exe = shutil.which("slirp4netns")
    if exe is None:
        raise RuntimeFailure("a rootless lamina's default network needs slirp4netns (apt-get install slirp4netns); "
                             "or use --network none or host")
    exit_r, exit_w = os.pipe()
    ready_r, ready_w = os.pipe()
    sock = os.path.join(DIR, f"{container_id}.sock")
    argv = [exe, "--configure", f"--mtu={MTU}", "--disable-host-loopback", "--netns-type=path",
            f"--api-socket={sock}", f"--exit-fd={exit_r}", f"--ready-fd={ready_w}", path, "tap0"]
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        pid = os.posix_spawn(exe, argv, os.environ, setsid=True,
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                                           (os.POSIX_SPAWN_DUP2, devnull, 2),
                                           (os.POSIX_SPAWN_DUP2, exit_r, exit_r),
                                           (os.POSIX_SPAWN_DUP2, ready_w, ready_w)])
    finally:
        os.close(devnull)
        os.close(exit_r)
        os.close(ready_w)
    _exit_fds[container_id] = exit_w
    with open(os.path.join(DIR, f"{container_id}.pid"), "w") as f:
        f.write(str(pid))
    ready = os.read(ready_r, 1)
    os.close(ready_r)
    if ready != b"1":
        raise RuntimeFailure("slirp4netns did not start (the container's network)")


def _api(container_id: str, request: dict) -> str | None:
    """Send one request to the container's slirp4netns; None, or its error's text."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.path.join(DIR, f"{container_id}.sock"))
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    reply = json.loads(answer or b"{}")
    if "error" not in reply:
        return None
    error = reply["error"]
    return str(error.get("desc", error) if isinstance(error, dict) else error)


def _reap(pid: int) -> None:
    """Wait for our own child (a process another command started is not ours to wait for)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
