"""Builds through `lamina system service` with real clients: two at once, each client
seeing only its own build's output (each build runs in a process of its own: RUN's
output is that process's fds 1 and 2), and the classic /build parameters `extrahosts`
and `platform` as dockerd reads them."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time

import pytest

from api_fixtures import serve_store
from conftest import requires_root

pytestmark = requires_root

CLI = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "/usr/local/bin/docker"
BASE = "apibuild/busybox:latest"
docker_py = pytest.importorskip("docker", reason="SKIPPED LOUDLY: docker-py (pip install docker) not installed")


@pytest.fixture(scope="module")
def service(tmp_path_factory, busybox_tar):
    yield from serve_store(tmp_path_factory, busybox_tar, "api-builds", BASE)


@pytest.fixture
def client(service):
    c = docker_py.DockerClient(base_url=service.host, timeout=120)
    yield c
    c.close()


def docker(service, *args: str, check: bool = True, timeout: float = 120):
    if not os.path.exists(CLI):
        pytest.skip("SKIPPED LOUDLY: no docker CLI installed")
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": "/nonexistent"}
    out = subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def test_two_docker_py_builds_at_once_each_see_only_their_own_output(client, service):
    """Each RUN prints its own marker for ~1.5 s: the builds overlap (together they take
    less than one after the other) and neither log has a line of the other."""
    logs, errors, took = {}, [], {}

    def build(marker: str) -> None:
        dockerfile = (f"FROM {BASE}\nRUN for i in 1 2 3 4 5; do echo {marker}-$i; echo {marker}-err-$i >&2; "
                      f"sleep 0.3; done\n")
        start = time.monotonic()
        try:
            image, log = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), nocache=True, rm=True,
                                             tag=f"apibuild/{marker}:1")
            logs[marker] = "".join(entry.get("stream", "") for entry in log)
            assert f"apibuild/{marker}:1" in image.tags
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)
        took[marker] = (start, time.monotonic())

    threads = [threading.Thread(target=build, args=(m,)) for m in ("alpha", "bravo")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for mine, other in (("alpha", "bravo"), ("bravo", "alpha")):
        text = logs[mine]
        assert all(f"{mine}-{i}\n" in text and f"{mine}-err-{i}\n" in text for i in range(1, 6)), text
        assert f"{other}-" not in text, text
        assert "Successfully built " in text
    (a0, a1), (b0, b1) = took["alpha"], took["bravo"]
    assert min(a1, b1) > max(a0, b0), "the builds did not overlap"
    assert service.children() == []  # each build's process is gone


def test_two_cli_builds_at_once(service, tmp_path):
    procs = {}
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": "/nonexistent"}
    if not os.path.exists(CLI):
        pytest.skip("SKIPPED LOUDLY: no docker CLI installed")
    for marker in ("charlie", "delta"):
        ctx = tmp_path / marker
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo {marker}-start && sleep 1 && echo {marker}-end\n")
        procs[marker] = subprocess.Popen([CLI, "build", "--no-cache", "-t", f"apibuild/{marker}:1", str(ctx)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    outs = {m: p.communicate(timeout=120) for m, p in procs.items()}
    for mine, other in (("charlie", "delta"), ("delta", "charlie")):
        stdout, stderr = outs[mine]
        assert procs[mine].returncode == 0, stderr
        assert f"{mine}-start\n" in stdout and f"{mine}-end\n" in stdout
        assert other not in stdout
        assert f"Successfully tagged apibuild/{mine}:1" in stdout


def test_extra_hosts_reach_run_steps_and_are_checked(client, service, tmp_path):
    ctx = tmp_path / "hosts"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN grep -E 'one.example|two.example' /etc/hosts\n")
    out = docker(service, "build", "--no-cache", "--add-host", "one.example:10.1.2.3",
                 "--add-host", "two.example:10.4.5.6", str(ctx))
    assert "10.1.2.3\tone.example\n" in out.stdout and "10.4.5.6\ttwo.example\n" in out.stdout
    dockerfile = io.BytesIO(f"FROM {BASE}\nRUN grep py.example /etc/hosts\n".encode())
    _, logs = client.images.build(fileobj=dockerfile, nocache=True, extra_hosts={"py.example": "10.7.8.9"})
    assert "10.7.8.9\tpy.example\n" in "".join(entry.get("stream", "") for entry in logs)
    status, body = service.json("POST", "/build?extrahosts=no-address", body=b"")
    assert status == 400 and body["message"] == 'bad format for add-host: "no-address"'


def test_platform_builds_for_another_architecture(service, tmp_path):
    ctx = tmp_path / "plat"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /Dockerfile\n")
    docker(service, "build", "--platform", "linux/arm64", "-t", "apibuild/arm64:1", str(ctx))
    out = docker(service, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", "apibuild/arm64:1")
    assert out.stdout.strip() == "linux/arm64"
    status, body = service.json("POST", "/build?platform=windows/amd64", body=b"")
    assert status == 400 and body["message"] == '"windows/amd64": operating system is not supported'
    status, body = service.json("POST", "/build?platform=linux/a/b/c", body=b"")
    assert status == 400 and "cannot parse platform specifier" in body["message"]



def test_cachefrom_takes_the_steps_of_the_named_images_only(client, service):
    """dockerd's classic cachefrom: the named image's steps are reused (made again from its
    history and layers where the local cache has other images), and a local cache hit
    that is not a step of a named image is not."""
    dockerfile = f"FROM {BASE}\nENV STAGE=one\nRUN echo ran-one | tee /one\nRUN echo ran-two | tee /two\n"

    def build(**kw):
        image, logs = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True, **kw)
        return image.id, "".join(entry.get("stream", "") for entry in logs)

    first, _ = build(tag="apibuild/cached:first")
    second, log = build(tag="apibuild/cached:second", nocache=True)
    assert second != first and "\nran-one\n" in log
    assert build()[0] == second  # the local cache: the latest build's steps
    again, log = build(cache_from=["apibuild/cached:first"])
    assert again == first, log
    assert "\nran-one\n" not in log and "\nran-two\n" not in log and log.count("Using cache") == 3
    other, log = build(cache_from=[BASE])  # the base has none of these steps: they run
    assert other not in (first, second) and "\nran-one\n" in log and "\nran-two\n" in log
    _, log = build(cache_from=["apibuild/not-here:1"])  # skipped, as dockerd does: nothing to take from
    assert "\nran-one\n" in log
    status, body = service.json("POST", '/build?cachefrom="not-a-list"', body=b"")
    assert status == 400 and "cachefrom" in body["message"]


def test_service_stays_small_after_builds(client, service):
    """The builder runs in the build's own process: after builds (and their threads and
    pipes) the service's resident memory is still within the issue's 40 MB."""
    dockerfile = io.BytesIO(f"FROM {BASE}\nRUN echo small\nCOPY --from={BASE} /bin/busybox /bb\n".encode())
    client.images.build(fileobj=dockerfile, nocache=True, rm=True)
    for path in ("/_ping", "/version", "/info", "/images/json", "/containers/json?all=1", "/system/df"):
        assert service.request("GET", path)[0] == 200
    time.sleep(0.5)
    with open(f"/proc/{service.proc.pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    assert rss_kb < 40 * 1024, rss_kb
    assert service.children() == []
