"""The monitor as a process (lamina/monitor.py): out of the CLI's session with none of
its fds, told its container's ID (and maybe its network) on a pipe, its container's only
keeper (the monitor lock), and, rootless, the holder of the user namespace its
container's mounts live in."""

from __future__ import annotations

import os
import time


def detach(keep: tuple[int, ...]) -> None:
    """A new session, stdio on /dev/null, every inherited fd closed but `keep` (which
    runc and the container never get)."""
    os.setsid()  # out of the CLI's session: its terminal's hang-up and ^C do not reach us
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    for fd in keep:
        os.set_inheritable(fd, False)  # runc and the container never get them
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def read_id(fd: int, keep: bool = False):
    """What the go pipe `fd` says: (the container's ID, "" for none; the endpoint to come
    after it, a network/handoff.py `Pending`, or None).  "ID\\n", or "ID net\\n" when the
    CLI attaches the network; `fd` is closed unless something follows (`keep`: a tether's)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)  # what follows the ID is the tether's, or the network's
        if not chunk:
            break
        data += chunk
    text, _, net = data.decode("ascii", "replace").strip().partition(" ")
    ok = data.endswith(b"\n") and len(text) == 64 and text.isalnum()
    pending = None
    if ok and net == "net" and not keep:
        from lamina.network.handoff import Pending

        pending = Pending(fd)
    elif not keep or not ok:
        os.close(fd)
    return (text if ok else ""), pending


def sole_monitor(system, container_id: str, held: list[int]) -> bool:
    """Take the container's monitor lock (its fd appended to `held`: kept until we exit,
    never inherited): two concurrent starts must not run it twice (the second runner
    would unmount the first's rootfs).  False when another keeps it running; a monitor
    that is only finishing (cleanup, --rm) is waited for."""
    import fcntl

    try:
        fd = os.open(os.path.join(system.containers.path(container_id), "monitor.lock"),
                     os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        from lamina.errors import NoSuchContainer

        raise NoSuchContainer(container_id) from None
    deadline = time.monotonic() + 30
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if system.containers.get(container_id).running or time.monotonic() > deadline:
                os.close(fd)
                return False
            time.sleep(0.02)
    held.append(fd)
    if system.containers.get(container_id).running:  # a foreground front runs it
        return False
    return True


def hold_namespace() -> str | None:
    """A rootless lamina's monitor keeps the user namespace its command made: later
    commands join it (lamina/userns.py) to see this container's mounts."""
    from lamina import rootless

    if not rootless():
        return None
    from lamina.userns import hold

    return hold()
