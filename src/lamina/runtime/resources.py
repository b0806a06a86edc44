"""Resource limits: run's flags -> docker's HostConfig keys -> config.json's
`linux.resources` and `process.rlimits`.

Three steps, each as docker 20.10 does it: the CLI parses the flag values
(declared in cli/limitflags.py, checked by the `valid_*` here: go-units sizes,
big.Rat CPUs, `--ulimit` as go-units parses it; a bad value is a flag error),
dockerd checks and adapts the request (`host_config_from`: verifyPlatformContainerResources' texts and order, and
adaptContainerSettings' MemorySwap = 2 x Memory), and at start the daemon's
oci_linux.go turns the HostConfig into the runtime spec (`apply`); runc writes the
cgroup files (v1 or v2: it translates).  It imports nothing at the top (no `re`:
the run path stays lean).
"""

from __future__ import annotations

from lamina.strconv import parse_int  # api/ takes it from here too

MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory
CPU_PERIOD = 100000           # the period dockerd writes for --cpus (100 ms)
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")  # go-units' table ("as" disabled there)

# HostConfig's resource keys as docker's inspect shows them for a container run without limits.
DEFAULTS = {
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None,
    "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
    "CpusetCpus": "", "CpusetMems": "", "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None, "Ulimits": None,
    "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
}


# --------------------------------------------------------------------------- the CLI's parsers

def parse_size(text: str) -> int:
    """go-units' RAMInBytes (lamina.units): `64m`, `1.5GiB`, `512 kb`, plain bytes."""
    from lamina.units import ram_in_bytes

    size = ram_in_bytes(text)
    if size is None:
        raise ValueError(f"invalid size: '{text}'")
    # Go's int64(float64) of a size past int64 gives its minimum (amd64): dockerd then
    # answers `Minimum memory limit allowed is 6MB`, never the runtime a number it cannot read
    return size if size < (1 << 63) else -(1 << 63)


def valid_size(value: str) -> str | None:
    try:
        parse_size(value)
    except ValueError as e:
        return str(e)
    return None


def valid_swap(value: str) -> str | None:
    return None if value == "-1" else valid_size(value)


def valid_uint16(value: str) -> str | None:
    if not (value.isdigit() and value.isascii()):
        return f'strconv.ParseUint: parsing "{value}": invalid syntax'
    if int(value) > 0xFFFF:
        return f'strconv.ParseUint: parsing "{value}": value out of range'
    return None


def parse_cpus(text: str) -> int:
    """docker's NanoCPUs: a big.Rat (`0.5`, `1/2`, `5e-1`) times 1e9, which must be whole."""
    num, den = _rational(text)
    if num is None:
        raise ValueError(f"failed to parse {text} as a rational number")
    nano, rest = divmod(num * 1_000_000_000, den)
    if rest:
        raise ValueError("value is too precise")
    return nano


def _rational(text: str) -> tuple[int | None, int]:
    """big.Rat.SetString's forms: `a/b`, or a decimal with an optional exponent."""
    if "/" in text:
        a, _, b = text.partition("/")
        try:
            num, den = parse_int(a), int(b) if b.isdigit() and b.isascii() else 0
        except ValueError:
            return None, 1
        return (num, den) if den else (None, 1)
    sign = -1 if text[:1] == "-" else 1
    body = text[1:] if text[:1] in ("+", "-") else text
    mant, e, exp = body.lower().partition("e")
    whole, _, frac = mant.partition(".")
    if not (whole or frac) or not all(x.isdigit() and x.isascii() for x in (whole, frac) if x):
        return None, 1
    try:
        shift = parse_int(exp) if e else 0
    except ValueError:
        return None, 1
    num = int(whole + frac or "0") * sign
    shift -= len(frac)
    # A bounded power of ten whatever the exponent (`1e999999999` must not hang): beyond
    # these the value is out of --cpus' range, or finer than a nano CPU, either way.
    if shift > 100:
        shift = 100
    elif shift < -(len(whole) + len(frac) + 100):
        return (0, 1) if num == 0 else (1, 10 ** 100)
    return (num * 10 ** shift, 1) if shift >= 0 else (num, 10 ** -shift)


def valid_cpus(value: str) -> str | None:
    try:
        parse_cpus(value)
    except ValueError as e:
        return str(e)
    return None


def parse_ulimit(text: str) -> dict:
    """go-units' ParseUlimit: `name=soft[:hard]` -> {"Name", "Hard", "Soft"} (inspect's shape)."""
    name, eq, values = text.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {text}")
    if name not in ULIMIT_NAMES:
        raise ValueError(f"invalid ulimit type: {name}")
    parts = values.split(":")
    if len(parts) > 2:
        raise ValueError(f"too many limit value arguments - {values}, can only have up to two, `soft[:hard]`")
    hard = parse_int(parts[1]) if len(parts) == 2 else None  # Go parses the hard limit first
    soft = parse_int(parts[0])
    hard = soft if hard is None else hard
    if hard != -1 and soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def valid_ulimit(value: str) -> str | None:
    try:
        parse_ulimit(value)
    except ValueError as e:
        return str(e)
    return None


