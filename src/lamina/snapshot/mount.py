"""The only module that calls mount(2)/umount2(2): snapshots' `Mount` values become mounts here."""

from __future__ import annotations

import os

from lamina.errors import StoreError

TYPE_CHECKING = False  # typing for annotations only (start-up cost)
if TYPE_CHECKING:
    from typing import Sequence

MNT_DETACH = 2
MS_BIND = 4096
MS_REC = 16384
_LIBC = None


class _Calls:
    def __init__(self) -> None:
        from lamina import libc

        self.mount = libc.function("mount", libc.CharP, libc.CharP, libc.CharP, libc.ULong, libc.CharP)
        self.umount2 = libc.function("umount2", libc.CharP, libc.Int)


def _libc():
    """libc's mount/umount2 (lamina/libc.py), loaded on the first call: `diff` and
    `inspect` (which import this module) never need them."""
    global _LIBC
    if _LIBC is None:
        _LIBC = _Calls()
    return _LIBC


def _errno() -> int:
    from lamina.libc import errno

    return errno()


def mount(source: str, target: str, fstype: str, data: str, *, cwd: str | None = None, flags: int = 0) -> None:
    """mount(2).  With `cwd`, relative paths in `data` resolve against it: that is
    how overlay lower-dir chains stay short (Docker's overlay2 does the same)."""
    old = None
    if cwd is not None:
        old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        os.chdir(cwd)
    try:
        if _libc().mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
            err = _errno()
            raise StoreError(f"mount {fstype} on {target}: {os.strerror(err)}")
    finally:
        if old is not None:
            os.fchdir(old)
            os.close(old)


def unmount(target: str) -> None:
    if _libc().umount2(target.encode(), MNT_DETACH) != 0:
        err = _errno()
        if err not in (22, 2):  # EINVAL: not mounted; ENOENT: gone already
            raise StoreError(f"unmount {target}: {os.strerror(err)}")


def is_mounted(target: str) -> bool:
    target = os.path.abspath(target)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def mounts_below(path: str) -> list[str]:
    """Mount points strictly inside `path`, deepest first (the order to unmount them)."""
    prefix = os.path.abspath(path) + "/"
    with open("/proc/self/mountinfo") as f:
        found = [line.split()[4] for line in f]
    # mountinfo escapes blanks as \040; store paths have none, so a plain compare is exact
    return sorted((m for m in found if m.startswith(prefix)), key=len, reverse=True)


def mount_all(mounts: Sequence) -> str:
    """Mount each `Mount` (snapshot/__init__.py) in order; returns the target of
    the last one (the root filesystem).  The caller knows none is mounted yet."""
    target = ""
    for m in mounts:
        target = m.target
        if m.type == "bind" and m.source == m.target:
            continue  # the tree itself, in place: nothing to mount
        flags = MS_BIND | MS_REC if m.type == "bind" else 0
        data = ",".join(o for o in m.options if o not in ("bind", "rbind"))
        mount(m.source, target, m.type, data, cwd=m.cwd, flags=flags)
    return target


def unmount_all(mounts: Sequence) -> None:
    for m in reversed(mounts):
        if not (m.type == "bind" and m.source == m.target):
            unmount(m.target)
