"""exec, top, pause and unpause on a running container (issue 12), on real parts.

The container runs in the foreground of another `lamina run` (what every keeper of
a container looks like to these verbs: runc state and a bundle).  Docker's texts
were recorded from docker 20.10.24 on the development machine (`RECORDED`); where
dockerd runs, the capability sets are also compared live.

One deliberate difference: docker 20.10's daemon exits 126 for every exec that
cannot start; dockerd ≥ 23 (translateContainerdStartErr) and the issue say 127 for
a command that is not found, and so does lamina.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import requires_root, runtime_state_dir

LAMINA = [sys.executable, "-m", "lamina"]

# docker 20.10.24, `docker exec` into a busybox container (stdout, exit code)
RECORDED = {
    "missing": ('OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuch": '
                "executable file not found in $PATH: unknown", 126),
    "not_executable": ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
                       '"/etc/passwd": permission denied: unknown', 126),
    "relative_workdir": ("OCI runtime exec failed: exec failed: Cwd must be an absolute path: unknown", 126),
    "missing_workdir": ('OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd '
                        '("/nonexist") set in config.json failed: no such file or directory: unknown', 126),
    "file_workdir": ('OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd '
                     '("/etc/passwd") set in config.json failed: not a directory: unknown: Are you trying to mount '
                     'a directory onto a file (or vice-versa)? Check if the specified host path exists and is the '
                     'expected type', 126),
    "under_a_file": ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
                     '"/etc/passwd/x": stat /etc/passwd/x: not a directory: unknown: Are you trying to mount a '
                     'directory onto a file (or vice-versa)? Check if the specified host path exists and is the '
                     'expected type', 126),
    "no_user": ("unable to find user nosuchuser: no matching entries in passwd file", 126),
    # stderr, exit 1
    "stopped": "Error response from daemon: Container {id} is not running",
    "paused": "Error response from daemon: Container {name} is paused, unpause the container before exec",
    "no_container": "Error: No such container: {name}",
    "already_paused": "Error response from daemon: Container {id} is already paused",
    "not_paused": "Error response from daemon: Container {id} is not paused",
    "top_no_pid": "Error response from daemon: Couldn't find PID field in ps output",
    "top_ps_error": "Error response from daemon: ps: error: unsupported SysV option",
    "top_rename": 'Error response from daemon: specifying "user=PID" is not allowed',
    # `docker exec CTR grep Cap /proc/self/status`, as root and as -u 1000
    "caps_root": {"CapInh": "0000000000000000", "CapPrm": "00000000a80425fb", "CapEff": "00000000a80425fb",
                  "CapBnd": "00000000a80425fb", "CapAmb": "0000000000000000"},
    "caps_1000": {"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
                  "CapBnd": "00000000a80425fb", "CapAmb": "0000000000000000"},
}
TOP_HEADER = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]  # `docker top CTR`, 20-wide columns


def lamina(root, *args, check=False, timeout=60, **kw):
    p = subprocess.run(LAMINA + ["--root", str(root), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


class Foreground:
    """`lamina run --name NAME IMAGE CMD...` in another process, until stopped."""

    def __init__(self, root: Path, name: str, *run_args: str) -> None:
        self.root, self.name = root, name
        self.proc = subprocess.Popen(LAMINA + ["--root", str(root), "run", "--name", name, *run_args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while time.time() < deadline:
            p = lamina(root, "ps", "--format", "{{.Names}} {{.ID}}", "--no-trunc")
            line = next((ln for ln in p.stdout.splitlines() if ln.split()[0] == name), None)
            if line and self._runtime_ready(line.split()[1]):
                self.id = line.split()[1]
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"run exited {self.proc.returncode}: {self.proc.stderr.read()}")
            time.sleep(0.05)
        raise AssertionError("container did not start")

    def _runtime_ready(self, cid: str) -> bool:
        # created once the runtime's state file is there: runc's state.json, crun's status
        return any((self.root / "runtime" / rt / cid / state).exists()
                   for rt, state in (("runc", "state.json"), ("crun", "status")))

    def stop(self) -> None:
        lamina(self.root, "rm", "-f", self.name)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar):
    root = tmp_path_factory.mktemp("exec") / "store"
    lamina(root, "import", busybox_tar, "bb:1", check=True)
    return root


@pytest.fixture(scope="module")
def ctr(store):
    c = Foreground(store, "svc", "-e", "FOO=bar", "-w", "/tmp", "bb:1", "sleep", "600")
    yield c
    c.stop()


def caps(text: str) -> dict:
    return dict(line.split(":\t") for line in text.splitlines() if line.startswith("Cap"))


# ----------------------------------------------------------------------------- exec


@requires_root
def test_exec_output_and_exit_code(ctr):
    p = lamina(ctr.root, "exec", "svc", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    assert lamina(ctr.root, "exec", ctr.id[:12], "true").returncode == 0
    # a process killed by a signal: 128+n, with or without a tty (docker 20.10: 137 both)
    assert lamina(ctr.root, "exec", "svc", "sh", "-c", "kill -9 $$").returncode == 137
    assert lamina(ctr.root, "exec", "-t", "svc", "sh", "-c", "kill -9 $$").returncode == 137


@requires_root
def test_exec_inherits_env_and_cwd_and_overrides(ctr):
    p = lamina(ctr.root, "exec", "svc", "sh", "-c", 'echo "$FOO" "$HOSTNAME"; pwd; id')
    assert p.stdout.splitlines() == ["bar " + ctr.id[:12], "/tmp", "uid=0(root) gid=0(root) groups=0(root)"]
    p = lamina(ctr.root, "exec", "-u", "1000:1000", "-w", "/", "-e", "A=B", "-e", "FOO=over", "svc",
               "sh", "-c", 'echo "$A" "$FOO" "$HOME"; pwd; id')
    assert p.stdout.splitlines() == ["B over /home/app", "/", "uid=1000(app) gid=1000(app) groups=1000(app)"]
    p = lamina(ctr.root, "exec", "-u", "nobody", "svc", "id")
    assert p.stdout == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"


@requires_root
def test_exec_env_file_and_bare_name(ctr, tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nX=1\n")
    p = lamina(ctr.root, "exec", "--env-file", envfile, "-e", "FROM_CLIENT", "svc", "sh", "-c",
               'echo "$X $FROM_CLIENT"', env={**os.environ, "FROM_CLIENT": "yes"})
    assert p.stdout == "1 yes\n"


@requires_root
def test_exec_capabilities_as_the_containers(ctr):
    root = caps(lamina(ctr.root, "exec", "svc", "grep", "Cap", "/proc/self/status").stdout)
    init = caps(lamina(ctr.root, "exec", "svc", "grep", "Cap", "/proc/1/status").stdout)
    assert root == init == RECORDED["caps_root"]
    assert caps(lamina(ctr.root, "exec", "-u", "1000", "svc", "grep", "Cap", "/proc/self/status").stdout) \
        == RECORDED["caps_1000"]


@pytest.fixture(scope="module")
def docker_ctr(busybox_tar):
    """(docker binary, ID) of a running busybox container in the local docker engine."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True).returncode != 0:
        pytest.skip("SKIPPED LOUDLY: no usable docker engine to compare with")
    image = "lamina-test-runtime:busybox"
    if subprocess.run([docker, "image", "inspect", image], capture_output=True).returncode:
        subprocess.run([docker, "import", str(busybox_tar), image], check=True, capture_output=True)
    cid = subprocess.run([docker, "run", "-d", image, "sleep", "120"], capture_output=True, text=True,
                         check=True).stdout.strip()
    yield docker, cid
    subprocess.run([docker, "rm", "-f", cid], capture_output=True)