# --------------------------------------------------------------------------- dockerd's checks

def host_config_from(args, warn=None) -> dict:
    """The HostConfig resource keys of parsed run/create `args`, checked as dockerd checks
    them (InvalidParameter with its text; OptionError for what docker's CLI refuses after
    parsing).  `warn(text)` gets the warnings docker prints as `WARNING: …` lines."""
    from lamina.errors import InvalidParameter, OptionError

    warn = warn or (lambda text: None)
    swappiness = args.memory_swappiness
    if swappiness != -1 and not 0 <= swappiness <= 100:
        raise OptionError(f"invalid value: {swappiness}. Valid memory swappiness range is 0-100")
    host = dict(DEFAULTS)
    memory = parse_size(args.memory) if args.memory else 0
    swap = (-1 if args.memory_swap == "-1" else parse_size(args.memory_swap)) if args.memory_swap else 0
    reservation = parse_size(args.memory_reservation) if args.memory_reservation else 0
    kernel = parse_size(args.kernel_memory) if args.kernel_memory else 0
    nano = parse_cpus(args.cpus) if args.cpus else 0
    if args.oom_kill_disable and not memory:  # the CLI's own warning, before the daemon's
        warn("Disabling the OOM killer on containers without setting a '-m/--memory' limit may be dangerous.")
    ulimits = {}
    for text in args.ulimit:  # the last one of a name wins; inspect lists them by name
        u = parse_ulimit(text)
        ulimits[u["Name"]] = u
    pids = args.pids_limit
    host.update({
        "Memory": memory, "MemorySwap": swap, "MemoryReservation": reservation, "KernelMemory": kernel,
        "MemorySwappiness": None if swappiness == -1 else swappiness, "OomKillDisable": bool(args.oom_kill_disable),
        "NanoCpus": nano, "CpuShares": args.cpu_shares, "CpuPeriod": args.cpu_period, "CpuQuota": args.cpu_quota,
        "CpusetCpus": args.cpuset_cpus, "CpusetMems": args.cpuset_mems,
        "PidsLimit": pids if pids is not None and pids > 0 else None,  # dockerd: 0 and -1 are unlimited
        "BlkioWeight": int(args.blkio_weight or 0),
        "Ulimits": [ulimits[k] for k in sorted(ulimits)] or None,
    })
    warnings: list[str] = []  # dockerd's: in its answer, so none when it refuses
    check(host, warnings.append, InvalidParameter)
    for text in warnings:
        warn(text)
    if host["Memory"] > 0 and host["MemorySwap"] == 0:  # adaptContainerSettings
        host["MemorySwap"] = 2 * host["Memory"]
    from lamina import rootless

    if rootless():  # no delegated cgroup: refused, not silently dropped
        from lamina.runtime.rootless import refuse_limits

        refuse_limits(host, DEFAULTS)
    return host


