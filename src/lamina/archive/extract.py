"""Apply a layer tar to a directory, confined to it (never tarfile.extractall).

Policy (containerd's, see reliability catalogue 4.A): entry names are cleaned
lexically, their parent directories are resolved component by component inside the
root (symlinks followed, absolute targets re-rooted), and the entry itself is
written with no-follow operations relative to the parent's directory fd.  Links
that point outside are therefore *clamped* inside the root rather than rejected;
entries that would replace the root itself and whiteouts of `.`/`..` are
InvalidArchive.  Owners, special bits, devices, fifos, hardlinks, xattrs and times
are kept, as an OS image needs them (unlike tarfile's `data` filter).
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import uuid
from typing import BinaryIO

from lamina.archive import whiteout as wh
from lamina.archive.compression import open_stream
from lamina.archive.entrymeta import check_ids, set_fd_metadata, set_path_metadata, times
from lamina.archive.inroot import InRoot, MissingPath, clean, join
from lamina.archive.rmtree import remove_tree
from lamina.archive.tarformat import (BLOCK, GO_INVALID_HEADER, GO_UNEXPECTED_EOF, MAX_PATH, MalformedTar,
                                      StrictTarInfo)
from lamina import writeback
from lamina.archive.tarstream import open_tar
from lamina.errors import InvalidArchive, LaminaError, StoreError

_CHUNK = 1 << 20
_WRITEBACK_MIN = 64 << 10  # smaller files: a syscall each is not worth it
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_STORE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
_NODE_TYPES = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}


def open_layer_stream(f: BinaryIO) -> BinaryIO:
    """The uncompressed tar stream of a layer blob, by magic: gzip, zstd, bzip2, xz or plain."""
    return open_stream(f)


def apply_layer(f: BinaryIO, root: str, *, overlay_whiteouts: bool, plain: bool = False,
                owners: bool | tuple[int, int] = True, where: str | None = None,
                no_overwrite_dir_non_dir: bool = False, graft=None) -> int:
    """Write the uncompressed tar stream `f` into the directory `root`.

    overlay_whiteouts=True: `root` is an overlay lower dir; whiteouts become 0:0 char
    devices and opaque markers the trusted.overlay.opaque xattr.  False: `root` is a
    flat rootfs; whiteouts delete.  `plain` is docker cp's Untar instead of a layer:
    whiteout and aufs names are ordinary files, and a symlink whose target climbs
    out of `root` is refused (`where` names the root in that error).  `owners=False`
    (moby's NoLchown: the CLI's side of docker cp) leaves files owned by the caller;
    a (uid, gid) owns everything by them (moby's ChownOpts: `docker cp -a`).
    `no_overwrite_dir_non_dir`: an entry never replaces a directory with a
    non-directory or the reverse (an error instead, as moby's option).
    `graft(tree)`: adds mounts to the extraction's InRoot first (docker cp: the
    container's volumes and binds below `root`; inroot.py `check_write`).
    The stream is read to its end (so a hashing reader sees every byte).  Returns
    the number of regular-file bytes written."""
    try:
        applier = _Applier(root, overlay_whiteouts, plain=plain, owners=owners, where=where)
        applier.keep_kinds = no_overwrite_dir_non_dir
    except OSError as e:
        raise StoreError(f"cannot apply layer to {root}: {e.strerror}") from None
    try:
        if graft is not None:
            graft(applier.tree)
        try:
            with open_tar(f, StrictTarInfo) as tf:
                while (ti := tf.next()) is not None:
                    tf.members = []  # stream mode would otherwise keep every header in memory
                    applier.entry(ti, tf.fileobj)
                _check_end(tf.fileobj)
        except tarfile.TarError as e:
            # tarfile's own reads (a GNU long name, a member's data) cut short
            go = GO_UNEXPECTED_EOF if "unexpected end of data" in str(e) else GO_INVALID_HEADER
            raise MalformedTar(f"not a valid tar stream (truncated or not a tar): {e}", go) from None
        while f.read(_CHUNK):  # drain: trailing padding still belongs to the digest
            pass
        applier.finish()
    finally:
        applier.close()
    return applier.written


class _Applier:
    def __init__(self, root: str, overlay: bool, *, plain: bool = False, owners: bool | tuple[int, int] = True,
                 where: str | None = None) -> None:
        self.tree = InRoot(root)
        self.overlay = overlay
        self.written = 0
        self.created: set[str] = set()  # real paths written by this layer (flat-mode whiteouts)
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.aufs_links: str | None = None  # hidden dir holding .wh..wh.plnk hardlink sources
        self.plain, self.owners, self.where = plain, owners, where or root  # see apply_layer
        self.keep_kinds = False

    # ------------------------------------------------------------------ dispatch
    def entry(self, ti: StrictTarInfo, data) -> None:
        name = ti.name
        try:
            self._entry(ti, data)
            if not self.overlay:  # parents we had to create belong to this layer too
                self.created.update(self.tree.made_dirs)
            self.tree.made_dirs.clear()
        except LaminaError:
            raise
        except OSError as e:
            cls = StoreError if e.errno in _STORE_ERRNOS else InvalidArchive
            if e.errno == 22 and max(ti.uid, ti.gid) > 65536:  # EINVAL of chown: an id the userns does not map
                from lamina import rootless

                if rootless():  # podman's words for it
                    raise cls(f"cannot apply tar entry {name!r}: potentially insufficient UIDs or GIDs available "
                              f"in user namespace (requested {ti.uid}:{ti.gid}): check /etc/subuid and "
                              "/etc/subgid") from None
            raise cls(f"cannot apply tar entry {name!r}: {e.strerror or e}") from None
        except (ValueError, OverflowError) as e:  # NUL in an xattr name, absurd device numbers
            raise InvalidArchive(f"cannot apply tar entry {name!r}: {e}") from None
        finally:
            self.tree.release()

    def _entry(self, ti: StrictTarInfo, data) -> None:
        name = ti.name
        if _too_long(name) or _too_long(ti.linkname):
            raise InvalidArchive(f"tar entry {name[:64]!r}...: path longer than {MAX_PATH} bytes")
        parts = clean(name)
        if parts and parts[0].startswith(wh.META_PREFIX) and parts != [wh.OPAQUE] and not self.plain:
            if parts[0] == wh.AUFS_LINK_DIR and len(parts) == 2 and ti.isreg():
                self._aufs_link_source(ti, parts[1], data)
            return  # other aufs metadata is skipped, as moby does
        if not parts:
            if ti.isdir():
                return  # "./": the root itself is not touched (moby and containerd skip it)
            raise InvalidArchive(f"invalid tar entry {name!r}: it would replace the root directory")
        base = parts[-1]
        if base.startswith(wh.PREFIX) and not self.plain:
            self._whiteout(ti, parts[:-1], base)
            return
        preal = self.tree.resolve(parts[:-1], create=True, entry=name)
        real = join(preal, base)
        if self.tree.guarded:
            self.tree.check_write(real, os.path.join(self.where, real), ti.isdir())
        kind = ti.type
        if kind == tarfile.DIRTYPE:
            self._directory(ti, parts, preal, base, real)
        elif ti.isreg():
            self._file(ti, preal, base, data)
        elif kind == tarfile.SYMTYPE:
            self._symlink(ti, preal, base, real)
        elif kind == tarfile.LNKTYPE:
            self._hardlink(ti, preal, base, real)
        elif kind in _NODE_TYPES:
            self._node(ti, preal, base, real)
        else:
            raise InvalidArchive(f"tar entry {name!r}: unsupported type {kind!r}")
        if not self.overlay:
            self.created.add(real)

    # ------------------------------------------------------------------ replacing
    def _make_room(self, pfd: int, base: str, real: str, *, keep_dir: bool) -> bool:
        """Remove what is at `base` (never following it).  Returns True when an existing
        directory is kept because a directory entry merges into it."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if self.keep_kinds and stat.S_ISDIR(st.st_mode) != keep_dir:
            what = ("directory", "non-directory") if keep_dir else ("non-directory", "directory")
            where = os.path.join(self.where, real)
            raise InvalidArchive(f'cannot overwrite {what[1]} "{where}" with {what[0]} "{self.where}"')
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            remove_tree(pfd, base)
            self._forget_under(real)
        else:
            os.unlink(base, dir_fd=pfd)
            if stat.S_ISLNK(st.st_mode):
                self.tree.forget()  # paths resolved through this link are stale
        return False

    def _forget_under(self, real: str) -> None:
        self.tree.forget()
        prefix = real + "/"
        for path in [p for p in self.dir_times if p == real or p.startswith(prefix)]:
            del self.dir_times[path]

    def _create(self, make, pfd: int, base: str, real: str):
        """Run make() (mkdir/mknod/symlink/open with O_EXCL); on EEXIST replace and retry."""
        try:
            return make()
        except FileExistsError:
            self._make_room(pfd, base, real, keep_dir=False)
            return make()

    # ------------------------------------------------------------------ entry kinds
    def _directory(self, ti, parts, preal: str, base: str, real: str) -> None:
        pfd = self.tree.dir_fd(preal)
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not self._make_room(pfd, base, real, keep_dir=True):
                os.mkdir(base, 0o700, dir_fd=pfd)
        fd = self.tree.open_dir(pfd, base, real)
        self.tree.note(parts, real)
        set_fd_metadata(ti, fd, self._ids(ti))
        self.dir_times[real] = times(ti)  # set last: creating children bumps the mtime

    def _file(self, ti, preal: str, base: str, data) -> None:
        pfd = self.tree.dir_fd(preal)
        real = join(preal, base)
        fd = self._create(lambda: os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd), pfd, base, real)
        try:
            if ti.sparse is None:
                _copy(data, fd, ti.size, ti.name)
            else:
                # GNU sparse (map checked by tarformat): data regions at their offsets, holes
                # left as holes, then the real size.
                for offset, length in ti.sparse:
                    os.lseek(fd, offset, os.SEEK_SET)
                    _copy(data, fd, length, ti.name)
                os.ftruncate(fd, ti.size)
            set_fd_metadata(ti, fd, self._ids(ti))
            os.utime(fd, ns=times(ti))
        finally:
            os.close(fd)
        self.written += ti.size

    def _symlink(self, ti, preal: str, base: str, real: str) -> None:
        if self.plain and _climbs_out(self.where, clean(ti.name)[:-1], ti.linkname):
            raise InvalidArchive(f'invalid symlink "{os.path.join(self.where, *clean(ti.name))}" -> "{ti.linkname}"')
        pfd = self.tree.dir_fd(preal)
        self._create(lambda: os.symlink(ti.linkname, base, dir_fd=pfd), pfd, base, real)
        set_path_metadata(ti, pfd, base, self._ids(ti), chmod=False)

    def _node(self, ti, preal: str, base: str, real: str) -> None:
        pfd = self.tree.dir_fd(preal)
        mode = _NODE_TYPES[ti.type] | 0o600
        dev = os.makedev(ti.devmajor, ti.devminor) if ti.type != tarfile.FIFOTYPE else 0
        if dev:
            from lamina import rootless

            if rootless():  # no device can be made in a user namespace: skipped, as moby's archive does there
                return
        self._create(lambda: os.mknod(base, mode, dev, dir_fd=pfd), pfd, base, real)
        set_path_metadata(ti, pfd, base, self._ids(ti), chmod=True)

    def _hardlink(self, ti, preal: str, base: str, real: str) -> None:
        target = clean(ti.linkname)
        if not target:
            raise InvalidArchive(f"hardlink {ti.name!r} -> {ti.linkname!r}: target is the root directory")
        if target[0] == wh.AUFS_LINK_DIR and self.aufs_links and len(target) == 2:
            treal = self.aufs_links
        else:
            try:
                treal = self.tree.resolve(target[:-1], create=False, entry=ti.name)
            except MissingPath:
                raise InvalidArchive(f"hardlink {ti.name!r} -> {ti.linkname!r}: target not found in the layer") from None
        tfd = os.dup(self.tree.dir_fd(treal))
        try:
            try:
                tst = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise InvalidArchive(f"hardlink {ti.name!r} -> {ti.linkname!r}: target not found in the layer") from None
            if stat.S_ISDIR(tst.st_mode):
                raise InvalidArchive(f"hardlink {ti.name!r} -> {ti.linkname!r}: target is a directory")
            pfd = self.tree.dir_fd(preal)
            try:
                cur = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                if (cur.st_dev, cur.st_ino) == (tst.st_dev, tst.st_ino):
                    return  # already this very inode (repeated entry or link to itself)
            except FileNotFoundError:
                pass
            link = lambda: os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            self._create(link, pfd, base, real)
        finally:
            os.close(tfd)
        # moby applies the header's metadata to the (shared) inode too, except through a symlink
        set_path_metadata(ti, pfd, base, self._ids(ti), chmod=not stat.S_ISLNK(tst.st_mode))

    def _aufs_link_source(self, ti, name: str, data) -> None:
        """Old aufs layers keep hardlink sources in /.wh..wh.plnk; stage them in a hidden
        dir inside the root (removed at the end) so the links can be made."""
        if self.aufs_links is None:
            self.aufs_links = f".lamina-plnk-{uuid.uuid4().hex}"
            os.mkdir(self.aufs_links, 0o700, dir_fd=self.tree.root_fd)
        self._file(ti, self.aufs_links, name, data)

    # ------------------------------------------------------------------ whiteouts
    def _whiteout(self, ti, parent: list[str], base: str) -> None:
        name = ti.name
        if base == wh.OPAQUE:
            preal = self.tree.resolve(parent, create=True, entry=name)
            if self.overlay:
                fd = self.tree.dir_fd(preal)
                os.setxattr(fd, wh.OPAQUE_XATTR, b"y")
            else:
                self._prune(preal)
            return
        if base.startswith(wh.META_PREFIX):
            return  # other aufs metadata
        victim = base[len(wh.PREFIX) :]
        if victim in ("", ".", ".."):
            raise InvalidArchive(f"invalid whiteout entry {name!r}")
        try:
            preal = self.tree.resolve(parent, create=self.overlay, entry=name)
        except MissingPath:
            return  # nothing below to delete
        real = join(preal, victim)
        pfd = self.tree.dir_fd(preal)
        if self.overlay:
            self._create(lambda: os.mknod(victim, stat.S_IFCHR, 0, dir_fd=pfd), pfd, victim, real)
            check_ids(ti)
            os.chown(victim, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False)
        elif real not in self.created:  # whiteouts hide lower layers only, never this one
            self._make_room(pfd, victim, real, keep_dir=False)

    def _prune(self, real: str) -> None:
        """Flat-mode opaque dir: delete every child not written by this layer, descending
        into the directories this layer kept (as moby's unpackedPaths walk)."""
        pending = [real]
        removed = False
        while pending:
            cur = pending.pop()
            fd = os.dup(self.tree.dir_fd(cur))
            try:
                with os.scandir(fd) as it:
                    children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
                for child, is_dir in children:
                    path = join(cur, child)
                    if path in self.created:
                        if is_dir:
                            pending.append(path)
                    elif is_dir:
                        remove_tree(fd, child)
                        removed = True
                    else:
                        os.unlink(child, dir_fd=fd)
                        removed = True
            finally:
                os.close(fd)
        if removed:
            self.tree.forget()

    # ------------------------------------------------------------------ metadata (entrymeta.py)
    def _ids(self, ti) -> tuple[int, int] | None:
        """The owner to give the entry: None leaves it the caller's (owners=False)."""
        if not self.owners:
            return None
        if isinstance(self.owners, tuple):
            return self.owners
        check_ids(ti)
        return ti.uid, ti.gid

    # ------------------------------------------------------------------ end
    def finish(self) -> None:
        if self.aufs_links is not None:
            remove_tree(self.tree.root_fd, self.aufs_links)
            self.tree.forget()
        for real, ns in self.dir_times.items():
            try:
                fd = self.tree.dir_fd(real)
            except OSError:
                continue  # replaced later in the stream by a non-directory
            os.utime(fd, ns=ns)

    def close(self) -> None:
        self.tree.close()


def _copy(data, fd: int, size: int, name: str) -> None:
    remaining = size
    while remaining:
        chunk = data.read_some(min(_CHUNK, remaining))  # a ForwardReader: no copy when a chunk fits
        if not chunk:
            raise MalformedTar(f"tar stream is truncated inside the data of {name!r}", GO_UNEXPECTED_EOF)
        remaining -= len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
    if size >= _WRITEBACK_MIN:
        writeback.start(fd)  # the layer's final syncfs finds it written (writeback.py)


def _check_end(stream) -> None:
    """tarfile stops at the first zero block; like Go, require the second one to be
    zero too (or the stream to end there), so a damaged header is not taken for the end."""
    offset = stream.tell()
    block = stream.read(BLOCK)
    if block and block != bytes(BLOCK):
        raise InvalidArchive(f"corrupt tar stream: data after the end-of-archive block at offset {offset}")


def _too_long(path: str) -> bool:
    return len(path) > MAX_PATH and len(path.encode("utf-8", "surrogateescape")) > MAX_PATH


def _climbs_out(where: str, parent: list[str], target: str) -> bool:
    """moby Untar's breakout rule, string prefix and all: the link's target joined
    lexically to the link's directory (an absolute one too) is not under `where`."""
    joined = os.path.normpath("/" + "/".join([where, *parent, target]).lstrip("/"))
    return not joined.startswith(os.path.normpath(where))
