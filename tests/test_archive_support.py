"""Helpers shared by the tests/test_archive_*.py modules (this module has no tests).

Hand-built tar streams (tarfile.TarInfo, as moby's breakout tests build tar.Header
values), overlay mounts, and a comparable snapshot of a directory tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MTIME = 1_600_000_000


@dataclass
class Entry:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    mtime: int = MTIME
    pax: dict[str, str] = field(default_factory=dict)

    def tarinfo(self) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(self.name)
        ti.type = self.type
        ti.mode = self.mode
        ti.uid, ti.gid = self.uid, self.gid
        ti.uname = ti.gname = ""
        ti.linkname = self.linkname
        ti.devmajor, ti.devminor = self.devmajor, self.devminor
        ti.mtime = self.mtime
        ti.size = len(self.data) if self.type == tarfile.REGTYPE else 0
        ti.pax_headers = dict(self.pax)
        return ti


def File(name: str, data: bytes = b"", mode: int = 0o644, **kw) -> Entry:
    return Entry(name, tarfile.REGTYPE, data, mode, **kw)


def Dir(name: str, mode: int = 0o755, **kw) -> Entry:
    return Entry(name, tarfile.DIRTYPE, b"", mode, **kw)


def Symlink(name: str, target: str, **kw) -> Entry:
    return Entry(name, tarfile.SYMTYPE, b"", 0o777, linkname=target, **kw)


def Hardlink(name: str, target: str, **kw) -> Entry:
    return Entry(name, tarfile.LNKTYPE, b"", kw.pop("mode", 0o644), linkname=target, **kw)


def Char(name: str, major: int, minor: int, mode: int = 0o666, **kw) -> Entry:
    return Entry(name, tarfile.CHRTYPE, b"", mode, devmajor=major, devminor=minor, **kw)


def Fifo(name: str, mode: int = 0o644, **kw) -> Entry:
    return Entry(name, tarfile.FIFOTYPE, b"", mode, **kw)


def tar_bytes(*entries: Entry) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            tf.addfile(e.tarinfo(), io.BytesIO(e.data) if e.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def tar_stream(*entries: Entry) -> io.BytesIO:
    return io.BytesIO(tar_bytes(*entries))


# --------------------------------------------------------------------------- trees


def tree_state(root: Path) -> dict[str, tuple]:
    """Everything about a tree we care about: type, mode, owner, rdev, size, mtime
    (files), content hash, link target, xattrs.  Directory mtimes are included."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                xattrs = {k: os.getxattr(path, k) for k in sorted(os.listxattr(path))}
            rel = os.path.relpath(path, root)
            state[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_size, st.st_mtime_ns,
                          digest, target, xattrs)
    return state


# --------------------------------------------------------------------------- overlay

OVERLAY_OPTS = "index=off,redirect_dir=off,metacopy=off"


@contextlib.contextmanager
def overlay(target: Path, lowers: list[Path], upper: Path | None = None, work: Path | None = None):
    """Mount an overlay (read-only when no upper).  Lowers are top-most first.
    A read-only view of a single lower is that lower itself (overlayfs wants two)."""
    if upper is None and len(lowers) == 1:
        yield lowers[0]
        return
    target.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={':'.join(str(p) for p in lowers)},{OVERLAY_OPTS}"
    if upper is not None:
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        opts += f",upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def in_chroot(root: Path, command: str) -> None:
    """Run a busybox shell command inside `root` (as a container would)."""
    subprocess.run(["chroot", str(root), "/bin/sh", "-c", command], check=True,
                   env={"PATH": "/bin:/sbin:/usr/bin:/usr/sbin"})


def docker_order_key(line: str) -> list[tuple[int, str]]:
    """Order of changes: pre-order walk, within a directory the present entries by
    name and then the deleted ones by name (Docker prints each group in Go map order)."""
    kind, path = line.split(" ", 1)
    parts = path.strip("/").split("/")
    return [(0, p) for p in parts[:-1]] + [(1 if kind == "D" else 0, parts[-1])]
