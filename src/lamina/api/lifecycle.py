"""/containers/… that change a container's life: create, start, stop, kill, restart,
wait, remove, pause, unpause, update, top, resize, prune.

Every container made here runs detached under its monitor (lamina/monitor.py), as
dockerd's do: the service can stop and start again, the containers go on, and the
store finds them.  `create` translates docker's Config/HostConfig/NetworkingConfig
into lifecycle.RunOptions (lamina.api.createspec)."""

from __future__ import annotations

import threading
import time

from lamina.api.server import ClientGone, HTTPError


def create(request) -> None:
    """POST /containers/create?name=: 201 {"Id", "Warnings"}; 404 `No such image` when
    the image is missing (the CLI pulls then and retries, as with dockerd)."""
    from lamina.api.createspec import run_options
    from lamina.engine.containers import create as engine_create, image_for_run

    body = request.json_body({})
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: the body must be an object")
    image_ref = body.get("Image") or ""
    if not isinstance(image_ref, str) or not image_ref:
        raise HTTPError(400, "No image specified")  # dockerd: config.Image empty
    opts = run_options(body, request.q("name") or None)
    system = request.system
    image = image_for_run(system, image_ref, pull="never", platform=request.q("platform") or None)
    rec = engine_create(system, image, image_ref, opts)
    request.send_json(201, {"Id": rec.id, "Warnings": []})
    try:
        request.wfile.flush()  # the answer first: the client goes on while a monitor boots
    except OSError:
        return
    _warm_monitor(system)  # a start usually follows: its monitor boots meanwhile


_WARM: list = []  # at most one booted monitor waiting for a container (engine.services.prepare_start)
_WARM_LOCK = threading.Lock()


def _warm_monitor(system) -> None:
    """Keep one monitor booted ahead of the next start, as `run -d` boots one while it
    creates the container: a booted one takes ~0.1 s of interpreter start-up and
    imports off the start.  Made on a create, and after a wait (`docker run`'s end)
    for the next one.  It waits on its pipe; when the service exits the pipe closes
    and it exits too."""
    with _WARM_LOCK:
        if _WARM:
            return
        from lamina.engine.services import prepare_start

        monitor = prepare_start(system)
        _WARM.append(monitor)
    # It forks away once its interpreter runs: that first process is reaped by a thread
    # of its own, so that the connection goes on to the client's next request at once
    # (`docker run` sends its wait there, and its start only after the wait's answer).
    import os

    pid, monitor.pid = monitor.pid, None
    threading.Thread(target=os.waitpid, args=(pid, 0), name="lamina-api-reap", daemon=True).start()


def _take_warm():
    with _WARM_LOCK:
        return _WARM.pop() if _WARM else None


def start(request, id: str) -> None:  # noqa: A002 - dockerd's path parameter
    """POST /containers/{id}/start: 204, or 304 when it already runs."""
    from lamina.engine.services import start as engine_start

    system = request.system
    rec = system.containers.resolve(id)
    if rec.running:
        request.send_empty(304)
        return
    monitor = _take_warm()
    if monitor is not None:
        from lamina.services import MonitorGone

        try:
            monitor.start(rec)  # returns once it runs, or raises why it could not start
            request.send_empty(204)
            return
        except MonitorGone:
            pass  # killed while it waited (it had not read the ID): a fresh one runs it
    engine_start(system, rec)
    request.send_empty(204)


def _timeout(request) -> float | None:
    text = request.q("t")
    if text in (None, ""):
        return None
    try:
        return float(int(text))
    except ValueError:
        raise HTTPError(400, f'strconv.Atoi: parsing "{text}": invalid syntax') from None


def stop(request, id: str) -> None:  # noqa: A002
    """POST /containers/{id}/stop?t=: 204, or 304 when it was not running."""
    from lamina.engine.services import stop as engine_stop

    rec = request.system.containers.resolve(id)
    if not rec.running:
        request.send_empty(304)
        return
    engine_stop(request.system, rec.id, _timeout(request))
    request.send_empty(204)


def kill(request, id: str) -> None:  # noqa: A002
    from lamina.engine.services import kill as engine_kill

    engine_kill(request.system, id, request.q("signal") or "KILL")
    request.send_empty(204)


def restart(request, id: str) -> None:  # noqa: A002
    from lamina.engine.services import restart as engine_restart

    engine_restart(request.system, id, _timeout(request))
    request.send_empty(204)


