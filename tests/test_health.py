"""HEALTHCHECK (issue 12): run's --health-* flags, the image's HEALTHCHECK, the probe loop
and State.Health, on real parts.  The containers run in the foreground of another
`lamina run`, whose front probes as dockerd does; a detached container's monitor
runs the same loop (lamina/health.py run_health_loop).

Recorded from docker 20.10.24 (`RECORDED`): flag errors of `docker run`, the
Config.Healthcheck docker records, and the shapes of State.Health.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from conftest import requires_root
from test_exec import Foreground, docker_ctr, lamina  # noqa: F401 - docker_ctr: a fixture

RECORDED = {
    # `docker run --rm FLAGS busybox true`: stderr (exit 125)
    "flag_errors": [
        (["--health-interval", "xx"],
         'invalid argument "xx" for "--health-interval" flag: time: invalid duration "xx"\n'
         "See 'docker run --help'."),
        (["--health-interval", "-1s"], "docker: --health-interval cannot be negative.\nSee 'docker run --help'."),
        (["--health-retries", "-1"], "docker: --health-retries cannot be negative.\nSee 'docker run --help'."),
        (["--health-interval", "1us"],
         "docker: Error response from daemon: Interval in Healthcheck cannot be less than 1ms.\n"
         "See 'docker run --help'."),
        (["--health-timeout", "0.5us"],
         "docker: Error response from daemon: Timeout in Healthcheck cannot be less than 1ms.\n"
         "See 'docker run --help'."),
        (["--health-start-period", "1us"],
         "docker: Error response from daemon: StartPeriod in Healthcheck cannot be less than 1ms.\n"
         "See 'docker run --help'."),
        (["--health-retries", "x"],
         'invalid argument "x" for "--health-retries" flag: strconv.ParseInt: parsing "x": invalid syntax\n'
         "See 'docker run --help'."),
        (["--no-healthcheck", "--health-cmd", "x"],
         "docker: --no-healthcheck conflicts with --health-* options.\nSee 'docker run --help'."),
    ],
    # Config.Healthcheck: run flags alone, and over an image's `HEALTHCHECK --interval=200ms --retries=2 CMD exit 0`
    "config_flags": {"Test": ["CMD-SHELL", "echo ok; exit 0"], "Interval": 200000000, "Retries": 2},
    "config_timeout": {"Test": ["CMD-SHELL", "echo bad >&2; exit 3"], "Interval": 200000000,
                       "Timeout": 2000000000, "Retries": 2},
    "image": {"Test": ["CMD-SHELL", "exit 0"], "Interval": 200000000, "Retries": 2},
    "image_retries_5": {"Test": ["CMD-SHELL", "exit 0"], "Interval": 200000000, "Retries": 5},
    "image_no_healthcheck": {"Test": ["NONE"], "Interval": 200000000, "Retries": 2},
    "starting": {"Status": "starting", "FailingStreak": 0, "Log": []},
}


def inspect(root, name: str, template: str):
    p = lamina(root, "inspect", "-f", template, name)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def wait_health(root, name: str, want, timeout: float = 20.0) -> dict:
    deadline = time.time() + timeout
    health = None
    while time.time() < deadline:
        health = inspect(root, name, "{{json .State.Health}}")
        if health and want(health):
            return health
        time.sleep(0.1)
    raise AssertionError(f"health never got there: {health}")


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar):
    root = tmp_path_factory.mktemp("health") / "store"
    lamina(root, "import", busybox_tar, "bb:1", check=True)
    lamina(root, "import", "-c", "HEALTHCHECK --interval=200ms --retries=2 CMD exit 0", busybox_tar, "bbh:1",
           check=True)
    return root


# ----------------------------------------------------------------------------- flags and config


@requires_root
@pytest.mark.parametrize(("flags", "docker_text"), RECORDED["flag_errors"])
def test_flag_errors_as_docker(store, flags, docker_text):
    p = lamina(store, "run", "--rm", *flags, "bb:1", "true")
    assert p.returncode == 125
    assert p.stderr.strip() == docker_text.replace("docker", "lamina")
    assert lamina(store, "ps", "-aq").stdout == ""  # refused before anything was made


@requires_root
def test_config_from_flags_and_image(store):
    def config(*args):
        cid = lamina(store, "create", *args, check=True).stdout.strip()
        try:
            return inspect(store, cid, "{{json .Config.Healthcheck}}"), inspect(store, cid, "{{json .State.Health}}")
        finally:
            lamina(store, "rm", cid)

    assert config("--health-cmd", "echo ok; exit 0", "--health-interval", "200ms", "--health-retries", "2",
                  "bb:1", "true") == (RECORDED["config_flags"], None)
    assert config("bb:1", "true") == (None, None)
    assert config("bbh:1", "true") == (RECORDED["image"], None)
    assert config("--health-retries", "5", "bbh:1", "true") == (RECORDED["image_retries_5"], None)
    assert config("--no-healthcheck", "bbh:1", "true") == (RECORDED["image_no_healthcheck"], None)


@pytest.mark.docker
@requires_root
@pytest.mark.parametrize("flags", [
    ["--health-cmd", "echo ok; exit 0", "--health-interval", "200ms", "--health-retries", "2"],
    ["--health-timeout", "1.5s"],
    ["--health-start-period", "1m30s", "--health-cmd", "a b"],
    ["--no-healthcheck"],
])
def test_config_matches_live_docker(store, docker_ctr, flags):
    docker, _ = docker_ctr
    cid = subprocess.run([docker, "create", *flags, "lamina-test-runtime:busybox", "true"], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        theirs = subprocess.run([docker, "inspect", "-f", "{{json .Config.Healthcheck}}", cid], capture_output=True,
                                text=True, check=True).stdout
    finally:
        subprocess.run([docker, "rm", cid], capture_output=True)
    ours = lamina(store, "create", *flags, "bb:1", "true", check=True).stdout.strip()
    try:
        assert lamina(store, "inspect", "-f", "{{json .Config.Healthcheck}}", ours).stdout == theirs
    finally:
        lamina(store, "rm", ours)


def test_healthcheck_config_values():
    from lamina.errors import InvalidParameter, OptionError
    from lamina.health import healthcheck_config, merge, probe_argv

    assert healthcheck_config() is None
    assert healthcheck_config(disabled=True) == {"Test": ["NONE"]}
    assert healthcheck_config(cmd="x", timeout=10**9) == {"Test": ["CMD-SHELL", "x"], "Timeout": 10**9}
    assert healthcheck_config(retries=3) == {"Retries": 3}  # Test inherited from the image
    with pytest.raises(OptionError):
        healthcheck_config(timeout=-1)
    with pytest.raises(InvalidParameter):
        healthcheck_config(start_period=999_999)
    assert merge(None, None) is None
    assert merge({"Test": ["CMD", "a"]}, {"Retries": 1}) == {"Test": ["CMD", "a"], "Retries": 1}
    assert probe_argv({"Healthcheck": {"Test": ["CMD", "a", "b"]}}) == ["a", "b"]
    assert probe_argv({"Healthcheck": {"Test": ["CMD-SHELL", "a b"]}}) == ["/bin/sh", "-c", "a b"]
    assert probe_argv({"Healthcheck": {"Test": ["CMD-SHELL", "x"]}, "Shell": ["/bin/ash", "-ec"]}) \
        == ["/bin/ash", "-ec", "x"]
    assert probe_argv({"Healthcheck": {"Test": ["NONE"]}}) is None
    assert probe_argv({}) is None


# ----------------------------------------------------------------------------- the loop


@requires_root
def test_starting_then_healthy(store):
    c = Foreground(store, "ok", "--health-cmd", "echo ok; exit 0", "--health-interval", "1500ms",
                   "--health-retries", "2", "bb:1", "sleep", "60")
    try:
        first = inspect(store, "ok", "{{json .State.Health}}")
        assert first["Status"] == "starting" and first["FailingStreak"] == 0
        health = wait_health(store, "ok", lambda h: h["Status"] == "healthy")
        entry = health["Log"][-1]
        assert (entry["ExitCode"], entry["Output"]) == (0, "ok\n")
        assert entry["Start"].endswith("Z") and entry["Start"] <= entry["End"]
        assert list(health) == ["Status", "FailingStreak", "Log"] and list(entry) == ["Start", "End", "ExitCode",
                                                                                      "Output"]
        ps = lamina(store, "ps", "--format", "{{.Names}} {{.Status}}").stdout
        assert any(ln.startswith("ok Up ") and ln.endswith(" (healthy)") for ln in ps.splitlines()), ps
    finally:
        c.stop()
        lamina(store, "rm", "-f", "ok")


@requires_root
def test_unhealthy_after_retries(store):
    c = Foreground(store, "bad", "--health-cmd", "echo bad >&2; exit 3", "--health-interval", "200ms",
                   "--health-retries", "3", "--health-timeout", "2s", "bb:1", "sleep", "60")
    try:
        assert inspect(store, "bad", "{{json .Config.Healthcheck}}") == {**RECORDED["config_timeout"], "Retries": 3}
        seen = []  # every state observed on the way: fewer failures than retries stay "starting"
        health = wait_health(store, "bad", lambda h: seen.append((h["FailingStreak"], h["Status"]))
                             or h["Status"] == "unhealthy")
        assert health["FailingStreak"] >= 3
        assert all(status == ("starting" if streak < 3 else "unhealthy") for streak, status in seen), seen
        assert all((e["ExitCode"], e["Output"]) == (3, "bad\n") for e in health["Log"])
        health = wait_health(store, "bad", lambda h: h["FailingStreak"] >= 7)
        assert len(health["Log"]) == 5  # the last five results only
        ps = lamina(store, "ps", "--format", "{{.Names}} {{.Status}}").stdout
        assert any(ln.startswith("bad Up ") and ln.endswith(" (unhealthy)") for ln in ps.splitlines()), ps
    finally:
        c.stop()
        lamina(store, "rm", "-f", "bad")


@requires_root
def test_start_period_and_recovery(store):
    # failures within the start period do not count; one success makes it healthy
    c = Foreground(store, "slow", "--health-cmd", "test -e /tmp/ready", "--health-interval", "200ms",
                   "--health-retries", "1", "--health-start-period", "30s", "bb:1", "sleep", "60")
    try:
        health = wait_health(store, "slow", lambda h: len(h["Log"]) >= 3)
        assert (health["Status"], health["FailingStreak"]) == ("starting", 0)
        lamina(store, "exec", "slow", "touch", "/tmp/ready", check=True)
        wait_health(store, "slow", lambda h: h["Status"] == "healthy")
    finally:
        c.stop()
        lamina(store, "rm", "-f", "slow")


@requires_root
def test_timeout_kills_the_probe_and_output_is_cut(store):
    c = Foreground(store, "hang", "--health-cmd", "head -c 5000 /dev/zero | tr '\\0' x; sleep 30",
                   "--health-interval", "300ms", "--health-timeout", "400ms", "--health-retries", "1",
                   "bb:1", "sleep", "60")
    try:
        health = wait_health(store, "hang", lambda h: len(h["Log"]) >= 3)
        assert health["Status"] == "unhealthy"
        entry = health["Log"][0]
        assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (400ms)")
        # each probe was killed at its timeout: only the one under way may still run
        assert lamina(store, "top", "hang").stdout.count("sleep 30") <= 1
    finally:
        c.stop()
        lamina(store, "rm", "-f", "hang")
    c = Foreground(store, "loud", "--health-cmd", "head -c 5000 /dev/zero | tr '\\0' x", "--health-interval",
                   "200ms", "bb:1", "sleep", "60")
    try:
        entry = wait_health(store, "loud", lambda h: h["Status"] == "healthy")["Log"][-1]
        assert entry["Output"] == "x" * 4096 + "..."
    finally:
        c.stop()
        lamina(store, "rm", "-f", "loud")


@requires_root
def test_image_healthcheck_and_no_healthcheck(store):
    c = Foreground(store, "img", "bbh:1", "sleep", "3")
    try:
        wait_health(store, "img", lambda h: h["Status"] == "healthy")
        assert c.proc.wait(timeout=20) == 0
        # once it exited: unhealthy, its log kept (docker's CloseMonitorChannel)
        health = inspect(store, "img", "{{json .State.Health}}")
        assert health["Status"] == "unhealthy" and health["Log"]
    finally:
        c.stop()
    c = Foreground(store, "none", "--no-healthcheck", "bbh:1", "sleep", "60")
    try:
        time.sleep(0.8)
        assert inspect(store, "none", "{{json .State.Health}}") is None
        ps = lamina(store, "ps", "--format", "{{.Names}} {{.Status}}").stdout
        line = next(ln for ln in ps.splitlines() if ln.startswith("none "))
        assert line.startswith("none Up ") and "(" not in line, line
    finally:
        c.stop()
        lamina(store, "rm", "-f", "none")


@requires_root
def test_probe_that_cannot_start(store, busybox_tar):
    """A probe runc cannot start is a failure with docker's text (20.10, recorded)."""
    lamina(store, "import", "-c", 'HEALTHCHECK --interval=200ms CMD ["nosuch"]', busybox_tar, "bbn:1", check=True)
    c = Foreground(store, "nocmd", "bbn:1", "sleep", "60")
    try:
        health = wait_health(store, "nocmd", lambda h: h["Status"] == "unhealthy")
        assert health["FailingStreak"] >= 3
        assert (health["Log"][0]["ExitCode"], health["Log"][0]["Output"]) == (
            -1, 'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuch": '
                "executable file not found in $PATH: unknown")
    finally:
        c.stop()
        lamina(store, "rm", "-f", "nocmd")


