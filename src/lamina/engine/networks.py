"""Network operations: create, list, inspect, remove, connect, disconnect, prune.

User-defined networks are rows (network/registry.py) and kernel bridges with
their rules (network/bridge.py); the built-in `bridge`, `host` and `none` are
listed and inspected but cannot be made or removed, as docker's.  Results are
docker-shaped dicts (GET /networks, /networks/{id}); errors are dockerd's texts.
"""

from __future__ import annotations

import time

from lamina.errors import Conflict, InvalidParameter
from lamina.network import registry
from lamina.network.registry import BUILTIN, Forbidden, Network

FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")


def create(system, name: str, *, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
           internal: bool = False, labels: dict | None = None) -> Network:
    """Record the network and set its bridge up (docker makes it at create too)."""
    from lamina.network import bridge

    if name in ("bridge", "host", "none", "default"):
        raise Forbidden(f"operation is not permitted on predefined {name} network")
    from lamina import rootless

    if rootless():  # a bridge on the host needs root; slirp4netns gives each container its own link
        from lamina.errors import InvalidParameter

        raise InvalidParameter("a rootless lamina has no user-defined networks: containers use the default "
                               "(slirp4netns), host or none")
    default = bridge.current()
    net = registry.create(system.db, name, subnet=subnet, gateway=gateway, internal=internal, labels=labels,
                          driver=driver, taken=bridge.taken_subnets() if subnet is None else None,
                          others=(str(default.subnet),) if default else ())
    try:
        bridge.ensure_user(net.bridge, net.subnet, net.gateway, net.internal)
    except BaseException:
        registry.delete(system.db, net.id)
        raise
    return net


def resolve(system, ref: str) -> Network | str:
    """A user network, or the name of a built-in one (by name or ID)."""
    for name, _ in BUILTIN:
        if ref == name or (len(ref) >= 12 and registry.builtin_id(name).startswith(ref)):
            return name
    return registry.get(system.db, ref)


def listing(system, filters: dict[str, list[str]] | None = None) -> list[dict]:
    """GET /networks: docker's summary of each network that passes `filters`, by name."""
    filters = filters or {}
    for key in filters:
        if key not in FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    items = [inspect(system, name) for name, _ in BUILTIN]
    items += [inspect(system, net) for net in registry.list_all(system.db)]
    return sorted((i for i in items if _passes(system, i, filters)), key=lambda i: i["Name"])


def _passes(system, item: dict, filters: dict) -> bool:
    custom = item["Name"] not in {n for n, _ in BUILTIN}
    for key, values in filters.items():
        if key == "name" and not any(v in item["Name"] for v in values):
            return False
        if key == "id" and not any(item["Id"].startswith(v) for v in values):
            return False
        if key == "driver" and item["Driver"] not in values:
            return False
        if key == "scope" and item["Scope"] not in values:
            return False
        if key == "type":
            for v in values:
                if v not in ("custom", "builtin"):
                    raise InvalidParameter(f"invalid filter: 'type'='{v}'")
            if ("custom" if custom else "builtin") not in values:
                return False
        if key == "label" and not all(_label_matches(item["Labels"] or {}, v) for v in values):
            return False
        if key == "dangling":
            dangling = custom and not item["Containers"]
            if not any((v.lower() in ("true", "1")) == dangling for v in values):
                return False
    return True


def inspect(system, ref) -> dict:
    """GET /networks/{id}: docker's shape (Containers: the running members).  `ref`:
    a name or ID, or a Network."""
    from lamina.network import bridge
    from lamina.units import rfc3339

    net = ref if isinstance(ref, Network) else resolve(system, ref)
    if isinstance(net, str):
        ipam_config, options, prefix = [], {}, None
        if net == "bridge":
            b = bridge.current()
            ipam_config = [{"Subnet": str(b.subnet), "Gateway": str(b.gateway)}] if b else []
            options = {"com.docker.network.bridge.name": bridge.NAME}
            prefix = b.subnet.prefixlen if b else None
        return {
            "Name": net, "Id": registry.builtin_id(net), "Created": rfc3339(_boot_time()), "Scope": "local",
            "Driver": dict(BUILTIN)[net], "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam_config},
            "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": _members(system, "bridge", prefix) if net == "bridge" else {},
            "Options": options, "Labels": {},
        }
    return {
        "Name": net.name, "Id": net.id, "Created": rfc3339(net.created), "Scope": "local", "Driver": net.driver,
        "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": {}, "Config": net.ipam},
        "Internal": net.internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": _members(system, net.id, int(net.subnet.partition("/")[2])),
        "Options": {}, "Labels": net.labels,
    }


