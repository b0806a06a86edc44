"""Write Docker-compatible layer tars (what moby's archive package produces).

PAX format, names relative without `./`, directories with a trailing `/`, a sorted
walk with parents first, numeric owners and empty user/group names (an export
names them), whole-second mtimes, no atime/ctime, only the `security.capability` xattr (v3 rewritten to v2),
hardlinks as type `1` to the first archive path of the inode, devices, fifos,
symlinks verbatim, sockets skipped.  The archive ends with exactly 1024 zero bytes,
so an empty layer has diff_id sha256:5f70bf18...

Everything is read through directory fds with O_NOFOLLOW, so a hostile container
cannot redirect the walk through a symlink, and file data is streamed.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO, Sequence

from lamina.archive import whiteout as wh
from lamina.archive.changes import Change
from lamina.archive.inroot import InRoot, join
from lamina.archive.tarwriter import BLK, CHR, DIR, FIFO, LNK, REG, SYM, TarOut, encode_header
from lamina.errors import StoreError

_CHUNK = 1 << 20
_OPEN_LEVELS = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
RACE_ERRNOS = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EINVAL)  # gone, or now a link / not a dir


class _Changed(StoreError):
    """A file is no longer what the walk listed (before any of it was written)."""


def write_tree(root: str, out: BinaryIO, *, owner_names: tuple[dict, dict] | None = None,
               clamp: int | None = None) -> None:
    """The whole directory `root` (not itself) as one layer, e.g. for an import.
    `owner_names` (uid -> user, gid -> group) fills uname/gname, as docker's
    `export` does from the container's own /etc/passwd and /etc/group.
    `clamp` (SOURCE_DATE_EPOCH): no mtime written is later than it."""
    _write_walk(os.fspath(root), out, whiteouts=False, owner_names=owner_names, clamp=clamp)


def write_layer_from_upper(upper: str, out: BinaryIO, *, clamp: int | None = None) -> None:
    """An overlay upper dir as a layer: 0:0 char devices become `.wh.<name>`, opaque
    dirs get a `.wh..wh..opq` marker after their header (moby's ConvertWrite)."""
    _write_walk(os.fspath(upper), out, whiteouts=True, clamp=clamp)


def _write_walk(root: str, out: BinaryIO, *, whiteouts: bool, owner_names=None, clamp: int | None = None) -> None:
    writer = _Writer(out, whiteouts=whiteouts, owner_names=owner_names, clamp=clamp)
    try:
        _walk(root, writer)
    except OSError as e:
        raise StoreError(f"cannot write a layer from {root}: {e}") from None
    writer.finish()


def write_layer_from_changes(root: str, changes: Sequence[Change], out: BinaryIO, *,
                             clamp: int | None = None) -> None:
    """A layer from a change list and the new tree (moby's ExportChanges): A/C entries
    are read from `root` (a directory contributes its header only), D becomes a
    `.wh.<name>` whiteout (mode 0600, owner 0:0 and, unlike moby's current time,
    mtime 0 so the layer is reproducible).  Entries are sorted by path, as moby does."""
    writer = _Writer(out, whiteouts=False, clamp=clamp)
    tree = InRoot(os.fspath(root))
    try:
        for change in sorted(changes, key=lambda c: c.path):
            parts = change.path[1:].split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"invalid change path {change.path!r}")
            parent, base = "/".join(parts[:-1]), parts[-1]
            if change.kind == "D":
                writer.header(join(parent, wh.PREFIX + base), REG, 0o600, 0, 0, 0, 0)
                continue
            try:
                dfd = tree.dir_fd(parent)
                st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    fd = os.open(base, _DIR_FLAGS, dir_fd=dfd)
                    try:
                        writer.directory(fd, change.path[1:], os.fstat(fd))
                    finally:
                        os.close(fd)
                else:
                    writer.other(dfd, base, change.path[1:], st)
            except OSError as e:
                raise StoreError(f"cannot export change {change}: {e.strerror or e}") from None
        writer.finish()
    finally:
        tree.close()


def clamp_times(root: str, epoch: int) -> None:
    """Clamp the mtimes under `root` (not itself: it is not archived) to `epoch`
    (SOURCE_DATE_EPOCH), never following a symlink: an overlay upper dir that
    becomes a layer is clamped before it is archived, so the layer kept on disk
    says what its blob says.  Setting a child's times leaves its directory's
    mtime alone, so the order does not matter."""
    limit = epoch * 1_000_000_000
    for _dirpath, dirnames, filenames, dfd in os.fwalk(root, follow_symlinks=False):
        for name in dirnames + filenames:
            _clamp(name, dfd, limit)


def _clamp(name: str, dfd: int, limit: int) -> None:
    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    if st.st_mtime_ns > limit:
        os.utime(name, ns=(min(st.st_atime_ns, limit), min(st.st_mtime_ns, limit)), dir_fd=dfd,
                 follow_symlinks=False)


