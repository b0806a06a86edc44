"""Container verbs: run, start, ps, rm, diff, commit, export, inspect."""

from __future__ import annotations

import os
import sys
import time


def add_parsers(sub) -> None:
    from lamina.cli.flags import REMAINDER
    from lamina.errors import DAEMON_PREFIX  # loaded by the store anyway
    p = sub.add_parser("run", help="Run a command in a new container", usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
                       interspersed=False)
    _run_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]")
    # docker's texts: dockerd's refusals as "Error response from daemon: …", inside run's
    # "lamina: ….\nSee 'lamina run --help'." (main.report)
    p.set_defaults(func=cmd_run, error_prefix=DAEMON_PREFIX, error_cli="run")

    p = sub.add_parser("create", help="Create a new container", usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
                       interspersed=False)
    _run_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]")
    p.set_defaults(func=cmd_create, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("start", help="Start one or more stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_start, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("ps", help="List containers")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container")
    p.add_argument("--format", default=None, help="Pretty-print containers using a Go template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("rm", help="Remove one or more containers")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes (none exist yet)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("diff", help="Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_diff, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("commit", help="Create a new image from a container's changes")
    p.add_argument("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", action="store_true", default=True, help="Pause container during commit")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_commit, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("export", help="Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_export, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("inspect", help="Return low-level information on containers or images")
    p.add_argument("-f", "--format", default=None, help="Format the output using the given Go template")
    p.add_argument("--type", choices=("container", "image"), default=None, help="Return JSON for specified type")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.set_defaults(func=cmd_inspect)


def _run_flags(p) -> None:
    from lamina.cli.flags import SUPPRESS, valid_env

    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("--rm", action="store_true", help="Automatically remove the container when it exits")
    p.add_argument("--name", default=None, help="Assign a name to the container")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables", validate=valid_env)
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", default=None, help="Working directory inside the container")
    p.add_argument("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    p.add_argument("-h", "--hostname", default=None, help="Container host name")
    p.add_argument("--network", "--net", default="default",
                   help="Connect a container to a network (bridge (default)|host|none)")
    p.add_argument("-l", "--label", action="append", default=[], help="Set meta data on a container")
    p.add_argument("--pull", choices=("missing", "never", "always"), default="missing",
                   help='Pull image before running ("always"|"missing"|"never")')
    p.add_argument("--platform", default=None, help="Set platform if server is multi-platform capable")
    p.add_argument("--security-opt", action="append", default=[],
                   help="Security Options (seccomp=unconfined or seccomp=PROFILE.json)")
    p.add_argument("-d", "--detach", action="store_true", help=SUPPRESS)


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
    from lamina.errors import OptionError

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise OptionError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    out = []
    for line in lines:
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not key or any(c.isspace() for c in key):
            raise OptionError(f"poorly formatted environment: variable '{key}' contains whitespaces" if key
                              else f"invalid environment variable: {line}")
        if eq:
            out.append(f"{key}={value}")
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def _image_for_run(system, args):
    """The image to run, pulled first when missing: progress and docker's `Unable to
    find image` on stderr."""
    from lamina.cli.commands.registry import stderr_notice
    from lamina.engine.containers import image_for_run
    from lamina.transfer.progress import for_stream

    return image_for_run(system, args.image, pull=args.pull, progress=for_stream(sys.stderr),
                         notice=stderr_notice)


def cmd_create(system, args) -> int:
    from lamina.engine import containers as engine

    opts = _options(args)
    rec = engine.create(system, _image_for_run(system, args), args.image, opts)
    print(rec.id)
    return 0


def cmd_run(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine import containers as engine
    from lamina.errors import LaminaError, UsageError, run_exit_code

    opts = _options(args)
    if args.tty and args.interactive and not sys.stdin.isatty():
        # docker's CLI checks it after the options, before any request: bare, exit 1
        report(UsageError("the input device is not a TTY"), "")
        return 1
    record = _image_for_run(system, args)
    warning = system.runtime.security_warning()  # cached per runtime binary: no process here
    if warning:
        sys.stderr.write(f"WARNING: {warning}\n")
    rec = engine.create(system, record, args.image, opts)
    try:
        return engine.run(system, rec)
    except LaminaError as e:  # docker: a failed start has no "See 'docker run --help'." line
        report(e, args.error_prefix, cli="run")
        return run_exit_code(e)


def cmd_start(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine import containers as engine
    from lamina.errors import LaminaError, NotFound, UsageError

    if (args.attach or args.interactive) and len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    code, failed = 0, []
    for name in args.containers:
        try:
            rec = engine.get_container(system, name)
            if args.attach or args.interactive:
                code = engine.start(system, rec, interactive=args.interactive)
            else:
                # Without a daemon a detached start would have nobody to wait for it.
                code = engine.start(system, rec)
                print(name)
        except LaminaError as e:
            attached = args.attach or args.interactive
            # docker's client words a 404 itself when it looks the attached container up first
            report(e, "Error" if attached and isinstance(e, NotFound) else args.error_prefix)
            if attached:  # docker: the one attached container's error as is
                return 1
            failed.append(name)
    if failed:  # docker's closing line, after each container's own error
        report(f"failed to start containers: {', '.join(failed)}")
        return 1
    return code


# --------------------------------------------------------------------------- inspect-ish


def _status(rec) -> str:
    from lamina.cli import fmt

    if rec.state == "running":
        return "Up " + fmt.human_duration(time.time() - (rec.started or rec.created))
    if rec.state == "exited":
        return f"Exited ({rec.exit_code}) " + fmt.since(rec.finished or rec.created)
    return "Created"


def cmd_ps(system, args) -> int:
    from lamina.cli import fmt
    from lamina.engine.containers import command_of, list_containers, listed_image
    from lamina.quoting import go_quote

    recs = list_containers(system, all=args.all, latest=args.latest)
    if args.quiet:
        if fmt.wants_template(args.format):  # unlike images and history, ps keeps -q
            sys.stderr.write("WARNING: Ignoring custom format, because both --format and --quiet are set.\n")
        for r in recs:
            print(r.id if args.no_trunc else r.short_id)
        return 0
    rows = []
    for r in recs:
        command = command_of(r.config)
        if not args.no_trunc:
            command = fmt.ellipsis(command, 20)
        # docker quotes COMMAND with Go's %q, escaping what an image put there
        image = listed_image(system, r)
        if image == r.image_id and not args.no_trunc:
            image = image.removeprefix("sha256:")[:12]  # docker's CLI: the short ID
        item = {"ID": r.id if args.no_trunc else r.short_id, "Image": image, "Command": go_quote(command),
                "CreatedAt": fmt.go_time(r.created), "RunningFor": fmt.since(r.created), "Status": _status(r),
                "Ports": "", "Names": r.name, "State": r.state, "Labels": "", "Mounts": "", "Networks": ""}
        rows.append(item)
    if fmt.wants_template(args.format) or getattr(args, "size", False):
        from lamina.cli import formatctx

        template = args.format if fmt.wants_template(args.format) else formatctx.PS_TABLE_WITH_SIZE
        sized = formatctx.wants_size(args)
        contexts = [formatctx.container_context(dict(item, Networks=formatctx.network_names(r)),
                                                dict(r.config.get("Labels") or {}),
                                                formatctx.container_size(system, r) if sized else None)
                    for r, item in zip(recs, rows)]
        return fmt.print_listing(template, contexts, formatctx.CONTAINER_HEADERS,
                                 parse_error="failed to parse template", exec_error="failed to execute template")
    fmt.table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
              [[i["ID"], i["Image"], i["Command"], i["RunningFor"], i["Status"], i["Ports"], i["Names"]] for i in rows])
    return 0


def cmd_rm(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine.containers import remove
    from lamina.errors import DAEMON_PREFIX, LaminaError, NotFound

    code = 0
    for name in args.containers:
        try:
            remove(system, name, force=args.force)
            print(name)
        except NotFound as e:  # docker's client words a 404 itself, and -f makes it no failure
            report(e)
            code = code if args.force else 1
        except LaminaError as e:
            report(e, DAEMON_PREFIX)
            code = 1
    return code


def cmd_diff(system, args) -> int:
    from lamina.engine.containers import diff
    from lamina.quoting import escape_controls  # file names are the container's: keep them off the terminal

    out = sys.stdout
    for change in diff(system, args.container):
        out.write(f"{change.kind} {escape_controls(change.path)}\n")
    return 0


def cmd_commit(system, args) -> int:
    from lamina.engine.containers import commit

    image_id = commit(system, args.container, repository=args.repository, author=args.author,
                      message=args.message, changes=args.change)
    print(image_id)
    return 0


def cmd_export(system, args) -> int:
    from lamina.cli.outfile import OutputPathError, check_output_path, output_file
    from lamina.engine import containers as engine
    from lamina.errors import UsageError

    rec = engine.get_container(system, args.container)
    if args.output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    failed = "failed to export container"
    if args.output:
        try:
            check_output_path(args.output, failed)
        except OutputPathError as e:
            from lamina.cli.main import report

            report(e, prefix="")  # docker's exact line, without `Error:`
            return 1
        with output_file(args.output, failed) as f:
            engine.export(system, rec, f)
    else:
        engine.export(system, rec, sys.stdout.buffer)
        sys.stdout.flush()
    return 0


def cmd_inspect(system, args) -> int:
    from lamina.cli import fmt
    from lamina.cli.main import report
    from lamina.engine.containers import inspect_container
    from lamina.engine.images import inspect_image
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
            report(f"No such {'object' if args.type is None else args.type}: {name}")
            code = 1
        except LaminaError as e:
            report(e)
            code = 1
    if args.format:
        return fmt.print_inspect_template(args.format, items) or code
    fmt.print_inspect(items)
    return code
