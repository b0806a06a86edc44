"""Containers, execs, archives, networks and volumes through `lamina system service`,
driven by real clients: the docker CLI (Debian's 20.10 and the static 28 client when
present), docker-py, docker-compose 1.29 and testcontainers.  No mocks: each flow runs
the client as a user would, against busybox containers on lamina's own store; the
store must pass `system check` and the service must stop clean afterwards."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import shutil
import socket
import struct
import subprocess
import tarfile
import time
import urllib.request

import pytest

from api_fixtures import Service, UnixHTTPConnection, lamina
from conftest import requires_root

pytestmark = requires_root

CLIS = [p for p in ("/usr/bin/docker", "/usr/local/bin/docker") if os.path.exists(p)]
BASE = "apitest/busybox:latest"


@pytest.fixture(scope="module")
def service(tmp_path_factory, busybox_tar):
    base = tmp_path_factory.mktemp("api-containers")
    root = base / "root"
    out = lamina(root, "import", str(busybox_tar), BASE, timeout=120)
    assert out.returncode == 0, out.stderr
    svc = Service(root)
    yield svc
    left = svc.json("GET", "/containers/json?all=1")[1]
    for item in left or []:  # a failed test's containers: removed, then reported
        svc.request("DELETE", f"/containers/{item['Id']}?force=1&v=1")
    svc.stop()
    check = lamina(root, "system", "check", timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert not left, f"containers left behind: {[i['Names'] for i in left]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 10) -> bytes:
    end = time.time() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=3).read()
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.1)


def docker(cli: str, service, *args: str, input=None, check: bool = True, timeout: float = 120, **kw):
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_CONFIG": "/nonexistent", **kw.pop("env", {})}
    out = subprocess.run([cli, *args], capture_output=True, env=env, input=input, timeout=timeout,
                         text=input is None or isinstance(input, str), **kw)
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


@pytest.fixture(params=CLIS or [None], ids=lambda p: os.path.basename(os.path.dirname(p or "x/none")) + "-docker")
def cli(request):
    if request.param is None:
        pytest.skip("SKIPPED LOUDLY: no docker CLI installed")
    return request.param


# ---------------------------------------------------------------------- the docker CLI


def test_cli_run_detached_with_a_port_ps_logs_exec_top_stop_wait_rm(cli, service):
    port = free_port()
    name = f"web-{port}"
    cid = docker(cli, service, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", BASE,
                 "sh", "-c", "echo booted; echo warn >&2; exec httpd -f -p 80 -h /etc").stdout.strip()
    assert len(cid) == 64
    try:
        assert fetch(f"http://127.0.0.1:{port}/passwd").startswith(b"root:x:0:0")
        ps = docker(cli, service, "ps", "--format", "{{.ID}} {{.Names}} {{.Ports}} {{.Status}}").stdout
        assert f"{cid[:12]} {name} 127.0.0.1:{port}->80/tcp Up" in ps
        deadline = time.monotonic() + 20  # the monitor writes the log as it drains the output: poll
        while (logs := docker(cli, service, "logs", name)).stdout != "booted\n" or logs.stderr != "warn\n":
            assert time.monotonic() < deadline, (logs.stdout, logs.stderr)  # the multiplexed streams, apart
            time.sleep(0.1)
        out = docker(cli, service, "exec", name, "sh", "-c", "echo in-$HOSTNAME; echo oops >&2; exit 3", check=False)
        assert (out.returncode, out.stdout, out.stderr) == (3, f"in-{cid[:12]}\n", "oops\n")
        missing = docker(cli, service, "exec", name, "nonexistent-cmd", check=False)
        assert missing.returncode in (126, 127) and "executable file not found" in missing.stdout + missing.stderr
        top = docker(cli, service, "top", name).stdout
        assert "httpd -f -p 80 -h /etc" in top and top.split()[0] == "UID"
        docker(cli, service, "stop", "-t", "1", name)
        assert docker(cli, service, "wait", name).stdout.strip() in ("0", "143", "137")
        state = json.loads(docker(cli, service, "inspect", name).stdout)[0]["State"]
        assert state["Status"] == "exited" and not state["Running"]
    finally:
        docker(cli, service, "rm", "-f", name, check=False)
    assert name not in docker(cli, service, "ps", "-a", "--format", "{{.Names}}").stdout
    gone = docker(cli, service, "inspect", name, check=False)
    assert gone.returncode == 1 and "No such" in gone.stderr


def test_cli_logs_follow_streams_until_the_container_exits(cli, service):
    cid = docker(cli, service, "run", "-d", BASE, "sh", "-c",
                 "for i in 1 2 3; do echo tick $i; sleep 0.3; done; echo bye >&2").stdout.strip()
    try:
        out = docker(cli, service, "logs", "-f", "-t", cid, timeout=30)
        assert [line.split(" ", 1)[1] for line in out.stdout.splitlines()] == ["tick 1", "tick 2", "tick 3"]
        assert out.stdout.splitlines()[0][:4].isdigit() and out.stderr.endswith("bye\n")
        tail = docker(cli, service, "logs", "--tail", "2", cid)
        assert (tail.stdout, tail.stderr) == ("tick 3\n", "bye\n")
    finally:
        docker(cli, service, "rm", "-f", cid, check=False)


def test_cli_run_attached_and_run_rm_give_the_exit_code_and_output(cli, service):
    out = docker(cli, service, "run", "--rm", BASE, "sh", "-c", "echo to-out; echo to-err >&2; exit 5", check=False)
    assert (out.returncode, out.stdout, out.stderr) == (5, "to-out\n", "to-err\n")
    name = f"attached-{free_port()}"
    out = docker(cli, service, "run", "--name", name, BASE, "echo", "hello attached", check=False)
    assert (out.returncode, out.stdout) == (0, "hello attached\n")
    assert docker(cli, service, "ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout \
        .startswith("Exited (0)")
    docker(cli, service, "rm", name)
    assert docker(cli, service, "ps", "-aq").stdout.strip() == ""


def test_cli_exec_it_through_a_pty(cli, service):
    cid = docker(cli, service, "run", "-d", BASE, "sleep", "60").stdout.strip()
    try:
        env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_CONFIG": "/nonexistent"}
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(cli, [cli, "exec", "-it", cid, "sh"], env)
        out = b""
        sent = False
        end = time.time() + 30
        while time.time() < end:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                if not sent and b"#" in out:
                    os.write(fd, b"echo $((6*7)); tty; exit 4\r")
                    sent = True
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 4, out
        assert b"42\r\n" in out and b"/dev/pts/" in out, out
    finally:
        docker(cli, service, "rm", "-f", cid, check=False)


def test_cli_run_i_feeds_stdin_and_closes_it_at_eof(cli, service):
    out = docker(cli, service, "run", "-i", "--rm", BASE, "sh", "-c", "cat; echo done", input="one\ntwo\n",
                 timeout=60)
    assert out.stdout == "one\ntwo\ndone\n"
    out = docker(cli, service, "run", "-i", "--rm", BASE, "wc", "-c", input="", timeout=60)
    assert out.stdout.strip() == "0"  # EOF at once still reaches the container
    cid = docker(cli, service, "run", "-d", BASE, "sleep", "60").stdout.strip()
    try:
        out = docker(cli, service, "exec", "-i", cid, "wc", "-l", input="a\nb\nc\n")
        assert out.stdout.strip() == "3"
    finally:
        docker(cli, service, "rm", "-f", cid)


def test_cli_run_it_through_a_pty_shows_the_prompt_and_takes_input(cli, service):
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_CONFIG": "/nonexistent"}
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(cli, [cli, "run", "-it", "--rm", BASE, "sh"], env)
    out, sent = b"", False
    end = time.time() + 30
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            if not sent and b"/ # " in out:  # the prompt: no newline after it, raw from the tty
                os.write(fd, b"echo $((6*7)); tty; exit 4\r")
                sent = True
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if time.time() >= end:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 4, out
    assert b"42\r\n" in out and b"/dev/pts/" in out, out


def test_cli_cp_both_ways_diff_and_commit(cli, service, tmp_path):
    cid = docker(cli, service, "run", "-d", BASE, "sleep", "60").stdout.strip()
    tag = f"apitest/committed-{os.path.basename(os.path.dirname(cli))}:1"
    try:
        src = tmp_path / "in.txt"
        src.write_text("into the container\n")
        docker(cli, service, "cp", str(src), f"{cid}:/tmp/")
        assert docker(cli, service, "exec", cid, "cat", "/tmp/in.txt").stdout == "into the container\n"
        docker(cli, service, "cp", f"{cid}:/etc", str(tmp_path / "etc-copy"))
        assert (tmp_path / "etc-copy" / "passwd").read_text().startswith("root:x:0:0")
        docker(cli, service, "cp", f"{cid}:/etc/group", str(tmp_path / "group"))
        assert "staff:x:50:app" in (tmp_path / "group").read_text()
        missing = docker(cli, service, "cp", f"{cid}:/no/such", str(tmp_path / "x"), check=False)
        assert missing.returncode == 1 and missing.stderr in (  # each client's text, as with dockerd
            f"Error: No such container:path: {cid}:/no/such\n",
            f"Error response from daemon: Could not find the file /no/such in container {cid}\n"), missing.stderr
        diff = docker(cli, service, "diff", cid).stdout.splitlines()
        assert "C /tmp" in diff and "A /tmp/in.txt" in diff
        image_id = docker(cli, service, "commit", cid, tag).stdout.strip()
        assert image_id.startswith("sha256:")
        out = docker(cli, service, "run", "--rm", tag, "cat", "/tmp/in.txt").stdout
        assert out == "into the container\n"
    finally:
        docker(cli, service, "rm", "-f", cid, check=False)
        docker(cli, service, "rmi", tag, check=False)


def test_cli_network_and_volume_create_and_use(cli, service):
    suffix = free_port()
    net, vol = f"net{suffix}", f"vol{suffix}"
    docker(cli, service, "network", "create", "--label", "team=api", net)
    docker(cli, service, "volume", "create", "--label", "kind=data", vol)
    try:
        assert json.loads(docker(cli, service, "network", "inspect", net).stdout)[0]["Labels"] == {"team": "api"}
        assert json.loads(docker(cli, service, "volume", "inspect", vol).stdout)[0]["Labels"] == {"kind": "data"}
        assert vol in docker(cli, service, "volume", "ls", "-q").stdout.split()
        server = docker(cli, service, "run", "-d", "--network", net, "--network-alias", "server", "-v",
                        f"{vol}:/data", BASE, "sh", "-c", "echo stored > /data/f; httpd -f -p 80 -h /data")
        server = server.stdout.strip()
        try:
            out = docker(cli, service, "run", "--rm", "--network", net, BASE, "sh", "-c",
                         "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://server/f && exit 0; sleep 0.3; done;"
                         " exit 1", check=False)
            assert (out.returncode, out.stdout) == (0, "stored\n"), out.stderr
            mounts = json.loads(docker(cli, service, "inspect", server).stdout)[0]["Mounts"]
            assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [("volume", vol, "/data")]
        finally:
            docker(cli, service, "rm", "-f", server)
        out = docker(cli, service, "run", "--rm", "-v", f"{vol}:/v", BASE, "cat", "/v/f").stdout
        assert out == "stored\n"  # the named volume outlived its first container
    finally:
        docker(cli, service, "network", "rm", net, check=False)
        docker(cli, service, "volume", "rm", vol, check=False)
    assert net not in docker(cli, service, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert vol not in docker(cli, service, "volume", "ls", "-q").stdout.split()


def _cgroup_value(cid: str, v1: str, v2: str) -> str:
    for path in (f"/sys/fs/cgroup/{v1.split('/')[0]}/lamina/{cid}/{v1.split('/')[1]}",
                 f"/sys/fs/cgroup/lamina/{cid}/{v2}"):
        if os.path.exists(path):
            with open(path) as f:
                return f.read().strip()
    raise AssertionError(f"no cgroup file for {cid}")


def test_cli_limits_capabilities_and_restart_policy_reach_the_container(cli, service):
    cid = docker(cli, service, "run", "-d", "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5",
                 "--cap-drop", "ALL", BASE, "sh", "-c", "grep CapEff /proc/self/status; sleep 60").stdout.strip()
    try:
        assert _cgroup_value(cid, "memory/memory.limit_in_bytes", "memory.max") == "67108864"
        assert _cgroup_value(cid, "pids/pids.max", "pids.max") == "50"
        hc = json.loads(docker(cli, service, "inspect", cid).stdout)[0]["HostConfig"]
        assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"], hc["CapDrop"]) == (67108864, 500000000, 50, ["ALL"])
        end = time.time() + 10
        while "CapEff" not in (logs := docker(cli, service, "logs", cid).stdout) and time.time() < end:
            time.sleep(0.1)
        assert logs.split() == ["CapEff:", "0000000000000000"]
    finally:
        docker(cli, service, "rm", "-f", cid)
    cid = docker(cli, service, "run", "-d", "--restart", "on-failure:2", BASE, "sh", "-c", "exit 1").stdout.strip()
    try:
        end = time.time() + 30
        while time.time() < end:
            doc = json.loads(docker(cli, service, "inspect", cid).stdout)[0]
            if doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited":
                break
            time.sleep(0.2)
        assert (doc["RestartCount"], doc["State"]["Status"], doc["State"]["ExitCode"]) == (2, "exited", 1)
    finally:
        docker(cli, service, "rm", "-f", cid)


# ---------------------------------------------------------------------- the API itself


def test_attach_frames_output_with_dockers_header_and_wait_next_exit(service):
    status, body = service.json("POST", "/containers/create", body=json.dumps(
        {"Image": BASE, "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 9"]}))
    assert status == 201, body
    cid = body["Id"]
    try:
        attach = socket.socket(socket.AF_UNIX)
        attach.connect(service.socket)
        attach.sendall(f"POST /v1.41/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                       "Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += attach.recv(1)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
        wait = UnixHTTPConnection(service.socket, 30)
        wait.request("POST", f"/containers/{cid}/wait?condition=next-exit")
        waiting = wait.getresponse()  # the headers come first: the wait is registered
        assert waiting.status == 200
        assert service.request("POST", f"/containers/{cid}/start")[0] == 204
        assert json.loads(waiting.read()) == {"StatusCode": 9, "Error": None}
        wait.close()
        attach.settimeout(20)
        data = b""
        while chunk := attach.recv(65536):
            data += chunk
        attach.close()
        frames = []
        while data:
            stream, size = struct.unpack(">BxxxI", data[:8])
            frames.append((stream, data[8:8 + size]))
            data = data[8 + size:]
        assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")]
    finally:
        assert service.request("DELETE", f"/containers/{cid}?force=1")[0] == 204


def test_exec_inspect_has_the_exit_code_when_the_stream_ends(service):
    status, body = service.json("POST", "/containers/create", body=json.dumps(
        {"Image": BASE, "Cmd": ["sleep", "60"], "Tty": True}))
    cid = body["Id"]
    try:
        assert service.request("POST", f"/containers/{cid}/start")[0] == 204
        status, body = service.json("POST", f"/containers/{cid}/exec", body=json.dumps(
            {"Cmd": ["sh", "-c", "echo hi; exit 6"], "AttachStdout": True, "AttachStderr": True}))
        assert status == 201
        exec_id = body["Id"]
        assert service.json("GET", f"/exec/{exec_id}/json")[1]["ExitCode"] is None
        status, _, data = service.request("POST", f"/exec/{exec_id}/start", body=json.dumps({"Detach": False}),
                                          headers={"Content-Type": "application/json"})
        assert status == 200 and data == struct.pack(">BxxxI", 1, 3) + b"hi\n"
        info = service.json("GET", f"/exec/{exec_id}/json")[1]
        assert (info["ExitCode"], info["Running"], info["ContainerID"]) == (6, False, cid)
        again = service.json("POST", f"/exec/{exec_id}/start", body="{}")
        assert again[0] == 409
        # a tty container's log is raw: no frame headers
        status, _, data = service.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
        assert status == 200 and data == b""
        assert service.json("GET", "/exec/nope/json")[0] == 404
    finally:
        service.request("DELETE", f"/containers/{cid}?force=1")


def test_pause_unpause_restart_and_prune(service):
    status, body = service.json("POST", "/containers/create?name=pausable", body=json.dumps(
        {"Image": BASE, "Cmd": ["sleep", "60"], "Labels": {"prune": "me"}}))
    assert status == 201
    try:
        assert service.request("POST", "/containers/pausable/start")[0] == 204
        assert service.request("POST", "/containers/pausable/start")[0] == 304
        assert service.request("POST", "/containers/pausable/pause")[0] == 204
        state = service.json("GET", "/containers/pausable/json")[1]["State"]
        assert (state["Status"], state["Paused"]) == ("paused", True)
        assert service.json("POST", "/containers/pausable/pause")[0] == 409
        assert service.request("POST", "/containers/pausable/unpause")[0] == 204
        first = service.json("GET", "/containers/pausable/json")[1]["State"]["Pid"]
        assert service.request("POST", "/containers/pausable/restart?t=0")[0] == 204
        state = service.json("GET", "/containers/pausable/json")[1]["State"]
        assert state["Running"] and state["Pid"] != first
        assert service.request("POST", "/containers/pausable/rename?name=paused-renamed")[0] == 204
        assert service.json("GET", "/containers/paused-renamed/json")[1]["Name"] == "/paused-renamed"
        assert service.json("POST", "/containers/paused-renamed/rename?name=paused-renamed")[0] == 400
        assert service.request("POST", "/containers/paused-renamed/rename?name=pausable")[0] == 204
        titles = service.json("GET", "/containers/pausable/top?ps_args=-o%20pid,comm")[1]
        assert titles["Titles"] == ["PID", "COMMAND"] and [p[1] for p in titles["Processes"]] == ["sleep"]
        assert service.json("POST", "/containers/pausable/stop?t=0")[0] == 204
        status, body = service.json("POST", "/containers/prune?filters=" + urllib.request.quote(
            json.dumps({"label": ["prune=other"]})))
        assert status == 200 and body["ContainersDeleted"] is None
        status, body = service.json("POST", "/containers/prune?filters=" + urllib.request.quote(
            json.dumps({"label": {"prune=me": True}})))
        assert status == 200 and len(body["ContainersDeleted"]) == 1
        assert service.json("GET", "/containers/pausable/json")[0] == 404
    finally:
        service.request("DELETE", "/containers/pausable?force=1")


def test_create_errors_are_dockers(service):
    status, body = service.json("POST", "/containers/create", body=json.dumps({"Image": "no/such:image"}))
    assert status == 404 and "No such image" in body["message"]
    status, body = service.json("POST", "/containers/create", body=json.dumps({"Image": BASE, "Cmd": 5}))
    assert status == 400 and "cannot unmarshal" in body["message"]
    status, body = service.json("POST", "/containers/create", body="[1, 2]")
    assert status == 400
    assert service.json("POST", "/containers/nosuch/start")[0] == 404
    assert service.json("POST", "/containers/nosuch/wait")[0] == 404
    status, body = service.json("POST", "/containers/create?name=dup", body=json.dumps({"Image": BASE,
                                                                                        "Cmd": ["true"]}))
    assert status == 201
    try:
        again = service.json("POST", "/containers/create?name=dup", body=json.dumps({"Image": BASE,
                                                                                     "Cmd": ["true"]}))
        assert again[0] == 409 and "already in use" in again[1]["message"]
        status, body = service.json("POST", "/containers/dup/kill")
        assert status == 409 and "is not running" in body["message"]
    finally:
        service.request("DELETE", "/containers/dup")


def test_containers_outlive_the_service(tmp_path, busybox_tar):
    root = tmp_path / "root"
    assert lamina(root, "import", str(busybox_tar), BASE, timeout=120).returncode == 0
    first = Service(root)
    try:
        status, body = first.json("POST", "/containers/create?name=keeper", body=json.dumps(
            {"Image": BASE, "Cmd": ["sleep", "60"]}))
        assert status == 201
        assert first.request("POST", "/containers/keeper/start")[0] == 204
    finally:
        first.stop()
    second = Service(root)
    try:
        items = second.json("GET", "/containers/json")[1]
        assert [(i["Names"], i["State"]) for i in items] == [(["/keeper"], "running")]
        assert second.request("POST", "/containers/keeper/stop?t=0")[0] == 204
        assert second.request("POST", "/containers/keeper/stop")[0] == 304
        assert second.request("DELETE", "/containers/keeper")[0] == 204
    finally:
        second.stop()


# ---------------------------------------------------------------------- docker-py


@pytest.fixture(scope="module")
def client(service):
    docker_py = pytest.importorskip("docker", reason="SKIPPED LOUDLY: docker-py is not installed")
    c = docker_py.DockerClient(base_url=service.host, timeout=120)
    yield c
    c.close()


def test_docker_py_run_logs_exec_archive_wait(client):
    port = free_port()
    ctr = client.containers.run(BASE, ["sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.2; done; "
                                               "exec httpd -f -p 80 -h /etc"], detach=True,
                                ports={"80/tcp": ("127.0.0.1", port)})
    try:
        assert fetch(f"http://127.0.0.1:{port}/group").startswith(b"root:x:0:")
        seen = b""
        for chunk in ctr.logs(stream=True, follow=True):
            seen += chunk
            if b"l3" in seen:
                break
        assert seen == b"l1\nl2\nl3\n"
        code, output = ctr.exec_run(["sh", "-c", "echo out; echo err >&2; exit 7"])
        assert (code, sorted(output.splitlines())) == (7, [b"err", b"out"])  # two pipes: either order
        assert ctr.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True).output == (b"o\n", b"e\n")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("dir/payload.txt")
            info.size = 7
            tf.addfile(info, io.BytesIO(b"payload"))
        assert ctr.put_archive("/tmp", buf.getvalue())
        assert ctr.exec_run(["cat", "/tmp/dir/payload.txt"]).output == b"payload"
        bits, stat = ctr.get_archive("/tmp/dir/payload.txt")
        assert stat["name"] == "payload.txt" and stat["size"] == 7
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tf:
            assert tf.extractfile("payload.txt").read() == b"payload"
        ctr.kill()
        assert ctr.wait(timeout=30)["StatusCode"] == 137
    finally:
        ctr.remove(force=True)


def test_docker_py_networks_with_labels_and_aliases(client):
    net = client.networks.create(f"pynet{free_port()}", labels={"owner": "docker-py"})
    try:
        assert client.networks.get(net.id).attrs["Labels"] == {"owner": "docker-py"}
        server = client.containers.run(BASE, ["httpd", "-f", "-p", "80", "-h", "/etc"], detach=True)
        try:
            net.connect(server, aliases=["alias-one"])
            out = client.containers.run(BASE, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - "
                                               "http://alias-one/hostname && exit 0; sleep 0.3; done; exit 1"],
                                        network=net.name, remove=True)
            assert out.strip() == server.id[:12].encode()
            net.disconnect(server)
            assert net.name not in client.containers.get(server.id).attrs["NetworkSettings"]["Networks"]
        finally:
            server.remove(force=True)
    finally:
        net.remove()
    assert net.name not in [n.name for n in client.networks.list()]


# ---------------------------------------------------------------------- docker-compose


COMPOSE = """\
version: "3"
services:
  web:
    image: apitest/busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
    ports:
      - "127.0.0.1:{port}:80"
  client:
    image: apitest/busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://web/group >/dev/null && echo reached-web && break; sleep 0.3; done; sleep 300"]
