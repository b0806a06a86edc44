"""`lamina build --add-host NAME:IP` (issue 12): the RUN steps see the entry in /etc/hosts,
as with `docker build --add-host`; the entries are not part of the cache key (docker's
classic builder); a bad value is refused with pflag's line and exit 125.  Where dockerd
runs, docker's build of the same Dockerfile must print the same hosts lines."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from conftest import require_dockerd, requires_root

pytestmark = requires_root

LAMINA = [sys.executable, "-m", "lamina"]
DOCKER = "/usr/bin/docker"
STEP = "RUN grep -E 'myhost|v6' /etc/hosts | sed 's/^/seen: /'"
SEEN = ["seen: 10.1.2.3\tmyhost", "seen: ::1\tv6"]


def _seen(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("seen: ")]


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar):
    root = tmp_path_factory.mktemp("add-host") / "store"
    p = subprocess.run([*LAMINA, "--root", str(root), "import", str(busybox_tar), "bb:1"], capture_output=True)
    assert p.returncode == 0, p.stderr
    return root


def _context(tmp_path, image: str):
    (tmp_path / "Dockerfile").write_text(f"FROM {image}\n{STEP}\n")
    return str(tmp_path)


def test_run_steps_see_the_added_hosts(root, tmp_path):
    ctx = _context(tmp_path, "bb:1")
    argv = [*LAMINA, "--root", str(root), "build", "--add-host", "myhost:10.1.2.3", "--add-host", "v6:::1"]
    p = subprocess.run([*argv, "-t", "ah:1", ctx], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert _seen(p.stdout) == SEEN
    # not in the cache key: the same build with another address is a cache hit, as docker's
    p = subprocess.run([*argv[:-4], "--add-host", "myhost:10.9.9.9", "-t", "ah:2", ctx], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert _seen(p.stdout) == [] and " ---> Using cache" in p.stdout


@pytest.mark.parametrize("value,error", [
    ("x", 'bad format for add-host: "x"'),
    (":1.2.3.4", 'bad format for add-host: ":1.2.3.4"'),
    ("a:1.2.3", 'invalid IP address in add-host: "1.2.3"'),
])
def test_a_bad_entry_is_refused_as_docker(root, tmp_path, value, error):
    p = subprocess.run([*LAMINA, "--root", str(root), "build", "--add-host", value, _context(tmp_path, "bb:1")],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout) == (125, "")
    assert p.stderr == f'invalid argument "{value}" for "--add-host" flag: {error}\nSee \'lamina build --help\'.\n'


def test_docker_build_sees_the_same(tmp_path, busybox_tar):
    require_dockerd()
    tag = f"lamina-test-addhost-{uuid.uuid4().hex[:8]}"
    subprocess.run([DOCKER, "import", str(busybox_tar), f"{tag}:base"], capture_output=True, check=True, timeout=120)
    try:
        p = subprocess.run([DOCKER, "build", "--no-cache", "--add-host", "myhost:10.1.2.3", "--add-host", "v6:::1",
                            "-t", f"{tag}:1", _context(tmp_path, f"{tag}:base")], capture_output=True, text=True,
                           timeout=300, env={**os.environ, "DOCKER_BUILDKIT": "0"})
        assert p.returncode == 0, p.stderr
        assert _seen(p.stdout) == SEEN
    finally:
        subprocess.run([DOCKER, "rmi", f"{tag}:1", f"{tag}:base"], capture_output=True, timeout=60)
