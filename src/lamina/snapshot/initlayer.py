"""The init layer every container gets between its image and its writable layer.

Like Docker's (moby daemon/initlayer): mount points and per-container files
exist here, so the runtime never creates them in the container's upper dir
(they never show up in `diff` or `commit`), and image symlinks at /dev, /proc,
/sys or /etc/hosts are shadowed instead of followed.

`populate` is the one place that gives a root its init paths, for both drivers:
overlay runs it on the empty init layer (which then shadows the image), the copy
driver on the flattened image itself, where it must *replace* what the image put
at those paths.  runc creates /dev/ptmx, /dev/fd, /dev/stdin... by plain path
joins under the rootfs before pivot_root, so an image `dev -> /var/run/../dev`
left in place makes runc rewrite the host's /dev (CVE-2026-41579 in the
reliability catalogue; Docker is safe through its init layer).  Every step
here works on directory fds from the root and never follows a symlink.
"""

from __future__ import annotations

import os
import stat

# (path, kind, mode or link target), parents before children.  Every file is
# 0755, as moby's setupInitLayer makes them (an `export` shows these modes).
DIR, FILE, LINK = "dir", "file", "link"
INIT_PATHS = (
    ("dev", DIR, 0o755), ("dev/pts", DIR, 0o755), ("dev/shm", DIR, 0o755),
    ("proc", DIR, 0o755), ("sys", DIR, 0o755), ("etc", DIR, 0o755),
    (".dockerenv", FILE, 0o755), ("dev/console", FILE, 0o755), ("etc/hosts", FILE, 0o755),
    ("etc/hostname", FILE, 0o755), ("etc/resolv.conf", FILE, 0o755),
    ("etc/mtab", LINK, "/proc/mounts"),
)
INIT_LINK_NAME = "INIT"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def populate(root: str) -> None:
    """Give `root` every init path with the init layer's type and content.

    What is already right is left alone (so this is cheap and idempotent, and the
    image's own /dev or /etc directory keeps its contents, as overlay merges
    them); anything else there (a symlink, a file where a directory belongs, an
    image's /etc/hosts) is removed and replaced, as the init layer shadows it.
    """
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path, kind, arg in INIT_PATHS:
            fd, name = _parent_fd(root_fd, path)
            try:
                _settle(fd, name, kind, arg)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def ensure(store_root: str) -> str:
    """Create the shared init layer once (atomically); returns its diff dir."""
    base = os.path.join(store_root, "layers", "init")
    diff = os.path.join(base, "diff")
    link = os.path.join(store_root, "l", INIT_LINK_NAME)
    if os.path.isdir(diff) and os.path.islink(link):
        return diff
    os.makedirs(os.path.join(store_root, "layers"), exist_ok=True)
    os.makedirs(os.path.join(store_root, "l"), exist_ok=True)
    if not os.path.isdir(diff):
        import tempfile

        tmp = tempfile.mkdtemp(dir=os.path.join(store_root, "layers"), prefix="init-tmp-")
        os.makedirs(os.path.join(tmp, "diff"))
        populate(os.path.join(tmp, "diff"))
        try:
            os.rename(tmp, base)
        except OSError:  # another process won the race
            import shutil  # only on failure: `diff` and `inspect` import this module

            shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.symlink(os.path.join("..", "layers", "init", "diff"), link)
    except FileExistsError:
        pass
    return diff


# ---------------------------------------------------------------------- steps


def _parent_fd(root_fd: int, path: str) -> tuple[int, str]:
    """(fd of the parent directory, last name); parents are init dirs, made real
    directories before their children, opened without following anything."""
    *parents, name = path.split("/")
    fd = os.dup(root_fd)
    try:
        for part in parents:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def _is_right(fd: int, name: str, kind: str, arg) -> bool:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if kind == DIR:
        return stat.S_ISDIR(st.st_mode)
    if kind == FILE:
        return stat.S_ISREG(st.st_mode) and st.st_size == 0 and stat.S_IMODE(st.st_mode) == arg
    return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=fd) == arg


def _settle(fd: int, name: str, kind: str, arg) -> None:
    if _is_right(fd, name, kind, arg):
        return
    from lamina.archive.rmtree import remove_tree  # only to fix a path: `diff` reads the layer as made

    remove_tree(fd, name)  # no-follow: a symlink is unlinked, never its target; a no-op when missing
    try:
        if kind in (DIR, FILE):
            if kind == DIR:
                os.mkdir(name, arg, dir_fd=fd)
                f = os.open(name, _DIR_FLAGS, dir_fd=fd)
            else:
                f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, arg, dir_fd=fd)
            try:
                os.fchmod(f, arg)  # independent of the umask
            finally:
                os.close(f)
        else:
            os.symlink(arg, name, dir_fd=fd)
    except FileExistsError:
        # Two starts bringing the same old flat rootfs up to date at once: fine
        # when the other one made exactly this.
        if not _is_right(fd, name, kind, arg):
            raise
