"""`lamina` command line: docker's verbs, flags, output shapes and exit codes.

Start-up cost matters (`lamina ps` should start faster than docker's Go CLI), so
this module imports only lamina.cli.flags and the one command module the verb
lives in; each command module keeps its heavy imports inside the command functions.
"""

from __future__ import annotations

import os
import sys

from lamina import __version__ as VERSION
from lamina.cli import flags

# Each module under lamina.cli.commands has add_parsers(subparsers) for these verbs.
COMMANDS = {
    "images": ("import", "images", "tag", "rmi", "history"),
    "containers": ("run", "create", "start", "rm", "diff", "commit", "export"),
    "ps": ("ps",),
    "inspect": ("inspect",),
    "system": ("system", "version", "info"),
    "registry": ("pull", "push", "login", "logout"),
    "archive": ("save", "load"),
    "build": ("build",),
    "network": ("network",),
    "volume": ("volume",),
    "logs": ("logs",),
    "attach": ("attach",),
    "services": ("stop", "kill", "wait", "restart", "rename"),
    "port": ("port",),
    "cp": ("cp",),
    "stats": ("stats",),
    "exec": ("exec", "top", "pause", "unpause"),
    "update": ("update",),
    "layers": ("image", "layers"),
    "ui": ("ui",),
    "management": ("container", "image"),  # after layers: `image diff` is its; the rest name verbs
}
_GLOBAL_WITH_VALUE = ("--root", "--storage-driver", "--runtime")


def _verb(argv: list[str]) -> str | None:
    """The command word, skipping global options (so only its module is loaded)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a
    return None


def _command(argv: list[str]) -> tuple[str | None, tuple | None]:
    """The verb to run and, for docker's `container ls`, `image rm` (another verb's
    parser under a longer name), management.resolve's (group, name, verb)."""
    verb = _verb(argv)
    if verb not in ("container", "image"):
        return verb, None
    from lamina.cli.commands.management import resolve

    nested = resolve(argv, verb)
    return (nested[2] if nested else verb), nested


def build_parser(verb: str | None = None) -> flags.Command:
    """The command table: global flags, and the verbs of the module `verb` lives in (all when None)."""
    root = flags.Command(flags.PROG, "A daemonless, Docker-compatible container engine", usage="[OPTIONS] COMMAND")
    root.add_argument("--root", default=None, help="store directory (env LAMINA_ROOT, default /var/lib/lamina)")
    root.add_argument("--storage-driver", default=None, choices=("overlay", "copy"),
                      help="snapshotter (default: overlay when the kernel supports it)")
    root.add_argument("--runtime", default=None, help="OCI runtime: runc, crun or a path (default: auto)")
    root.add_argument("-v", "--version", action="store_true", help="Print version information and quit")
    modules = [m for m, verbs in COMMANDS.items() if verb in verbs]
    # only the verb's own parser is built (its module's other verbs are not run)
    sub = root.add_subparsers(dest="verb", only=verb if modules else None)
    modules = modules or list(COMMANDS)
    for name in modules:
        qualified = f"lamina.cli.commands.{name}"
        try:
            __import__(qualified)  # not importlib: it would cost the read verbs its own import
        except ModuleNotFoundError as e:
            if e.name != qualified:
                raise
            continue
        sys.modules[qualified].add_parsers(sub)
    return root