def wait(request, id: str) -> None:  # noqa: A002
    """POST /containers/{id}/wait?condition=not-running|next-exit|removed.

    The headers go out at once: the Go client returns from its POST on them and only
    then starts the container (`docker run`), so the wait is registered first.  The
    store is polled; a client that leaves ends the wait."""
    from lamina.errors import NoSuchContainer

    condition = request.q("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise HTTPError(400, f"invalid condition: {condition!r}")
    system = request.system
    from lamina.engine.journal import die_watch
    from lamina.services import exited_since

    before = rec = system.containers.resolve(id)
    died = die_watch(system.root, rec.id)  # an exit whose Restarting window fell between two looks
    since_ns = time.time_ns() - 10**9
    stream = request.stream_json()
    stream.begin()
    began = time.monotonic()
    code = rec.exit_code or 0
    while True:
        try:
            rec = system.containers.get(rec.id)
        except NoSuchContainer:  # removed (--rm): its monitor journaled the exit code first
            from lamina.engine.journal import died_code

            code = died_code(system.root, rec.id, since_ns, code)
            break
        code = rec.exit_code or 0
        # dockerd wakes its waiters at every exit, also one its restart policy follows
        # with a new run (Restarting): "not-running" ends there too, as "next-exit" does
        if condition == "not-running" and (not rec.running or exited_since(rec, before)):
            break
        if condition == "next-exit" and exited_since(rec, before):
            break
        if condition != "removed" and (seen := died()) is not None:
            code = seen
            break
        if request.client_gone():
            raise ClientGone("wait abandoned")
        # often at first (`docker run` waits for a short command's exit, or a --rm
        # container's removal, on this answer), then less so
        time.sleep(0.01 if time.monotonic() - began < 3 else 0.05)
    stream.write({"StatusCode": code, "Error": None})
    stream.close()
    # the next run's monitor boots now, not while this container exits and is removed
    # (two interpreters at once slow both) nor on the next start's time
    _warm_monitor(system)


def remove(request, id: str) -> None:  # noqa: A002
    """DELETE /containers/{id}?force=&v=: 204; 409 when it runs without force."""
    from lamina.engine.containers import remove as engine_remove

    engine_remove(request.system, id, force=request.q_bool("force"), volumes=request.q_bool("v"))
    request.send_empty(204)


def rename(request, id: str) -> None:  # noqa: A002
    from lamina.engine.containers import rename as engine_rename

    engine_rename(request.system, id, request.q("name") or "")
    request.send_empty(204)


def update(request, id: str) -> None:  # noqa: A002
    """POST /containers/{id}/update: the resource fields and RestartPolicy; 200 {"Warnings"}."""
    from lamina.engine.update import FIELDS, update as engine_update

    body = request.json_body({}) or {}
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: the body must be an object")
    for key in FIELDS:  # Go's decoder refuses a wrong type before anything is checked
        value = body.get(key)
        want = str if key in ("CpusetCpus", "CpusetMems") else int
        if value is not None and (type(value) is not want):
            raise HTTPError(400, f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                                 f"UpdateConfig.{key} of type {'string' if want is str else 'int64'}")
    policy = body.get("RestartPolicy")
    if policy is not None and not (isinstance(policy, dict) and isinstance(policy.get("Name", ""), str)
                                   and type(policy.get("MaximumRetryCount", 0)) is int):
        raise HTTPError(400, "json: cannot unmarshal RestartPolicy of UpdateConfig")
    warnings = engine_update(request.system, id, body)
    request.send_json(200, {"Warnings": warnings})


def pause(request, id: str) -> None:  # noqa: A002
    from lamina.engine.exec import pause as engine_pause

    engine_pause(request.system, id)
    request.send_empty(204)


def unpause(request, id: str) -> None:  # noqa: A002
    from lamina.engine.exec import unpause as engine_unpause

    engine_unpause(request.system, id)
    request.send_empty(204)


def top(request, id: str) -> None:  # noqa: A002
    from lamina.engine.exec import top as engine_top

    titles, processes = engine_top(request.system, id, request.q("ps_args") or "")
    request.send_json(200, {"Titles": titles, "Processes": processes})


def resize(request, id: str) -> None:  # noqa: A002
    """POST /containers/{id}/resize?h=&w=: the -t container's terminal (engine/terminal.py)."""
    from lamina.engine.terminal import resize as engine_resize

    engine_resize(request.system, id, atoi(request.q("h") or ""), atoi(request.q("w") or ""))
    request.send_bytes(200, b"", content_type="text/plain; charset=utf-8")


def atoi(text: str) -> int:
    """Go's strconv.Atoi, with its error as dockerd's 400 (resize's h and w)."""
    from lamina.runtime.resources import parse_int

    try:
        value = parse_int(text)
    except ValueError as e:
        raise HTTPError(400, str(e).replace("ParseInt", "Atoi")) from None
    if not 0 <= value < 1 << 16:  # the ioctl's unsigned short; dockerd hands it to containerd as uint32
        raise HTTPError(400, f'strconv.Atoi: parsing "{text}": value out of range')
    return value


def prune(request) -> None:
    """POST /containers/prune: every stopped container (label/until filters)."""
    from lamina.api.images import filters_of
    from lamina.engine.summaries import labels_match
    from lamina.engine.containers import list_containers, remove as engine_remove
    from lamina.engine.containers import size_of
    from lamina.errors import NotFound

    filters = filters_of(request, ("label", "label!", "until"))
    until = None
    if filters.get("until"):
        from lamina.logs.since import parse_timestamp

        try:
            until = parse_timestamp(filters["until"][-1])[0]
        except ValueError as e:
            raise HTTPError(400, str(e)) from None
    system = request.system
    deleted, space = [], 0
    for rec in list_containers(system, all=True):
        if rec.running:
            continue
        labels = rec.config.get("Labels") or {}
        if filters.get("label") and not labels_match(labels, filters["label"]):
            continue
        if filters.get("label!") and any(labels_match(labels, [w]) for w in filters["label!"]):
            continue
        if until is not None and rec.created >= until:
            continue
        try:
            space += size_of(system, rec)[0]
            engine_remove(system, rec.id)
        except NotFound:
            continue  # removed meanwhile (its --rm)
        deleted.append(rec.id)
    request.send_json(200, {"ContainersDeleted": deleted or None, "SpaceReclaimed": space})