@pytest.mark.docker
@requires_root
def test_exec_capabilities_match_live_docker(ctr, docker_ctr):
    docker, cid = docker_ctr
    for user in ([], ["-u", "1000"]):
        theirs = subprocess.run([docker, "exec", *user, cid, "grep", "Cap", "/proc/self/status"],
                                capture_output=True, text=True).stdout
        ours = lamina(ctr.root, "exec", *user, "svc", "grep", "Cap", "/proc/self/status").stdout
        assert caps(ours) == caps(theirs), user


@pytest.mark.docker
@pytest.mark.parametrize(("case", "argv"), [
    ("missing", ["nosuch"]), ("not_executable", ["/etc/passwd"]), ("under_a_file", ["/etc/passwd/x"]),
    ("missing_workdir", ["-w", "/nonexist", "CTR", "pwd"]), ("no_user", ["-u", "nosuchuser", "CTR", "id"]),
])
def test_docker_exec_still_answers_as_recorded(docker_ctr, case, argv):
    docker, cid = docker_ctr
    args = [cid if a == "CTR" else a for a in argv] if "CTR" in argv else [cid, *argv]
    p = subprocess.run([docker, "exec", *args], capture_output=True, text=True)
    assert (p.stdout, p.returncode) == (RECORDED[case][0] + "\n", RECORDED[case][1])


