"""A foreground `run -t` keeps docker's json-file log (issue 12): what the pty showed,
`\\r\\n` and all, as one "stdout" stream (dockerd logs a tty container so); with
`--log-driver none` nothing, and `logs` says docker's text.

Recorded with docker 20.10 on dockerd (`docker run -t --name x IMAGE sh -c …; docker
logs x`); where dockerd runs the same is checked live (the container removed after).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import require_dockerd, requires_root
from test_cli_interactive import run_on_pty

pytestmark = requires_root

LAMINA = [sys.executable, "-m", "lamina"]
DOCKER = "/usr/bin/docker"
SCRIPT = "echo hi; echo err >&2; printf 'a\\tb<&>'; exit 3"
LOGGED = b"hi\r\nerr\r\na\tb<&>"  # `docker logs`: the entries' bytes, the last without a newline
ENTRIES = [("stdout", "hi\r\n"), ("stdout", "err\r\n"), ("stdout", "a\tb<&>")]


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar):
    root = tmp_path_factory.mktemp("tty-log") / "store"
    p = subprocess.run([*LAMINA, "--root", str(root), "import", str(busybox_tar), "bb:1"], capture_output=True)
    assert p.returncode == 0, p.stderr
    return root


def _entries(path: str) -> list[tuple[str, str]]:
    with open(path, "rb") as f:
        return [(e["stream"], e["log"]) for e in map(json.loads, f.read().splitlines())]


def _run_and_log(cli: list[str], name: str, *flags: str, image: str = "bb:1"):
    """`run -t` on a pty, then `logs`: (exit code, what the pty showed, the logs process)."""
    code, output = run_on_pty([*cli, "run", "-t", *flags, "--name", name, image, "sh", "-c", SCRIPT])
    return code, output, subprocess.run([*cli, "logs", name], capture_output=True, timeout=60)


def test_a_foreground_tty_run_keeps_the_pty_output(root):
    cli = [*LAMINA, "--root", str(root)]
    code, output, logs = _run_and_log(cli, "tty-logged")
    assert code == 3
    assert output.replace(b"\r", b"").endswith(b"hi\nerr\na\tb<&>")  # our pty adds its own \r
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, LOGGED, b"")
    path = subprocess.run([*cli, "inspect", "-f", "{{.LogPath}}", "tty-logged"], capture_output=True,
                          text=True).stdout.strip()
    assert _entries(path) == ENTRIES
    with open(path, "rb") as f:
        assert f.readline().startswith(b'{"log":"hi\\r\\n","stream":"stdout","time":"')


def test_interactive_tty_run_keeps_its_log_and_none_keeps_nothing(root):
    cli = [*LAMINA, "--root", str(root)]
    code, output = run_on_pty([*cli, "run", "-it", "--name", "tty-it", "bb:1", "sh", "-c", "echo it-out"])
    assert code == 0, output
    logs = subprocess.run([*cli, "logs", "tty-it"], capture_output=True, timeout=60)
    assert logs.returncode == 0 and logs.stdout.endswith(b"it-out\r\n"), logs
    code, _, logs = _run_and_log(cli, "tty-none", "--log-driver", "none")
    assert code == 3
    assert (logs.returncode, logs.stdout, logs.stderr) == (
        1, b"", b"Error response from daemon: configured logging driver does not support reading\n")
    ctr = subprocess.run([*cli, "inspect", "-f", "{{.Id}}", "tty-none"], capture_output=True, text=True).stdout
    assert not [n for n in os.listdir(root / "containers" / ctr.strip()) if n.endswith("-json.log")]


def test_docker_logs_the_same(root, busybox_tar):
    require_dockerd()
    tag = f"lamina-test-ttylog-{uuid.uuid4().hex[:8]}"
    subprocess.run([DOCKER, "import", str(busybox_tar), f"{tag}:1"], capture_output=True, check=True, timeout=120)
    try:
        code, _, logs = _run_and_log([DOCKER], tag, image=f"{tag}:1")
        assert (code, logs.returncode, logs.stdout, logs.stderr) == (3, 0, LOGGED, b"")
        path = subprocess.run([DOCKER, "inspect", "-f", "{{.LogPath}}", tag], capture_output=True,
                              text=True).stdout.strip()
        assert _entries(path) == ENTRIES
    finally:
        subprocess.run([DOCKER, "rm", "-f", tag], capture_output=True, timeout=60)
        subprocess.run([DOCKER, "rmi", f"{tag}:1"], capture_output=True, timeout=60)
