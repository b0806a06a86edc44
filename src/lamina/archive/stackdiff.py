"""Changes between two stacks of overlay-form layer dirs, without mounting them.

A side is the list of its layer dirs, top-most first, each marked `top` (a layer
this side does not share with the other) or not (the common lower layers: the
longest shared chain prefix, identical on both sides).  The walk visits only
the names the `top` dirs mention, so the cost grows with the layers that differ,
not with the image: what only the shared layers hold is the same on both sides.
Where the two sides stop sharing the lower dirs below some directory (an opaque
dir, a whiteout, a directory that replaced a file, a full rootfs copy), that
directory is listed in full on both sides.

Each side is merged as overlayfs merges it (whiteouts hide, opaque dirs and
non-directories stop the lower dirs), the lookup of changes.py.  The rules of
what counts as A/C/D, the order and the `C` of a parent with changes inside are
docker diff's (archive/changes.py, go-archive's ChangesDirs).
"""

from __future__ import annotations

import os
import stat

from lamina.archive import whiteout as wh
from lamina.archive.changes import _stat_differs
from lamina.errors import StoreError

TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "char",
         stat.S_IFBLK: "block", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}


def type_name(st: os.stat_result) -> str:
    return TYPES.get(stat.S_IFMT(st.st_mode), "other")


def entry(kind: str, path: str, new: os.stat_result | None, old: os.stat_result | None, size: int) -> dict:
    """One change as a plain record (what --format json and a web page show)."""
    cur = new if new is not None else old
    out = {"kind": kind, "path": path, "type": type_name(cur), "size": size,
           "mode": f"{stat.S_IMODE(cur.st_mode):04o}", "uid": cur.st_uid, "gid": cur.st_gid}
    if kind == "C":
        out["old_type"] = type_name(old)
        out["old_size"] = old.st_size if stat.S_ISREG(old.st_mode) else 0
        out["old_mode"] = f"{stat.S_IMODE(old.st_mode):04o}"
        out["old_uid"], out["old_gid"] = old.st_uid, old.st_gid
    return out


def _size(st: os.stat_result) -> int:
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def diff_stacks(old: list[tuple[str, bool]], new: list[tuple[str, bool]], *, old_full: bool = False,
                new_full: bool = False) -> list[dict]:
    """The changes that turn the merged `old` into the merged `new` (docker diff's
    order).  `*_full`: that side's root is a complete tree (a rootfs copy), not an
    overlay stack whose lower dirs show through."""
    walker = _Walker()
    try:
        walker.walk("", old, new, old_full or new_full)
    except RecursionError:
        raise StoreError("cannot compare the layers: directories nested too deeply") from None
    except OSError as e:
        raise StoreError(f"cannot compare the layers: {e}") from None
    return walker.out


def _lookup(dirs: list[tuple[str, bool]], name: str):
    """(lstat, path, dirs of its merged listing) of `name` in the merged `dirs` (overlayfs rules)."""
    found = None
    found_path = ""
    stack: list[tuple[str, bool]] = []
    lstat = os.lstat
    for d, top in dirs:
        path = f"{d}/{name}"
        try:
            st = lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        mode = st.st_mode
        if mode & _FMT == stat.S_IFCHR and st.st_rdev == 0:  # a whiteout
            break
        if found is None:
            found, found_path = st, path
        if mode & _FMT != stat.S_IFDIR:
            break  # a non-directory hides everything below it
        stack.append((path, top))
        if wh.is_opaque(path):
            break
    return found, found_path, stack


_FMT = stat.S_IFMT(0o170000)


def _names(dirs: list[tuple[str, bool]], only_top: bool) -> set[str]:
    out: set[str] = set()
    for d, top in dirs:
        if only_top and not top:
            continue
        try:
            with os.scandir(d) as it:
                out.update(e.name for e in it)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return out


def _lower(dirs: list[tuple[str, bool]]) -> list[str]:
    return [d for d, top in dirs if not top]


class _Walker:
    def __init__(self) -> None:
        self.out: list = []

    def walk(self, rel: str, old: list, new: list, full: bool) -> None:
        # decided per directory: below a fully listed one, the sides may share lower dirs again
        full = full or _lower(old) != _lower(new)
        names = _names(old, not full) | _names(new, not full)
        out = self.out
        deleted = []
        for name in sorted(names):
            if name.startswith(wh.META_PREFIX):
                continue
            child = f"{rel}/{name}"
            old_st, old_path, old_dirs = _lookup(old, name)
            new_st, new_path, new_dirs = _lookup(new, name)
            if new_st is None:
                if old_st is not None:
                    deleted.append((child, old_st, old_dirs))
                continue
            if old_st is None:
                self.added(child, new_st, new_dirs)
                continue
            changed = _stat_differs(old_st, new_st) or _cap(old_path) != _cap(new_path)
            if not stat.S_ISDIR(new_st.st_mode):
                if changed:
                    out.append(entry("C", child, new_st, old_st, _size(new_st)))
                continue
            mark = len(out)
            out.append(entry("C", child, new_st, old_st, 0) if changed else None)
            if stat.S_ISDIR(old_st.st_mode):
                self.walk(child, old_dirs, new_dirs, False)
            else:  # a file became a directory: everything in it is new
                self.added_children(child, new_dirs)
            if not changed:
                if len(out) > mark + 1:
                    out[mark] = entry("C", child, new_st, old_st, 0)
                else:
                    out.pop()
        for child, st, dirs in deleted:
            out.append(entry("D", child, None, st, _size(st) if not stat.S_ISDIR(st.st_mode) else _tree_size(dirs)))

    def added(self, rel: str, st: os.stat_result, dirs: list) -> None:
        self.out.append(entry("A", rel, st, None, _size(st)))
        if stat.S_ISDIR(st.st_mode):
            self.added_children(rel, dirs)

    def added_children(self, rel: str, dirs: list) -> None:
        for name in sorted(_names(dirs, False)):
            if name.startswith(wh.META_PREFIX):
                continue
            st, _, sub = _lookup(dirs, name)
            if st is not None:
                self.added(f"{rel}/{name}", st, sub)


def _cap(path: str) -> bytes | None:
    """security.capability of the merged entry (read from its top-most copy)."""
    try:
        return os.getxattr(path, wh.CAPABILITY_XATTR, follow_symlinks=False)
    except OSError:  # none (ENODATA), or a filesystem without xattrs
        return None


def _tree_size(dirs: list) -> int:
    """Bytes of regular files in a merged directory (a deleted directory's size)."""
    total = 0
    for name in _names(dirs, False):
        st, _, sub = _lookup(dirs, name)
        if st is None:
            continue
        total += _tree_size(sub) if stat.S_ISDIR(st.st_mode) else _size(st)
    return total
