"""Container list filters, as dockerd 20.10 applies them (daemon/list.go): `ps --filter`
and GET /containers/json?filters= both list through `select`.

Different keys must all match; the values of one key are alternatives, except `label`'s,
which must all match.  `name`, `id` and `isolation` values match as dockerd's Match does:
equal, or a regular expression found in the text; an `id` must also be a unique ID
prefix.  `before`/`since` cut the newest-first list at a container, as dockerd walks it:
when a `name` or `id` filter leaves that container out, `before` lists nothing and
`since` everything.  `publish`/`expose` look at the ports of a running container only
(a public port, a private port), as 20.10 does.  A stopped container is listed with
`all`, a `status` filter or a `limit`, not with `exited` alone.

Errors carry dockerd's words: `Invalid filter 'x'` (400) for an unknown key or status,
`no such container x` (404) for a `before`/`since` that names none, and its plain
500s for a value it cannot parse.
"""

from __future__ import annotations

import re

from lamina.errors import InvalidParameter, LaminaError, NotFound

KEYS = ("ancestor", "before", "exited", "id", "isolation", "label", "name", "status", "health", "since",
        "volume", "network", "is-task", "publish", "expose")
STATES = ("paused", "restarting", "removing", "running", "dead", "created", "exited")
HEALTH = ("starting", "healthy", "unhealthy", "none")


def select(system, recs: list, filters: dict, *, all: bool = False, limit: int = 0) -> list:
    """The records of `recs` (every container, newest first) that `filters` ({key:
    [values]}) let through; stopped ones only with `all`, a status filter or a `limit`
    (then at most `limit` of them)."""
    want = _Filters(system, recs, filters)
    all = all or bool(want.values.get("status"))
    out = []
    before, since = want.before, want.since
    for rec in want.candidates:
        if before is not None:  # dockerd: skip up to and including the `before` container
            if rec.id == before:
                before = None
            continue
        if since is not None and rec.id == since:
            break
        if not rec.running and not all and limit <= 0:
            continue
        if want.matches(rec):
            out.append(rec)
            if 0 < limit == len(out):
                break
    return out


class _Filters:
    """dockerd's foldFilter: the filters checked in its order (so the same error wins),
    pivots and ancestors looked up once."""

    def __init__(self, system, recs: list, filters: dict) -> None:
        for key in filters:
            if key not in KEYS:
                raise InvalidParameter(f"Invalid filter '{key}'")
        self.system = system
        # docker's filter values are sets: a value given twice counts once
        self.values = {k: list(dict.fromkeys(v)) for k, v in filters.items() if v}
        v = self.values
        self.exited = {_atoi(x) for x in v.get("exited", ())}
        for x in v.get("status", ()):
            if x not in STATES:
                raise InvalidParameter(f"Invalid filter 'status={x}'")
        self.task = None
        if "is-task" in v:
            if "true" in v["is-task"] or "false" in v["is-task"]:
                self.task = "true" in v["is-task"]
            else:
                raise InvalidParameter(f"Invalid filter 'is-task=[{' '.join(v['is-task'])}]'")
        for x in v.get("health", ()):
            if x not in HEALTH:
                raise InvalidParameter(f"Unrecognised filter value for health: {x}")
        self.candidates = _candidates(recs, v.get("name"), v.get("id"))
        self.before = _pivot(recs, v["before"][-1]) if "before" in v else None
        self.since = _pivot(recs, v["since"][-1]) if "since" in v else None
        self.ancestors = _ancestors(system, v["ancestor"]) if "ancestor" in v else None
        self.publish = _ports("publish", v.get("publish", ()))
        self.expose = _ports("expose", v.get("expose", ()))

    def matches(self, rec) -> bool:
        v, system = self.values, self.system
        if "label" in v and not labels_match(rec.config.get("Labels") or {}, v["label"]):
            return False
        if "name" in v and not (match(v["name"], "/" + rec.name) or match(v["name"], rec.name)):
            return False
        if "id" in v and not match(v["id"], rec.id):
            return False
        if self.task:  # is-task=true: no lamina container is a swarm task
            return False
        if "isolation" in v and not match(v["isolation"], "default"):
            return False
        if self.exited and not (not rec.running and rec.started and rec.exit_code in self.exited):
            return False
        if "status" in v and _state(system, rec) not in v["status"]:
            return False
        if "health" in v and _health(system, rec) not in v["health"]:
            return False
        if "volume" in v and not _mounted(system, rec, v["volume"]):
            return False
        if self.ancestors is not None and rec.image_id not in self.ancestors:
            return False
        if "network" in v and not _on_network(system, rec, v["network"]):
            return False
        if self.publish or self.expose:
            from lamina.engine.summaries import container_ports

            ports = container_ports(system, rec)  # a running container's; none otherwise
            if self.publish and not any((p.get("PublicPort"), p["Type"]) in self.publish for p in ports):
                return False
            if self.expose and not any((p["PrivatePort"], p["Type"]) in self.expose for p in ports):
                return False
        return True


