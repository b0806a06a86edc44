"""What a rootless lamina (lamina/userns.py) changes in how containers run.

runc runs inside lamina's user namespace, as its root: it detects the namespace and
uses its rootless cgroup manager, which creates no cgroup when config.json asks for no
resources and has no cgroupsPath (runner.py gives none here).  Limits need a cgroup
the host delegates to the user (cgroup v2 with systemd's Delegate=); without one a
limit would be silently dropped, so a limit flag is refused instead.
"""

from __future__ import annotations

from lamina.errors import InvalidParameter

# run/create flags of the HostConfig keys that need a cgroup (ulimits are rlimits: they work)
_FLAGS = {"Memory": "--memory", "MemorySwap": "--memory-swap", "MemoryReservation": "--memory-reservation",
          "KernelMemory": "--kernel-memory", "MemorySwappiness": "--memory-swappiness",
          "OomKillDisable": "--oom-kill-disable", "NanoCpus": "--cpus", "CpuShares": "--cpu-shares",
          "CpuPeriod": "--cpu-period", "CpuQuota": "--cpu-quota", "CpusetCpus": "--cpuset-cpus",
          "CpusetMems": "--cpuset-mems", "PidsLimit": "--pids-limit", "BlkioWeight": "--blkio-weight"}


def refuse_limits(host: dict, defaults: dict) -> None:
    """Raise InvalidParameter naming the first limit flag given, where no cgroup is delegated."""
    given = [flag for key, flag in _FLAGS.items() if host.get(key, defaults.get(key)) != defaults.get(key)]
    if not given:
        return
    raise InvalidParameter(
        f"{given[0]}: resource limits need a cgroup delegated to your user, and this host gives none "
        "(cgroup v1, or cgroup v2 without systemd's Delegate=): rootless lamina cannot limit a container")


def adjust_config(config: dict) -> None:
    """config.json for runc inside lamina's user namespace (as runc's `spec --rootless` and
    podman's rootless specs differ from root's): what the namespace cannot do is left out."""
    linux = config["linux"]
    sysctl = linux.get("sysctl") or {}
    if "net.ipv4.ping_group_range" in sysctl:  # only gids mapped in the namespace can be named
        sysctl["net.ipv4.ping_group_range"] = f"0 {_mapped_max('/proc/self/gid_map')}"
    own_netns = any(ns["type"] == "network" for ns in linux["namespaces"])
    mounts = []
    for m in config["mounts"]:
        if m["type"] == "sysfs" and not own_netns:
            # sysfs can be mounted only by the owner of the network namespace: the host's
            # (--network host) is not ours, so its /sys is bound read-only instead
            m = {"destination": m["destination"], "type": "bind", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        mounts.append(m)
    config["mounts"] = mounts


def _mapped_max(path: str) -> int:
    """The highest id a namespace's map names (its id column + count - 1)."""
    top = 0
    try:
        with open(path) as f:
            for line in f:
                inside, _outside, count = (int(x) for x in line.split())
                top = max(top, inside + count - 1)
    except (OSError, ValueError):
        pass
    return top
