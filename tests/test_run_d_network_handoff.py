"""`run -d` on the default bridge: the CLI attaches the network while the container's
monitor boots, for the monitor (lamina/network/handoff.py).  On real runc, netns and
veths, as root: the address is held for the monitor (not the CLI that exits), and a
start that fails before or after the network, a CLI killed at any moment, and a
line the monitor never gets leave no namespace, veth or address row behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import requires_root
from test_services_monitor import LAMINA, _assert_nothing_left, _marker, _pids_with_cmdline, _status, \
    _store_processes, _wait_for, lamina, root  # noqa: F401 (its busybox store fixture)

pytestmark = requires_root


def _rows(root, table: str, cid: str) -> list:
    db = sqlite3.connect(root / "lamina.db", timeout=60)
    try:
        if table == "addresses":
            return db.execute("SELECT owner_pid FROM addresses WHERE container_id=?", (cid,)).fetchall()
        return db.execute("SELECT monitor_pid FROM container_runs WHERE id=?", (cid,)).fetchall()
    finally:
        db.close()


def _netns(cid: str) -> bool:
    return os.path.lexists(f"/run/lamina/netns/{cid}")


def _nothing_of(root, cid: str) -> None:
    assert not _netns(cid), "network namespace left"
    assert not _rows(root, "addresses", cid), "address row left"
    _assert_nothing_left(root, [cid])


def test_the_address_is_held_for_the_monitor_and_released_by_rm(root):
    marker = _marker()
    cid = lamina(root, "run", "-d", "--name", "hand1", "bb:1", "sleep", marker).stdout.decode().strip()
    [(monitor,)] = _rows(root, "runs", cid)
    assert _rows(root, "addresses", cid) == [(monitor,)]  # not the CLI's pid: it has exited
    ip = lamina(root, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "hand1").stdout.decode().strip()
    shown = lamina(root, "exec", "hand1", "sh", "-c", "ifconfig eth0").stdout.decode()
    assert ip and f"inet addr:{ip} " in shown
    assert f"{ip}\t{cid[:12]}" in lamina(root, "exec", "hand1", "cat", "/etc/hosts").stdout.decode()
    lamina(root, "rm", "-f", "hand1")
    assert not _pids_with_cmdline("sleep", marker)
    _nothing_of(root, cid)


def test_failed_starts_before_and_after_the_network_release_it(root):
    # -u: the monitor fails before it takes the CLI's endpoint; a missing command: after
    for args, code in ((["-u", "nosuchuser", "bb:1", "true"], None), (["bb:1", "nosuchcmd"], 127)):
        p = lamina(root, "run", "-d", "--name", "hand2", *args, check=False)
        assert p.returncode != 0 and (code is None or p.returncode == code), p.stderr
        cid = p.stdout.decode().strip()
        assert len(cid) == 64, p.stdout
        _wait_for(lambda: not _rows(root, "addresses", cid) and not _netns(cid), what="the release")
        lamina(root, "rm", "-f", "hand2")
        _nothing_of(root, cid)


@pytest.mark.parametrize("delay", [0.05, 0.12, 0.2, 0.35])
def test_kill9_of_the_cli_leaves_nothing_half_done_on_the_bridge(root, delay):
    marker = _marker()
    name = f"hand9-{delay}"
    front = subprocess.Popen(LAMINA + ["--root", str(root), "run", "-d", "--name", name, "bb:1", "sleep", marker],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    front.send_signal(signal.SIGKILL)
    front.wait(timeout=10)
    # a monitor that got the ID goes on: it starts the container (its own attach if the CLI's
    # line never came) or fails cleanly; one that did not leaves it Created
    status = _wait_for(lambda: _settled(root, name), what="the monitor to settle")
    cid = lamina(root, "inspect", "-f", "{{.Id}}", name, check=False).stdout.decode().strip()
    if status.startswith("Up "):  # the monitor records it (runstate) before it answers: wait for that
        _wait_for(lambda: _rows(root, "runs", cid) and _rows(root, "runs", cid)[0][0], what="the monitor's pid")
        [(monitor,)] = _rows(root, "runs", cid)
        assert _rows(root, "addresses", cid) == [(monitor,)]
    lamina(root, "rm", "-f", name, check=False)
    assert not _pids_with_cmdline("sleep", marker)
    if cid:
        _nothing_of(root, cid)
    else:
        _assert_nothing_left(root)


def _settled(root, name: str) -> str | None:
    """Its status once no monitor is still on its way to starting it (" " for no container)."""
    status = _status(root, name)
    if status.startswith(("Up ", "Exited ")) or (status in ("", "Created") and not _store_processes(root)):
        return status or " "
    return None


def test_a_line_the_monitor_never_gets_releases_what_the_cli_made(root):
    from lamina.network import handoff
    from lamina.system import System

    cid = lamina(root, "create", "--name", "hand3", "bb:1", "true").stdout.decode().strip()
    system = System(str(root))
    try:
        rec = system.containers.get(cid)
        assert handoff.eligible(system, rec)
        line = handoff.attach(system, rec, os.getpid())
        assert line.startswith(f"/run/lamina/netns/{cid} ".encode()) and _netns(cid)
        for sent in (b"", b"garbage\n"):  # the CLI died while attaching, or a line cut short
            if not _netns(cid):
                handoff.attach(system, rec, os.getpid())
            r, w = os.pipe()
            os.write(w, sent)
            os.close(w)
            assert handoff.Pending(r).take(system, cid) is None
            assert not _netns(cid) and not _rows(root, "addresses", cid)
        r, w = os.pipe()  # a line that came: the endpoint, nothing released
        os.write(w, handoff.attach(system, rec, os.getpid()))
        os.close(w)
        ep = handoff.Pending(r).take(system, cid)
        assert ep is not None and line.split()[0].decode() == ep.netns and _netns(cid)
        r, w = os.pipe()  # not started here: dropped
        os.write(w, b"\n")
        os.close(w)
        handoff.Pending(r).drop(system, cid)
        from lamina.network import release

        release(system, cid)
        assert not _netns(cid) and not _rows(root, "addresses", cid)
    finally:
        system.close()
    lamina(root, "rm", "-f", "hand3")
    _nothing_of(root, cid)
