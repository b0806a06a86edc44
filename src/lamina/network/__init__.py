"""Container networking: docker's default bridge (`lamina0`), host and none.

`--network` values: `bridge`/`default` (the default: a private namespace on
the bridge, NAT to the outside), `host` (the host's namespace, only when asked
for), `none` (a private namespace with loopback only).  Later: user-defined
networks and published ports (their rows and chains extend `ipam` and `bridge`).

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
    """What a recorded HostConfig.NetworkMode means: "bridge", "host" or "none"."""
    return "bridge" if network_mode in BRIDGE_MODES else network_mode


def attach(system, container_id: str):
    """Put a container on the default bridge; returns its `Endpoint` (namespace path, address)."""
    from lamina.network.endpoint import attach as _attach

    return _attach(system, container_id)


def release(system, container_id: str) -> None:
    """Tear down a container's network (netns mount, veth, address row); idempotent."""
    from lamina.network.endpoint import release as _release

    _release(system, container_id)


def settings(system, rec) -> dict:
    """docker inspect's NetworkSettings: the address, gateway and MAC while running."""
    from lamina.network.endpoint import lookup

    name = mode(rec.host_config.get("NetworkMode", "host"))
    ep = lookup(system, rec.id) if rec.running and name == "bridge" else None
    found = {
        "Gateway": str(ep.gateway) if ep else "", "IPAddress": str(ep.address) if ep else "",
        "IPPrefixLen": ep.prefixlen if ep else 0, "MacAddress": ep.mac if ep else "",
    }
    return {"SandboxKey": ep.netns if ep else "", **found,
            "Networks": {name: {**found, "IPAMConfig": None, "Links": None, "Aliases": None}}}
