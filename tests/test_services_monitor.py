"""Containers as services (issue 12): the monitor, run -d, stop/kill/wait/restart, rm -f,
ps/inspect State, restart policies, --init and `start --all`.

All on a real OCI runtime (crun or runc) and overlay mounts, as root, through the CLI in subprocesses (a
monitor outlives the command that started it).  After each fault `system check`
must pass and nothing may be left: mounts, runtime state, cgroups, processes, rows.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import requires_root, runtime_name, runtime_state, runtime_state_dir

LAMINA = [sys.executable, "-m", "lamina"]


def lamina(root, *args, check=True, timeout=120):
    p = subprocess.run(LAMINA + ["--root", str(root)] + [str(a) for a in args], capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout.decode()}\n{p.stderr.decode()}")
    return p


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar):
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: needs root (mounts, runc)")
    r = tmp_path_factory.mktemp("services") / "store"
    lamina(r, "import", busybox_tar, "bb:1")
    yield r
    for cid in lamina(r, "ps", "-aq", "--no-trunc").stdout.decode().split():
        lamina(r, "rm", "-f", cid, check=False)


def _wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def rows_seen(root, cid: str, columns: str):
    """Every distinct row of `columns` (of containers c, container_runs r) the container
    has while the block runs, read from the store every millisecond on a thread: states
    too brief for an inspect poll to catch."""
    rows, stop = set(), threading.Event()

    def read_store():
        db = sqlite3.connect(root / "lamina.db", timeout=60)
        try:
            while not stop.is_set():
                rows.add(db.execute(f"SELECT {columns} FROM containers c LEFT JOIN container_runs r "
                                    "ON r.id=c.id WHERE c.id=?", (cid,)).fetchone())
                time.sleep(0.001)
        finally:
            db.close()

    reader = threading.Thread(target=read_store, daemon=True)
    reader.start()
    try:
        yield rows
    finally:
        stop.set()
        reader.join()


def _status(root, name: str) -> str:
    out = lamina(root, "ps", "-a", "--format", "{{.Names}}|{{.Status}}").stdout.decode()
    for line in out.splitlines():
        n, _, status = line.partition("|")
        if n == name:
            return status
    return ""


def _inspect(root, name: str, template: str) -> str:
    return lamina(root, "inspect", "-f", template, name).stdout.decode().strip()


def _run_d(root, *args) -> str:
    p = lamina(root, "run", "-d", "--network", "none", *args)
    cid = p.stdout.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), p.stdout
    return cid


def _monitor_pid(root, cid: str) -> int | None:
    db = sqlite3.connect(root / "lamina.db")
    try:
        row = db.execute("SELECT monitor_pid FROM container_runs WHERE id=?", (cid,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def _store_processes(root) -> list[str]:
    """Command lines of processes that name the store (CLIs, monitors, watchdogs, runc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(root).encode() in cmdline:
                out.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return out


def _pids_with_cmdline(*argv: str) -> list[int]:
    want = [a.encode() for a in argv]
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                got = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1]
            except OSError:
                continue
            if got == want:
                out.append(int(entry))
    return out


def _cgroups_of(cid: str) -> list[str]:
    found = []
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(base) == "lamina":
            found += [os.path.join(base, d) for d in dirs if d == cid]
            dirs[:] = []
    return found


def _mounted_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def _assert_nothing_left(root, cids=()) -> None:
    _wait_for(lambda: not _store_processes(root), what="monitors, watchdogs and runc to end")
    assert not _mounted_under(root / "containers")
    state_dir = runtime_state_dir(root)
    assert not [c for c in cids if (state_dir / c).exists()], "runtime state left"
    assert not [c for c in cids if _cgroups_of(c)], "cgroups left"
    p = lamina(root, "system", "check", check=False)
    assert p.returncode == 0 and p.stdout.decode().strip().endswith("ok"), p.stdout + p.stderr


def _trap_set(root, name: str) -> None:
    """Until the container's shell printed `ready` after its `trap`: PID 1 ignores a signal
    it has no handler for, so one sent before that would be lost."""
    _wait_for(lambda: b"ready" in lamina(root, "logs", name, check=False).stdout, what=f"{name}'s trap")


def _marker() -> str:
    """A `sleep` argument no other process on the host has (another test, another run):
    nine random digits, a sleep of years that the test ends."""
    return str(10**8 + int.from_bytes(os.urandom(4), "big") % (9 * 10**8))


# ----------------------------------------------------------------------------- run -d, stop, kill


