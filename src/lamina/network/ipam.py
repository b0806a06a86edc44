"""Addresses on a network, allocated in the store's database.

One transaction picks the lowest free host address and records it, so two
lamina processes on one store never get the same one.  The bridge, though, is
the host's, shared by every store: the host end of a container's veth is named
after its address (`veth_name`), and interface names are unique in the host's
namespace, so creating it is the host-wide claim.  An existing name means
another store (or a namespace still dying) holds the address: the caller skips
it and allocates again.
"""

from __future__ import annotations

import os
import time

from lamina.errors import RuntimeFailure
from lamina.network.addresses import Address
from lamina.store.db import pid_alive, transaction

TYPE_CHECKING = False
if TYPE_CHECKING:  # the values are network.addresses' (or ipaddress's, which work the same here)
    import ipaddress


def allocate(db, network: str, container_id: str, subnet: ipaddress.IPv4Network,
             reserved: set[ipaddress.IPv4Address], owner_pid: int | None = None) -> ipaddress.IPv4Address:
    """Record and return the lowest free address of `subnet` not in `reserved`
    (the gateway, and addresses found claimed by another store); replaces the
    container's earlier address, if any, in the same transaction."""
    with transaction(db):
        db.execute("DELETE FROM addresses WHERE network=? AND container_id=?", (network, container_id))
        used = {row[0] for row in db.execute("SELECT address FROM addresses WHERE network=?", (network,))}
        for address in subnet.hosts():
            if address in reserved or str(address) in used:
                continue
            db.execute("INSERT INTO addresses(network, address, container_id, owner_pid, created) "
                       "VALUES (?,?,?,?,?)",
                       (network, str(address), container_id, owner_pid or os.getpid(), time.time()))
            return address
    raise RuntimeFailure(f"network {network}: no free address left in {subnet}")


def free(db, container_id: str, network: str | None = None) -> None:
    """Free a container's addresses: all of them, or its address on `network`."""
    with transaction(db):
        if network is None:
            db.execute("DELETE FROM addresses WHERE container_id=?", (container_id,))
        else:
            db.execute("DELETE FROM addresses WHERE container_id=? AND network=?", (container_id, network))


def lookup(db, container_id: str, network: str | None = None) -> tuple[str, ipaddress.IPv4Address] | None:
    """(network, address) of the container's first address, or of its address on `network`."""
    if network is None:
        row = db.execute("SELECT network, address FROM addresses WHERE container_id=? ORDER BY created",
                         (container_id,)).fetchone()
    else:
        row = db.execute("SELECT network, address FROM addresses WHERE container_id=? AND network=?",
                         (container_id, network)).fetchone()
    return (row[0], Address(row[1])) if row else None


def held(db, container_id: str) -> list[tuple[str, ipaddress.IPv4Address, int]]:
    """(network, address, owner pid) of each address a container holds, first attached first."""
    return [(n, Address(a), pid) for n, a, pid in db.execute(
        "SELECT network, address, owner_pid FROM addresses WHERE container_id=? ORDER BY created", (container_id,))]


def abandoned(db) -> list[str]:
    """Containers whose address is held for a lamina process that is gone (killed)."""
    rows = db.execute("SELECT container_id, owner_pid FROM addresses").fetchall()
    return [cid for cid, pid in rows if not pid_alive(pid)]


def veth_name(address: ipaddress.IPv4Address) -> str:
    """`lm` + the address in hex: at most 15 characters (IFNAMSIZ), one per address."""
    return "lm" + address.packed.hex()


def mac_for(address: ipaddress.IPv4Address) -> str:
    """docker's scheme: 02:42 and the four address bytes (a reused address keeps its
    MAC, so neighbours' ARP caches never go stale)."""
    return ":".join(f"{b:02x}" for b in b"\x02\x42" + address.packed)
