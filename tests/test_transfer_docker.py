"""Interop with a real Docker engine, both ways, through archives and a registry.
Skipped (loudly) when dockerd is not reachable; lamina never needs Docker."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import uuid

import pytest

from registry_fixtures import registry, docker_config  # noqa: F401 - pytest fixtures
from registry_fixtures import assert_store_ok

from conftest import requires_root
from lamina import oci
from lamina.reference import parse
from lamina.store.images import LayerBlob
from lamina.system import System
from lamina.transfer.load import load
from lamina.transfer.progress import QuietProgress
from lamina.transfer.pull import Puller
from lamina.transfer.push import Pusher
from lamina.transfer.save import save


def _docker_up() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = [requires_root, pytest.mark.docker,
              pytest.mark.skipif(not _docker_up(), reason="SKIPPED LOUDLY: dockerd is not reachable")]


def docker(*args, input=None, check=True):
    p = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {p.stderr.decode()}")
    return p.stdout.decode()


@pytest.fixture
def tag():
    """A unique docker tag, removed from the engine afterwards."""
    made = []

    def new(repo="lamina-interop"):
        name = f"{repo}:{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield new
    for name in made:
        docker("rmi", "-f", name, check=False)


@pytest.fixture
def system(tmp_path):
    s = System(str(tmp_path / "root"))
    yield s
    s.close()


def busybox_image(system, busybox_tar, name):
    data = busybox_tar.read_bytes()
    diff_id = system.content.put_bytes(data)
    config = oci.new_config()
    config["config"]["Cmd"] = ["sh"]
    config["rootfs"]["diff_ids"] = [str(diff_id)]
    config["history"] = [{"created": config["created"], "created_by": "busybox rootfs"}]
    layer = LayerBlob(oci.Descriptor(oci.OCI_LAYER, diff_id, len(data)), diff_id)
    return system.images.create(oci.dumps(config), [layer], size=len(data), tags=(parse(name),))


def test_lamina_save_docker_load_run(system, busybox_tar, tag, tmp_path):
    name = tag()
    image = busybox_image(system, busybox_tar, name)
    out = tmp_path / "img.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        save(system, [name], fd)
    finally:
        os.close(fd)
    loaded = docker("load", "-i", str(out))
    assert f"Loaded image: {name}" in loaded
    assert docker("inspect", "--format", "{{.Id}}", name).strip() == str(image)  # same image ID
    assert docker("run", "--rm", name, "/bin/echo", "hello from lamina").strip() == "hello from lamina"


def test_docker_save_lamina_load(system, busybox_tar, tag, tmp_path):
    name = tag()
    docker("import", "--change", "CMD [\"sh\"]", str(busybox_tar), name)
    docker_id = docker("inspect", "--format", "{{.Id}}", name).strip()
    data = subprocess.run(["docker", "save", name], capture_output=True, check=True, timeout=300).stdout
    loaded = load(system, io.BytesIO(data), QuietProgress())
    assert [(str(l.image_id), [r.familiar for r in l.tags]) for l in loaded] == [(docker_id, [name])]
    assert_store_ok(system)


def test_registry_both_ways(system, busybox_tar, registry, tag, docker_config, tmp_path):
    # lamina push -> docker pull + run
    name = f"{registry.host}/interop/from-lamina:{tag().split(':')[1]}"
    image = busybox_image(system, busybox_tar, name)
    Pusher(system, QuietProgress()).push(parse(name))
    try:
        docker("pull", name)
        assert docker("inspect", "--format", "{{.Id}}", name).strip() == str(image)
        assert docker("run", "--rm", name, "/bin/echo", "pulled").strip() == "pulled"
    finally:
        docker("rmi", "-f", name, check=False)
    # docker push -> lamina pull (docker's own gzip layers and Docker schema2 manifest)
    theirs = f"{registry.host}/interop/from-docker:{tag().split(':')[1]}"
    docker("import", str(busybox_tar), theirs)
    try:
        docker("push", theirs)
        docker_id = docker("inspect", "--format", "{{.Id}}", theirs).strip()
        other = System(str(tmp_path / "other"))
        result = Puller(other, QuietProgress()).pull(parse(theirs))
        assert str(result.image_id) == docker_id
        manifest = other.images.manifest(other.images.get(result.image_id))
        assert manifest["mediaType"] == oci.DOCKER_MANIFEST
        assert_store_ok(other)
        other.close()
    finally:
        docker("rmi", "-f", theirs, check=False)
