"""Where new directories live on disk: away from inodes freed a moment ago.

ext4 without a journal (the root filesystem of many small VMs, this machine's
too) does not reuse an inode freed in the last minute (six while its inode table
block is unwritten): to allocate one it looks at each such free inode from the
start of the block group, a buffer-cache lookup each (fs/ext4/ialloc.c,
recently_deleted).  A file's inode goes to its directory's flex group, so right
after a 20,000-file tree was removed there (rmi, a test's temp dir), every file
created there scans past all the freed inodes: a COPY of 20,000 files took 12 s
of kernel time instead of 0.3 s, coming and going with what others had deleted.

A directory keeps its place when renamed, and what is made in it later follows
it.  So a container's upper dir, and the directories a COPY makes once creates
turn slow, are made in the least recently used of a few anchor directories
(spread over flex groups by ext4: their parent has the TOPDIR flag, Orlov's rule
for top-level directories) and renamed into place: a layer removed a moment ago
was made in another anchor.  Nothing is created to test a place (a test file
removed is one more freed inode).  Elsewhere (tmpfs, xfs, a journalled ext4) this
costs a mkdir and a rename per container.
"""

from __future__ import annotations

import os

ANCHORS = 16
SLOW_S = 80e-6  # a create that scanned past ~1,000 recently freed inodes; a normal one takes ~10 us
MOVE_AFTER = 2  # slow creates in a row
_FLEX_INODES = 16 * 8192  # inodes in a flex group as mke2fs makes them (16 groups of 8,192)
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def anchors_dir(store_root: str) -> str:
    return os.path.join(store_root, "spread")


def make_upper(path: str, store_root: str) -> None:
    """Create the empty directory `path` in the least recently used anchor."""
    if not os.path.isdir(path):
        Spreader(store_root).mkdir(path, 0o777, move=True)


class Spreader:
    """Makes directories: where the parent is while file creates stay fast; once two in
    a row were slow, in the least recently used anchor (moved into place), and from
    then on beside it.  It moves a few times at most: each slow create reuses one of
    the freed inodes, so a crowded group clears as it is used, and a layer spread over
    many groups would crowd them all when it is removed."""

    MOVES = 3

    def __init__(self, store_root: str) -> None:
        self.anchors_dir = anchors_dir(store_root)
        self.anchor: str | None = None  # where directories are made, once moved
        self.slow = 0                   # slow creates in a row
        self.moves = 0
        self._n = 0

    def created(self, seconds: float) -> None:
        """How long a file create took."""
        self.slow = self.slow + 1 if seconds > SLOW_S else 0

    def mkdir(self, path: str, mode: int, *, move: bool = False) -> None:
        if move or (self.slow >= MOVE_AFTER and self.moves < self.MOVES):
            self.slow = 0
            self.moves += 1
            try:
                self.anchor = _least_recent(self.anchors_dir, self.anchor)
            except OSError:
                self.anchor = None
        if self.anchor is None:
            os.mkdir(path, mode)
            return
        self._n += 1
        made = os.path.join(self.anchor, f"{os.getpid()}-{id(self):x}-{self._n}")
        try:
            os.mkdir(made, mode)  # as os.mkdir(path, mode) would (the umask applies)
            try:
                os.rename(made, path)
            except OSError:
                os.rmdir(made)
                raise
        except OSError:
            if not os.path.isdir(path):
                os.mkdir(path, mode)  # another filesystem, a full disk: as before


def _least_recent(anchors_dir: str, current: str | None) -> str:
    """The anchor whose content changed longest ago (what was made in an anchor lately
    is what an rmi frees next), never `current`, and if possible not near one of the
    last few used: ext4 may have put several anchors in one flex group, and inode
    numbers that close tell it."""
    if not os.path.isdir(anchors_dir):
        os.makedirs(anchors_dir, mode=0o700, exist_ok=True)
        _set_topdir(anchors_dir)
    anchors = []
    for i in range(ANCHORS):
        anchor = os.path.join(anchors_dir, f"a{i}")
        try:
            st = os.stat(anchor)
        except FileNotFoundError:
            os.mkdir(anchor, 0o700)
            st = os.stat(anchor)
        anchors.append((anchor == current, st.st_mtime_ns, st.st_ino, anchor))
    anchors.sort()
    recent = [ino for _, _, ino, _ in anchors[-3:]]  # the last used ones (the current one sorts last)
    for _, _, ino, anchor in anchors:
        if anchor != current and all(abs(ino - r) >= _FLEX_INODES for r in recent):
            return anchor
    return anchors[0][3]


def _set_topdir(path: str) -> None:
    """chattr +T: ext4 places each subdirectory as it places top-level ones (spread)."""
    import fcntl
    import struct

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("l", 0)))[0]
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("l", flags | _FS_TOPDIR_FL))
    except OSError:
        pass  # not ext4 (or not allowed): nothing to spread
    finally:
        os.close(fd)
