"""docker update (issue 13): a container's limits and restart policy, changed while it runs.

Real runc and cgroups, as root: `lamina update` directly, and Debian's docker CLI through
`lamina system service`.  The limit is read where the kernel keeps it, the container's
own cgroup (v1 memory.limit_in_bytes or v2 memory.max), found from its init's
/proc/PID/cgroup."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from api_fixtures import Service, lamina
from conftest import requires_root

pytestmark = requires_root

DOCKER = "/usr/bin/docker"
IMAGE = "upd/busybox:1"


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar):
    r = tmp_path_factory.mktemp("update") / "root"
    out = lamina(r, "import", str(busybox_tar), IMAGE, timeout=120)
    assert out.returncode == 0, out.stderr
    yield r
    for cid in lamina(r, "ps", "-aq", "--no-trunc").stdout.split():
        lamina(r, "rm", "-f", cid)
    check = lamina(r, "system", "check", timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr


def _run_d(root, *args: str) -> str:
    out = lamina(root, "run", "-d", *args, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _inspect(root, name: str, fmt: str) -> str:
    out = lamina(root, "inspect", "--format", fmt, name)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _memory_limit(root, name: str) -> int:
    """The memory limit the kernel enforces on the container's cgroup (v2 "max": -1)."""
    pid = _inspect(root, name, "{{.State.Pid}}")
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if "memory" in controllers.split(","):
            with open(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes") as f:
                return int(f.read())
    path = next(p for _, c, p in lines if c == "")
    with open(f"/sys/fs/cgroup{path}/memory.max") as f:
        text = f.read().strip()
    return -1 if text == "max" else int(text)


def test_lamina_update_changes_the_running_cgroup_and_inspect(root):
    _run_d(root, "--name", "u1", "-m", "64m", IMAGE, "sleep", "300")
    assert _memory_limit(root, "u1") == 64 << 20
    out = lamina(root, "update", "--memory", "96m", "--memory-swap", "192m", "--cpu-shares", "512", "u1")
    assert (out.returncode, out.stdout, out.stderr) == (0, "u1\n", "")
    assert _memory_limit(root, "u1") == 96 << 20
    assert _inspect(root, "u1", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}}") \
        == f"{96 << 20} {192 << 20} 512"
    # a value dockerd refuses: its text, nothing changed
    out = lamina(root, "update", "-m", "3m", "u1")
    assert (out.returncode, out.stderr) == (1, "Error response from daemon: Minimum memory limit allowed is 6MB\n")
    # above the swap limit without a new one: UpdateContainer's refusal, with the container's ID
    cid = _inspect(root, "u1", "{{.Id}}")
    out = lamina(root, "update", "-m", "300m", "u1")
    assert out.returncode == 1
    assert out.stderr == (f"Error response from daemon: Cannot update container {cid}: Memory limit should be "
                          "smaller than already set memoryswap limit, update the memoryswap at the same time\n")
    assert _memory_limit(root, "u1") == 96 << 20
    # a flag value docker's CLI refuses (125), no flag at all (1), an unknown container among known ones
    out = lamina(root, "update", "-m", "abc", "u1")
    assert out.returncode == 125 and "invalid size: 'abc'" in out.stderr
    out = lamina(root, "update", "u1")
    assert (out.returncode, out.stderr) == (1, "you must provide one or more flags when using this command\n")
    out = lamina(root, "update", "--cpu-shares", "256", "nosuch-h17", "u1")
    assert (out.returncode, out.stdout, out.stderr) == (1, "u1\n",
                                                        "Error response from daemon: No such container: nosuch-h17\n")
    # NanoCpus excludes a CPU quota across updates too
    assert lamina(root, "update", "--cpus", "0.5", "u1").returncode == 0
    out = lamina(root, "update", "--cpu-quota", "5000", "u1")
    assert out.returncode == 1 and out.stderr.endswith(
        ": Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set\n")
    assert _inspect(root, "u1", "{{.HostConfig.NanoCpus}} {{.HostConfig.CpuQuota}}") == "500000000 0"
    lamina(root, "rm", "-f", "u1")


