"""The runc driver against the real runc, with bundles built from the busybox rootfs fixture."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from itertools import count
from pathlib import Path

import pytest
from conftest import requires_root

from lamina.errors import ContainerCommandNotExecutable, ContainerCommandNotFound, RuntimeFailure
from lamina.runtime.oci import CliRuntime, _crun_works, select_runtime
from lamina.runtime.rootfs import lookup_user
from lamina.runtime.spec import RunSpec, write_bundle
from lamina.runtime.specmounts import BindMount

pytestmark = [requires_root, pytest.mark.root]
_ids = count()

# What a child process runs to drive one container with our real stdin/stdio.
CHILD = """
import json, sys
from lamina.runtime.oci import select_runtime
a = json.loads(sys.argv[1])
rt = select_runtime("runc", state_root=a["store"] + "/runtime")
raise SystemExit(rt.run(a["id"], a["bundle"], tty=a["tty"], interactive=a["interactive"]))
"""


def have_runc() -> bool:
    return shutil.which("runc") is not None


@pytest.fixture(scope="module")
def rootfs(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not have_runc():
        pytest.skip("SKIPPED LOUDLY: runc is not installed")
    dest = tmp_path_factory.mktemp("runtime") / "rootfs"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    os.chmod(dest, 0o755)  # mktemp dirs are 0700: a non-root container user could not reach /bin
    return dest


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture()
def runtime(store: Path) -> CliRuntime:
    """The runtime lamina would pick (crun where it works; LAMINA_RUNTIME=runc for runc)."""
    return select_runtime(os.environ.get("LAMINA_RUNTIME"), state_root=str(store / "runtime"))


def new_id() -> str:
    return f"lamina-test-{os.getpid()}-{next(_ids)}"


def bundle(tmp_path: Path, rootfs: Path, *args: str, **kw) -> str:
    b = tmp_path / f"bundle-{next(_ids)}"
    kw.setdefault("hostname", "lamina-test")
    write_bundle(str(b), RunSpec(args=args, rootfs=str(rootfs), **kw))
    return str(b)


def run(runtime: CliRuntime, tmp_path: Path, rootfs: Path, *args: str, **kw) -> int:
    return runtime.run(new_id(), bundle(tmp_path, rootfs, *args, **kw), tty=False, interactive=False)


def output(capfd: pytest.CaptureFixture, runtime: CliRuntime, tmp_path: Path, rootfs: Path, script: str, **kw) -> str:
    capfd.readouterr()
    rc = run(runtime, tmp_path, rootfs, "sh", "-c", script, **kw)
    out = capfd.readouterr().out
    assert rc == 0, out
    return out


# --------------------------------------------------------------------------- exit codes


def test_true_is_zero(runtime: CliRuntime, tmp_path: Path, rootfs: Path, store: Path) -> None:
    assert run(runtime, tmp_path, rootfs, "true") == 0
    state_root = Path(runtime.state_root)
    assert not state_root.exists() or os.listdir(state_root) == []  # nothing left behind


def test_exit_code(runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    assert run(runtime, tmp_path, rootfs, "sh", "-c", "exit 3") == 3


def test_killed_process_is_137(runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    # PID 1 ignores signals it has no handler for (even from inside), so kill a child
    # shell; `; exit $?` keeps the outer shell from exec'ing it as PID 1.
    assert run(runtime, tmp_path, rootfs, "sh", "-c", 'sh -c "kill -9 \\$\\$"; exit $?') == 137


def test_signal_from_outside_is_128_plus_n(runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    cid = new_id()
    b = bundle(tmp_path, rootfs, "sleep", "30")
    result: list = []
    t = threading.Thread(target=lambda: result.append(runtime.run(cid, b, tty=False, interactive=False)))
    t.start()
    try:
        _wait_running(runtime, cid)
        runtime.kill(cid, "KILL")
    finally:
        t.join(60)
    assert result == [137]
    assert runtime.state(cid) is None


def test_runc_killed_container_is_cleaned_up(runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    cid = new_id()
    b = bundle(tmp_path, rootfs, "sleep", "30")
    result: list = []
    t = threading.Thread(target=lambda: result.append(runtime.run(cid, b, tty=False, interactive=False)))
    t.start()
    try:
        st = _wait_running(runtime, cid)
        runc_pid = _find_process(["run", cid], runtime.name)
        os.kill(runc_pid, signal.SIGKILL)
    finally:
        t.join(60)
    assert result == [137]  # runc died of SIGKILL
    assert runtime.state(cid) is None  # run() deleted the orphaned container
    assert not os.path.exists(os.path.join(runtime.state_root, cid))
    assert _is_gone(st["pid"])


def _wait_running(runtime: CliRuntime, cid: str, timeout: float = 60) -> dict:
    """runc's state once it says running (a loaded machine may take seconds to get there)."""
    deadline = time.monotonic() + timeout
    while True:
        st = runtime.state(cid)
        if st and st["status"] == "running":
            return st
        assert time.monotonic() < deadline, f"{cid} not running: {st}"
        time.sleep(0.02)