@requires_root
def test_probe_of_a_paused_container_fails(store):
    """dockerd's exec refuses a paused container: each probe meanwhile is a failure."""
    c = Foreground(store, "frozen", "--health-cmd", "true", "--health-interval", "200ms", "--health-retries", "2",
                   "bb:1", "sleep", "60")
    try:
        wait_health(store, "frozen", lambda h: h["Status"] == "healthy")
        lamina(store, "pause", "frozen", check=True)
        # (a probe under way as the freezer bites may fail otherwise: wait for one that met the pause)
        health = wait_health(store, "frozen", lambda h: h["Status"] == "unhealthy"
                             and h["Log"][-1]["Output"].endswith(" is paused, unpause the container before exec"))
        assert (health["Log"][-1]["ExitCode"], health["Log"][-1]["Output"]) == (
            -1, f"Container {c.id} is paused, unpause the container before exec")
        lamina(store, "unpause", "frozen", check=True)
        wait_health(store, "frozen", lambda h: h["Status"] == "healthy")
    finally:
        c.stop()
        lamina(store, "rm", "-f", "frozen")


@requires_root
def test_run_health_loop_api(store):
    """The entry point a detached container's monitor calls on a thread."""
    from lamina.health import health_of, run_health_loop
    from lamina.system import System

    c = Foreground(store, "api", "--no-healthcheck", "bb:1", "sleep", "60")
    system = System(str(store))
    try:
        # a container without a probe: returns at once
        stop = threading.Event()
        run_health_loop(system, c.id, stop)
        assert health_of(system, c.id) is None
    finally:
        system.close()
        c.stop()
        lamina(store, "rm", "-f", "api")


