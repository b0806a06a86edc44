"""docker update: change a container's resource limits and restart policy.

As dockerd 20.10 does it (daemon/update.go, container.UpdateContainer): the request is
checked as run's limits are (verifyContainerSettings with update set), merged into the
HostConfig field by field (a zero or empty value means "unchanged"), applied live with
`runc update` when the container runs, and only then recorded, so a refusal from the
runtime leaves the record as it was.  The monitor reads the restart policy from the
record each time the container exits: a new policy takes effect at the next exit.
"""

from __future__ import annotations

# HostConfig's fields docker update sends (the Resources it can change), in UpdateContainer's order.
FIELDS = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems",
          "Memory", "MemorySwap", "MemoryReservation", "KernelMemory", "PidsLimit")
_POLICIES = ("no", "always", "unless-stopped", "on-failure")


def update(system, name: str, request: dict) -> list[str]:
    """Update container `name` with `request` (the FIELDS given, and RestartPolicy);
    returns dockerd's warnings."""
    from lamina.engine.journal import record
    from lamina.errors import InvalidParameter, LaminaError
    from lamina.runtime.resources import DEFAULTS, check, with_defaults

    rec = system.containers.resolve(name)
    asked = {**DEFAULTS, **{k: v for k, v in request.items() if k in FIELDS and v is not None}}
    warnings: list[str] = []
    check(asked, warnings.append, InvalidParameter, update=True)
    policy = request.get("RestartPolicy") or {}
    if policy.get("Name"):
        _check_policy(policy)
    host = with_defaults(dict(rec.host_config))
    try:
        _merge(host, asked, "PidsLimit" in request and request["PidsLimit"] is not None)
        if policy.get("Name"):
            if host.get("AutoRemove") and policy["Name"] != "no":
                raise LaminaError("Restart policy cannot be updated because AutoRemove is enabled for the container")
            host["RestartPolicy"] = {"Name": policy["Name"], "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
        if rec.running:
            _apply_live(system, rec, host)
    except LaminaError as e:
        raise LaminaError(f"Cannot update container {rec.id}: {e}") from None
    system.containers.set_host_config(rec.id, host)
    record(system, "container", "update", rec.id, {"image": rec.image_ref, "name": rec.name})
    return warnings


def _check_policy(policy: dict) -> None:
    """dockerd's validateRestartPolicy."""
    from lamina.errors import InvalidParameter

    name, count = policy["Name"], policy.get("MaximumRetryCount") or 0
    if name not in _POLICIES:
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if count and name != "on-failure":
        raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
    if count < 0:
        raise InvalidParameter("maximum retry count cannot be negative")


def _merge(host: dict, asked: dict, pids_given: bool) -> None:
    """container.UpdateContainer: NanoCpus and CpuPeriod/CpuQuota exclude each other across
    updates too; a new memory limit above the swap limit needs a new swap limit with it."""
    from lamina.errors import LaminaError

    for new, old, what in (("NanoCpus", "CpuPeriod", "CPU Period"), ("NanoCpus", "CpuQuota", "CPU Quota"),
                           ("CpuPeriod", "NanoCpus", "CPU Period"), ("CpuQuota", "NanoCpus", "CPU Quota")):
        if asked[new] > 0 and (host.get(old) or 0) > 0:
            raise LaminaError(f"Conflicting options: {what} cannot be updated as NanoCPUs has already been set")
    for key in FIELDS:
        value = asked[key]
        if key == "PidsLimit":
            if pids_given:  # dockerd: 0 and -1 are unlimited
                host[key] = value if value > 0 else None
            continue
        if key == "Memory" and value and value > (host.get("MemorySwap") or 0) and not asked["MemorySwap"]:
            raise LaminaError("Memory limit should be smaller than already set memoryswap limit, "
                              "update the memoryswap at the same time")
        if value:
            host[key] = value


def _apply_live(system, rec, host: dict) -> None:
    """`runc update` with the merged limits (OCI linux.resources, as run writes them)."""
    from lamina.recovery import runtime_for
    from lamina.runtime.execproc import has_container
    from lamina.runtime.resources import apply

    runtime = runtime_for(system, rec)
    if not has_container(runtime, rec.id):  # between two runs of its restart policy: the next start reads it
        return
    scratch: dict = {"linux": {}, "process": {}}
    apply(scratch, host)
    resources = scratch["linux"]["resources"]
    if host.get("PidsLimit") is None:
        resources["pids"] = {"limit": -1}  # unlimited again after --pids-limit -1 (runc writes "max")
    runtime.update(rec.id, resources)
