"""/images/…: list, inspect, history, tag, delete, pull/import, push, save, load, prune."""

from __future__ import annotations

import base64
import json

from lamina.api.server import ClientGone, HTTPError
from lamina.engine.summaries import image_summaries

_FILTERS = ("dangling", "reference", "label", "before", "since")


def filters_of(request, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """The `filters` parameter in either form dockerd accepts: {"k": ["v"]} or the older
    {"k": {"v": true}}; an unknown key is docker's 400 `invalid filter`."""
    raw = request.q_json("filters", {}) or {}
    if not isinstance(raw, dict):
        raise HTTPError(400, "invalid filter: filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if key not in allowed:
            raise HTTPError(400, f"Invalid filter '{key}'")  # dockerd 20.10's words
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            raise HTTPError(400, f"invalid filter '{key}': values must be a list of strings")
    return out


def list_images(request) -> None:
    filters = filters_of(request, _FILTERS)
    request.send_json(200, image_summaries(request.system, all_images=request.q_bool("all"), filters=filters))


def inspect(request, name: str) -> None:
    from lamina.engine.images import _resolve_as_daemon, inspect_image

    from lamina.errors import NoSuchImage, NotFound

    system = request.system
    try:
        record = _resolve_as_daemon(system, name)
    except NoSuchImage as e:
        raise NotFound(f"no such image: {name}: {e}") from None  # dockerd 20.10's words
    request.send_json(200, inspect_image(system, record))


def history(request, name: str) -> None:
    from lamina.engine.images import familiar, history as image_history

    system = request.system
    tags = system.images.all_tags()
    rows = []
    for ident, created, by, size, comment in image_history(system, name):
        rows.append({"Id": ident, "Created": int(created or 0), "CreatedBy": by,
                     "Tags": [familiar(t) for t in sorted(tags.get(ident, []))] or None,
                     "Size": size, "Comment": comment})
    request.send_json(200, rows)


def tag(request, name: str) -> None:
    from lamina.engine.images import tag as tag_image

    repo, tag_ = request.q("repo", ""), request.q("tag", "")
    if not repo:
        raise HTTPError(400, "repository name must have at least one component")
    tag_image(request.system, name, f"{repo}:{tag_}" if tag_ else repo)
    request.send_empty(201)


def remove(request, name: str) -> None:
    from lamina.engine.images import _resolve_as_daemon, remove as remove_image

    _resolve_as_daemon(request.system, name)  # dockerd's not-found text names the parsed reference
    lines = remove_image(request.system, name, force=request.q_bool("force"), prune=not request.q_bool("noprune"))
    request.send_json(200, [{k: v} for k, _, v in (line.partition(": ") for line in lines)])


def prune(request) -> None:
    from lamina.engine.images import prune as prune_images

    filters = filters_of(request, ("dangling", "until", "label"))
    dangling = filters.get("dangling", ["true"])[-1].lower() in ("true", "1")
    lines, reclaimed = prune_images(request.system, dangling_only=dangling)
    request.send_json(200, {"ImagesDeleted": [{k: v} for k, _, v in (line.partition(": ") for line in lines)] or None,
                            "SpaceReclaimed": reclaimed})


def search(request) -> None:
    raise HTTPError(501, "image search is not supported by lamina")


def credentials_from(auth: dict):
    from lamina.engine.images import credentials_from as engine_credentials

    return engine_credentials(auth)


def registry_auth(request) -> dict:
    """X-Registry-Auth: base64url JSON {username, password, serveraddress, identitytoken}
    (docker-py and the CLI send `e30=`, `{}`, when they have none)."""
    header = request.headers.get("X-Registry-Auth")
    if not header:
        return {}
    try:
        padded = header.strip() + "=" * (-len(header.strip()) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise HTTPError(400, "invalid X-Registry-Auth header: not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise HTTPError(400, "invalid X-Registry-Auth header: not a JSON object")
    return value


def _with_tag(name: str, tag: str | None) -> str:
    if not tag:
        return name
    return f"{name}@{tag}" if ":" in tag else f"{name}:{tag}"


def create(request) -> None:
    """POST /images/create: a pull (fromImage) or an import (fromSrc, `-` = the body)."""
    from lamina.engine import images as engine
    from lamina.reference import parse

    system = request.system
    credentials = credentials_from(registry_auth(request))
    if request.q("fromSrc") is not None:
        return _import(request)
    name = request.q("fromImage") or ""
    if not name:
        raise HTTPError(400, "fromImage or fromSrc is required")
    ref = parse(_with_tag(name, request.q("tag")))  # a bad reference is a 400 before any output
    platform = request.q("platform") or None  # checked by the pull before its first message
    stream_work(request, lambda sink: engine.pull(system, ref, progress=sink, platform=platform,
                                                  credentials=credentials))


def _import(request) -> None:
    from lamina.engine import images as engine

    if request.q("fromSrc") != "-":
        raise HTTPError(400, "importing from a URL is not supported; send the tarball as the body")
    repo = _with_tag(request.q("repo"), request.q("tag")) if request.q("repo") else None
    system, body = request.system, request.body()

    def work(sink):
        image_id = engine.import_image(system, body, repository=repo, message=request.q("message", ""),
                                       changes=request.q_all("changes"), source="-")
        sink.write_message({"status": str(image_id)})
    stream_work(request, work)


def push(request, name: str) -> None:
    from lamina.engine import images as engine
    from lamina.reference import parse

    credentials = credentials_from(registry_auth(request))
    ref = parse(_with_tag(name, request.q("tag")))
    system = request.system
    engine.get_image(system, ref.name)  # 404 before the stream starts

    def work(sink):
        result = engine.push(system, ref, progress=sink, credentials=credentials)
        digest = getattr(result, "digest", None)
        if digest:
            sink.write_message({"progressDetail": {}, "aux": {"Tag": ref.tag or "latest", "Digest": str(digest),
                                                              "Size": getattr(result, "size", 0)}})
    stream_work(request, work)


def get_one(request, name: str) -> None:
    _save(request, [name])


def get_many(request) -> None:
    _save(request, request.q_all("names"))


def _save(request, names: list[str]) -> None:
    from lamina.engine import images as engine

    system = request.system
    for name in names:
        engine._resolve_as_daemon(system, name)  # every name found before the tar starts
    fd = request.raw_stream("application/x-tar")
    try:
        engine.save(system, names, fd)
    except (BrokenPipeError, ConnectionResetError, BlockingIOError) as e:
        raise ClientGone(str(e)) from None  # gone, or not reading for IO_TIMEOUT


def load(request) -> None:
    from lamina.engine import images as engine

    system, body, quiet = request.system, request.body(), request.q_bool("quiet")

    def work(sink):
        from lamina.engine.events import Events

        loaded = engine.load(system, body, progress=Events(lambda message: None) if quiet else sink)
        for image in loaded:
            for ref in image.tags:
                if ref in image.replaced:
                    sink.write_message({"stream": f"The image {ref.familiar} already exists, renaming the old one "
                                                  f"with ID {image.replaced[ref]} to empty string\n"})
                sink.write_message({"stream": f"Loaded image: {ref.familiar}\n"})
            if not image.tags:
                sink.write_message({"stream": f"Loaded image ID: {image.image_id}\n"})
    stream_work(request, work)


def stream_work(request, work) -> None:
    """Run `work(sink)` in this thread, streaming what it reports as dockerd's JSON
    messages; an error before the first message is an HTTP status, after it docker's
    errorDetail.  The client going away raises ClientGone inside the work (at its next
    report), which unwinds it."""
    from lamina.engine.events import Events

    stream = request.stream_json()
    sink = Events(stream.write)
    sink.write_message = stream.write
    try:
        work(sink)
        sink.close()
    except Exception as e:  # noqa: BLE001 - reported on the stream (ClientGone: nobody to tell)
        from lamina.api.server import ClientGone
        from lamina.errors import LaminaError

        if isinstance(e, ClientGone) or stream.closed:
            raise
        if not isinstance(e, (LaminaError, HTTPError)):
            import traceback

            traceback.print_exception(e)  # a bug: into the service's log too
        stream.fail(e)
    stream.close()


def auth(request) -> None:
    """POST /auth: docker login's check; 401 with the registry's words when refused."""
    from lamina.engine.images import check_login
    from lamina.errors import LaminaError

    body = request.json_body({})
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid auth configuration: not a JSON object")
    secret = body.get("identitytoken") or body.get("password") or ""
    try:
        check_login(body.get("serveraddress") or "", body.get("username") or "", secret)
    except LaminaError as e:
        raise HTTPError(401, str(e)) from None
    request.send_json(200, {"IdentityToken": "", "Status": "Login Succeeded"})
