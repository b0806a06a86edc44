"""Shared fixtures: real base rootfs material made from Debian's busybox-static."""

from __future__ import annotations

import os
import re
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


def _runtime(root):
    """The OCI runtime lamina picks for store `root` (crun or runc; LAMINA_RUNTIME, which
    the tests' lamina subprocesses inherit, chooses as it does for them)."""
    from lamina.runtime.oci import select_runtime

    return select_runtime(os.environ.get("LAMINA_RUNTIME"), state_root=str(Path(root) / "runtime"))


def runtime_name(root) -> str:
    """"crun" or "runc": the runtime lamina runs store `root`'s containers with."""
    return _runtime(root).name


def runtime_state_dir(root) -> Path:
    """Where that runtime keeps its containers' state: `<store>/runtime/<name>/<id>`."""
    return Path(_runtime(root).state_root)


def runtime_state(root, cid: str) -> str | None:
    """The container's status as the runtime's `state` command reports it ("running",
    "paused", ...), None when the runtime does not know it."""
    state = _runtime(root).state(cid)
    return state["status"] if state else None


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


# ----------------------------------------------------------------------------- leak check at the end


def pytest_sessionfinish(session, exitstatus):
    """The run fails, loudly, when mounts are left under its temp root (pytest's
    basetemp: `--basetemp`, scripts/test's $LAMINA_TEST_TMP) or network namespace
    entries of its stores' containers are left, once its own teardown is over (session
    fixtures are finalised before this hook).  Another run's, outside the basetemp, never
    counts.  A grace ($LAMINA_TEST_LEAK_GRACE seconds, 15) for keepers still finishing
    their cleanup on a loaded machine."""
    import time

    basetemp = _basetemp(session.config)
    if basetemp is None:
        return
    deadline = time.monotonic() + float(os.environ.get("LAMINA_TEST_LEAK_GRACE", "15"))
    while True:
        mounts, namespaces = _mounts_under(basetemp), _netns_of_stores(basetemp)
        if not (mounts or namespaces) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not (mounts or namespaces):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"LEAKED after the test run (under {basetemp}):"]
    lines += [f"  mount: {m}" for m in mounts] + [f"  network namespace: {n}" for n in namespaces]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True, bold=True)
        else:
            print(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _basetemp(config) -> Path | None:
    if config.option.basetemp:
        return Path(os.path.abspath(config.option.basetemp))
    factory = getattr(config, "_tmp_path_factory", None)  # pytest's own, once a test asked for one
    made = getattr(factory, "_basetemp", None)
    return Path(made) if made is not None else None


def _mounts_under(top: Path) -> list[str]:
    """Mount points at or below `top`, from /proc/self/mountinfo (octal escapes undone)."""
    prefix = str(top).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == prefix[:-1] or point.startswith(prefix):
                found.append(point)
    return found


def _netns_of_stores(top: Path) -> list[str]:
    """Entries in lamina's netns dir named by a container of a store under `top` (the
    stores' events journals name every container they made, removed ones too)."""
    from lamina import runtime_root

    netns_dir = Path(runtime_root()) / "netns"
    try:
        entries = set(os.listdir(netns_dir))
    except OSError:
        return []
    if not entries:
        return []
    ids = set()
    for store in _stores_under(top):
        for name in ("events.jsonl.1", "events.jsonl"):
            try:
                with open(store / name, "rb") as f:
                    for line in f:
                        if b'"Type": "container"' in line:
                            ids.update(re.findall(rb'"id": "([0-9a-f]{64})"', line))
            except OSError:
                pass
        try:
            ids.update(n.encode() for n in os.listdir(store / "containers"))
        except OSError:
            pass
    return sorted(str(netns_dir / n) for n in entries if n.encode() in ids)


def _stores_under(top: Path, depth: int = 4):
    """lamina store roots (a dir holding lamina.db) up to `depth` levels below `top`;
    never below a store, never through a symlink (the extraction tests' trees are deep)."""
    try:
        with os.scandir(top) as it:
            subdirs = [e for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    if (top / "lamina.db").exists():
        yield top
        return
    if depth:
        for e in subdirs:
            yield from _stores_under(Path(e.path), depth - 1)
