"""`stats`: a container's resource usage, read from its cgroup, in docker's terms.

docker's daemon samples each container's cgroup about once a second and its CLI
computes the figures from two consecutive samples (CPU % is the container's share
of all CPUs' time between them, times the online CPUs).  Here `Sampler` keeps
the previous sample per container and `entries` turns a new round into docker's
StatsEntry values; a container that is not running reads as docker's zeros.
"""

from __future__ import annotations

import os

from lamina.record import record


@record
class StatsEntry:
    """docker's formatter.StatsEntry: what one row of `stats` shows."""

    container: str           # as named on the command line (short ID when listing)
    id: str
    name: str
    cpu_percent: float = 0.0
    memory: float = 0.0
    memory_limit: float = 0.0
    memory_percent: float = 0.0
    net_rx: float = 0.0
    net_tx: float = 0.0
    block_read: float = 0.0
    block_write: float = 0.0
    pids: int = 0


def init_pid(system, rec) -> int | None:
    """The container's init on the host, from the state of the runtime that runs it (runc
    and crun keep it there; `--runtime` may have chosen another than the default)."""
    from lamina.leanjson import loads
    from lamina.recovery import runtime_for
    from lamina.runtime.execproc import STATE_FILES

    base = os.path.join(runtime_for(system, rec).state_root, rec.id)
    state = None
    for name, field in STATE_FILES:
        try:
            with open(os.path.join(base, name), "rb") as f:
                state = loads(f.read())
            break
        except (OSError, ValueError):
            continue
    pid = state.get(field) if isinstance(state, dict) else None
    return pid if isinstance(pid, int) and pid > 0 else None


class Sampler:
    """Successive readings of a set of containers: `entries(recs)` after the first call
    gives CPU % over the time since the previous one."""

    def __init__(self, system) -> None:
        self.system = system
        self.previous: dict[str, dict] = {}

    def entries(self, recs, labels=None) -> list[StatsEntry]:
        """One StatsEntry per record still there; `labels` (same length) are the names as given."""
        from lamina.errors import NoSuchContainer

        out = []
        for i, rec in enumerate(recs):
            label = labels[i] if labels else rec.id[:12]
            try:
                rec = self.system.containers.get(rec.id)  # its state now, not when the listing was made
            except NoSuchContainer:  # removed while `stats` streams: its row goes
                continue
            out.append(self._entry(rec, label))
        return out

    def _entry(self, rec, label: str) -> StatsEntry:
        from lamina.runtime.cgroups import sample

        base = StatsEntry(container=label, id=rec.id, name=rec.name)
        pid = init_pid(self.system, rec) if rec.state == "running" else None
        if pid is None:
            self.previous.pop(rec.id, None)
            return base
        own_network = rec.host_config.get("NetworkMode", "host") != "host"
        now = sample(f"/lamina/{rec.id}", pid, own_network=own_network)
        before = self.previous.get(rec.id)
        self.previous[rec.id] = now
        cpu = 0.0
        if before is not None:
            cpu_delta = now["cpu_total"] - before["cpu_total"]
            system_delta = now["system"] - before["system"]
            if system_delta > 0 and cpu_delta > 0:
                cpu = cpu_delta / system_delta * now["online_cpus"] * 100.0
        limit = now["mem_limit"]
        return StatsEntry(
            container=label, id=rec.id, name=rec.name, cpu_percent=cpu, memory=now["mem_usage"],
            memory_limit=limit, memory_percent=now["mem_usage"] / limit * 100.0 if limit else 0.0,
            net_rx=now["net_rx"], net_tx=now["net_tx"], block_read=now["blk_read"],
            block_write=now["blk_write"], pids=now["pids"],
        )


def targets(system, names, *, all: bool) -> tuple[list, list[str]]:
    """The records `stats` shows and their labels: the named ones (NoSuchContainer for
    an unknown name), else the running ones (every one with `all`), newest first."""
    if names:
        recs = [system.containers.resolve(n) for n in names]
        return recs, list(names)
    from lamina.engine.containers import list_containers

    recs = list_containers(system, all=all)
    return recs, [r.id[:12] for r in recs]