@requires_root
@pytest.mark.parametrize(("case", "argv", "code"), [
    ("missing", ["nosuch"], 127),
    ("not_executable", ["/etc/passwd"], 126),
    ("relative_workdir", ["-w", "rel", "svc!", "pwd"], 126),
    ("missing_workdir", ["-w", "/nonexist", "svc!", "pwd"], 126),
    ("file_workdir", ["-w", "/etc/passwd", "svc!", "pwd"], 126),
    ("under_a_file", ["/etc/passwd/x"], 126),
    ("no_user", ["-u", "nosuchuser", "svc!", "id"], 126),
])
def test_exec_start_failures_as_docker(ctr, case, argv, code):
    args = [a.rstrip("!") for a in argv] if "svc!" in argv else ["svc", *argv]
    p = lamina(ctr.root, "exec", *args)
    text, docker_code = RECORDED[case]
    assert p.stdout == text + "\n"  # docker prints it on the exec's stdout
    assert p.stderr == ""  # checked before runc runs: runc's own line is not printed too
    assert p.returncode == code and docker_code in (126, code)


@requires_root
def test_exec_into_stopped_missing_and_paused_container(store, ctr):
    c = lamina(store, "create", "--name", "idle", "bb:1", "true", check=True).stdout.strip()
    try:
        p = lamina(store, "exec", "idle", "true")
        assert (p.returncode, p.stderr.strip()) == (1, RECORDED["stopped"].format(id=c))
    finally:
        lamina(store, "rm", "idle")
    p = lamina(store, "exec", "nope", "true")
    assert (p.returncode, p.stderr.strip()) == (1, RECORDED["no_container"].format(name="nope"))
    p = lamina(store, "exec", "svc")
    assert p.returncode == 1 and p.stderr.startswith('"lamina exec" requires at least 2 arguments.')
    assert lamina(store, "pause", "svc").returncode == 0
    try:
        p = lamina(store, "exec", "svc", "true")
        assert (p.returncode, p.stderr.strip()) == (1, RECORDED["paused"].format(name="svc"))
    finally:
        assert lamina(store, "unpause", "svc").returncode == 0


@requires_root
@pytest.mark.parametrize(("command", "error", "problem"), [
    ("nosuch", "ContainerCommandNotFound", "executable file not found in $PATH"),
    ("/no/such", "ContainerCommandNotFound", "stat /no/such: no such file or directory"),
    ("/etc", "ContainerCommandNotExecutable", "permission denied"),
])
def test_the_runtimes_own_start_failure_in_runcs_words(ctr, tmp_path, command, error, problem):
    """Past lamina's own check (a probe's command, an API exec), the runtime's refusal
    is docker's (runc's) text and exit code whichever runtime said it: crun words them
    otherwise ("executable file `nosuch` not found in $PATH: No such file or directory")."""
    from conftest import _runtime
    from lamina.errors import RuntimeFailure
    from lamina.runtime.execproc import run_exec

    cid = lamina(ctr.root, "inspect", "--format", "{{.Id}}", "svc", check=True).stdout.strip()
    process = {"args": [command], "env": ["PATH=/bin:/usr/bin"], "cwd": "/", "terminal": False,
               "user": {"uid": 0, "gid": 0}}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with pytest.raises(RuntimeFailure) as e:
            run_exec(_runtime(ctr.root), cid, process, work_dir=str(tmp_path), stdout=devnull, stderr=devnull)
    finally:
        os.close(devnull)
    assert type(e.value).__name__ == error
    assert str(e.value) == f'exec failed: unable to start container process: exec: "{command}": {problem}'


