"""Test users for rootless lamina (issue 16), shared by test_rootless.py and the attack suites.

A test user is made with `useradd` and (optionally) 65,536 subordinate ids, and removed with
its home, runtime dir and subid lines afterwards; lamina runs as it through runuser.  The
repository's venv python may live under a root-only directory (pyenv in /root): lamina then
runs on the system python of the same version with the checkout's src on its path.

`Runner` is how an attack case runs `lamina --root STORE ...` either as root or as a
rootless user, with the same arguments and the same CompletedProcess (bytes) back, and
`assert_confined` checks what a rootless run may have left on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO


def _sh(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check)


class User:
    """A test user and how to run lamina as it."""

    def __init__(self, name: str, python: list[str]) -> None:
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid, self.home = name, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)
        self.runtime = Path(f"/run/user/{self.uid}")
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.runtime, self.uid, pw.pw_gid)
        self.python = python
        self.store = self.home / ".local" / "share" / "lamina"
        self._subid_start: int | None = None

    def argv(self, *args, env=None) -> list[str]:
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return ["runuser", "-u", self.name, "--", "env", f"HOME={self.home}", f"XDG_RUNTIME_DIR={self.runtime}",
                f"PYTHONPATH={REPO / 'src'}", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                *extra, *self.python, *map(str, args)]

    def lamina(self, *args, check=False, env=None, timeout=120) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(*args, env=env), capture_output=True, text=True, timeout=timeout, cwd="/")
        if check:
            assert p.returncode == 0, f"lamina {args} as {self.name}: rc={p.returncode}\n{p.stderr}"
        return p

    def ok(self, *args, **kw) -> str:
        return self.lamina(*args, check=True, **kw).stdout

    def file(self, path: Path, data: bytes | Path) -> Path:
        """A file the user can read (root's tmp dirs are 0700)."""
        target = self.home / path
        if isinstance(data, Path):
            shutil.copyfile(data, target)
        else:
            target.write_bytes(data)
        os.chown(target, self.uid, -1)
        return target

    def maps(self, host_id: int) -> bool:
        """Whether the user's namespace maps `host_id`: its uid or one of its 65,536 subordinate ids."""
        if self._subid_start is None:
            self._subid_start = subid_start(self.name)
        return host_id == self.uid or self._subid_start <= host_id < self._subid_start + 65536


def run_user(role: str) -> str:
    """A test user's name for this run only (`lamina<role>-<pid>`): two test runs on one host
    never share, or remove, each other's user.  One a killed run left is removed below."""
    return f"lamina{role}-{os.getpid()}"


def _sweep_stale_users() -> None:
    """The users of runs that are gone (their pid no longer lives)."""
    for pw in pwd.getpwall():
        head, dash, pid = pw.pw_name.rpartition("-")
        if dash and head.startswith("lamina") and pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                _remove_user(pw.pw_name)
            except PermissionError:
                pass  # alive


@contextlib.contextmanager
def _users_lock():
    """/etc/passwd and /etc/sub[ug]id are edited by one test run at a time (a free subid
    range is picked by reading the file, and remove_user rewrites it)."""
    with open("/run/lamina-test-users.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def make_user(name: str, subids: bool) -> None:
    with _users_lock():
        _sweep_stale_users()
        if exists(name):  # a run killed before its teardown
            _remove_user(name)
        _make_user(name, subids)


def _make_user(name: str, subids: bool) -> None:
    _sh("useradd", "-m", "-s", "/bin/sh", name)
    for kind in ("subuid", "subgid"):  # Debian's useradd assigns ranges itself: made explicit either way
        for line in Path(f"/etc/{kind}").read_text().splitlines():
            who, start, count = line.split(":")
            if who == name:
                end = int(start) + int(count) - 1
                _sh("usermod", f"--del-{kind}s", f"{start}-{end}", name)
    if subids:
        start = _free_subid_start()
        _sh("usermod", "--add-subuids", f"{start}-{start + 65535}", "--add-subgids", f"{start}-{start + 65535}", name)


def _free_subid_start() -> int:
    used = [100000]
    for kind in ("subuid", "subgid"):
        for line in Path(f"/etc/{kind}").read_text().splitlines():
            parts = line.split(":")
            if len(parts) == 3:
                used.append(int(parts[1]) + int(parts[2]))
    return max(used) + 65536


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def remove_user(name: str) -> None:
    with _users_lock():
        _remove_user(name)


def _remove_user(name: str) -> None:
    uid = pwd.getpwnam(name).pw_uid
    # this test user's leftovers only (a monitor a failed test left), each by its pid
    for pid in _live_pids(uid):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30  # userdel refuses a user with a live process
    while _live_pids(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _sh("userdel", "-r", name, check=False)
    shutil.rmtree(f"/run/user/{uid}", ignore_errors=True)
    for kind in ("subuid", "subgid"):
        lines = [line for line in Path(f"/etc/{kind}").read_text().splitlines() if not line.startswith(f"{name}:")]
        Path(f"/etc/{kind}").write_text("".join(line + "\n" for line in lines))


def _live_pids(uid: int) -> list[int]:
    """The user's processes, but zombies (dead already: their parent reaps them)."""
    out = subprocess.run(["ps", "-u", str(uid), "-o", "pid=,stat="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if line.split() and not line.split()[1].startswith("Z")]


def python_for_users() -> list[str] | str:
    """How another user starts lamina, or why it cannot."""
    venv = REPO / ".venv" / "bin" / "python"
    probe = ["runuser", "-u", "nobody", "--"]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    if subprocess.run(probe + [str(venv), "-c", "import lamina"], capture_output=True, cwd="/", env=env).returncode == 0:
        return [str(venv), "-m", "lamina"]
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if os.path.exists(system) and subprocess.run(probe + [system, "-c", "import lamina"], capture_output=True,
                                                 cwd="/", env=env).returncode == 0:
        return [system, "-m", "lamina"]
    return (f"SKIPPED LOUDLY: other users cannot run lamina from this checkout ({venv} and {system} with "
            f"PYTHONPATH={REPO / 'src'} are not readable by them)")


def rootless_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "SKIPPED LOUDLY: needs root to make a test user"
    if shutil.which("newuidmap") is None or shutil.which("runuser") is None:
        return "SKIPPED LOUDLY: newuidmap (uidmap) or runuser missing"
    return None


def subid_start(name: str) -> int:
    for line in Path("/etc/subuid").read_text().splitlines():
        who, start, _ = line.split(":")
        if who == name:
            return int(start)
    raise AssertionError(f"no subuid range for {name}")


# ----------------------------------------------------------------- the attack suites' runner

ROOT_LAMINA = [sys.executable, "-m", "lamina"]


class Runner:
    """`lamina --root STORE ARGS` as root (user=None) or as a rootless test user; bytes out."""

    def __init__(self, user: User | None) -> None:
        self.user = user
        self.name = "rootless" if user else "root"
        self.module_stores: list[Path] = []  # checked after every case
        self.stores: list[Path] = []  # one case's own: checked after that case

    def new_store(self, parent: Path, module: bool = False) -> Path:
        """A store root under `parent` (made by lamina itself, as this runner's user)."""
        self.share(parent)
        (self.module_stores if module else self.stores).append(parent / "store")
        return parent / "store"

    def argv(self, root, *args) -> list[str]:
        args = ["--root", str(root), *map(str, args)]
        return self.user.argv(*args) if self.user else ROOT_LAMINA + args

    def run(self, root, *args, input=None, timeout=180, cwd=None, env=None) -> subprocess.CompletedProcess:
        argv = self.argv(root, *args)
        if self.user and env:  # runuser resets the environment: lamina's own variables go through env(1)
            argv = self.user.argv("--root", root, *args, env={k: v for k, v in env.items()
                                                             if k.startswith(("LAMINA", "SOURCE_DATE"))})
            env = None
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, cwd=cwd or "/", env=env)

    def share(self, *paths: Path) -> None:
        """Let the user reach and write `paths` (a test's tmp dirs under root's 0700 basetemp):
        every ancestor gets o+x, each path itself is handed to the user."""
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            if not self.user:
                continue
            for parent in path.parents:
                if parent == Path("/"):
                    break
                mode = os.stat(parent).st_mode
                if not mode & 0o001:
                    os.chmod(parent, (mode & 0o7777) | 0o711)
            os.chown(path, self.user.uid, self.user.gid)


class Store:
    """A store root and the runner (root or rootless) that runs lamina on it."""

    def __init__(self, path: Path, runner: Runner) -> None:
        self.path, self.runner = path, runner

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def lamina(self, *args, input=None, check=True, timeout=180, env=None) -> subprocess.CompletedProcess:
        p = self.runner.run(self.path, *args, input=input, timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"{args} as {self.runner.name} exited {p.returncode}:\n{p.stdout.decode()}\n"
                                 f"{p.stderr.decode()}")
        return p


def readable_copy(src: Path, dest_dir: Path) -> Path:
    """`src` copied where a rootless runner's user can read it (root's basetemp is 0700)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(src, dest_dir / src.name))


@pytest.fixture
def bb_tar(tmp_path, busybox_tar) -> Path:
    """conftest's busybox_tar, readable by the rootless runner's user."""
    return readable_copy(busybox_tar, tmp_path / "in")


@pytest.fixture
def store(runner, tmp_path, confined) -> Store:
    """An empty store for one case, run by the parametrised runner (a tmp_path the user can use)."""
    return Store(runner.new_store(tmp_path / "s"), runner)


def _owners(top: Path) -> dict[str, int]:
    """path -> owning uid of everything under `top` (not following links)."""
    owners = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            try:
                owners[p] = os.lstat(p).st_uid
            except FileNotFoundError:
                pass
    return owners


def fingerprint(path: Path) -> tuple:
    st = os.lstat(path)
    return st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, path.read_bytes()


def assert_confined(user: User, stores: list[Path], work: Path, canaries: dict[Path, tuple]) -> None:
    """After a rootless case: root's files (canaries) are untouched; everything in the user's
    home and store is owned by an id the user's namespace maps; and in the test's own dir
    (`work`, where root made the inputs and the user writes outputs) nothing belongs to a
    subordinate id: lamina wrote there as the user or not at all."""
    for path, before in canaries.items():
        assert fingerprint(path) == before, f"{path} changed by a rootless run"
    for top in (user.home, *stores):
        for p, uid in _owners(top).items():
            if Path(p) not in canaries:
                assert user.maps(uid), f"{p} is owned by host uid {uid}, outside {user.name}'s mapping"
    for p, uid in _owners(work).items():
        if any(Path(p).is_relative_to(store) for store in stores):
            continue
        assert uid in (0, user.uid), f"{p} is owned by host uid {uid}: written outside the store"


ATTACK_USER = run_user("atk")


@pytest.fixture(scope="module")
def attack_user():
    """One rootless test user with subordinate ids for a module's attack cases."""
    reason = rootless_skip_reason()
    python = python_for_users() if reason is None else reason
    if isinstance(python, str):
        pytest.skip(python)
    make_user(ATTACK_USER, True)
    try:
        yield User(ATTACK_USER, python)
    finally:
        remove_user(ATTACK_USER)


@pytest.fixture(scope="module", params=["root", "rootless"])
def runner(request) -> Runner:
    """Each CLI-driven attack case twice: lamina as root, and as a rootless user."""
    return Runner(request.getfixturevalue("attack_user") if request.param == "rootless" else None)


@pytest.fixture
def confined(request, tmp_path):
    """For a rootless case: tmp_path handed to the user, a root-owned canary in the user's
    home, and afterwards `assert_confined`; yields the canaries dict (fixtures add theirs)."""
    runner = request.getfixturevalue("runner")
    canaries: dict[Path, tuple] = {}
    before = len(runner.stores)
    if runner.user is None:
        yield canaries
        return
    runner.share(tmp_path)
    canary = runner.user.home / "root-canary"
    canary.write_bytes(b"root's file in the user's home\n")
    canaries[canary] = fingerprint(canary)
    yield canaries
    try:
        assert_confined(runner.user, runner.module_stores + runner.stores[before:], tmp_path, canaries)
    finally:
        canary.unlink(missing_ok=True)
