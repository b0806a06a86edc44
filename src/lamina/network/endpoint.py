"""A container's place on the bridge: its own network namespace, a veth pair
into it, an address, a default route via the bridge.  Made before the runtime
starts (config.json names the namespace by path) and released when the
container exits, on `rm`, and for containers whose lamina process was killed.

Order keeps a crash harmless: the address row is written before the namespace
is made and removed after it is gone, so every namespace file has a row whose
owner pid tells whether it is still in use (`sweep`).
"""

from __future__ import annotations

import os

from lamina.errors import RuntimeFailure
from lamina.network import bridge, ipam, netns
from lamina.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.network.addresses import Address

NETWORK = "bridge"


@record
class Endpoint:
    network: str
    netns: str
    address: Address
    prefixlen: int
    gateway: Address
    mac: str


def attach(system, container_id: str) -> Endpoint:
    """Put a container on the default bridge; its namespace is ready when this returns."""
    net = bridge.ensure()
    sweep(system)
    path = netns.path_for(container_id)
    reserved = {net.gateway}
    try:
        address = ipam.allocate(system.db, NETWORK, container_id, net.subnet, reserved)
        if os.path.lexists(path):  # an earlier start's, if its release was cut short
            netns.remove(path)
        netns.create(path)
        for _ in range(256):
            if _plug(address, path, net):
                break
            reserved.add(address)  # another store's container has it
            address = ipam.allocate(system.db, NETWORK, container_id, net.subnet, reserved)
        else:
            raise RuntimeFailure(f"network {NETWORK}: no address on {bridge.NAME} is free on this host")
    except BaseException:
        release(system, container_id)
        raise
    return Endpoint(NETWORK, path, address, net.subnet.prefixlen, net.gateway, ipam.mac_for(address))


def release(system, container_id: str) -> None:
    """Idempotent: unmount the namespace (the kernel then removes the veth pair once
    the container's processes are gone) and free the address."""
    path = netns.path_for(container_id)
    if os.path.lexists(path):
        netns.remove(path)
    if ipam.lookup(system.db, container_id) is not None:
        ipam.free(system.db, container_id)


def sweep(system) -> int:
    """Release what killed lamina processes left attached; returns how many."""
    gone = ipam.abandoned(system.db)
    for container_id in gone:
        release(system, container_id)
    return len(gone)


def lookup(system, container_id: str) -> Endpoint | None:
    """The endpoint of an attached container (for inspect), from its row and the bridge."""
    found = ipam.lookup(system.db, container_id)
    net = bridge.current()
    if found is None or net is None or found[1] not in net.subnet:
        return None
    return Endpoint(found[0], netns.path_for(container_id), found[1], net.subnet.prefixlen, net.gateway,
                    ipam.mac_for(found[1]))


def leaks(system) -> tuple[list[str], list[str]]:
    """(problems, notes) for `system check`: namespace files of this store's containers
    that no address row accounts for, and addresses held for killed processes."""
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
    stale = ipam.abandoned(system.db)
    if stale:
        notes.append(f"{len(stale)} bridge address(es) held for killed lamina processes "
                     "(the next container start releases them)")
    if rows and bridge.current() is not None:
        missing = bridge.rules_missing()
        if missing:
            notes.append(f"bridge {bridge.NAME}: iptables jumps missing ({'; '.join(missing)}): "
                         f"delete {bridge.MARKER} to have the next container re-install them")
    return problems, notes


def _plug(address: Address, path: str, net: bridge.Bridge) -> bool:
    """Create the veth pair named for `address` (eth0 in the namespace at `path`, its
    peer in ours), configure the namespace's side, and put the host end on the bridge;
    False when the name (the address) is taken.  One `ip` process, started in the
    namespace (netns.call_in): the peer is created straight into lamina's own namespace
    (the main thread's, which never leaves it), and the host end is enslaved and
    brought up with two ioctls (bridge.enslave) instead of a second `ip`."""
    veth = ipam.veth_name(address)
    if os.path.exists(f"/sys/class/net/{veth}"):
        return False
    script = (f"link add eth0 address {ipam.mac_for(address)} type veth peer name {veth} "
              f"netns /proc/{os.getpid()}/ns/net\n"
              f"link set lo up\n"
              f"addr add {address}/{net.subnet.prefixlen} brd + dev eth0\n"
              f"link set eth0 up\n"
              f"route add default via {net.gateway}\n")
    code, err = bridge.batch(script, netns_path=path)
    if code != 0:
        if "-:1" in err and os.path.exists(f"/sys/class/net/{veth}"):
            return False  # another store claimed it between our look and our `link add`
        raise RuntimeFailure(f"network {NETWORK}: veth {veth} into {path}: {err.strip()}")
    bridge.enslave(veth)
    return True