@requires_root
def test_run_detached_returns_the_id_and_the_container_runs(root):
    marker = _marker()
    cid = _run_d(root, "--name", "svc1", "bb:1", "sleep", marker)
    # the CLI returned once the container ran: no waiting needed
    assert _status(root, "svc1").startswith("Up ")
    assert runtime_state(root, cid) == "running"
    pid = int(_inspect(root, "svc1", "{{.State.Pid}}"))
    # runc start has returned; its init execs `sleep` right after (a moment on a loaded machine)
    assert _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the exec of sleep") == [pid]
    assert _inspect(root, "svc1", "{{.State.Status}} {{.State.Running}} {{.RestartCount}}") == "running true 0"
    assert lamina(root, "ps", "--format", "{{.Names}} {{.State}}").stdout.decode().split("\n").count(
        "svc1 running") == 1
    lamina(root, "rm", "-f", "svc1")
    assert not _pids_with_cmdline("sleep", marker)
    _assert_nothing_left(root, [cid])


@requires_root
@pytest.mark.parametrize("how", ["--root", "LAMINA_ROOT"])
def test_run_d_with_a_relative_store_root(root, how):
    # the monitor leaves the CLI's directory for /: a relative root must name the same store there
    # (it once opened a new, empty store below / and answered "No such container", exit 125)
    rel = os.path.relpath(root, root.parent)
    name = f"relroot-{how.strip('-').lower()}"
    argv = LAMINA + (["--root", rel] if how == "--root" else []) + ["run", "-d", "--name", name, "bb:1", "sleep", "30"]
    env = dict(os.environ, LAMINA_ROOT=rel) if how == "LAMINA_ROOT" else None
    p = subprocess.run(argv, cwd=root.parent, env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode()
    assert _status(root, name).startswith("Up ")
    assert not os.path.exists(os.path.join("/", rel))  # nothing made outside the store
    lamina(root, "rm", "-f", name)


@requires_root
def test_stop_of_a_process_obeying_term_is_quick(root):
    cid = _run_d(root, "--name", "term1", "bb:1", "sh", "-c",
                 "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done")
    _trap_set(root, "term1")  # else the stop would wait its 10 s
    t0 = time.monotonic()
    assert lamina(root, "stop", "term1").stdout == b"term1\n"
    assert time.monotonic() - t0 < 5  # well inside the 10 s timeout
    assert _status(root, "term1").startswith("Exited (0) ")
    assert _inspect(root, "term1", "{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}}") == "exited 0 0"
    assert lamina(root, "wait", "term1").stdout == b"0\n"
    # stop of a stopped container is no error (docker prints the name)
    assert lamina(root, "stop", "term1").stdout == b"term1\n"
    lamina(root, "rm", "term1")
    _assert_nothing_left(root, [cid])


@requires_root
def test_stop_signals_a_monitors_init_itself_and_a_foreground_run_through_runc(root, tmp_path):
    """A monitor's container is signalled without a `runc kill` (lamina/services.py
    `_signal_init`); a foreground run (no monitor) still through the runtime."""
    calls = tmp_path / "calls"
    rt = runtime_name(root)
    wrapper = tmp_path / f"{rt}-logged"  # the runtime by its name; exec keeps the runtime's own process
    wrapper.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\nexec {shutil.which(rt)} \"$@\"\n")
    wrapper.chmod(0o755)
    trap = ["sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done"]

    def ready(name):  # its trap is set: TERM ends it with 0
        return b"ready" in lamina(root, "logs", name, check=False).stdout

    cid = _run_d(root, "--name", "direct1", "bb:1", *trap)
    _wait_for(lambda: ready("direct1"), what="the trap")
    assert lamina(root, "--runtime", wrapper, "stop", "direct1").stdout == b"direct1\n"
    assert _status(root, "direct1").startswith("Exited (0) ")
    assert not calls.exists() or " kill " not in calls.read_text()
    lamina(root, "rm", "direct1")
    front = subprocess.Popen(LAMINA + ["--root", str(root), "--runtime", str(wrapper), "run", "--network", "none",
                                       "--name", "front1", "bb:1", *trap],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: ready("front1"), what="the foreground run's trap")
        assert lamina(root, "--runtime", wrapper, "stop", "front1").stdout == b"front1\n"
        assert front.wait(timeout=60) == 0
    finally:
        if front.poll() is None:
            front.kill()
            front.wait()
    assert " kill " in calls.read_text()
    lamina(root, "rm", "front1")
    _assert_nothing_left(root, [cid])


@requires_root
def test_stop_kills_after_the_timeout_a_process_ignoring_term(root):
    cid = _run_d(root, "--name", "deaf1", "bb:1", "sleep", _marker())  # PID 1 ignores TERM
    t0 = time.monotonic()
    lamina(root, "stop", "-t", "1", "deaf1")
    took = time.monotonic() - t0
    assert 1.0 <= took < 8, took
    assert _status(root, "deaf1").startswith("Exited (137) ")
    lamina(root, "rm", "deaf1")
    _assert_nothing_left(root, [cid])


