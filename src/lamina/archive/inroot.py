"""Paths resolved inside a root directory, with cached directory fds.

Rule 0.2 of the reliability catalogue: a path under a rootfs is resolved one
component at a time *inside* the root.  `..` never climbs above the root and an
absolute symlink target restarts at the root, so every result names something under
the root.  The final operation is then done relative to a directory fd with
no-follow semantics by the caller.

Resolution is the hot path of layer extraction (a Debian base has ~10k entries), so
two caches keep it O(entries) instead of O(entries * depth):

* `_fds`: real (symlink-free) relative directory path -> open O_DIRECTORY fd, LRU.
  Every fd is obtained by an O_NOFOLLOW walk, so a cached fd always *is* the
  directory that was at that path when it was opened.
* `_resolved`: logical directory path (as written in the tar) -> real path.

The tree only changes through the caller, so the caches go stale only when the
caller removes or replaces a directory or a symlink; it must then call `forget()`.
Even a stale cache cannot lead outside the root: it can only point at a directory
that was inside the root when it was opened.

A container's mounts (`graft`: its volumes and binds, for `cp`) are directories of
their own at a real path: the walk goes on in the mount's directory there, as in the
container, and `..` of the mount point is its parent in the root.
"""

from __future__ import annotations

import errno
import os
import stat

from lamina.errors import InvalidArchive

TYPE_CHECKING = False  # typing only for annotations; os.urandom, not uuid (which imports platform): `diff` starts lean
if TYPE_CHECKING:
    from typing import Sequence

MAX_SYMLINKS = 40  # Linux MAXSYMLINKS
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class MissingPath(Exception):
    """A component does not exist and the caller asked not to create it."""


class NotADir(InvalidArchive):
    """A path component is neither a directory nor a symlink (callers outside
    extraction turn it into their own error; see make_dirs)."""


class LinkLoop(InvalidArchive):
    """More than MAX_SYMLINKS links on one path."""


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def clean(name: str) -> list[str]:
    """Lexical clean of an archive path, as Go's filepath.Clean("/" + name):
    components without "", "." and "..", never above the root."""
    parts: list[str] = []
    for part in name.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return parts


