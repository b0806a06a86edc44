"""A detached container's monitor while the container runs (lamina/handover.py): the lean
relay (runtime/relay.py) in place of the whole engine, a shell as its watchdog, and
the monitor exec'd back to clean up once the container exits.

Real runc, overlay and (for the default network) the bridge, through the CLI.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import requires_root
from test_services_monitor import (_assert_nothing_left, _inspect, _monitor_pid, _status, _wait_for,  # noqa: F401
                                   lamina, root)

_BUDGET_KB = 10 * 1024  # issue 12: a monitor's resident memory, <= 10 MB per container


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        out += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return out


def _lean_monitor(root, cid: str) -> int:
    """The monitor's pid once it is the lean relay (the exec follows the CLI's return)."""
    def lean():
        pid = _monitor_pid(root, cid)
        try:
            return pid if pid and "lamina.runtime.relay" in _cmdline(pid) else None
        except OSError:
            return None
    return _wait_for(lean, what="the monitor's hand-over to its relay")


@requires_root
def test_a_running_containers_monitor_is_the_lean_relay_and_cleans_up_after_it(root):
    script = "echo first; sleep 1; echo second; printf 'no newline'; exit 3"
    cid = lamina(root, "run", "-d", "--name", "lean1", "bb:1", "sh", "-c", script).stdout.decode().strip()
    monitor = _lean_monitor(root, cid)
    assert _rss_kb(monitor) <= _BUDGET_KB, _rss_kb(monitor)
    kids = {_cmdline(p).split(" ")[0] for p in _children(monitor)}
    assert "/bin/sh" in kids  # the watchdog waits as a shell (the container's init is the other child)
    assert _status(root, "lean1").startswith("Up ")
    _wait_for(lambda: _status(root, "lean1").startswith("Exited (3) "), what="the exit")
    # the same monitor (its pid across both execs) recorded it, cleaned up and is gone
    _wait_for(lambda: not os.path.exists(f"/proc/{monitor}"), what="the monitor to end")
    assert _inspect(root, "lean1", "{{.State.ExitCode}} {{.State.Status}}") == "3 exited"
    assert lamina(root, "logs", "lean1").stdout == b"first\nsecond\nno newline"
    lamina(root, "rm", "lean1")
    _assert_nothing_left(root, [cid])


@requires_root
def test_kill9_of_the_lean_relay_leaves_nothing_running(root):
    cid = lamina(root, "run", "-d", "--network", "none", "--name", "lean2", "bb:1",
                 "sleep", "4242").stdout.decode().strip()
    monitor = _lean_monitor(root, cid)
    os.kill(monitor, signal.SIGKILL)
    _wait_for(lambda: _status(root, "lean2").startswith("Exited (137) "), what="the watchdog's reaping")
    lamina(root, "rm", "lean2")
    _assert_nothing_left(root, [cid])


@requires_root
def test_restarts_go_through_the_lean_relay_each_time(root):
    cid = lamina(root, "run", "-d", "--network", "none", "--name", "lean3", "--restart", "on-failure:1", "bb:1",
                 "sh", "-c", "sleep 0.5; exit 5").stdout.decode().strip()
    first = _lean_monitor(root, cid)
    _wait_for(lambda: _inspect(root, "lean3", "{{.RestartCount}}") == "1", what="the restart")
    assert _lean_monitor(root, cid) == first  # the same monitor, lean again for the second run
    _wait_for(lambda: _status(root, "lean3").startswith("Exited (5) "), what="the last exit")
    time.sleep(0.2)
    assert _inspect(root, "lean3", "{{.RestartCount}}") == "1"
    lamina(root, "rm", "lean3")
    _assert_nothing_left(root, [cid])
