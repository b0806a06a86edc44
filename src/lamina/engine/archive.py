"""A container's files as tar archives: GET/HEAD/PUT /containers/{id}/archive (docker cp).

Paths are resolved inside the container's root filesystem (archive/inroot.py: `..`
and absolute links stay inside it), on its mounted rootfs: the running container's
own mount, or one made for the call and undone after it.  A running container can
change its tree under the call, so nothing is opened by a host path below the root:
every read and write goes through directory fds walked with O_NOFOLLOW (_Target,
layertar.write_entry, extract.apply_layer on the directory's fd).  The container's
volumes and bind mounts are seen as in the container, as dockerd mounts them for the
call: a path at or below a mount point is walked on in the mount's source directory
(inroot.py `graft`), confined there as in the root; a file bind is its source file; a
copied directory's walk goes on in the mounts below it (layertar's `mounts`).  Its
--tmpfs mounts are not followed, as dockerd 20.10 does not: they live only in the
container's mount namespace, dockerd's walk sees their empty mount points."""

from __future__ import annotations

import contextlib
import os
import stat

from lamina.errors import InvalidArchive, InvalidParameter, LaminaError, NotFound


@contextlib.contextmanager
def mounted_rootfs(system, rec):
    """The container's root filesystem on the host for the length of a read or write:
    a running container's own mount (never unmounted under it), else one made for the
    call and undone after it."""
    from lamina.digest import Digest

    snap = system.snapshotter_for(rec)
    ctr_dir = system.containers.path(rec.id)
    target = os.path.join(ctr_dir, "rootfs")
    was_mounted = os.path.ismount(target)
    rootfs = snap.mount(ctr_dir, system.unpack(Digest(rec.image_id)))
    try:
        yield rootfs
    finally:
        if not was_mounted and not system.containers.get(rec.id).running:
            snap.unmount(ctr_dir)


