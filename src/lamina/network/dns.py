"""Name resolution on user-defined networks (docker's embedded DNS), by aardvark-dns.

aardvark-dns is the resolver Podman's netavark uses, made for exactly this: it
reads one file per network from a config directory (first line: the addresses
to listen on, the network's gateway; then one line per container, `ID IPv4
IPv6 name,alias,...[ dns-servers]`), answers a container's queries with the
names of the containers that share a network with it, forwards every other
name to the host's resolvers (or a container's own --dns servers), and reloads
the directory on SIGHUP.

Started on demand, never as a service, because lamina has no daemon: the first
container that joins a network while no aardvark-dns runs starts one (`run`
forks it into the background and returns once it is serving; it records its pid
in the directory), later joins and leaves rewrite a network's file and send
SIGHUP.  A network's file is removed with its last container, and aardvark-dns,
reloading a directory with no network left, exits by itself: so it runs exactly
while some container of a DNS network runs, and nothing needs to stop it.  A
server killed or lost after a reboot is noticed by its dead pid and started again.

Containers name the gateway as their nameserver (etcfiles.py), as Podman's do,
rather than docker's 127.0.0.11: that address is docker's resolver inside each
container's namespace, reached through NAT rules in that namespace; the gateway
is already an address of the host on the container's network, so no rule at all
is needed and one server serves every network.  All of it is host-wide (bridges
are), under the bridge set-up lock.
"""

from __future__ import annotations

import os

from lamina.network import bridge

CONFIG_DIR = os.path.join(bridge.STATE_DIR, "aardvark")
PID_FILE = os.path.join(CONFIG_DIR, "aardvark.pid")
PORT = 53
SEARCH = ("/usr/lib/podman", "/usr/libexec/podman")


def program() -> str | None:
    """aardvark-dns's path (Debian puts it under /usr/lib/podman), or None."""
    for d in (*os.environ.get("PATH", os.defpath).split(os.pathsep), *SEARCH):
        path = os.path.join(d or ".", "aardvark-dns")
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def available() -> bool:
    return program() is not None


def add(network_key: str, gateway: str, container_id: str, address: str, names, dns_servers=()) -> None:
    """Make `names` of the container resolve to `address` on the network (file `network_key`)."""
    line = f"{container_id} {address}  {','.join(dict.fromkeys(n for n in names if n))}"
    if dns_servers:
        line += " " + ",".join(dns_servers)
    with bridge.locked():
        entries = [e for e in _entries(network_key) if e.split(" ", 1)[0] != container_id]
        _write(network_key, gateway, [*entries, line])
        _notify(start=True)
        if not entries and not _wait_bound(gateway) and server_pid() is None:
            # a new network, and the server was on its way out (its reload of a directory
            # left empty a moment ago ran before our file was there): start another
            _notify(start=True)
            _wait_bound(gateway)


def remove(container_id: str, network_key: str | None = None) -> bool:
    """Drop the container's lines (on `network_key`, or everywhere); True when one was there."""
    try:
        files = [network_key] if network_key else [f for f in os.listdir(CONFIG_DIR) if f != "aardvark.pid"]
    except FileNotFoundError:
        return False
    if not files:  # the common exit: no network with names in use
        return False
    changed = False
    with bridge.locked():
        for key in files:
            path = os.path.join(CONFIG_DIR, key)
            try:
                with open(path) as f:
                    lines = f.read().splitlines()
            except FileNotFoundError:
                continue
            kept = [e for e in lines[1:] if e and e.split(" ", 1)[0] != container_id]
            if len(kept) == len([e for e in lines[1:] if e]):
                continue
            changed = True
            if kept:
                _write(key, lines[0], kept)
            else:
                os.unlink(path)
        if changed:
            _notify(start=False)
    return changed


def entries_of(container_id: str) -> list[str]:
    """The networks (file names) that still resolve the container (tests, `system check`)."""
    out = []
    try:
        files = [f for f in os.listdir(CONFIG_DIR) if f != "aardvark.pid"]
    except FileNotFoundError:
        return out
    for key in files:
        if any(e.split(" ", 1)[0] == container_id for e in _entries(key)):
            out.append(key)
    return out


def server_pid() -> int | None:
    try:
        with open(PID_FILE) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    from lamina.store.db import pid_alive

    try:  # a reused pid must not get our SIGHUP
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "aardvark-dns":
                return None
    except OSError:
        return None
    return pid if pid and pid_alive(pid) else None


def _entries(key: str) -> list[str]:
    try:
        with open(os.path.join(CONFIG_DIR, key)) as f:
            return [e for e in f.read().splitlines()[1:] if e]
    except FileNotFoundError:
        return []


def _write(key: str, first: str, entries: list[str]) -> None:
    os.makedirs(CONFIG_DIR, mode=0o755, exist_ok=True)
    path = os.path.join(CONFIG_DIR, key)
    tmp = os.path.join(bridge.STATE_DIR, f".aardvark-{key}.{os.getpid()}")  # not in the dir the server reads
    with open(tmp, "w") as f:
        f.write("\n".join([first, *entries]) + "\n")
    os.replace(tmp, path)


def _notify(*, start: bool) -> None:
    """SIGHUP the server so it rereads the directory; start one if none runs and `start`."""
    import signal

    pid = server_pid()
    if pid is not None:
        try:
            os.kill(pid, signal.SIGHUP)
            return
        except ProcessLookupError:
            pass
    if not start:
        return
    prog = program()
    if prog is None:
        return  # no resolver: names do not resolve (system check says why)
    from lamina.errors import RuntimeFailure
    from lamina.runtime.process import capture

    # `run` forks the server (setsid, stdio on /dev/null) and returns once it serves.  Its
    # server must be init's orphan, not ours: a monitor is a child subreaper (its container's
    # init is its child), and would otherwise adopt the server and keep it as a zombie.
    was_subreaper = _subreaper(None)
    if was_subreaper:
        _subreaper(False)
    try:
        code, _, err = capture([prog, "--config", CONFIG_DIR, "-p", str(PORT), "run"])
    finally:
        if was_subreaper:
            _subreaper(True)
    if code != 0:
        raise RuntimeFailure(f"aardvark-dns: {err.decode(errors='replace').strip().splitlines()[-1:] or code}")


def _subreaper(value: bool | None) -> bool:
    """PR_GET_CHILD_SUBREAPER when `value` is None, else PR_SET_CHILD_SUBREAPER."""
    from lamina import libc

    prctl = libc.function("prctl")  # no argtypes: the GET's second argument is an int's address
    if value is None:
        flag = libc.Int(0)
        prctl(37, libc.byref(flag), 0, 0, 0)
        return bool(flag.value)
    prctl(36, int(value), 0, 0, 0)
    return value


def _wait_bound(gateway: str, timeout: float = 2.0) -> bool:
    """Until a UDP socket is bound to gateway:53 in our namespace (the server binds
    after it says it is ready, and after a SIGHUP asynchronously); False if none is."""
    import time

    from lamina.network.addresses import Address

    want = f"{Address(gateway).packed[::-1].hex().upper()}:{PORT:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/net/udp") as f:
                if any(line.split()[1] == want for line in f.readlines()[1:]):
                    return True
        except OSError:
            return True  # cannot tell: go on
        if server_pid() is None:
            return False
        time.sleep(0.005)
    return False


def remove_network(network_key: str) -> None:
    """Forget a network whose last container is gone (`network rm`): its file, if left."""
    path = os.path.join(CONFIG_DIR, network_key)
    if not os.path.exists(path):
        return
    with bridge.locked():
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        _notify(start=False)
