"""A `run -d`'s network, attached by the CLI while the container's monitor boots.

Once `run -d` has sent the container's ID, it would otherwise only wait while its
monitor finishes booting, mounts the rootfs and attaches the network: the CLI
attaches it instead, on its own core, and hands the monitor the endpoint as one
line on the ID's pipe (`lamina/services.py` `Monitor.start`, lamina/monitor.py).
Only a root run on the default bridge alone: a user network's name server, a
rootless one's slirp4netns, published ports stay the monitor's, as before.

The address row names the monitor as its owner from the start (not this CLI,
which exits once the container runs), so a later `sweep` leaves it alone while the
monitor lives and releases it if the monitor dies.  A line the monitor does not
get (the CLI failed or was killed while attaching: EOF, or an empty line) makes it
release whatever was made and attach for itself; a monitor that does not start
the container waits for the line and releases what it names (`drop`).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.network.endpointrecord import Endpoint


def eligible(system, rec) -> bool:
    """Whether the CLI may attach this container's network itself."""
    from lamina import rootless
    from lamina.network import BRIDGE_MODES, _has_rows

    return rec.host_config.get("NetworkMode", "host") in BRIDGE_MODES and not rootless() \
        and not _has_rows(system, rec.id)


def attach(system, rec, owner: int | None) -> bytes:
    """Attach `rec` to the default bridge for the monitor `owner`; the line for the
    monitor (empty when it failed: the monitor then attaches, and reports the error)."""
    from lamina.network import attach as attach_network

    if not owner:
        return b"\n"
    try:
        ep = attach_network(system, rec.id, "bridge", rec=rec, owner=owner)
    except Exception:  # what failed here fails there again, said as a failed start is
        return b"\n"
    return f"{ep.netns} {ep.address} {ep.prefixlen} {ep.gateway} {ep.mac}\n".encode()


class Pending:
    """The monitor's end: the endpoint line to come on `fd` (the ID's pipe, then closed)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def take(self, system, container_id: str) -> Endpoint | None:
        """The endpoint the CLI attached, or None (it failed or died: what it made is released)."""
        line = self._line()
        if line is not None:
            try:
                return _endpoint(line)
            except ValueError:
                pass
        from lamina.network import release

        release(system, container_id)
        return None

    def drop(self, system, container_id: str) -> None:
        """The container does not start here: release what the CLI attached (idempotent)."""
        if self.fd is not None:
            self._line()
            from lamina.network import release

            release(system, container_id)

    def _line(self) -> bytes | None:
        fd, self.fd = self.fd, None
        if fd is None:
            return None
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        return (data.strip() or None) if data.endswith(b"\n") else None


def _endpoint(line: bytes) -> Endpoint:
    from lamina.network.addresses import Address
    from lamina.network.endpointrecord import NETWORK, Endpoint

    netns, address, prefixlen, gateway, mac = line.decode().split(" ")
    return Endpoint(NETWORK, netns, Address(address), int(prefixlen), Address(gateway), mac)
