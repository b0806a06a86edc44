"""Published ports of a running container (`-p`, `-P`): host ports claimed in the
store, reserved on the host, and forwarded by the kernel to the container.

Order keeps a crash harmless, as for addresses (endpoint.py): the `ports` rows
are committed BEFORE any rule is installed and deleted AFTER the rules are gone,
so every rule lamina made has a row naming it, with the owner pid that tells
whether it is still in use (`sweep`); `release` (through network.release, the one
teardown) deletes exactly the rules the rows describe and tolerates their absence.

Forwarding is the kernel's, as dockerd's with `--userland-proxy=false`: a DNAT
rule per published port in our own nat chain LAMINA-DNAT, jumped to from
PREROUTING (other hosts) and OUTPUT (this host) for local destination addresses.
Our filter chain LAMINA-PORTS, jumped to first from FORWARD (dockerd's FORWARD
policy is DROP), accepts what conntrack saw DNATed towards lamina's bridges:
only our rules DNAT there (docker's lead to its own bridges), so one static rule
does what docker's ACCEPT per port does, and a container's start and exit change
one table only (each nf_tables commit costs ~9 ms on this VM).

docker reaches 127.0.0.1 through its userland proxy: a process per port, ~10 ms
more per start and its memory for the container's lifetime.  The kernel does it
instead: the bridge gets `route_localnet` (a DNATed 127.0.0.1 packet is then
routed out of it, not dropped as martian) and our nat chain LAMINA-PORTS (from
POSTROUTING) masquerades 127.0.0.0/8 leaving by the bridges, so the container
answers the gateway rather than its own loopback.  Docker's chains are never
touched.

Reservation: the owning process (foreground `run`, or a detached container's
monitor) holds a bound, never listening socket on each host port for the
container's lifetime.  DNAT happens before local delivery, so it receives
nothing; but a host process (or another store's container) binding the port
fails, as it would under docker's proxy, and a port a host process already holds
fails our bind with docker's proxy wording (`address already in use`).  The
socket dies with its process, so a killed owner never leaves a port reserved.
"""

from __future__ import annotations

import os

from lamina.errors import RuntimeFailure
from lamina.network import bridge
from lamina.store.db import pid_alive, transaction

DNAT_CHAIN = "LAMINA-DNAT"   # nat: from PREROUTING and OUTPUT (local destinations)
PORTS_CHAIN = "LAMINA-PORTS"  # filter: from FORWARD (accepts); nat: from POSTROUTING (loopback masquerade)
JUMPS = (
    ("nat", "PREROUTING", ("-m", "addrtype", "--dst-type", "LOCAL"), DNAT_CHAIN),
    ("nat", "OUTPUT", ("-m", "addrtype", "--dst-type", "LOCAL"), DNAT_CHAIN),
    ("nat", "POSTROUTING", (), PORTS_CHAIN),
    ("filter", "FORWARD", (), PORTS_CHAIN),
)
RULES = 3  # the version of what _ensure_chains installs: a marker of another redoes it
BRIDGES = (bridge.NAME, "lm-+")  # lamina0 and the user networks' (registry.Network.bridge: lm-<id12>)
IPPROTO = {"tcp": (1, 6), "udp": (2, 17), "sctp": (1, 132)}  # (socket type, protocol number)

_held: dict = {}  # container id -> this process's reservation sockets


def publish(system, rec, endpoint, host_config: dict) -> list[tuple]:
    """Claim, reserve and forward the container's published ports; returns its rows
    (proto, host_ip, host_port, container_port, address).  On failure what was done
    stays recorded for the caller's network.release."""
    wanted = wanted_ports(host_config, (rec.config or {}).get("ExposedPorts"))
    if not wanted:
        return []
    ifname = _bridge_of(system, endpoint)
    _ensure_chains(ifname)
    sweep(system)
    where = f"driver failed programming external connectivity on endpoint {rec.name} ({rec.id})"
    address = str(endpoint.address)
    socks: list = []
    rows = []
    try:
        with transaction(system.db) as db:
            for proto, container_port, host_ip, low, high in wanted:
                port = _claim(db, socks, proto, host_ip, low, high, where)
                row = (proto, host_ip, port, container_port, address)
                db.execute("INSERT INTO ports(proto, host_ip, host_port, container_id, container_port, address, "
                           "bridge, owner_pid) VALUES (?,?,?,?,?,?,?,?)",
                           (*row[:3], rec.id, *row[3:], ifname, os.getpid()))
                rows.append(row)
    except BaseException:
        for s in socks:
            s.close()
        raise
    _held.setdefault(rec.id, []).extend(socks)
    _hairpin(endpoint.address)
    code, out = _restore(_script(rec.id, rows, "-A"))
    if code != 0:
        raise RuntimeFailure(f"{where}: iptables-restore: {out.strip()}")
    return rows


