"""`lamina system df [-v] [--format]` and GET /system/df: one implementation (engine/system.py).

docker 20.10's CLI is the reference twice over: its `system df` against lamina's Engine
API service must print what `lamina system df` prints (the figures come from the same
document), and the shapes were recorded from `docker system df` against dockerd 20.10
on the development machine (the section titles, headers and `N (P%)` reclaimable)."""

from __future__ import annotations

import json
import os
import re

import pytest

from api_fixtures import Service, lamina
from conftest import requires_root

pytestmark = requires_root
DOCKER = "/usr/bin/docker"


def run(root, *args):
    out = lamina(root, *map(str, args), timeout=120)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar):
    root = tmp_path_factory.mktemp("df") / "root"
    run(root, "import", busybox_tar, "busybox:latest")
    run(root, "volume", "create", "dfvol")
    run(root, "run", "--name", "writer", "-v", "dfvol:/data", "busybox", "sh", "-c",
        "echo x > /data/f; echo yy > /z")
    run(root, "commit", "writer", "derived:1")  # shares busybox's layer
    run(root, "run", "-d", "--name", "sleeper", "busybox", "sleep", "60")
    yield root
    lamina(root, "rm", "-f", "writer", "sleeper")


def test_summary_figures_as_dockers_formatter(store):
    rows = [json.loads(line) for line in run(store, "system", "df", "--format", "{{json .}}").splitlines()]
    assert [r["Type"] for r in rows] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    images, containers, volumes, cache = rows
    assert (images["TotalCount"], images["Active"]) == ("2", "1")
    assert re.fullmatch(r"\S+B \(\d+%\)", images["Reclaimable"])
    assert (containers["TotalCount"], containers["Active"], containers["Size"],
            containers["Reclaimable"]) == ("2", "1", "3B", "3B (100%)")  # /z
    assert volumes == {"Type": "Local Volumes", "TotalCount": "1", "Active": "1", "Size": "2B",
                       "Reclaimable": "0B (0%)"}
    assert cache == {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}
    table = run(store, "system", "df").splitlines()
    assert table[0] == "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    assert table[3] == "Local Volumes   1         1         2B        0B (0%)"
    assert run(store, "system", "df", "--format", "table {{.Type}}\t{{.Size}}").splitlines()[:2] == [
        "TYPE            SIZE", f"Images          {images['Size']}"]
    bad = lamina(store, "system", "df", "--format", "{{.Bogus}}")
    assert (bad.returncode, bad.stderr) == (1, 'template parsing error: template: :1:2: executing "" at <.Bogus>: '
                                               "can't evaluate field Bogus in type *formatter.diskUsageImagesContext\n")


def test_verbose_sections(store):
    text = run(store, "system", "df", "-v")
    sections = [line for line in text.splitlines() if line.endswith("usage:") or line.startswith("Build cache")]
    assert sections == ["Images space usage:", "Containers space usage:", "Local Volumes space usage:",
                        "Build cache usage: 0B"]
    lines = text.splitlines()
    assert lines[2].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "SHARED", "SIZE",
                                "UNIQUE", "SIZE", "CONTAINERS"]
    derived = next(line for line in lines if line.startswith("derived "))
    base = next(line for line in lines if line.startswith("busybox "))
    assert derived.split()[-1] == "0" and base.split()[-1] == "2"
    # the shared base layer: busybox's whole size is shared, its unique size 0B
    assert base.split()[-2] == "0B" and base.split()[-3] != "0B"
    writer = next(line for line in lines if line.endswith(" writer"))
    assert re.search(r'"sh -c \'echo x > /da…"\s+1\s+3B\s', writer)
    assert "dfvol         1         2B" in text
    assert text.endswith("CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n")


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="SKIPPED LOUDLY: no docker 20.10 CLI")
def test_docker_cli_through_the_api_prints_the_same(store, tmp_path):
    import subprocess

    svc = Service(store)
    try:
        env = {**os.environ, "DOCKER_HOST": svc.host, "DOCKER_CONFIG": "/nonexistent"}
        theirs = subprocess.run([DOCKER, "system", "df"], capture_output=True, text=True, env=env, timeout=60)
        ours = run(store, "system", "df")
        assert theirs.returncode == 0, theirs.stderr
        assert theirs.stdout == ours
        theirs = subprocess.run([DOCKER, "system", "df", "-v"], capture_output=True, text=True, env=env, timeout=60)
        ours = run(store, "system", "df", "-v")

        def steady(text):  # ages may tick between the two commands
            return re.sub(r"(Less than a second|\d+ seconds?|About a minute|\d+ minutes?) ago", "AGO", text)

        assert [line.split() for line in steady(theirs.stdout).splitlines()] == \
            [line.split() for line in steady(ours).splitlines()]
    finally:
        svc.stop()
