"""Whiteout vocabulary shared by extraction, change detection and layer writing.

Tar form (image-spec): `.wh.<name>` deletes <name>; `<dir>/.wh..wh..opq` hides all
lower content of <dir>.  overlayfs form (an unpacked layer dir or a container's
upper dir): a 0:0 character device named <name>; xattr trusted.overlay.opaque=y.
"""

from __future__ import annotations

import errno
import os
import stat

from lamina import rootless

PREFIX = ".wh."
META_PREFIX = ".wh..wh."
OPAQUE = ".wh..wh..opq"
AUFS_LINK_DIR = ".wh..wh.plnk"
# Root's overlay reads trusted.overlay.*; in a rootless lamina's user namespace trusted.*
# cannot be set, and the mount's `userxattr` option makes overlay read user.overlay.*
# instead (a store is only ever used in one of the two modes: it lives in the user's home).
OPAQUE_XATTR = "user.overlay.opaque" if rootless() else "trusted.overlay.opaque"
CAPABILITY_XATTR = "security.capability"
# overlayfs bookkeeping that must never travel inside a layer or be accepted from one
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

_NO_XATTR = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs whiteout: a character device with device number 0:0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def get_xattr(target: int | str, name: str) -> bytes | None:
    """An xattr of an fd or (without following symlinks) a path; None if absent/unsupported."""
    try:
        if isinstance(target, int):
            return os.getxattr(target, name)
        return os.getxattr(target, name, follow_symlinks=False)
    except OSError as e:
        if e.errno in _NO_XATTR:
            return None
        raise


def is_opaque(target: int | str) -> bool:
    return get_xattr(target, OPAQUE_XATTR) == b"y"


def fd_path(dir_fd: int, name: str) -> str:
    """A path naming `name` inside an open directory, for the few calls without dir_fd
    support (xattrs).  The kernel resolves the magic link to the directory itself, so
    only `name` is looked up, and callers pass follow_symlinks=False for it."""
    return f"/proc/self/fd/{dir_fd}/{name}"