@requires_root
def test_exec_into_a_container_the_runtime_does_not_know(ctr, tmp_path):
    """A probe racing its container's stop: runc's words whichever runtime said it (health.py
    looks for them to drop the probe); crun says "error opening file `.../status`"."""
    from conftest import _runtime
    from lamina.errors import RuntimeFailure
    from lamina.runtime.execproc import run_exec
    from lamina.runtime.runcerrors import is_missing

    process = {"args": ["true"], "env": [], "cwd": "/", "terminal": False, "user": {"uid": 0, "gid": 0}}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with pytest.raises(RuntimeFailure) as e:
            run_exec(_runtime(ctr.root), "lamina-no-such-h2", process, work_dir=str(tmp_path), stdout=devnull,
                     stderr=devnull)
    finally:
        os.close(devnull)
    assert str(e.value) == "exec failed: container does not exist"
    # crun's delete that lost a race with another one (a front and `rm -f`) is a missing container too
    assert is_missing(b"cannot rm state directory `/s/runtime/crun/abc`: No such file or directory\n")
    assert is_missing(b"crun: cannot open directory '/s/runtime/crun/abc': No such file or directory\n")
    assert not is_missing(b"cannot open directory '/s/runtime/crun/abc': Permission denied\n")


def _zombie_children() -> list[int]:
    mine = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # not a process, or gone
            continue
        state, ppid = stat[stat.rindex(b")") + 2:].split()[:2]
        if int(ppid) == os.getpid() and state == b"Z":
            mine.append(int(entry))
    return mine


@requires_root
def test_a_timed_out_exec_is_killed_with_its_children_and_reaped(ctr, tmp_path):
    """A probe past its timeout: the process and its children killed, whichever runtime
    (crun's process is no group leader: a kill of its pid's group missed it), and reaped
    by the runtime (a subreaper, as a monitor is, finds no zombie of it)."""
    from conftest import _runtime
    from lamina.runtime.execproc import run_exec
    from lamina.runtime.process import Subreaper

    cid = lamina(ctr.root, "inspect", "--format", "{{.Id}}", "svc", check=True).stdout.strip()
    process = {"args": ["sh", "-c", "sleep 31 & sleep 32"], "env": ["PATH=/bin"], "cwd": "/", "terminal": False,
               "user": {"uid": 0, "gid": 0}}
    before = set(_zombie_children())
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with Subreaper():
            with pytest.raises(TimeoutError):
                run_exec(_runtime(ctr.root), cid, process, work_dir=str(tmp_path), stdout=devnull, stderr=devnull,
                         timeout=3)
            assert set(_zombie_children()) <= before
    finally:
        os.close(devnull)
    deadline = time.monotonic() + 20
    while True:  # the orphaned sleeps die with the group's SIGKILL; their exit reaches the container's init
        top = lamina(ctr.root, "top", "svc", check=True).stdout
        if "sleep 31" not in top and "sleep 32" not in top:
            break
        assert time.monotonic() < deadline, top
        time.sleep(0.1)


@requires_root
def test_exec_cli_errors_as_docker(ctr):
    """docker exec's own refusals (20.10's CLI, recorded): bare, exit 1, but a flag's 125."""
    p = lamina(ctr.root, "exec", "--env-file", "/nonexistent-h7", "svc", "true")
    assert (p.returncode, p.stderr) == (1, "open /nonexistent-h7: no such file or directory\n")
    p = lamina(ctr.root, "exec", "-e", "=x", "svc", "true")
    assert (p.returncode, p.stderr) == (125, 'invalid argument "=x" for "-e, --env" flag: invalid environment '
                                             "variable: =x\nSee 'lamina exec --help'.\n")
    p = lamina(ctr.root, "exec", "-it", "svc", "true", input="")
    assert (p.returncode, p.stderr) == (1, "the input device is not a TTY\n")


