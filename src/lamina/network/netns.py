"""Network namespaces kept alive by a bind mount on a file, like `ip netns add`,
but under lamina's own runtime dir (`/run/lamina/netns/<container id>`).

A namespace is made in a short-lived thread (unshare(2) of CLONE_NEWNET acts on
the calling thread only), so lamina itself never leaves the host's namespace and
no helper process is spawned.  Unmounting the file drops the last reference once
the container's processes are gone: the kernel then destroys the namespace and
with it the container end of the veth pair, which takes the host end along.
"""

from __future__ import annotations

import ctypes
import os

from lamina import runtime_root
from lamina.errors import RuntimeFailure

RUN_DIR = runtime_root()  # /run/lamina; a rootless lamina's $XDG_RUNTIME_DIR/lamina
NETNS_DIR = os.path.join(RUN_DIR, "netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)


def path_for(container_id: str) -> str:
    return os.path.join(NETNS_DIR, container_id)


def create(path: str) -> None:
    """A new, empty network namespace bound at `path` (which must not exist)."""
    import threading  # here, not at the top: `release` of a host or none container starts none

    from lamina.snapshot.mount import mount

    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    failure: list[BaseException] = []

    def in_new_netns() -> None:
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise RuntimeFailure(f"network namespace {path}: unshare: {os.strerror(err)}")
            mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, "none", "", flags=MS_BIND)
        except BaseException as e:  # handed to the caller's thread
            failure.append(e)

    worker = threading.Thread(target=in_new_netns, name="lamina-netns")
    worker.start()
    worker.join()
    if failure:
        remove(path)
        e = failure[0]
        raise e if isinstance(e, RuntimeFailure) else RuntimeFailure(f"network namespace {path}: {e}")


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
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
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

