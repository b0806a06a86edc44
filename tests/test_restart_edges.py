"""Restart policies at their edges, as dockerd 20.10 has them (issue 12): `wait` on a
container its policy brings back ends at its next exit; a restart that fails to
start ends the policy (Exited with the last run's code, State.Error the runtime's
message); OOMKilled is recorded with the exit, never after it.

Real runc and overlay mounts, as root, through the CLI in subprocesses; helpers
from test_services_monitor (its module store fixture, `root`).
"""

from __future__ import annotations

import json
import time

import pytest

from api_fixtures import serve_store
from conftest import is_root, requires_root
from test_services_monitor import (_assert_nothing_left, _inspect, _run_d, _wait_for, lamina, root,  # noqa: F401
                                   rows_seen)


@requires_root
def test_wait_ends_at_the_next_exit_of_a_container_its_policy_restarts(root):
    """dockerd's wait ("not-running") is woken at each exit: a container that always
    restarts gives its code each time, the wait never hangs on the next run."""
    cid = _run_d(root, "--name", "wr1", "--restart", "always", "bb:1", "sh", "-c", "sleep 0.5; exit 3")
    try:
        for _ in range(2):  # while it runs, then again on a later run
            p = lamina(root, "wait", "wr1", timeout=60)
            assert p.stdout.decode().strip() == "3"
        assert _inspect(root, "wr1", "{{.State.Status}}") in ("running", "restarting")
        assert int(_inspect(root, "wr1", "{{.RestartCount}}")) >= 1
    finally:
        lamina(root, "rm", "-f", "wr1")
    _assert_nothing_left(root, [cid])


@requires_root
def test_wait_called_while_restarting_ends_at_the_next_runs_exit(root):
    """Called in the back-off (Restarting, which docker counts as running): the wait
    spans the rest of the back-off and the next run, and gives that run's code."""
    cid = _run_d(root, "--name", "wr2", "--restart", "always", "bb:1", "sh", "-c", "exit 4")
    try:
        # the back-off doubles from 100 ms: by the fourth restart it is >= 0.8 s long
        _wait_for(lambda: _inspect(root, "wr2", "{{.State.Status}} {{.RestartCount}}").split()
                  in (["restarting", n] for n in map(str, range(4, 10))), timeout=60, what="a long back-off")
        before = int(_inspect(root, "wr2", "{{.RestartCount}}"))
        p = lamina(root, "wait", "wr2", timeout=60)
        assert p.stdout.decode().strip() == "4"
        assert _inspect(root, "wr2", "{{.State.Status}}") in ("running", "restarting")
        assert int(_inspect(root, "wr2", "{{.RestartCount}}")) > before  # it ran again first
    finally:
        lamina(root, "rm", "-f", "wr2")
    _assert_nothing_left(root, [cid])


@pytest.fixture(scope="module")
def service(tmp_path_factory, busybox_tar):
    if not is_root():
        pytest.skip("SKIPPED LOUDLY: needs root (mounts, runc)")
    yield from serve_store(tmp_path_factory, busybox_tar, "api-restart", "apirestart/busybox:latest")


@requires_root
def test_api_wait_conditions_end_at_the_next_exit_of_a_restarting_container(service):
    """POST /containers/{id}/wait, "not-running" and "next-exit": dockerd's waiters are
    woken at the exit its restart policy follows with a new run."""
    status, body = service.json("POST", "/containers/create", body=json.dumps(
        {"Image": "apirestart/busybox:latest", "Cmd": ["sh", "-c", "sleep 0.5; exit 5"],
         "HostConfig": {"RestartPolicy": {"Name": "always"}, "NetworkMode": "none"}}))
    assert status == 201, body
    cid = body["Id"]
    try:
        assert service.request("POST", f"/containers/{cid}/start")[0] == 204
        for condition in ("not-running", "next-exit", "not-running"):
            status, body = service.json("POST", f"/containers/{cid}/wait?condition={condition}")
            assert (status, body) == (200, {"StatusCode": 5, "Error": None}), condition
        assert service.json("GET", f"/containers/{cid}/json")[1]["State"]["Status"] in ("running", "restarting")
    finally:
        assert service.request("DELETE", f"/containers/{cid}?force=1")[0] == 204


@requires_root
def test_a_restart_that_fails_to_start_ends_the_policy_as_dockerd(root, tmp_path):
    """The bind mount's source removed while the first run runs: the restart's runc
    create fails.  dockerd then sets the container stopped with the last run's exit
    code, RestartCount as it was and State.Error the start's error; no more restarts
    (its monitor exits)."""
    src = tmp_path / "bindsrc"
    src.mkdir()
    (src / "keep").touch()
    cid = _run_d(root, "--name", "wf1", "--restart", "always", "--mount", f"type=bind,src={src},dst=/x",
                 "bb:1", "sh", "-c", "while [ -e /x/keep ]; do sleep 0.05; done; exit 3")
    try:
        # gone together, long before the restart (its back-off alone is 100 ms)
        (src / "keep").unlink()
        src.rmdir()
        p = lamina(root, "wait", "wf1", timeout=60)  # Restarting, or exited already
        assert p.stdout.decode().strip() == "3"
        _wait_for(lambda: _inspect(root, "wf1", "{{.State.Status}}") == "exited", timeout=60, what="exited")
        _assert_nothing_left(root, [cid])  # the monitor is gone: nothing restarts it any more
        assert _inspect(root, "wf1", "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}") == "exited 1 3"
        error = _inspect(root, "wf1", "{{.State.Error}}")
        assert str(src) in error and "no such file or directory" in error, error
    finally:
        lamina(root, "rm", "-f", "wf1", check=False)


@requires_root
def test_oom_killed_is_recorded_in_the_exits_transaction(root):
    """The store read directly (one snapshot per SELECT) while a memory-limited container
    is OOM-killed: its exit is never seen without OOMKilled."""
    cid = _run_d(root, "--name", "oom2", "-m", "8m", "bb:1", "sh", "-c",
                 "sleep 0.3; x=a; while :; do x=$x$x; done")
    with rows_seen(root, cid, "c.state, c.exit_code, r.oom_killed") as rows:
        _wait_for(lambda: _inspect(root, "oom2", "{{.State.Status}}") == "exited", timeout=60, what="the OOM kill")
    assert _inspect(root, "oom2", "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 137"
    assert [r for r in rows if r[0] == "exited" and not r[2]] == [], sorted(rows, key=str)
    lamina(root, "rm", "oom2")
    _assert_nothing_left(root, [cid])