@requires_root
def test_kill_signals_and_docker_texts(root):
    cid = _run_d(root, "--name", "kill1", "bb:1", "sh", "-c",
                 "trap 'exit 7' USR1; echo ready; while :; do sleep 0.05; done")
    _trap_set(root, "kill1")
    p = lamina(root, "kill", "-s", "BOGUS", "kill1", check=False)
    assert (p.returncode, p.stderr) == (1, b"Error response from daemon: Invalid signal: BOGUS\n")
    assert lamina(root, "kill", "-s", "USR1", "kill1").stdout == b"kill1\n"
    assert lamina(root, "wait", "kill1").stdout == b"7\n"
    p = lamina(root, "kill", "kill1", check=False)
    assert p.returncode == 1
    assert p.stderr.decode() == (f"Error response from daemon: Cannot kill container: kill1: Container {cid} "
                                 "is not running\n")
    p = lamina(root, "kill", "nosuch", check=False)
    assert (p.returncode, p.stderr) == (1, b"Error response from daemon: No such container: nosuch\n")
    p = lamina(root, "stop", "nosuch", "nosuch2", check=False)
    assert (p.returncode, p.stderr) == (1, b"Error response from daemon: No such container: nosuch\n"
                                           b"Error response from daemon: No such container: nosuch2\n")
    lamina(root, "rm", "kill1")
    _assert_nothing_left(root, [cid])


@requires_root
def test_stop_kill_and_rm_f_of_a_paused_container_resume_it_as_dockerd(root):
    """dockerd's killWithSignal resumes a paused container after SIGKILL or its stop
    signal (any signal when it has none): a frozen process takes no signal (not even
    SIGKILL under cgroup v1), so stop, kill and rm -f would hang.  Another signal stays
    pending until `unpause` (docker 20.10 seen doing each of these on this machine)."""
    trap = "trap 'exit 3' TERM; trap 'exit 4' USR1; echo ready; while :; do sleep 0.05; done"
    cids = [_run_d(root, "--name", "pz1", "bb:1", "sleep", _marker())]  # PID 1 ignores TERM
    lamina(root, "pause", "pz1")
    t0 = time.monotonic()
    lamina(root, "stop", "-t", "1", "pz1", timeout=60)
    assert 1.0 <= time.monotonic() - t0 < 8
    assert _status(root, "pz1").startswith("Exited (137) ")
    lamina(root, "start", "pz1")
    lamina(root, "pause", "pz1")
    lamina(root, "kill", "pz1", timeout=60)
    assert _status(root, "pz1").startswith("Exited (137) ")

    cids.append(_run_d(root, "--name", "pz2", "bb:1", "sh", "-c", trap))
    _trap_set(root, "pz2")
    lamina(root, "pause", "pz2")
    lamina(root, "kill", "-s", "TERM", "pz2")  # no StopSignal: any signal resumes it
    assert lamina(root, "wait", "pz2", timeout=60).stdout == b"3\n"

    cids.append(_run_d(root, "--name", "pz3", "--stop-signal", "USR1", "bb:1", "sh", "-c", trap))
    _trap_set(root, "pz3")
    lamina(root, "pause", "pz3")
    lamina(root, "kill", "-s", "TERM", "pz3")  # not its stop signal: pending, still paused
    assert _inspect(root, "pz3", "{{.State.Status}}") == "paused"
    lamina(root, "unpause", "pz3")
    assert lamina(root, "wait", "pz3", timeout=60).stdout == b"3\n"
    lamina(root, "start", "pz3")
    _wait_for(lambda: lamina(root, "logs", "pz3").stdout.count(b"ready") == 2, what="pz3's trap again")
    lamina(root, "pause", "pz3")
    lamina(root, "stop", "pz3", timeout=60)  # its stop signal resumes it: USR1's trap ends it
    assert _inspect(root, "pz3", "{{.State.ExitCode}}") == "4"

    lamina(root, "start", "pz2")
    lamina(root, "pause", "pz2")
    lamina(root, "rm", "-f", "pz1", "pz2", "pz3", timeout=60)
    _assert_nothing_left(root, cids)


