"""Reading a container's cgroup: where runc put it, whether the kernel OOM-killed in
it, and the figures `stats` shows.

runc makes the cgroup from config.json's `cgroupsPath` (`/lamina/<id>`): on a v1
(or hybrid) host one directory per controller, /sys/fs/cgroup/<controller>/lamina/<id>;
on a unified (v2) host one directory, /sys/fs/cgroup/lamina/<id>.  runc also
writes the limits there (it translates the OCI resources for v2); we only read,
but for the one limit crun cannot lift (unlimit_pids).  The files differ between
the two, so each reader names both.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def unified() -> bool:
    """A pure v2 host (not hybrid): its root holds cgroup.controllers."""
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def _controller_root(controller: str) -> str:
    if unified():
        return CGROUP_ROOT
    path = os.path.join(CGROUP_ROOT, controller)
    if controller in ("cpu", "cpuacct") and not os.path.isdir(path):  # some hosts mount them together only
        path = os.path.join(CGROUP_ROOT, "cpu,cpuacct")
    return path


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def read_root(controller: str, name: str) -> str | None:
    """A file of the root cgroup of `controller` (e.g. cpuset.cpus), or None."""
    return _read(os.path.join(_controller_root(controller), name))


def has_root_file(controller: str, name: str, *, v2_only: bool = False) -> bool:
    """Whether the host's cgroup of `controller` has file `name` (what dockerd's sysinfo probes).
    `v2_only` names a v2 file: never looked for on a v1 host."""
    if v2_only != unified():
        return False
    return os.path.exists(os.path.join(_controller_root(controller), name))


def container_dir(cgroups_path: str, controller: str) -> str:
    """The directory of `controller` for a container whose config.json says `cgroups_path`."""
    return os.path.join(_controller_root(controller), cgroups_path.lstrip("/"))


def _keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, memory.events, memory.oom_control, cpu.stat)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            pass
    return out


def oom_kills(cgroups_path: str) -> int:
    """How many processes the kernel killed for memory in the container's cgroup
    (v1 memory.oom_control `oom_kill`, v2 memory.events `oom_kill`); 0 when it is gone.
    Read after the container exited and before the runtime deletes it."""
    d = container_dir(cgroups_path, "memory")
    name = "memory.events" if unified() else "memory.oom_control"
    return _keyed(_read(os.path.join(d, name))).get("oom_kill", 0)


# --------------------------------------------------------------------------- stats

def sample(cgroups_path: str, pid: int | None, *, own_network: bool) -> dict:
    """One reading of a running container, in docker's stats terms: cpu_total (ns),
    system (ns of all CPUs), online_cpus, mem_usage (bytes, page cache's inactive
    part left out as docker's CLI does), mem_limit, net_rx/net_tx (its namespace's
    interfaces but lo), blk_read/blk_write, pids."""
    v2 = unified()
    if v2:
        d = container_dir(cgroups_path, "memory")
        cpu_total = _keyed(_read(os.path.join(d, "cpu.stat"))).get("usage_usec", 0) * 1000
        usage = int(_read(os.path.join(d, "memory.current")) or 0)
        limit_text = _read(os.path.join(d, "memory.max")) or "max"
        inactive = _keyed(_read(os.path.join(d, "memory.stat"))).get("inactive_file", 0)
        blk_read, blk_write = _io_stat_v2(_read(os.path.join(d, "io.stat")))
        pids = _read(os.path.join(d, "pids.current"))
    else:
        cpu_total = int(_read(os.path.join(container_dir(cgroups_path, "cpuacct"), "cpuacct.usage")) or 0)
        mem = container_dir(cgroups_path, "memory")
        usage = int(_read(os.path.join(mem, "memory.usage_in_bytes")) or 0)
        limit_text = _read(os.path.join(mem, "memory.limit_in_bytes")) or "max"
        inactive = _keyed(_read(os.path.join(mem, "memory.stat"))).get("total_inactive_file", 0)
        blk = container_dir(cgroups_path, "blkio")
        blk_read, blk_write = _blkio_v1(_read(os.path.join(blk, "blkio.throttle.io_service_bytes_recursive")))
        pids = _read(os.path.join(container_dir(cgroups_path, "pids"), "pids.current"))
    machine = machine_memory()
    limit = machine if limit_text == "max" else int(limit_text)
    if machine and limit > machine:  # dockerd: no limit shows as the machine's memory
        limit = machine
    rx = tx = 0
    if own_network and pid:
        rx, tx = net_bytes(pid)
    return {
        "cpu_total": cpu_total, "system": system_cpu_ns(), "online_cpus": os.sysconf("SC_NPROCESSORS_ONLN") or 1,
        "mem_usage": usage - inactive if inactive < usage else usage, "mem_limit": limit,
        "net_rx": rx, "net_tx": tx, "blk_read": blk_read, "blk_write": blk_write,
        "pids": int(pids or 0),
    }


def _blkio_v1(text: str | None) -> tuple[int, int]:
    read = write = 0
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].lower() in ("read", "write"):
            if parts[1].lower() == "read":
                read += int(parts[2])
            else:
                write += int(parts[2])
    return read, write


def _io_stat_v2(text: str | None) -> tuple[int, int]:
    read = write = 0
    for line in (text or "").splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                write += int(value)
    return read, write


def system_cpu_ns() -> int:
    """dockerd's getSystemCPUUsage: /proc/stat's first line (user..softirq) in ns."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    ticks = os.sysconf("SC_CLK_TCK") or 100
    return sum(int(x) for x in fields[1:8]) * 1_000_000_000 // ticks


