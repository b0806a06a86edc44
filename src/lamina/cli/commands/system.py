"""`system check`, `system prune`, `system df`, `version`, `info`."""

from __future__ import annotations

import sys

_FORMAT_HELP = "Format the output using the given Go template ('json': print in JSON format)"


def add_parsers(sub) -> None:
    p = sub.add_parser("system", help="Manage lamina")
    ssub = p.add_subparsers(dest="system_command", metavar="COMMAND")
    c = ssub.add_parser("check", help="Verify the store: every blob, image, layer and container record")
    c.add_argument("--quick", action="store_true", help="Do not re-hash blobs")
    c.set_defaults(func=cmd_check)
    c = ssub.add_parser("prune", help="Remove blobs and layers no image uses and networks no "
                                                "container runs on (images and containers are kept)")
    c.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    c.add_argument("--volumes", action="store_true", help="Prune volumes")
    c.set_defaults(func=cmd_prune)
    c = ssub.add_parser("df", help="Show lamina disk usage")
    c.add_argument("--format", default=None, help="Pretty-print images using a Go template")
    c.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    c.set_defaults(func=lambda system, args: __import__("lamina.cli.diskusage", fromlist=["x"]).cmd_df(system, args))
    __import__("lamina.cli.commands.service", fromlist=["x"]).add_service_parser(ssub)  # the Engine API
    p.set_defaults(func=lambda system, args, p=p: (sys.stdout.write(p.help_text()), 0)[1], needs_system=False)

    p = sub.add_parser("version", help="Show the lamina version information")
    p.add_argument("-f", "--format", default=None, help=_FORMAT_HELP)
    p.set_defaults(func=cmd_version, needs_system=False)

    p = sub.add_parser("info", help="Display system-wide information")
    p.add_argument("-f", "--format", default=None, help=_FORMAT_HELP)
    p.set_defaults(func=cmd_info)


def cmd_check(system, args) -> int:
    from lamina.engine.system import check

    problems, notes = check(system, rehash=not args.quick)
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
    from lamina.engine.networks import prune as prune_networks
    from lamina.engine.system import prune

    networks = prune_networks(system)  # as docker's: the networks no running container is on
    if networks:
        print("Deleted Networks:\n" + "".join(f"{n}\n" for n in networks))
    volumes, volume_bytes = [], 0
    if args.volumes:  # docker 20.10's: every volume no container uses
        from lamina.engine.volumes import prune as prune_volumes

        volumes, volume_bytes = prune_volumes(system)
        if volumes:
            print("Deleted Volumes:\n" + "".join(f"{n}\n" for n in volumes))
    removed, reclaimed = prune(system)
    reclaimed += volume_bytes
    for c in removed:
        print(f"deleted layer: {c}")
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def cmd_version(system, args) -> int:
    from lamina.engine.system import version

    if args.format:  # docker 28's shape (lamina/cli/systemjson.py)
        from lamina.cli.systemjson import print_formatted, version_data

        return print_formatted(args.format, version_data(args.root, args.runtime), "version")
    facts = version(args.root, args.runtime)
    print(f"lamina version {facts['Version']}")
    print(f" Python:   {facts['PythonVersion']}")
    print(f" OS/Arch:  {facts['Os']}/{facts['Arch']}")
    runtime = facts["Runtime"]
    if runtime is not None:
        print(f" {runtime.name}:\n  Version:  {runtime.version()}\n  Path:     {runtime.path}")
    sys.stdout.flush()
    if runtime is not None:
        _runtime_warnings(runtime)
    return 0


def _runtime_warnings(runtime) -> None:
    # As docker info: warnings last, on stderr.
    warning = runtime.security_warning()
    if warning:
        sys.stderr.write(f"WARNING: {warning}\n")


def cmd_info(system, args) -> int:
    """docker info's shape, for what lamina has."""
    from lamina.engine.system import info

    if args.format:  # docker 28's shape (lamina/cli/systemjson.py)
        from lamina.cli.systemjson import info_data, print_formatted

        return print_formatted(args.format, info_data(system))
    facts = info(system)
    lines = [
        f"Containers: {facts['Containers']}", f" Running: {facts['ContainersRunning']}",
        f" Stopped: {facts['ContainersStopped']}",
        f"Images: {facts['Images']}",
        f"Server Version: {facts['ServerVersion']}",
        f"Storage Driver: {facts['Driver']}",
    ]
    runtime = facts["Runtime"]
    if runtime is None:
        lines.append(f"Default Runtime: none ({facts['RuntimeError']})")
    else:
        lines += [f"Default Runtime: {runtime.name}", f"{runtime.name} version: {runtime.version()}"]
    lines.append(f"Lamina Root Dir: {facts['LaminaRootDir']}")
    if facts.get("Rootless"):  # as docker info lists it under its security options
        lines += ["Security Options:", " rootless"]
    for note in (runtime.note, runtime.security_note()) if runtime is not None else ():
        if note:
            lines.append(f"Note: {note}")
    print("\n".join(lines))
    sys.stdout.flush()
    if runtime is not None:
        _runtime_warnings(runtime)
    return 0
