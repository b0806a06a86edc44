"""Verbs on a running container's processes: exec, top, pause, unpause; run's --health-* flags."""

from __future__ import annotations

import os
import sys


def add_parsers(sub) -> None:
    from lamina.cli.flags import REMAINDER, valid_env
    from lamina.errors import DAEMON_PREFIX

    p = sub.add_parser("exec", help="Run a command in a running container",
                       usage="[OPTIONS] CONTAINER COMMAND [ARG...]", interspersed=False)
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables", validate=valid_env)
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("-w", "--workdir", default=None, help="Working directory inside the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs="+", metavar="COMMAND")
    p.set_defaults(func=cmd_exec, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("top", help="Display the running processes of a container",
                       usage="CONTAINER [ps OPTIONS]", interspersed=False)
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=REMAINDER, metavar="ps OPTIONS")
    p.set_defaults(func=cmd_top, error_prefix=DAEMON_PREFIX)

    for verb, what in (("pause", "Pause all processes within one or more containers"),
                       ("unpause", "Unpause all processes within one or more containers")):
        p = sub.add_parser(verb, help=what)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.set_defaults(func=cmd_pause, error_prefix=DAEMON_PREFIX)


# --------------------------------------------------------------------------- exec


def cmd_exec(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine.exec import ExecOptions, exec_container
    from lamina.errors import ExecFailed, LaminaError, NotFound, UsageError

    if args.tty and args.interactive and not sys.stdin.isatty():
        report(UsageError("the input device is not a TTY"), "")  # docker's CLI, before any request
        return 1
    env = []
    if args.env_file:
        from lamina.cli.runoptions import read_env_file

        try:
            for path in args.env_file:
                env += read_env_file(path)
        except LaminaError as e:  # docker's exec (unlike run) prints it bare and exits 1
            report(e, "")
            return 1
    for e in args.env:
        if "=" in e:
            env.append(e)
        elif e in os.environ:  # docker's CLI fills a bare name from its own environment
            env.append(f"{e}={os.environ[e]}")
    from lamina.runtime import detachkeys

    try:
        keys = detachkeys.parse(args.detach_keys or detachkeys.DEFAULT)
    except ValueError:  # dockerd's words for exec (attach's say "detach keys")
        report(f"Invalid escape keys ({args.detach_keys}) provided", args.error_prefix)
        return 1
    opts = ExecOptions(cmd=tuple(args.command), interactive=args.interactive, tty=args.tty, detach=args.detach,
                       user=args.user or None, workdir=args.workdir or None, env=tuple(env),
                       privileged=args.privileged, detach_keys=keys)
    console_size = None
    if args.tty:
        import gc

        from lamina.runtime.console import terminal_size

        gc.enable()  # launch() starts exec without the collector; a terminal's relay may last hours
        console_size = terminal_size()
    try:
        return exec_container(system, args.container, opts, console_size=console_size)
    except detachkeys.Detached:  # docker's CLI: term's EscapeError, bare, exit 1; the process goes on
        sys.stderr.write("read escape sequence\n")
        return 1
    except ExecFailed as e:  # docker: on the exec's own output stream, bare
        sys.stdout.write(f"{e}\n")
        sys.stdout.flush()
        return e.exit_code
    except NotFound as e:  # docker's client words a 404 itself
        report(e)
        return 1


# --------------------------------------------------------------------------- top


def cmd_top(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine.exec import top
    from lamina.errors import NotFound
    from lamina.quoting import escape_controls

    try:
        titles, processes = top(system, args.container, " ".join(args.ps_args))
    except NotFound as e:
        report(e, args.error_prefix)  # docker: "Error response from daemon: No such container: x"
        return 1
    # docker's CLI: text/tabwriter(minwidth 20, tabwidth 1, padding 3, ' '), the last column as is
    rows = [titles] + processes
    widths = [20] * len(titles)
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + 3)
    out = sys.stdout
    for row in rows:
        cells = [escape_controls(c) for c in row]  # command lines are the container's
        out.write("".join(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])) + cells[-1] + "\n")
    return 0


# --------------------------------------------------------------------------- pause, unpause


def cmd_pause(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine import exec as engine
    from lamina.errors import LaminaError

    act = engine.pause if args.verb == "pause" else engine.unpause
    code = 0
    for name in args.containers:
        try:
            act(system, name)
            print(name)
        except LaminaError as e:  # docker: each failure on its own line, exit 1 at the end
            report(e, args.error_prefix)
            code = 1
    return code


# --------------------------------------------------------------------------- run's health flags


def health_flags(p) -> None:
    """run/create's --health-* flags, as docker declares them (durations checked as Go parses them)."""
    p.add_argument("--health-cmd", default="", help="Command to run to check health")
    p.add_argument("--health-interval", default=None, validate=_duration_problem,
                   help="Time between running the check (ms|s|m|h) (default 0s)")
    p.add_argument("--health-retries", type=int, default=0, help="Consecutive failures needed to report unhealthy")
    p.add_argument("--health-start-period", default=None, validate=_duration_problem,
                   help="Start period for the container to initialize before starting health-retries countdown "
                        "(ms|s|m|h) (default 0s)")
    p.add_argument("--health-timeout", default=None, validate=_duration_problem,
                   help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    p.add_argument("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")


def _duration_problem(value: str) -> str | None:
    from lamina.builder.gotext import parse_duration  # only when the flag is given: it imports re
    from lamina.errors import LaminaError

    try:
        parse_duration(value)
    except LaminaError as e:
        return str(e)
    return None


def healthcheck_from(args) -> dict | None:
    """Config.Healthcheck from run's flags, or None when none was given."""
    if not (args.health_cmd or args.health_interval or args.health_timeout or args.health_start_period
            or args.health_retries or args.no_healthcheck):
        return None  # the common case: nothing parsed, nothing imported
    from lamina.builder.gotext import parse_duration
    from lamina.health import healthcheck_config

    def ns(value):
        return parse_duration(value) if value else 0

    return healthcheck_config(cmd=args.health_cmd, interval=ns(args.health_interval),
                              timeout=ns(args.health_timeout), start_period=ns(args.health_start_period),
                              retries=args.health_retries, disabled=args.no_healthcheck)
