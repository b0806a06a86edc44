"""`network create/ls/inspect/rm/connect/disconnect/prune` (engine/networks.py)."""

from __future__ import annotations

import sys

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                   "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def add_parsers(sub) -> None:
    from lamina.errors import DAEMON_PREFIX

    p = sub.add_parser("network", help="Manage networks")
    nsub = p.add_subparsers(dest="network_command", metavar="COMMAND")
    p.set_defaults(func=lambda system, args, p=p: (sys.stdout.write(p.help_text()), 0)[1], needs_system=False)

    c = nsub.add_parser("create", help="Create a network")
    c.add_argument("-d", "--driver", default="bridge", help="Driver to manage the Network")
    c.add_argument("--subnet", action="append", default=[], help="Subnet in CIDR format that represents a network "
                                                                 "segment")
    c.add_argument("--gateway", action="append", default=[], help="IPv4 or IPv6 Gateway for the master subnet")
    c.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    c.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    c.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    c.add_argument("name", metavar="NETWORK")
    c.set_defaults(func=cmd_create, error_prefix=DAEMON_PREFIX)

    c = nsub.add_parser("ls", help="List networks", aliases=("list",))
    c.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. "
                                                                       "'driver=bridge')")
    c.add_argument("--format", default=None, help="Pretty-print networks using a Go template")
    c.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    c.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    c.set_defaults(func=cmd_ls, error_prefix=DAEMON_PREFIX)

    c = nsub.add_parser("inspect", help="Display detailed information on one or more networks")
    c.add_argument("-f", "--format", default=None, help="Format the output using the given Go template")
    c.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")
    c.add_argument("networks", nargs="+", metavar="NETWORK")
    c.set_defaults(func=cmd_inspect)

    c = nsub.add_parser("rm", help="Remove one or more networks", aliases=("remove",))
    c.add_argument("networks", nargs="+", metavar="NETWORK")
    c.set_defaults(func=cmd_rm)

    c = nsub.add_parser("connect", help="Connect a container to a network")
    c.add_argument("--alias", action="append", default=[], help="Add network-scoped alias for the container")
    c.add_argument("network", metavar="NETWORK")
    c.add_argument("container", metavar="CONTAINER")
    c.set_defaults(func=cmd_connect, error_prefix=DAEMON_PREFIX)

    c = nsub.add_parser("disconnect", help="Disconnect a container from a network")
    c.add_argument("-f", "--force", action="store_true", help="Force the container to disconnect from a network")
    c.add_argument("network", metavar="NETWORK")
    c.add_argument("container", metavar="CONTAINER")
    c.set_defaults(func=cmd_disconnect, error_prefix=DAEMON_PREFIX)

    c = nsub.add_parser("prune", help="Remove all unused networks")
    c.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    c.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")
    c.set_defaults(func=cmd_prune, error_prefix=DAEMON_PREFIX)


def cmd_create(system, args) -> int:
    from lamina.cli.flags import key_values
    from lamina.engine.networks import create
    from lamina.errors import InvalidParameter, UsageError

    if len(args.subnet) > 1 or len(args.gateway) > 1:
        raise InvalidParameter("lamina networks take one IPv4 subnet and gateway")
    if args.gateway and not args.subnet:  # docker's CLI checks this before asking dockerd
        raise UsageError("every ip-range or gateway must have a corresponding subnet")
    if args.subnet and args.gateway:
        import ipaddress

        try:
            inside = ipaddress.ip_address(args.gateway[0]) in ipaddress.ip_network(args.subnet[0], strict=False)
        except ValueError:
            inside = True  # dockerd says what is wrong with either
        if not inside:
            raise UsageError(f"no matching subnet for gateway {args.gateway[0]}")
    net = create(system, args.name, driver=args.driver, subnet=args.subnet[0] if args.subnet else None,
                 gateway=args.gateway[0] if args.gateway else None, internal=args.internal,
                 labels=key_values(args.label))
    print(net.id)
    return 0


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    from lamina.cli.flags import filters  # the one --filter parser (ps's too)

    return filters(values)


def cmd_ls(system, args) -> int:
    from lamina.cli import fmt
    from lamina.engine.networks import listing

    items = listing(system, parse_filters(args.filter))
    ident = (lambda i: i["Id"]) if args.no_trunc else (lambda i: i["Id"][:12])
    if args.quiet and not fmt.wants_template(args.format):
        for i in items:
            print(ident(i))
        return 0
    if fmt.wants_template(args.format):
        from lamina.cli.formatctx import _struct
        from lamina.gotemplate.execute import Func

        rows = []
        for i in items:
            labels = i["Labels"] or {}
            fields = {"ID": ident(i), "Name": i["Name"], "Driver": i["Driver"], "Scope": i["Scope"],
                      "IPv6": str(i["EnableIPv6"]).lower(), "Internal": str(i["Internal"]).lower(),
                      "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                      "CreatedAt": _go_time(i["Created"])}
            rows.append(_struct("*formatter.networkContext", fields,
                                {"Label": Func(lambda name, labels=labels: labels.get(name, ""), ("string",))}))
        return fmt.print_listing(args.format, rows, NETWORK_HEADERS)
    fmt.table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], [[ident(i), i["Name"], i["Driver"], i["Scope"]]
                                                         for i in items])
    return 0


def _go_time(rfc3339: str) -> str:
    """Go's time.String() of inspect's Created (UTC): `2026-11-28 09:31:14.539822693 +0000 UTC`,
    the fraction without its trailing zeros."""
    date, _, clock = rfc3339.removesuffix("Z").partition("T")
    whole, _, frac = clock.partition(".")
    frac = frac.rstrip("0")
    return f"{date} {whole}{'.' + frac if frac else ''} +0000 UTC"


def cmd_inspect(system, args) -> int:
    from lamina.cli import fmt
    from lamina.cli.main import report
    from lamina.engine.networks import inspect
    from lamina.errors import LaminaError, NotFound

    items, code = [], 0
    for name in args.networks:
        try:
            items.append(inspect(system, name))
        except NotFound:
            report(f"No such network: {name}")  # docker's CLI words it itself
            code = 1
        except LaminaError as e:
            report(e)
            code = 1
    return fmt.print_inspected(items, args.format, code)


def cmd_rm(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine.networks import remove
    from lamina.errors import DAEMON_PREFIX, LaminaError, NotFound

    code = 0
    for name in args.networks:
        try:
            remove(system, name)
            print(name)
        except NotFound:
            report(f"No such network: {name}")
            code = 1
        except LaminaError as e:
            report(e, DAEMON_PREFIX)
            code = 1
    return code


def cmd_connect(system, args) -> int:
    from lamina.engine.networks import connect

    connect(system, args.network, args.container, tuple(args.alias))
    return 0


def cmd_disconnect(system, args) -> int:
    from lamina.engine.networks import disconnect

    disconnect(system, args.network, args.container, force=args.force)
    return 0


def cmd_prune(system, args) -> int:
    from lamina.engine.networks import prune

    filters = parse_filters(args.filter)  # refused before the question, as docker's
    if not args.force:
        sys.stdout.write("WARNING! This will remove all custom networks not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed = prune(system, filters)
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
        print()
    return 0