class _Target:
    """`path` in the container, held as an fd of its parent directory and a name in
    it ("." for the directory itself), as moby's ResolvePath: the links on the way
    followed inside the root, the last element not, unless the path ends in `/` or
    `/.`.  Every open is relative to an fd got by an O_NOFOLLOW walk from the root,
    so a running container swapping a directory for a symlink cannot make a read
    or a write leave its tree (CVE-2018-15664)."""

    def __init__(self, rootfs: str, path: str, name: str, mounts=()) -> None:
        from lamina.archive.inroot import InRoot, MissingPath, clean, join

        self.rootfs, self.path, self.container = rootfs, path, name
        parts = clean(path)
        whole = path.endswith(("/", "/.")) or not parts
        self.parts = parts
        self.name = "." if path.endswith("/.") else (parts[-1] if parts else "/")  # filepath.Base(absPath)
        self.tree, self.fd = InRoot(rootfs), -1
        try:
            self.writable = _graft(self.tree, mounts)
            parent = self.tree.resolve(parts if whole else parts[:-1], create=False, entry=path)
            if not whole and self.tree.mount_at(join(parent, parts[-1])) is not None:
                parent, whole = join(parent, parts[-1]), True  # a mount point: its source directory
            self.real = parent if whole else join(parent, parts[-1])  # what a walk of a directory starts at
            bound = None if whole else self.tree.file_at(self.real)
            if bound is not None:  # a file bind: its source file
                self.fd, self.base = os.dup(bound[0]), bound[1]
            else:
                self.fd = os.dup(self.tree.dir_fd(parent))  # the tree's own fds are evicted as it walks on
                self.base = "." if whole else parts[-1]
            self.st = os.stat(self.base, dir_fd=self.fd, follow_symlinks=False)
        except (MissingPath, OSError, InvalidArchive, ValueError) as e:
            self.close()
            raise self._error(e) from None

    def _error(self, e: Exception) -> LaminaError:
        """dockerd's words: missing is NotFound, anything else its failed lstat."""
        from lamina.archive.inroot import MissingPath, NotADir

        if isinstance(e, (MissingPath, FileNotFoundError)):
            return self.not_found()
        if isinstance(e, (NotADir, NotADirectoryError)):
            why = "not a directory"
        elif isinstance(e, ValueError):  # a NUL in the path
            why = "invalid argument"
        elif isinstance(e, OSError) and e.strerror:  # a component swapped under the walk, a name too long
            why = e.strerror.lower()
        else:
            why = "too many levels of symbolic links"  # LinkLoop
        return LaminaError(f"lstat {self.path}: {why}")

    def not_found(self) -> NotFound:
        return NotFound(f"Could not find the file {self.path} in container {self.container}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.tree.close()

    def stat(self) -> dict:
        """The X-Docker-Container-Path-Stat document."""
        st = self.st
        mode = stat.S_IMODE(st.st_mode) | _go_mode_bits(st.st_mode)
        return {"name": self.name, "size": st.st_size, "mode": mode, "mtime": _go_time(st.st_mtime_ns),
                "linkTarget": self._link_target() if stat.S_ISLNK(st.st_mode) else ""}

    def _link_target(self) -> str:
        """Where the link finally leads, as an absolute path in the container (moby
        evaluates it in the root's scope, a dangling one too)."""
        from lamina.archive.inroot import MissingPath, resolve_leaf

        try:
            parent, name = resolve_leaf(self.tree, "/".join(self.parts), create=False)
        except IsADirectoryError:
            return "/"
        except (MissingPath, OSError):
            try:
                return os.readlink(self.base, dir_fd=self.fd)
            except OSError:  # no longer a link
                return ""
        return "/" + (f"{parent}/{name}" if parent else name)


def _graft(tree, mounts) -> dict[str, bool]:
    """The container's mounts [(destination, source, writable)] grafted into `tree` at
    the real path each destination has in the root (its links followed there, as the
    runtime's mount did); {real mount point: writable}.  A file bind is grafted as
    its source's directory and name; a source that is gone is left out: the root's own
    entry is seen there."""
    from lamina.archive.inroot import MissingPath, clean, join

    writable = {}
    for destination, source, rw in sorted(mounts, key=lambda m: len(clean(m[0]))):  # outer ones first
        parts = clean(destination)
        if not parts:
            continue
        try:
            parent = tree.resolve(parts[:-1], create=False, entry=destination)
        except (MissingPath, OSError, InvalidArchive):  # the runtime makes missing ones in its own mount
            parent = "/".join(parts[:-1])
        try:
            fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # a host path the user chose
        except NotADirectoryError:  # a file bind: the file its source names (links followed, as mount(2))
            real = os.path.realpath(source)
            try:
                fd = os.open(os.path.dirname(real), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            tree.graft_file(join(parent, parts[-1]), fd, os.path.basename(real))
            writable[join(parent, parts[-1])] = rw
            continue
        except OSError:
            continue
        tree.graft(join(parent, parts[-1]), fd)
        writable[join(parent, parts[-1])] = rw
    return writable


def _graft_below(target: _Target, real: str, tree) -> None:
    """The mounts below the directory at real path `real` into `tree`, the extraction's
    own (rooted at that directory): an entry written there lands in the mount, as in
    the container; read-only ones and file binds refused (inroot.py `check_write`)."""
    for rel, mounted in target.tree.mounts_below(real).items():
        point = f"{real}/{rel}" if real else rel
        if isinstance(mounted, tuple):
            tree.graft_file(rel, os.dup(mounted[0]), mounted[1])
        else:
            tree.graft(rel, os.dup(mounted), readonly=not target.writable.get(point, True))


def _go_time(ns: int) -> str:
    """Go's RFC 3339 with nanoseconds, trailing zeros trimmed, as encoding/json writes a time."""
    import time

    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def _go_mode_bits(mode: int) -> int:
    """Go's os.FileMode type bits, as the stat header carries them."""
    if stat.S_ISDIR(mode):
        return 1 << 31
    if stat.S_ISLNK(mode):
        return 1 << 27
    if stat.S_ISFIFO(mode):
        return 1 << 25
    if stat.S_ISSOCK(mode):
        return 1 << 24
    if stat.S_ISCHR(mode):
        return (1 << 26) | (1 << 21)
    if stat.S_ISBLK(mode):
        return 1 << 26
    return 0


@contextlib.contextmanager
def _target(system, name: str, path: str):
    if not path.startswith("/"):
        path = "/" + path
    from lamina.volumemounts import inspect_mounts

    rec = system.containers.resolve(name)
    mounts = [(m["Destination"], m["Source"], m["RW"]) for m in inspect_mounts(system, rec)
              if m["Type"] in ("bind", "volume")]
    with mounted_rootfs(system, rec) as rootfs:
        target = _Target(rootfs, path, name, mounts)
        try:
            yield target
        finally:
            target.close()


def stat_path(system, name: str, path: str) -> dict:
    """HEAD …/archive: the X-Docker-Container-Path-Stat document of `path`."""
    with _target(system, name, path) as target:
        return target.stat()


def get_archive(system, name: str, path: str, begin, *, arcname: str | None = None) -> None:
    """GET …/archive: `begin(stat)` returns the binary stream the tar of `path` is written
    to (a directory with its contents, under its own name; `/.` suffix: the contents;
    `/`: entries named from `/`).  `arcname` names the entries instead (the CLI's
    rebase: docker cp renames them to the destination's name)."""
    from lamina.archive.layertar import RACE_ERRNOS, write_entry
    from lamina.runtime.idnames import id_names

    with _target(system, name, path) as target:
        out = begin(target.stat())
        arcname = target.name if arcname is None else arcname
        # owners named from the container's own /etc/passwd and /etc/group, as dockerd's
        # tar (made chrooted in the container) names them
        try:
            write_entry(target.fd, target.base, "" if arcname == "/" else arcname, out,
                        owner_names=id_names(target.rootfs), mounts=target.tree.mounts_below(target.real))
        except OSError as e:
            # the entry itself moved or became a link since its stat (entries below it
            # that do are left out): what the walk would have said; writes to `out` fail
            # with other errors
            if e.errno not in RACE_ERRNOS:
                raise
            raise target._error(e) from None


def put_archive(system, name: str, path: str, body, *, no_overwrite_dir_non_dir: bool = False,
                copy_uid_gid: bool = False) -> None:
    """PUT …/archive: extract the tar `body` into directory `path` (which must exist;
    a link there is followed, inside the root).  The extraction is rooted at the
    directory's fd (through /proc/self/fd), never at a path a container can change.
    `copy_uid_gid` (docker cp -a): everything owned by the container's user, when it
    has one (looked up in its own /etc/passwd; dockerd 20.10 asks the host's)."""
    from lamina.archive.extract import apply_layer
    from lamina.archive.inroot import MissingPath, NotADir, clean
    from lamina.runtime.rootfs import lookup_user

    rec = system.containers.resolve(name)
    user = (rec.config or {}).get("User") if copy_uid_gid else None
    with _target(system, name, path) as target:
        owners = True
        if user:
            ids = lookup_user(target.rootfs, user)
            owners = (ids.uid, ids.gid)
        try:  # every link on the way, the last one too, followed inside the rootfs
            real = target.tree.resolve(clean(target.path), create=False, entry=target.path)
            fd = os.dup(target.tree.dir_fd(real))
        except MissingPath:
            raise target.not_found() from None
        except (NotADir, OSError, InvalidArchive):  # a non-directory; a link loop
            raise InvalidParameter("extraction point is not a directory") from None
        try:
            point = target.tree.mount_of(real)  # dockerd's checks, in its order, once resolved
            if point is not None and not target.writable[point]:
                raise LaminaError("mounted volume is marked read-only")
            if point is None and (rec.host_config or {}).get("ReadonlyRootfs"):
                raise LaminaError("container rootfs is marked read-only")
            apply_layer(body, f"/proc/self/fd/{fd}", overlay_whiteouts=False, plain=True,  # Untar, not a layer
                        owners=owners, where="/" + real, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                        graft=lambda tree: _graft_below(target, real, tree))
        except InvalidArchive as e:  # dockerd's words: its untar runs as a child process
            raise LaminaError(f"Error processing tar file(exit status 1): {e}") from None
        finally:
            os.close(fd)
