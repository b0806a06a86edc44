"""Real clients against `lamina system service`: the docker CLI (Debian's 20.10 and the
static 28 client when present) with DOCKER_HOST on lamina's socket, and docker-py.
No mocks: each flow runs the client binary or library as a user would, then the
store is checked (`lamina system check`) and the service must stop clean."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from api_fixtures import lamina, serve_store
from conftest import requires_root
from registry_fixtures import basic_registry, registry  # noqa: F401 - fixtures

pytestmark = requires_root

CLIS = [p for p in ("/usr/bin/docker", "/usr/local/bin/docker") if os.path.exists(p)]
BASE = "apitest/busybox:latest"


@pytest.fixture(scope="module")
def service(tmp_path_factory, busybox_tar):
    yield from serve_store(tmp_path_factory, busybox_tar, "api-clients", BASE)


def docker(cli: str, service, *args: str, input=None, check: bool = True, timeout: float = 120, **kw):
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": "/nonexistent",
           **kw.pop("env", {})}
    out = subprocess.run([cli, *args], capture_output=True, env=env, input=input, timeout=timeout,
                         text=input is None or isinstance(input, str), **kw)
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def needs_clis():
    return pytest.mark.skipif(not CLIS, reason="SKIPPED LOUDLY: no docker CLI installed")


@pytest.fixture(params=CLIS or [None], ids=lambda p: os.path.basename(os.path.dirname(p or "x/none")) + "-docker")
def cli(request):
    if request.param is None:
        pytest.skip("SKIPPED LOUDLY: no docker CLI installed")
    return request.param


def test_version_and_info(cli, service):
    out = docker(cli, service, "version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
    assert out.stdout.strip() == "1.41 linux"
    info = json.loads(docker(cli, service, "info", "--format", "{{json .}}").stdout)
    assert info["OSType"] == "linux" and info["Images"] >= 1
    assert info["DockerRootDir"] == str(service.root)


def test_images_inspect_tag_history_rmi(cli, service):
    out = docker(cli, service, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert "apitest/busybox:latest " in out.stdout
    tag = f"apitest/tagged-{os.path.basename(os.path.dirname(cli))}:v1"
    docker(cli, service, "tag", BASE, tag)
    ids = docker(cli, service, "inspect", "--format", "{{.Id}}", BASE, tag).stdout.split()
    assert len(ids) == 2 and ids[0] == ids[1] and ids[0].startswith("sha256:")
    history = docker(cli, service, "history", "--format", "{{.ID}} {{.Comment}}", tag).stdout
    assert history.startswith(ids[0][7:19])
    out = docker(cli, service, "rmi", tag)
    assert out.stdout.strip() == f"Untagged: {tag}"
    missing = docker(cli, service, "inspect", tag, check=False)
    assert missing.returncode == 1 and "No such object" in missing.stderr
    gone = docker(cli, service, "rmi", "apitest/never:here", check=False)
    assert gone.returncode == 1
    # as each client prints dockerd's 404 (recorded against dockerd 20.10)
    prefix = "Error" if cli == "/usr/bin/docker" else "Error response from daemon"
    assert gone.stderr == f"{prefix}: No such image: apitest/never:here\n"


def test_build_save_load_and_df(cli, service, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo built-by-run && echo to-stderr >&2\n"
                                    "ENV GREETING=hi\nCOPY data.txt /data.txt\n")
    (ctx / "data.txt").write_text("payload\n")
    name = f"apitest/built-{os.path.basename(os.path.dirname(cli))}:1"
    out = docker(cli, service, "build", "-t", name, str(ctx))
    assert "Step 2/4 : RUN echo built-by-run" in out.stdout
    assert "built-by-run\n" in out.stdout and "to-stderr\n" in out.stdout
    assert "Successfully built " in out.stdout and f"Successfully tagged {name}" in out.stdout
    image_id = docker(cli, service, "inspect", "--format", "{{.Id}}", name).stdout.strip()
    quiet = docker(cli, service, "build", "-q", str(ctx))
    assert quiet.stdout.strip() == image_id  # the cache hit is the same image
    failing = tmp_path / "failing"
    failing.mkdir()
    (failing / "Dockerfile").write_text(f"FROM {BASE}\nRUN exit 3\n")
    bad = docker(cli, service, "build", str(failing), check=False)
    assert bad.returncode == 3
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in bad.stderr
    saved = docker(cli, service, "save", name, input=b"")
    assert saved.stdout[:512] and tarfile.open(fileobj=io.BytesIO(saved.stdout)).getmember("manifest.json")
    docker(cli, service, "rmi", name)
    loaded = docker(cli, service, "load", input=saved.stdout)
    assert f"Loaded image: {name}".encode() in loaded.stdout
    assert docker(cli, service, "inspect", "--format", "{{.Id}}", name).stdout.strip() == image_id
    df = docker(cli, service, "system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout.splitlines()
    assert df[0].startswith("Images ") and int(df[0].split()[1]) >= 2
    assert df[1] == "Containers 0"


def test_events_since_until(cli, service):
    start = time.time()
    name = f"apitest/events-{os.path.basename(os.path.dirname(cli))}:e1"
    docker(cli, service, "tag", BASE, name)
    docker(cli, service, "rmi", name)
    time.sleep(1.1)  # --until is whole seconds
    out = docker(cli, service, "events", "--since", str(int(start)), "--until", str(int(time.time())),
                 "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", timeout=30)
    lines = out.stdout.splitlines()
    assert f"image tag {name}" in lines
    assert any(line.startswith("image untag ") for line in lines)
    only = docker(cli, service, "events", "--since", str(int(start)), "--until", str(int(time.time())),
                  "--filter", "event=untag", "--format", "{{.Action}}", timeout=30)
    assert set(only.stdout.split()) == {"untag"}


def test_pull_and_push_through_a_loopback_registry(cli, service, registry):  # noqa: F811
    target = f"{registry.host}/apitest/pushed-{os.path.basename(os.path.dirname(cli))}:v1"
    docker(cli, service, "tag", BASE, target)
    pushed = docker(cli, service, "push", target)
    assert "digest: sha256:" in pushed.stdout
    docker(cli, service, "rmi", target)
    pulled = docker(cli, service, "pull", target)
    assert "Status: Downloaded newer image for" in pulled.stdout or "Image is up to date" in pulled.stdout
    assert pulled.stdout.strip().endswith(target)
    missing = docker(cli, service, "pull", f"{registry.host}/apitest/absent:v1", check=False)
    assert missing.returncode == 1 and "Error response from daemon" in missing.stderr
    docker(cli, service, "rmi", target)


def test_container_listing_is_empty_and_well_formed(cli, service):
    out = docker(cli, service, "ps", "-a")
    assert out.stdout.splitlines()[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                                  "PORTS", "NAMES"]


# ---------------------------------------------------------------------- docker-py

docker_py = pytest.importorskip("docker", reason="SKIPPED LOUDLY: docker-py (pip install docker) not installed")


@pytest.fixture
def client(service):
    c = docker_py.DockerClient(base_url=service.host, timeout=120)
    yield c
    c.close()


def test_docker_py_ping_version_images(client):
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.41"
    tags = [t for image in client.images.list() for t in image.tags]
    assert BASE in tags
    image = client.images.get(BASE)
    assert image.id.startswith("sha256:") and BASE in image.tags
    with pytest.raises(docker_py.errors.ImageNotFound):
        client.images.get("apitest/nope:1")


def test_docker_py_build_from_fileobj(client):
    dockerfile = io.BytesIO(f"FROM {BASE}\nRUN echo py-build > /py.txt\nLABEL made.by=docker-py\n".encode())
    image, logs = client.images.build(fileobj=dockerfile, tag="apitest/pybuilt:1", rm=True)
    assert "apitest/pybuilt:1" in image.tags
    assert image.labels == {"made.by": "docker-py"}
    assert any("Successfully built" in entry.get("stream", "") for entry in logs)
    with pytest.raises(docker_py.errors.BuildError) as caught:
        client.images.build(fileobj=io.BytesIO(f"FROM {BASE}\nRUN exit 5\n".encode()))
    assert "returned a non-zero code: 5" in str(caught.value)


def test_docker_py_pull_and_events(client, registry):  # noqa: F811
    since = int(time.time())
    target = f"{registry.host}/apitest/py-pulled"
    client.images.get(BASE).tag(target, "v2")
    for line in client.api.push(target, tag="v2", stream=True, decode=True):
        assert "error" not in line, line
    client.images.remove(f"{target}:v2")
    image = client.images.pull(target, tag="v2")
    assert f"{target}:v2" in image.tags
    time.sleep(1.1)
    events = list(client.api.events(since=since, until=int(time.time()), decode=True))
    actions = [(e["Type"], e["Action"]) for e in events]
    assert ("image", "tag") in actions and ("image", "push") in actions and ("image", "pull") in actions
    assert ("image", "untag") in actions


# ---------------------------------------------------------------------- clients that die


def _wait_for(proc, needle: bytes, deadline: float = 60) -> bytes:
    seen = b""
    end = time.time() + deadline
    while needle not in seen and time.time() < end:
        chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(1)
        if not chunk:
            break
        seen += chunk
    return seen


def test_client_killed_mid_build_leaves_no_stuck_lock(cli, service, tmp_path):
    ctx = tmp_path / "slow"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo started && sleep 3 && echo finished\nRUN echo next\n")
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": "/nonexistent"}
    proc = subprocess.Popen([cli, "build", "--no-cache", str(ctx)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)
    seen = _wait_for(proc, b"started")
    assert b"started" in seen, seen
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the next build is not blocked (builds run side by side); the killed one stops at its
    # next log line (its RUN's `echo finished` meets the closed pipe) and cleans up
    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo after-the-kill\n")
    out = docker(cli, service, "build", "--no-cache", str(ok), timeout=60)
    assert "after-the-kill" in out.stdout
    deadline = time.time() + 30
    while [p for p in os.listdir(service.root / "tmp") if p.startswith("build-")] and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in os.listdir(service.root / "tmp") if p.startswith("build-")]
    assert "echo next" not in (service.root.parent / f"service-{service.root.name}.log").read_text()
    check = lamina(service.root, "system", "check", "--quick", timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_client_killed_mid_pull_leaves_a_clean_store(cli, service, registry, tmp_path):  # noqa: F811
    big = tmp_path / "big"
    big.mkdir()
    (big / "Dockerfile").write_text(f"FROM {BASE}\nRUN head -c 30000000 /dev/urandom > /blob\n")
    target = f"{registry.host}/apitest/big-{os.path.basename(os.path.dirname(cli))}:v1"
    docker(cli, service, "build", "-t", target, str(big), timeout=120)
    docker(cli, service, "push", target, timeout=120)
    docker(cli, service, "rmi", target)
    env = {**os.environ, "DOCKER_HOST": service.host, "DOCKER_CONFIG": "/nonexistent"}
    proc = subprocess.Popen([cli, "pull", target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    _wait_for(proc, b"Pulling fs layer", 30)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the pull stops at its next progress report
    pulled = docker(cli, service, "pull", target, timeout=120)
    assert target in pulled.stdout
    check = lamina(service.root, "system", "check", timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    docker(cli, service, "rmi", target)
    assert shutil.which("true")


# ---------------------------------------------------------------------- containers (read side)


def test_containers_ps_inspect_diff_export_commit_and_their_events(cli, service, tmp_path):
    since = int(time.time())
    name = f"apitest-ctr-{os.path.basename(os.path.dirname(cli))}"
    run = lamina(service.root, "run", "--name", name, "--label", "team=api", BASE, "sh", "-c",
                 "echo made > /made.txt && rm /bin/true", timeout=120)
    assert run.returncode == 0, run.stderr
    ps = docker(cli, service, "ps", "-a", "--no-trunc", "--format", "{{.Names}}|{{.Image}}|{{.Status}}|{{.Command}}")
    line = next(entry for entry in ps.stdout.splitlines() if entry.startswith(name + "|"))
    _, image, status, command = line.split("|")
    assert image == BASE and status.startswith("Exited (0) ") and command.startswith('"sh -c ')
    assert docker(cli, service, "ps", "--format", "{{.Names}}").stdout.split().count(name) == 0  # not running
    filtered = docker(cli, service, "ps", "-a", "--filter", "label=team=api", "--filter", "status=exited",
                      "--format", "{{.Names}}").stdout.split()
    assert filtered == [name]
    state = docker(cli, service, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.Name}}", name)
    assert state.stdout.strip() == f"exited 0 /{name}"
    diff = docker(cli, service, "diff", name).stdout.splitlines()
    assert "A /made.txt" in diff and "D /bin/true" in diff and "C /bin" in diff
    exported = docker(cli, service, "export", name, input=b"").stdout
    members = tarfile.open(fileobj=io.BytesIO(exported)).getnames()
    assert "made.txt" in members and "bin/true" not in members
    committed = docker(cli, service, "commit", "-m", "via api", "-c", "ENV FROM_API=1", name, f"apitest/{name}:c1")
    image_id = committed.stdout.strip()
    assert image_id.startswith("sha256:")
    env = docker(cli, service, "inspect", "--format", "{{json .Config.Env}} {{.Comment}}", f"apitest/{name}:c1")
    assert "FROM_API=1" in env.stdout and env.stdout.strip().endswith("via api")
    assert lamina(service.root, "rm", name).returncode == 0
    docker(cli, service, "rmi", f"apitest/{name}:c1")
    time.sleep(1.1)
    events = docker(cli, service, "events", "--since", str(since), "--until", str(int(time.time())),
                    "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    assert events.stdout.splitlines() == [f"create {name}", f"commit {name}", f"destroy {name}"]


def test_import_through_images_create(cli, service, busybox_tar):
    out = docker(cli, service, "import", str(busybox_tar), "apitest/imported:1")
    assert out.stdout.strip().startswith("sha256:")
    assert docker(cli, service, "inspect", "--format", "{{.Comment}}", "apitest/imported:1").stdout.strip() \
        == "Imported from -"
    docker(cli, service, "rmi", "apitest/imported:1")


def test_login_then_push_and_pull_with_credentials(cli, service, basic_registry, tmp_path):  # noqa: F811
    """docker login checks through POST /auth; push and pull then carry X-Registry-Auth,
    which the service uses (it never reads its own user's config.json for a client)."""
    from registry_fixtures import PASSWORD, USER

    config = tmp_path / "docker-config"
    config.mkdir()
    env = {"DOCKER_CONFIG": str(config)}
    bad = docker(cli, service, "login", "-u", USER, "--password-stdin", basic_registry.host, input="wrong\n",
                 env=env, check=False)
    assert bad.returncode == 1 and "Error response from daemon" in bad.stderr
    assert "401" in bad.stderr or "unauthorized" in bad.stderr.lower()
    good = docker(cli, service, "login", "-u", USER, "--password-stdin", basic_registry.host,
                  input=PASSWORD + "\n", env=env)
    assert "Login Succeeded" in good.stdout
    target = f"{basic_registry.host}/apitest/private-{os.path.basename(os.path.dirname(cli))}:v1"
    docker(cli, service, "tag", BASE, target)
    anonymous = docker(cli, service, "push", target, check=False)  # no credentials sent: refused
    assert anonymous.returncode == 1
    docker(cli, service, "push", target, env=env)
    docker(cli, service, "rmi", target)
    assert docker(cli, service, "pull", target, check=False).returncode == 1
    pulled = docker(cli, service, "pull", target, env=env)
    assert pulled.stdout.strip().endswith(target)
    docker(cli, service, "rmi", target)


def test_image_filters_and_prune(cli, service, tmp_path):
    suffix = os.path.basename(os.path.dirname(cli))
    ctx = tmp_path / "labelled"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nLABEL tier=api-{suffix}\nRUN echo {suffix} > /which\n")
    name = f"apitest/filtered-{suffix}:1"
    docker(cli, service, "build", "-t", name, str(ctx))
    by_label = docker(cli, service, "images", "--filter", f"label=tier=api-{suffix}", "--format",
                      "{{.Repository}}:{{.Tag}}").stdout.split()
    assert by_label == [name]
    by_ref = docker(cli, service, "images", "--filter", f"reference=apitest/filtered-{suffix}",
                    "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert by_ref == [name]
    since = docker(cli, service, "images", "--filter", f"since={BASE}", "--format", "{{.Repository}}").stdout
    assert f"apitest/filtered-{suffix}" in since.split() and "apitest/busybox" not in since.split()
    # re-tagging the name to another image leaves the first one dangling: prune removes it
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo other-{suffix} > /which\n")
    first = docker(cli, service, "inspect", "--format", "{{.Id}}", name).stdout.strip()
    docker(cli, service, "build", "-t", name, str(ctx))
    dangling = docker(cli, service, "images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split()
    assert first in dangling
    pruned = docker(cli, service, "image", "prune", "-f")
    assert f"deleted: {first}" in pruned.stdout and "Total reclaimed space:" in pruned.stdout
    assert docker(cli, service, "inspect", first, check=False).returncode == 1
    docker(cli, service, "rmi", name)


def test_build_with_a_dockerfile_outside_the_context(cli, service, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello\n")
    elsewhere = tmp_path / "elsewhere.Dockerfile"
    elsewhere.write_text(f"FROM {BASE}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n")
    out = docker(cli, service, "build", "--no-cache", "-f", str(elsewhere), str(ctx))
    assert "hello\n" in out.stdout and "Successfully built" in out.stdout


def test_docker_py_build_arguments_target_and_labels(client):
    dockerfile = (f"FROM {BASE} AS first\nARG WHO=nobody\nRUN echo \"$WHO\" > /who\n"
                  f"FROM first AS second\nRUN echo never > /second\n").encode()
    image, logs = client.images.build(fileobj=io.BytesIO(dockerfile), buildargs={"WHO": "docker-py"},
                                      target="first", labels={"built.with": "args"}, nocache=True, rm=True)
    text = "".join(entry.get("stream", "") for entry in logs)
    assert "RUN echo never" not in text  # the target stage ends the build
    assert image.labels == {"built.with": "args"}
    history = client.api.history(image.id)
    assert any("WHO=docker-py" in entry["CreatedBy"] for entry in history)
