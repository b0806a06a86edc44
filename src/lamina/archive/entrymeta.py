"""A tar entry's metadata put on what archive/extract.py made of it: owner, mode,
xattrs and times, as moby's archive does (xattrs best effort, atime never before mtime).

`ids` is the owner to give (None: leave the caller's, moby's NoLchown); the extractor
checks an entry's own ids with `check_ids` before it passes them.
"""

from __future__ import annotations

import errno
import os

from lamina.archive import whiteout as wh
from lamina.errors import InvalidArchive

_IGNORED_XATTR_ERRORS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)


def set_fd_metadata(ti, fd: int, ids: tuple[int, int] | None) -> None:
    """chown first (it clears setuid bits and file capabilities), then chmod, then xattrs."""
    if ids is not None:
        os.fchown(fd, *ids)
    os.fchmod(fd, ti.mode & 0o7777)
    for key, value in _xattrs(ti):
        _set_xattr(fd, key, value, follow=True)


def set_path_metadata(ti, pfd: int, base: str, ids: tuple[int, int] | None, *, chmod: bool) -> None:
    """The same for `base` in the directory `pfd` (links, devices, fifos), never following it; times too."""
    if ids is not None:
        os.chown(base, *ids, dir_fd=pfd, follow_symlinks=False)
    if chmod:  # there is no lchmod: never chmod a symlink (it would follow)
        os.chmod(base, ti.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
    for key, value in _xattrs(ti):
        _set_xattr(wh.fd_path(pfd, base), key, value, follow=False)
    os.utime(base, ns=times(ti), dir_fd=pfd, follow_symlinks=False)


def check_ids(ti) -> None:
    if not (0 <= ti.uid <= 0xFFFFFFFE and 0 <= ti.gid <= 0xFFFFFFFE):
        raise InvalidArchive(f"tar entry {ti.name!r}: invalid owner {ti.uid}:{ti.gid}")


def times(ti) -> tuple[int, int]:
    """(atime, mtime) in ns; atime = max(atime, mtime) as moby does."""
    mtime = ti.mtime_ns if ti.mtime_ns is not None else int(ti.mtime) * 1_000_000_000
    atime = ti.atime_ns if ti.atime_ns is not None else mtime
    return max(atime, mtime), mtime


def _xattrs(ti):
    for key, value in ti.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr.") :]
            if not name.startswith(wh.OVERLAY_XATTR_PREFIXES):
                yield name, value.encode("utf-8", "surrogateescape")


def _set_xattr(target, name: str, value: bytes, *, follow: bool) -> None:
    try:
        if isinstance(target, int):
            os.setxattr(target, name, value)
        else:
            os.setxattr(target, name, value, follow_symlinks=follow)
    except OSError as e:
        if e.errno not in _IGNORED_XATTR_ERRORS:  # EPERM/ENOTSUP are best effort, as in moby
            raise