def labels_match(labels: dict, wanted: list[str]) -> bool:
    """dockerd's MatchKVList: every `key` present, every `key=value` equal."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def match(values: list[str], text: str) -> bool:
    """dockerd's Args.Match: a value equal to `text`, or a regular expression found in it
    (one that does not compile matches nothing)."""
    for value in values:
        if value == text:
            return True
        try:
            if re.search(value, text):
                return True
        except re.error:
            continue
    return False


def _candidates(recs: list, names: list | None, ids: list | None) -> list:
    """dockerd's filterByNameIDMatches: with `id` filters, the containers each names as a
    unique ID prefix; with `name` filters, those (of these) whose name matches."""
    if not names and not ids:
        return recs
    chosen = set()
    for value in ids or ():
        found = [r.id for r in recs if value and r.id.startswith(value)]
        if len(found) == 1:  # truncindex: an ambiguous prefix finds none
            chosen.add(found[0])
    if names:
        pool = chosen if ids else None
        chosen = {r.id for r in recs if (pool is None or r.id in pool)
                  and (match(names, "/" + r.name) or match(names, r.name))}
    return [r for r in recs if r.id in chosen]


def _pivot(recs: list, value: str) -> str:
    """before/since: a container by full ID or by name (dockerd's idOrNameFilter)."""
    name = value.removeprefix("/")
    for rec in recs:
        if rec.id == value or rec.name == name:
            return rec.id
    raise NotFound(f"no such container {value}")


def _ancestors(system, names: list[str]) -> set:
    """The images `names` give and every image made from them (their children, down)."""
    from lamina.digest import Digest

    found: set = set()

    def add(image_id: str) -> None:
        if image_id not in found:
            found.add(image_id)
            for child in system.images.children(Digest(image_id)):
                add(child)

    for name in names:
        try:
            add(str(system.images.resolve(name).id))
        except LaminaError:  # dockerd: an unknown ancestor is skipped
            continue
    return found


def _ports(key: str, values) -> set:
    """{(port, proto)} for `publish`/`expose` values: `80`, `80/udp`, `8000-8080/tcp`."""
    out = set()
    for value in values:
        if ":" in value:
            raise LaminaError(f"filter for '{key}' should not contain ':': {value}")
        port, _, proto = value.partition("/")
        proto = proto.partition("/")[0] or "tcp"  # nat.SplitProtoPort
        try:
            start, end = _port_range(port)
        except ValueError as e:
            raise LaminaError(f"error while looking up for {key} {value}: {e}") from None
        out.update((p, proto) for p in range(start, end + 1))
    return out


def _port_range(text: str) -> tuple[int, int]:
    """nat.ParsePortRange's numbers and errors."""
    if not text:
        raise ValueError("Empty string specified for ports.")
    if "-" not in text:
        n = _uint16(text)
        return n, n
    parts = text.split("-")
    start, end = _uint16(parts[0]), _uint16(parts[1])
    if end < start:
        raise ValueError(f"Invalid range specified for the Port: {text}")
    return start, end


def _uint16(text: str) -> int:
    if not text or any(c not in "0123456789" for c in text):
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if int(text) > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return int(text)


def _atoi(text: str) -> int:
    """Go's strconv.Atoi (lamina.strconv's), its error raised as the engine's error,
    as dockerd returns it for `exited`."""
    from lamina.strconv import parse_int

    try:
        return parse_int(text, "Atoi")
    except ValueError as e:
        raise LaminaError(str(e)) from None


def _state(system, rec) -> str:
    """The State ps shows: `paused` for a frozen running container."""
    if rec.state == "running":
        from lamina.engine.exec import is_paused

        if is_paused(system, rec):
            return "paused"
    return rec.state


def _health(system, rec) -> str:
    from lamina.health import health_of

    return (health_of(system, rec.id, running=rec.running) or {}).get("Status") or "none"


def _mounted(system, rec, values: list[str]) -> bool:
    """A volume by name or destination, a bind by host path or destination."""
    from lamina.engine.containers import mounts

    for m in mounts(system, rec):  # inspect's Mounts
        if m.get("Destination") in values or (m.get("Name") or m.get("Source")) in values:
            return True
    return False


def _on_network(system, rec, values: list[str]) -> bool:
    """A network the container is on, by name or ID prefix."""
    from lamina.network import settings
    from lamina.network.registry import builtin_id

    for name, endpoint in (settings(system, rec).get("Networks") or {}).items():
        if name.startswith("container:"):
            continue  # it shares another's: on no network of its own
        ident = endpoint.get("NetworkID") or (builtin_id(name) if name in ("bridge", "host", "none") else "")
        if not rec.started:
            ident = ""  # dockerd fills NetworkID in at the first start
        if any(v == name or (ident and ident.startswith(v)) for v in values):
            return True
    return False
