"""Container verbs: run, create, start, rm, diff, commit, export (ps and inspect: their own modules)."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    from lamina.cli.flags import REMAINDER
    from lamina.errors import DAEMON_PREFIX  # loaded by the store anyway
    p = sub.add_parser("run", help="Run a command in a new container", usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
                       interspersed=False)
    _run_flags(p)
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]")
    # docker's texts: dockerd's refusals as "Error response from daemon: …", inside run's
    # "lamina: ….\nSee 'lamina run --help'." (main.report)
    p.set_defaults(func=cmd_run, error_prefix=DAEMON_PREFIX, error_cli="run", before_system=_before_run)

    p = sub.add_parser("create", help="Create a new container", usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
                       interspersed=False)
    _run_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]")
    p.set_defaults(func=cmd_create, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("start", help="Start one or more stopped containers", usage="[OPTIONS] CONTAINER [CONTAINER...]")
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--all", action="store_true",
                   help="Start the containers docker would at daemon start (restart policy always or "
                        "unless-stopped), e.g. after a reboot")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")  # "+" unless --all: cmd_start checks
    p.set_defaults(func=cmd_start, error_prefix=DAEMON_PREFIX, count_error=lambda p=p: p._count_error(1, None))

    p = sub.add_parser("rm", help="Remove one or more containers")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the "
                                                                 "container")
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



def _run_flags(p) -> None:
    from lamina.cli.flags import unused, valid_env

    if unused(p):  # `start`, `rm`, `diff`, ...: run's flag groups are not imported for them
        return
    from lamina.cli.commands.exec import health_flags
    from lamina.cli.limitflags import add_flags as add_resource_flags

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
    p.add_argument("--mount", action="append", default=[], help="Attach a filesystem mount to the container",
                   validate=lambda value: __import__("lamina.mountflag").mountflag.valid(value))
    p.add_argument("--volumes-from", action="append", default=[], help="Mount volumes from the specified "
                                                                       "container(s)")
    p.add_argument("-h", "--hostname", default=None, help="Container host name")
    p.add_argument("--network", "--net", default="default",
                   help="Connect a container to a network (bridge (default)|host|none)")
    _net_flags(p)
    p.add_argument("-l", "--label", action="append", default=[], help="Set meta data on a container")
    p.add_argument("--pull", choices=("missing", "never", "always"), default="missing",
                   help='Pull image before running ("always"|"missing"|"never")')
    p.add_argument("--platform", default=None, help="Set platform if server is multi-platform capable")
    p.add_argument("--security-opt", action="append", default=[], help="Security Options")
    _host_flags(p)
    p.add_argument("-d", "--detach", action="store_true", help="Run container in background and print container ID")
    p.add_argument("--restart", default=None, help='Restart policy to apply when a container exits (default "no")')
    p.add_argument("--init", action="store_true",
                   help="Run an init inside the container that forwards signals and reaps processes")
    p.add_argument("--stop-signal", default=None, help='Signal to stop a container (default "SIGTERM")')
    p.add_argument("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container")
    p.add_argument("--log-driver", default=None, help="Logging driver for the container")
    p.add_argument("--log-opt", action="append", default=[], help="Log driver options")
    add_resource_flags(p)  # --memory, --cpus, --pids-limit, --ulimit, ... (import-light)
    health_flags(p)  # --health-*, --no-healthcheck (cli/commands/exec.py, lamina/health.py)


def _net_flags(p) -> None:
    """--add-host, --dns, ...: network/options.py, imported only when one is given."""
    def lazy(name):
        return lambda value: getattr(__import__("lamina.network.options").network.options, name)(value)

    p.add_argument("--network-alias", action="append", default=[], help="Add network-scoped alias for the container")
    p.add_argument("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)",
                   validate=lazy("valid_add_host"))
    p.add_argument("--dns", action="append", default=[], help="Set custom DNS servers", validate=lazy("valid_dns"))
    p.add_argument("--dns-search", action="append", default=[], help="Set custom DNS search domains",
                   validate=lazy("valid_dns_search"))
    p.add_argument("--dns-option", action="append", default=[], help="Set DNS options")
    p.add_argument("--mac-address", default=None, help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    p.add_argument("--domainname", default=None, help="Container NIS domain name")


def _host_flags(p) -> None:
    """Capabilities, devices, mounts and kernel options: runtime/capabilities.py and hostopts.py."""
    def lazy(module, name):  # a validator of lamina.runtime.<module>, imported only when the flag is given
        return lambda value: getattr(getattr(__import__(f"lamina.runtime.{module}").runtime, module), name)(value)

    p.add_argument("--cap-add", action="append", default=[], help="Add Linux capabilities")
    p.add_argument("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to this container")
    p.add_argument("--device", action="append", default=[], help="Add a host device to the container")
    p.add_argument("--tmpfs", action="append", default=[], help="Mount a tmpfs directory")
    p.add_argument("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    p.add_argument("--sysctl", action="append", default=[], help="Sysctl options",
                   validate=lazy("hostopts", "valid_sysctl"))
    p.add_argument("--shm-size", default=None, help="Size of /dev/shm", validate=lazy("resources", "valid_size"))
    p.add_argument("--group-add", action="append", default=[], help="Add additional groups to join")
    p.add_argument("-p", "--publish", action="append", default=[], help="Publish a container's port(s) to the host")
    p.add_argument("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    p.add_argument("--expose", action="append", default=[], help="Expose a port or a range of ports")


# --------------------------------------------------------------------------- run


def cmd_create(system, args) -> int:
    from lamina.engine import containers as engine

    from lamina.cli.runoptions import image_for_run, run_options

    opts = run_options(args)
    rec = engine.create(system, image_for_run(system, args), args.image, opts)
    print(rec.id)
    return 0


def _attached_tty(args) -> bool:
    """run -it on a terminal: run under a monitor, attached (the detach keys leave it running)."""
    return args.tty and args.interactive and not args.detach and sys.stdin.isatty()


def _followed(args) -> bool:
    """A foreground run with a restart policy (and a json-file log to follow): under a
    monitor, which applies the policy, as dockerd runs it (-it on a terminal: attached)."""
    return not args.detach and (args.restart or "no").partition(":")[0] not in ("", "no") \
        and (args.log_driver or "json-file") == "json-file"


def _before_run(args) -> None:
    if args.detach or _attached_tty(args) or _followed(args):  # its monitor forks off before the store is opened
        from lamina.cli.commands.services import fork_monitor

        fork_monitor(args)


def cmd_run(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine import containers as engine
    from lamina.cli.runoptions import image_for_run, run_options
    from lamina.errors import LaminaError, UsageError, run_exit_code

    opts = run_options(args)
    if args.tty and args.interactive and not args.detach and not sys.stdin.isatty():
        # docker's CLI checks it after the options, before any request (-d attaches nothing): bare, exit 1
        report(UsageError("the input device is not a TTY"), "")
        return 1
    if args.detach:  # under a monitor: cli/commands/services.py
        from lamina.cli.commands.services import run_detached

        return run_detached(system, args, opts)
    if _attached_tty(args):
        from lamina.cli.commands.services import run_attached

        return run_attached(system, args, opts)
    if _followed(args):
        from lamina.cli.commands.services import run_followed

        return run_followed(system, args, opts)
    record = image_for_run(system, args)
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

    if args.all:  # lamina's own: what dockerd restarts at its start (README: after a reboot)
        from lamina.cli.commands.services import cmd_start_all

        return cmd_start_all(system, args)
    if not args.containers:  # docker's text for a missing operand
        sys.stderr.write(args.count_error())
        return 1
    if (args.attach or args.interactive) and len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    code, failed = 0, []
    for name in args.containers:
        try:
            rec = engine.get_container(system, name)
            if args.attach or args.interactive:
                code = engine.start(system, rec, interactive=args.interactive)
            else:  # detached, as docker's: under a monitor (lamina/monitor.py)
                from lamina.engine.services import start

                start(system, rec)
                print(name, flush=True)
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


def cmd_rm(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine.containers import remove
    from lamina.errors import DAEMON_PREFIX, LaminaError, NotFound

    code = 0
    for name in args.containers:
        try:
            remove(system, name, force=args.force, volumes=args.volumes)
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

    # one write (one system call where stdout is unbuffered, as docker's)
    sys.stdout.write("".join(f"{change.kind} {escape_controls(change.path)}\n"
                             for change in diff(system, args.container)))
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
