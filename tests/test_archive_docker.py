"""Live cross-check with a local Docker engine (skipped without one; lamina never needs it).

On Docker's own overlay2 directories: our changes_from_upper(UpperDir, LowerDir)
must list what `docker diff` lists, and write_layer_from_upper(UpperDir) must hold
the entries of the layer `docker commit` produced (Docker 20.10 fills uname/gname
from the daemon's passwd, newer moby leaves them empty as we do).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import uuid

import pytest
from conftest import requires_root
from test_archive_changes import ON_BASE, make_base

from lamina.archive.changes import changes_from_upper
from lamina.archive.layertar import write_layer_from_upper


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


pytestmark = [requires_root, pytest.mark.docker,
              pytest.mark.skipif(not _docker_ok(), reason="SKIPPED: no usable local Docker engine")]


def docker(*args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, check=True).stdout.decode()


def entries(data: bytes) -> list[tuple]:
    return [(ti.name, ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.size, ti.devmajor, ti.devminor,
             ti.linkname if ti.type != tarfile.REGTYPE else "", ti.pax_headers)
            for ti in tarfile.open(fileobj=io.BytesIO(data))]


@pytest.fixture(scope="module")
def docker_image(tmp_path_factory):
    name = f"lamina-archive-test-{uuid.uuid4().hex[:12]}"
    root = make_base(tmp_path_factory.mktemp("docker-base") / "rootfs")
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
    docker("import", "-", f"{name}:base", stdin=tar)
    try:
        yield name
    finally:
        ids = docker("ps", "-aq", "--filter", f"name={name}").split()
        if ids:
            docker("rm", "-f", *ids)
        tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", name).split()  # only our repository
        for tag in sorted(tags, key=lambda t: t.endswith(":base")):  # children before their parent
            docker("rmi", tag)


@pytest.mark.parametrize("case", ["s05", "s14", "s15", "s18"])
def test_against_docker(docker_image, tmp_path, case):
    command, _ = ON_BASE[case]
    container = f"{docker_image}-{case}"
    docker("run", "--name", container, f"{docker_image}:base", "sh", "-c", command)
    theirs = docker("diff", container).splitlines()
    info = json.loads(docker("inspect", container))[0]["GraphDriver"]["Data"]
    ours = changes_from_upper(info["UpperDir"], info["LowerDir"].split(":"))
    assert sorted(str(c) for c in ours) == sorted(theirs)

    docker("commit", container, f"{docker_image}:{case}")
    out = tmp_path / "save"
    out.mkdir()
    subprocess.run(f"docker save {docker_image}:{case} | tar -C {out} -x", shell=True, check=True)
    layer = (out / json.loads((out / "manifest.json").read_text())[0]["Layers"][-1]).read_bytes()
    mine = io.BytesIO()
    write_layer_from_upper(info["UpperDir"], mine)
    assert entries(mine.getvalue()) == entries(layer)
