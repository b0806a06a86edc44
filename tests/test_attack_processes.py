"""Attack tests (issue 8): cleanup inside a container root, killed fronts, WORKDIR links.

* High 4: a RUN step swaps the parent of a --mount stub for a link to a host
  directory; the stub cleanup must not delete the host's file or directory.
* Medium 10: `run` (with or without -t, --rm) or `build` killed with SIGKILL must
  leave no container process, runc, mount or network behind, and the record must be
  true (Exited (137) only once it is); a container whose keeper died too is reaped
  by the next command.
* Low 11: WORKDIR (and COPY's destination) through a link to a missing path is
  created inside the root; a WORKDIR that is not a directory is a one-line error.

All on real overlay mounts (copy driver too where it differs) and real runc, as
root; after each fault `system check` must still pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import requires_root

pytestmark = requires_root
LAMINA = [sys.executable, "-m", "lamina"]


def lamina(root, *args, check=True, timeout=180):
    p = subprocess.run(LAMINA + ["--root", str(root)] + [str(a) for a in args], capture_output=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout.decode()}\n{p.stderr.decode()}")
    return p


def assert_store_ok(root) -> None:
    p = lamina(root, "system", "check", check=False)
    assert p.returncode == 0 and p.stdout.decode().strip().endswith("ok"), p.stdout + p.stderr


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar):
    r = tmp_path_factory.mktemp("attack-procs") / "store"
    lamina(r, "import", busybox_tar, "bb:1")
    return r


def _context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    d = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    (d / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (d / name).write_text(text)
    return d


def _marker() -> str:
    """A `sleep` argument no other process on the host has (another test, another run):
    nine random digits, a sleep of years that the test ends."""
    return str(10**8 + int.from_bytes(os.urandom(4), "big") % (9 * 10**8))


def _pids_with_cmdline(*argv: str) -> list[int]:
    """Processes whose argv is exactly `argv` (the container's own process, not the
    front or the watchdog, whose argv merely contains it)."""
    want = [a.encode() for a in argv]
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            got = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if got == want:
            out.append(int(entry))
    return out


def _store_processes(root) -> list[str]:
    """Command lines of processes that name the store (fronts, watchdogs, runc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(root).encode() in cmdline:
                out.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return out


def _wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _status(root, name: str) -> str:
    p = lamina(root, "ps", "-a", "--format", "{{.Names}} {{.Status}}")
    for line in p.stdout.decode().splitlines():
        if line.split(" ", 1)[0] == name:
            return line.split(" ", 1)[1]
    return ""


def _mounted_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


# ----------------------------------------------------------------------------- High 4


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_mount_stub_cleanup_never_follows_a_swapped_parent(root, tmp_path, driver):
    """The step replaces the stubs' parents with links to host directories holding an
    empty dir / an empty file of the stubs' names: both must survive the build."""
    victim = tmp_path / "host-victim"
    (victim / "tdir").mkdir(parents=True)
    (victim / "tfile").write_bytes(b"")
    # /a and /b are made by the stubs (upper-only dirs, so overlay can rename them)
    d = _context(tmp_path, f"""FROM bb:1
RUN --network=none --mount=type=tmpfs,target=/a/tdir --mount=type=bind,source=data,target=/b/tfile \\
    sh -c 'mv /a /a.old && ln -s {victim} /a && mv /b /b.old && ln -s {victim} /b'
""", {"data": "payload\n"})
    lamina(root, "--storage-driver", driver, "build", "-t", "stubs:1", d)
    assert (victim / "tdir").is_dir(), "the host directory behind the swapped link was deleted"
    assert (victim / "tfile").is_file(), "the host file behind the swapped link was deleted"
    assert_store_ok(root)


def test_mount_stubs_still_leave_no_trace_in_the_layer(root, tmp_path):
    """The no-follow cleanup still removes the stubs it made (nested, file and dir)."""
    d = _context(tmp_path, """FROM bb:1
RUN --network=none --mount=type=tmpfs,target=/m1/deep/t --mount=type=bind,source=data,target=/m2/f \\
    sh -c 'test -d /m1/deep/t && test -f /m2/f && touch /kept'
""", {"data": "x\n"})
    lamina(root, "build", "-t", "stubs:2", d)
    out = lamina(root, "run", "--rm", "--network", "none", "stubs:2", "sh", "-c",
                 "ls -d /m1 /m2 2>&1; ls /kept").stdout.decode()
    assert out.splitlines() == ["ls: /m1: No such file or directory", "ls: /m2: No such file or directory", "/kept"]
    assert_store_ok(root)


# ----------------------------------------------------------------------------- Medium 10


def _start_front(root, *args) -> subprocess.Popen:
    return subprocess.Popen(LAMINA + ["--root", str(root), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_front(front: subprocess.Popen) -> None:
    front.send_signal(signal.SIGKILL)
    front.wait(timeout=10)


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_kill9_run_leaves_no_container_running(root, driver):
    marker = _marker()
    front = _start_front(root, "--storage-driver", driver, "run", "--name", "k9", "--network", "none", "bb:1",
                         "sleep", marker)
    try:
        _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the container to start")
        _wait_for(lambda: _status(root, "k9").startswith("Up"), what="the record to say Up")
    finally:
        _kill_front(front)
    _wait_for(lambda: not _pids_with_cmdline("sleep", marker), what="the container process to die")
    _wait_for(lambda: _status(root, "k9").startswith("Exited (137)"), what="Exited (137)")
    _wait_for(lambda: not _store_processes(root), what="runc and the watchdog to end")
    assert not _mounted_under(root / "containers")
    assert_store_ok(root)
    lamina(root, "rm", "k9")


def test_kill9_run_rm_removes_the_container(root):
    marker = _marker()
    front = _start_front(root, "run", "--rm", "--name", "k9rm", "--network", "none", "bb:1", "sleep", marker)
    try:
        _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the container to start")
    finally:
        _kill_front(front)
    _wait_for(lambda: not _pids_with_cmdline("sleep", marker), what="the container process to die")
    _wait_for(lambda: _status(root, "k9rm") == "", what="the --rm container to be removed")
    _wait_for(lambda: not _store_processes(root), what="runc and the watchdog to end")
    assert not _mounted_under(root / "containers")
    assert_store_ok(root)


def test_kill9_build_stops_its_run_step(root, tmp_path):
    marker = _marker()
    d = _context(tmp_path, f"FROM bb:1\nRUN --network=none sleep {marker}\n")
    front = _start_front(root, "build", "-t", "killed:1", d)
    try:
        _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the RUN step to start")
    finally:
        _kill_front(front)
    _wait_for(lambda: not _pids_with_cmdline("sleep", marker), what="the RUN step to die")
    # Stopped and removed, as docker's builder does when its client is killed.
    _wait_for(lambda: not lamina(root, "ps", "-aq").stdout.strip(), what="the step container to be removed")
    _wait_for(lambda: not _store_processes(root), what="runc and the watchdog to end")
    assert not _mounted_under(root / "containers")
    assert_store_ok(root)


def test_kill9_run_it_leaves_no_container_running(root):
    """The -t path (runc detached, the front relays the pty) has the same watchdog."""
    import pty

    marker = _marker()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(sys.executable, LAMINA + ["--root", str(root), "run", "-it", "--name", "k9tty",
                                               "--network", "none", "bb:1", "sleep", marker])
        finally:
            os._exit(127)
    try:
        _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the container to start")
        _wait_for(lambda: _status(root, "k9tty").startswith("Up"), what="the record to say Up")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    _wait_for(lambda: not _pids_with_cmdline("sleep", marker), what="the container process to die")
    _wait_for(lambda: _status(root, "k9tty").startswith("Exited (137)"), what="Exited (137)")
    _wait_for(lambda: not _store_processes(root), what="runc and the watchdog to end")
    assert not _mounted_under(root / "containers")
    assert_store_ok(root)
    lamina(root, "rm", "k9tty")


def test_kill9_run_releases_the_bridge_network(root):
    """The watchdog's cleanup releases the container's network (netns mount, veth)."""
    marker = _marker()
    front = _start_front(root, "run", "--name", "k9net", "bb:1", "sleep", marker)
    try:
        _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the container to start")
        info = json.loads(lamina(root, "inspect", "k9net").stdout)[0]
    finally:
        _kill_front(front)
    sandbox = (info.get("NetworkSettings") or {}).get("SandboxKey") or ""
    _wait_for(lambda: not _pids_with_cmdline("sleep", marker), what="the container process to die")
    _wait_for(lambda: _status(root, "k9net").startswith("Exited (137)"), what="Exited (137)")
    _wait_for(lambda: not _store_processes(root), what="runc and the watchdog to end")
    if not sandbox:
        lamina(root, "rm", "k9net")
        pytest.skip("no bridge network on this host")
    with open("/proc/self/mountinfo") as f:
        assert sandbox not in f.read()
    assert not os.path.exists(sandbox)
    assert_store_ok(root)
    lamina(root, "rm", "k9net")


def test_dead_keeper_is_reaped_by_the_next_command(root):
    """Front and watchdog both killed (OOM, a kill of everything): the next command,
    not a lying `ps`, takes the container down."""
    marker = _marker()
    front = _start_front(root, "run", "--name", "k9both", "--network", "none", "bb:1", "sleep", marker)
    try:
        _wait_for(lambda: _pids_with_cmdline("sleep", marker), what="the container to start")
        _wait_for(lambda: _status(root, "k9both").startswith("Up"), what="the record to say Up")
        info = json.loads(lamina(root, "inspect", "k9both").stdout)[0]
        keeper = info["State"]["Pid"]
        if keeper and keeper != front.pid:
            os.kill(keeper, signal.SIGKILL)  # the watchdog first, so it cannot react
    finally:
        _kill_front(front)
    time.sleep(0.5)
    status = _status(root, "k9both")  # the next command
    assert not _pids_with_cmdline("sleep", marker), f"container still running while ps says {status!r}"
    assert status.startswith("Exited (137)")
    _wait_for(lambda: not _store_processes(root), what="the orphaned runc to end")
    assert not _mounted_under(root / "containers")
    assert_store_ok(root)
    lamina(root, "rm", "k9both")


def test_watchdog_is_shielded_and_holds_nothing(root):
    """Own session (a terminal's Ctrl-C or hang-up does not reach it), cwd /, and no
    inherited fd but stdio on /dev/null and its pipe."""
    marker = _marker()
    front = _start_front(root, "run", "--rm", "--name", "wdcheck", "--network", "none", "bb:1", "sleep", marker)
    try:
        _wait_for(lambda: _status(root, "wdcheck").startswith("Up"), what="the record to say Up")
        keeper = json.loads(lamina(root, "inspect", "wdcheck").stdout)[0]["State"]["Pid"]
        assert keeper != front.pid
        assert os.getsid(keeper) == keeper != os.getsid(front.pid)
        assert os.readlink(f"/proc/{keeper}/cwd") == "/"
        fds = sorted(int(n) for n in os.listdir(f"/proc/{keeper}/fd"))
        assert fds == [0, 1, 2, 3]
        assert all(os.readlink(f"/proc/{keeper}/fd/{n}") == "/dev/null" for n in (0, 1, 2))
        assert os.readlink(f"/proc/{keeper}/fd/3").startswith("pipe:")
    finally:
        _kill_front(front)
    _wait_for(lambda: not _pids_with_cmdline("sleep", marker), what="the container to end")
    _wait_for(lambda: _status(root, "wdcheck") == "", what="the --rm container to be removed")
    _wait_for(lambda: not _store_processes(root), what="runc and the watchdog to end")


def test_normal_run_leaves_no_watchdog(root):
    """A finished run leaves no process behind: its watchdog ends with it."""
    p = lamina(root, "run", "--rm", "--network", "none", "bb:1", "true")
    assert p.returncode == 0
    assert not _store_processes(root), "a process of this store outlived the run"


# ----------------------------------------------------------------------------- Low 11


def test_workdir_through_a_link_to_a_missing_path(root, tmp_path):
    missing = f"/h3-missing-{uuid.uuid4().hex[:8]}"
    d = _context(tmp_path, f"""FROM bb:1
RUN --network=none ln -s {missing}/deep/dir /w
WORKDIR /w
RUN --network=none pwd > /where; test -d {missing}/deep/dir
WORKDIR /w/sub
""")
    p = lamina(root, "build", "-t", "wd:1", d)
    assert b"Traceback" not in p.stderr
    out = lamina(root, "run", "--rm", "--network", "none", "wd:1", "sh", "-c", "cat /where; pwd").stdout.decode()
    assert out.split() == [f"{missing}/deep/dir", f"{missing}/deep/dir/sub"]
    assert not os.path.exists(missing), "WORKDIR created a directory on the host"
    # run -w through the same kind of link
    out = lamina(root, "run", "--rm", "--network", "none", "-w", "/w/x/y", "wd:1", "pwd").stdout.decode()
    assert out.strip() == f"{missing}/deep/dir/x/y"
    assert_store_ok(root)


def test_workdir_that_is_not_a_directory_is_one_line_error(root, tmp_path):
    p = lamina(root, "run", "--rm", "--network", "none", "-w", "/etc/passwd/x", "bb:1", "pwd", check=False)
    err = p.stderr.decode()
    assert p.returncode == 125 and "Traceback" not in err and "not a directory" in err, err
    d = _context(tmp_path, "FROM bb:1\nWORKDIR /etc/passwd/x\n")
    p = lamina(root, "build", d, check=False)
    err = p.stderr.decode()
    assert p.returncode != 0 and "Traceback" not in err and "WORKDIR /etc/passwd/x: not a directory" in err, err
    assert_store_ok(root)


def test_copy_through_a_link_to_a_missing_path(root, tmp_path):
    """Same class for COPY's destination: docker creates the directories, in the root."""
    missing = f"/h3-missing-{uuid.uuid4().hex[:8]}"
    d = _context(tmp_path, f"""FROM bb:1
RUN --network=none ln -s {missing}/x /dst
COPY f /dst/
""", {"f": "hello\n"})
    p = lamina(root, "build", "-t", "cpl:1", d)
    assert b"Traceback" not in p.stderr
    out = lamina(root, "run", "--rm", "--network", "none", "cpl:1", "cat", f"{missing}/x/f").stdout.decode()
    assert out == "hello\n"
    assert not os.path.exists(missing), "COPY created a directory on the host"
    assert_store_ok(root)


@requires_root
def test_killed_builds_read_only_view_is_unmounted_by_the_next_command(root):
    """A build killed while a `COPY --from` view of an image is mounted leaves a
    read-only overlay under tmp/: the next command's recovery unmounts and removes it."""
    script = (
        "import os, sys\n"
        "from lamina.system import System\n"
        "from lamina.image import Image\n"
        "from lamina.snapshot.view import open_view\n"
        "s = System(sys.argv[1])\n"
        "image = s.images.resolve('bb:1')\n"
        "print(open_view(s, Image.load(s, image.id).layers()), flush=True)\n"
        "os._exit(0)  # dies holding the view, as a killed build would\n"
    )
    p = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    view = p.stdout.strip()
    with open("/proc/self/mountinfo") as f:
        assert f" {view} " in f.read(), "the view was not mounted: the test proves nothing"
    lamina(root, "images")  # any command recovers what dead processes left
    with open("/proc/self/mountinfo") as f:
        assert view not in f.read()
    assert not os.path.exists(os.path.dirname(view))
    assert_store_ok(root)
