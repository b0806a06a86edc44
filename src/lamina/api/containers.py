"""/containers/… (the read-only ones: list, inspect, changes, export) and /commit."""

from __future__ import annotations

from lamina.api.images import filters_of
from lamina.api.server import ClientGone, HTTPError

_KIND = {"C": 0, "A": 1, "D": 2}


def list_containers(request) -> None:
    """GET /containers/json: the engine filters and limits as dockerd (engine/containerfilters.py)."""
    from lamina.engine.containerfilters import KEYS
    from lamina.engine.containers import list_containers as engine_list
    from lamina.engine.summaries import container_summaries

    system = request.system
    filters = filters_of(request, KEYS)
    limit = request.q("limit") or "0"
    try:  # dockerd's strconv.Atoi, its refusal a plain 500
        from lamina.runtime.resources import parse_int

        limit = parse_int(limit)
    except ValueError as e:
        raise HTTPError(500, str(e).replace("ParseInt", "Atoi")) from None
    recs = engine_list(system, all=request.q_bool("all"), filters=filters, limit=limit)
    request.send_json(200, container_summaries(system, recs, size=request.q_bool("size")))


def inspect(request, id: str) -> None:  # noqa: A002 - dockerd's path parameter
    from lamina.engine.containers import inspect_container, size_of

    system = request.system
    rec = system.containers.resolve(id)
    doc = inspect_container(system, rec)
    if request.q_bool("size"):
        doc["SizeRw"], doc["SizeRootFs"] = size_of(system, rec)
    request.send_json(200, doc)


def changes(request, id: str) -> None:  # noqa: A002
    from lamina.engine.containers import diff

    items = [{"Path": c.path, "Kind": _KIND[c.kind]} for c in diff(request.system, id)]
    request.send_json(200, items or None)


def export(request, id: str) -> None:  # noqa: A002
    from lamina.engine.containers import export as engine_export

    system = request.system
    rec = system.containers.resolve(id)
    fd = request.raw_stream("application/x-tar")
    try:
        engine_export(system, rec, _FdWriter(fd))
    except (BrokenPipeError, ConnectionResetError, BlockingIOError) as e:
        raise ClientGone(str(e)) from None  # gone, or not reading for IO_TIMEOUT


class _FdWriter:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data) -> int:
        import os

        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._fd


def commit(request) -> None:
    """POST /commit: 201 {"Id": …}; `changes` as Dockerfile lines, `comment` the message."""
    from lamina.engine.containers import commit as engine_commit

    container = request.q("container")
    if not container:
        raise HTTPError(400, "container is required")  # dockerd: no such container ""
    request.json_body(None)  # the Config (the CLI sends null); checked for being JSON
    repo, tag = request.q("repo"), request.q("tag")
    repository = (f"{repo}:{tag}" if tag else repo) if repo else None
    image_id = engine_commit(request.system, container, repository=repository, author=request.q("author", ""),
                             message=request.q("comment", ""), changes=request.q_all("changes"))
    request.send_json(201, {"Id": str(image_id)})
