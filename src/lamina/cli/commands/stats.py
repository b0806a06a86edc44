"""`stats`: live resource usage of containers, in docker's table (engine/stats.py reads it)."""

from __future__ import annotations

import sys
import time

# docker 20.10's defaultStatsTableFormat and its column headers
TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
HEADERS = {
    "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
INTERVAL = 1.0  # seconds between samples: dockerd's collector reads each container once a second
CLEAR = "\033[2J\033[H"  # docker's CLI clears the screen before each round when streaming


def add_parsers(sub) -> None:
    p = sub.add_parser("stats", help="Display a live stream of container(s) resource usage statistics",
                       usage="[OPTIONS] [CONTAINER...]")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--format", default=None, help="Pretty-print images using a Go template")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func=cmd_stats)


def context(entry, trunc: bool):
    """docker's statsContext for one entry: the fields its templates read."""
    from lamina.cli.formatctx import stats_context
    from lamina.units import bytes_size, human_size

    fields = {
        "Container": entry.container,
        "Name": entry.name.removeprefix("/") or "--",
        "ID": entry.id[:12] if trunc else entry.id,
        "CPUPerc": f"{entry.cpu_percent:.2f}%",
        "MemUsage": f"{bytes_size(entry.memory)} / {bytes_size(entry.memory_limit)}",
        "MemPerc": f"{entry.memory_percent:.2f}%",
        "NetIO": f"{human_size(entry.net_rx, 3)} / {human_size(entry.net_tx, 3)}",
        "BlockIO": f"{human_size(entry.block_read, 3)} / {human_size(entry.block_write, 3)}",
        "PIDs": str(entry.pids),
    }
    return stats_context(fields)


def cmd_stats(system, args) -> int:
    from lamina.cli import fmt
    from lamina.cli.main import report
    from lamina.engine.stats import Sampler, targets
    from lamina.errors import DAEMON_PREFIX, NotFound

    try:
        recs, labels = targets(system, args.containers, all=args.all)
    except NotFound as e:
        report(e, DAEMON_PREFIX)
        return 1
    template = args.format if fmt.wants_template(args.format) else TABLE
    sampler = Sampler(system)
    sampler.entries(recs, labels)  # the first reading: CPU % needs the one before
    out = sys.stdout
    while True:
        time.sleep(INTERVAL)
        if not args.containers and not args.no_stream:  # containers come and go while it streams
            recs, labels = targets(system, (), all=args.all)
        rows = [context(e, not args.no_trunc) for e in sampler.entries(recs, labels)]
        if not args.no_stream:
            out.write(CLEAR)
        code = fmt.print_listing(template, rows, HEADERS, parse_error="template parsing error",
                                 exec_error="template parsing error")
        out.flush()
        if code or args.no_stream:
            return code
