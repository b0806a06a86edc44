"""`system check`, `system prune`, `version`."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("system", help="Manage lamina")
    ssub = p.add_subparsers(dest="system_command", metavar="COMMAND")
    c = ssub.add_parser("check", help="Verify the store: every blob, image, layer and container record")
    c.add_argument("--quick", action="store_true", help="Do not re-hash blobs")
    c.set_defaults(func=cmd_check)
    c = ssub.add_parser("prune", help="Remove blobs and layers no image uses (images and containers are kept)")
    c.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    c.set_defaults(func=cmd_prune)
    p.set_defaults(func=lambda system, args: (p.print_help(), 0)[1])

    p = sub.add_parser("version", help="Show the lamina version information")
    p.set_defaults(func=cmd_version, needs_system=False)


def cmd_check(system, args) -> int:
    from lamina.check import check_store

    problems, notes = check_store(system, rehash=not args.quick)
    for n in notes:
        print(f"note: {n}")
    for p in problems:
        print(f"error: {p}")
    if problems:
        print(f"store {system.root}: {len(problems)} problem(s)")
        return 1
    print(f"store {system.root}: ok")
    return 0


def cmd_prune(system, args) -> int:
    from lamina.cli.fmt import human_size
    from lamina.gc import sweep
    from lamina.recovery import recover

    recover(system)
    before = sum(system.content.size(d) for d in system.content.walk())
    removed = sweep(system)
    after = sum(system.content.size(d) for d in system.content.walk())
    for c in removed:
        print(f"deleted layer: {c}")
    print(f"Total reclaimed space: {human_size(before - after)}")
    return 0


def cmd_version(system, args) -> int:
    import platform

    from lamina.cli.main import VERSION

    print(f"lamina version {VERSION}")
    print(f" Python:   {platform.python_version()}")
    print(f" OS/Arch:  linux/{platform.machine()}")
    sys.stdout.flush()
    return 0
