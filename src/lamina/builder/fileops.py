"""Writing COPY/ADD sources into a rootfs, resolved inside it.

Every destination directory is resolved on directory fds from the rootfs, the
one in-root resolver of archive/inroot.py: symlinks in the image are followed
*inside* it (an absolute target restarts at the rootfs), never into the host.  A
file destination that is a symlink is written through, inside the root, as BuildKit
does (a dangling one gets its target, and the directories to it, made).  Within one
source tree, hard links stay hard links.
Sources are read only through the BuildContext (or a stage's rootfs for
`--from`): through fds of its no-follow directory walk, so a link in the context
is copied as a link, and a file is hashed from the very bytes that are copied
(the cache key of what is written can never be another file's).
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import time
from dataclasses import dataclass
from typing import Callable

from lamina.archive.inroot import InRoot, find_dir, host_path, make_dirs, resolve_leaf
from lamina.errors import BuildError
from lamina.fdio import write_all

_CHUNK = 1 << 20
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_EXCL = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Ownership:
    """What COPY/ADD sets on what it writes: owner (default 0:0) and --chmod.  With
    `keep` (COPY --from without --chown) each entry keeps its source's owner; the
    directories made for it are then 0:0."""

    uid: int = 0
    gid: int = 0
    mode: Callable[[int, bool], int] | None = None  # (current bits, is_dir) -> new bits
    keep: bool = False

    def ids(self, st: os.stat_result) -> tuple[int, int]:
        return (st.st_uid, st.st_gid) if self.keep else (self.uid, self.gid)


def ownership(rootfs: str, chown: str | None, mode_fn, where: str, *, keep: bool = False) -> Ownership:
    """What `--chown` names, resolved in the image; `keep`: a `--from` source keeps its
    owners unless --chown says otherwise (BuildKit)."""
    if not chown:
        return Ownership(0, 0, mode_fn, keep=keep)
    from lamina.errors import LaminaError
    from lamina.runtime.rootfs import lookup_user

    user, _, group = chown.partition(":")
    try:
        ids = lookup_user(rootfs, chown if group else user)
    except LaminaError as e:
        raise BuildError(f"{where}: unable to convert uid/gid chown string to host mapping: {e}") from None
    # BuildKit: a user name without a group gets the user's primary group (its
    # /etc/passwd entry); a numeric uid without one, the gid equal to the uid.
    gid = ids.gid if group or not user.isdigit() else ids.uid
    return Ownership(ids.uid, gid, mode_fn)


class Writer:
    """Copies entries of one source tree into the rootfs."""

    def __init__(self, rootfs: str, own: Ownership, hasher=None) -> None:
        self.rootfs = rootfs
        self.own = own
        self.hasher = hasher  # cache.ContentHasher fed while copying (one read per file)
        self.tee = None       # teetar.TarTee: the layer tar, written as entries are made
        self.spread = None    # snapshot.placement.Spreader: where new dirs go (writing to an upper dir)
        self._dirs: list[tuple[str, os.stat_result]] = []  # copied dirs, to restore mtimes
        self._links: dict[tuple[int, int], tuple[str, str]] = {}  # source inode -> (first copy, digest)

    # -------------------------------------------------------------- destinations
    def resolve_dir(self, path: str, *, create: bool = True) -> str:
        """Host path of in-container directory `path`, creating what is missing
        (owned like the copied files, 0755, as BuildKit's MkdirAll does)."""
        tree = InRoot(self.rootfs)
        try:
            real = find_dir(tree, path)
            if real is not None:
                return host_path(self.rootfs, real)
            if not create:
                raise BuildError(f"{path}: no such directory")
            # mkdir -p on fds from the root: also behind a link to a missing directory
            # (docker creates it), and never out of the root.
            real, made = make_dirs(tree, path)
            self._own_made(tree, made)
        except OSError:
            raise BuildError(f"cannot copy to non-directory: {path}") from None
        finally:
            tree.close()
        return host_path(self.rootfs, real)

    def _own_made(self, tree: InRoot, made: list[str]) -> None:
        for d in made:
            fd = tree.dir_fd(d)
            os.fchown(fd, self.own.uid, self.own.gid)
            if self.tee is not None:
                host = os.path.join(self.rootfs, d)
                self.tee.directory(host, 0o755, self.own.uid, self.own.gid, os.fstat(fd).st_mtime_ns)

    def dest_is_dir(self, path: str) -> bool:
        return self._existing_dir(path) is not None

    def _existing_dir(self, path: str) -> str | None:
        """Host path of the directory `path` already in the rootfs, else None."""
        tree = InRoot(self.rootfs)
        try:
            real = find_dir(tree, path)
        except OSError:
            return None
        finally:
            tree.close()
        return None if real is None else host_path(self.rootfs, real)

    def target(self, path: str) -> str:
        """Host path for a file destination, resolved in the root: an existing symlink
        there is written through (BuildKit), a dangling one gets its target made."""
        tree = InRoot(self.rootfs)
        try:
            before = len(tree.made_dirs)
            parent, name = resolve_leaf(tree, path)
            self._own_made(tree, tree.made_dirs[before:])
        except OSError:
            raise BuildError(f"cannot copy to non-directory: {path}") from None
        finally:
            tree.close()
        return os.path.join(host_path(self.rootfs, parent), name)

    # -------------------------------------------------------------- copying
    def copy_tree(self, ctx, src_rel: str, dest: str, *, walk) -> None:
        """Copy `src_rel` to the in-container path `dest`: a file becomes `dest`, a
        directory's *content* goes into `dest`.  `walk(rel)` yields (rel, lstat)
        parents-first, as BuildContext.walk does.

        Every entry's parent is resolved inside the rootfs (an image's `/lib -> /usr/lib`
        is followed to the rootfs's /usr/lib, never the host's); resolved directories
        are remembered, so a deep tree costs one lookup per directory."""
        dirs: dict[str, str] = {}
        self._links = {}  # hard links are kept within one source tree, as BuildKit does
        base = src_rel
        for rel, st in walk(src_rel):
            sub = rel[len(base):].lstrip("/") if base else rel
            cpath = posixpath.join(dest, sub) if sub else dest
            if not sub and stat.S_ISDIR(st.st_mode):
                dirs[cpath.rstrip("/") or "/"] = self.resolve_dir(cpath)  # the content goes in here
                if self.hasher is not None:
                    self.hasher.add("", st)
                continue
            cpath = cpath.rstrip("/")
            if not sub:  # a file source itself: through a link at its destination
                self._copy_entry(ctx, rel, self.target(cpath), st, sub)
                continue
            parent_c = posixpath.dirname(cpath) or "/"
            phost = dirs.get(parent_c)
            if phost is None:
                phost = dirs[parent_c] = self.resolve_dir(parent_c)
            dst = os.path.join(phost, posixpath.basename(cpath))
            if stat.S_ISDIR(st.st_mode) and os.path.islink(dst):
                real = self._existing_dir(cpath)  # copy into what the link names, in root
                if real is not None:
                    dst = real
            self._copy_entry(ctx, rel, dst, st, sub)
            if stat.S_ISDIR(st.st_mode):
                dirs[cpath] = dst

    def _copy_entry(self, ctx, src: str, dst: str, st: os.stat_result, name: str) -> None:
        """Copy the entry at real path `src` of `ctx`; `name` is its name in the hash."""
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            if os.path.lexists(dst) and not (os.path.isdir(dst) and not os.path.islink(dst)):
                _remove(dst)
            if not os.path.lexists(dst):
                if self.spread is not None:
                    self.spread.mkdir(dst, 0o700)
                else:
                    os.mkdir(dst, 0o700)
            bits = self._finish(dst, st, is_dir=True)
            self._dirs.append((dst, st))
            if self.tee is not None:
                self.tee.directory(dst, bits, *self.own.ids(st), st.st_mtime_ns)
            if self.hasher is not None:
                self.hasher.add(name, st)
            return
        if stat.S_ISREG(mode):
            self._copy_regular(ctx, src, dst, st, name)
            return
        _clear(dst)
        if stat.S_ISLNK(mode):
            link = ctx.readlink(src)
            os.symlink(link, dst)
            os.lchown(dst, *self.own.ids(st))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            if self.tee is not None:
                self.tee.symlink(dst, link, *self.own.ids(st), st.st_mtime_ns)
            if self.hasher is not None:
                self.hasher.add(name, st, link=link)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
            bits = self._finish(dst, st, is_dir=False)
            if self.tee is not None:
                self.tee.node(dst, st, bits, *self.own.ids(st))
            if self.hasher is not None:
                self.hasher.add(name, st)
        # sockets are skipped, as Docker does

    def _copy_regular(self, ctx, src: str, dst: str, st: os.stat_result, name: str) -> None:
        inode = (st.st_dev, st.st_ino)
        first = self._links.get(inode) if st.st_nlink > 1 else None
        if first is not None:  # another name of a file already copied: a hard link again
            _clear(dst)
            os.link(first[0], dst, follow_symlinks=False)
            if self.tee is not None:
                self.tee.hardlink(dst, first[0], st)
            if self.hasher is not None:
                self.hasher.add(name, st, data_digest=first[1])
            return
        fin, st = ctx.open_regular(src)  # mode, size and data all from the one file that is copied
        try:
            fout = self._create(dst)
            try:
                digest = self._copy_file(fin, fout, src, dst, st)
                # owner, mode and times through the fd, no lookup of the path again
                # (chmod after chown, which clears setuid bits; times after the data)
                os.chown(fout, *self.own.ids(st))
                os.chmod(fout, self._bits(st.st_mode, False))
                os.utime(fout, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fout)
        finally:
            os.close(fin)
        if st.st_nlink > 1:
            self._links[inode] = (dst, digest)
        if self.hasher is not None:
            self.hasher.add(name, st, data_digest=digest)

    def _create(self, dst: str) -> int:
        """A new file at `dst`, replacing whatever is there (never through a link)."""
        t = time.perf_counter()
        try:
            fd = os.open(dst, _OPEN_EXCL, 0o600)
        except FileExistsError:
            _clear(dst)
            fd = os.open(dst, _OPEN_EXCL, 0o600)
        if self.spread is not None:
            self.spread.created(time.perf_counter() - t)
        return fd

    def _bits(self, mode: int, is_dir: bool) -> int:
        bits = stat.S_IMODE(mode)
        return self.own.mode(bits, is_dir) if self.own.mode is not None else bits

    def _copy_file(self, fin: int, fout: int, src: str, dst: str, st: os.stat_result) -> str:
        """Copy the open file `fin` to `fout` (at `dst`), hashing (and teeing) the same bytes."""
        import hashlib

        if self.hasher is None and self.tee is None:
            _kernel_copy(fin, fout)
            return ""
        h = hashlib.sha256() if self.hasher is not None else None
        if self.tee is None:
            while chunk := os.read(fin, _CHUNK):
                h.update(chunk)
                write_all(fout, chunk)
            return h.hexdigest()
        # The tar header needs the size first: copy exactly what fstat says.
        size = st.st_size
        if size < self.tee.FLUSH:  # most files: one read, one write, one append to the tar
            chunk = _read_exactly(fin, size, src)
            if h is not None:
                h.update(chunk)
            write_all(fout, chunk)
            self.tee.small_file(dst, self._bits(st.st_mode, False), *self.own.ids(st), st.st_mtime_ns, chunk)
            return h.hexdigest() if h is not None else ""
        self.tee.file_header(dst, self._bits(st.st_mode, False), *self.own.ids(st), size, st.st_mtime_ns)
        left = size
        while left:
            chunk = os.read(fin, min(_CHUNK, left))
            if not chunk:
                raise BuildError(f"{src}: the file shrank while it was copied")
            left -= len(chunk)
            if h is not None:
                h.update(chunk)
            write_all(fout, chunk)
            self.tee.data(chunk)
        self.tee.pad(size)
        return h.hexdigest() if h is not None else ""

    def _finish(self, dst: str, st: os.stat_result, *, is_dir: bool) -> int:
        os.lchown(dst, *self.own.ids(st))
        bits = self._bits(st.st_mode, is_dir)
        os.chmod(dst, bits)  # after chown: chown clears setuid bits
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return bits

    def restore_dir_times(self) -> None:
        """Copied directories keep their source mtime (creating children changed it)."""
        for dst, st in reversed(self._dirs):
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        self._dirs.clear()

    def write_bytes(self, dst: str, data: bytes, mode: int, mtime: float | None = None) -> None:
        _clear(dst)
        fd = os.open(dst, _OPEN_NEW, 0o600)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.lchown(dst, self.own.uid, self.own.gid)
        bits = self.own.mode(mode, False) if self.own.mode is not None else mode
        os.chmod(dst, bits)
        if mtime is not None:
            os.utime(dst, (mtime, mtime))
        if self.tee is not None:
            self.tee.file_header(dst, bits, self.own.uid, self.own.gid, len(data), os.lstat(dst).st_mtime_ns)
            self.tee.data(data)
            self.tee.pad(len(data))


def _read_exactly(fd: int, size: int, src: str) -> bytes:
    data = os.read(fd, size) if size else b""
    while len(data) < size:  # a short read (not from a local disk): the rest, or the file shrank
        more = os.read(fd, size - len(data))
        if not more:
            raise BuildError(f"{src}: the file shrank while it was copied")
        data += more
    return data


def _kernel_copy(fin: int, fout: int) -> None:
    try:
        while os.copy_file_range(fin, fout, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    while chunk := os.read(fin, _CHUNK):
        write_all(fout, chunk)


def _clear(path: str) -> None:
    """Make room for a non-directory at `path` (never following a link there)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _remove(path: str) -> None:
    _clear(path)