@requires_root
def test_start_is_detached_and_restart_runs_it_again(root):
    cid = lamina(root, "create", "--network", "none", "--name", "st1", "bb:1", "sleep", _marker()).stdout.decode().strip()
    assert _status(root, "st1") == "Created"
    assert lamina(root, "start", "st1").stdout == b"st1\n"
    assert _status(root, "st1").startswith("Up ")
    first = int(_inspect(root, "st1", "{{.State.Pid}}"))
    assert lamina(root, "restart", "-t", "0", "st1").stdout == b"st1\n"
    assert _status(root, "st1").startswith("Up ")
    assert int(_inspect(root, "st1", "{{.State.Pid}}")) != first
    lamina(root, "stop", "-t", "0", "st1")
    # start -a keeps the foreground run
    p = lamina(root, "create", "--network", "none", "--name", "st2", "bb:1", "sh", "-c", "echo fg; exit 4")
    p = lamina(root, "start", "-a", "st2", check=False)
    assert (p.returncode, p.stdout) == (4, b"fg\n")
    lamina(root, "rm", "st1", "st2")
    _assert_nothing_left(root, [cid])


@requires_root
def test_a_failed_detached_start_is_the_command_error(root):
    p = lamina(root, "run", "-d", "--network", "none", "--name", "bad1", "bb:1", "nosuchcmd", check=False)
    assert p.returncode == 127
    assert re.fullmatch(rb"[0-9a-f]{64}\n", p.stdout)  # docker prints the ID once created
    assert b'exec: "nosuchcmd": executable file not found in $PATH' in p.stderr
    assert _status(root, "bad1") == "Created"
    assert _inspect(root, "bad1", "{{.State.ExitCode}}") == "127"
    lamina(root, "rm", "bad1")
    p = lamina(root, "run", "-d", "--rm", "--network", "none", "--name", "bad2", "bb:1", "nosuchcmd", check=False)
    assert p.returncode == 127
    assert _status(root, "bad2") == ""  # --rm: removed after the failed start too
    _assert_nothing_left(root)


# ----------------------------------------------------------------------------- faults


@requires_root
def test_kill9_of_the_monitor_leaves_an_exited_removable_container(root):
    marker = _marker()
    cid = _run_d(root, "--name", "mon9", "bb:1", "sleep", marker)
    monitor = _monitor_pid(root, cid)
    assert monitor and runtime_state(root, cid) == "running"
    os.kill(monitor, signal.SIGKILL)
    _wait_for(lambda: not _pids_with_cmdline("sleep", marker), what="the container to be killed")
    _wait_for(lambda: _status(root, "mon9").startswith("Exited (137)"), what="Exited (137)")
    assert runtime_state(root, cid) is None
    _assert_nothing_left(root, [cid])
    lamina(root, "rm", "mon9")
    assert not (root / "containers" / cid).exists()


