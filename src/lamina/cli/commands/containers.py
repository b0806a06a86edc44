"""Container verbs: run, start, ps, rm, diff, commit, export, inspect."""

from __future__ import annotations

import argparse
import os
import sys
import time


def add_parsers(sub) -> None:
    p = sub.add_parser("run", help="Run a command in a new container")
    _run_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    p.set_defaults(func=cmd_run, error_prefix="lamina")

    p = sub.add_parser("create", help="Create a new container")
    _run_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    p.set_defaults(func=cmd_create, error_prefix="Error")

    p = sub.add_parser("start", help="Start one or more stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("ps", help="List containers")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container")
    p.add_argument("--format", default=None)
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("rm", help="Remove one or more containers")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes (none exist yet)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("diff", help="Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("commit", help="Create a new image from a container's changes")
    p.add_argument("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", action="store_true", default=True, help="Pause container during commit")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_commit)

    p = sub.add_parser("export", help="Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("inspect", help="Return low-level information on containers or images")
    p.add_argument("-f", "--format", default=None)
    p.add_argument("--type", choices=("container", "image"), default=None)
    p.add_argument("-s", "--size", action="store_true")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.set_defaults(func=cmd_inspect)


def _run_flags(p) -> None:
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("--rm", action="store_true", help="Automatically remove the container when it exits")
    p.add_argument("--name", default=None, help="Assign a name to the container")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", default=None, help="Working directory inside the container")
    p.add_argument("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    p.add_argument("-h", "--hostname", default=None, help="Container host name")
    p.add_argument("--network", "--net", default="default",
                   help="Connect a container to a network (bridge (default)|host|none)")
    p.add_argument("-l", "--label", action="append", default=[], help="Set meta data on a container")
    p.add_argument("--pull", choices=("missing", "never", "always"), default="missing")
    p.add_argument("--platform", default=None)
    p.add_argument("--security-opt", action="append", default=[],
                   help="Security Options (seccomp=unconfined or seccomp=PROFILE.json)")
    p.add_argument("-d", "--detach", action="store_true", help=argparse.SUPPRESS)


# --------------------------------------------------------------------------- run


def _options(args):
    from lamina.errors import UsageError
    from lamina.lifecycle import RunOptions, parse_volume
    from lamina.runtime.seccomp import security_options

    if args.detach:
        raise UsageError("detached mode (-d) is not supported yet: lamina has no daemon to keep the container")
    env = []
    for path in args.env_file:
        env += read_env_file(path)
    for e in args.env:
        if "=" in e:
            env.append(e)
        elif e in os.environ:
            env.append(f"{e}={os.environ[e]}")
    labels = {}
    for lab in args.label:
        k, _, v = lab.partition("=")
        labels[k] = v
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = (args.entrypoint,) if args.entrypoint else ()
    return RunOptions(
        cmd=tuple(args.command) or None, entrypoint=entrypoint, env=tuple(env), workdir=args.workdir,
        user=args.user, hostname=args.hostname, network=args.network,
        binds=tuple(parse_volume(v) for v in args.volume), tty=args.tty, interactive=args.interactive,
        name=args.name, auto_remove=args.rm, labels=labels,
        security_opt=tuple(security_options(args.security_opt)),
    )


def read_env_file(path: str) -> list[str]:
    """docker's --env-file: KEY=VAL lines, bare KEY taken from our environment, # comments."""
    from lamina.errors import UsageError

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    out = []
    for line in lines:
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"variable '{key}' contains whitespaces" if key else f"invalid environment variable: {line}")
        if eq:
            out.append(f"{key}={value}")
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def _image_for_run(system, args):
    """The image to run, pulled first when missing (docker's `Unable to find image`)."""
    from lamina.errors import NoSuchImage
    from lamina.reference import parse

    try:
        return system.images.resolve(args.image)
    except NoSuchImage:
        if args.pull == "never":
            raise
        parse(args.image)  # an invalid reference is an error, not a pull
        try:
            from lamina.cli.commands.registry import ensure_image
        except ImportError:
            raise NoSuchImage(args.image) from None
        return ensure_image(system, args.image, out=sys.stderr)


def cmd_create(system, args) -> int:
    from lamina import lifecycle

    opts = _options(args)
    record = _image_for_run(system, args)
    rec = lifecycle.create(system, record.id, args.image, opts)
    print(rec.id)
    return 0


def cmd_run(system, args) -> int:
    from lamina import lifecycle

    opts = _options(args)
    record = _image_for_run(system, args)
    warning = system.runtime.security_warning()  # cached per runtime binary: no process here
    if warning:
        sys.stderr.write(f"WARNING: {warning}\n")
    rec = lifecycle.create(system, record.id, args.image, opts)
    clean = False
    try:
        code = lifecycle.start(system, rec)
        clean = True
        return code
    finally:
        if opts.auto_remove:
            lifecycle.remove(system, system.containers.get(rec.id), force=True, exited_cleanly=clean)


def cmd_start(system, args) -> int:
    from lamina import lifecycle
    from lamina.errors import LaminaError

    code = 0
    for name in args.containers:
        try:
            rec = system.containers.resolve(name)
            if args.attach or args.interactive:
                code = lifecycle.start(system, rec, interactive=args.interactive)
            else:
                # Without a daemon a detached start would have nobody to wait for it.
                code = lifecycle.start(system, rec)
                print(name)
            if rec.host_config.get("AutoRemove"):
                lifecycle.remove(system, system.containers.get(rec.id), force=True)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            code = 1
    return code


# --------------------------------------------------------------------------- inspect-ish


def _status(rec) -> str:
    from lamina.cli import fmt

    if rec.state == "running":
        return "Up " + fmt.human_duration(time.time() - (rec.started or rec.created))
    if rec.state == "exited":
        return f"Exited ({rec.exit_code}) " + fmt.since(rec.finished or rec.created)
    return "Created"


def _command(cfg: dict) -> str:
    """The daemon's Container.Command: the path, then the args (those with a space in quotes)."""
    parts = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    return " ".join(parts[:1] + [f"'{p}'" if " " in p else p for p in parts[1:]])


def cmd_ps(system, args) -> int:
    from lamina.cli import fmt
    from lamina.quoting import go_quote

    recs = [r for r in system.containers.list() if args.all or args.latest or r.running]
    if args.latest:
        recs = recs[:1]
    if args.quiet:
        for r in recs:
            print(r.id if args.no_trunc else r.short_id)
        return 0
    rows = []
    for r in recs:
        command = _command(r.config)
        if not args.no_trunc:
            command = fmt.ellipsis(command, 20)
        # docker quotes COMMAND with Go's %q, escaping what an image put there
        item = {"ID": r.id if args.no_trunc else r.short_id, "Image": r.image_ref, "Command": go_quote(command),
                "CreatedAt": fmt.go_time(r.created), "RunningFor": fmt.since(r.created), "Status": _status(r),
                "Ports": "", "Names": r.name, "State": r.state, "Labels": "", "Mounts": "", "Networks": ""}
        rows.append(item)
    if args.format:
        template = args.format[5:].lstrip() if args.format.startswith("table") else args.format
        for item in rows:
            print(fmt.render_template(template, item))
        return 0
    fmt.table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
              [[i["ID"], i["Image"], i["Command"], i["RunningFor"], i["Status"], i["Ports"], i["Names"]] for i in rows])
    return 0


