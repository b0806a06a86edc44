"""The service's warm state: store handles kept open between requests (api/storepool.py)
must answer exactly as a fresh one would while other commands write the store, and a
monitor kept booted for the next start must run the container it is given."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from api_fixtures import UnixHTTPConnection, lamina, serve_store
from conftest import requires_root

pytestmark = requires_root

BASE = "apiwarm/busybox:latest"


@pytest.fixture(scope="module")
def service(tmp_path_factory, busybox_tar):
    yield from serve_store(tmp_path_factory, busybox_tar, "api-warm", BASE)


def _names(service) -> set[str]:
    status, items = service.json("GET", "/containers/json?all=1")
    assert status == 200
    return {n.lstrip("/") for item in items for n in item["Names"]}


def _tags(service) -> set[str]:
    status, items = service.json("GET", "/images/json")
    assert status == 200
    return {t for item in items for t in item.get("RepoTags") or []}


def test_commands_writing_the_store_are_seen_by_the_next_request(service):
    """Each round: a command writes (create, tag, rm, rmi) and the very next request,
    served by a kept store handle, sees it."""
    for _ in range(5):  # the pooled handles are warm after the first round
        service.request("GET", "/_ping")
    for i in range(3):
        name = f"warm-{i}"
        assert lamina(service.root, "create", "--name", name, BASE, "true").returncode == 0
        assert name in _names(service)
        tag = f"apiwarm/tagged:{i}"
        assert lamina(service.root, "tag", BASE, tag).returncode == 0
        assert tag in _tags(service)
        assert lamina(service.root, "rm", name).returncode == 0
        assert name not in _names(service)
        assert lamina(service.root, "rmi", tag).returncode == 0
        assert tag not in _tags(service)


def test_kept_monitor_runs_each_container_it_is_given(service):
    """create, start, wait several times over: from the second run on the monitor the
    service booted after the previous wait runs the container; each runs its own
    command and leaves nothing (with AutoRemove, as `docker run --rm`)."""
    for i in range(3):
        body = json.dumps({"Image": BASE, "Cmd": ["sh", "-c", f"exit {i + 3}"], "HostConfig": {"AutoRemove": True}})
        status, created = service.json("POST", f"/containers/create?name=warm-run-{i}", body=body.encode())
        assert status == 201, created
        assert _run_waited(service, created["Id"], "removed") == (204, i + 3)
        assert f"warm-run-{i}" not in _names(service)


def _run_waited(service, cid: str, condition: str) -> tuple[int, int]:
    """As docker run: the wait first, its headers back (the service registered it: no
    sleep to guess at), then the start; (the start's status, the wait's StatusCode)."""
    conn = UnixHTTPConnection(service.socket, timeout=120)
    try:
        conn.request("POST", f"/containers/{cid}/wait?condition={condition}")
        resp = conn.getresponse()
        assert resp.status == 200
        status, _, body = service.request("POST", f"/containers/{cid}/start")
        if status != 204:
            return status, json.loads(body or b"{}").get("message")
        return status, json.loads(resp.read())["StatusCode"]
    finally:
        conn.close()


def _idle_monitors(service) -> list[tuple[int, int]]:
    """(pid, ppid) of the monitors booted for this service's store (their argv names it
    and ends in "start"), found by the store's own path: never another run's."""
    root = str(service.root).encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1]
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if root in argv and argv[-1] == b"start" and fields[0] != "Z":
            out.append((int(entry), int(fields[1])))
    return out


def test_a_kept_monitor_killed_while_idle_does_not_fail_the_next_start(service):
    """The monitor the service keeps booted for the next start is SIGKILLed while it
    waits (nothing runs: each one found is idle): the start runs the container under a
    fresh monitor instead of failing, and the one after that is served as usual."""
    status, running = service.json("GET", "/containers/json")
    assert status == 200 and running == []  # every monitor of the store found below is an idle one
    body = json.dumps({"Image": BASE, "Cmd": ["sh", "-c", "exit 6"]})
    status, created = service.json("POST", "/containers/create?name=warm-killed", body=body.encode())
    assert status == 201, created
    deadline = time.monotonic() + 60
    while True:  # the create boots one (after its answer): wait until it forked away from the service
        idle = _idle_monitors(service)
        if idle and all(ppid != service.proc.pid for _, ppid in idle):
            break
        assert time.monotonic() < deadline, idle
        time.sleep(0.05)
    for pid, _ in idle:
        os.kill(pid, signal.SIGKILL)
    while any(pid in dict(_idle_monitors(service)) for pid, _ in idle):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _run_waited(service, created["Id"], "next-exit") == (204, 6)
    assert _run_waited(service, created["Id"], "next-exit") == (204, 6)  # again: the wait's warm one
    assert service.request("DELETE", f"/containers/{created['Id']}")[0] == 204
