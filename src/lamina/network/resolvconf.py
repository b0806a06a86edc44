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


def for_namespace(text: str | None = None, *, dns=(), search=(), options=(), resolver: str = "") -> str:
    """The resolv.conf content for a bridge or none container: with --dns, --dns-search
    or --dns-option, those replace the host's lines of their kind (libnetwork's
    setupDNS); on a user network (`resolver`, its DNS server) that server is the only
    nameserver and `ndots:0` is added unless an ndots is set (docker's rebuildDNS:
    the --dns servers are then the resolver's upstreams)."""
    if text is None:
        text = _read(HOST)
        if nameservers(text) == ["127.0.0.53"]:
            text = _read(RESOLVED_UPSTREAM) or text
    if dns or search or options or resolver:
        return _build(text, list(dns), list(search), list(options), resolver)
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


def _build(text: str, dns: list[str], search: list[str], options: list[str], resolver: str) -> str:
    """libnetwork's resolvconf.Build: search, nameservers, options; what is not given is the host's."""
    search = search or [w for line in text.splitlines() if line.split()[:1] == ["search"] for w in line.split()[1:]]
    options = options or [w for line in text.splitlines() if line.split()[:1] == ["options"] for w in line.split()[1:]]
    if resolver:
        dns = [resolver]
        if not any(o.startswith("ndots:") for o in options):
            options = [*options, "ndots:0"]
    elif not dns:
        kept = "\n".join(line for line in text.splitlines() if not _unusable(line))
        dns = nameservers(kept) or list(DEFAULTS)
    out = ""
    if search and " ".join(search).strip(" ") != ".":
        out += f"search {' '.join(search)}\n"
    out += "".join(f"nameserver {a}\n" for a in dns)
    if options and " ".join(options).strip(" "):
        out += f"options {' '.join(options)}\n"
    return out
