"""What `docker diff` prints: the changes between a container's filesystem and its image.

Docker computes them with go-archive's ChangesDirs over two mounted trees (the
container's and the image+init layer's).  The rules, checked against Docker 20.10
(tests/test_archive_changes.py holds the recorded cases):

* only in the new tree -> A, and every descendant of an added directory is A too;
* only in the old tree -> D for that path only (descendants are not listed);
* in both -> C when the lstat differs in mode (type bits included), uid, gid or
  rdev, or, for non-directories, in size or mtime seconds (equal seconds with one
  side at 0 ns count as equal), or when security.capability differs.  Directory
  size/mtime are ignored (moby#9874).  The S_IFDIR test is moby's bit test, so block
  devices and sockets (whose type bits contain S_IFDIR) ignore size/mtime as well;
* a directory that is not changed itself but contains changes is C, listed just
  before its contents; `/` is never listed;
* order: pre-order walk; within a directory first the present entries (sorted by
  name), then the deleted ones (sorted by name).  Docker lists the same groups in
  Go map order (random), deletions always last.

`changes_from_upper` gives the same answer from an overlay upper dir in time
proportional to the upper dir: the old tree is only looked at where the upper dir
has entries (the lower dirs are merged on the fly with overlayfs' rules).
"""

from __future__ import annotations

import os
import stat

from lamina.archive import whiteout as wh
from lamina.errors import StoreError
from lamina.record import record

TYPE_CHECKING = False  # typing only for annotations: `diff` starts without it
if TYPE_CHECKING:
    from typing import Sequence

KINDS = ("A", "C", "D")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@record
class Change:
    kind: str  # 'A' added, 'C' changed, 'D' deleted (docker diff's letters)
    path: str  # absolute in-container path, e.g. "/etc/hosts"

    def __post_init__(self) -> None:
        if self.kind not in KINDS or not self.path.startswith("/") or self.path == "/":
            raise ValueError(f"invalid change {self.kind!r} {self.path!r}")

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def changes_from_upper(upper: str, lowers: Sequence[str]) -> list[Change]:
    """Changes of an overlay mount from its upper dir; `lowers` top-most first.

    Requires an upper dir written with index=off, redirect_dir=off, metacopy=off
    (otherwise it is not a faithful change set; use changes_between)."""
    differ = _Differ(overlay=True)
    upper = os.fspath(upper)
    return differ.run(upper, [os.fspath(p) for p in lowers], not wh.is_opaque(upper))


def changes_between(new_root: str, old_root: str) -> list[Change]:
    """Changes from the tree `old_root` to the tree `new_root` (copy fallback)."""
    differ = _Differ(overlay=False)
    return differ.run(os.fspath(new_root), [os.fspath(old_root)], False)


def _stat_differs(old: os.stat_result, new: os.stat_result) -> bool:
    """go-archive statDifferent."""
    if (
        old.st_mode != new.st_mode
        or old.st_uid != new.st_uid
        or old.st_gid != new.st_gid
        or old.st_rdev != new.st_rdev
    ):
        return True
    if old.st_mode & stat.S_IFDIR == stat.S_IFDIR:
        return False
    if old.st_size != new.st_size:
        return True
    old_s, old_ns = divmod(old.st_mtime_ns, 1_000_000_000)
    new_s, new_ns = divmod(new.st_mtime_ns, 1_000_000_000)
    return old_s != new_s or not (old_ns == new_ns or old_ns == 0 or new_ns == 0)


def _listing(target: int | str) -> list[tuple[str, os.stat_result]]:
    with os.scandir(target) as it:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    entries.sort(key=lambda item: item[0])
    return entries


def _open_dir(parent_fd: int, name: str) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