def test_restart_policy_update_reaches_the_monitor(root):
    _run_d(root, "--name", "u2", IMAGE, "sh", "-c", "sleep 1.5; exit 3")
    out = lamina(root, "update", "--restart", "on-failure:2", "u2")
    assert (out.returncode, out.stdout) == (0, "u2\n"), out.stderr
    assert _inspect(root, "u2", "{{json .HostConfig.RestartPolicy}}") == '{"Name":"on-failure","MaximumRetryCount":2}'
    deadline = time.monotonic() + 30
    while _inspect(root, "u2", "{{.State.Status}} {{.RestartCount}}") != "exited 2":
        assert time.monotonic() < deadline, "the monitor did not apply the updated policy"
        time.sleep(0.2)
    out = lamina(root, "update", "--restart", "bogus", "u2")
    assert (out.returncode, out.stderr) == (1, "Error response from daemon: invalid restart policy 'bogus'\n")
    lamina(root, "rm", "-f", "u2")
    _run_d(root, "--rm", "--name", "u3", IMAGE, "sleep", "300")
    cid = _inspect(root, "u3", "{{.Id}}")
    out = lamina(root, "update", "--restart", "always", "u3")
    assert out.stderr == (f"Error response from daemon: Cannot update container {cid}: Restart policy cannot be "
                          "updated because AutoRemove is enabled for the container\n")
    lamina(root, "rm", "-f", "u3")


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="SKIPPED LOUDLY: no docker CLI installed")
def test_docker_cli_update_through_the_service(root):
    svc = Service(root)
    try:
        def docker(*args):
            return subprocess.run([DOCKER, "-H", svc.host, *args], capture_output=True, text=True, timeout=60,
                                  env={**os.environ, "DOCKER_CONFIG": "/nonexistent"})

        out = docker("run", "-d", "--name", "u4", IMAGE, "sleep", "300")
        assert out.returncode == 0, out.stderr
        out = docker("update", "--memory", "64m", "--memory-swap", "128m", "u4")
        assert (out.returncode, out.stdout) == (0, "u4\n"), out.stderr
        assert _memory_limit(root, "u4") == 64 << 20
        out = docker("inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}", "u4")
        assert out.stdout.strip() == f"{64 << 20} {128 << 20}"
        out = docker("update", "--memory", "3m", "u4")
        assert (out.returncode, out.stderr) == (1, "Error response from daemon: Minimum memory limit allowed is 6MB\n")
        out = docker("update", "--restart", "always", "u4")
        assert out.returncode == 0
        out = docker("inspect", "--format", "{{json .HostConfig.RestartPolicy}}", "u4")
        assert json.loads(out.stdout) == {"Name": "always", "MaximumRetryCount": 0}
        out = docker("update", "-m", "100m", "nosuch-h17")
        assert (out.returncode, out.stderr) == (1, "Error response from daemon: No such container: nosuch-h17\n")
        status, body = svc.json("POST", "/containers/u4/update", b'{"Memory": "64m"}')
        assert status == 400 and "UpdateConfig.Memory" in body["message"]
        assert docker("rm", "-f", "u4").returncode == 0
    finally:
        svc.stop()


def _under_pty(argv: list[str], rows: int, cols: int, env: dict, timeout: float = 60) -> tuple[int, str]:
    """Run `argv` on a new pty of `rows` x `cols` (as a terminal user would); (exit code, output)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    pid, master = pty.fork()
    if pid == 0:
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the child side closed
                    break
                if not data:
                    break
                out += data
    finally:
        os.close(master)
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return code, out.decode(errors="replace")


def test_resize_reaches_the_container_and_exec_tty(root):
    _run_d(root, "-t", "--name", "u5", IMAGE, "sleep", "300")
    svc = Service(root)
    try:
        status, _, _ = svc.request("POST", "/containers/u5/resize?h=33&w=111")
        assert status == 200
        out = lamina(root, "exec", "u5", "sh", "-c", "stty size </proc/1/fd/0")
        assert out.stdout.strip() == "33 111", out.stderr
        status, body = svc.json("POST", "/containers/u5/resize?h=x&w=80")
        assert (status, body["message"]) == (400, 'strconv.Atoi: parsing "x": invalid syntax')
        env = {**os.environ, "DOCKER_CONFIG": "/nonexistent", "TERM": "xterm"}
        if os.path.exists(DOCKER):  # the CLI sends its terminal's size after the start (API 1.41: no ConsoleSize)
            code, text = _under_pty([DOCKER, "-H", svc.host, "exec", "-it", "u5", "sh", "-c", "sleep 1; stty size"],
                                    41, 121, env)
            assert code == 0 and "41 121" in text, text
            code, text = _under_pty([DOCKER, "-H", svc.host, "run", "-it", "--rm", IMAGE, "sh", "-c",
                                     "sleep 1; stty size"], 42, 122, env)
            assert code == 0 and "42 122" in text, text
        lamina(root, "stop", "-t", "1", "u5")
        status, body = svc.json("POST", "/containers/u5/resize?h=10&w=10")
        assert status == 409 and body["message"].endswith("is not running")
        lamina(root, "rm", "-f", "u5")
    finally:
        svc.stop()
