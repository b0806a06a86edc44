"""Bad input and faults: non-tar and truncated imports, kill -9 mid-import and
mid-commit, concurrent commits and runs.  After each, the store must pass
`system check`, hold no half image and no junk."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import requires_root
from test_cli_core import LAMINA, lamina, out

pytestmark = requires_root


def junk(root) -> list[str]:
    left = []
    for d in ("ingest", "tmp"):
        p = root / d
        if p.exists():
            left += [f"{d}/{n}" for n in os.listdir(p)]
    return left


def assert_clean(root):
    p = lamina(root, "system", "check", check=False)
    assert p.returncode == 0, out(p) + p.stderr.decode()
    assert junk(root) == []


@pytest.mark.parametrize("payload,what", [
    (b"this is not a tar archive at all\n" * 100, "not a tar"),
    (gzip.compress(b"\x00garbage" * 1000), "gzip of garbage"),
])
def test_import_rejects_non_tar(tmp_path, payload, what):
    root = tmp_path / "store"
    bad = tmp_path / "bad.tar"
    bad.write_bytes(payload)
    p = lamina(root, "import", str(bad), "bad:1", check=False)
    assert p.returncode != 0, what
    err = p.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert out(lamina(root, "images", "-q")) == ""
    assert_clean(root)


def test_import_truncated(tmp_path, busybox_tar):
    root = tmp_path / "store"
    data = busybox_tar.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2 + 100])
    p = lamina(root, "import", str(cut), "cut:1", check=False)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr.decode() and len(p.stderr.decode().strip().splitlines()) == 1
    assert out(lamina(root, "images", "-q")) == ""
    assert_clean(root)


def test_import_missing_file(tmp_path):
    p = lamina(tmp_path / "store", "import", str(tmp_path / "nope.tar"), check=False)
    assert p.returncode == 1 and "nope.tar" in p.stderr.decode()


def test_kill_during_import(tmp_path, busybox_tar):
    """SIGKILL while the tar is streaming in: no image, and the next command cleans up."""
    root = tmp_path / "store"
    lamina(root, "images")  # create the store
    proc = subprocess.Popen(LAMINA + ["--root", str(root), "import", "-", "k:1"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = busybox_tar.read_bytes()
    proc.stdin.write(data[: len(data) // 2])
    proc.stdin.flush()
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert out(lamina(root, "images", "-q")) == ""
    assert_clean(root)
    # and a retry succeeds
    lamina(root, "import", str(busybox_tar), "k:1")
    assert_clean(root)


def test_kill_during_commit(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "bb:1")
    lamina(root, "run", "--name", "big", "bb:1", "sh", "-c",
           "mkdir /data && i=0; while [ $i -lt 3000 ]; do echo $i > /data/f$i; i=$((i+1)); done")
    proc = subprocess.Popen(LAMINA + ["--root", str(root), "commit", "big", "bb:2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.25)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    tags = out(lamina(root, "images", "--format", "{{.Repository}}:{{.Tag}}")).split()
    assert "bb:1" in tags
    if "bb:2" in tags:  # the commit finished before the kill: then it must be whole
        assert out(lamina(root, "run", "--rm", "bb:2", "cat", "/data/f2999")) == "2999\n"
    assert_clean(root)
    # the container is intact and still commits
    lamina(root, "commit", "big", "bb:3")
    assert out(lamina(root, "run", "--rm", "bb:3", "cat", "/data/f2999")) == "2999\n"
    assert_clean(root)


def test_concurrent_commits_and_runs(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "bb:1")
    for name in ("ca", "cb"):
        lamina(root, "run", "--name", name, "bb:1", "sh", "-c", f"echo {name} > /who")
    results = {}

    def go(key, *args):
        results[key] = lamina(root, *args, check=False)

    threads = [threading.Thread(target=go, args=("commit-a", "commit", "ca", "img:a")),
               threading.Thread(target=go, args=("commit-b", "commit", "cb", "img:b"))]
    threads += [threading.Thread(target=go, args=(f"run{i}", "run", "--rm", "bb:1", "sh", "-c", f"echo {i}"))
                for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key, p in results.items():
        assert p.returncode == 0, (key, p.stderr.decode())
    for i in range(4):
        assert out(results[f"run{i}"]) == f"{i}\n"
    assert out(lamina(root, "run", "--rm", "img:a", "cat", "/who")) == "ca\n"
    assert out(lamina(root, "run", "--rm", "img:b", "cat", "/who")) == "cb\n"
    assert_clean(root)


def test_prune_removes_only_unreferenced(tmp_path, busybox_tar):
    from lamina.system import System

    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "bb:1")
    system = System(str(root))
    try:
        orphan = system.content.put_bytes(b"left by a killed pull")
    finally:
        system.close()
    assert "1 unreferenced blob" in out(lamina(root, "system", "check"))
    assert out(lamina(root, "system", "prune")).startswith("Total reclaimed space: 21B")
    assert not (root / "blobs" / "sha256" / orphan.hex).exists()
    assert out(lamina(root, "run", "--rm", "bb:1", "echo", "still here")) == "still here\n"
    assert_clean(root)
