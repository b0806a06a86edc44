"""Network namespaces kept alive by a bind mount on a file, like `ip netns add`,
but under lamina's own runtime dir (`/run/lamina/netns/<container id>`).

A namespace is made by unshare(2) of CLONE_NEWNET, which acts on the calling
thread only: root's lamina makes it on its own thread and steps back with setns(2)
before going on (no thread to start), a rootless one on a short-lived thread; no
helper process is spawned either way.  Unmounting the file drops the last reference once
the container's processes are gone: the kernel then destroys the namespace and
with it the container end of the veth pair, which takes the host end along.
"""

from __future__ import annotations

import os

from lamina import libc, runtime_root
from lamina.errors import RuntimeFailure

RUN_DIR = runtime_root()  # /run/lamina; a rootless lamina's $XDG_RUNTIME_DIR/lamina
NETNS_DIR = os.path.join(RUN_DIR, "netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20

_unshare = libc.function("unshare", libc.Int)  # lamina/libc.py: not ctypes (~1 ms of a start)
_setns = libc.function("setns", libc.Int, libc.Int)


def path_for(container_id: str) -> str:
    return os.path.join(NETNS_DIR, container_id)


def create(path: str, then=None):
    """A new, empty network namespace bound at `path` (which must not exist); returns
    `then()`, called in it (e.g. netlink.Socket: a socket of the new namespace), so that
    no thread has to join it afterwards."""
    from lamina import rootless

    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    try:
        # root's lamina may step back into its own namespace (setns needs CAP_SYS_ADMIN over
        # it); a rootless one, in a user namespace that does not own the host's, may not
        return (_create_on_thread if rootless() else _create_here)(path, then)
    except BaseException as e:
        remove(path)
        if isinstance(e, RuntimeFailure) or not isinstance(e, Exception):
            raise
        raise RuntimeFailure(f"network namespace {path}: {e}") from None


def _create_here(path: str, then):
    """On the calling thread, which is back in its own namespace on return: no thread to
    start and wait for (~0.5 ms, and more on a busy machine)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _make(path, then)
    finally:
        try:
            if _setns(home, CLONE_NEWNET) != 0:
                err = libc.errno()
                raise RuntimeFailure(f"network namespace {path}: cannot return to lamina's own: {os.strerror(err)}")
        finally:
            os.close(home)


def _create_on_thread(path: str, then):
    """On a short-lived thread: the caller never leaves its namespace."""
    import threading  # here, not at the top: a root lamina's start imports none

    outcome: list = []

    def in_new_netns() -> None:
        try:
            outcome.append((True, _make(path, then)))
        except BaseException as e:  # handed to the caller's thread
            outcome.append((False, e))

    worker = threading.Thread(target=in_new_netns, name="lamina-netns")
    worker.start()
    worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _make(path: str, then):
    """Move the calling thread into a new namespace, bind it at `path`, call `then` there."""
    from lamina.snapshot.mount import mount

    if _unshare(CLONE_NEWNET) != 0:
        err = libc.errno()
        raise RuntimeFailure(f"network namespace {path}: unshare: {os.strerror(err)}")
    mount("/proc/thread-self/ns/net", path, "none", "", flags=MS_BIND)
    return then() if then is not None else None


def call_in(path: str, fn):
    """`fn()` on a short-lived thread that has joined the namespace at `path`; its
    result (or exception).  setns(2) of a network namespace acts on the calling thread
    only and a child process inherits its thread's namespace: a program started there
    (`ip`) runs in the container's namespace without an `nsenter` exec in front."""
    import threading

    outcome: list = []

    def in_netns() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _setns(fd, CLONE_NEWNET) != 0:
                    err = libc.errno()
                    raise RuntimeFailure(f"network namespace {path}: setns: {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome.append((True, fn()))
        except BaseException as e:  # handed to the caller's thread
            outcome.append((False, e))

    worker = threading.Thread(target=in_netns, name="lamina-netns")
    worker.start()
    worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def remove(path: str) -> None:
    """Unmount and delete a namespace file; nothing to do if it is gone already."""
    from lamina.snapshot.mount import unmount

    try:
        unmount(path)
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise RuntimeFailure(f"network namespace {path}: {e.strerror}") from None


def prepare_dir() -> None:
    """Make NETNS_DIR a shared mount point as `ip netns` does for /run/netns: a mount
    namespace copied from ours later (runc's, a service's) then sees our unmounts,
    instead of keeping a dead container's namespace alive in its copy.  Called
    once, under the bridge set-up lock."""
    from lamina.errors import StoreError
    from lamina.snapshot.mount import mount

    if os.path.isdir(NETNS_DIR) and _is_mount_point(NETNS_DIR):
        return
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    try:
        mount("none", NETNS_DIR, "none", "", flags=MS_SHARED | MS_REC)
    except StoreError:  # EINVAL: not a mount point yet
        try:
            mount(NETNS_DIR, NETNS_DIR, "none", "", flags=MS_BIND | MS_REC)
            mount("none", NETNS_DIR, "none", "", flags=MS_SHARED | MS_REC)
        except StoreError as e:
            raise RuntimeFailure(f"network namespace directory {NETNS_DIR}: {e}") from None


def _is_mount_point(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def orphans(owned, min_age: float = 60.0) -> list[str]:
    """Entries of NETNS_DIR that look abandoned (for `system check`): not named by a
    container in `owned` (the caller's store: its own are checked against its rows),
    made over `min_age` seconds ago (a starting container's is younger), and with no
    process in their namespace (every store's running container has its init there;
    a stopped one's entry is removed with its network).  The dir is shared by every
    store on the host: none of this says which store left one.  Only root sees every
    process's namespace: a rootless lamina reports none."""
    import time

    from lamina import rootless

    if rootless():
        return []
    try:
        names = [n for n in os.listdir(NETNS_DIR) if n not in owned]
    except OSError:
        return []
    if not names:
        return []
    in_use = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                st = os.stat(f"/proc/{pid}/ns/net")
            except OSError:
                continue  # gone meanwhile
            in_use.add((st.st_dev, st.st_ino))
    found, now = [], time.time()
    for name in names:
        path = path_for(name)
        try:
            st = os.stat(path)  # the namespace's inode when bound, else the bare file's
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in in_use and now - st.st_mtime >= min_age:
            found.append(path)
    return sorted(found)