def wanted_ports(host_config: dict, exposed) -> list[tuple]:
    """(proto, container port, host ip, low, high) per binding: PortBindings, and with
    PublishAllPorts every other exposed port on an ephemeral port (low = high = 0
    means the host's ephemeral range, as docker allocates a missing HostPort)."""
    from lamina.network.ports import parse_range, split_proto_port

    bindings = dict(host_config.get("PortBindings") or {})
    if host_config.get("PublishAllPorts"):
        for key in exposed or ():
            bindings.setdefault(key, [{"HostIp": "", "HostPort": ""}])
    out = []
    for key, binds in bindings.items():
        proto, port = split_proto_port(key)
        if proto not in IPPROTO:  # `--expose 80/xyz` is recorded as docker's; nothing can publish it
            continue
        for b in binds or [{}]:
            low, high = parse_range(b.get("HostPort") or "0")
            out.append((proto, int(port), b.get("HostIp") or "0.0.0.0", low, high))
    return out


def release(system, container_id: str) -> None:
    """Idempotent: delete the container's rules (each on its own when a batch finds
    some gone), then its rows; close this process's reservations."""
    rows = system.db.execute("SELECT proto, host_ip, host_port, container_port, address FROM ports "
                             "WHERE container_id=? ORDER BY rowid", (container_id,)).fetchall()
    if rows:
        code, _ = _restore(_script(container_id, rows, "-D"))
        if code != 0:  # a release cut short took some already
            for table, chain, rule in _rules(container_id, rows):
                bridge._iptables(table, "-D", chain, *rule, check=False)
        with transaction(system.db) as db:
            db.execute("DELETE FROM ports WHERE container_id=?", (container_id,))
    for s in _held.pop(container_id, ()):
        s.close()


def sweep(system) -> int:
    """Release the ports of containers whose owning lamina process is gone."""
    gone = abandoned(system.db)
    for container_id in gone:
        release(system, container_id)
    return len(gone)


def abandoned(db) -> list[str]:
    rows = db.execute("SELECT DISTINCT container_id, owner_pid FROM ports").fetchall()
    return sorted({cid for cid, pid in rows if not pid_alive(pid)})


def leaks(system) -> tuple[list[str], list[str]]:
    """(problems, notes) for `system check`: ports held for killed processes, rows of
    containers this store no longer has, and our chains' jumps gone missing."""
    problems, notes = [], []
    stale = abandoned(system.db)
    if stale:
        notes.append(f"published ports of {len(stale)} container(s) held for killed lamina processes "
                     "(the next container start releases them)")
    for (cid,) in system.db.execute("SELECT DISTINCT container_id FROM ports WHERE container_id NOT IN "
                                    "(SELECT id FROM containers)"):
        problems.append(f"container {cid[:12]}: published ports recorded for a removed container")
    if system.db.execute("SELECT 1 FROM ports LIMIT 1").fetchone():
        missing = [f"{t} {parent} -j {chain}" for t, parent, match, chain in JUMPS
                   if bridge._iptables(t, "-C", parent, *match, "-j", chain, check=False).returncode != 0]
        if missing:
            notes.append(f"published ports: iptables jumps missing ({'; '.join(missing)}): delete "
                         f"{bridge.STATE_DIR}/ports-*.json to have the next published port re-install them")
    return problems, notes


def _claim(db, socks: list, proto: str, host_ip: str, low: int, high: int, where: str) -> int:
    """A free host port in low..high (0..0: the ephemeral range), recorded by no
    container of this store and bindable on the host; its socket goes to `socks`."""
    if ":" in host_ip:
        raise RuntimeFailure(f"{where}: publishing on the IPv6 address {host_ip} is not supported "
                             "(lamina's bridge is IPv4 only)")
    fixed = low == high and low != 0
    if not fixed and low == high:
        low, high = _ephemeral_range()
    for port in range(low, high + 1):
        if db.execute("SELECT 1 FROM ports WHERE proto=? AND host_ip=? AND host_port=?",
                      (proto, host_ip, port)).fetchone():
            if fixed:
                raise RuntimeFailure(f"{where}: Bind for {host_ip}:{port} failed: port is already allocated")
            continue
        try:
            sock = _reserve(proto, host_ip, port)
        except OSError as e:
            if fixed:
                why = e.strerror[:1].lower() + e.strerror[1:] if e.strerror else str(e)
                raise RuntimeFailure(f"{where}: Error starting userland proxy: listen {proto}4 {host_ip}:{port}: "
                                     f"bind: {why}") from None
            continue
        if sock is not None:
            socks.append(sock)
        return port
    raise RuntimeFailure(f"{where}: all ports are allocated")


