"""A container's place on a bridge network: its own network namespace, a veth
pair into it per network (eth0, eth1, ...), an address on each, a default route
via the first.  The default bridge (`lamina0`) and user-defined networks (their
own `lm-<id12>` bridges, network/registry.py) go through the same code: a
network is a `key` for its address rows ("bridge", or the user network's ID)
and a `bridge.Bridge`.  Made before the runtime starts (config.json names the
namespace by path) and released when the container exits, on `rm`, and for
containers whose lamina process was killed.

Order keeps a crash harmless: the address row is written before the namespace
is made and removed after it is gone, so every namespace file has a row whose
owner pid tells whether it is still in use (`sweep`).  A user network's name
entry (network/dns.py) is written after its veth exists and dropped by the
same `release`.
"""

from __future__ import annotations

import os

from lamina.errors import RuntimeFailure
from lamina.network import bridge, ipam, netlink, netns
from lamina.network.endpointrecord import NETWORK, Endpoint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.network.addresses import Address


def attach(system, container_id: str, network: str = NETWORK, *, aliases=(), mac: str | None = None,
           names=(), dns_servers=(), owner: int | None = None) -> Endpoint:
    """Put a starting container on its first network (this makes its namespace); it
    is ready when this returns.  `names` are what resolves to it on a user network
    (its name, aliases, short ID); `dns_servers` its --dns, used for other names;
    `owner` the pid its address is held for (this process's when None)."""
    key, net, user = _target(system, network)
    sweep(system)
    path = netns.path_for(container_id)
    try:
        address = _claim(system, key, container_id, net, owner)
        if os.path.lexists(path):  # an earlier start's, if its release was cut short
            netns.remove(path)
        with netns.create(path, then=netlink.Socket) as inside:
            address = _plug_free(system, key, container_id, net, path, inside, address, "eth0", True, mac, owner)
        return _finish(key, net, user, container_id, path, address, mac, aliases, names, dns_servers)
    except BaseException:
        release(system, container_id)
        raise


def connect(system, container_id: str, network: str, *, aliases=(), names=(), dns_servers=()) -> Endpoint:
    """Put a running container on one more network: a veth (the next free ethN) into
    its existing namespace, owned by the process that keeps the container."""
    key, net, user = _target(system, network)
    path = netns.path_for(container_id)
    held = ipam.held(system.db, container_id)
    if not held or not os.path.lexists(path):
        raise RuntimeFailure("container sharing network namespace with another container or host cannot be "
                             "connected to any other network")
    owner = held[0][2]
    ifname = _free_ifname(path)
    address = _claim(system, key, container_id, net, owner)
    try:
        with netns.call_in(path, netlink.Socket) as inside:
            address = _plug_free(system, key, container_id, net, path, inside, address, ifname, False, None, owner)
        return _finish(key, net, user, container_id, path, address, None, aliases, names, dns_servers)
    except BaseException:
        disconnect(system, container_id, network)
        raise


def disconnect(system, container_id: str, network: str) -> bool:
    """Take a running container off one network (its veth, address and name entry);
    False when it had no address there."""
    from lamina.network import dns

    key, _, _ = _target(system, network, setup=False)
    found = ipam.lookup(system.db, container_id, key)
    dns.remove(container_id, key)
    if found is None:
        return False
    veth = ipam.veth_name(found[1])
    if os.path.exists(f"/sys/class/net/{veth}"):
        with netlink.Socket() as host:
            try:
                host.delete_link(host.index(veth))  # takes the namespace's end along
            except OSError as e:
                if os.path.exists(f"/sys/class/net/{veth}"):
                    raise RuntimeFailure(f"network {key[:12]}: deleting {veth}: {e.strerror}") from None
    ipam.free(system.db, container_id, key)
    return True


def release(system, container_id: str) -> None:
    """Idempotent: drop its name entries, unmount the namespace (the kernel then
    removes the veth pairs once the container's processes are gone) and free the addresses."""
    if any(f != "aardvark.pid" for f in _listdir(_DNS_DIR)):  # some network resolves names (dns.remove's test)
        from lamina.network import dns

        dns.remove(container_id)
    path = netns.path_for(container_id)
    if os.path.lexists(path):
        netns.remove(path)
    if ipam.lookup(system.db, container_id) is not None:
        ipam.free(system.db, container_id)


