"""Volumes as the Engine API's /volumes endpoints give them (store/volumes.py keeps
them; lamina/volumemounts.py mounts them into containers): create, list with
filters, inspect, remove, prune, and their sizes for `system df`."""

from __future__ import annotations

from lamina.errors import InvalidParameter

LIST_FILTERS = ("dangling", "name", "driver", "label")  # dockerd 20.10's
PRUNE_FILTERS = ("label", "label!")


def _store(system):
    from lamina.volumemounts import store

    return store(system)


def create(system, name: str | None = None, *, driver: str = "local", labels: dict | None = None,
           options: dict | None = None):
    """POST /volumes/create: the volume (an existing one of that name as it is)."""
    if driver not in ("", "local"):
        from lamina.errors import NotFound

        raise NotFound(f'create {name or ""}: error looking up volume plugin {driver}: plugin "{driver}" not found')
    vols = _store(system)
    existed = bool(name) and vols.find(name) is not None
    vol = vols.create(name, labels=labels, options=options)
    if not existed:
        _event(system, "create", vol.name)
    return vol


def _event(system, action: str, name: str) -> None:
    """`docker events`' volume create/destroy (engine/journal.py)."""
    from lamina.engine.journal import record

    record(system, "volume", action, name, {"driver": "local"})


def inspect(system, name: str) -> dict:
    """GET /volumes/{name}."""
    return _store(system).get(name).inspect()


def _bool_filter(key: str, values: list[str]) -> bool:
    value = values[-1].lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidParameter(f"Invalid filter '{key}=[{values[-1]}]'")


def _labels_match(labels: dict, wanted: list[str]) -> bool:
    """docker's MatchKVList: every `key` present, every `key=value` equal."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def listing(system, filters: dict[str, list[str]] | None = None) -> list:
    """GET /volumes: the volumes (store/volumes.py's Volume) that pass `filters`
    ({key: [values]}, dockerd's keys and texts)."""
    filters = filters or {}
    for key in filters:
        if key not in LIST_FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    vols = _store(system)
    items = vols.list()
    if "dangling" in filters:
        dangling = _bool_filter("dangling", filters["dangling"])
        used = vols.used_names()
        items = [v for v in items if (v.name not in used) == dangling]
    if "name" in filters:
        import re

        def name_ok(name: str) -> bool:  # docker's Match: equal, or the value as a regexp found in it
            for term in filters["name"]:
                try:
                    if term == name or re.search(term, name):
                        return True
                except re.error:
                    continue
            return False

        items = [v for v in items if name_ok(v.name)]
    if "driver" in filters:
        items = [v for v in items if v.driver in filters["driver"]]
    if "label" in filters:
        items = [v for v in items if _labels_match(v.labels, filters["label"])]
    return items


def remove(system, name: str, *, force: bool = False) -> None:
    """DELETE /volumes/{name}: Conflict while a container uses it."""
    vols = _store(system)
    existed = vols.find(name) is not None
    vols.remove(name, force=force)
    if existed:
        _event(system, "destroy", name)


def prune(system, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
    """POST /volumes/prune as dockerd 20.10 (API 1.41) does it: every volume no
    container uses, named or anonymous; (names removed, bytes reclaimed)."""
    from lamina.errors import Conflict, NotFound

    filters = filters or {}
    for key in filters:
        if key not in PRUNE_FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    vols = _store(system)
    used = vols.used_names()
    removed, reclaimed = [], 0
    for vol in vols.list():
        if vol.name in used:
            continue
        if "label" in filters and not _labels_match(vol.labels, filters["label"]):
            continue
        if "label!" in filters and any(_labels_match(vol.labels, [item]) for item in filters["label!"]):
            continue
        size = vols.size(vol.name)
        try:
            vols.remove(vol.name)
        except (Conflict, NotFound):  # taken by a container meanwhile, or removed by another command
            continue
        removed.append(vol.name)
        reclaimed += size
        _event(system, "destroy", vol.name)
    return removed, reclaimed


def usage(system) -> list[dict]:
    """/system/df's Volumes: each volume with UsageData (Size, RefCount)."""
    vols = _store(system)
    out = []
    for vol in vols.list():
        item = vol.inspect()
        item["UsageData"] = {"Size": vols.size(vol.name), "RefCount": len(vols.users(vol.name))}
        out.append(item)
    return out
