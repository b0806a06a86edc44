"""`logs`: a container's output from its json-file log, as `docker logs` prints it."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    from lamina.errors import DAEMON_PREFIX

    p = sub.add_parser("logs", help="Fetch the logs of a container", usage="[OPTIONS] CONTAINER")
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("--since", default="",
                   help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
    p.add_argument("-n", "--tail", default="all", help='Number of lines to show from the end of the logs')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--until", default="",
                   help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_logs, error_prefix=DAEMON_PREFIX)


def _bound(flag: str, value: str, *, until: bool = False) -> bytes | None:
    """--since/--until as the reader compares entry times: the CLI's GetTimestamp, then
    the daemon's ParseTimestamps; None for no bound (unset, or an until of 0)."""
    from lamina.errors import UsageError
    from lamina.logs.since import get_timestamp, parse_timestamp, rfc3339_fixed

    if not value:
        return None
    try:
        sent = get_timestamp(value)
        if until and sent == "0":
            return None
        secs, nanos = parse_timestamp(sent)
    except ValueError as e:
        raise UsageError(f'invalid value for "{flag}": {e}') from None
    return rfc3339_fixed(secs, nanos)


def _tail(value: str) -> int:
    """dockerd's Atoi of --tail: anything but a number (or a negative one) is all."""
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not digits or not digits.isascii() or not digits.isdigit():
        return -1
    return max(int(value), -1)


def cmd_logs(system, args) -> int:
    from lamina.engine.logs import log_source, writer_alive
    from lamina.logs.reader import Printer, follow, show

    rec, path = log_source(system, args.container)
    since, until = _bound("since", args.since), _bound("until", args.until, until=True)
    printer = Printer(sys.stdout.buffer, sys.stderr.buffer, timestamps=args.timestamps, details=args.details,
                      since=since, until=until)
    tail = _tail(args.tail)
    try:
        if args.follow:
            follow(path, printer, lambda: writer_alive(system, rec.id), tail=tail)
        else:
            show(path, printer, tail=tail)
    except BrokenPipeError:  # `logs | head`: the reader left, as docker's CLI stops quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return 130
    return 0