def _listing(fd: int, tolerant: bool = False) -> list[tuple[str, os.stat_result]]:
    items = []
    with os.scandir(fd) as it:
        for e in it:
            try:
                items.append((e.name, e.stat(follow_symlinks=False)))
            except FileNotFoundError:
                if not tolerant:
                    raise
    items.sort(key=lambda item: os.fsencode(item[0]))  # Go's WalkDir order: bytewise
    return items


def _walk(root: str, writer: "_Writer") -> None:
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _walk_fd(root_fd, "", writer)
    finally:
        os.close(root_fd)


def _walk_fd(root_fd: int, top: str, writer: "_Writer", mounts: dict | None = None) -> None:
    """Pre-order, sorted walk of the directory open at `root_fd` (not closed here),
    its entries named `top` + their relative path, with an explicit stack (no
    recursion limit).  Only the deepest _OPEN_LEVELS directories keep an fd; a
    shallower one is reopened through ".." of its child when the walk climbs back
    to it.  A `writer.tolerant` walk leaves out entries that vanish or change type
    under it (a running container's tree).  `mounts` {relative path: directory fd,
    or a file's (directory fd, name)}: what is mounted there (a container's volumes
    and binds, for `cp`), walked instead of the entry, on its own fds, no-follow."""
    st = os.fstat(root_fd)
    # [fd or -1, archive prefix, remaining sorted entries, (st_dev, st_ino), relative prefix, kept open]
    stack: list[list] = [[root_fd, top, iter(_listing(root_fd, writer.tolerant)), (st.st_dev, st.st_ino), "",
                          False]]
    try:
        while stack:
            fd, prefix, entries, _, rel, _ = stack[-1]
            for name, st in entries:
                arc = prefix + name
                mounted = mounts.get(rel + name) if mounts else None
                try:
                    if isinstance(mounted, tuple):  # a file bind: its source's entry, under this name
                        st = os.stat(mounted[1], dir_fd=mounted[0], follow_symlinks=False)
                        if not stat.S_ISDIR(st.st_mode):
                            writer.other(mounted[0], mounted[1], arc, st)
                            continue
                        child = os.open(mounted[1], _DIR_FLAGS, dir_fd=mounted[0])
                    elif mounted is not None:  # a directory mounted here: the walk goes on in it
                        child = os.open(".", _DIR_FLAGS, dir_fd=mounted)  # an fd of our own, read from the start
                    elif not stat.S_ISDIR(st.st_mode):
                        writer.other(fd, name, arc, st)
                        continue
                    else:
                        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except (OSError, _Changed) as e:
                    if writer.tolerant and (isinstance(e, _Changed) or e.errno in RACE_ERRNOS):
                        continue
                    raise
                if mounted is not None:  # ".." of a mount's directory is not this one: never reopened so
                    stack[-1][5] = True
                cst = os.fstat(child)
                stack.append([child, arc + "/", iter(()), (cst.st_dev, cst.st_ino), rel + name + "/", False])
                writer.directory(child, arc, cst)
                stack[-1][2] = iter(_listing(child, writer.tolerant))
                if len(stack) > _OPEN_LEVELS:
                    shallow = stack[-_OPEN_LEVELS - 1]
                    if shallow[0] not in (-1, root_fd) and not shallow[5]:
                        os.close(shallow[0])
                        shallow[0] = -1
                break
            else:
                stack.pop()
                if stack and stack[-1][0] < 0:
                    parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                    pst = os.fstat(parent)
                    stack[-1][0] = parent
                    if (pst.st_dev, pst.st_ino) != stack[-1][3]:
                        raise StoreError(f"cannot archive {stack[-1][1]!r}: it moved during the walk")
                if fd != root_fd:
                    os.close(fd)
    finally:
        for level in stack:
            if level[0] not in (-1, root_fd):
                os.close(level[0])


def write_entry(dir_fd: int, name: str, arcname: str, out: BinaryIO, *,
                owner_names: tuple[dict, dict] | None = None, mounts: dict | None = None) -> None:
    """`name` in the directory open at `dir_fd` ("." for that directory itself) as a
    tar named `arcname`: a directory with its contents below `arcname/` ("" names
    the directory `/`), anything else as its one entry (docker cp's GET archive).
    Every open is relative to `dir_fd` with O_NOFOLLOW, so a running container that
    swaps a directory for a symlink cannot send the walk out of its tree; entries
    that vanish or change type meanwhile are left out, as moby's tar leaves them.
    `mounts`: what is mounted below the directory (_walk_fd)."""
    writer = _Writer(out, whiteouts=False, owner_names=owner_names)
    writer.tolerant = True
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            writer.directory(fd, arcname, os.fstat(fd))
            _walk_fd(fd, arcname + "/", writer, mounts)
        finally:
            os.close(fd)
    else:
        writer.other(dir_fd, name, arcname, st)
    writer.finish()


