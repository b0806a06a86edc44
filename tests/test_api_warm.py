"""The service's warm state: store handles kept open between requests (api/storepool.py)
must answer exactly as a fresh one would while other commands write the store, and a
monitor kept booted for the next start must run the container it is given."""

from __future__ import annotations

import json
import threading
import time

import pytest

from api_fixtures import lamina, serve_store
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
        waited = []  # as docker run: the wait first (its answer comes once the container is removed)
        waiter = threading.Thread(target=lambda: waited.append(
            service.request("POST", f"/containers/{created['Id']}/wait?condition=removed")))
        waiter.start()
        time.sleep(0.2)
        status, _, _ = service.request("POST", f"/containers/{created['Id']}/start")
        assert status == 204
        waiter.join(60)
        status, _, data = waited[0]
        assert status == 200 and json.loads(data)["StatusCode"] == i + 3
        assert f"warm-run-{i}" not in _names(service)
