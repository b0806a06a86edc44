"""`--network container:NAME`: run in another running container's network namespace.

Nothing is made: config.json names the other container's namespace by path (its
file under /run/lamina/netns when it is on a bridge, else its init's
/proc/PID/ns/net), and the container sees the other's /etc/hosts and
/etc/resolv.conf and has its hostname, as docker gives it (so run refuses the flags
that would change them: options.conflicting_options).  So `release` has nothing of ours to undo
and the namespace lives as long as the container that made it.
"""

from __future__ import annotations

import os

from lamina.errors import RuntimeFailure
from lamina.network import ipam, netns
from lamina.network.endpoint import Endpoint


def join(system, container_id: str, ref: str) -> Endpoint:
    other = system.containers.resolve(ref)
    if other.id == container_id:
        raise RuntimeFailure("cannot join own network")
    if not other.running:
        raise RuntimeFailure(f"cannot join network of a non running container: {other.id}")
    mode = other.host_config.get("NetworkMode", "")
    if mode == "host":
        raise RuntimeFailure(f"cannot join network of container {other.id[:12]}: it uses the host's network")
    path = netns.path_for(other.id)
    if not os.path.lexists(path):
        state = system.runtime.state(other.id) or {}
        if not state.get("pid"):
            raise RuntimeFailure(f"cannot join network of a non running container: {other.id}")
        path = f"/proc/{state['pid']}/ns/net"
    found = ipam.lookup(system.db, other.id)
    address = found[1] if found else None
    return Endpoint(f"container:{other.id}", path, address, 0, None, "",
                    etc_from=system.containers.path(other.id), hostname=other.config.get("Hostname", ""))

