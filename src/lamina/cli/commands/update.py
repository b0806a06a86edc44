"""`update`: a container's resource limits and restart policy, as docker 20.10's CLI."""

from __future__ import annotations

from lamina.errors import DAEMON_PREFIX


def _valid(name: str):
    def validate(value: str) -> str | None:  # runtime/resources.py only when a value is given
        from lamina.runtime import resources

        return getattr(resources, name)(value)

    return validate


def add_parsers(sub) -> None:
    p = sub.add_parser("update", help="Update configuration of one or more containers",
                       usage="[OPTIONS] CONTAINER [CONTAINER...]")
    p.add_argument("--blkio-weight", default=None, metavar="uint16", validate=_valid("valid_uint16"),
                   help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
    p.add_argument("--cpu-period", type=int, default=0, metavar="int",
                   help="Limit CPU CFS (Completely Fair Scheduler) period")
    p.add_argument("--cpu-quota", type=int, default=0, metavar="int",
                   help="Limit CPU CFS (Completely Fair Scheduler) quota")
    p.add_argument("-c", "--cpu-shares", type=int, default=0, metavar="int", help="CPU shares (relative weight)")
    p.add_argument("--cpus", default=None, metavar="decimal", help="Number of CPUs", validate=_valid("valid_cpus"))
    p.add_argument("--cpuset-cpus", default="", metavar="string", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", default="", metavar="string", help="MEMs in which to allow execution (0-3, 0,1)")
    p.add_argument("-m", "--memory", default=None, metavar="bytes", help="Memory limit", validate=_valid("valid_size"))
    p.add_argument("--memory-reservation", default=None, metavar="bytes", help="Memory soft limit",
                   validate=_valid("valid_size"))
    p.add_argument("--memory-swap", default=None, metavar="bytes", validate=_valid("valid_swap"),
                   help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
    p.add_argument("--pids-limit", type=int, default=None, metavar="int",
                   help="Tune container pids limit (set -1 for unlimited)")
    p.add_argument("--restart", default="", metavar="string", help="Restart policy to apply when a container exits")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_update, error_prefix=DAEMON_PREFIX)


def request_of(args) -> dict | None:
    """docker's updateConfig from the flags, or None when none was given."""
    from lamina.errors import UsageError
    from lamina.runtime.resources import parse_cpus, parse_size

    def size(text):
        return parse_size(text) if text else 0

    request = {
        "BlkioWeight": int(args.blkio_weight or 0), "CpusetCpus": args.cpuset_cpus, "CpusetMems": args.cpuset_mems,
        "CpuShares": args.cpu_shares, "Memory": size(args.memory), "MemoryReservation": size(args.memory_reservation),
        "MemorySwap": -1 if args.memory_swap == "-1" else size(args.memory_swap), "CpuPeriod": args.cpu_period,
        "CpuQuota": args.cpu_quota, "NanoCpus": parse_cpus(args.cpus) if args.cpus else 0,
    }
    if args.pids_limit is not None:  # sent only when given: 0 and -1 make it unlimited
        request["PidsLimit"] = args.pids_limit
    if args.restart:
        name, colon, count = args.restart.partition(":")
        try:
            retries = int(count) if colon else 0
        except ValueError:
            raise UsageError("maximum retry count must be an integer") from None
        request["RestartPolicy"] = {"Name": name, "MaximumRetryCount": retries}
    if not any(v for v in request.values()) and args.pids_limit is None:
        return None
    return request


def cmd_update(system, args) -> int:
    """Each container's name as it was given, once updated; failures on their own lines, exit 1."""
    import sys

    from lamina.cli.main import report
    from lamina.engine.update import update
    from lamina.errors import LaminaError

    request = request_of(args)
    if request is None:
        report("you must provide one or more flags when using this command", prefix="")
        return 1
    code = 0
    for name in args.containers:
        try:
            for text in update(system, name, request):
                sys.stderr.write(f"{text}\n")
            print(name, flush=True)
        except LaminaError as e:
            report(e, args.error_prefix)
            code = 1
    return code