def report(error, prefix: str = "Error", verbatim: tuple[str, ...] = (), *, cli: str | None = None,
           with_help: bool = False) -> None:
    """The one place errors are printed (the handler below, and the verbs that go on
    after one operand fails, like rm/rmi/inspect): on stderr, after what stdout already
    holds.  `prefix` is the verb's ("Error", or errors.DAEMON_PREFIX where docker's text is dockerd's:
    an error docker's own CLI raises, `error.daemon` false, is then bare); a message
    already starting with `Error response from` (a registry's) or with one of `verbatim`
    (a RUN's `The command '…' returned …`) is printed as is.  `cli` is the verb for
    docker's reportError form of run (and of run/create's option errors): `lamina: <text>.`
    and, `with_help`, the line `See 'lamina <verb> --help'.`"""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    from lamina.errors import DAEMON_PREFIX

    msg = str(error)
    if prefix == DAEMON_PREFIX and not getattr(error, "daemon", True):
        prefix = ""
    if prefix and not msg.startswith(("Error response from ", *verbatim)):
        msg = f"{prefix}: {msg}"
    if cli is not None:
        msg = f"{flags.PROG}: {msg.removesuffix('.')}." + (f"\nSee '{flags.PROG} {cli} --help'." if with_help else "")
    if not msg.isprintable():  # names from images and users must not drive the terminal (ESC, C1)
        from lamina.quoting import escape_message

        msg = escape_message(msg)
    sys.stderr.write(f"{msg}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None, *, exiting: bool = False, command: tuple | None = None) -> int:
    """The verb's exit code.  `exiting`: a read verb's process ends right after (launch),
    and the store is left to that exit to close.  `command`: _command(argv), when the
    caller (launch) has it already."""
    argv = sys.argv[1:] if argv is None else argv
    verb, nested = command or _command(argv)
    if verb is not None and not any(verb in verbs for verbs in COMMANDS.values()):
        sys.stderr.write(f"lamina: '{verb}' is not a lamina command.\nSee 'lamina --help'\n")
        return 1
    if verb is not None and os.geteuid() != 0:  # an ordinary user: root in a user namespace of its own
        from lamina.errors import LaminaError
        from lamina.userns import enter

        try:
            enter()
        except LaminaError as e:
            report(e)
            return e.exit_code
    parser = build_parser(verb)
    if nested:
        from lamina.cli.commands.management import nest

        nest(parser, *nested)
    args = flags.run(parser, argv)
    if isinstance(args, int):
        return args
    if args.version:
        print(f"lamina version {VERSION}")
        return 0
    if not getattr(args, "func", None):
        sys.stdout.write(parser.help_text())
        return 0
    from lamina.errors import LaminaError, OptionError, run_exit_code

    system = None
    try:
        if getattr(args, "needs_system", True):
            from lamina.system import System

            early = getattr(args, "before_system", None)
            if early is not None:  # run -d: its monitor forks off before the store is opened
                early(args)
            system = System(args.root, storage_driver=args.storage_driver, runtime=args.runtime)
        return int(args.func(system, args) or 0)
    except LaminaError as e:
        prefix, verbatim = getattr(args, "error_prefix", "Error"), getattr(args, "error_verbatim", ())
        if verbatim and system is None and getattr(args, "needs_system", True):
            prefix = ""  # the registry verbs show a store that cannot be opened bare, as docker's "Cannot connect"
        cli = getattr(args, "error_cli", None)  # run: everything before the container started
        if cli is None and isinstance(e, OptionError):
            cli = args.verb
        report(e, prefix, verbatim, cli=cli, with_help=cli is not None)
        return run_exit_code(e) if cli is not None else e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `lamina images | head` — the reader went away; that is not an error.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    finally:
        if system is not None and not exiting:
            system.close()


# How a verb ends (launch): (collector off, store left open, quick exit).  Any other verb
# ends the usual way: collector on, store closed, the interpreter's own exit.
# - The read verbs only read the store and print: once main() returns, nothing is pending
#   but their output (no thread or atexit handler exists: checked in launch).
_READ = (True, True, True)
# - exec starts and ends as they do (~4 ms of its own start-up): once main() returns its runc
#   is reaped, its scratch directory removed and the store closed.  Its -t relay, which may
#   last hours, turns the collector back on (cli.commands.exec).
_EXEC = (True, False, True)
# - create, run and rm (issues 9 and 12), collector on: once main() returns the container is
#   created, or has run and been released (or handed to its monitor), or is gone, and nothing
#   is left but the store's close.  As the last connection's, that close checkpoints with four
#   fdatasyncs (~3 ms) and removes the WAL, whose making the next write pays for again (~2 ms);
#   the commits stay in the WAL instead (synchronous=NORMAL: as durable as any commit between
#   two checkpoints), for a later command's close (or SQLite's auto-checkpoint) to checkpoint.
_WRITE = (False, True, True)
_ENDINGS = {"images": _READ, "ps": _READ, "inspect": _READ, "diff": _READ, "history": _READ, "version": _READ,
            "exec": _EXEC, "create": _WRITE, "run": _WRITE, "rm": _WRITE}


def launch() -> None:
    """The `lamina` command (the launcher scripts/setup installs): main(), then the exit,
    as _ENDINGS has it for the verb (`container ls` is `ps`, as quick).

    Without the cyclic garbage collector: a read verb's few milliseconds make no cycles
    worth collecting, and its collections during the imports cost ~0.3 ms.  A quick exit
    (os._exit, the output flushed) instead of the interpreter's teardown, which frees every
    module and object one by one and runs a last collection: ~2 ms of `lamina ps`'s ~16,
    nothing that anyone could observe.  The store left open: closing SQLite's last
    connection removes the -wal and -shm files, which the next command makes again (~0.1 ms
    each way); the exit drops its locks all the same, and what it may have written (a
    recovery) stays in the WAL for the next command's close to checkpoint.  A verb that
    started a thread or registered an atexit handler (a rootless lamina's user namespace)
    exits the usual way."""
    argv = sys.argv[1:]
    command = _command(argv)
    gc_off, keep_store, quick = _ENDINGS.get(command[0], (False, False, False))
    if gc_off:
        import gc

        gc.disable()
    if command[0] == "run":  # a foreground container's watchdog is left to this process's end
        from lamina.runtime.watchdog import reap_at_exit

        reap_at_exit()
    code = main(argv, exiting=keep_store, command=command)
    if quick and "threading" not in sys.modules and "atexit" not in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            sys.exit(code)  # as the usual exit reports it (a reader gone: `lamina ps | true`)
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
