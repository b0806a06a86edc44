"""Container networking: docker's default bridge (`lamina0`), host and none.

`--network` values: `bridge`/`default` (the default: a private namespace on
the bridge, NAT to the outside), `host` (the host's namespace, only when asked
for), `none` (a private namespace with loopback only), the name or ID of a
user-defined network (`network create`: its own bridge, names resolved by
aardvark-dns; registry.py, dns.py), `container:NAME` (another running
container's namespace).  A container on user networks joins all of them at
start (`network connect` while it was stopped recorded the others).

`release(system, container_id)` undoes everything a container's network set-up
made (its netns mount, and with it the veth pair, and its address row); it is
idempotent, so the exit path, `rm`, recovery and the watchdog may all call it.
"""

from __future__ import annotations

BRIDGE_MODES = ("default", "bridge")
MODES = (*BRIDGE_MODES, "host", "none")


def is_default(network_mode: str | None) -> bool:
    """Whether a --network value means the default network (the bridge): `default`,
    `bridge`, or not given.  A build records it as "default" (its cache keys and
    memo), a RUN --network=default takes the build's."""
    return not network_mode or network_mode in BRIDGE_MODES


def mode(network_mode: str) -> str:
    """What a recorded HostConfig.NetworkMode means: "bridge", "host", "none",
    "container:<name|id>" or a user network's name."""
    return "bridge" if network_mode in BRIDGE_MODES else network_mode


def check_mode(system, network_mode: str) -> None:
    """That a NetworkMode can be started: built-in, `container:X` (checked at start),
    or an existing user network (dockerd's `network X not found`)."""
    if network_mode in MODES or network_mode.startswith("container:"):
        return
    from lamina.network.registry import get

    get(system.db, network_mode)


def attach(system, container_id: str, network: str = "bridge", rec=None, owner: int | None = None):
    """Put a container on its network(s) before it starts; returns its first `Endpoint`
    (namespace path, address).  `rec`, the container's record, gives what resolves to
    it on user networks (name, short ID, aliases), its MAC address and --dns servers.
    `owner`: the pid its address is held for, when not this process (network/handoff.py)."""
    from lamina import rootless
    from lamina.network import endpoint

    if rootless() and not network.startswith("container:"):  # no bridge for an ordinary user: slirp4netns
        from lamina.network import slirp

        return slirp.attach(system, container_id, network, rec.host_config if rec is not None else {},
                            (rec.config or {}).get("ExposedPorts") if rec is not None else None)
    if network.startswith("container:"):
        from lamina.network.shared import join

        return join(system, container_id, network.partition(":")[2])
    if rec is None:
        return endpoint.attach(system, container_id, network)
    joined = []
    if network not in BRIDGE_MODES or _has_rows(system, container_id):  # registry imports json: not for a plain bridge start
        from lamina.network.registry import memberships

        joined = memberships(system.db, container_id)
    names = (rec.name, rec.id[:12])
    dns_servers = tuple(rec.host_config.get("Dns") or ())
    first_id = None if network in BRIDGE_MODES else _network_id(system, network)
    aliases = next((a for nid, a in joined if nid == first_id), ())
    mac = (rec.config.get("MacAddress") or "").replace("-", ":") or None  # ip(8) takes the colon form
    ep = endpoint.attach(system, container_id, network, aliases=aliases, mac=mac, names=names,
                         dns_servers=dns_servers, owner=owner)
    try:
        for nid, more in joined:
            if nid != first_id:
                endpoint.connect(system, container_id, nid, aliases=more, names=names, dns_servers=dns_servers)
    except BaseException:
        endpoint.release(system, container_id)
        raise
    return ep


def join_at_create(system, container_id: str, network: str, aliases=()) -> None:
    """`create --network NAME`: the container belongs to that user network from now on
    (an unknown name is recorded as docker records it: starting it fails)."""
    from lamina.network.registry import find, join

    net = find(system.db, network)
    if net is not None:
        join(system.db, net.id, container_id, aliases)


def _has_rows(system, container_id: str) -> bool:
    """Whether the container belongs to a user network (one small query, no registry import)."""
    return system.db.execute("SELECT 1 FROM network_endpoints WHERE container_id=? LIMIT 1",
                             (container_id,)).fetchone() is not None


def _network_id(system, network: str) -> str:
    from lamina.network.registry import get

    return get(system.db, network).id