def _find_process(words: list[str], program: str) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode().split("\0")
        except OSError:
            continue
        if all(w in argv for w in words) and argv[0].endswith(program):
            return int(entry)
    raise AssertionError(f"no process with {words}")


def _is_gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                state = next(line for line in f if line.startswith("State:"))
            if "Z" in state:
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


# --------------------------------------------------------------------------- process settings


def test_hostname_env_cwd(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    out = output(
        capfd, runtime, tmp_path, rootfs, 'hostname; echo "$FOO|$HOSTNAME"; pwd; cat /proc/1/environ | tr "\\0" " "',
        hostname="box1", env=("FOO=bar baz",), cwd="/tmp/work",
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[:3] == ["box1", "bar baz|box1", "/tmp/work"]
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in lines[3]


def test_user_applied(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    out = output(capfd, runtime, tmp_path, rootfs, "id", user=lookup_user(str(rootfs), "1000:1000"))
    assert out.strip() == "uid=1000(app) gid=1000(app) groups=1000(app)"
    out = output(capfd, runtime, tmp_path, rootfs, "id", user=lookup_user(str(rootfs), "app"))
    assert out.strip() == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"


def test_capabilities_match_docker(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    caps = dict(line.split(":\t") for line in output(capfd, runtime, tmp_path, rootfs, "grep Cap /proc/self/status").splitlines())
    assert caps == {
        "CapInh": "0000000000000000",
        "CapPrm": "00000000a80425fb",
        "CapEff": "00000000a80425fb",
        "CapBnd": "00000000a80425fb",
        "CapAmb": "0000000000000000",
    }
    user = output(capfd, runtime, tmp_path, rootfs, "grep Cap /proc/self/status", user=lookup_user(str(rootfs), "1000"))
    assert "CapEff:\t0000000000000000" in user and "CapBnd:\t00000000a80425fb" in user


def test_proc_masked_and_readonly(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    out = output(
        capfd, runtime, tmp_path, rootfs,
        "cat /proc/kcore >/dev/null 2>&1 && echo kcore-readable;"
        " echo timer_list=$(wc -c < /proc/timer_list);"
        " echo keys=$(wc -c < /proc/keys);"
        " echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable;"
        " echo firmware=$(ls /sys/firmware | wc -l);"
        " touch /sys/x 2>/dev/null && echo sys-writable2; true",
    )  # fmt: skip
    assert "kcore-readable" not in out and "writable" not in out
    assert "timer_list=0" in out and "keys=0" in out and "firmware=0" in out


def test_network_none_has_only_lo(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    out = output(capfd, runtime, tmp_path, rootfs, "ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1", network="none")
    assert out.split() == ["lo", "lo"]


def test_network_host_sees_host_interfaces(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    out = output(capfd, runtime, tmp_path, rootfs, "ls /sys/class/net", network="host")
    assert sorted(out.split()) == sorted(os.listdir("/sys/class/net"))


def test_bind_mounts(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "f").write_text("host data\n")
    out = output(
        capfd, runtime, tmp_path, rootfs,
        "cat /data/f; echo x > /data/f 2>/dev/null && echo ro-broken; echo written > /rw/new; true",
        mounts=(BindMount(str(ro), "/data", readonly=True), BindMount(str(rw), "/rw")),
    )  # fmt: skip
    assert "host data" in out and "ro-broken" not in out
    assert (ro / "f").read_text() == "host data\n"
    assert (rw / "new").read_text() == "written\n"


def test_readonly_rootfs(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    out = output(capfd, runtime, tmp_path, rootfs, "touch /etc/x 2>/dev/null && echo rootfs-writable; true", readonly_rootfs=True)
    assert "rootfs-writable" not in out
    assert not (rootfs / "etc/x").exists()


def test_network_files_bound(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    files = {}
    for name, text in (("hosts", "127.0.0.1 localhost box\n"), ("hostname", "box\n"), ("resolv.conf", "nameserver 10.9.9.9\n")):
        files[name] = tmp_path / name
        files[name].write_text(text)
    out = output(
        capfd, runtime, tmp_path, rootfs, "cat /etc/hosts /etc/hostname /etc/resolv.conf",
        hosts_file=str(files["hosts"]), hostname_file=str(files["hostname"]), resolv_conf_file=str(files["resolv.conf"]),
    )  # fmt: skip
    assert out == "127.0.0.1 localhost box\nbox\nnameserver 10.9.9.9\n"


def test_image_symlinks_at_bind_targets_stay_inside(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    # Catalogue 52: an image whose /etc/hosts points at a host path must not get that
    # host file mounted over (runc resolves mount targets inside the rootfs).
    evil = tmp_path / "evil-rootfs"
    shutil.copytree(rootfs, evil, symlinks=True)
    host_file = tmp_path / "host-file"
    host_file.write_text("host content\n")
    (evil / "etc/hosts").unlink(missing_ok=True)  # runc made a mount point there for an earlier test
    os.symlink(str(host_file), evil / "etc/hosts")
    ours = tmp_path / "hosts"
    ours.write_text("127.0.0.1 localhost\n")
    out = output(capfd, runtime, tmp_path, evil, "cat /etc/hosts", hosts_file=str(ours))
    assert out == "127.0.0.1 localhost\n"
    assert host_file.read_text() == "host content\n"


def test_rlimit_nofile_never_above_our_hard_limit(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)
    out = output(capfd, runtime, tmp_path, rootfs, "ulimit -n; ulimit -Hn")
    assert out.split() == [str(want), str(want)]


def test_no_host_fd_leaks_into_the_container(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("s")
    fd = os.open(secret, os.O_RDONLY)
    os.set_inheritable(fd, True)  # even an inheritable fd of ours must not get through
    try:
        out = output(capfd, runtime, tmp_path, rootfs, "for f in /proc/1/fd/*; do readlink $f; done; true")
    finally:
        os.close(fd)
    assert str(secret) not in out
    assert str(tmp_path) not in out


def test_stdin_is_devnull_without_interactive(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    out = output(capfd, runtime, tmp_path, rootfs, "cat; echo end")
    assert out == "end\n"


def test_stdout_and_stderr_are_separate(capfd, runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    capfd.readouterr()
    assert run(runtime, tmp_path, rootfs, "sh", "-c", "echo out; echo err >&2") == 0
    got = capfd.readouterr()
    assert (got.out, got.err) == ("out\n", "err\n")


# --------------------------------------------------------------------------- stdin and signals (child process)


def _child(store: Path, b: str, *, interactive: bool, **kw) -> subprocess.Popen:
    args = json.dumps({"store": str(store), "id": new_id(), "bundle": b, "tty": False, "interactive": interactive})
    return subprocess.Popen([sys.executable, "-c", CHILD, args], **kw)


def test_interactive_stdin_reaches_the_container(store: Path, tmp_path: Path, rootfs: Path) -> None:
    b = bundle(tmp_path, rootfs, "sh", "-c", "tr a-z A-Z; echo rc=$?")
    p = _child(store, b, interactive=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = p.communicate(b"hello\nworld\n", timeout=20)
    assert (p.returncode, out) == (0, b"HELLO\nWORLD\nrc=0\n")
    p = _child(store, b, interactive=False, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = p.communicate(b"hello\n", timeout=20)
    assert (p.returncode, out) == (0, b"rc=0\n")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 42), (signal.SIGINT, 43), (signal.SIGHUP, 44)])
def test_signals_to_us_are_forwarded(store: Path, tmp_path: Path, rootfs: Path, sig: int, code: int) -> None:
    script = "trap 'exit 42' TERM; trap 'exit 43' INT; trap 'exit 44' HUP; echo ready; while :; do sleep 0.05; done"
    b = bundle(tmp_path, rootfs, "sh", "-c", script)
    p = _child(store, b, interactive=False, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(sig)
        assert p.wait(20) == code
    finally:
        p.kill()
        p.wait()


# --------------------------------------------------------------------------- failures


def test_missing_executable(runtime: CliRuntime, tmp_path: Path, rootfs: Path, capfd) -> None:
    with pytest.raises(ContainerCommandNotFound) as e:
        run(runtime, tmp_path, rootfs, "git")
    assert str(e.value).endswith('exec: "git": executable file not found in $PATH')
    assert e.value.exit_code == 127


def test_non_executable(runtime: CliRuntime, tmp_path: Path, rootfs: Path, capfd) -> None:
    with pytest.raises(ContainerCommandNotExecutable) as e:
        run(runtime, tmp_path, rootfs, "/etc/passwd")
    assert str(e.value).endswith('exec: "/etc/passwd": permission denied')
    assert e.value.exit_code == 126


def test_container_exit_1_is_not_a_runtime_failure(runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    assert run(runtime, tmp_path, rootfs, "false") == 1


def test_other_runtime_failures_are_125(runtime: CliRuntime, tmp_path: Path, rootfs: Path, capfd) -> None:
    with pytest.raises(RuntimeFailure) as e:
        run(runtime, tmp_path, rootfs, "true", mounts=(BindMount(str(tmp_path / "missing"), "/x"),))
    assert e.value.exit_code == 125
    assert "missing" in str(e.value)


def test_bad_container_id(runtime: CliRuntime, tmp_path: Path) -> None:
    for bad in ("", "..", "a/b", "x y"):
        with pytest.raises(RuntimeFailure, match="invalid container id"):
            runtime.run(bad, str(tmp_path), tty=False, interactive=False)


def test_state_kill_delete_of_unknown(runtime: CliRuntime) -> None:
    assert runtime.state("nope") is None
    with pytest.raises(RuntimeFailure):
        runtime.kill("nope", "TERM")
    runtime.delete("nope", force=True, missing_ok=True)


# --------------------------------------------------------------------------- selection


def test_select_runtime(store: Path) -> None:
    rt = select_runtime("runc", state_root=str(store / "runtime"))
    assert rt.name == "runc" and rt.path == shutil.which("runc") and rt.note is None
    assert rt.state_root == str(store / "runtime" / "runc")
    assert select_runtime(rt.path, state_root=str(store / "runtime")).name == "runc"
    with pytest.raises(RuntimeFailure, match="unknown or invalid runtime name: kata"):
        select_runtime("kata", state_root=str(store / "runtime"))
    with pytest.raises(RuntimeFailure):
        select_runtime("/nonexistent/runc", state_root=str(store / "runtime"))


def _cgroup_tree(root: Path, layout: str) -> Path:
    """A fake /sys/fs/cgroup: "v2", "v1", "hybrid" (controllers on the cgroup2 mount) or
    "hybrid-empty" (a cgroup2 mount without controllers, as scripts/setup leaves it)."""
    root.mkdir()
    if layout == "v2":
        (root / "cgroup.controllers").write_text("cpu memory pids\n")
    elif layout.startswith("hybrid"):
        (root / "unified").mkdir()
        (root / "unified" / "cgroup.controllers").write_text("hugetlb\n" if layout == "hybrid" else "")
    return root


@pytest.mark.skipif(shutil.which("crun") is None or shutil.which("runc") is None,
                    reason="SKIPPED LOUDLY: needs both crun and runc installed")
def test_crun_on_hybrid_cgroups_falls_back_to_runc(store: Path, tmp_path: Path, monkeypatch) -> None:
    from lamina.runtime import oci

    # this host as it is: crun is picked when (and only when) the detection says it works
    hybrid = not os.path.exists("/sys/fs/cgroup/cgroup.controllers") and os.path.isdir("/sys/fs/cgroup/unified") \
        and bool(Path("/sys/fs/cgroup/unified/cgroup.controllers").read_text().strip())
    assert _crun_works() is not hybrid
    assert select_runtime(None, state_root=str(store / "runtime")).name == ("runc" if hybrid else "crun")
    # each layout, the detection pointed at a fake tree
    for layout, works in (("v2", True), ("v1", True), ("hybrid-empty", True), ("hybrid", False)):
        monkeypatch.setattr(oci, "CGROUP_ROOT", str(_cgroup_tree(tmp_path / layout, layout)))
        assert _crun_works() is works, layout
        rt = select_runtime("crun", state_root=str(store / "runtime"))
        assert select_runtime(None, state_root=str(store / "runtime")).name == rt.name
        assert select_runtime(shutil.which("crun"), state_root=str(store / "runtime")).name == rt.name
        if works:
            assert (rt.name, rt.note) == ("crun", None), layout
        else:
            assert rt.name == "runc" and rt.note and "crun" in rt.note and "\n" not in rt.note


def test_version_is_cached(runtime: CliRuntime, store: Path) -> None:
    store.mkdir()  # the cache goes into an existing store only (`version` must not make one)
    v = runtime.version()
    assert v and v[0].isdigit()
    facts = json.loads((store / "runtime" / "facts.json").read_text())
    assert [e["version"] for e in facts.values()] == [v]
    assert runtime.version() == v
    if v.startswith("1.1.5"):  # no 1.1.x has the 2025 fixes; Debian's CVE-2024-21626 backport is counted
        warning = runtime.security_warning()
        assert warning and "CVE-2025-31133" in warning and "\n" not in warning


# --------------------------------------------------------------------------- speed


def test_run_true_is_fast(runtime: CliRuntime, tmp_path: Path, rootfs: Path) -> None:
    b = bundle(tmp_path, rootfs, "true")
    times = []
    for _ in range(20):
        t = time.perf_counter()
        assert runtime.run(new_id(), b, tty=False, interactive=False) == 0
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    print(f"\nrunc run true through the driver: median {median * 1000:.1f} ms over 20 runs")
    assert median < 0.2


def test_module_imports_stay_light() -> None:
    code = "import sys, lamina.runtime.oci; print(sorted({'subprocess', 'ctypes', 'socket', 'tempfile', 'shutil'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
