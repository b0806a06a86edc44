"""Issue 8, high 3: no container and no build step shares the host's network
namespace unless the user asked for `--network host`.

The attacks (CVE-2020-15257's class): a container connects to the host's
abstract unix sockets, and with CAP_NET_RAW captures host loopback traffic
through an AF_PACKET socket.  Each test runs the same probe with `--network
host` as its control, so it fails where the default is still the host's
namespace.  The host's python is bind-mounted read-only into the busybox image
to be the probe.  Traffic goes only to loopback and to lamina's own bridge and
namespaces: never to an outside address.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import requires_root
from test_cli_core import LAMINA, lamina, out

# The host's python, read-only, inside the busybox image (Debian's /lib links into /usr),
# started through the image's sh (so the probe does not depend on a command lookup
# that sees bind mounts).
PYTHON = ("-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro")
RUN_PY = ("bb:1", "sh", "-c", 'exec /usr/bin/python3 -c "$1"', "sh")


@pytest.fixture
def root(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "bb:1")
    yield root
    cleanup(root)


def cleanup(root) -> None:
    """A failed test must not leave containers running: stop and remove them all."""
    ids = out(lamina(root, "ps", "-aq", "--no-trunc", check=False)).split()
    if ids:
        lamina(root, "rm", "-f", *ids, check=False)


def host_netns() -> str:
    return os.readlink("/proc/self/ns/net")


def py(root, network: str | None, code: str, *extra: str) -> subprocess.CompletedProcess:
    flags = ("--network", network) if network else ()
    return lamina(root, "run", "--rm", *flags, *PYTHON, *extra, *RUN_PY, code)


def assert_check_ok(root) -> None:
    p = lamina(root, "system", "check", check=False)
    assert p.returncode == 0, out(p) + p.stderr.decode()


def rows(root) -> list[tuple]:
    with sqlite3.connect(root / "lamina.db") as db:
        return db.execute("SELECT network, address, container_id FROM addresses").fetchall()


def veth_of(address: str) -> str:
    return "lm" + ipaddress.ip_address(address).packed.hex()


def wait_gone(path: str, timeout: float = 5.0) -> bool:
    """Namespace destruction (and the veth with it) is the kernel's, asynchronous."""
    end = time.monotonic() + timeout
    while os.path.lexists(path):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def wait_running(root, name: str, timeout: float = 30.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p = lamina(root, "inspect", name, check=False)
        if p.returncode == 0:
            info = json.loads(out(p))[0]
            if info["State"]["Running"] and info["NetworkSettings"]["IPAddress"]:
                return info
        time.sleep(0.1)
    raise AssertionError(f"container {name} did not start")


def background(root, *args) -> subprocess.Popen:
    return subprocess.Popen(LAMINA + ["--root", str(root), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def assert_released(root, info: dict) -> None:
    """No address row, no namespace file or mount, no veth left for a container."""
    address, netns = info["NetworkSettings"]["IPAddress"], info["NetworkSettings"]["SandboxKey"]
    assert not [r for r in rows(root) if r[2] == info["Id"]]
    assert wait_gone(netns), f"{netns} left behind"
    assert wait_gone(f"/sys/class/net/{veth_of(address)}"), f"veth of {address} left behind"
    with open("/proc/self/mountinfo") as f:
        assert netns not in f.read()


# ----------------------------------------------------------------- no root needed


def test_resolv_conf_drops_loopback_nameservers_like_docker():
    from lamina.network.resolvconf import for_namespace

    text = "# comment\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\nsearch example.org\n" \
           "nameserver fe80::1%eth0\noptions edns0\n"
    assert for_namespace(text) == "# comment\nnameserver 10.1.2.3\nsearch example.org\noptions edns0\n"
    # Nothing usable left: docker's defaults.
    assert for_namespace("nameserver 127.0.0.1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_spec_joins_a_namespace_by_path_with_dockers_sysctls():
    from lamina.runtime.spec import RunSpec, build_spec

    config = build_spec(RunSpec(args=("sh",), rootfs="/r", network="/run/lamina/netns/abc"))
    assert {"type": "network", "path": "/run/lamina/netns/abc"} in config["linux"]["namespaces"]
    assert config["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"


def test_veth_names_and_macs_follow_the_address():
    from lamina.network.ipam import mac_for, veth_name

    address = ipaddress.ip_address("10.47.0.2")
    assert veth_name(address) == "lm0a2f0002" and len(veth_name(ipaddress.ip_address("255.255.255.255"))) <= 15
    assert mac_for(address) == "02:42:0a:2f:00:02"  # docker's 02:42 + address scheme


# ------------------------------------------------------------------ the attacks


@requires_root
def test_default_container_is_not_in_the_hosts_network_namespace(root):
    default = out(lamina(root, "run", "--rm", "bb:1", "readlink", "/proc/self/ns/net")).strip()
    host = out(lamina(root, "run", "--rm", "--network", "host", "bb:1", "readlink", "/proc/self/ns/net")).strip()
    assert host == host_netns()  # the control: asked for, the host's namespace
    assert default.startswith("net:[") and default != host_netns()
    rec = json.loads(out(lamina(root, "inspect", out(lamina(root, "create", "bb:1", "true")).strip())))[0]
    assert rec["HostConfig"]["NetworkMode"] == "default"  # recorded as docker does
    assert_check_ok(root)


@requires_root
def test_host_abstract_unix_socket_is_out_of_reach(root):
    name = f"lamina-attack-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(8)
    probe = ("import socket\ns = socket.socket(socket.AF_UNIX)\n"
             f"try:\n    s.connect('\\0{name}')\n    print('CONNECTED')\n"
             "except OSError as e:\n    print('REFUSED', e.errno)\n")
    try:
        assert out(py(root, "host", probe)).strip() == "CONNECTED"  # the control
        assert out(py(root, None, probe)).strip().startswith("REFUSED")
        assert out(py(root, "bridge", probe)).strip().startswith("REFUSED")
    finally:
        server.close()
    assert_check_ok(root)


CAPTURE = """
import socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL, every interface
s.settimeout(0.1)
print('ready', flush=True)
seen, end = 0, time.time() + 5.0
while time.time() < end and not seen:  # one is enough (the control); none in 5 s: isolated
    try:
        data = s.recv(65535)
    except socket.timeout:
        continue
    seen += MARKER in data
print('seen', seen, flush=True)
"""


def capture_loopback(root, network: str | None) -> int:
    """Packets carrying a marker sent on the host's loopback that a container captured."""
    marker = uuid.uuid4().hex.encode()
    flags = ("--network", network) if network else ()
    code = CAPTURE.replace("MARKER", repr(marker))
    proc = background(root, "run", "--rm", *flags, *PYTHON, *RUN_PY, code)
    try:
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:  # all through its window, however late
            sender.sendto(marker, ("127.0.0.1", 9))  # loopback only
            time.sleep(0.02)
        sender.close()
        last, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    return int(last.split()[-1])


@requires_root
def test_af_packet_capture_sees_no_host_loopback_traffic(root):
    assert capture_loopback(root, "host") > 0  # the control: CAP_NET_RAW is in docker's default set
    assert capture_loopback(root, None) == 0
    assert_check_ok(root)


@requires_root
def test_build_run_step_is_not_in_the_hosts_network_namespace(root, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM bb:1\nRUN readlink /proc/self/ns/net && cat /etc/resolv.conf\n")
    found = {}
    for network in ("host", "default"):
        log = out(lamina(root, "build", "--no-cache", "--network", network, "-t", f"ns:{network}", str(ctx)))
        found[network] = re.findall(r"net:\[\d+\]", log)
        assert len(found[network]) == 1, log
        assert "nameserver 127." not in log if network == "default" else True
    assert found["host"][0] == host_netns()  # the control
    assert found["default"][0] != host_netns()
    assert not rows(root)
    assert_check_ok(root)


# ---------------------------------------------------------- the bridge works


@pytest.fixture
def forward_drop():
    """dockerd's FORWARD policy (DROP) in force for the test, as on a docker host."""
    policy = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True,
                            check=True).stdout.splitlines()[0].split()[-1]
    subprocess.run(["iptables", "-w", "-P", "FORWARD", "DROP"], check=True)
    yield
    subprocess.run(["iptables", "-w", "-P", "FORWARD", policy], check=True)


def others_rules() -> list[str]:
    lines = []
    for table in ("filter", "nat"):
        p = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, check=True)
        lines += [f"{table} {line}" for line in p.stdout.splitlines() if "LAMINA" not in line]
    return lines


@requires_root
def test_containers_reach_each_other_and_the_host_through_our_own_chains(root, forward_drop):
    before = others_rules()
    listener = background(root, "run", "--rm", "--name", "srv", "bb:1", "nc", "-l", "-p", "7777")
    try:
        info = wait_running(root, "srv")
        settings = info["NetworkSettings"]
        address, gateway = settings["IPAddress"], settings["Gateway"]
        net = ipaddress.ip_network(f"{address}/{settings['IPPrefixLen']}", strict=False)
        assert ipaddress.ip_address(gateway) in net and settings["MacAddress"].startswith("02:42:")
        # container -> container, across the bridge (through FORWARD: bridge netfilter is on)
        for _ in range(50):
            # stdin a file, not a pipe: busybox nc sends it before it reads the socket (the listener,
            # its stdin at EOF, half-closes at once; a client whose piped echo comes later under load
            # would see that EOF first and leave without sending)
            p = lamina(root, "run", "--rm", "bb:1", "sh", "-c",
                       f"echo over-the-bridge > /tmp/m && nc {address} 7777 < /tmp/m", check=False)
            if p.returncode == 0:
                break
            time.sleep(0.1)
        got, err = listener.communicate(timeout=30)
        assert b"over-the-bridge" in got, (got, err, p.returncode, p.stdout, p.stderr)
    finally:
        listener.kill()
        listener.wait()
    # container -> the host's address on the bridge
    server = socket.socket()
    server.bind((gateway, 0))
    server.listen(1)
    received = []
    accepter = threading.Thread(target=lambda: received.append(server.accept()[0].recv(100)))
    accepter.start()
    lamina(root, "run", "--rm", "bb:1", "sh", "-c", f"echo to-the-host | nc {gateway} {server.getsockname()[1]}")
    accepter.join(10)
    server.close()
    assert received and b"to-the-host" in received[0]
    # our rules exist, docker's policy is still DROP and nobody else's rule changed
    forward = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert "-P FORWARD DROP" in forward and "-j LAMINA-FORWARD" in forward
    nat = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert f"-A LAMINA-POSTROUTING -s {net} ! -o lamina0 -j MASQUERADE" in nat
    assert "-A POSTROUTING -j LAMINA-POSTROUTING" in nat
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"
    assert others_rules() == before
    assert_check_ok(root)


@requires_root
def test_etc_files_are_dockers_for_a_bridge_container(root):
    text = out(lamina(root, "run", "--rm", "bb:1", "sh", "-c",
                      "hostname; cat /etc/hostname; tail -n1 /etc/hosts; ip -4 -o addr show eth0; "
                      "cat /etc/resolv.conf"))
    lines = text.splitlines()
    short = lines[0]
    assert re.fullmatch(r"[0-9a-f]{12}", short) and lines[1] == short
    address = lines[3].split()[3].split("/")[0]
    assert lines[2] == f"{address}\t{short}"
    assert not [ln for ln in lines[4:] if re.match(r"nameserver\s+(127\.|::1)", ln)]
    assert [ln for ln in lines[4:] if ln.startswith("nameserver")]


@requires_root
def test_network_values_like_docker(root, tmp_path):
    p = lamina(root, "run", "--rm", "--network", "nosuchnet", "bb:1", "true", check=False)
    assert p.returncode == 125 and "network nosuchnet not found" in p.stderr.decode()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM bb:1\nRUN true\n")
    p = lamina(root, "build", "--network", "nosuchnet", str(ctx), check=False)
    assert p.returncode == 1 and "network nosuchnet not found" in p.stderr.decode()
    for flag, recorded in (("bridge", "bridge"), ("none", "none"), ("host", "host")):
        cid = out(lamina(root, "create", "--network", flag, "bb:1", "true")).strip()
        info = json.loads(out(lamina(root, "inspect", cid)))[0]
        assert info["HostConfig"]["NetworkMode"] == recorded
        assert list(info["NetworkSettings"]["Networks"]) == [recorded if flag != "bridge" else "bridge"]
    none = out(lamina(root, "run", "--rm", "--network", "none", "bb:1", "cat", "/proc/net/dev"))
    assert "lo:" in none and "eth0" not in none
    assert not rows(root)
    assert_check_ok(root)


# ------------------------------------------------------------------ no leaks


@requires_root
def test_nothing_leaks_after_run_and_rm_f(root):
    text = out(lamina(root, "run", "--rm", "bb:1", "sh", "-c", "hostname; ip -4 -o addr show eth0"))
    short, addr_line = text.splitlines()
    address = addr_line.split()[3].split("/")[0]
    assert not os.path.exists(f"/sys/class/net/{veth_of(address)}") or wait_gone(f"/sys/class/net/{veth_of(address)}")
    assert not [n for n in os.listdir("/run/lamina/netns") if n.startswith(short)]
    assert not rows(root)

    proc = background(root, "run", "--name", "long", "bb:1", "sleep", "60")
    info = wait_running(root, "long")
    assert os.path.exists(f"/sys/class/net/{veth_of(info['NetworkSettings']['IPAddress'])}")
    assert [r[2] for r in rows(root)] == [info["Id"]]
    lamina(root, "rm", "-f", "long")
    proc.wait(timeout=30)
    assert_released(root, info)
    assert_check_ok(root)


@requires_root
def test_nothing_leaks_after_kill_9_of_the_front(root):
    proc = background(root, "run", "--name", "victim", "bb:1", "sleep", "60")
    info = wait_running(root, "victim")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The next container start releases what the killed front held (its row names a dead pid).
    lamina(root, "run", "--rm", "bb:1", "true")
    assert not [r for r in rows(root) if r[2] == info["Id"]]
    assert wait_gone(info["NetworkSettings"]["SandboxKey"])
    lamina(root, "rm", "-f", "victim")
    assert_released(root, info)
    assert not rows(root)
    assert_check_ok(root)


@requires_root
def test_addresses_are_never_shared(tmp_path, busybox_tar):
    """Concurrent allocations on one store, and two stores on the one bridge."""
    from lamina.network import bridge, ipam
    from lamina.system import System

    store = tmp_path / "one"
    System(str(store)).close()
    subnet = bridge.ensure().subnet
    script = ("import sys\nfrom lamina.system import System\nfrom lamina.network import ipam\n"
              "import ipaddress\ns = System(sys.argv[1])\n"
              "for i in range(10):\n"
              "    print(ipam.allocate(s.db, 'bridge', sys.argv[2] + str(i), ipaddress.ip_network(sys.argv[3]),"
              " {ipaddress.ip_address(sys.argv[4])}))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(store), f"c{n}-", str(subnet),
                               str(next(subnet.hosts()))], stdout=subprocess.PIPE) for n in range(4)]
    got = [line for p in procs for line in p.communicate(timeout=60)[0].decode().split()]
    assert len(got) == 40 and len(set(got)) == 40
    s = System(str(store))
    for n in range(4):
        for i in range(10):
            ipam.free(s.db, f"c{n}-{i}")
    s.close()

    a, b = tmp_path / "a", tmp_path / "b"
    for r in (a, b):
        lamina(r, "import", str(busybox_tar), "bb:1")
    holder = background(a, "run", "--name", "holder", "bb:1", "sleep", "60")
    try:
        held = wait_running(a, "holder")["NetworkSettings"]["IPAddress"]
        # store b's database knows nothing of store a's address: the veth name claim does
        mine = out(lamina(b, "run", "--rm", "bb:1", "sh", "-c", "ip -4 -o addr show eth0")).split()[3]
        assert mine.split("/")[0] != held
    finally:
        cleanup(a)
        holder.wait(timeout=30)
    assert_check_ok(a)
    assert_check_ok(b)



@requires_root
def test_system_check_reports_a_leaked_namespace(root):
    from lamina.network import netns

    cid = out(lamina(root, "create", "bb:1", "true")).strip()
    netns.create(netns.path_for(cid))  # as if its address row had been lost
    try:
        p = lamina(root, "system", "check", check=False)
        assert p.returncode == 1 and f"container {cid[:12]}: network namespace" in out(p) + p.stderr.decode()
    finally:
        lamina(root, "rm", cid)  # rm releases it
    assert not os.path.lexists(netns.path_for(cid))
    assert_check_ok(root)
