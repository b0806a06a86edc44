"""/volumes: named local volumes (lamina.engine.volumes)."""

from __future__ import annotations

from lamina.api.images import filters_of
from lamina.api.server import HTTPError


def list_volumes(request) -> None:
    from lamina.engine.volumes import LIST_FILTERS, listing

    items = [v.inspect() for v in listing(request.system, filters_of(request, LIST_FILTERS))]
    request.send_json(200, {"Volumes": items, "Warnings": None})


def create(request) -> None:
    from lamina.engine.volumes import create as engine_create

    body = request.json_body({})
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: the body must be an object")
    for key in ("Labels", "DriverOpts"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise HTTPError(400, f"json: cannot unmarshal into Go struct field VolumeCreateBody.{key}")
    vol = engine_create(request.system, body.get("Name") or None, driver=body.get("Driver") or "local",
                        labels=body.get("Labels") or None, options=body.get("DriverOpts") or None)
    request.send_json(201, vol.inspect())


def inspect(request, name: str) -> None:
    from lamina.engine.volumes import inspect as engine_inspect

    request.send_json(200, engine_inspect(request.system, name))


def remove(request, name: str) -> None:
    from lamina.engine.volumes import remove as engine_remove

    engine_remove(request.system, name, force=request.q_bool("force"))
    request.send_empty(204)


def prune(request) -> None:
    from lamina.engine.volumes import PRUNE_FILTERS, prune as engine_prune

    removed, space = engine_prune(request.system, filters_of(request, PRUNE_FILTERS))
    request.send_json(200, {"VolumesDeleted": removed or None, "SpaceReclaimed": space})
