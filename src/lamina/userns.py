"""Rootless lamina: an ordinary user's command runs in a user namespace of its own.

`enter()` is called first thing by the CLI when euid != 0 (root never imports this
module).  The process unshares a user and a mount namespace and, through Debian's
setuid `newuidmap`/`newgidmap` (package uidmap), gets the map

    0 -> the user's uid,   1..N -> the user's subordinate ids (N <= 65,536)

so that it is root inside: it can extract layers with the image's owners, mount
overlayfs (with `userxattr`), and run runc, whose containers then live inside this
namespace.  As podman's `unshare` and rootlesskit do, the id maps are written from
outside: the maps of a process can only be set by a process in the parent namespace,
and a setuid binary loses its power inside a namespace that does not map its owner.
So before unsharing we fork a helper that stays outside; it waits on a pipe until we
have unshared, runs the two tools on our pid, and reports.  Our own pid, process
group and terminal stay as they were (no waiting parent to forward signals through).

The namespace lives as long as the command does, and as long as a detached
container's monitor (forked from it, it inherits it): no pause process.  Every command
and monitor registers itself under $XDG_RUNTIME_DIR/lamina/userns/ (`hold`), and a new
command joins a live one's user and mount namespaces (setns: we own them) instead of
making its own, so `exec`, `rm -f` or a `run` next to running containers see their
mounts; join-or-create is serialised by a lock, so concurrent commands converge too.
"""

from __future__ import annotations

import os

from lamina import ROOTLESS_ENV
from lamina.errors import LaminaError

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
SUBIDS = 65536  # as podman and docker's rootless set-up: enough for images' usual ids (nobody 65534)
NEWUIDMAP, NEWGIDMAP = "newuidmap", "newgidmap"


class RootlessError(LaminaError):
    exit_code = 125