def machine_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def net_bytes(pid: int) -> tuple[int, int]:
    """Received and sent bytes of the interfaces of `pid`'s network namespace, lo left out
    (docker counts the container's endpoints only)."""
    rx = tx = 0
    text = _read(f"/proc/{pid}/net/dev")
    for line in (text or "").splitlines()[2:]:
        name, _, figures = line.partition(":")
        values = figures.split()
        if name.strip() == "lo" or len(values) < 9:
            continue
        rx += int(values[0])
        tx += int(values[8])
    return rx, tx


class OomProbe:
    """The runtime's `after_exit` for a memory-limited container: reads its cgroup's
    OOM-kill count between the exit and the deletion: `killed`, State.OOMKilled, which
    the exit's record carries (store/containers.py `set_exited`)."""

    def __init__(self, cgroups_path: str) -> None:
        self.cgroups_path = cgroups_path
        self.killed = False

    def __call__(self) -> None:
        self.killed = oom_kills(self.cgroups_path) > 0


def unlimit_pids(cgroups_path: str) -> None:
    """`update --pids-limit -1` under crun, which writes -1 to pids.max as it is (EINVAL)
    where runc writes "max"."""
    try:
        with open(os.path.join(container_dir(cgroups_path, "pids"), "pids.max"), "w") as f:
            f.write("max")
    except OSError as e:
        from lamina.errors import RuntimeFailure

        raise RuntimeFailure(f"pids.max of {cgroups_path}: {e.strerror}") from None


def remove(cgroups_path: str) -> None:
    """Remove what is left of a container's cgroup (empty directories: a runtime killed
    between making them and recording its state leaves them behind; the runtime's own
    delete removes them otherwise).  One under each v1 controller, or the v2 one; a
    directory still holding a process stays (rmdir refuses it)."""
    rel = cgroups_path.strip("/")
    if unified():
        dirs = [os.path.join(CGROUP_ROOT, rel)]
    else:
        try:
            names = os.listdir(CGROUP_ROOT)
        except OSError:
            return
        dirs = [os.path.join(CGROUP_ROOT, n, rel) for n in names]  # `unified` too: runc makes one there
    for d in dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass  # absent (the usual case), or busy