def cmd_rm(system, args) -> int:
    from lamina import lifecycle
    from lamina.errors import LaminaError

    code = 0
    for name in args.containers:
        try:
            lifecycle.remove(system, system.containers.resolve(name), force=args.force)
            print(name)
        except LaminaError as e:
            sys.stderr.write(f"Error response from daemon: {e}\n" if "running" in str(e) else f"Error: {e}\n")
            code = 1
    return code


def cmd_diff(system, args) -> int:
    from lamina.digest import Digest
    from lamina.quoting import escape_controls  # file names are the container's: keep them off the terminal

    rec = system.containers.resolve(args.container)
    layers = system.unpack(Digest(rec.image_id))
    snap = system.snapshotter_for(rec)
    out = sys.stdout
    for change in snap.changes(system.containers.path(rec.id), layers):
        out.write(f"{change.kind} {escape_controls(change.path)}\n")
    return 0


def cmd_commit(system, args) -> int:
    from lamina.imageops import commit_container
    from lamina.reference import parse

    tags = (parse(args.repository),) if args.repository else ()
    rec = system.containers.resolve(args.container)
    image_id = commit_container(system, rec, author=args.author, message=args.message,
                                changes=args.change, tags=tags)
    print(image_id)
    return 0


def cmd_export(system, args) -> int:
    from lamina.archive.layertar import write_tree
    from lamina.digest import Digest
    from lamina.errors import UsageError

    from lamina.cli.outfile import OutputPathError, check_output_path, output_file

    rec = system.containers.resolve(args.container)
    if args.output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    failed = "failed to export container"
    if args.output:
        try:
            check_output_path(args.output, failed)
        except OutputPathError as e:
            sys.stderr.write(f"{e}\n")  # docker's exact line, without `Error:`
            return 1
    snap = system.snapshotter_for(rec)
    ctr_dir = system.containers.path(rec.id)
    layers = system.unpack(Digest(rec.image_id))
    rootfs = snap.mount(ctr_dir, layers)
    try:
        if args.output:
            with output_file(args.output, failed) as f:
                write_tree(rootfs, f)
        else:
            write_tree(rootfs, sys.stdout.buffer)
            sys.stdout.flush()
    finally:
        snap.unmount(ctr_dir)
    return 0


def cmd_inspect(system, args) -> int:
    from lamina.cli import fmt
    from lamina.cli.inspect import inspect_container, inspect_image
    from lamina.errors import LaminaError, NotFound

    items, code = [], 0
    for name in args.names:
        try:
            item = None
            if args.type in (None, "container"):
                try:
                    item = inspect_container(system, system.containers.resolve(name))
                except NotFound:
                    if args.type == "container":
                        raise
            if item is None:
                item = inspect_image(system, system.images.resolve(name))
            items.append(item)
        except NotFound:
            sys.stderr.write(f"Error: No such {'object' if args.type is None else args.type}: {name}\n")
            code = 1
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            code = 1
    if args.format:
        for item in items:
            print(fmt.render_template(args.format, item))
    else:
        fmt.print_inspect(items)
    return code
