"""The engine's event journal: what `docker events` shows (image pull/tag/untag/delete,
container create/destroy, …), kept in the store since there is no daemon to remember it.

Every command appends its events to `<root>/events.jsonl` (one JSON object a line, in
dockerd's message shape, written by one O_APPEND write so concurrent writers never
interleave); the API service reads it for `since`/`until` and follows its growth for a
live `/events`.  Past MAX_BYTES the file is rotated once (`events.jsonl.1`), so the
journal keeps roughly the last few thousand events, as dockerd keeps its last 1000 in
memory.  Recording never fails a command: an unwritable journal loses the event.
"""

from __future__ import annotations

import os
import time

FILE = "events.jsonl"
MAX_BYTES = 1 << 20


def record(system, type_: str, action: str, actor: str, attributes: dict | None = None) -> None:
    """Append one event (`type_` image/container/network, docker's action word, the
    actor's ID, its attributes such as name and image)."""
    from lamina.leanjson import dumps  # json.dumps' very bytes, without json's import of re (every `run`)

    now = time.time_ns()
    event = {"status": action, "id": actor, "Type": type_, "Action": action,
             "Actor": {"ID": actor, "Attributes": dict(attributes or {})},
             "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
    if type_ == "container" and attributes and "image" in attributes:
        event["from"] = attributes["image"]
    if type_ != "container" and type_ != "image":
        del event["status"], event["id"]  # dockerd's legacy keys exist for those two types only
    path = os.path.join(system.root, FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (dumps(event) + "\n").encode())
            if os.fstat(fd).st_size > MAX_BYTES:
                os.replace(path, path + ".1")
        finally:
            os.close(fd)
    except OSError:
        pass


def read(root: str, since_ns: int = 0, until_ns: int | None = None) -> list[dict]:
    """The recorded events with since_ns <= timeNano <= until_ns, oldest first."""
    out = []
    for name in (FILE + ".1", FILE):
        out += _parse(os.path.join(root, name), 0)[0]
    return [e for e in out if e.get("timeNano", 0) >= since_ns and (until_ns is None or e["timeNano"] <= until_ns)]


def died_code(root: str, container_id: str, since_ns: int, default: int) -> int:
    """The exit code of the container's last `die` since since_ns (a --rm container's,
    once its record is gone), or `default`."""
    for event in reversed(read(root, since_ns)):
        if event.get("Action") == "die" and event.get("id") == container_id:
            return _exit_code(event, default)
    return default


def _exit_code(event: dict, default: int) -> int:
    code = event["Actor"]["Attributes"].get("exitCode", "")
    return int(code) if code.lstrip("-").isdigit() else default


def die_watch(root: str, container_id: str):
    """A callable: the exit code of the container's first `die` journaled since this
    call, or None yet (a `wait` that slept through an exit its policy followed with a
    new run: the record shows only that run)."""
    offset = tail(root, None)[1]

    def died() -> int | None:
        nonlocal offset
        events, offset = tail(root, offset)
        for event in events:
            if event.get("Action") == "die" and event.get("id") == container_id:
                return _exit_code(event, 0)
        return None

    return died


def tail(root: str, offset: int | None) -> tuple[list[dict], int]:
    """Events appended to the journal after byte `offset` (None: its current end), and
    the new offset (a rotation starts over at the new file's beginning)."""
    path = os.path.join(root, FILE)
    try:
        size = os.stat(path).st_size
    except OSError:
        return [], 0
    if offset is None or size == offset:
        return [], size
    if size < offset:
        offset = 0
    return _parse(path, offset)


def _parse(path: str, offset: int) -> tuple[list[dict], int]:
    import json

    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    complete = data.rfind(b"\n") + 1  # a line still being written waits for the next look
    events = []
    for line in data[:complete].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + complete
