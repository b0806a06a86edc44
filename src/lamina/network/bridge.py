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

import os

from lamina.errors import RuntimeFailure
from lamina.leanjson import loads
from lamina.network import netns
from lamina.network.addresses import Address, Subnet
from lamina.record import record

NAME = "lamina0"
# Outside docker's default pools (172.17-31.x, 192.168.x) where we can be; the
# last two are fallbacks for hosts that route all of 10/8.
CANDIDATES = ("10.47.0.0/16", "10.147.0.0/16", "172.31.247.0/24", "192.168.247.0/24")
DOCKER_DEFAULT = "172.17.0.0/16"
FORWARD_CHAIN = "LAMINA-FORWARD"
NAT_CHAIN = "LAMINA-POSTROUTING"
STATE_DIR = os.path.join(netns.RUN_DIR, "network")
MARKER = os.path.join(STATE_DIR, "bridge.json")


@record
class Bridge:
    name: str
    subnet: Subnet
    gateway: Address


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
        _forwarding(NAME)
        _install_rules(bridge)
        _mark(MARKER, bridge)
        return bridge


def _forwarding(name: str) -> None:
    try:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")
    except OSError as e:
        raise RuntimeFailure(f"bridge {name}: cannot turn on net.ipv4.ip_forward: {e.strerror}") from None


def _mark(marker: str, bridge: Bridge) -> None:
    import json

    tmp = f"{marker}.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"subnet": str(bridge.subnet), "gateway": str(bridge.gateway),
                   "ifindex": _ifindex(bridge.name)}, f)
    os.replace(tmp, marker)


# ---------------------------------------------------------------- user-defined networks
#
# Each is its own bridge (`lm-<id12>`, registry.Network.bridge) with its own rules in
# USER_CHAIN (filter, jumped to from FORWARD; nat, from POSTROUTING) and INPUT_CHAIN
# (filter, from INPUT: its resolver on the gateway stays reachable on a host whose
# INPUT policy is DROP): rules are added and deleted one network at a time (`-C` then
# `-A`, `-D`), so a network's set-up or removal never disturbs another's or lamina0's.
# Isolation is docker's: a bridge takes in only its own and replies; traffic to any
# other bridge (docker's, lamina0, another lm-) is dropped; `--internal` has no NAT
# and drops all that would leave the bridge.

USER_CHAIN = "LAMINA-NETWORKS"
INPUT_CHAIN = "LAMINA-NETWORKS-INPUT"
_CHAINS = {"forward": ("filter", USER_CHAIN, "FORWARD"), "nat": ("nat", USER_CHAIN, "POSTROUTING"),
           "input": ("filter", INPUT_CHAIN, "INPUT")}


def ensure_user(name: str, subnet: str, gateway: str, internal: bool) -> Bridge:
    """A user network's bridge, set up (bridge, rules, marker) if not since boot."""
    marker = os.path.join(STATE_DIR, f"{name}.json")
    found = _current(name, marker)
    if found is not None:
        return found
    with _locked():
        found = _current(name, marker)
        if found is not None:
            return found
        netns.prepare_dir()
        net = Subnet(subnet)
        # kept if it exists (the marker was lost, not the bridge): its ports stay enslaved
        make = "" if os.path.exists(f"/sys/class/net/{name}") else f"link add {name} type bridge\n"
        ip("-batch", "-", stdin=f"{make}addr replace {gateway}/{net.prefixlen} dev {name}\n"
                                f"link set {name} up\n")
        bridge = Bridge(name, net, Address(gateway))
        _forwarding(name)
        for kind, rule in _user_rules(name, subnet, gateway, internal):
            table, chain, parent = _CHAINS[kind]
            _iptables(table, "-N", chain, check=False)  # exists already: fine
            if _iptables(table, "-C", parent, "-j", chain, check=False).returncode != 0:
                _iptables(table, "-I", parent, "1", "-j", chain)
            if _iptables(table, "-C", chain, *rule, check=False).returncode != 0:
                _iptables(table, "-A", chain, *rule)
        _mark(marker, bridge)
        return bridge


def remove_user(name: str, subnet: str, gateway: str, internal: bool) -> None:
    """Undo ensure_user (idempotent): the rules, the bridge, the marker."""
    with _locked():
        for kind, rule in _user_rules(name, subnet, gateway, internal):
            table, chain, _ = _CHAINS[kind]
            while _iptables(table, "-D", chain, *rule, check=False).returncode == 0:
                pass
        if os.path.exists(f"/sys/class/net/{name}"):
            ip("link", "del", name)
        try:
            os.unlink(os.path.join(STATE_DIR, f"{name}.json"))
        except FileNotFoundError:
            pass


def _current(name: str, marker: str) -> Bridge | None:
    try:
        with open(marker, "rb") as f:
            data = loads(f.read())
        if data["ifindex"] != _ifindex(name):
            return None
        return Bridge(name, Subnet(data["subnet"]), Address(data["gateway"]))
    except (OSError, ValueError, KeyError):
        return None


