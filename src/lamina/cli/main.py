"""`lamina` command line: docker's verbs, flags, output shapes and exit codes.

Start-up cost matters (`lamina run --rm img true` should be ~runc's own time),
so this module imports only argparse; each command module keeps its heavy
imports inside the command functions.
"""

from __future__ import annotations

import argparse
import os
import sys

VERSION = "0.1.0"

# Each module under lamina.cli.commands has add_parsers(subparsers) for these verbs.
COMMANDS = {
    "images": ("import", "images", "tag", "rmi", "history"),
    "containers": ("run", "create", "start", "ps", "rm", "diff", "commit", "export", "inspect"),
    "system": ("system", "version", "info"),
    "registry": ("pull", "push", "login", "logout"),
    "archive": ("save", "load"),
    "build": ("build",),
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


class Parser(argparse.ArgumentParser):
    """argparse with docker's error shape: one line, exit code 125 for usage errors.
    Only `--help` asks for help: `-h` is `--hostname` for run, as in docker."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self.add_argument("--help", action="help", help="show this help message and exit")

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: {message}\nSee '{self.prog} --help'.\n")
        raise SystemExit(125)


def build_parser(verb: str | None = None) -> Parser:
    parser = Parser(prog="lamina", description="A daemonless, Docker-compatible container engine")
    parser.add_argument("--root", default=None, help="store directory (env LAMINA_ROOT, default /var/lib/lamina)")
    parser.add_argument("--storage-driver", default=None, choices=("overlay", "copy"),
                        help="snapshotter (default: overlay when the kernel supports it)")
    parser.add_argument("--runtime", default=None, help="OCI runtime: runc, crun or a path (default: auto)")
    parser.add_argument("-v", "--version", action="store_true", help="print version information and quit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    import importlib

    modules = [m for m, verbs in COMMANDS.items() if verb in verbs] or list(COMMANDS)
    for name in modules:
        try:
            module = importlib.import_module(f"lamina.cli.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"lamina.cli.commands.{name}":
                raise
            continue
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb = _verb(argv)
    if verb is not None and not any(verb in verbs for verbs in COMMANDS.values()):
        sys.stderr.write(f"lamina: '{verb}' is not a lamina command.\nSee 'lamina --help'\n")
        return 1
    parser = build_parser(verb)
    args = parser.parse_args(argv)
    if args.version:
        print(f"lamina version {VERSION}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from lamina.errors import LaminaError

    system = None
    try:
        if getattr(args, "needs_system", True):
            from lamina.system import System

            system = System(args.root, storage_driver=args.storage_driver, runtime=args.runtime)
        return int(args.func(system, args) or 0)
    except LaminaError as e:
        prefix = getattr(args, "error_prefix", "Error")
        sys.stderr.write(f"{prefix}: {e}\n" if prefix else f"{e}\n")
        return e.exit_code
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
        if system is not None:
            system.close()


if __name__ == "__main__":
    raise SystemExit(main())
