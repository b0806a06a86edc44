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
    """run -d (and run -it), before the store is opened: the container's monitor forks
    off now and boots (imports, its own store) while this process finds the image and
    creates the container (lamina/monitor.py)."""
    from lamina.services import Monitor

    size = None
    if not args.detach:  # run -it: the container's first size is this terminal's
        from lamina.runtime.console import terminal_size

        size = terminal_size()

    from lamina import rootless, store_root
    from lamina.network import is_default

    root = store_root(args.root)  # absolute now: the monitor leaves this directory for /
    handed = args.detach and is_default(args.network) and not rootless()  # run_detached attaches it

    def child(ready_fd: int, go_fd: int) -> int:
        from lamina.monitor import serve

        if size is not None:
            from lamina.runtime.console import hand_size

            hand_size(size)

        def open_system():
            from lamina.system import System

            return System(root, storage_driver=args.storage_driver, runtime=args.runtime)

        # a foreground run's monitor kills it if this CLI vanishes without detaching
        return serve(open_system, ready_fd, go_fd, "start", tied=not args.detach, forked=True,
                     handed_network=handed)

    # what this process (creating the container) and the monitor (starting it) both import:
    # imported once, before the fork, not in each (~3.5 ms less work: on a busy machine, time)
    import lamina.engine.containers  # noqa: F401 - the store's tables, lifecycle, the runtime's driver
    import lamina.image  # noqa: F401
    import lamina.snapshot.overlay  # noqa: F401

    args.monitor = Monitor.forked(child)


def _create_for_monitor(system, args, opts):
    """The monitor forked (or, not yet, prepared) and the container created: (monitor, rec)."""
    from lamina.cli.runoptions import image_for_run
    from lamina.engine import containers as engine
    from lamina.engine.services import prepare_start

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
    return monitor, rec


def run_detached(system, args, opts) -> int:
    """run -d: the monitor boots while the image is found and the container created;
    docker's CLI prints the ID once created, then starts it."""
    from lamina.cli.main import report
    from lamina.errors import LaminaError, run_exit_code
    from lamina.network import handoff

    monitor, rec = _create_for_monitor(system, args, opts)
    print(rec.id, flush=True)
    network = None
    if getattr(args, "monitor", None) is not None and handoff.eligible(system, rec):  # a forked monitor
        # attached here while the monitor mounts its rootfs (on another core); its code imported
        # before the ID is sent, while the monitor still boots
        import lamina.network.endpoint  # noqa: F401

        network = lambda: handoff.attach(system, rec, monitor.keeper())  # noqa: E731
    try:
        # the store is closed while the container starts (the monitor has its own open:
        # no checkpoint, no syncs at this command's exit)
        monitor.start(rec, waiting=system.close, network=network)
    except LaminaError as e:  # docker: a failed start has no "See 'docker run --help'." line
        report(e, args.error_prefix, cli="run")
        return run_exit_code(e)
    return 0


def _start_tied(system, args, opts, *, relay: bool):
    """The container created and started under its monitor, tied to this process
    (lamina/tether.py), connected to its relay first when `relay` (nothing it writes
    before we attach is missed): (monitor, rec, relay connection or None), or the exit
    code of a start that failed."""
    from lamina.cli.main import report
    from lamina.engine import attach as engine
    from lamina.errors import LaminaError, run_exit_code
    from lamina.runtime.stdinrelay import connect

    monitor, rec = _create_for_monitor(system, args, opts)
    bundle, conn = engine.relay_dir(system, rec), None

    def connecting() -> None:  # while the monitor starts it: its relay listens before the runtime runs
        nonlocal conn
        while conn is None and not monitor.answered(0.01):
            conn = connect(bundle)

    try:
        monitor.start(rec, waiting=connecting if relay else None, tied=True)
    except LaminaError as e:  # docker: a failed start has no "See 'docker run --help'." line
        if conn is not None:
            conn.close()
        report(e, args.error_prefix, cli="run")
        return run_exit_code(e)
    if relay and conn is None:
        conn = engine.connect_relay(system, rec)
    return monitor, rec, conn


def _restarts(rec) -> bool:
    return (rec.host_config.get("RestartPolicy") or {}).get("Name") not in (None, "", "no")


def run_attached(system, args, opts) -> int:
    """run -it: as dockerd runs it, the container under a monitor with this terminal
    attached (connected before it starts: nothing it writes is missed), so the detach
    keys can leave it running (docker's CLI then exits 0, silently); otherwise the
    container's exit code once it is over (--rm: once removed; with a restart policy,
    its first exit's)."""
    import time

    from lamina.cli.attachio import terminal
    from lamina.cli.commands.attach import detach_keys
    from lamina.engine import attach as engine

    keys = detach_keys(args.detach_keys)
    since_ns = time.time_ns()
    started = _start_tied(system, args, opts, relay=True)
    if isinstance(started, int):
        return started
    monitor, rec, relay = started
    if relay is not None and terminal(system, rec, relay, keys, stdin=True):
        monitor.detached()  # else this process's end, however it comes, ends the container
        return 0
    if _restarts(rec):
        return engine.first_exit_code(system, rec, since_ns)
    return engine.exit_code(system, rec, since_ns)


def run_followed(system, args, opts) -> int:
    """A foreground run with a restart policy, without a terminal to attach: as dockerd
    runs it, under a monitor, which applies the policy; this process prints its output
    from its json-file log, from the first line, forwards the signals it gets to it
    (docker's --sig-proxy), sends stdin (-i) through the monitor's relay, and ends at
    its first exit with that exit code (docker's CLI waits for that one only)."""
    import time

    from lamina.cli.attachio import from_log
    from lamina.cli.commands.attach import detach_keys
    from lamina.engine import attach as engine

    keys = detach_keys(args.detach_keys)
    since_ns = time.time_ns()
    started = _start_tied(system, args, opts, relay=args.interactive)
    if isinstance(started, int):
        return started
    monitor, rec, relay = started
    if from_log(system, rec, relay, keys, stdin=args.interactive, sig_proxy=True, tail=-1,
                alive=engine.first_run_going(system, rec)):
        monitor.detached()
        return 0
    return engine.first_exit_code(system, rec, since_ns)


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
        from lamina.signals import parse_signal

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
