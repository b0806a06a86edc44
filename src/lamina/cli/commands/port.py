"""`port`: a container's published ports, as docker 20.10's CLI prints them."""

from __future__ import annotations


def add_parsers(sub) -> None:
    p = sub.add_parser("port", help="List port mappings or a specific mapping for the container",
                       usage="CONTAINER [PRIVATE_PORT[/PROTO]]")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.set_defaults(func=cmd_port)


def cmd_port(system, args) -> int:
    """`80/tcp -> 0.0.0.0:8080` per binding (ordered by port: docker 20.10's order is its
    map's, random; later clients sort), or with PRIVATE_PORT its `0.0.0.0:8080` lines."""
    from lamina.cli.main import report
    from lamina.engine.containers import get_container
    from lamina.network import published_ports
    from lamina.network.ports import port_key, sort_key

    ports = published_ports(system, get_container(system, args.container))
    if args.port is None:
        for key in sorted(ports, key=sort_key):
            for b in ports[key] or ():
                print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
        return 0
    port, proto = args.port, "tcp"
    parts = args.port.split("/", 1)
    if len(parts) == 2 and parts[1]:
        port, proto = parts
    try:
        key = port_key(args.port)
    except ValueError as e:  # docker prints Go's strconv error bare
        report(e, prefix="")
        return 1
    if not ports.get(key):
        report(f"No public port '{port}/{proto}' published for {args.container}")
        return 1
    for b in ports[key]:
        print(f"{b['HostIp']}:{b['HostPort']}")
    return 0
