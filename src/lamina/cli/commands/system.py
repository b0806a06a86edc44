"""`system check`, `system prune`, `version`, `info`."""

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

    p = sub.add_parser("info", help="Display system-wide information")
    p.set_defaults(func=cmd_info)


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
    runtime = _runtime_without_store(args)
    if runtime is not None:
        print(f" {runtime.name}:\n  Version:  {runtime.version()}\n  Path:     {runtime.path}")
    sys.stdout.flush()
    if runtime is not None:
        _runtime_warnings(runtime)
    return 0


def _runtime_without_store(args):
    """The runtime `run` would use; `version` opens no store (its facts are cached
    only where the store already exists)."""
    import os

    from lamina.errors import LaminaError
    from lamina.runtime.oci import select_runtime
    from lamina.system import DEFAULT_ROOT

    root = os.path.abspath(args.root or os.environ.get("LAMINA_ROOT") or DEFAULT_ROOT)
    try:
        return select_runtime(args.runtime or os.environ.get("LAMINA_RUNTIME"),
                              state_root=os.path.join(root, "runtime"))
    except LaminaError:
        return None


def _runtime_warnings(runtime) -> None:
    # As docker info: warnings last, on stderr.
    warning = runtime.security_warning()
    if warning:
        sys.stderr.write(f"WARNING: {warning}\n")


def cmd_info(system, args) -> int:
    """docker info's shape, for what lamina has."""
    from lamina.cli.main import VERSION
    from lamina.errors import LaminaError

    containers = system.containers.list()
    running = sum(1 for c in containers if c.running)
    lines = [
        f"Containers: {len(containers)}", f" Running: {running}", f" Stopped: {len(containers) - running}",
        f"Images: {len(system.images.list())}",
        f"Server Version: lamina {VERSION}",
        f"Storage Driver: {system.snapshotter.name}",
    ]
    try:
        runtime = system.runtime
    except LaminaError as e:  # still worth showing the rest, as docker info does
        runtime = None
        lines.append(f"Default Runtime: none ({e})")
    if runtime is not None:
        lines += [f"Default Runtime: {runtime.name}", f"{runtime.name} version: {runtime.version()}"]
    lines.append(f"Lamina Root Dir: {system.root}")
    for note in (runtime.note, runtime.security_note()) if runtime is not None else ():
        if note:
            lines.append(f"Note: {note}")
    print("\n".join(lines))
    sys.stdout.flush()
    if runtime is not None:
        _runtime_warnings(runtime)
    return 0