@requires_root
def test_exec_tty(ctr):
    # -t without a terminal on our side: the process still gets a pty, as docker's does
    p = lamina(ctr.root, "exec", "-t", "svc", "tty")
    assert p.returncode == 0 and p.stdout.startswith("/dev/pts/")
    assert lamina(ctr.root, "exec", "svc", "tty").stdout == "not a tty\n"
    # -it from a real terminal: keys typed reach the process, its output comes back
    master, slave = pty.openpty()
    proc = subprocess.Popen(LAMINA + ["--root", str(ctr.root), "exec", "-it", "svc", "sh", "-c",
                                      "read line; echo got-$line; exit 5"],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    os.write(master, b"hello\r")
    seen = b""
    deadline = time.time() + 20
    while time.time() < deadline and proc.poll() is None:
        if select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    assert proc.wait(timeout=20) == 5
    os.close(master)
    assert b"got-hello" in seen


@requires_root
def test_exec_interactive_stdin(ctr):
    p = lamina(ctr.root, "exec", "-i", "svc", "sh", input="echo from-stdin; exit 4\n")
    assert (p.returncode, p.stdout) == (4, "from-stdin\n")
    # without -i the process reads /dev/null
    p = lamina(ctr.root, "exec", "svc", "cat", input="ignored\n")
    assert (p.returncode, p.stdout) == (0, "")


@requires_root
def test_exec_detached_returns_at_once(ctr):
    start = time.monotonic()
    p = lamina(ctr.root, "exec", "-d", "svc", "sh", "-c", "sleep 1; echo done > /tmp/detached")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert time.monotonic() - start < 1.0
    deadline = time.time() + 10
    while time.time() < deadline:
        if lamina(ctr.root, "exec", "svc", "cat", "/tmp/detached").stdout == "done\n":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the detached exec did not run")


@requires_root
def test_exec_forwards_signals(ctr):
    proc = subprocess.Popen(LAMINA + ["--root", str(ctr.root), "exec", "svc", "sh", "-c",
                                      "trap 'echo trapped; exit 7' TERM; echo ready; while :; do sleep 0.1; done"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 7
    assert proc.stdout.read() == "trapped\n"


@requires_root
def test_exec_ids_in_inspect(ctr):
    """docker's ExecIDs: the execs under way (64 hex each), null when none runs."""
    assert lamina(ctr.root, "inspect", "-f", "{{json .ExecIDs}}", "svc").stdout == "null\n"
    proc = subprocess.Popen(LAMINA + ["--root", str(ctr.root), "exec", "svc", "sh", "-c", "echo up; sleep 2"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "up\n"
        ids = json.loads(lamina(ctr.root, "inspect", "-f", "{{json .ExecIDs}}", "svc").stdout)
        assert len(ids) == 1 and len(ids[0]) == 64 and all(c in "0123456789abcdef" for c in ids[0])
    finally:
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()
    assert lamina(ctr.root, "inspect", "-f", "{{json .ExecIDs}}", "svc").stdout == "null\n"


def _scratch(ctr) -> list[str]:
    return [n for n in os.listdir(ctr.root / "containers" / ctr.id) if n.startswith("exec-")]


@requires_root
def test_exec_leaves_no_scratch(ctr):
    lamina(ctr.root, "exec", "svc", "true", check=True)
    lamina(ctr.root, "exec", "svc", "nosuch")
    lamina(ctr.root, "exec", "-t", "svc", "true", check=True)
    lamina(ctr.root, "exec", "-d", "svc", "true", check=True)
    assert _scratch(ctr) == []
    assert not [n for n in os.listdir(ctr.root / "tmp") if n.startswith("exec-")]


# The installed launcher's program (scripts/setup writes it): cli.main.launch, not main()
LAUNCHER = "import sys\nsys.path[0] = {src!r}\nfrom lamina.cli.main import launch\nlaunch()\n"


@requires_root
def test_the_launcher_ends_exec_with_its_output_code_and_no_scratch(ctr):
    """launch() runs exec without the collector and ends it with os._exit: the process's
    exit code, what lamina itself printed (to a pipe: block-buffered) and the scratch
    directory's removal are all there, with a tty (the collector back on) or without."""
    src = str(Path(__file__).resolve().parent.parent / "src")

    def launch(*argv):
        return subprocess.run([sys.executable, "-S", "-c", LAUNCHER.format(src=src), "--root", str(ctr.root),
                               "exec", *argv], capture_output=True, text=True, timeout=60)

    p = launch("svc", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    missing = launch("svc", "nosuch")
    assert (missing.returncode, missing.stdout, missing.stderr) == (127, RECORDED["missing"][0] + "\n", "")
    tty = launch("-t", "svc", "sh", "-c", "echo hi; exit 4")
    assert (tty.returncode, tty.stdout) == (4, "hi\n")  # the pty's \r\n, as text
    assert launch("-d", "svc", "true").returncode == 0
    assert _scratch(ctr) == []


# What `lamina exec CTR true` imports, counted as test_cli_startup counts ps's (python -S, sources first)
EXEC_PROBE = """
import sys
sys.path[0] = {src!r}
before = set(sys.modules)
from lamina.cli.main import main
code = main({argv!r})
modules = sorted(set(sys.modules) - before)
import json
print(json.dumps({{"code": code, "modules": modules}}))
"""
NEVER_ON_EXEC = {"argparse", "dataclasses", "typing", "inspect", "ast", "re", "enum", "json", "signal", "datetime",
                 "sqlite3", "subprocess", "threading", "ctypes", "termios", "tempfile", "shutil", "functools",
                 "lamina.cli.runoptions",  # only for --env-file
                 "lamina.runtime.console", "lamina.snapshot", "lamina.store.images", "lamina.network"}
EXEC_MODULE_BUDGET = 42  # 39 when written (issue 12)


@requires_root
def test_exec_start_up_imports_stay_lean(ctr):
    src = str(Path(__file__).resolve().parent.parent / "src")
    code = EXEC_PROBE.format(src=src, argv=["--root", str(ctr.root), "exec", "svc", "true"])
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.splitlines()[-1])
    assert got["code"] == 0
    modules = set(got["modules"])
    assert not modules & NEVER_ON_EXEC, sorted(modules & NEVER_ON_EXEC)
    assert len(modules) <= EXEC_MODULE_BUDGET, sorted(modules)


@requires_root
def test_exec_killed_leaves_nothing_half_done(ctr):
    """kill -9 of the CLI during exec: the process goes on in the container (as docker's
    does when its client dies), the scratch is swept by the next exec, the store checks."""
    proc = subprocess.Popen(LAMINA + ["--root", str(ctr.root), "exec", "svc", "sh", "-c", "echo up; sleep 1"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "up\n"
    assert len(_scratch(ctr)) == 1
    proc.kill()
    proc.wait()
    proc.stdout.close()
    lamina(ctr.root, "exec", "svc", "true", check=True)
    assert _scratch(ctr) == []
    p = lamina(ctr.root, "system", "check")
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


# ----------------------------------------------------------------------------- top


@requires_root
def test_top_shows_the_containers_processes(store, ctr):
    other = Foreground(store, "other", "bb:1", "sleep", "555")
    try:
        exec_proc = subprocess.Popen(LAMINA + ["--root", str(store), "exec", "svc", "sleep", "333"])
        try:
            deadline = time.time() + 10
            while time.time() < deadline:
                out = lamina(store, "top", "svc").stdout
                if "sleep 333" in out:
                    break
                time.sleep(0.1)
            lines = out.splitlines()
            assert lines[0].split() == TOP_HEADER
            assert lines[0].startswith("UID" + " " * 17 + "PID" + " " * 17)  # docker's 20-wide columns
            cmds = [ln.split(None, 7)[7] for ln in lines[1:]]
            assert "sleep 600" in cmds and "sleep 333" in cmds and "sleep 555" not in cmds
            p = lamina(store, "top", "svc", "-o", "pid,args")
            assert p.stdout.splitlines()[0].split() == ["PID", "COMMAND"]
            assert any(ln.split(None, 1)[1] == "sleep 600" for ln in p.stdout.splitlines()[1:])
            p = lamina(store, "top", "svc", "-o", "comm")
            assert (p.returncode, p.stderr.strip()) == (1, RECORDED["top_no_pid"])
            p = lamina(store, "top", "svc", "-badopt")
            assert (p.returncode, p.stderr.strip()) == (1, RECORDED["top_ps_error"])
            p = lamina(store, "top", "svc", "-o", "user=PID")
            assert (p.returncode, p.stderr.strip()) == (1, RECORDED["top_rename"])
        finally:
            exec_proc.kill()
            exec_proc.wait()
    finally:
        other.stop()
    p = lamina(store, "top", "nope")
    assert (p.returncode, p.stderr.strip()) == (1, "Error response from daemon: No such container: nope")


# ----------------------------------------------------------------------------- pause


def _counter(root: Path, cid: str) -> str:
    """The counter file as it is: `echo $i > /tmp/n` truncates first, so it may be empty
    (for good, when the freezer caught the loop in between)."""
    return (root / "containers" / cid / "rootfs" / "tmp" / "n").read_text()


@requires_root
def test_pause_freezes_and_unpause_resumes(store):
    from lamina.runtime.cgroups import container_dir

    c = Foreground(store, "counter", "bb:1", "sh", "-c",
                   "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done")
    try:
        time.sleep(0.5)
        assert (store / "containers" / c.id / "rootfs").is_dir()
        p = lamina(store, "pause", "counter")
        assert (p.returncode, p.stdout) == (0, "counter\n")
        time.sleep(0.2)
        frozen = _counter(store, c.id)
        for _ in range(6):
            time.sleep(0.1)
            assert _counter(store, c.id) == frozen  # nothing advances while paused
        ps = lamina(store, "ps", "--format", "{{.Names}} {{.Status}}").stdout
        assert any(ln.startswith("counter Up ") and ln.endswith("(Paused)") for ln in ps.splitlines()), ps
        state = lamina(store, "inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.State.Paused}}",
                       "counter").stdout
        assert state == "paused true true\n"
        p = lamina(store, "pause", "counter")
        assert (p.returncode, p.stderr.strip()) == (1, RECORDED["already_paused"].format(id=c.id))
        assert lamina(store, "top", "counter").returncode == 0  # docker's top works on a paused one
        p = lamina(store, "unpause", "counter")
        assert (p.returncode, p.stdout) == (0, "counter\n")
        deadline = time.time() + 10
        now = _counter(store, c.id)
        while now in ("", frozen) and time.time() < deadline:
            time.sleep(0.01)
            now = _counter(store, c.id)
        assert now not in ("", frozen) and int(now) > int(frozen or 0)  # counting again
        assert lamina(store, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "counter").stdout \
            == "running false\n"
        p = lamina(store, "unpause", "counter")
        assert (p.returncode, p.stderr.strip()) == (1, RECORDED["not_paused"].format(id=c.id))
        # several at once: each failure on its line, the others done, exit 1
        p = lamina(store, "pause", "nope", "counter")
        assert p.returncode == 1 and p.stdout == "counter\n"
        assert p.stderr.strip() == "Error response from daemon: No such container: nope"
        # rm -f of a paused container leaves nothing behind
        assert lamina(store, "rm", "-f", "counter").returncode == 0
        assert c.proc.wait(timeout=20) is not None
        deadline = time.time() + 10
        freezer = Path(container_dir(f"/lamina/{c.id}", "freezer"))
        state = runtime_state_dir(store) / c.id
        while (freezer.exists() or state.exists()) and time.time() < deadline:
            time.sleep(0.05)
        assert not state.exists()
        assert not freezer.exists()
    finally:
        c.stop()


@requires_root
def test_pause_of_a_stopped_container(store):
    cid = lamina(store, "create", "--name", "stopped", "bb:1", "true", check=True).stdout.strip()
    try:
        p = lamina(store, "pause", "stopped")
        assert (p.returncode, p.stderr.strip()) == (1, f"Error response from daemon: Container {cid} is not running")
        p = lamina(store, "unpause", "stopped")
        assert (p.returncode, p.stderr.strip()) == (1, RECORDED["not_paused"].format(id=cid))
        p = lamina(store, "top", "stopped")
        assert (p.returncode, p.stderr.strip()) == (1, f"Error response from daemon: Container {cid} is not running")
    finally:
        lamina(store, "rm", "stopped")


def test_parse_ps_output_as_dockerd():
    from lamina.engine.exec import _parse_ps

    out = ("UID PID PPID C STIME TTY TIME CMD\n"
           "root 10 1 0 09:34 ? 00:00:00 sleep   300\n"
           "root 11 1 0 09:34 ? 00:00:00 other\n"
           "root - - 0 09:34 ? 00:00:00 -\n"
           "root 12 10 0 09:34 ? 00:00:00 sh -c x\n"
           "root - - 0 09:34 ? 00:00:00 thread\n")
    titles, procs = _parse_ps(out, {10, 12})
    assert titles == TOP_HEADER
    assert [p[1] for p in procs] == ["10", "12", "-"]
    assert procs[0][-1] == "sleep 300"  # the overhang joined by one space


@requires_root
def test_python_api(ctr):
    """docker-py's shape: exec_run, top, pause, unpause on a Container."""
    from lamina.client import Client

    client = Client(str(ctr.root))
    try:
        c = client.containers.get("svc")
        result = c.exec_run("sh -c 'echo $FOO; exit 2'")
        assert (result.exit_code, result.output) == (2, b"bar\n")
        assert c.exec_run(["id", "-u"], user="1000").output == b"1000\n"
        code, output = c.exec_run("nosuch")
        assert code == 127 and output.startswith(b"OCI runtime exec failed: ")
        assert c.exec_run("true", detach=True) == (None, b"")
        top = c.top()
        assert top["Titles"][:2] == ["UID", "PID"] and any(p[-1] == "sleep 600" for p in top["Processes"])
        c.pause()
        assert client.containers.get("svc").attrs["State"]["Paused"] is True
        c.unpause()
        assert client.containers.get("svc").attrs["State"]["Status"] == "running"
    finally:
        client.close()
