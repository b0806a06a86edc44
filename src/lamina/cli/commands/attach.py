"""attach: this terminal's stdin, stdout and stderr on a running container, as docker's.

The streams are reached as the API's attach reaches them (engine/attach.py): a tty
container with stdin open through its monitor's relay, raw both ways; any other one's
output from its json-file log, followed from now, and its input (stdin open) through
the relay.  The detach keys end the attachment and leave the container running
(docker's CLI then says `read escape sequence` and exits 1); otherwise attach ends
with the container, with its exit code."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("attach", help="Attach local standard input, output, and error streams to a running container",
                       usage="[OPTIONS] CONTAINER")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", action="store_true", default=True,
                   help="Proxy all received signals to the process")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_attach)


def detach_keys(spec: str) -> bytes:
    """--detach-keys (exec's and run's too): the sequence, or docker's refusal (dockerd's
    words, which the 20.10 CLI prints bare) as an error exiting 1."""
    from lamina.errors import UsageError
    from lamina.runtime import detachkeys

    try:
        return detachkeys.parse(spec or detachkeys.DEFAULT)
    except ValueError:
        raise UsageError(f"Invalid detach keys ({spec}) provided") from None


def cmd_attach(system, args) -> int:
    from lamina.cli.main import report
    from lamina.engine import attach as engine
    from lamina.errors import LaminaError, NotFound, UsageError

    try:
        rec = engine.attachable(system, args.container)
        tty = bool(rec.config.get("Tty"))
        if tty and not args.no_stdin and not sys.stdin.isatty():
            raise UsageError("the input device is not a TTY")
        keys = detach_keys(args.detach_keys)
    except NotFound as e:  # docker's client words a 404 itself
        report(e)
        return 1
    except LaminaError as e:
        report(e, "")
        return e.exit_code
    import time

    since_ns = time.time_ns()  # a --rm container's code is journaled before its removal
    stdin = not args.no_stdin and bool(rec.config.get("OpenStdin"))
    relay = engine.connect_relay(system, rec) if stdin or engine.uses_relay(rec) else None
    if relay is not None and engine.uses_relay(rec):
        from lamina.cli.attachio import terminal

        detached = terminal(system, rec, relay, keys, stdin=stdin)
    else:
        from lamina.cli.attachio import from_log

        detached = from_log(system, rec, relay, keys, stdin=stdin, sig_proxy=args.sig_proxy and not tty)
    if detached:
        sys.stderr.write("read escape sequence\n")
        return 1
    return engine.exit_code(system, rec, since_ns)