def _members(system, key: str, prefix: int | None) -> dict:
    """The running containers holding an address on network `key`, as inspect's Containers."""
    import hashlib

    from lamina.network import ipam
    from lamina.network.addresses import Address

    out = {}
    for cid, address, name in system.db.execute(
            "SELECT a.container_id, a.address, c.name FROM addresses a JOIN containers c ON c.id = a.container_id "
            "WHERE a.network=? ORDER BY a.created", (key,)):
        out[cid] = {"Name": name, "EndpointID": hashlib.sha256(f"{key}/{cid}".encode()).hexdigest(),
                    "MacAddress": ipam.mac_for(Address(address)), "IPv4Address": f"{address}/{prefix or 16}",
                    "IPv6Address": ""}
    return out


def _boot_time() -> float:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return time.time()


def remove(system, ref: str) -> None:
    """DELETE /networks/{id}: refused for built-ins and while a container runs on it."""
    from lamina.network import bridge, dns, endpoint

    net = resolve(system, ref)
    if isinstance(net, str):
        raise Forbidden(f"{net} is a pre-defined network and cannot be removed")
    endpoint.sweep(system)
    if system.db.execute("SELECT 1 FROM addresses WHERE network=? LIMIT 1", (net.id,)).fetchone():
        raise Conflict(f"error while removing network: network {net.name} id {net.id} has active endpoints")
    dns.remove_network(net.id)
    bridge.remove_user(net.bridge, net.subnet, net.gateway, net.internal)
    registry.delete(system.db, net.id)


def prune(system, filters: dict[str, list[str]] | None = None) -> list[str]:
    """POST /networks/prune: remove the user networks no running container is on (and
    that pass `filters`: until, label, label!); their names."""
    from lamina.network import endpoint

    filters = filters or {}
    for key in filters:
        if key not in ("until", "label", "label!"):
            raise InvalidParameter(f"Invalid filter '{key}'")
    until = None
    if filters.get("until"):
        from lamina.logs.since import get_timestamp

        try:
            until = float(get_timestamp(filters["until"][-1]))
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
    endpoint.sweep(system)
    removed = []
    for net in registry.list_all(system.db):
        if until is not None and net.created >= until:
            continue
        if not all(_label_matches(net.labels, v) for v in filters.get("label", ())) \
                or any(_label_matches(net.labels, v) for v in filters.get("label!", ())):
            continue
        if not system.db.execute("SELECT 1 FROM addresses WHERE network=? LIMIT 1", (net.id,)).fetchone():
            remove(system, net.id)
            removed.append(net.name)
    return removed


def _label_matches(labels: dict, spec: str) -> bool:
    key, eq, value = spec.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _builtin_refusal(name: str):
    if name in ("host", "none"):
        raise Forbidden("container cannot be disconnected from host network or connected to host network")
    # docker can; lamina keeps no membership of the default bridge beyond NetworkMode yet
    raise InvalidParameter("connecting a container to, or disconnecting it from, the default bridge is not "
                           "supported yet (use --network at create)")


def connect(system, network: str, container: str, aliases=()) -> None:
    from lamina import network as net_mod

    rec = system.containers.resolve(container)
    target = resolve(system, network)
    if isinstance(target, str):
        _builtin_refusal(target)
    if rec.host_config.get("NetworkMode") == "none":
        raise InvalidParameter("container cannot be connected to multiple networks with one of the networks in "
                               "private (none) mode")
    if rec.host_config.get("NetworkMode") == "host" \
            or str(rec.host_config.get("NetworkMode", "")).startswith("container:"):
        raise InvalidParameter("container sharing network namespace with another container or host cannot be "
                               "connected to any other network")
    net_mod.connect(system, rec, target.id, aliases)


def disconnect(system, network: str, container: str, force: bool = False) -> None:
    from lamina import network as net_mod

    rec = system.containers.resolve(container)
    target = resolve(system, network)
    if isinstance(target, str):
        _builtin_refusal(target)
    net_mod.disconnect(system, rec, target.id)