def subids(path: str, name: str, uid: int) -> tuple[int, int] | None:
    """(start, count) of the first range of `name` (or its uid) in /etc/subuid or /etc/subgid."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(uid)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0 and start >= 0:
            return start, min(count, SUBIDS)
    return None


def usermod_hint(name: str) -> str:
    return (f"no subordinate ids for user {name} in /etc/subuid and /etc/subgid (rootless lamina maps "
            f"{SUBIDS} of them): as root run `usermod --add-subuids 100000-165535 "
            f"--add-subgids 100000-165535 {name}`")


def enter() -> None:
    """Become root in a new user + mount namespace mapped to the user's ids, or raise RootlessError."""
    import pwd

    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    _runtime_dir(uid)
    # Decided outside (inside, pwd would say root's): the store's and ~/.docker's place.
    os.environ.setdefault("HOME", pwd.getpwuid(uid).pw_dir if name != str(uid) else "/")
    # Join-or-create and registering ourselves happen under one lock: two commands started
    # together end up in one namespace (each would otherwise miss the other's mounts).
    import atexit
    import fcntl

    os.makedirs(_holders_dir(), mode=0o700, exist_ok=True)
    lock = os.open(_holders_dir() + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _join_live():
            _create(name, uid, gid)
        os.environ[ROOTLESS_ENV] = str(uid)
        atexit.register(unhold, hold())
    finally:
        os.close(lock)


def _create(name: str, uid: int, gid: int) -> None:
    sub_u = subids("/etc/subuid", name, uid)
    sub_g = subids("/etc/subgid", name, uid)
    if sub_u is None or sub_g is None:
        raise RootlessError(usermod_hint(name))
    tools = [_which(t) for t in (NEWUIDMAP, NEWGIDMAP)]
    if None in tools:
        raise RootlessError("rootless lamina needs newuidmap and newgidmap (apt-get install uidmap)")
    maps = ([tools[0], "0", str(uid), "1", "1", str(sub_u[0]), str(sub_u[1])],
            [tools[1], "0", str(gid), "1", "1", str(sub_g[0]), str(sub_g[1])])
    _unshare_mapped(maps)


def _which(name: str) -> str | None:
    """shutil.which without importing shutil (fnmatch, re: every rootless verb would pay them)."""
    for d in (os.environ.get("PATH") or "/usr/bin:/bin").split(os.pathsep) + ["/usr/bin", "/usr/sbin"]:
        path = os.path.join(d or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _holders_dir() -> str:
    return os.path.join(os.environ["XDG_RUNTIME_DIR"], "lamina", "userns")


def hold() -> str:
    """Register this process (every rootless command, and a detached container's monitor)
    as one that keeps our namespace: later commands join it, so they see the mounts and
    processes of the containers it runs.
    The file is `<pid>-<namespace inode>` (a reused pid cannot pass for it); its path is returned."""
    d = _holders_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, f"{os.getpid()}-{os.stat('/proc/self/ns/user').st_ino}")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return path


def unhold(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _join_live() -> bool:
    """Join the user and mount namespaces of a live monitor, if one runs; stale entries are removed."""
    from lamina import libc  # not ctypes (~1 ms of a start)

    d = _holders_dir()
    try:
        names = os.listdir(d)
    except OSError:
        return False
    setns = None
    for name in names:
        pid, _, ino = name.partition("-")
        try:
            if str(os.stat(f"/proc/{pid}/ns/user").st_ino) != ino:
                raise FileNotFoundError
            fds = [os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in ("user", "mnt")]
        except OSError:
            unhold(os.path.join(d, name))
            continue
        setns = setns or libc.function("setns", libc.Int, libc.Int)
        cwd = os.getcwd()  # setns of a mount namespace moves us to its root
        try:
            if setns(fds[0], CLONE_NEWUSER) != 0:
                continue  # not ours to join (another user's file cannot be here: 0700)
            if setns(fds[1], CLONE_NEWNS) != 0:
                raise RootlessError(f"cannot join the mount namespace of lamina's process {pid}: "
                                    f"{os.strerror(libc.errno())}")
            try:
                os.chdir(cwd)
            except OSError as e:
                raise RootlessError(f"cannot return to {cwd} in lamina's namespace: {e.strerror}") from None
            return True
        finally:
            for fd in fds:
                os.close(fd)
    return False


def _runtime_dir(uid: int) -> None:
    """$XDG_RUNTIME_DIR, set as pam_systemd would (/run/user/UID) when the session has none."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    candidate = f"/run/user/{uid}"
    try:
        if os.stat(candidate).st_uid == uid:
            os.environ["XDG_RUNTIME_DIR"] = candidate
            return
    except OSError:
        pass
    import tempfile

    candidate = os.path.join(tempfile.gettempdir(), f"lamina-run-{uid}")
    try:
        os.mkdir(candidate, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise RootlessError(f"XDG_RUNTIME_DIR is not set and {candidate}: {e.strerror}") from None
    st = os.lstat(candidate)
    if st.st_uid != uid or st.st_mode & 0o077:  # another user's, planted in /tmp
        raise RootlessError(f"XDG_RUNTIME_DIR is not set and {candidate} is not a private directory of yours")
    os.environ["XDG_RUNTIME_DIR"] = candidate


def _unshare_mapped(maps) -> None:
    from lamina import libc

    go_r, go_w = os.pipe()
    st_r, st_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper, outside: wait until the parent has unshared, then map it
        os.close(go_w)
        os.close(st_r)
        code = 1
        try:
            if os.read(go_r, 1) == b"u":
                target = str(os.getppid())
                fa = [(os.POSIX_SPAWN_DUP2, st_w, 1), (os.POSIX_SPAWN_DUP2, st_w, 2)]
                children = [os.posix_spawn(argv[0], [argv[0], target, *argv[1:]], os.environ, file_actions=fa)
                            for argv in maps]  # both at once: independent maps
                codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
                code = 0 if codes == [0, 0] else 1
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(st_w)
    failed = libc.function("unshare", libc.Int)(CLONE_NEWUSER | CLONE_NEWNS) != 0
    err = libc.errno()
    os.write(go_w, b"x" if failed else b"u")
    os.close(go_w)
    chunks = []
    while True:
        b = os.read(st_r, 4096)
        if not b:
            break
        chunks.append(b)
    os.close(st_r)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if failed:
        raise RootlessError(f"cannot create a user namespace: {os.strerror(err)}"
                            + (" (user.max_user_namespaces is 0?)" if err in (1, 28) else ""))
    if status != 0:
        text = b" ".join(chunks).decode(errors="replace").strip().replace("\n", " ")
        raise RootlessError(f"cannot map the user namespace's ids: {text or 'newuidmap failed'}")
