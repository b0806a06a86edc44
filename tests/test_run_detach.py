"""Detaching from a foreground `run -it` (issue 12), driven through a real pty.

docker 20.10.24's behaviour, recorded on the development machine with `docker run -it`
of an imported busybox image: the detach keys (ctrl-p ctrl-q, or --detach-keys) end the
client silently with exit 0, the container keeps running and `docker attach` reaches it
again; with --rm it is removed once it later exits (attach then exits with its code).
Without detaching, `run -it` exits with the container's code, --rm or not.

Unlike docker's, a foreground run that was never detached ends with its CLI (lamina's
promise, README): the CLI killed with SIGKILL, its monitor kills the container
(Exited (137)) and removes it with --rm (lamina/tether.py).  Once detached it is a
service: an attach client killed leaves it running, `stop` stops it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import requires_root
from test_attach_cli import Pty, _status, lamina, store  # noqa: F401 (its busybox store fixture)
from test_services_monitor import _monitor_pid as _monitor_pid_of, _wait_for

pytestmark = requires_root


def _monitor_pid(root, name) -> int:
    return _monitor_pid_of(root, lamina(root, "inspect", "-f", "{{.Id}}", name).stdout.strip())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_detach_keys_leave_the_container_running_and_attachable(store):
    client = Pty(store, "run", "-it", "--name", "fg", "busybox", "sh")
    client.send(b"echo hel''lo\n")
    client.read_until(b"hello")
    client.send(b"\x10\x11")  # ctrl-p ctrl-q
    assert client.wait() == 0
    assert b"read escape sequence" not in client.out  # docker's run says nothing
    assert _status(store, "fg") == ["running", "0"]
    monitor = _monitor_pid(store, "fg")
    again = Pty(store, "attach", "fg")
    again.send(b"echo ag''ain; exit 4\n")
    again.read_until(b"again")
    assert again.wait() == 4
    assert _status(store, "fg") == ["exited", "4"]
    lamina(store, "rm", "fg")
    assert _gone(monitor) or _wait_gone(monitor)
    check = lamina(store, "system", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def _wait_gone(pid: int, timeout: float = 20) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_custom_keys_with_rm_remove_it_at_its_later_exit(store):
    client = Pty(store, "run", "-it", "--rm", "--detach-keys", "ctrl-x,y", "--name", "gone", "busybox", "sh")
    client.send(b"echo fi''rst\n")
    client.read_until(b"first")
    client.send(b"\x18y")
    assert client.wait() == 0
    assert _status(store, "gone") == ["running", "0"]
    again = Pty(store, "attach", "gone")
    again.send(b"exit 6\n")
    assert again.wait() == 6  # its code, read before --rm removed it
    assert lamina(store, "ps", "-aq").stdout.strip() == ""


def test_without_detaching_the_exit_code_and_output_come_back(store):
    client = Pty(store, "run", "-it", "--rm", "busybox", "sh", "-c", "echo sh''ort; exit 7")
    assert client.wait() == 7
    assert b"short" in client.out  # written before the client could attach: kept for it
    client = Pty(store, "run", "-it", "--name", "kept", "busybox", "sh", "-c", "exit 3")
    assert client.wait() == 3
    assert _status(store, "kept") == ["exited", "3"]


def _kill9(client: Pty) -> None:
    os.kill(client.pid, signal.SIGKILL)
    os.waitpid(client.pid, 0)
    os.close(client.fd)


def _mounted_under(path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def test_kill9_of_the_cli_kills_the_container_and_rm_removes_it(store):
    client = Pty(store, "run", "-it", "--rm", "--name", "k9", "--network", "none", "busybox", "sh")
    client.send(b"echo u''p\n")
    client.read_until(b"up")
    monitor = _monitor_pid(store, "k9")
    _kill9(client)
    _wait_for(lambda: lamina(store, "ps", "-aq").stdout.strip() == "", what="the --rm container to be removed",
              timeout=30)
    assert _wait_gone(monitor), "its monitor still runs"
    assert not _mounted_under(store / "containers")
    check = lamina(store, "system", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_after_a_detach_it_is_a_service(store):
    client = Pty(store, "run", "-it", "--name", "svc", "--network", "none", "busybox", "sh")
    client.send(b"echo on''e\n")
    client.read_until(b"one")
    client.send(b"\x10\x11")
    assert client.wait() == 0
    assert lamina(store, "ps", "--format", "{{.Names}} {{.Status}}").stdout.startswith("svc Up")
    monitor = _monitor_pid(store, "svc")
    again = Pty(store, "attach", "svc")  # an attach client is not tied to it: killed, the container runs on
    again.send(b"echo tw''o\n")
    again.read_until(b"two")
    _kill9(again)
    third = Pty(store, "attach", "svc")
    third.send(b"echo thr''ee\n")
    third.read_until(b"three")
    third.send(b"\x10\x11")
    assert third.wait() == 1  # attach's own detach: "read escape sequence", exit 1
    assert _status(store, "svc") == ["running", "0"]
    assert lamina(store, "stop", "-t", "1", "svc").stdout.strip() == "svc"  # sh as PID 1 ignores TERM
    assert _status(store, "svc") == ["exited", "137"]
    assert _wait_gone(monitor), "its monitor still runs"


# --------------------------------------------------------------- a foreground run with a restart policy
# docker 20.10.24, recorded on the development machine: `docker run --restart on-failure:2 IMAGE sh -c
# 'echo x; exit 3'` prints x and exits 3 at the first exit; dockerd restarts it twice (RestartCount 2,
# Exited (3), three x in its log).


def _restart_count(root, name) -> int:
    return int(lamina(root, "inspect", "-f", "{{.RestartCount}}", name).stdout)


def test_foreground_restart_policy_ends_at_the_first_exit_and_the_monitor_restarts(store):
    p = lamina(store, "run", "--restart", "on-failure:2", "--name", "again", "--network", "none", "busybox",
               "sh", "-c", "echo ou''t; echo er''r >&2; exit 3", check=False)
    assert p.returncode == 3, p.stderr
    assert p.stdout.splitlines()[:1] == ["out"] and set(p.stdout.splitlines()) == {"out"}  # its own streams
    assert "err" in p.stderr.splitlines()
    _wait_for(lambda: _restart_count(store, "again") == 2 and _status(store, "again") == ["exited", "3"],
              what="the policy's two restarts", timeout=30)
    assert lamina(store, "logs", "again").stdout.splitlines() == ["out"] * 3


def test_foreground_restart_policy_with_a_terminal(store):
    client = Pty(store, "run", "-it", "--restart", "on-failure:1", "--name", "tty", "--network", "none", "busybox",
                 "sh", "-c", "echo t''ty; exit 4")
    assert client.wait() == 4
    assert b"tty" in client.out
    _wait_for(lambda: _restart_count(store, "tty") == 1 and _status(store, "tty") == ["exited", "4"],
              what="the policy's restart", timeout=30)


@pytest.mark.parametrize("tty", [False, True])
def test_kill9_of_a_foreground_restart_cli_stops_it_for_good(store, tty):
    flags = ["-it"] if tty else []
    client = Pty(store, "run", *flags, "--restart", "always", "--name", "k9r", "--network", "none", "busybox",
                 "sh", "-c", "echo u''p; exec sleep 1000")
    client.read_until(b"up")
    monitor = _monitor_pid(store, "k9r")
    _kill9(client)
    _wait_for(lambda: _status(store, "k9r") == ["exited", "137"], what="Exited (137)", timeout=30)
    assert _wait_gone(monitor), "its monitor still runs"  # no restart: a killed CLI is a user's kill
    assert _restart_count(store, "k9r") == 0
    assert not _mounted_under(store / "containers")
