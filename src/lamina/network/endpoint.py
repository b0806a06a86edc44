"""A container's place on the bridge: its own network namespace, a veth pair
into it, an address, a default route via the bridge.  Made before the runtime
starts (config.json names the namespace by path) and released when the
container exits, on `rm`, and for containers whose lamina process was killed.

Order keeps a crash harmless: the address row is written before the namespace
is made and removed after it is gone, so every namespace file has a row whose
owner pid tells whether it is still in use (`sweep`).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass

from lamina.errors import RuntimeFailure
from lamina.network import bridge, ipam, netns

NETWORK = "bridge"


@dataclass(frozen=True)
class Endpoint:
    network: str
    netns: str
    address: ipaddress.IPv4Address
    prefixlen: int
    gateway: ipaddress.IPv4Address
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
            if _plug(address, path):
                break
            reserved.add(address)  # another store's container has it
            address = ipam.allocate(system.db, NETWORK, container_id, net.subnet, reserved)
        else:
            raise RuntimeFailure(f"network {NETWORK}: no address on {bridge.NAME} is free on this host")
        _configure(path, address, net)
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


def _plug(address: ipaddress.IPv4Address, path: str) -> bool:
    """Create the veth pair named for `address` into the namespace at `path` and put
    its host end on the bridge; False when the name (the address) is taken."""
    veth = ipam.veth_name(address)
    if os.path.exists(f"/sys/class/net/{veth}"):
        return False
    p = subprocess.run(["ip", "-batch", "-"], capture_output=True, text=True, input=(
        f"link add {veth} type veth peer name eth0 address {ipam.mac_for(address)} netns {path}\n"
        f"link set {veth} master {bridge.NAME} up\n"))
    if p.returncode == 0:
        return True
    if "-:1" in p.stderr and os.path.exists(f"/sys/class/net/{veth}"):
        return False  # another store claimed it between our look and our `link add`
    raise RuntimeFailure(f"network {NETWORK}: veth {veth}: {p.stderr.strip()}")


def _configure(path: str, address: ipaddress.IPv4Address, net: bridge.Bridge) -> None:
    script = (f"link set lo up\n"
              f"addr add {address}/{net.subnet.prefixlen} brd + dev eth0\n"
              f"link set eth0 up\n"
              f"route add default via {net.gateway}\n")
    p = subprocess.run(["nsenter", f"--net={path}", "ip", "-batch", "-"], input=script,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeFailure(f"network {NETWORK}: configuring {path}: {p.stderr.strip()}")