def _user_rules(b: str, subnet: str, gateway: str, internal: bool) -> list[tuple[str, list[str]]]:
    rules = [] if internal else [["-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"]]
    rules += [
        ["-i", b, "-o", b, "-j", "ACCEPT"],                # on one network: everything (docker's icc)
        *([] if internal else [["-o", b, "-m", "conntrack", "--ctstate", "DNAT", "-j", "RETURN"]]),  # ports:
        ["-o", b, "-j", "DROP"],                            # portmap.py's; else only replies come in (above)
        *(["-i", b, "-o", other, "-j", "DROP"] for other in ("docker0", "br-+", NAME, "lm-+")),
        ["-i", b, "-j", "DROP" if internal else "ACCEPT"],  # out to the world (NAT below) unless internal
    ]
    out = [("forward", r) for r in rules]
    if not internal:
        out.append(("nat", ["-s", subnet, "!", "-o", b, "-j", "MASQUERADE"]))
    out += [("input", ["-i", b, "-d", gateway, "-p", proto, "--dport", "53", "-j", "ACCEPT"])
            for proto in ("udp", "tcp")]  # the network's resolver (dns.py)
    return out


def current() -> Bridge | None:
    """The bridge as set up by lamina since boot, or None."""
    try:
        with open(MARKER, "rb") as f:
            data = loads(f.read())
        if data["ifindex"] != _ifindex():
            return None
        return Bridge(NAME, Subnet(data["subnet"]), Address(data["gateway"]))
    except (OSError, ValueError, KeyError):
        return None


def rules_missing() -> list[str]:
    """Our jumps that are not in place (someone flushed the tables), for `system check`."""
    missing = []
    for table, chain, jump in (("filter", "FORWARD", FORWARD_CHAIN), ("nat", "POSTROUTING", NAT_CHAIN)):
        if _iptables(table, "-C", chain, "-j", jump, check=False).returncode != 0:
            missing.append(f"{table} {chain} -j {jump}")
    return missing


def _ifindex(name: str = NAME) -> int:
    with open(f"/sys/class/net/{name}/ifindex") as f:
        return int(f.read())


def _existing() -> Bridge | None:
    """A lamina0 left from an earlier set-up this boot (the marker was lost)."""
    if not os.path.exists(f"/sys/class/net/{NAME}"):
        return None
    out = ip("-j", "-4", "addr", "show", "dev", NAME)
    for info in (loads(out) or [{}])[0].get("addr_info", []):
        import ipaddress  # set-up only (as below): a container start parses with network.addresses

        iface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
        return Bridge(NAME, Subnet(str(iface.network)), Address(str(iface.ip)))
    ip("link", "del", NAME)  # no address: remake it whole
    return None


def _create() -> Bridge:
    subnet = choose_subnet()
    gateway = next(subnet.hosts())
    ip("-batch", "-", stdin=f"link add {NAME} type bridge\n"
                            f"addr add {gateway}/{subnet.prefixlen} dev {NAME}\n"
                            f"link set {NAME} up\n")
    return Bridge(NAME, Subnet(str(subnet)), Address(str(gateway)))


def taken_subnets() -> list[ipaddress.IPv4Network]:
    """What a new subnet must not overlap: docker0's default, host routes (other bridges'
    included), nameservers."""
    import ipaddress

    return [ipaddress.ip_network(DOCKER_DEFAULT), *_host_routes(), *_nameservers()]


def choose_subnet() -> ipaddress.IPv4Network:
    """The first candidate that overlaps no host route, no nameserver and not docker0's default."""
    import ipaddress

    taken = taken_subnets()
    for text in CANDIDATES:
        candidate = ipaddress.ip_network(text)
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise RuntimeFailure(f"bridge {NAME}: every candidate subnet ({', '.join(CANDIDATES)}) overlaps a host route")


def _host_routes() -> list[ipaddress.IPv4Network]:
    import ipaddress

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
    import ipaddress

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
            ["-i", b, "-o", "lm-+", "-j", "DROP"],        # and lamina's user networks (USER_CHAIN)
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


def _iptables(table: str, *args: str, check: bool = True):
    import subprocess  # set-up and `system check` only: a container start speaks rtnetlink (netlink.py)

    try:
        p = subprocess.run(["iptables", "-w", "-t", table, *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeFailure("bridge network: iptables is not installed (apt-get install iptables)") from None
    if check and p.returncode != 0:
        raise RuntimeFailure(f"bridge {NAME}: iptables -t {table} {' '.join(args)}: {p.stderr.strip()}")
    return p


def ip(*args: str, stdin: str | None = None) -> str:
    """Run `ip`; a failure is a RuntimeFailure carrying its message."""
    import subprocess

    try:
        p = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeFailure("bridge network: ip is not installed (apt-get install iproute2)") from None
    if p.returncode != 0:
        raise RuntimeFailure(f"bridge {NAME}: ip {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def _batch(argv: list[str], script: str) -> tuple[int, str]:
    """`argv` fed `script` on stdin; (exit code, what it printed).  Started with
    posix_spawn (runtime/process.py): `subprocess` costs ~5 ms of imports."""
    from lamina.runtime.process import spawn

    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe()
    try:
        os.write(in_w, script.encode())  # a few lines: well under a pipe's buffer
        os.close(in_w)
        in_w = -1
        pid = spawn(argv, stdin=in_r, stdout=out_w, stderr=out_w)
    finally:
        for fd in (in_r, in_w, out_w):
            if fd >= 0:
                os.close(fd)
    with open(out_r, "rb") as f:
        output = f.read()
    status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def _tool(name: str) -> str:
    """A program's path on PATH (posix_spawn does not search it)."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(d or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    raise RuntimeFailure(f"bridge network: {name} is not installed (apt-get install iproute2)")


class _locked:
    """The host-wide bridge set-up lock (a class, not @contextmanager: contextlib is import time)."""

    def __enter__(self) -> None:
        import fcntl

        os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
        self.fd = os.open(os.path.join(STATE_DIR, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


locked = _locked  # the host-wide set-up lock, also for the resolver's directory (dns.py)
