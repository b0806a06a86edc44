"""/etc/resolv.conf for a container in its own network namespace, as docker 20.10
writes it (libnetwork/resolvconf): the host's file without loopback nameservers
(127.0.0.0/8, ::1: they are the namespace's own loopback, where no resolver
listens) and, IPv6 being off on the bridge, without IPv6 ones; when nothing is
left, docker's defaults 8.8.8.8 and 8.8.4.4.  With systemd-resolved's stub
(127.0.0.53) as the only nameserver, its upstream list is the source instead.
"""

from __future__ import annotations


HOST = "/etc/resolv.conf"
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
DEFAULTS = ("8.8.8.8", "8.8.4.4")


def nameservers(text: str | None = None) -> list[str]:
    out = []
    for line in (_read(HOST) if text is None else text).splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append(fields[1])
    return out


def for_namespace(text: str | None = None) -> str:
    """The resolv.conf content for a bridge or none container."""
    if text is None:
        text = _read(HOST)
        if nameservers(text) == ["127.0.0.53"]:
            text = _read(RESOLVED_UPSTREAM) or text
    kept = [line for line in text.splitlines() if not _unusable(line)]
    out = "\n".join(kept).strip("\n")
    out = out + "\n" if out else ""
    if not nameservers(out):
        out += "".join(f"nameserver {a}\n" for a in DEFAULTS)
    return out


def _unusable(line: str) -> bool:
    fields = line.split()
    if len(fields) != 2 or fields[0] != "nameserver":
        return False
    text = fields[1].split("%")[0]
    if ":" not in text:  # IPv4, the common case: without importing ipaddress
        from lamina.network.addresses import Address

        try:
            return Address(text).value >> 24 == 127
        except ValueError:
            return False
    import ipaddress

    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.is_loopback or address.version == 6


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
