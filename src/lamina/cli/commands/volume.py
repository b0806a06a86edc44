"""`volume create/ls/inspect/rm/prune` (engine/volumes.py), as the docker 20.10 CLI prints them."""

from __future__ import annotations

import sys

VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                  "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}
PRUNE_WARNING = ("WARNING! This will remove all local volumes not used by at least one container.\n"
                 "Are you sure you want to continue? [y/N] ")


def add_parsers(sub) -> None:
    from lamina.errors import DAEMON_PREFIX

    p = sub.add_parser("volume", help="Manage volumes")
    vsub = p.add_subparsers(dest="volume_command", metavar="COMMAND")
    p.set_defaults(func=lambda system, args, p=p: (sys.stdout.write(p.help_text()), 0)[1], needs_system=False)

    c = vsub.add_parser("create", help="Create a volume")
    c.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
    c.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    c.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    c.add_argument("--name", dest="name_flag", default=None, help="Specify volume name")
    c.add_argument("name", nargs="?", default=None, metavar="VOLUME")
    c.set_defaults(func=cmd_create, error_prefix=DAEMON_PREFIX)

    c = vsub.add_parser("ls", help="List volumes", aliases=("list",))
    c.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. "
                                                                       "'dangling=true')")
    c.add_argument("--format", default=None, help="Pretty-print volumes using a Go template")
    c.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    c.set_defaults(func=cmd_ls, error_prefix=DAEMON_PREFIX)

    c = vsub.add_parser("inspect", help="Display detailed information on one or more volumes")
    c.add_argument("-f", "--format", default=None, help="Format the output using the given Go template")
    c.add_argument("volumes", nargs="+", metavar="VOLUME")
    c.set_defaults(func=cmd_inspect)

    c = vsub.add_parser("rm", help="Remove one or more volumes", aliases=("remove",))
    c.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")
    c.add_argument("volumes", nargs="+", metavar="VOLUME")
    c.set_defaults(func=cmd_rm)

    c = vsub.add_parser("prune", help="Remove all unused local volumes")
    c.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    c.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'label=<label>')")
    c.set_defaults(func=cmd_prune, error_prefix=DAEMON_PREFIX)


def cmd_create(system, args) -> int:
    from lamina.cli.flags import key_values
    from lamina.engine.volumes import create
    from lamina.errors import UsageError

    name, flag_name = args.name, args.name_flag
    if flag_name and name and flag_name != name:  # docker's CLI: both given and different
        raise UsageError("conflicting options: either specify --name or provide positional arg, not both")
    vol = create(system, name or flag_name, driver=args.driver, labels=key_values(args.label),
                 options=key_values(args.opt))
    print(vol.name)
    return 0


def natural_less(a: str, b: str) -> bool:
    """fvbommel/sortorder's NaturalLess, the order docker's CLI lists volumes in:
    digit runs compare as numbers, and digits come before other characters."""
    i = j = 0
    while i < len(a) and j < len(b):
        da, db = a[i].isdigit(), b[j].isdigit()
        if da != db:
            return da
        if not da:
            if a[i] != b[j]:
                return a[i] < b[j]
            i += 1
            j += 1
            continue
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        nz_a, nz_b = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        if i - nz_a != j - nz_b:
            return i - nz_a < j - nz_b
        if a[nz_a:i] != b[nz_b:j]:
            return a[nz_a:i] < b[nz_b:j]
        if nz_a != nz_b:
            return nz_a < nz_b
    return len(a) < len(b)


def _sorted(items: list) -> list:
    from functools import cmp_to_key

    return sorted(items, key=cmp_to_key(lambda x, y: -1 if natural_less(x.name, y.name)
                                        else (1 if natural_less(y.name, x.name) else 0)))


def cmd_ls(system, args) -> int:
    from lamina.cli import fmt
    from lamina.cli.commands.network import parse_filters
    from lamina.engine.volumes import listing

    items = _sorted(listing(system, parse_filters(args.filter)))
    if args.quiet and not fmt.wants_template(args.format):
        for v in items:
            print(v.name)
        return 0
    if fmt.wants_template(args.format):
        from lamina.cli.formatctx import _struct
        from lamina.gotemplate.execute import Func

        rows = []
        for v in items:
            fields = {"Name": v.name, "Driver": v.driver, "Scope": "local", "Mountpoint": v.mountpoint,
                      "Labels": ",".join(f"{k}={val}" for k, val in sorted(v.labels.items())),
                      "Links": "N/A", "Size": "N/A"}
            rows.append(_struct("*formatter.volumeContext", fields,
                                {"Label": Func(lambda name, labels=v.labels: labels.get(name, ""), ("string",))}))
        return fmt.print_listing(args.format, rows, VOLUME_HEADERS)
    fmt.table(["DRIVER", "VOLUME NAME"], [[v.driver, v.name] for v in items])
    return 0


def cmd_inspect(system, args) -> int:
    from lamina.cli import fmt
    from lamina.cli.main import report
    from lamina.engine.volumes import inspect
    from lamina.errors import LaminaError

    items, code = [], 0
    for name in args.volumes:
        try:
            items.append(inspect(system, name))
        except LaminaError as e:  # `Error: No such volume: NAME`, as docker's CLI words a 404
            report(e)
            code = 1
    return fmt.print_inspected(items, args.format, code)


def cmd_rm(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine.volumes import remove
    from lamina.errors import DAEMON_PREFIX, LaminaError, NotFound

    code = 0
    for name in args.volumes:
        try:
            remove(system, name, force=args.force)
            print(name)
        except NotFound as e:
            report(e)
            code = 1
        except LaminaError as e:
            report(e, DAEMON_PREFIX)
            code = 1
    return code


def cmd_prune(system, args) -> int:
    from lamina.cli.commands.network import parse_filters
    from lamina.engine.volumes import prune

    filters = parse_filters(args.filter)
    if not args.force:
        sys.stdout.write(PRUNE_WARNING)
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("Total reclaimed space: 0B")  # docker 20.10's CLI prints it after a "no" too
            return 0
    removed, reclaimed = prune(system, filters)
    print_pruned(removed, reclaimed)
    return 0


def print_pruned(removed: list[str], reclaimed: int) -> None:
    from lamina.units import human_size

    if removed:
        print("Deleted Volumes:\n" + "".join(f"{n}\n" for n in removed))
    print(f"Total reclaimed space: {human_size(reclaimed, 4)}")  # go-units HumanSize