class InRoot:
    def __init__(self, root: str, *, max_fds: int = 128) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds: dict[str, int] = {}  # insertion order is the LRU order (no collections: run's start path)
        self._resolved: dict[str, str] = {}
        self._retired: list[int] = []
        self._max_fds = max_fds
        self._mounts: dict[str, int] = {}  # real path of a mount point -> its directory's fd (graft)
        self._files: dict[str, tuple[int, str]] = {}  # a file bind's real path -> (its source's dir fd, name)
        self._readonly: set[str] = set()  # read-only mount points (a write below one is refused: check_write)
        self.guarded = False  # a write through this tree asks check_write first (a cp into a container)
        self.made_dirs: list[str] = []  # missing parents we created (real paths)

    # ------------------------------------------------------------------ fds
    def close(self) -> None:
        self.forget()
        self.release()
        for fd in self._mounts.values():
            os.close(fd)
        self._mounts.clear()
        for fd, _ in self._files.values():
            os.close(fd)
        self._files.clear()
        os.close(self.root_fd)

    def graft(self, real: str, fd: int, *, readonly: bool = False) -> None:
        """A directory mounted at real path `real` (a container's volume or bind: the
        caller opened its source, a host path it trusts); the tree owns `fd` then.
        `readonly`: check_write refuses what is at or below it."""
        self.forget()
        old = self._mounts.pop(real, None)
        if old is not None:
            os.close(old)
        self._mounts[real] = fd
        if readonly:
            self._readonly.add(real)
            self.guarded = True

    def check_write(self, real: str, where: str, is_dir: bool) -> None:
        """Refuse an entry written at real path `real` (`where` names it in the container)
        as the kernel refuses it in the container's mounts: below a read-only mount
        (EROFS), or over a file bind (EBUSY: the mount point cannot be unlinked)."""
        if real in self._files:
            raise InvalidArchive(f"unlinkat {where}: device or resource busy")
        if self._readonly and self.mount_of(real) in self._readonly:  # the deepest mount decides
            raise InvalidArchive(f"{'lchown' if is_dir else 'open'} {where}: read-only file system")

    def graft_file(self, real: str, dir_fd: int, name: str) -> None:
        """A file bound at real path `real`: `name` in the directory open at `dir_fd`
        (its source's, a host path the caller trusts); the tree owns `dir_fd` then."""
        old = self._files.pop(real, None)
        if old is not None:
            os.close(old[0])
        self._files[real] = (dir_fd, name)
        self.guarded = True

    def file_at(self, real: str) -> tuple[int, str] | None:
        return self._files.get(real)  # (directory fd, name) of the file bound at exactly `real`

    def mounts_below(self, real: str) -> dict[str, int | tuple[int, str]]:
        """The mounts strictly below real path `real`, by their path relative to it: a
        directory's fd, or a file bind's (directory fd, name) (an archive walk of `real`
        goes on in them, as in the container)."""
        prefix = real + "/" if real else ""
        found: dict[str, int | tuple[int, str]] = {}
        for mounts in (self._mounts, self._files):
            for point, value in mounts.items():
                if point.startswith(prefix) and point != real:
                    found[point[len(prefix):]] = value
        return found

    def mount_at(self, real: str) -> int | None:
        """The fd of the directory mounted at exactly `real`, None when none is."""
        return self._mounts.get(real)

    def mount_of(self, real: str) -> str | None:
        """The mount point `real` is at or below (the deepest), None when in the root's own tree."""
        found = None
        for point in self._mounts:
            if (real == point or real.startswith(point + "/")) and (found is None or len(point) > len(found)):
                found = point
        return found

    def release(self) -> None:
        """Close fds retired by forget(); call when no fd from dir_fd() is in use."""
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def forget(self) -> None:
        """Drop every cache entry.  Fds are only retired, so an fd the caller still
        holds for the current entry stays valid until release()."""
        self._retired.extend(self._fds.values())
        self._fds.clear()
        self._resolved.clear()

    def _remember(self, real: str, fd: int) -> None:
        self._fds[real] = fd
        if len(self._fds) > self._max_fds:
            os.close(self._fds.pop(next(iter(self._fds))))

    def dir_fd(self, real: str) -> int:
        """The fd of the directory at real path `real` (no symlinks followed).

        Valid until the next dir_fd/resolve/open_dir call (LRU eviction); dup it to keep it."""
        if not real:
            return self.root_fd
        fd = self._fds.get(real)
        if fd is not None:
            self._fds[real] = self._fds.pop(real)  # most recently used: last
            return fd
        fd = self._mounts.get(real)
        if fd is not None:
            return fd
        missing: list[str] = []
        base = real
        while base and base not in self._fds and base not in self._mounts:
            base, _, name = base.rpartition("/")
            missing.append(name)
        fd = self._fds[base] if base in self._fds else self._mounts[base] if base else self.root_fd
        opened = -1
        try:
            for name in reversed(missing):  # no mount point among them: the climb stopped at the first
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                if opened >= 0:
                    os.close(opened)  # intermediate levels are not cached (bounded fd use)
                fd = opened = child
        except BaseException:
            if opened >= 0:
                os.close(opened)
            raise
        self._remember(real, fd)
        return fd

    def open_dir(self, parent_fd: int, name: str, real: str) -> int:
        """Open (and cache) the directory `name` in parent_fd, known as `real`."""
        if real in self._mounts:
            return self._mounts[real]
        fd = self._fds.get(real)
        if fd is not None:
            self._fds[real] = self._fds.pop(real)  # most recently used: last
            return fd
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        self._remember(real, fd)
        return fd

    def note(self, logical: Sequence[str], real: str) -> None:
        """Record that the logical directory path resolves to `real`."""
        self._resolved["/".join(logical)] = real

    # ------------------------------------------------------------------ resolution
    def resolve(self, parts: Sequence[str], *, create: bool, entry: str, links: list[str] | None = None) -> str:
        """Real path of the logical directory `parts` (already lexically cleaned).

        Missing components are created (0755, like moby/containerd) when `create`,
        else MissingPath is raised.  A non-directory component is an InvalidArchive.
        With `links`, the real path of every symlink followed is appended to it (a
        build context checks them against .dockerignore), so the cache is not read."""
        key = "/".join(parts)
        hit = self._resolved.get(key) if links is None else None
        if hit is not None:
            return hit
        start, real = 0, ""
        for i in range(len(parts) - 1, 0, -1):
            if links is not None:
                break
            hit = self._resolved.get("/".join(parts[:i]))
            if hit is not None:
                start, real = i, hit
                break
        hops = [0]
        for i in range(start, len(parts)):
            real = self._step(real, parts[i], create, entry, hops, links)
            self._resolved["/".join(parts[: i + 1])] = real
        return real

    def _step(self, real: str, component: str, create: bool, entry: str, hops: list[int],
              links: list[str] | None = None) -> str:
        todo = [component]
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                real = real.rpartition("/")[0]  # clamped: ".." of the root is the root
                continue
            child = join(real, name)
            if child in self._fds or child in self._mounts:
                real = child
                continue
            pfd = self.dir_fd(real)
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise MissingPath(child) from None
                self._mkdir(pfd, name, child)
                real = child
                continue
            if stat.S_ISDIR(st.st_mode):
                real = child
            elif stat.S_ISLNK(st.st_mode):
                if links is not None:
                    links.append(child)
                hops[0] += 1
                if hops[0] > MAX_SYMLINKS:
                    raise LinkLoop(f"tar entry {entry!r}: too many levels of symbolic links")
                target = os.readlink(name, dir_fd=pfd)
                if target.startswith("/"):
                    real = ""  # absolute targets are re-rooted at the root
                todo.extend(reversed(target.split("/")))
            else:
                raise NotADir(f"tar entry {entry!r}: path component {child!r} is not a directory")
        return real

    def _mkdir(self, pfd: int, name: str, real: str) -> None:
        os.mkdir(name, 0o755, dir_fd=pfd)
        fd = self.open_dir(pfd, name, real)
        os.fchmod(fd, 0o755)  # independent of the process umask
        self.made_dirs.append(real)


