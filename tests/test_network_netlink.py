"""network/netlink.py (rtnetlink from this process) and network/restore.py (iptables-restore
waited for until its commit), against the real kernel.

Each test makes its own namespace (a file under its tmp_path), bridge, veths and
iptables chain, sends no traffic anywhere, and removes all of it, checking that
nothing of it is left.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import time

import pytest

from conftest import requires_root

from lamina.errors import RuntimeFailure
from lamina.network import netlink, netns, restore
from lamina.network.addresses import Address, Subnet

pytestmark = requires_root


def _names() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _inside(path, *argv: str):
    """`ip -j ARGS` run in the namespace at `path` (nsenter: the test's own view, not netlink.py's)."""
    out = subprocess.run(["nsenter", f"--net={path}", "ip", "-j", *argv], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


@pytest.fixture
def space(tmp_path):
    """(namespace path, netlink socket inside it, a test bridge's name and ifindex), all
    removed afterwards; the names are the test process's, so parallel runs do not meet."""
    tag = f"{os.getpid() % 100000:05d}"
    bridge = f"lmtb{tag}"
    path = str(tmp_path / "ns")
    before = _names()
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    inside = None
    try:
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        inside = netns.create(path, then=netlink.Socket)
        with open(f"/sys/class/net/{bridge}/ifindex") as f:
            yield path, inside, bridge, int(f.read()), tag
    finally:
        if inside is not None:
            inside.close()
        netns.remove(path)
        subprocess.run(["ip", "link", "del", bridge], check=False)
    # the namespace's end, and with it the veth, goes asynchronously; only this test's own
    # names count (dockerd or another run may add interfaces of theirs meanwhile)
    def left() -> set[str]:
        return {n for n in _names() - before if tag in n}

    deadline = time.monotonic() + 10
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left()


@pytest.mark.parametrize("on_thread", [False, True], ids=["root", "rootless"])
def test_create_calls_then_in_the_new_namespace_and_the_caller_stays_home(tmp_path, monkeypatch, on_thread):
    monkeypatch.setattr("lamina.rootless", lambda: on_thread)
    home = os.stat("/proc/thread-self/ns/net").st_ino
    path = str(tmp_path / "ns")
    try:
        seen = netns.create(path, then=lambda: os.stat("/proc/thread-self/ns/net").st_ino)
        assert seen == os.stat(path).st_ino != home  # the bind mount is the namespace `then` ran in
        assert os.stat("/proc/thread-self/ns/net").st_ino == home
        def boom():
            raise OSError("boom")

        with pytest.raises(RuntimeFailure, match=r"network namespace .*/ns2: boom"):  # nothing stays
            netns.create(path + "2", then=boom)
        assert not os.path.exists(path + "2")
        assert os.stat("/proc/thread-self/ns/net").st_ino == home
    finally:
        netns.remove(path)


def test_a_veth_pair_into_a_namespace_configured_as_ip_would(space):
    path, inside, bridge, bridge_index, tag = space
    host_end = f"lmtv{tag}"
    subnet = Subnet("10.250.7.0/24")
    address, gateway = Address("10.250.7.9"), Address("10.250.7.1")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netlink.Socket() as host:
            host.add_veth(host_end, "eth0", peer_netns_fd=fd, peer_mac="02:42:0a:fa:07:09", master=bridge_index)
    finally:
        os.close(fd)
    index = inside.index("eth0")
    inside.add_address(index, address, subnet.prefixlen, subnet.broadcast_address)
    inside.set_up(index)
    inside.set_up(1)
    inside.add_default_route(gateway)

    link = json.loads(subprocess.run(["ip", "-j", "link", "show", host_end], capture_output=True, text=True,
                                     check=True).stdout)[0]
    assert link["master"] == bridge and "UP" in link["flags"]
    eth0 = next(i for i in _inside(path, "addr", "show") if i["ifname"] == "eth0")
    assert eth0["address"] == "02:42:0a:fa:07:09" and "UP" in eth0["flags"]
    assert [(a["local"], a["prefixlen"], a.get("broadcast")) for a in eth0["addr_info"] if a["family"] == "inet"] \
        == [("10.250.7.9", 24, "10.250.7.255")]
    lo = next(i for i in _inside(path, "link", "show") if i["ifname"] == "lo")
    assert "UP" in lo["flags"]
    routes = _inside(path, "route", "show")
    assert {"dst": "default", "gateway": "10.250.7.1", "dev": "eth0"}.items() <= routes[0].items()


def test_errors_are_the_kernels_and_a_taken_name_is_file_exists(space):
    path, inside, _, _, tag = space
    host_end = f"lmtv{tag}"
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netlink.Socket() as host:
            host.add_veth(host_end, "eth0", peer_netns_fd=fd)
            with pytest.raises(FileExistsError):  # the host end's name: another store's address
                host.add_veth(host_end, "eth1", peer_netns_fd=fd)
            with pytest.raises(FileExistsError):  # the namespace's end
                host.add_veth(f"lmtw{tag}", "eth0", peer_netns_fd=fd)
            assert f"lmtw{tag}" not in _names()
            with pytest.raises(OSError) as e:
                host.index("lmnosuchlink0")
            assert e.value.errno == errno.ENODEV
            host.delete_link(host.index(host_end))  # takes eth0 along
            assert host_end not in _names()
    finally:
        os.close(fd)
    assert [i["ifname"] for i in _inside(path, "link", "show")] == ["lo"]
    with pytest.raises(OSError) as e:
        inside.add_address(4242, Address("10.250.7.9"), 24)
    assert e.value.errno == errno.ENODEV


# ---------------------------------------------------------------- restore.py

@pytest.fixture
def chain():
    """An iptables chain of the test's own in the filter table, jumped to from nowhere."""
    name = f"LAMINA-TEST-{os.getpid()}"
    subprocess.run(["iptables", "-w", "-N", name], check=True, capture_output=True)
    yield name
    subprocess.run(["iptables", "-w", "-F", name], check=False, capture_output=True)
    subprocess.run(["iptables", "-w", "-X", name], check=True, capture_output=True)


def _rules(chain: str, table: str = "filter") -> list[str]:
    out = subprocess.run(["iptables", "-w", "-t", table, "-S", chain], capture_output=True, text=True,
                         check=True).stdout
    return out.splitlines()[1:]


def test_restore_returns_with_the_rules_committed_and_reports_a_failure(chain):
    argv = [shutil.which("iptables-restore"), "--noflush"]
    rule = "-s 192.0.2.7/32 -m comment --comment lamina-test -j RETURN"
    for _ in range(3):  # added, then deleted at once: the commit is in place when run() returns
        assert restore.run(argv, f"*filter\n-A {chain} {rule}\nCOMMIT\n") == (0, "")
        assert _rules(chain) == [f"-A {chain} {rule}"]
        assert restore.run(argv, f"*filter\n-D {chain} {rule}\nCOMMIT\n") == (0, "")
        assert _rules(chain) == []
    nat = f"{chain}-NAT"  # two tables: run() returns once both are committed
    subprocess.run(["iptables", "-w", "-t", "nat", "-N", nat], check=True, capture_output=True)
    try:
        two = f"*filter\n-A {chain} {rule}\nCOMMIT\n*nat\n-A {nat} {rule}\nCOMMIT\n"
        assert restore.run(argv, two) == (0, "")
        assert _rules(chain) == [f"-A {chain} {rule}"] and _rules(nat, "nat") == [f"-A {nat} {rule}"]
        assert restore.run(argv, two.replace("-A ", "-D ")) == (0, "")
        assert _rules(chain) == [] and _rules(nat, "nat") == []
    finally:
        subprocess.run(["iptables", "-w", "-t", "nat", "-F", nat], check=False, capture_output=True)
        subprocess.run(["iptables", "-w", "-t", "nat", "-X", nat], check=True, capture_output=True)
    code, out = restore.run(argv, f"*filter\n-D {chain} {rule}\nCOMMIT\n")  # no such rule: nothing committed
    assert code != 0 and "line 2 failed" in out


def test_only_the_childs_own_generation_counts():
    def newgen(pid: int) -> bytes:
        attrs = struct.pack("=HHI", 8, 1, 0) + struct.pack("=HH", 8, 2) + struct.pack(">I", pid)
        return struct.pack("=IHHII", 16 + 4 + len(attrs), restore.NEWGEN, 0, 0, 0) + bytes(4) + attrs

    rule = struct.pack("=IHHII", 20, (10 << 8) | 6, 0, 0, 0) + bytes(4)  # a NEWRULE before it
    assert restore._announces(rule + newgen(4242), 4242) == 1
    assert restore._announces(newgen(4242) + rule + newgen(4242), 4242) == 2  # two tables, two commits
    assert restore._announces(rule + newgen(4243), 4242) == 0
    assert restore._announces(b"\0" * 8, 4242) == 0
