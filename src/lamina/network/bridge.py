"""The default bridge `lamina0`: set up once per boot and kept, like docker0.

The first container after boot (under a host-wide lock) picks a subnet that no
host route uses, makes the bridge with the gateway address, turns on IPv4
forwarding and installs lamina's own iptables chains.  Docker's chains and rules
are never touched: dockerd sets the FORWARD policy to DROP, so LAMINA-FORWARD,
jumped to first from FORWARD, accepts our bridge's traffic before that policy
applies; LAMINA-POSTROUTING masquerades what leaves the subnet.  A marker file
records the bridge's ifindex, so every later container reads two small files
instead of asking the kernel (a bridge deleted by hand is noticed and redone).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass

from lamina.errors import RuntimeFailure
from lamina.network import netns

NAME = "lamina0"
# Outside docker's default pools (172.17-31.x, 192.168.x) where we can be; the
# last two are fallbacks for hosts that route all of 10/8.
CANDIDATES = ("10.47.0.0/16", "10.147.0.0/16", "172.31.247.0/24", "192.168.247.0/24")
DOCKER_DEFAULT = ipaddress.ip_network("172.17.0.0/16")
FORWARD_CHAIN = "LAMINA-FORWARD"
NAT_CHAIN = "LAMINA-POSTROUTING"
STATE_DIR = os.path.join(netns.RUN_DIR, "network")
MARKER = os.path.join(STATE_DIR, "bridge.json")


@dataclass(frozen=True)
class Bridge:
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address


def ensure() -> Bridge:
    """The bridge, set up if this is the first use since boot (or it was removed)."""
    found = current()
    if found is not None:
        return found
    with _locked():
        found = current()
        if found is not None:
            return found
        netns.prepare_dir()
        bridge = _existing() or _create()
        try:
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("1")
        except OSError as e:
            raise RuntimeFailure(f"bridge {NAME}: cannot turn on net.ipv4.ip_forward: {e.strerror}") from None
        _install_rules(bridge)
        tmp = f"{MARKER}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"subnet": str(bridge.subnet), "gateway": str(bridge.gateway),
                       "ifindex": _ifindex()}, f)
        os.replace(tmp, MARKER)
        return bridge


def current() -> Bridge | None:
    """The bridge as set up by lamina since boot, or None."""
    try:
        with open(MARKER) as f:
            data = json.load(f)
        if data["ifindex"] != _ifindex():
            return None
        return Bridge(NAME, ipaddress.ip_network(data["subnet"]), ipaddress.ip_address(data["gateway"]))
    except (OSError, ValueError, KeyError):
        return None


def rules_missing() -> list[str]:
    """Our jumps that are not in place (someone flushed the tables), for `system check`."""
    missing = []
    for table, chain, jump in (("filter", "FORWARD", FORWARD_CHAIN), ("nat", "POSTROUTING", NAT_CHAIN)):
        if _iptables(table, "-C", chain, "-j", jump, check=False).returncode != 0:
            missing.append(f"{table} {chain} -j {jump}")
    return missing


def _ifindex() -> int:
    with open(f"/sys/class/net/{NAME}/ifindex") as f:
        return int(f.read())


def _existing() -> Bridge | None:
    """A lamina0 left from an earlier set-up this boot (the marker was lost)."""
    if not os.path.exists(f"/sys/class/net/{NAME}"):
        return None
    out = ip("-j", "-4", "addr", "show", "dev", NAME)
    for info in (json.loads(out) or [{}])[0].get("addr_info", []):
        iface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
        return Bridge(NAME, iface.network, iface.ip)
    ip("link", "del", NAME)  # no address: remake it whole
    return None


def _create() -> Bridge:
    subnet = choose_subnet()
    gateway = next(subnet.hosts())
    ip("-batch", "-", stdin=f"link add {NAME} type bridge\n"
                            f"addr add {gateway}/{subnet.prefixlen} dev {NAME}\n"
                            f"link set {NAME} up\n")
    return Bridge(NAME, subnet, gateway)


def choose_subnet() -> ipaddress.IPv4Network:
    """The first candidate that overlaps no host route, no nameserver and not docker0's default."""
    taken = [DOCKER_DEFAULT, *_host_routes(), *_nameservers()]
    for text in CANDIDATES:
        candidate = ipaddress.ip_network(text)
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise RuntimeFailure(f"bridge {NAME}: every candidate subnet ({', '.join(CANDIDATES)}) overlaps a host route")


def _host_routes() -> list[ipaddress.IPv4Network]:
    out = []
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            dest, mask = (int(fields[i], 16).to_bytes(4, "little") for i in (1, 7))
            if mask != b"\0\0\0\0":  # the default route overlaps everything: not a conflict
                out.append(ipaddress.ip_network((ipaddress.IPv4Address(dest), str(ipaddress.IPv4Address(mask))),
                                                strict=False))
    return out


def _nameservers() -> list[ipaddress.IPv4Network]:
    from lamina.network.resolvconf import nameservers

    return [ipaddress.ip_network(a) for a in nameservers() if ipaddress.ip_address(a).version == 4]


def _install_rules(bridge: Bridge) -> None:
    """Idempotent: our chains are flushed and refilled, our jumps added once."""
    b = NAME
    rules = {
        ("filter", FORWARD_CHAIN, "FORWARD"): [
            ["-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
            ["-i", b, "-o", b, "-j", "ACCEPT"],           # container to container (docker's icc)
            ["-o", b, "-j", "DROP"],                       # nothing else comes in: no published ports yet
            ["-i", b, "-o", "docker0", "-j", "DROP"],      # stay out of docker's networks, as docker
            ["-i", b, "-o", "br-+", "-j", "DROP"],         # keeps its own apart
            ["-i", b, "-j", "ACCEPT"],                     # out to the world, through NAT below
        ],
        ("nat", NAT_CHAIN, "POSTROUTING"): [
            ["-s", str(bridge.subnet), "!", "-o", b, "-j", "MASQUERADE"],
        ],
    }
    for (table, chain, parent), body in rules.items():
        _iptables(table, "-N", chain, check=False)  # exists already: fine
        _iptables(table, "-F", chain)
        for rule in body:
            _iptables(table, "-A", chain, *rule)
        if _iptables(table, "-C", parent, "-j", chain, check=False).returncode != 0:
            _iptables(table, "-I", parent, "1", "-j", chain)


def _iptables(table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(["iptables", "-w", "-t", table, *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeFailure("bridge network: iptables is not installed (apt-get install iptables)") from None
    if check and p.returncode != 0:
        raise RuntimeFailure(f"bridge {NAME}: iptables -t {table} {' '.join(args)}: {p.stderr.strip()}")
    return p


def ip(*args: str, stdin: str | None = None) -> str:
    """Run `ip`; a failure is a RuntimeFailure carrying its message."""
    try:
        p = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeFailure("bridge network: ip is not installed (apt-get install iproute2)") from None
    if p.returncode != 0:
        raise RuntimeFailure(f"bridge {NAME}: ip {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


@contextmanager
def _locked():
    os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(STATE_DIR, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