class _Differ:
    """The new tree (a container's upper dir or rootfs, writable by the container)
    is walked through directory fds opened with O_NOFOLLOW, so swapping a directory
    for a symlink cannot make us list host directories.  The old tree (image
    layers) is read by path."""

    def __init__(self, *, overlay: bool) -> None:
        self.overlay = overlay  # interpret whiteouts / opaque dirs (upper and lowers)
        self.out: list[Change | None] = []

    def run(self, new_dir: str, old_dirs: list[str], new_sees_old: bool) -> list[Change]:
        fd = os.open(new_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.walk(fd, "", old_dirs, new_sees_old)
        except RecursionError:
            raise StoreError(f"cannot compute changes of {new_dir}: directories nested too deeply") from None
        except OSError as e:
            raise StoreError(f"cannot compute changes of {new_dir}: {e}") from None
        finally:
            os.close(fd)
        return [c for c in self.out if c is not None]

    def walk(self, new_fd: int, rel: str, old_dirs: list[str], new_sees_old: bool) -> None:
        """Compare the new directory `new_fd` (shown at `rel`) with the merged `old_dirs`.

        new_sees_old: the new tree shows the old entries this directory does not
        mention (a plain overlay dir); False for opaque dirs and plain trees, where
        the new directory's listing is complete and missing names are deletions."""
        out = self.out
        present: set[str] = set()
        deleted: list[str] = []
        for name, st in _listing(new_fd):
            child = f"{rel}/{name}"
            if self.overlay and wh.is_whiteout(st):
                if new_sees_old and self._lookup(old_dirs, name)[0] is not None:
                    deleted.append(name)
                continue
            present.add(name)
            old_st, old_path, old_children = self._lookup(old_dirs, name)
            is_dir = stat.S_ISDIR(st.st_mode)
            child_fd = _open_dir(new_fd, name) if is_dir else -1
            try:
                if old_st is None:
                    self._added(child, child_fd)
                    continue
                new_cap = wh.get_xattr(child_fd if is_dir else wh.fd_path(new_fd, name), wh.CAPABILITY_XATTR)
                changed = _stat_differs(old_st, st) or wh.get_xattr(old_path, wh.CAPABILITY_XATTR) != new_cap
                if not is_dir:
                    if changed:
                        out.append(Change("C", child))
                    continue
                mark = len(out)
                out.append(Change("C", child) if changed else None)
                if stat.S_ISDIR(old_st.st_mode):
                    sees = new_sees_old and not (self.overlay and wh.is_opaque(child_fd))
                    self.walk(child_fd, child, old_children, sees)
                else:  # a file became a directory: nothing old below it
                    self.walk(child_fd, child, [], False)
                if not changed:
                    if len(out) > mark + 1:
                        out[mark] = Change("C", child)  # unchanged dir with changes inside
                    else:
                        out.pop()
            finally:
                if child_fd >= 0:
                    os.close(child_fd)
        if not new_sees_old:
            deleted = [n for n in self._old_names(old_dirs) if n not in present]
        for name in sorted(deleted):
            out.append(Change("D", f"{rel}/{name}"))

    def _added(self, rel: str, fd: int) -> None:
        """`rel` and, when it is a directory (`fd` >= 0), everything below it."""
        self.out.append(Change("A", rel))
        if fd < 0:
            return
        for child, is_dir in self._added_listing(fd):
            child_fd = _open_dir(fd, child) if is_dir else -1
            try:
                self._added(f"{rel}/{child}", child_fd)
            finally:
                if child_fd >= 0:
                    os.close(child_fd)

    def _added_listing(self, fd: int) -> list[tuple[str, bool]]:
        """(name, is a directory) below an added directory, sorted, whiteouts left out.
        Only the entry's type counts there, which the directory itself gives (d_type):
        a stat is taken only for a device, FIFO or socket, which may be a whiteout."""
        entries = []
        with os.scandir(fd) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    entries.append((e.name, True))
                elif e.is_file(follow_symlinks=False) or e.is_symlink() or not self.overlay \
                        or not wh.is_whiteout(e.stat(follow_symlinks=False)):
                    entries.append((e.name, False))
        entries.sort()
        return entries

    def _lookup(self, dirs: list[str], name: str) -> tuple[os.stat_result | None, str, list[str]]:
        """The entry `name` in the merged `dirs` (top-most first), overlayfs-style:
        returns its lstat, its path, and the dirs that make up its own merged
        listing when it is a directory."""
        found: os.stat_result | None = None
        found_path = ""
        stack: list[str] = []
        for d in dirs:
            path = f"{d}/{name}"
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if self.overlay and wh.is_whiteout(st):
                break
            if found is None:
                found, found_path = st, path
            if not stat.S_ISDIR(st.st_mode):
                break  # a non-directory hides everything below it
            stack.append(path)
            if self.overlay and wh.is_opaque(path):
                break
        return found, found_path, stack

    def _old_names(self, dirs: list[str]) -> list[str]:
        """Names in the merged listing of `dirs`."""
        seen: dict[str, bool] = {}
        for d in dirs:
            with os.scandir(d) as it:
                for e in it:
                    if e.name in seen:
                        continue
                    hidden = False
                    if self.overlay and not (e.is_dir(follow_symlinks=False) or e.is_file(follow_symlinks=False)):
                        hidden = wh.is_whiteout(e.stat(follow_symlinks=False))
                    seen[e.name] = not hidden
        return [name for name, visible in seen.items() if visible]
