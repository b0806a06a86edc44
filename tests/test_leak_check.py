"""The suite's own leak check (conftest.py `pytest_sessionfinish`): a run that leaves a
mount under its basetemp, or a network namespace entry of one of its stores'
containers, fails and lists them; a mount of another run, outside its basetemp, does
not count.  Inner pytest runs in subprocesses with conftest.py as their plugin.
Also `system check`'s note on network namespace files no container keeps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import requires_root

TESTS = Path(__file__).resolve().parent

LEAKY = '''
import os, subprocess

def test_leaves_a_mount_and_a_netns_entry(tmp_path):
    (tmp_path / "m").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(tmp_path / "m")], check=True)
    store = tmp_path / "store"
    (store / "containers").mkdir(parents=True)
    (store / "lamina.db").touch()
    cid = os.environ["LEAK_CID"]
    (store / "events.jsonl").write_text(
        '{"status": "create", "id": "%s", "Type": "container", "Action": "create"}\\n' % cid)
    open(os.path.join(os.environ["LEAK_NETNS"], cid), "w").close()
'''

CLEAN = '''
def test_nothing(tmp_path):
    (tmp_path / "x").write_text("x")
'''


def _inner(tmp_path: Path, name: str, body: str, env: dict) -> subprocess.CompletedProcess:
    work = tmp_path / name
    work.mkdir()
    (work / f"test_{name}.py").write_text(body)
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "LAMINA_TEST_LEAK_GRACE": "0.5", **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "--rootdir", str(work), "--basetemp", str(work / "bt"), str(work)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=work)


def _unmount_under(top: Path) -> None:
    from conftest import _mounts_under

    for point in sorted(_mounts_under(top), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


@requires_root
def test_a_mount_outside_the_basetemp_does_not_count(tmp_path):
    other = tmp_path / "another-run"
    other.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(other)], check=True)
    try:
        p = _inner(tmp_path, "clean", CLEAN, {})
        assert p.returncode == 0, p.stdout + p.stderr
        assert "LEAKED" not in p.stdout
    finally:
        _unmount_under(other)


@requires_root
def test_a_leaked_mount_and_netns_entry_fail_the_run_and_are_listed(tmp_path):
    from lamina import runtime_root

    netns_dir = Path(runtime_root()) / "netns"
    netns_dir.mkdir(parents=True, exist_ok=True)
    cid = os.urandom(32).hex()
    try:
        p = _inner(tmp_path, "leaky", LEAKY, {"LEAK_CID": cid, "LEAK_NETNS": str(netns_dir)})
        assert p.returncode == 1, p.stdout + p.stderr
        assert "1 passed" in p.stdout
        bt = tmp_path / "leaky" / "bt"
        assert "LEAKED after the test run" in p.stdout
        listed = [line.strip() for line in p.stdout.splitlines() if line.startswith("  ")]
        assert any(line.startswith("mount: ") and line.endswith("/m") and str(bt) in line for line in listed), \
            p.stdout
        assert f"network namespace: {netns_dir / cid}" in listed, p.stdout
    finally:
        _unmount_under(tmp_path / "leaky")
        try:
            os.unlink(netns_dir / cid)
        except FileNotFoundError:
            pass


@requires_root
def test_system_check_notes_netns_files_no_container_keeps(tmp_path):
    """A bare entry, and a bound namespace whose last process ended, are orphans; a
    namespace a process is in is not, nor an entry younger than the age limit."""
    import time

    from lamina.network import netns

    os.makedirs(netns.NETNS_DIR, exist_ok=True)
    bare, bound = os.urandom(32).hex(), os.urandom(32).hex()
    sleeper = None
    try:
        open(netns.path_for(bare), "w").close()
        assert netns.path_for(bare) not in netns.orphans(set(), min_age=60)  # too young
        assert netns.path_for(bare) in netns.orphans(set(), min_age=0)
        assert netns.path_for(bare) not in netns.orphans({bare}, min_age=0)  # the store's own
        open(netns.path_for(bound), "w").close()
        sleeper = subprocess.Popen(["unshare", f"--net={netns.path_for(bound)}", "sleep", "1000"])
        deadline = time.monotonic() + 30
        while not os.path.ismount(netns.path_for(bound)) or \
                os.stat(f"/proc/{sleeper.pid}/ns/net").st_ino != os.stat(netns.path_for(bound)).st_ino:
            assert time.monotonic() < deadline, "unshare did not bind its namespace"
            time.sleep(0.02)
        assert netns.path_for(bound) not in netns.orphans(set(), min_age=0)  # a process is in it
        sleeper.kill()
        sleeper.wait()
        sleeper = None
        assert netns.path_for(bound) in netns.orphans(set(), min_age=0)
        old = time.time() - 120
        os.utime(netns.path_for(bare), (old, old))
        p = subprocess.run([sys.executable, "-m", "lamina", "--root", str(tmp_path / "store"), "system", "check"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"note: network namespace {netns.path_for(bare)}: no container of this store owns it" in p.stdout
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        for name in (bare, bound):
            subprocess.run(["umount", netns.path_for(name)], capture_output=True)
            try:
                os.unlink(netns.path_for(name))
            except FileNotFoundError:
                pass
