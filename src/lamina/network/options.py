"""run's network flags: --add-host, --dns, --dns-search, --dns-option, --mac-address,
--domainname, --network-alias.

As docker splits them: the flag validators are the CLI's (`invalid argument "…" for
"--add-host" flag: …`, exit 125), `run_options(args)` makes what create records:
HostConfig's ExtraHosts, Dns, DnsSearch, DnsOptions (as docker's inspect shows
them: ExtraHosts null when not given, the others []), Config's MacAddress and
Domainname, and the aliases of the container on its user network.  What they do
at start is in runner.write_etc_files and network/endpoint.py.
"""

from __future__ import annotations

from lamina.errors import InvalidParameter, OptionError

FLAGS = ("add_host", "dns", "dns_search", "dns_option", "mac_address", "domainname", "network_alias")


def valid_add_host(value: str) -> str | None:
    """docker's opts.ValidateExtraHost: NAME:IP (IPv6 allowed), or NAME:host-gateway."""
    name, sep, address = value.partition(":")
    if not sep or not name:
        return f'bad format for add-host: "{value}"'
    if address != "host-gateway" and not _is_ip(address):
        return f'invalid IP address in add-host: "{address}"'
    return None


def valid_dns(value: str) -> str | None:
    return None if _is_ip(value) else f"{value} is not an ip address"


def valid_dns_search(value: str) -> str | None:
    """docker's opts.ValidateDNSSearch: a domain of at most 255 characters ("." allowed)."""
    domain = value.removesuffix(".") if value != "." else value
    if domain.startswith(".") or (domain != "." and not domain):
        return f"{value} is not a valid domain"
    if len(domain) > 255:
        return f"{value} is not a valid domain"
    return None


# dockerd's texts for the flags a container sharing another's network (and its /etc
# files and hostname: network/shared.py) cannot have
CONFLICTS = (("hostname", "hostname"), ("add_host", "custom host-to-IP mapping"), ("dns", "dns"),
             ("dns_search", "dns"), ("dns_option", "dns"), ("mac_address", "mac-address"))


def run_options(args) -> tuple[dict, dict, tuple[str, ...]]:
    """(HostConfig keys, Config keys, aliases) from run/create's flags; with --network container:NAME,
    dockerd's refusals of the flags that would change what it shares."""
    if args.network.startswith("container:"):
        for dest, what in CONFLICTS:
            if getattr(args, dest, None):
                raise InvalidParameter(f"conflicting options: {what} and the network mode")
    host = {"ExtraHosts": list(args.add_host) or None, "Dns": list(args.dns), "DnsSearch": list(args.dns_search),
            "DnsOptions": list(args.dns_option)}
    config = {}
    if args.mac_address:
        if not _is_mac(args.mac_address):
            raise OptionError(f"{args.mac_address} is not a valid mac address")
        config["MacAddress"] = args.mac_address
    if args.domainname:
        config["Domainname"] = args.domainname
    if args.network_alias:
        from lamina.network.registry import check_aliases

        check_aliases(args.network_alias)
    return host, config, tuple(args.network_alias)


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_mac(text: str) -> bool:
    """Go's net.ParseMAC for the 6-byte forms docker accepts (`:` or `-` separated)."""
    for sep in (":", "-"):
        parts = text.split(sep)
        if len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
            return True
    return False
