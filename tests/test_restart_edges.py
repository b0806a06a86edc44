"""Restart policies at their edges, as dockerd 20.10 has them (issue 12): `wait` on a
container its policy brings back ends at its next exit; a restart that fails to
start ends the policy (Exited with the last run's code, State.Error the runtime's
message); OOMKilled is recorded with the exit, never after it.

Real runc and overlay mounts, as root, through the CLI in subprocesses; helpers
from test_services_monitor (its module store fixture, `root`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

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


# ---------------------------------------------------------------- a start the runtime refuses, against dockerd

_STATE = "{{.State.Status}} {{.State.ExitCode}} {{.State.StartedAt}} {{.State.FinishedAt}}"


@pytest.fixture(scope="module")
def both(tmp_path_factory, busybox_tar):
    """{"docker": argv, "lamina": argv} and the image tag both have."""
    from test_cli_cp import DOCKER, LAMINA, docker_ok

    if not is_root() or not docker_ok():
        pytest.skip("SKIPPED LOUDLY: needs root and a dockerd to compare with")
    tag = f"h1st-{uuid.uuid4().hex[:8]}"
    sides = {"docker": [DOCKER], "lamina": [*LAMINA, "--root", str(tmp_path_factory.mktemp("refused") / "store")]}
    for argv in sides.values():
        subprocess.run([*argv, "import", str(busybox_tar), f"{tag}:1"], check=True, capture_output=True)
    yield sides, f"{tag}:1"
    for argv in sides.values():
        names = subprocess.run([*argv, "ps", "-aq", "--filter", f"name={tag}"], capture_output=True).stdout.split()
        if names:
            subprocess.run([*argv, "rm", "-f", *names], capture_output=True)
        subprocess.run([*argv, "rmi", f"{tag}:1"], capture_output=True)


def _cli(argv, *args):
    return subprocess.run([*argv, *map(str, args)], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def _state(argv, name) -> tuple[str, str, str]:
    """(status, exit code, whether StartedAt/FinishedAt are Go's zero time), State.Error, ps STATUS."""
    status, code, started, finished = _cli(argv, "inspect", "-f", _STATE, name).stdout.decode().split()
    zero = "0001-01-01T00:00:00Z"
    error = _cli(argv, "inspect", "-f", "{{.State.Error}}", name).stdout.decode().strip()
    ps = _cli(argv, "ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").stdout.decode().strip()
    return f"{status} {code} {started == zero} {finished == zero}", error, ps


@requires_root
def test_a_first_start_the_runtime_refuses_leaves_the_container_created_as_dockerd(both, tmp_path):
    """`run -d`, foreground `run` and `create`+`start` of a command that is missing, a
    file bound onto a directory (runc's ENOTDIR: 127 and dockerd's hint), and a --mount
    bind whose source went before the start (refused before the container is touched:
    no code, no error): Created, no start or finish time, as dockerd leaves it."""
    sides, image = both
    seen = {}
    for side, argv in sides.items():
        tag = image.split(":")[0]
        gone = tmp_path / side / "gone"
        gone.mkdir(parents=True)
        out = {}
        out["run-d-missing"] = _cli(argv, "run", "-d", "--name", f"{tag}-a{side[0]}", image, "/nonexistent")
        out["run-missing"] = _cli(argv, "run", "--name", f"{tag}-b{side[0]}", image, "/nonexistent")
        out["run-d-file-on-dir"] = _cli(argv, "run", "-d", "--name", f"{tag}-c{side[0]}", "-v", "/etc/hostname:/etc",
                                        image, "true")
        out["run-file-on-dir"] = _cli(argv, "run", "--name", f"{tag}-d{side[0]}", "-v", "/etc/hostname:/etc",
                                      image, "true")
        _cli(argv, "create", "--name", f"{tag}-e{side[0]}", "--mount", f"type=bind,src={gone},dst=/x", image, "true")
        gone.rmdir()
        out["start-gone-mount"] = _cli(argv, "start", f"{tag}-e{side[0]}")
        seen[side] = {case: (p.returncode, *_state(argv, f"{tag}-{'abcde'[i]}{side[0]}"))
                      for i, (case, p) in enumerate(out.items())}
        msg = out["start-gone-mount"].stderr.decode()
        assert f'invalid mount config for type "bind": bind source path does not exist: {gone}' in msg, msg
    for case in seen["docker"]:
        code, state, error, ps = seen["lamina"][case]
        d_code, d_state, d_error, d_ps = seen["docker"][case]
        assert (code, state, bool(error), ps) == (d_code, d_state, bool(d_error), d_ps), (case, seen)
        if "file-on-dir" in case:
            assert "Are you trying to mount a directory onto a file (or vice-versa)?" in error, error


@requires_root
def test_a_later_start_the_runtime_refuses_keeps_the_last_run_as_dockerd(both, tmp_path):
    """An exited container whose --mount bind source is gone (refused before it is
    touched) and one whose -v bind source is gone (made again, it runs): the first
    keeps its last run's code and times, the second runs, as with dockerd."""
    sides, image = both
    for side, argv in sides.items():
        tag = image.split(":")[0]
        for letter, flag in (("f", "--mount"), ("g", "-v")):
            name, src = f"{tag}-{letter}{side[0]}", tmp_path / side / letter
            src.mkdir(parents=True)
            spec = f"type=bind,src={src},dst=/x" if flag == "--mount" else f"{src}:/x"
            assert _cli(argv, "run", "--name", name, flag, spec, image, "sh", "-c", "exit 3").returncode == 3
            before = _cli(argv, "inspect", "-f", _STATE, name).stdout
            src.rmdir()
            p = _cli(argv, "start", "-a", name)
            if flag == "--mount":
                assert p.returncode == 1, (side, p)
                assert _cli(argv, "inspect", "-f", _STATE, name).stdout == before, side
                assert _cli(argv, "inspect", "-f", "{{.State.Error}}", name).stdout.strip() == b"", side
            else:
                assert p.returncode == 3 and src.is_dir(), (side, p)
                assert _cli(argv, "inspect", "-f", _STATE, name).stdout != before, side


@requires_root
def test_wait_sees_an_exit_whose_restarting_window_it_missed(root, tmp_path):
    """`wait` stopped (SIGSTOP: a loaded machine) across an exit, the back-off and the
    next start: the record shows only the new run, the journal's `die` still ends the
    wait with the exit's code."""
    from test_services_monitor import LAMINA

    cid = _run_d(root, "--name", "wmiss", "--restart", "always", "-v", f"{tmp_path}:/x", "bb:1", "sh", "-c",
                 "if [ -e /x/ran ]; then exec sleep 3600; fi; touch /x/ran; "
                 "while [ ! -e /x/go ]; do sleep 0.05; done; exit 7")
    waiter = subprocess.Popen([*LAMINA, "--root", str(root), "wait", "wmiss"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        def polling() -> bool:  # in its loop (wait_down's pidfd open): it has its journal offset
            try:
                return any(os.readlink(f"/proc/{waiter.pid}/fd/{fd}") == "anon_inode:[pidfd]"
                           for fd in os.listdir(f"/proc/{waiter.pid}/fd"))
            except OSError:
                return False

        _wait_for(polling, timeout=60, what="the wait's loop")
        os.kill(waiter.pid, signal.SIGSTOP)
        (tmp_path / "go").touch()
        _wait_for(lambda: _inspect(root, "wmiss", "{{.State.Status}} {{.RestartCount}}") == "running 1",
                  timeout=60, what="the next run")
        os.kill(waiter.pid, signal.SIGCONT)
        out, err = waiter.communicate(timeout=60)
        assert (waiter.returncode, out.decode().strip()) == (0, "7"), err
    finally:
        if waiter.poll() is None:
            os.kill(waiter.pid, signal.SIGCONT)
            waiter.kill()
            waiter.wait()
        lamina(root, "rm", "-f", "wmiss", check=False)
    _assert_nothing_left(root, [cid])
