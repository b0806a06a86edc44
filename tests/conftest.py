"""Shared fixtures: real base rootfs material made from Debian's busybox-static."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LAMINA_TEST_CACHE", REPO / ".cache"))


def is_root() -> bool:
    return os.geteuid() == 0


requires_root = pytest.mark.skipif(not is_root(), reason="SKIPPED LOUDLY: needs root (mounts, runc)")

DOCKER_CLI = "/usr/bin/docker"  # Debian's 20.10 CLI: the spec the side-by-side tests compare with


def require_dockerd() -> None:
    """Skip (loudly) a side-by-side test when dockerd does not answer: lamina never needs it."""
    import subprocess

    if not os.path.exists(DOCKER_CLI) or subprocess.run([DOCKER_CLI, "version"], capture_output=True,
                                                        timeout=30).returncode != 0:
        pytest.skip("SKIPPED LOUDLY: dockerd is not reachable")


def _busybox_binary() -> Path:
    """Debian's static busybox, fetched once with apt-get download into .cache/."""
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / "busybox"
    if target.exists():
        return target
    installed = Path("/bin/busybox")
    if installed.exists() and "statically linked" in subprocess.run(
        ["file", "-L", str(installed)], capture_output=True, text=True
    ).stdout:
        shutil.copy2(installed, target)
        return target
    work = CACHE / "busybox-deb"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    subprocess.run(["apt-get", "download", "busybox-static"], cwd=work, check=True, capture_output=True)
    deb = next(work.glob("busybox-static_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
    shutil.copy2(work / "x/bin/busybox", target)
    shutil.rmtree(work)
    return target


def make_busybox_rootfs(dest: Path) -> Path:
    """A tiny but real rootfs: busybox with its applet links, /etc/passwd, /etc/group."""
    bb = _busybox_binary()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "home", "var", "dev", "proc", "sys"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(bb, dest / "bin/busybox")
    os.chmod(dest / "bin/busybox", 0o755)
    applets = subprocess.run([str(bb), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet == "busybox":
            continue
        link = dest / "bin" / applet
        if not link.exists():
            os.symlink("busybox", link)
    (dest / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
    )
    (dest / "etc/group").write_text("root:x:0:\ndaemon:x:1:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n")
    return dest


def make_rootfs_tar(rootfs: Path, out: Path) -> Path:
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for entry in sorted(rootfs.iterdir()):
            tf.add(entry, arcname=entry.name)
    return out


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox-rootfs"))


@pytest.fixture(scope="session")
def busybox_tar(busybox_rootfs: Path, tmp_path_factory) -> Path:
    return make_rootfs_tar(busybox_rootfs, tmp_path_factory.mktemp("busybox-tar") / "busybox.tar")


@pytest.fixture
def stores(tmp_path):
    """stores("name") -> a lamina System on its own store root; closed afterwards."""
    from lamina.system import System

    made = []

    def new(name):
        s = System(str(tmp_path / name))
        made.append(s)
        return s

    yield new
    for s in made:
        s.close()
