"""Service verbs: stop, kill, wait, restart (run -d and start live with run in containers.py)."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    from lamina.errors import DAEMON_PREFIX

    p = sub.add_parser("stop", help="Stop one or more running containers")
    p.add_argument("-t", "--time", type=int, default=None,
                   help="Seconds to wait for stop before killing it (default 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_stop, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("kill", help="Kill one or more running containers")
    p.add_argument("-s", "--signal", default="KILL", help="Signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_kill, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("wait", help="Block until one or more containers stop, then print their exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_wait, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("restart", help="Restart one or more containers")
    p.add_argument("-t", "--time", type=int, default=None,
                   help="Seconds to wait for stop before killing the container (default 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_restart, error_prefix=DAEMON_PREFIX)

    p = sub.add_parser("rename", help="Rename a container", usage="CONTAINER NEW_NAME")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(func=cmd_rename)


def fork_monitor(args) -> None:
    """run -d, before the store is opened: the container's monitor forks off now and
    boots (imports, its own store) while this process finds the image and creates the
    container (lamina/monitor.py)."""
    from lamina.services import Monitor

    def child(ready_fd: int, go_fd: int) -> int:
        from lamina.monitor import serve

        def open_system():
            from lamina.system import System

            return System(args.root, storage_driver=args.storage_driver, runtime=args.runtime)

        return serve(open_system, ready_fd, go_fd, "start")

    args.monitor = Monitor.forked(child)


def run_detached(system, args, opts) -> int:
    """run -d: the monitor boots while the image is found and the container created;
    docker's CLI prints the ID once created, then starts it."""
    from lamina.cli.runoptions import image_for_run
    from lamina.cli.main import report
    from lamina.engine import containers as engine
    from lamina.engine.services import prepare_start
    from lamina.errors import LaminaError, run_exit_code

    monitor = getattr(args, "monitor", None) or prepare_start(system)
    try:
        record = image_for_run(system, args)
        warning = system.runtime.security_warning()  # cached per runtime binary: no process here
        if warning:
            sys.stderr.write(f"WARNING: {warning}\n")
        rec = engine.create(system, record, args.image, opts)
    except BaseException:
        monitor.cancel()
        raise
    print(rec.id, flush=True)
    try:
        # the store is closed while the container starts (the monitor has its own open:
        # no checkpoint, no syncs at this command's exit)
        monitor.start(rec, waiting=system.close)
    except LaminaError as e:  # docker: a failed start has no "See 'docker run --help'." line
        report(e, args.error_prefix, cli="run")
        return run_exit_code(e)
    return 0


def _each(args, op, *, show=True) -> int:
    """docker's loop over operands: each name (or result) on stdout, each error on
    stderr, exit 1 if any failed."""
    from lamina.cli.main import report
    from lamina.errors import LaminaError

    code = 0
    for name in args.containers:
        try:
            out = op(name)
            print(name if out is None else out)
            sys.stdout.flush()
        except LaminaError as e:
            report(e, args.error_prefix)
            code = 1
    return code


def cmd_stop(system, args) -> int:
    from lamina.engine.services import stop

    return _each(args, lambda name: stop(system, name, args.time))


def cmd_kill(system, args) -> int:
    from lamina.engine.services import kill

    return _each(args, lambda name: kill(system, name, args.signal))


def cmd_wait(system, args) -> int:
    from lamina.engine.services import wait

    return _each(args, lambda name: wait(system, name))


def cmd_restart(system, args) -> int:
    from lamina.engine.services import restart

    return _each(args, lambda name: restart(system, name, args.time))


def cmd_rename(system, args) -> int:
    """docker's CLI checks the names itself, then prints dockerd's refusal and its own line."""
    from lamina.cli.main import report
    from lamina.engine.containers import rename
    from lamina.errors import DAEMON_PREFIX, LaminaError, UsageError

    old, new = args.container.strip(), args.new_name.strip()
    if not old or not new:
        raise UsageError("Neither old nor new names may be empty")
    try:
        rename(system, old, new)
    except LaminaError as e:
        report(e, DAEMON_PREFIX)
        report(f"failed to rename container named {old}")
        return 1
    return 0


# --------------------------------------------------------------------------- run's flags


def config_from(args) -> dict:
    """Config keys of --stop-signal (checked as dockerd does at create) and --stop-timeout."""
    config: dict = {}
    if args.stop_signal:
        from lamina.services import parse_signal

        parse_signal(args.stop_signal)  # dockerd: "Invalid signal: X" (run: 125)
        config["StopSignal"] = args.stop_signal
    if args.stop_timeout is not None:
        config["StopTimeout"] = args.stop_timeout
    return config


def host_config_from(args) -> dict:
    """HostConfig keys of run/create's --restart and --init, validated as docker's
    CLI (bare errors, run's exit 125) and dockerd (Error response from daemon)."""
    from lamina.errors import InvalidParameter, OptionError

    host: dict = {}
    if args.init:
        host["Init"] = True
    if args.restart is not None:
        name, colon, count = args.restart.partition(":")
        retries = 0
        if colon:
            try:
                retries = int(count)
            except ValueError:
                raise OptionError("maximum retry count must be an integer") from None
        if name not in ("no", "always", "unless-stopped", "on-failure", ""):
            raise InvalidParameter(f"invalid restart policy '{name}'")
        if colon and name != "on-failure":
            raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
        if retries < 0:
            raise InvalidParameter("maximum retry count cannot be negative")
        host["RestartPolicy"] = {"Name": name or "no", "MaximumRetryCount": retries}
        if args.rm and name not in ("no", ""):
            raise OptionError("Conflicting options: --restart and --rm")
    return host


def cmd_start_all(system, args) -> int:
    """`start --all`: each container started is named; failures as start's."""
    from lamina.cli.main import report
    from lamina.engine.services import start_all

    failed = []
    for rec, error in start_all(system):
        if error is None:
            print(rec.name, flush=True)
        else:
            report(error, args.error_prefix)
            failed.append(rec.name)
    if failed:
        report(f"failed to start containers: {', '.join(failed)}")
        return 1
    return 0
