"""The only module that calls mount(2)/umount2(2)."""

from __future__ import annotations

import ctypes
import os

from lamina.errors import StoreError

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def mount(source: str, target: str, fstype: str, data: str, *, cwd: str | None = None, flags: int = 0) -> None:
    """mount(2).  With `cwd`, relative paths in `data` resolve against it: that is
    how overlay lower-dir chains stay short (Docker's overlay2 does the same)."""
    old = None
    if cwd is not None:
        old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        os.chdir(cwd)
    try:
        if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
            err = ctypes.get_errno()
            raise StoreError(f"mount {fstype} on {target}: {os.strerror(err)}")
    finally:
        if old is not None:
            os.fchdir(old)
            os.close(old)


def unmount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not mounted; ENOENT: gone already
            raise StoreError(f"unmount {target}: {os.strerror(err)}")


def is_mounted(target: str) -> bool:
    target = os.path.abspath(target)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)
