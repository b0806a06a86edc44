"""GET /events: the engine's journal (engine/journal.py), past and live.

`since` replays what was recorded from then on; without `until` the answer then
follows the journal (polled: any lamina command, CLI or API, appends to it) until
the client leaves; with `until` it ends at that time.  Filters as dockerd's:
type, event (action), container, image, label.
"""

from __future__ import annotations

import time

from lamina.api.images import filters_of
from lamina.api.server import HTTPError

POLL = 0.2


def _timestamp_ns(text: str | None, name: str) -> int | None:
    """dockerd's timestamps: unix seconds with an optional fraction (the CLI turns
    durations and dates into these before sending)."""
    if not text:
        return None
    seconds, _, fraction = text.partition(".")
    if not seconds.lstrip("-").isdigit() or (fraction and not fraction.isdigit()):
        raise HTTPError(400, f"failed to parse value {text} as a time for {name}")
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9] if fraction else 0)


def _matches(event: dict, filters: dict) -> bool:
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    if filters.get("type") and event.get("Type") not in filters["type"]:
        return False
    if filters.get("event") and event.get("Action") not in filters["event"]:
        return False
    if filters.get("container"):
        if event.get("Type") != "container" or not any(
                actor.get("ID", "").startswith(v) or attrs.get("name") == v for v in filters["container"]):
            return False
    if filters.get("image"):
        names = {actor.get("ID", ""), attrs.get("name", ""), attrs.get("image", "")}
        if not any(v in names or any(n.startswith(v + ":") for n in names) for v in filters["image"]):
            return False
    for item in filters.get("label", []):
        key, eq, value = item.partition("=")
        if key not in attrs or (eq and attrs[key] != value):
            return False
    return True


def events(request) -> None:
    from lamina.engine import journal

    filters = filters_of(request, ("type", "event", "container", "image", "label", "network", "volume",
                                   "daemon", "plugin", "node", "service", "secret", "config", "scope"))
    since = _timestamp_ns(request.q("since"), "since")
    until = _timestamp_ns(request.q("until"), "until")
    root = request.system.root
    request.close_system()  # a live stream may last hours: the store is read through the journal file
    stream = request.stream_json()
    stream.begin()
    _, offset = journal.tail(root, None)  # the end, before the replay: nothing falls between
    replayed = set()
    if since is not None:
        for event in journal.read(root, since, until):
            replayed.add((event.get("timeNano"), event.get("Action"), (event.get("Actor") or {}).get("ID")))
            if _matches(event, filters):
                stream.write(event)
    while until is None or time.time_ns() < until:
        if request.client_gone():
            stream.closed = True
            return
        fresh, offset = journal.tail(root, offset)
        for event in fresh:
            if (event.get("timeNano"), event.get("Action"), (event.get("Actor") or {}).get("ID")) in replayed:
                continue  # recorded while the replay was read: sent already
            if (until is None or event.get("timeNano", 0) <= until) and _matches(event, filters):
                stream.write(event)
        time.sleep(POLL)
    stream.close()