@requires_root
@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3, 0.6])
def test_kill9_of_the_cli_during_run_d_leaves_nothing_half_done(root, delay):
    marker = _marker()
    front = subprocess.Popen(LAMINA + ["--root", str(root), "run", "-d", "--network", "none", "--name", f"cli9-{delay}",
                                       "bb:1", "sleep", marker], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    front.send_signal(signal.SIGKILL)
    front.wait(timeout=10)
    time.sleep(0.5)  # a monitor already spawned goes on: it starts the container or fails cleanly
    status = _status(root, f"cli9-{delay}")
    assert status == "" or status == "Created" or status.startswith(("Up ", "Exited ")), status
    if status.startswith("Up "):
        _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the exec of sleep")
    lamina(root, "rm", "-f", f"cli9-{delay}", check=False)
    assert not _pids_with_cmdline("sleep", marker)
    _assert_nothing_left(root)
    db = sqlite3.connect(root / "lamina.db")
    try:
        assert db.execute("SELECT COUNT(*) FROM container_runs WHERE id NOT IN (SELECT id FROM containers)"
                          ).fetchone()[0] == 0
    finally:
        db.close()


@requires_root
def test_kill9_of_the_cli_during_stop_leaves_a_consistent_state(root):
    marker = _marker()
    cid = _run_d(root, "--name", "stop9", "bb:1", "sleep", marker)
    front = subprocess.Popen(LAMINA + ["--root", str(root), "stop", "-t", "30", "stop9"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    front.send_signal(signal.SIGKILL)
    front.wait(timeout=10)
    assert _status(root, "stop9").startswith("Up ")  # TERM ignored: still kept by its monitor
    p = lamina(root, "system", "check", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    lamina(root, "stop", "-t", "0", "stop9")
    assert _status(root, "stop9").startswith("Exited (137)")
    lamina(root, "rm", "stop9")
    _assert_nothing_left(root, [cid])


# ----------------------------------------------------------------------------- restart policies, --rm


@requires_root
def test_restart_on_failure_retries_twice(root):
    cid = _run_d(root, "--name", "rof", "--restart", "on-failure:2", "bb:1", "sh", "-c", "echo run; exit 3")
    _wait_for(lambda: _status(root, "rof").startswith("Exited (3)") and _inspect(root, "rof", "{{.RestartCount}}") == "2",
              what="the retries to end")
    assert _inspect(root, "rof", "{{.RestartCount}} {{.State.ExitCode}} {{json .HostConfig.RestartPolicy}}") == \
        '2 3 {"Name":"on-failure","MaximumRetryCount":2}'
    time.sleep(0.5)
    assert _inspect(root, "rof", "{{.RestartCount}}") == "2"
    log = (root / "containers" / cid / f"{cid}-json.log")
    if log.exists():  # lamina/logs writes it
        assert log.read_text().count('"log":"run\\n"') == 3
    lamina(root, "rm", "rof")
    _assert_nothing_left(root, [cid])


@requires_root
@pytest.mark.parametrize("script", ["exit 3", "sleep 0.3; exit 3"], ids=["runner", "lean-relay"])
def test_a_restarting_container_never_reads_exited_between_its_runs(root, script):
    """dockerd sets Restarting at the exit, under the container's lock: `exited` only once
    the retries are over.  The store read directly (one snapshot per SELECT) and inspect/ps
    polled until the final state; the assertions are on the states seen, never on timing.
    A run that outlives the monitor's start ("sleep") exits through the lean relay."""
    name = "rnx" + str(len(script))
    cid = _run_d(root, "--name", name, "--restart", "on-failure:3", "bb:1", "sh", "-c", script)
    seen, deadline = [], time.monotonic() + 90
    with rows_seen(root, cid, "c.state, r.restart_count, c.exit_code") as rows:
        while True:
            assert time.monotonic() < deadline, f"no final state: {seen[-20:]}"
            seen.append(_inspect(root, name, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"))
            if seen[-1] == "exited 3 3":
                break
            if _status(root, name).startswith("Exited"):
                seen.append("ps: Exited")
    # once it reads exited (inspect or ps), it is the final state: nothing but that follows
    first_exit = next(i for i, s in enumerate(seen) if s.startswith(("exited", "ps: Exited")))
    assert set(seen[first_exit:]) <= {"exited 3 3", "ps: Exited"}, seen
    assert [r for r in rows if r[0] == "exited" and r[1] != 3] == [], sorted(rows, key=str)
    assert [r for r in rows if r[0] == "restarting" and (r[2] != 3 or not r[1])] == [], sorted(rows, key=str)
    def dies():  # lamina/engine/journal.py: docker's `die` at each of the four exits
        import json

        events = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]
        return [e["Actor"]["Attributes"]["exitCode"] for e in events if e["Action"] == "die" and e["id"] == cid]
    _wait_for(lambda: len(dies()) == 4, what="four die events")
    assert dies() == ["3"] * 4
    lamina(root, "rm", name)
    _assert_nothing_left(root, [cid])


@requires_root
def test_restart_always_shows_restarting_and_stop_ends_it(root):
    cid = _run_d(root, "--name", "ralw", "--restart", "always", "bb:1", "sh", "-c", "sleep 0.3; exit 1")
    _wait_for(lambda: int(_inspect(root, "ralw", "{{.RestartCount}}")) >= 2, what="two restarts")
    seen = _wait_for(lambda: [s for s in [_status(root, "ralw")] if s.startswith("Restarting (1) ")],
                     what="the Restarting status")
    assert seen[0].endswith(" ago")
    lamina(root, "stop", "-t", "1", "ralw")
    status = _status(root, "ralw")
    assert status.startswith("Exited ("), status
    count = _inspect(root, "ralw", "{{.RestartCount}}")
    time.sleep(1.0)
    assert _status(root, "ralw").startswith("Exited (")  # a user's stop: no restart follows
    assert _inspect(root, "ralw", "{{.RestartCount}}") == count
    lamina(root, "rm", "ralw")
    _assert_nothing_left(root, [cid])


@requires_root
def test_run_d_rm_removes_the_container_after_it_exits(root):
    cid = _run_d(root, "--rm", "--name", "drm", "bb:1", "sh", "-c", "sleep 0.2")
    _wait_for(lambda: _status(root, "drm") == "", what="the removal")
    _wait_for(lambda: not (root / "containers" / cid).exists(), what="its directory to go (after the row)")
    _assert_nothing_left(root, [cid])


@requires_root
def test_restart_flag_errors_are_dockers(root):
    cases = {  # docker 20.10, recorded
        ("--restart", "bogus"): (125, "lamina: Error response from daemon: invalid restart policy 'bogus'.\n"
                                      "See 'lamina run --help'.\n"),
        ("--restart", "always:3"): (125, "lamina: Error response from daemon: maximum retry count cannot be used "
                                         "with restart policy 'always'.\nSee 'lamina run --help'.\n"),
        ("--restart", "on-failure:x"): (125, "lamina: maximum retry count must be an integer.\n"
                                             "See 'lamina run --help'.\n"),
        ("--restart", "on-failure:-1"): (125, "lamina: Error response from daemon: maximum retry count cannot be "
                                              "negative.\nSee 'lamina run --help'.\n"),
        ("--rm", "--restart", "always"): (125, "lamina: Conflicting options: --restart and --rm.\n"
                                               "See 'lamina run --help'.\n"),
    }
    for flags, (code, text) in cases.items():
        p = lamina(root, "run", "-d", *flags, "bb:1", "true", check=False)
        assert (p.returncode, p.stderr.decode()) == (code, text), flags
        assert p.stdout == b""


# ----------------------------------------------------------------------------- --init, -t, start --all


@requires_root
def test_init_makes_tini_pid_1(root):
    p = lamina(root, "run", "--rm", "--init", "--network", "none", "bb:1", "ps", "-o", "pid,args")
    lines = [line.split(None, 1) for line in p.stdout.decode().splitlines()[1:]]
    assert ["1", "/sbin/docker-init -- ps -o pid,args"] in lines
    cid = _run_d(root, "--init", "--name", "ini", "bb:1", "sleep", _marker())
    assert _inspect(root, "ini", "{{.Path}} {{json .Args}} {{.HostConfig.Init}}").split(" ", 1)[1] == '["' + \
        _inspect(root, "ini", "{{index .Args 0}}") + '"] true'
    t0 = time.monotonic()
    lamina(root, "stop", "ini")  # tini passes TERM on to sleep, which is not PID 1 now
    assert time.monotonic() - t0 < 5
    assert _status(root, "ini").startswith("Exited (143)")
    lamina(root, "rm", "ini")
    _assert_nothing_left(root, [cid])


@requires_root
def test_detached_tty_output_goes_to_the_log(root):
    cid = _run_d(root, "-t", "--name", "tty1", "bb:1", "sh", "-c", "tty; echo done")
    _wait_for(lambda: _status(root, "tty1").startswith("Exited (0)"), what="the exit")
    log = root / "containers" / cid / f"{cid}-json.log"
    if log.exists():
        assert '"log":"/dev/pts/0\\r\\n"' in log.read_text()
    lamina(root, "rm", "tty1")
    _assert_nothing_left(root, [cid])


@requires_root
def test_start_all_brings_back_what_docker_restarts_at_boot(root):
    """A reboot kills every monitor and container: `start --all` starts `always` and
    `unless-stopped` (not stopped by a user) containers, as dockerd does at its start."""
    a = _run_d(root, "--name", "boot-always", "--restart", "always", "bb:1", "sleep", _marker())
    u = _run_d(root, "--name", "boot-unless", "--restart", "unless-stopped", "bb:1", "sleep", _marker())
    s = _run_d(root, "--name", "boot-stopped", "--restart", "unless-stopped", "bb:1", "sleep", _marker())
    n = _run_d(root, "--name", "boot-no", "bb:1", "sleep", _marker())
    lamina(root, "stop", "-t", "0", "boot-stopped")
    for cid in (a, u, n):  # the reboot
        os.kill(_monitor_pid(root, cid), signal.SIGKILL)
    for name in ("boot-always", "boot-unless", "boot-no"):
        _wait_for(lambda: _status(root, name).startswith("Exited (137)"), what=f"{name} down")
    p = lamina(root, "start", "--all")
    assert sorted(p.stdout.decode().split()) == ["boot-always", "boot-unless"]
    assert _status(root, "boot-always").startswith("Up ")
    assert _status(root, "boot-unless").startswith("Up ")
    assert _status(root, "boot-stopped").startswith("Exited (137)")
    assert _status(root, "boot-no").startswith("Exited (137)")
    lamina(root, "rm", "-f", "boot-always", "boot-unless", "boot-stopped", "boot-no")
    _assert_nothing_left(root, [a, u, s, n])


# ----------------------------------------------------------------------------- many at once


@requires_root
def test_twenty_detached_containers_started_and_removed_leak_nothing(root):
    fds_before = len(os.listdir("/proc/self/fd"))
    names = [f"many{i}" for i in range(20)]
    errors: list[str] = []
    marker = _marker()  # their `sleep` found by its own argument: never another test's or run's

    def start(batch):
        for name in batch:
            p = lamina(root, "run", "-d", "--network", "none", "--name", name, "bb:1", "sleep", marker, check=False)
            if p.returncode != 0:
                errors.append(p.stderr.decode())

    threads = [threading.Thread(target=start, args=(names[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = lamina(root, "ps", "-q", "--no-trunc").stdout.decode().split()
    assert len(ids) >= 20
    assert sum(1 for n in names if _status(root, n).startswith("Up ")) == 20

    def remove(batch):
        p = lamina(root, "rm", "-f", *batch, check=False)
        if p.returncode != 0:
            errors.append(p.stderr.decode())

    threads = [threading.Thread(target=remove, args=(names[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not _pids_with_cmdline("sleep", marker)
    _assert_nothing_left(root, ids)
    assert not [c for c in ids if (root / "containers" / c).exists()]
    db = sqlite3.connect(root / "lamina.db")
    try:
        assert db.execute("SELECT COUNT(*) FROM containers WHERE name LIKE 'many%'").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM container_runs WHERE id NOT IN (SELECT id FROM containers)"
                          ).fetchone()[0] == 0
    finally:
        db.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before


@requires_root
def test_concurrent_starts_run_the_container_once(root):
    marker = _marker()
    cid = lamina(root, "create", "--network", "none", "--name", "conc", "bb:1", "sleep", marker).stdout.decode().strip()
    procs = [subprocess.Popen(LAMINA + ["--root", str(root), "start", "conc"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert all(out == b"conc\n" for out, _ in outs)
    _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the exec of sleep")
    time.sleep(0.3)  # a second run of it would be there by now too
    assert len(_pids_with_cmdline("sleep", marker)) == 1
    assert _status(root, "conc").startswith("Up ")
    lamina(root, "rm", "-f", "conc")
    _assert_nothing_left(root, [cid])


@requires_root
def test_detached_oom_kill_is_recorded(root):
    cid = _run_d(root, "--name", "oomd", "-m", "8m", "bb:1", "sh", "-c", "x=a; while :; do x=$x$x; done")
    _wait_for(lambda: _status(root, "oomd").startswith("Exited (137)"), what="the OOM kill")
    assert _inspect(root, "oomd", "{{.State.OOMKilled}}") == "true"
    lamina(root, "rm", "oomd")
    _assert_nothing_left(root, [cid])


@requires_root
def test_detached_health_shows_in_ps(root):
    good = _run_d(root, "--name", "hgood", "--health-cmd", "true", "--health-interval", "200ms", "bb:1",
                  "sleep", _marker())
    bad = _run_d(root, "--name", "hbad", "--health-cmd", "false", "--health-interval", "200ms",
                 "--health-retries", "1", "bb:1", "sleep", _marker())
    _wait_for(lambda: _status(root, "hgood").endswith(" (healthy)"), what="healthy")
    _wait_for(lambda: _status(root, "hbad").endswith(" (unhealthy)"), what="unhealthy")
    assert _inspect(root, "hgood", "{{.State.Health.Status}}") == "healthy"
    lamina(root, "rm", "-f", "hgood", "hbad")
    _assert_nothing_left(root, [good, bad])


@requires_root
def test_a_probe_orphaned_by_its_runc_does_not_hold_the_container(root, tmp_path):
    """A health probe whose `runc exec` dies before it (killed: a timeout's last resort)
    is an orphan in the container's pid namespace.  Adopted by the monitor (a subreaper
    for the whole run, before), its zombie was reaped by nobody, and the killed init
    waited for it for ever (zap_pid_ns_processes): `rm -f` hung, mounts leaked.  The
    monitor is a subreaper only while runc starts the container: the orphan goes to
    the host's init, which reaps it."""
    marker = _marker()
    rt = runtime_name(root)
    wrapper = tmp_path / f"{rt}-dies-first"  # the runtime by its name, whose `exec` dies before its process
    wrapper.write_text("#!/bin/sh\n"
                       'case " $* " in *" exec "*)\n'
                       f'  {shutil.which(rt)} "$@" & sleep 1; kill -9 $!; exit 0;;\n'
                       "esac\n"
                       f'exec {shutil.which(rt)} "$@"\n')
    wrapper.chmod(0o755)
    p = lamina(root, "--runtime", wrapper, "run", "-d", "--network", "none", "--name", "orphans",
               "--health-cmd", f"sleep {marker}", "--health-interval", "200ms", "bb:1", "sleep", _marker())
    cid = p.stdout.decode().strip()
    monitor = _monitor_pid(root, cid)

    def orphaned_probes():  # probes whose runc is gone: parent neither runc nor the wrapper
        out = []
        for pid in _pids_with_cmdline("sleep", marker):
            try:
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                parent = Path(f"/proc/{ppid}/cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if rt.encode() not in parent:
                out.append(ppid)
        return out

    parents = _wait_for(orphaned_probes, what="a probe whose runc was killed")
    assert monitor not in parents  # not adopted by the monitor
    t0 = time.monotonic()
    lamina(root, "rm", "-f", "orphans", timeout=60)
    assert time.monotonic() - t0 < 30
    _wait_for(lambda: not _pids_with_cmdline("sleep", marker), what="the probes to go with the container")
    _assert_nothing_left(root, [cid])


def test_ps_status_strings_are_dockers():
    """moby's State.String() over records (no container needed)."""
    from lamina.cli.commands.ps import _status
    from lamina.store.containers import ContainerRecord

    now = time.time()

    def rec(state, *, started=None, finished=None, code=None, config=None):
        return ContainerRecord("a" * 64, "n", "sha256:x", "img", now - 3600, config or {}, {}, state, None,
                               code, started, finished, "overlay")

    assert _status(rec("created")) == "Created"
    assert _status(rec("running", started=now - 3)) == "Up 3 seconds"
    assert _status(rec("running", started=now - 90)) == "Up About a minute"
    assert _status(rec("exited", started=now - 200, finished=now - 120, code=0)) == "Exited (0) 2 minutes ago"
    assert _status(rec("restarting", started=now - 10, finished=now - 5, code=1)) == "Restarting (1) 5 seconds ago"


@requires_root
def test_python_api_runs_detached_and_stops(root):
    from lamina.client import Client

    with Client(str(root)) as client:
        ct = client.containers.run("bb:1", ["sh", "-c", "trap 'exit 5' TERM; echo ready; while :; do sleep 0.05; done"],
                                   detach=True, network_mode="none", name="api1")
        assert ct.status == "running" and ct.name == "api1"
        _trap_set(root, "api1")
        ct.stop()
        assert ct.status == "exited"
        assert ct.wait() == {"StatusCode": 5, "Error": None}
        ct.remove()
    _assert_nothing_left(root)


@requires_root
def test_kill9_of_the_monitor_during_the_back_off(root):
    cid = _run_d(root, "--name", "bk9", "--restart", "always", "bb:1", "sh", "-c", "exit 2")
    _wait_for(lambda: int(_inspect(root, "bk9", "{{.RestartCount}}")) >= 4, what="a longer back-off")
    monitor = _monitor_pid(root, cid)
    os.kill(monitor, signal.SIGKILL)
    # mostly in the back-off (Exited (2) stays); in the short run between, the watchdog's 137
    _wait_for(lambda: _status(root, "bk9").startswith(("Exited (2)", "Exited (137)")), what="Exited")
    assert _inspect(root, "bk9", "{{.State.Status}} {{.State.Restarting}}") == "exited false"
    lamina(root, "rm", "bk9")
    _assert_nothing_left(root, [cid])


@requires_root
def test_stop_signal_and_stop_timeout_of_the_container(root):
    cid = _run_d(root, "--name", "sig1", "--stop-signal", "SIGUSR1", "bb:1", "sh", "-c",
                 "trap 'exit 9' USR1; echo ready; while :; do sleep 0.05; done")
    assert _inspect(root, "sig1", "{{json .Config.StopSignal}}") == '"SIGUSR1"'
    _trap_set(root, "sig1")
    lamina(root, "stop", "sig1")
    assert _status(root, "sig1").startswith("Exited (9)")
    cid2 = _run_d(root, "--name", "sig2", "--stop-timeout", "1", "bb:1", "sleep", _marker())
    t0 = time.monotonic()
    lamina(root, "stop", "sig2")  # its own 1 s, not docker's default 10
    assert 1.0 <= time.monotonic() - t0 < 8
    assert _status(root, "sig2").startswith("Exited (137)")
    p = lamina(root, "run", "-d", "--stop-signal", "BOGUS", "bb:1", "true", check=False)
    assert (p.returncode, p.stderr) == (125, b"lamina: Error response from daemon: Invalid signal: BOGUS.\n"
                                             b"See 'lamina run --help'.\n")
    lamina(root, "rm", "sig1", "sig2")
    _assert_nothing_left(root, [cid, cid2])


# docker 20.10's `rename` (recorded on this host): its CLI checks for empty names itself,
# and follows dockerd's refusal with a line of its own; exit 1 either way.
RENAME_RECORDED = {
    ("ren", "ren"): (1, "Error response from daemon: Renaming a container with the same name as its current name\n"
                        "Error: failed to rename container named ren\n"),
    ("nosuch", "x"): (1, "Error response from daemon: No such container: nosuch\n"
                         "Error: failed to rename container named nosuch\n"),
    ("ren", ""): (1, "Error: Neither old nor new names may be empty\n"),
}


@requires_root
def test_rename_as_dockers(root):
    lamina(root, "create", "--name", "ren", "bb:1", "true")
    try:
        for (old, new), (code, err) in RENAME_RECORDED.items():
            p = lamina(root, "rename", old, new, check=False)
            assert (p.returncode, p.stderr.decode()) == (code, err), (old, new)
        p = lamina(root, "rename", "ren", "ren2")
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
        names = lamina(root, "ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert b"ren2" in names and b"ren" not in names
    finally:
        lamina(root, "rm", "-f", "ren", "ren2", check=False)