def _os_error(e: InvalidArchive, path: str) -> OSError:
    """The OSError a resolution fault is to callers outside extraction, naming `path`."""
    code = errno.ENOTDIR if isinstance(e, NotADir) else errno.ELOOP
    cls = NotADirectoryError if code == errno.ENOTDIR else OSError
    return cls(code, os.strerror(code), path)


def make_dirs(tree: InRoot, path: str) -> tuple[str, list[str]]:
    """`mkdir -p path` inside the root, through the root's own symlinks (as docker
    creates a WORKDIR or a mount point behind a link to a missing directory).

    Returns (real path, directories made (0755), shallowest first).  A component
    that is not a directory raises NotADirectoryError, a link loop OSError(ELOOP),
    both naming `path`, so callers word their own error."""
    before = len(tree.made_dirs)
    try:
        real = tree.resolve(clean(path), create=True, entry=path)
    except (NotADir, LinkLoop) as e:
        raise _os_error(e, path) from None
    return real, tree.made_dirs[before:]


def find_dir(tree: InRoot, path: str) -> str | None:
    """Real path of the existing directory `path` inside the root (its links
    followed in the root, as `make_dirs` does), or None when a component is
    missing.  A component that is not a directory raises NotADirectoryError, a
    link loop OSError(ELOOP), both naming `path`."""
    try:
        return tree.resolve(clean(path), create=False, entry=path)
    except MissingPath:
        return None
    except (NotADir, LinkLoop) as e:
        raise _os_error(e, path) from None


def resolve_leaf(tree: InRoot, path: str, *, create: bool = True) -> tuple[str, str]:
    """(real parent directory, name) where a file written at `path` goes: a symlink
    in the final place is followed, inside the root, as writing through it does
    (docker's COPY onto a link, also a dangling one); the directories on the way are
    made when missing (`tree.made_dirs` lists them).  The result names no symlink,
    though it may name a directory; the root itself is IsADirectoryError.  Errors
    name `path` as make_dirs' do.  Without `create`, a missing directory on the way
    raises MissingPath."""
    parts = clean(path)
    hops = 0
    try:
        while parts:
            parent = tree.resolve(parts[:-1], create=create, entry=path)
            name = parts[-1]
            pfd = tree.dir_fd(parent)
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                return parent, name
            if not stat.S_ISLNK(st.st_mode):
                return parent, name
            hops += 1
            if hops > MAX_SYMLINKS:
                raise LinkLoop(path)
            target = os.readlink(name, dir_fd=pfd)
            # `parent` is a real (link-free) path, so a lexical `..` from it is the physical one
            parts = clean(target if target.startswith("/") else join(parent, target))
    except (NotADir, LinkLoop) as e:
        raise _os_error(e, path) from None
    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)


def host_path(root: str, real: str) -> str:
    """The host path of a real path `resolve` returned ("" is the root itself)."""
    return os.path.join(root, real) if real else root