def _reserve(proto: str, host_ip: str, port: int):
    """A bound socket on the port (no SO_REUSEADDR: so no one else binds it); None for
    a protocol the kernel has no sockets for here (sctp without its module)."""
    import _socket  # the C module: socket.py's enums cost more than this

    kind, number = IPPROTO[proto]
    try:
        sock = _socket.socket(_socket.AF_INET, kind, number)
    except OSError:
        if proto == "sctp":
            return None
        raise
    try:
        sock.bind((host_ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _ephemeral_range() -> tuple[int, int]:
    """The host's ephemeral range, where docker's allocator takes a missing host port."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
        return low, high
    except (OSError, ValueError):
        return 49153, 65535  # docker's fallback


def _rules(container_id: str, rows) -> list[tuple[str, str, list[str]]]:
    tag = ["-m", "comment", "--comment", f"lamina:{container_id}"]
    out = []
    for proto, host_ip, host_port, container_port, address in rows:
        dest = [] if host_ip == "0.0.0.0" else ["-d", f"{host_ip}/32"]
        out.append(("nat", DNAT_CHAIN, ["-p", proto, *dest, "-m", proto, "--dport", str(host_port), *tag,
                                        "-j", "DNAT", "--to-destination", f"{address}:{container_port}"]))
        # hairpin: the container itself through a host address; answered via the gateway (docker's rule)
        out.append(("nat", PORTS_CHAIN, ["-s", f"{address}/32", "-d", f"{address}/32", "-p", proto, "-m", proto,
                                         "--dport", str(container_port), *tag, "-j", "MASQUERADE"]))
    return out


def _script(container_id: str, rows, op: str) -> str:
    """One iptables-restore --noflush input for all of a container's rules (one exec)."""
    tables: dict = {"nat": []}
    for table, chain, rule in _rules(container_id, rows):
        tables[table].append(" ".join([op, chain, *rule]))
    return "".join(f"*{t}\n" + "".join(f"{line}\n" for line in lines) + "COMMIT\n" for t, lines in tables.items())


def _restore(script: str) -> tuple[int, str]:
    from lamina.network import restore  # until the commit, not the exit: see restore.py

    try:
        return restore.run([bridge._tool("iptables-restore"), "--noflush"], script)
    except RuntimeFailure:
        raise RuntimeFailure("published ports: iptables-restore is not installed (apt-get install iptables)") \
            from None


def _bridge_of(system, endpoint) -> str:
    """The host interface the container's first network is (lamina0 or a user network's bridge)."""
    if not getattr(endpoint, "network_id", ""):
        return bridge.NAME
    from lamina.network import registry

    return registry.find(system.db, endpoint.network_id).bridge


def _hairpin(address) -> None:
    """Let the bridge send the container's own packets back to it (its port's hairpin
    mode, as dockerd sets it without the userland proxy): a sysfs write, gone with the veth."""
    from lamina.network.ipam import veth_name

    try:
        with open(f"/sys/class/net/{veth_name(address)}/brport/hairpin_mode", "w") as f:
            f.write("1")
    except OSError:
        pass  # not on a bridge port here: only the hairpin case is missing


def _ensure_chains(ifname: str) -> None:
    """Our chains, their static rules and jumps, and the bridge's loopback forwarding;
    once per bridge and boot (a marker holds the bridge's ifindex, as bridge.py's does):
    a user network's set-up inserts its chain first in FORWARD, so ours is put back
    before it."""
    marker = os.path.join(bridge.STATE_DIR, f"ports-{ifname}.json")
    mark = f'{{"ifindex": {bridge._ifindex(ifname)}, "rules": {RULES}}}'
    if _marked(marker) == mark:
        return
    with bridge._locked():
        if _marked(marker) == mark:
            return
        for table, chain in (("nat", DNAT_CHAIN), ("nat", PORTS_CHAIN), ("filter", PORTS_CHAIN)):
            bridge._iptables(table, "-N", chain, check=False)  # exists already: fine
        for table, parent, match, chain in JUMPS:
            first = bridge._iptables(table, "-S", parent, "1", check=False).stdout.strip()
            if first != " ".join(["-A", parent, *match, "-j", chain]):
                # first, before the chains other networks insert at the top (their DROPs)
                while bridge._iptables(table, "-D", parent, *match, "-j", chain, check=False).returncode == 0:
                    pass
                bridge._iptables(table, "-I", parent, "1", *match, "-j", chain)
        for out in BRIDGES:  # static: no rule to remove with a user network
            for table, rule in (("nat", ["-s", "127.0.0.0/8", "-o", out, "-j", "MASQUERADE"]),
                                ("filter", ["-o", out, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"])):
                if bridge._iptables(table, "-C", PORTS_CHAIN, *rule, check=False).returncode != 0:
                    bridge._iptables(table, "-A", PORTS_CHAIN, *rule)
        try:
            with open(f"/proc/sys/net/ipv4/conf/{ifname}/route_localnet", "w") as f:
                f.write("1")
        except OSError as e:
            raise RuntimeFailure(f"bridge {ifname}: cannot turn on route_localnet: {e.strerror}") from None
        tmp = f"{marker}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(mark)
        os.replace(tmp, marker)


def _marked(marker: str) -> str | None:
    try:
        with open(marker) as f:
            return f.read()
    except OSError:
        return None
