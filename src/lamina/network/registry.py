"""User-defined networks as records: the `networks` table (one row a network) and
`network_endpoints` (which containers a network has, with their aliases).

A network is a store's object, as in docker; its kernel bridge (`lm-<id12>`,
network/bridge.py) is the host's and is made again after a reboot by the first
container that needs it.  Membership is kept apart from addresses: a container
belongs to a network from `run --network`/`connect` until `disconnect`/`rm`
(docker's NetworkSettings.Networks), while its address row (network/ipam.py)
lives only while it runs.  The built-in `bridge`, `host` and `none` are not
rows: they are listed with fixed IDs.
"""

from __future__ import annotations

import json
import os
import time

from lamina.errors import Conflict, InvalidParameter, LaminaError, NotFound
from lamina.record import record
from lamina.store.db import transaction

BUILTIN = (("bridge", "bridge"), ("host", "host"), ("none", "null"))  # (name, driver) as docker lists them
# Where auto-picked subnets come from: 10.48-10.146/16, apart from lamina0's candidates
# (10.47, 10.147) and docker's default pools (172.17-31/16, 192.168/20s).
POOL = tuple(f"10.{n}.0.0/16" for n in range(48, 147))
DOCKER_POOLS = ("172.16.0.0/12", "192.168.0.0/16")


class Forbidden(LaminaError):
    """What dockerd refuses on its predefined networks (errdefs.Forbidden)."""

    http_status = 403


class NoSuchNetwork(NotFound):
    """dockerd's text (`network X not found`); `inspect`/`rm` print the CLI's own form."""

    def __init__(self, name: str) -> None:
        super().__init__(f"network {name} not found")
        self.name = name


@record
class Network:
    id: str
    name: str
    driver: str
    subnet: str
    gateway: str
    ipam: list
    internal: bool
    labels: dict
    created: float

    @property
    def bridge(self) -> str:
        """The kernel bridge's name, as docker's br-<id12>."""
        return "lm-" + self.id[:12]  # 15 characters at most (IFNAMSIZ), as docker's br-<id12>


def builtin_id(name: str) -> str:
    """A fixed ID for a built-in network (docker's are random per daemon)."""
    import hashlib

    return hashlib.sha256(f"lamina-network-{name}".encode()).hexdigest()


def create(db, name: str, *, subnet: str | None = None, gateway: str | None = None, internal: bool = False,
           labels: dict | None = None, driver: str = "bridge", taken: list | None = None,
           others: tuple[str, ...] = ()) -> Network:
    """Record a network; `taken` are the subnets in use outside the store (host routes),
    which an auto-picked subnet avoids (a given one may overlap them, as docker's);
    `others` the built-in networks' (lamina0's), which count as the store's own."""
    import ipaddress

    if driver in ("host", "null"):
        raise Forbidden(f'only one instance of "{driver}" network is allowed')
    if driver != "bridge":
        raise InvalidParameter("operation not supported" if driver in ("overlay", "macvlan", "ipvlan")
                               else f'plugin "{driver}" not found')
    if not name:
        raise InvalidParameter("network name must not be empty")
    if name in ("bridge", "host", "none", "default"):
        raise Forbidden(f"operation is not permitted on predefined {name} network")
    given = []
    if subnet is not None:
        try:
            net = ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            raise InvalidParameter(f"Invalid subnet {subnet} : invalid CIDR address: {subnet}") from None
        if net.version != 4:
            raise InvalidParameter("lamina networks are IPv4 only")
        if net.prefixlen > 30:
            raise InvalidParameter(f"Invalid subnet {subnet} : too small for a network")
        given.append({"Subnet": str(net)})
    elif gateway is not None:
        raise InvalidParameter("every ip-range or gateway must have a corresponding subnet")
    with transaction(db):
        if db.execute("SELECT 1 FROM networks WHERE name=?", (name,)).fetchone():
            raise Conflict(f"network with name {name} already exists")
        mine = [ipaddress.ip_network(s) for s in [*others, *(s for (s,) in db.execute("SELECT subnet FROM networks"))]]
        if subnet is None:
            avoid = [*mine, *(taken or ()), *map(ipaddress.ip_network, DOCKER_POOLS)]
            net = next((c for c in map(ipaddress.ip_network, POOL) if not any(c.overlaps(t) for t in avoid)), None)
            if net is None:
                raise InvalidParameter("could not find an available, non-overlapping IPv4 address pool among "
                                       "the defaults to assign to the network")
        elif any(net.overlaps(m) for m in mine):
            raise Conflict("Pool overlaps with other one on this address space")
        if gateway is not None:
            try:
                gw = ipaddress.ip_address(gateway)
            except ValueError:
                raise InvalidParameter(f"invalid gateway address {gateway}") from None
            if gw not in net:
                raise InvalidParameter(f"no matching subnet for gateway {gateway}")
            given[0]["Gateway"] = str(gw)
        else:
            gw = next(net.hosts())
        ipam = given or [{"Subnet": str(net), "Gateway": str(gw)}]
        nid = os.urandom(32).hex()
        db.execute("INSERT INTO networks(id, name, driver, subnet, gateway, ipam, internal, labels, created) "
                   "VALUES (?,?,?,?,?,?,?,?,?)", (nid, name, driver, str(net), str(gw), json.dumps(ipam),
                                                  int(internal), json.dumps(labels or {}), time.time()))
    return get(db, nid)