_DNS_DIR = os.path.join(bridge.STATE_DIR, "aardvark")  # dns.CONFIG_DIR, without importing it on every exit


def sweep(system) -> int:
    """Release what killed lamina processes left attached; returns how many."""
    from lamina.network import release as release_all  # the one teardown: published ports too

    gone = ipam.abandoned(system.db)
    for container_id in gone:
        release_all(system, container_id)
    if system.db.execute("SELECT 1 FROM ports LIMIT 1").fetchone():  # ports whose address row went first
        from lamina.network import portmap

        portmap.sweep(system)
    return len(gone)


def lookup(system, container_id: str) -> Endpoint | None:
    """The endpoint of an attached container on the default bridge (for inspect)."""
    found = ipam.lookup(system.db, container_id, NETWORK)
    net = bridge.current()
    if found is None or net is None or found[1] not in net.subnet:
        return None
    return Endpoint(found[0], netns.path_for(container_id), found[1], net.subnet.prefixlen, net.gateway,
                    ipam.mac_for(found[1]))


def lookup_all(system, container_id: str) -> list[Endpoint]:
    """Every endpoint of a running container, first attached first (for inspect)."""
    from lamina.network import registry
    from lamina.network.addresses import Address, Subnet

    out = []
    for key, address, _ in ipam.held(system.db, container_id):
        if key == NETWORK:
            ep = lookup(system, container_id)
            if ep is not None:
                out.append(ep)
            continue
        user = registry.find(system.db, key)
        if user is None:
            continue
        subnet = Subnet(user.subnet)
        aliases = next((a for nid, a in registry.memberships(system.db, container_id) if nid == key), [])
        out.append(Endpoint(user.name, netns.path_for(container_id), address, subnet.prefixlen,
                            Address(user.gateway), ipam.mac_for(address), user.id, user.gateway, tuple(aliases)))
    return out


def leaks(system) -> tuple[list[str], list[str]]:
    """(problems, notes) for `system check`: namespace files of this store's containers
    that no address row accounts for, name entries of containers not running,
    addresses held for killed processes, and namespace files no container keeps."""
    problems, notes = [], []
    rows = {cid for (cid,) in system.db.execute("SELECT container_id FROM addresses")}
    try:
        names = os.listdir(netns.NETNS_DIR)
    except OSError:
        names = []
    for name in names:
        if name not in rows and system.db.execute("SELECT 1 FROM containers WHERE id=?", (name,)).fetchone():
            problems.append(f"container {name[:12]}: network namespace {netns.path_for(name)} has no address "
                            "record (`lamina rm` removes it)")
    owned = {cid for (cid,) in system.db.execute("SELECT id FROM containers")} if names else set()
    for path in netns.orphans(owned):  # a note: the dir is every store's, the leak maybe another's
        notes.append(f"network namespace {path}: no container of this store owns it and no process is in it "
                     f"(left by a killed lamina? `umount {path} && rm {path}` removes it)")
    for (cid,) in system.db.execute("SELECT id FROM containers"):
        if cid not in rows and os.path.isdir(_DNS_DIR):
            from lamina.network import dns

            if dns.entries_of(cid):
                problems.append(f"container {cid[:12]}: DNS entry left on network(s) "
                                f"{', '.join(k[:12] for k in dns.entries_of(cid))} (`lamina rm` removes it)")
    if system.db.execute("SELECT 1 FROM networks LIMIT 1").fetchone():
        from lamina.network import dns

        if not dns.available():
            notes.append("aardvark-dns is not installed: names do not resolve on user-defined networks "
                         "(apt-get install aardvark-dns)")
        elif any(f != "aardvark.pid" for f in _listdir(_DNS_DIR)) and dns.server_pid() is None:
            notes.append("aardvark-dns is not running (killed?): names on user-defined networks resolve again "
                         "once a container joins one")
    stale = ipam.abandoned(system.db)
    if stale:
        notes.append(f"{len(stale)} bridge address(es) held for killed lamina processes "
                     "(the next container start releases them)")
    if rows and bridge.current() is not None:
        missing = bridge.rules_missing()
        if missing:
            notes.append(f"bridge {bridge.NAME}: iptables jumps missing ({'; '.join(missing)}): "
                         f"delete {bridge.MARKER} to have the next container re-install them")
    if system.db.execute("SELECT 1 FROM ports LIMIT 1").fetchone():  # published ports (network/portmap.py)
        from lamina.network import portmap

        more = portmap.leaks(system)
        problems, notes = problems + more[0], notes + more[1]
    return problems, notes


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _target(system, network: str, setup: bool = True):
    """(address key, Bridge or None, registry.Network or None) of a network name."""
    if network in ("bridge", "default"):
        return NETWORK, bridge.ensure() if setup else None, None
    from lamina.network import registry

    user = registry.get(system.db, network)
    net = bridge.ensure_user(user.bridge, user.subnet, user.gateway, user.internal) if setup else None
    return user.id, net, user


