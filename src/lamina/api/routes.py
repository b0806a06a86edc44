"""The route table: dockerd's paths, with or without a `/vX.Y` prefix.

A handler is `handler(request, **path_params)`; the path parameters are gorilla/mux's
`{name:.*}` (an image name may hold slashes).  Handlers raise engine errors
(LaminaError: its http_status and message, docker's `{"message": …}`) or HTTPError;
anything else is a 500 and its traceback goes to the service's log.
"""

from __future__ import annotations

import re
import sys
import traceback

from lamina.api.server import API_VERSION, ClientGone, HTTPError

_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_ROUTES: list[tuple] = []  # (method, path regex, module or None, function name or handler)


def route(method: str, pattern: str, target) -> None:
    """Register `target` ("module.function" under lamina.api, imported on first use, or a
    handler) for `method pattern`; `{x}` matches one path segment, `{x*}` the rest (names
    with slashes)."""
    regex = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
    module, _, function = target.rpartition(".") if isinstance(target, str) else (None, "", target)
    _ROUTES.append((method, re.compile(f"^{regex}$"), module, function))


for _method in ("GET", "HEAD"):
    route(_method, "/_ping", "system.ping")
route("GET", "/version", "system.version")
route("GET", "/info", "system.info")
route("GET", "/system/df", "system.df")
route("GET", "/events", "events.events")
route("GET", "/images/json", "images.list_images")
route("POST", "/images/create", "images.create")
route("POST", "/images/load", "images.load")
route("GET", "/images/get", "images.get_many")
route("POST", "/images/prune", "images.prune")
route("GET", "/images/search", "images.search")
route("GET", "/images/{name*}/json", "images.inspect")
route("GET", "/images/{name*}/history", "images.history")
route("POST", "/images/{name*}/tag", "images.tag")
route("POST", "/images/{name*}/push", "images.push")
route("GET", "/images/{name*}/get", "images.get_one")
route("DELETE", "/images/{name*}", "images.remove")
route("POST", "/auth", "images.auth")
route("POST", "/build", "build.build")
route("POST", "/commit", "containers.commit")
route("GET", "/containers/json", "containers.list_containers")
route("GET", "/containers/{id}/json", "containers.inspect")
route("GET", "/containers/{id}/changes", "containers.changes")
route("GET", "/containers/{id}/export", "containers.export")
# containers' lives, streams, execs, archives; networks, volumes (api/lifecycle.py, streams.py, execs.py,
# archive.py, networks.py, volumes.py)
route("POST", "/containers/create", "lifecycle.create")
route("POST", "/containers/prune", "lifecycle.prune")
for _action in ("start", "stop", "kill", "restart", "wait", "pause", "unpause", "resize", "rename", "update"):
    route("POST", f"/containers/{{id}}/{_action}", f"lifecycle.{_action}")
route("DELETE", "/containers/{id}", "lifecycle.remove")
route("GET", "/containers/{id}/top", "lifecycle.top")
route("POST", "/containers/{id}/attach", "streams.attach")
route("GET", "/containers/{id}/logs", "streams.logs")
route("POST", "/containers/{id}/exec", "execs.create")
route("POST", "/exec/{id}/start", "execs.start")
route("POST", "/exec/{id}/resize", "execs.resize")
route("GET", "/exec/{id}/json", "execs.inspect")
for _method in ("GET", "PUT", "HEAD"):
    route(_method, "/containers/{id}/archive", f"archive.{_method.lower()}")
route("GET", "/networks", "networks.list_networks")
route("POST", "/networks/create", "networks.create")
route("POST", "/networks/prune", "networks.prune")
route("GET", "/networks/{id}", "networks.inspect")
route("POST", "/networks/{id}/connect", "networks.connect")
route("POST", "/networks/{id}/disconnect", "networks.disconnect")
route("DELETE", "/networks/{id}", "networks.remove")
route("GET", "/volumes", "volumes.list_volumes")
route("POST", "/volumes/create", "volumes.create")
route("POST", "/volumes/prune", "volumes.prune")
route("GET", "/volumes/{name}", "volumes.inspect")
route("DELETE", "/volumes/{name}", "volumes.remove")


def find(method: str, path: str):
    """(handler, params) for a request, or None: docker's `page not found`."""
    for m, regex, module, function in _ROUTES:
        if m != method:
            continue
        match = regex.match(path)
        if match:
            if module is None:
                return function, match.groupdict()
            mod = __import__(f"lamina.api.{module}", fromlist=[function])
            return getattr(mod, function), match.groupdict()
    return None


def dispatch(request) -> None:
    """Answer one request: route, run, and turn every failure into docker's JSON error."""
    from lamina.errors import LaminaError

    path = request.url_path
    versioned = _VERSIONED.match(path)
    try:
        if versioned:
            major, minor, path = int(versioned.group(1)), int(versioned.group(2)), versioned.group(3)
            if (major, minor) > tuple(int(p) for p in API_VERSION.split(".")):
                raise HTTPError(400, f"client version {major}.{minor} is too new. "
                                     f"Maximum supported API version is {API_VERSION}")
        found = find(request.command, path)
        if found is None:
            raise HTTPError(404, "page not found")
        handler, params = found
        handler(request, **params)
    except ClientGone:
        request.close_connection = True
    except (LaminaError, HTTPError) as e:
        _fail(request, getattr(e, "http_status", None) or getattr(e, "status", 500), str(e))
    except Exception as e:  # noqa: BLE001 - a bug: answered, logged, the service goes on
        traceback.print_exc(file=sys.stderr)
        _fail(request, 500, f"{type(e).__name__}: {e}")


def _fail(request, status: int, message: str) -> None:
    if request.answered:
        request.close_connection = True  # a stream already under way: cut it
        return
    try:
        request.send_error_json(status, message)
    except ClientGone:
        request.close_connection = True