def test_results_as_dockerd_counts_them():
    """handleProbeResult: retries, the start period (only while never healthy), the log of five."""
    from lamina.health import _record_result

    state = {"Status": "starting", "FailingStreak": 0, "Log": []}
    fail = {"ExitCode": 1, "Output": ""}
    ok = {"ExitCode": 0, "Output": ""}
    _record_result(state, fail, 100.0 + 5, 3, 10.0, 100.0)  # within the start period: not counted
    assert (state["Status"], state["FailingStreak"], len(state["Log"])) == ("starting", 0, 1)
    _record_result(state, fail, 100.0 + 11, 3, 10.0, 100.0)
    _record_result(state, fail, 100.0 + 12, 3, 10.0, 100.0)
    assert (state["Status"], state["FailingStreak"]) == ("starting", 2)
    _record_result(state, fail, 100.0 + 13, 3, 10.0, 100.0)
    assert (state["Status"], state["FailingStreak"]) == ("unhealthy", 3)
    _record_result(state, ok, 100.0 + 14, 3, 10.0, 100.0)
    assert (state["Status"], state["FailingStreak"]) == ("healthy", 0)
    _record_result(state, fail, 100.0 + 15, 3, 10.0, 100.0)
    assert (state["Status"], state["FailingStreak"], len(state["Log"])) == ("healthy", 1, 5)
    state["Status"] = "healthy"  # once healthy, the start period no longer shields failures
    _record_result(state, fail, 100.0 + 1, 1, 10.0, 100.0)
    assert state["Status"] == "unhealthy"


def test_go_time():
    from lamina.health import go_time

    assert go_time(0) == "1970-01-01T00:00:00Z"
    assert go_time(1.5) == "1970-01-01T00:00:01.5Z"
    assert go_time(1.123456789) == "1970-01-01T00:00:01.123456789Z"


if __name__ == "__main__":
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__]))