def _claim(system, key: str, container_id: str, net: bridge.Bridge, owner, reserved=None):
    return ipam.allocate(system.db, key, container_id, net.subnet, reserved or {net.gateway}, owner)


def _plug_free(system, key, container_id, net, path, inside, address, ifname, default_route, mac, owner):
    """Plug `address` in, or the next free one when another store holds it."""
    reserved = {net.gateway}
    for _ in range(256):
        if _plug(address, path, inside, net, ifname, default_route, mac):
            return address
        reserved.add(address)  # another store's container has it
        address = _claim(system, key, container_id, net, owner, reserved)
    raise RuntimeFailure(f"network {key[:12]}: no address on {net.name} is free on this host")


def _finish(key, net, user, container_id, path, address, mac, aliases, names, dns_servers) -> Endpoint:
    nameserver = ""
    if user is not None:
        from lamina.network import dns

        if dns.available():
            dns.add(key, str(net.gateway), container_id, str(address), [*names, *aliases], dns_servers)
            nameserver = str(net.gateway)
    return Endpoint(user.name if user else NETWORK, path, address, net.subnet.prefixlen, net.gateway,
                    mac or ipam.mac_for(address), key if user else "", nameserver, tuple(aliases))


def _free_ifname(path: str) -> str:
    import socket

    taken = {name for _, name in netns.call_in(path, socket.if_nameindex)}
    return next(f"eth{n}" for n in range(len(taken) + 1) if f"eth{n}" not in taken)


def _plug(address: Address, path: str, inside: netlink.Socket, net: bridge.Bridge, ifname: str = "eth0",
          default_route: bool = True, mac: str | None = None) -> bool:
    """Create the veth pair named for `address` (`ifname` in the namespace at `path`, its
    peer in ours, up and on the bridge), and give `ifname` the address and the default
    route through `inside`, a netlink socket of that namespace; False when the name (the
    address) is taken.  What `ip link add ... netns`, `ip link set master`, `ip addr add`
    and `ip route add` ask of the kernel, as rtnetlink requests (netlink.py), not execs."""
    veth = ipam.veth_name(address)
    if os.path.exists(f"/sys/class/net/{veth}"):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netlink.Socket() as host:
            host.add_veth(veth, ifname, peer_netns_fd=fd, peer_mac=mac or ipam.mac_for(address),
                          master=bridge._ifindex(net.name))
        index = inside.index(ifname)
        inside.add_address(index, address, net.subnet.prefixlen, net.subnet.broadcast_address)
        inside.set_up(index)
        inside.set_up(1)  # lo: index 1 in every namespace
        if default_route:
            inside.add_default_route(net.gateway)
    except FileExistsError:
        if os.path.exists(f"/sys/class/net/{veth}"):
            return False  # another store claimed it between our look and our request
        raise RuntimeFailure(f"network {net.name}: veth {veth} into {path}: {ifname} exists there") from None
    except OSError as e:
        raise RuntimeFailure(f"network {net.name}: veth {veth} into {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    return True