"""


def test_docker_compose_two_services_up_logs_scale_down(service, tmp_path):
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("SKIPPED LOUDLY: docker-compose (Debian's 1.29) is not installed")
    port = free_port()
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(port=port))
    project = f"proj{port}"
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_CONFIG": "/nonexistent"}

    def run(*args, check=True):
        out = subprocess.run([compose, "-p", project, *args], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=180)
        if check:
            assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out

    run("up", "-d")
    try:
        assert fetch(f"http://127.0.0.1:{port}/passwd").startswith(b"root:x:0:0")
        end = time.time() + 20
        while "reached-web" not in (logs := run("logs", "client").stdout) and time.time() < end:
            time.sleep(0.3)
        assert "reached-web" in logs  # the client found `web` by its service name on the project network
        run("up", "-d", "--scale", "client=2")
        assert len(run("ps", "-q").stdout.split()) == 3
        names = [c["Names"][0] for c in service.json("GET", "/containers/json")[1]]
        assert sorted(n for n in names if n.startswith(f"/{project}_")) == \
            [f"/{project}_client_1", f"/{project}_client_2", f"/{project}_web_1"]
    finally:
        run("down", "-v")
    assert not [c for c in service.json("GET", "/containers/json?all=1")[1] or []
                if c["Names"][0].startswith(f"/{project}_")]
    assert f"{project}_default" not in [n["Name"] for n in service.json("GET", "/networks")[1]]


# ---------------------------------------------------------------------- testcontainers


def test_testcontainers_generic_container_waited_by_log_and_port(service, monkeypatch):
    try:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy, PortWaitStrategy
    except ImportError:
        pytest.skip("SKIPPED LOUDLY: testcontainers is not installed")
    monkeypatch.setenv("DOCKER_HOST", service.host)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")  # its reaper is an image from Docker Hub
    container = DockerContainer(BASE).with_command(
        ["sh", "-c", "echo warming; sleep 0.5; httpd -f -p 80 -h /etc & echo server-ready; wait"]
    ).with_exposed_ports(80)
    container.waiting_for(LogMessageWaitStrategy("server-ready"))
    with container:
        cid = container.get_wrapped_container().id
        port = int(container.get_exposed_port(80))
        PortWaitStrategy(80).wait_until_ready(container)
        assert fetch(f"http://127.0.0.1:{port}/passwd").startswith(b"root:x:0:0")
    status, _ = service.json("GET", f"/containers/{cid}/json")
    assert status == 404  # stopped and removed on leaving the block


def test_docker_compose_up_attached_streams_output_and_exit_code(service, tmp_path):
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("SKIPPED LOUDLY: docker-compose (Debian's 1.29) is not installed")
    (tmp_path / "docker-compose.yml").write_text(
        'version: "3"\nservices:\n  once:\n    image: apitest/busybox\n'
        '    command: ["sh", "-c", "echo first; sleep 0.5; echo second; exit 3"]\n')
    project = f"once{free_port()}"
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_CONFIG": "/nonexistent"}
    try:
        out = subprocess.run([compose, "-p", project, "--no-ansi", "up", "--exit-code-from", "once"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 3, (out.stdout, out.stderr)
        lines = [line.split("|", 1)[1].strip() for line in out.stdout.splitlines() if "|" in line]
        assert lines == ["first", "second"], out.stdout  # through the hijacked attach, before the start
    finally:
        subprocess.run([compose, "-p", project, "down"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert not [c for c in service.json("GET", "/containers/json?all=1")[1] or []
                if c["Names"][0].startswith(f"/{project}_")]
