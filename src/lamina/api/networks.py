"""/networks: user-defined bridge networks (lamina.engine.networks), labels kept;
connect/disconnect with aliases (docker-compose's service names)."""

from __future__ import annotations

from lamina.api.images import filters_of
from lamina.api.server import HTTPError


def _object(request) -> dict:
    body = request.json_body({})
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: the body must be an object")
    return body


def list_networks(request) -> None:
    from lamina.engine.networks import FILTERS, listing

    request.send_json(200, listing(request.system, filters_of(request, FILTERS)))


def create(request) -> None:
    from lamina.engine.networks import create as engine_create

    body = _object(request)
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise HTTPError(400, "network name must be given")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise HTTPError(400, "json: cannot unmarshal into Go struct field NetworkCreateRequest.Labels")
    driver = body.get("Driver") or "bridge"
    if driver != "bridge":
        raise HTTPError(404, f'plugin "{driver}" not found')  # dockerd's for a driver it does not have
    ipam = (body.get("IPAM") or {}).get("Config") or []
    if not isinstance(ipam, list):
        raise HTTPError(400, "json: cannot unmarshal into Go struct field IPAM.Config")
    first = ipam[0] if ipam and isinstance(ipam[0], dict) else {}
    net = engine_create(request.system, name, driver=driver, subnet=first.get("Subnet") or None,
                        gateway=first.get("Gateway") or None, internal=bool(body.get("Internal")), labels=labels)
    request.send_json(201, {"Id": net.id, "Warning": ""})


def inspect(request, id: str) -> None:  # noqa: A002 - dockerd's path parameter
    from lamina.engine.networks import inspect as engine_inspect

    request.send_json(200, engine_inspect(request.system, id))


def remove(request, id: str) -> None:  # noqa: A002
    from lamina.engine.networks import remove as engine_remove

    engine_remove(request.system, id)
    request.send_empty(204)


def prune(request) -> None:
    from lamina.engine.networks import prune as engine_prune

    removed = engine_prune(request.system, filters_of(request, ("until", "label", "label!")))
    request.send_json(200, {"NetworksDeleted": removed or None})


def connect(request, id: str) -> None:  # noqa: A002
    from lamina.engine.networks import connect as engine_connect

    body = _object(request)
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise HTTPError(400, "container must be given")
    endpoint = body.get("EndpointConfig") or {}
    aliases = endpoint.get("Aliases") or () if isinstance(endpoint, dict) else ()
    engine_connect(request.system, id, container, tuple(aliases))
    request.send_bytes(200, b"", content_type="text/plain; charset=utf-8")


def disconnect(request, id: str) -> None:  # noqa: A002
    from lamina.engine.networks import disconnect as engine_disconnect

    body = _object(request)
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise HTTPError(400, "container must be given")
    engine_disconnect(request.system, id, container, force=bool(body.get("Force")))
    request.send_bytes(200, b"", content_type="text/plain; charset=utf-8")