_COLS = "id, name, driver, subnet, gateway, ipam, internal, labels, created"


def _row(row) -> Network:
    return Network(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), bool(row[6]), json.loads(row[7]),
                   row[8])


def list_all(db) -> list[Network]:
    _forget_removed(db)  # memberships of removed containers go here: `rm` need not know about networks
    return [_row(r) for r in db.execute(f"SELECT {_COLS} FROM networks ORDER BY name")]


def get(db, ref: str) -> Network:
    """By full ID, exact name, or unique ID prefix (docker's order)."""
    row = db.execute(f"SELECT {_COLS} FROM networks WHERE id=?", (ref,)).fetchone() \
        or db.execute(f"SELECT {_COLS} FROM networks WHERE name=?", (ref,)).fetchone()
    if row is None and ref and all(c in "0123456789abcdef" for c in ref):
        rows = db.execute(f"SELECT {_COLS} FROM networks WHERE id LIKE ?", (ref + "%",)).fetchall()
        if len(rows) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(rows)} matches found based on ID prefix)")
        row = rows[0] if rows else None
    if row is None:
        raise NoSuchNetwork(ref)
    return _row(row)


def find(db, ref: str) -> Network | None:
    try:
        return get(db, ref)
    except NoSuchNetwork:
        return None


def delete(db, network_id: str) -> None:
    with transaction(db):
        db.execute("DELETE FROM network_endpoints WHERE network_id=?", (network_id,))
        db.execute("DELETE FROM networks WHERE id=?", (network_id,))


def check_aliases(aliases) -> None:
    """An alias becomes a name in the resolver's config (one line a container, names
    comma-separated): what could break that line or answer for another name is refused."""
    for alias in aliases:
        if not alias or len(alias) > 253 or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in alias):
            raise InvalidParameter(f"invalid network alias {alias!r}: only letters, digits, '-', '_' and '.' "
                                   "(at most 253) make a name")


def join(db, network_id: str, container_id: str, aliases=()) -> None:
    check_aliases(aliases)
    with transaction(db):
        db.execute("INSERT OR REPLACE INTO network_endpoints(network_id, container_id, aliases) VALUES (?,?,?)",
                   (network_id, container_id, json.dumps(list(aliases))))


def leave(db, network_id: str, container_id: str) -> bool:
    with transaction(db):
        return db.execute("DELETE FROM network_endpoints WHERE network_id=? AND container_id=?",
                          (network_id, container_id)).rowcount > 0


def memberships(db, container_id: str) -> list[tuple[str, list[str]]]:
    """(network id, aliases) of a container's user networks, in the order it joined them."""
    return [(nid, json.loads(a)) for nid, a in db.execute(
        "SELECT network_id, aliases FROM network_endpoints WHERE container_id=? ORDER BY rowid", (container_id,))]


def _forget_removed(db) -> None:
    if db.execute("SELECT 1 FROM network_endpoints WHERE container_id NOT IN (SELECT id FROM containers) "
                  "LIMIT 1").fetchone():
        with transaction(db):
            db.execute("DELETE FROM network_endpoints WHERE container_id NOT IN (SELECT id FROM containers)")