def _capability(value: bytes | None) -> dict[str, bytes] | None:
    if value is None:
        return None
    if len(value) > 3 and value[3] == 3:
        # VFS_CAP_REVISION_3 carries a root uid that means nothing outside this user
        # namespace: store revision 2, as moby's ReadSecurityXattrToTarHeader does.
        value = value[:3] + b"\x02" + value[4:20]
    return {wh.CAPABILITY_XATTR: value}


class _Writer(TarOut):
    def __init__(self, out: BinaryIO, *, whiteouts: bool, owner_names: tuple[dict, dict] | None = None,
                 clamp: int | None = None) -> None:
        super().__init__(out)
        self.clamp = clamp  # SOURCE_DATE_EPOCH: later mtimes are written as it (BuildKit's rewrite-timestamp)
        self.whiteouts = whiteouts
        self.users, self.groups = owner_names or ({}, {})
        self.seen: dict[tuple[int, int], str] = {}  # (dev, ino) -> first archive path
        self.tolerant = False  # a live tree: see _walk_fd

    def header(self, name, typeflag, mode, uid, gid, size, mtime, linkname="", major=0, minor=0, xattrs=None):
        if self.clamp is not None and mtime > self.clamp:
            mtime = self.clamp
        self.write(encode_header(name, typeflag, mode, uid, gid, size, mtime, linkname, major, minor, xattrs,
                                 self.users.get(uid, ""), self.groups.get(gid, "")))

    # ------------------------------------------------------------------ entries
    def directory(self, fd: int, arc: str, st: os.stat_result) -> None:
        caps = _capability(wh.get_xattr(fd, wh.CAPABILITY_XATTR))
        self.header(arc + "/", DIR, st.st_mode, st.st_uid, st.st_gid, 0, _mtime(st), xattrs=caps)
        if self.whiteouts and wh.is_opaque(fd):
            # the marker inherits owner and permission bits from its dir, mtime 0 (moby)
            self.header(arc + "/" + wh.OPAQUE, REG, st.st_mode & 0o777, st.st_uid, st.st_gid, 0, 0)

    def other(self, dfd: int, name: str, arc: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return  # sockets cannot be archived; moby skips them too
        if self.whiteouts and wh.is_whiteout(st):
            head, _, base = arc.rpartition("/")
            self.header(join(head, wh.PREFIX + base), REG, 0o600, st.st_uid, st.st_gid, 0, _mtime(st))
            return
        if stat.S_ISREG(mode):
            self._file(dfd, name, arc)
            return
        caps = _capability(wh.get_xattr(wh.fd_path(dfd, name), wh.CAPABILITY_XATTR))
        link = self._seen(arc, st)
        if link is not None:
            self.header(arc, LNK, mode, st.st_uid, st.st_gid, 0, _mtime(st), link, xattrs=caps)
        elif stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=dfd)
            self.header(arc, SYM, mode, st.st_uid, st.st_gid, 0, _mtime(st), target, xattrs=caps)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = CHR if stat.S_ISCHR(mode) else BLK
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.header(arc, kind, mode, st.st_uid, st.st_gid, 0, _mtime(st), "", major, minor, caps)
        elif stat.S_ISFIFO(mode):
            self.header(arc, FIFO, mode, st.st_uid, st.st_gid, 0, _mtime(st), xattrs=caps)

    def _seen(self, arc: str, st: os.stat_result) -> str | None:
        """The first archive path of a hardlinked inode, or None (and remember this one)."""
        if st.st_nlink <= 1:
            return None
        key = (st.st_dev, st.st_ino)
        first = self.seen.get(key)
        if first is None:
            self.seen[key] = arc
        return first

    def _file(self, dfd: int, name: str, arc: str) -> None:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
        try:
            st = os.fstat(fd)  # describe exactly the inode whose bytes we copy
            if not stat.S_ISREG(st.st_mode):
                raise _Changed(f"cannot archive {arc!r}: it changed while the layer was written")
            caps = _capability(wh.get_xattr(fd, wh.CAPABILITY_XATTR))
            link = self._seen(arc, st)
            if link is not None:
                self.header(arc, LNK, st.st_mode, st.st_uid, st.st_gid, 0, _mtime(st), link, xattrs=caps)
                return
            size = st.st_size
            self.header(arc, REG, st.st_mode, st.st_uid, st.st_gid, size, _mtime(st), xattrs=caps)
            if size <= _CHUNK:
                if size:
                    self.write(_read_exact(fd, size, arc))
            else:
                self.flush()  # big files bypass the buffer
                remaining = size
                while remaining:
                    chunk = _read_exact(fd, min(_CHUNK, remaining), arc)
                    self.out.write(chunk)
                    remaining -= len(chunk)
            self.write(bytes(-size % 512))
        finally:
            os.close(fd)


def _read_exact(fd: int, size: int, arc: str) -> bytes:
    data = os.read(fd, size)
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise StoreError(f"cannot archive {arc!r}: the file shrank while the layer was written")
        data += more
    return data


def _mtime(st: os.stat_result) -> int:
    return st.st_mtime_ns // 1_000_000_000