def release(system, container_id: str) -> None:
    """Tear down a container's network (published ports' rules and rows, netns mount,
    veth, address row); idempotent.  Ports first: their rules lead to the address."""
    import sys

    from lamina import rootless

    if rootless():
        from lamina.network import slirp

        slirp.release(system, container_id)
        return
    from lamina.network.endpoint import release as _release

    if "lamina.network.portmap" in sys.modules or system.db.execute(
            "SELECT 1 FROM ports WHERE container_id=? LIMIT 1", (container_id,)).fetchone():
        from lamina.network.portmap import release as unpublish  # only where ports were published

        unpublish(system, container_id)
    _release(system, container_id)


def published_ports(system, rec) -> dict:
    """NetworkSettings.Ports: `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`,
    null for a port exposed and not published; {} unless running on a bridge network."""
    name = mode(rec.host_config.get("NetworkMode", "host"))
    if not rec.running or name in ("host", "none") or name.startswith("container:"):
        return {}
    from lamina.network.ports import published, settings_ports

    return settings_ports((rec.config or {}).get("ExposedPorts"), published(system.db, rec.id))


def settings(system, rec) -> dict:
    """docker inspect's NetworkSettings: the address, gateway and MAC while running
    (top level: the default bridge's, as docker's), an entry per network."""
    from lamina.network.endpoint import lookup, lookup_all

    name = mode(rec.host_config.get("NetworkMode", "host"))
    ep = lookup(system, rec.id) if rec.running and name == "bridge" else None
    found = {
        "Gateway": str(ep.gateway) if ep else "", "IPAddress": str(ep.address) if ep else "",
        "IPPrefixLen": ep.prefixlen if ep else 0, "MacAddress": ep.mac if ep else "",
    }
    out = {"Ports": published_ports(system, rec), "SandboxKey": ep.netns if ep else "", **found,
           "Networks": {name: {**found, "IPAMConfig": None, "Links": None, "Aliases": None}}}
    if name in ("bridge", "host", "none") and not _has_rows(system, rec.id):
        return _custom_mac(out, rec, name)
    from lamina.network.registry import find, memberships

    if name not in ("bridge", "host", "none") and not name.startswith("container:"):
        del out["Networks"][name]  # filled below, from its membership
    live = {e.network_id: e for e in lookup_all(system, rec.id)} if rec.running else {}
    for nid, aliases in memberships(system.db, rec.id):
        net = find(system.db, nid)
        if net is None:
            continue
        e = live.get(nid)
        out["SandboxKey"] = out["SandboxKey"] or (e.netns if e else "")
        out["Networks"][net.name] = {
            "IPAMConfig": None, "Links": None, "Aliases": [*aliases, rec.id[:12]] if e else (aliases or None),
            "NetworkID": net.id, "Gateway": str(e.gateway) if e else "", "IPAddress": str(e.address) if e else "",
            "IPPrefixLen": e.prefixlen if e else 0, "MacAddress": e.mac if e else "",
        }
    return _custom_mac(out, rec, net_name_of(system, name))


def net_name_of(system, name: str) -> str:
    """The name Networks lists a NetworkMode under (a user network given by ID: its name)."""
    if name in ("bridge", "host", "none") or name.startswith("container:"):
        return name
    from lamina.network.registry import find

    net = find(system.db, name)
    return net.name if net else name


def _custom_mac(out: dict, rec, name: str) -> dict:
    """--mac-address is the first network's eth0's: shown there instead of the derived one."""
    mac = (rec.config or {}).get("MacAddress")
    entry = out["Networks"].get(name)
    if mac and entry and entry.get("MacAddress"):
        entry["MacAddress"] = mac
        if out["MacAddress"]:
            out["MacAddress"] = mac
    return out


def connect(system, rec, network: str, aliases=()) -> None:
    """`network connect`: record the membership; a running container is plugged in now."""
    from lamina.errors import Conflict
    from lamina.network import endpoint, registry

    net = registry.get(system.db, network)
    registry.check_aliases(aliases)
    if any(nid == net.id for nid, _ in registry.memberships(system.db, rec.id)):
        raise Conflict(f"endpoint with name {rec.name} already exists in network {net.name}")
    if rec.running:
        endpoint.connect(system, rec.id, net.id, aliases=aliases, names=(rec.name, rec.id[:12]),
                         dns_servers=tuple(rec.host_config.get("Dns") or ()))
    registry.join(system.db, net.id, rec.id, aliases)


def disconnect(system, rec, network: str) -> None:
    """`network disconnect`: end the membership; a running container is unplugged now."""
    from lamina.errors import InvalidParameter
    from lamina.network import endpoint, registry

    net = registry.get(system.db, network)
    if not registry.leave(system.db, net.id, rec.id):
        raise InvalidParameter(f"container {rec.id} is not connected to network {net.name}")
    if rec.running:
        endpoint.disconnect(system, rec.id, net.id)