def check(host: dict, warn, error, *, update: bool = False) -> None:
    """verifyPlatformContainerResources, in its order: the first refusal raises `error`.
    `update`: docker update's request, whose swap alone may change a limited container."""
    memory, swap, reservation = host["Memory"], host["MemorySwap"], host["MemoryReservation"]
    if memory and memory < MIN_MEMORY:
        raise error("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap != -1 and not _swap_accounting():
        warn("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
             "Memory limited without swap.")
        host["MemorySwap"] = swap = -1
    if memory > 0 and swap > 0 and swap < memory:
        raise error("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise error("You should always set the Memory limit when using Memoryswap limit, see usage")
    v2 = _unified()  # a v2 host has no swappiness, kernel memory or OOM-killer switch: dockerd drops them
    if host["MemorySwappiness"] is not None and v2:
        warn("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
             "Memory swappiness discarded.")
        host["MemorySwappiness"] = None
    if 0 < reservation < MIN_MEMORY:
        raise error("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise error("Minimum memory limit can not be less than memory reservation limit, see usage")
    if host["KernelMemory"] > 0:
        warn("Specifying a kernel memory limit is deprecated and will be removed in a future release.")
        if v2:
            warn("Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. "
                 "Limitation discarded.")
            host["KernelMemory"] = 0
        elif host["KernelMemory"] < MIN_MEMORY:
            raise error("Minimum kernel memory limit allowed is 6MB")
    if host["OomKillDisable"] and v2:
        warn("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        host["OomKillDisable"] = False
    if host["OomKillDisable"] and memory == 0:
        warn("OOM killer is disabled for the container, but no memory limit is set, "
             "this can result in the system running out of resources.")
    nano, ncpu = host["NanoCpus"], host_cpus()
    if nano > 0 and host["CpuPeriod"] > 0:
        raise error("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and host["CpuQuota"] > 0:
        raise error("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    # Like dockerd: no lower bound here (runc refuses a quota under 1 ms), the text says 0.01.
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise error(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    period = host["CpuPeriod"]
    if period and not 1000 <= period <= 1000000:
        raise error("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < host["CpuQuota"] < 1000:
        raise error("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for key, what, nodes in (("CpusetCpus", "cpus", "CPUs"), ("CpusetMems", "mems", "memory nodes")):
        asked = host[key]
        if not asked:
            continue
        available = _cpuset_available(what)
        try:
            wanted = _uint_list(asked)
        except ValueError as e:
            raise error(f"Invalid value {asked} for cpuset {what}: {e}") from None
        if not wanted <= _uint_list(available):
            raise error(f"Requested {nodes} are not available - requested {asked}, available: {available}")
    if host["BlkioWeight"] > 0 and not _blkio_weight_supported():
        warn("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
        host["BlkioWeight"] = 0
    if host["BlkioWeight"] > 0 and not 10 <= host["BlkioWeight"] <= 1000:
        raise error("Range of blkio weight is from 10 to 1000")


def host_cpus() -> int:
    """Go's runtime.NumCPU: the CPUs this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _uint_list(text: str) -> set[int]:
    """docker's parsers.ParseUintList: `0-2,4`."""
    out: set[int] = set()
    if not text:
        return out
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        try:
            a = parse_int(lo)
            b = parse_int(hi) if dash else a
        except ValueError:
            raise ValueError(f"invalid format: {text}") from None
        if b < a:
            raise ValueError(f"invalid format: {text}")
        out.update(range(a, b + 1))
    return out


def _cpuset_available(what: str) -> str:
    from lamina.runtime.cgroups import read_root

    return read_root("cpuset", f"cpuset.{what}") or read_root("cpuset", f"cpuset.{what}.effective") or "0"


def _unified() -> bool:
    from lamina.runtime.cgroups import unified

    return unified()


def _swap_accounting() -> bool:
    from lamina.runtime.cgroups import has_root_file

    return has_root_file("memory", "memory.memsw.limit_in_bytes") or has_root_file("memory", "memory.swap.max",
                                                                                    v2_only=True)


def _blkio_weight_supported() -> bool:
    from lamina.runtime.cgroups import has_root_file

    return has_root_file("blkio", "blkio.weight") or has_root_file("blkio", "io.weight", v2_only=True) \
        or has_root_file("blkio", "io.bfq.weight", v2_only=True)


# --------------------------------------------------------------------------- config.json

def has_limits(host: dict) -> bool:
    """Whether `host` asks for anything `apply` writes (a plain run skips importing us)."""
    return any(host.get(k) not in (None, 0, "", False) for k in (
        "Memory", "MemorySwap", "MemoryReservation", "KernelMemory", "MemorySwappiness", "OomKillDisable",
        "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight",
        "Ulimits"))


def apply(config: dict, host: dict) -> None:
    """Write `linux.resources` and `process.rlimits` of `host` into `config` as dockerd does
    (daemon/oci_linux.go: getMemoryResources, getCPUResources, WithResources, WithRlimits)."""
    g = host.get
    memory: dict = {}
    for key, field in (("Memory", "limit"), ("MemoryReservation", "reservation"), ("MemorySwap", "swap"),
                       ("KernelMemory", "kernel")):
        if (g(key) or 0) > 0:
            memory[field] = g(key)
    if g("MemorySwappiness") is not None:
        memory["swappiness"] = g("MemorySwappiness")
    memory["disableOOMKiller"] = bool(g("OomKillDisable"))
    cpu: dict = {"shares": max(g("CpuShares") or 0, 0)}
    if (g("NanoCpus") or 0) > 0:
        cpu["quota"] = g("NanoCpus") * CPU_PERIOD // 1_000_000_000
        cpu["period"] = CPU_PERIOD
    if g("CpuQuota"):
        cpu["quota"] = g("CpuQuota")
    if g("CpuPeriod"):
        cpu["period"] = g("CpuPeriod")
    if g("CpusetCpus"):
        cpu["cpus"] = g("CpusetCpus")
    if g("CpusetMems"):
        cpu["mems"] = g("CpusetMems")
    resources = config["linux"].setdefault("resources", {})
    resources["memory"] = memory
    resources["cpu"] = cpu
    if (g("PidsLimit") or 0) > 0:
        resources["pids"] = {"limit": g("PidsLimit")}
    resources["blockIO"] = {"weight": g("BlkioWeight") or 0}
    if g("Ulimits"):
        # -1 is RLIM_INFINITY (Go's uint64(-1)); a --ulimit nofile replaces lamina's default one.
        given = [{"type": "RLIMIT_" + u["Name"].upper(), "hard": u["Hard"] % (1 << 64), "soft": u["Soft"] % (1 << 64)}
                 for u in g("Ulimits")]
        names = {r["type"] for r in given}
        process = config["process"]
        process["rlimits"] = [r for r in process.get("rlimits", []) if r["type"] not in names] + given


def memory_limited(host: dict) -> bool:
    """Whether the kernel can OOM-kill inside the container's own cgroup (a memory limit)."""
    return (host.get("Memory") or 0) > 0


def with_defaults(host: dict) -> dict:
    """`host` with dockerd's zero values for the limit keys it lacks (a container made
    without limit flags, or by an older lamina), as inspect shows them."""
    if "NanoCpus" in host:
        return host
    return {**host, **{k: v for k, v in DEFAULTS.items() if k not in host}}
