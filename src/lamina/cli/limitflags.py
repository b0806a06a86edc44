"""run/create's resource-limit flags (docker's names, help and value checks).

Declared here, not in runtime/resources.py which checks and applies them: every
verb of the containers module builds run's parser (`ps` too), and must not load
lamina.runtime for it; a value is checked (and that module loaded) only when given.
"""

from __future__ import annotations


def _check(name: str):
    def validate(value: str) -> str | None:
        from lamina.runtime import resources

        return getattr(resources, name)(value)

    return validate


def add_flags(p) -> None:
    """Declare docker run's resource flags on `p` (run and create)."""
    size = _check("valid_size")
    p.add_argument("-m", "--memory", default=None, metavar="bytes", help="Memory limit", validate=size)
    p.add_argument("--memory-swap", default=None, metavar="bytes", validate=_check("valid_swap"),
                   help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    p.add_argument("--memory-reservation", default=None, metavar="bytes", help="Memory soft limit", validate=size)
    p.add_argument("--memory-swappiness", type=int, default=-1, metavar="int",
                   help="Tune container memory swappiness (0 to 100)")
    p.add_argument("--kernel-memory", default=None, metavar="bytes", help="Kernel memory limit", validate=size)
    p.add_argument("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    p.add_argument("--cpus", default=None, metavar="decimal", help="Number of CPUs", validate=_check("valid_cpus"))
    p.add_argument("-c", "--cpu-shares", type=int, default=0, metavar="int", help="CPU shares (relative weight)")
    p.add_argument("--cpuset-cpus", default="", metavar="string", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", default="", metavar="string", help="MEMs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpu-period", type=int, default=0, metavar="int",
                   help="Limit CPU CFS (Completely Fair Scheduler) period")
    p.add_argument("--cpu-quota", type=int, default=0, metavar="int",
                   help="Limit CPU CFS (Completely Fair Scheduler) quota")
    p.add_argument("--pids-limit", type=int, default=None, metavar="int",
                   help="Tune container pids limit (set -1 for unlimited)")
    p.add_argument("--blkio-weight", default=None, metavar="uint16", validate=_check("valid_uint16"),
                   help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
    p.add_argument("--ulimit", action="append", default=[], metavar="ulimit", help="Ulimit options (default [])",
                   validate=_check("valid_ulimit"))


def given(args) -> bool:
    """Whether any of these flags was given (else the HostConfig gets dockerd's zero values
    without loading runtime/resources.py)."""
    return bool(args.memory or args.memory_swap or args.memory_reservation or args.kernel_memory
                or args.memory_swappiness != -1 or args.oom_kill_disable or args.cpus or args.cpu_shares
                or args.cpuset_cpus or args.cpuset_mems or args.cpu_period or args.cpu_quota
                or args.pids_limit is not None or args.blkio_weight or args.ulimit)
