"""A container's files as tar archives: GET/HEAD/PUT /containers/{id}/archive (docker cp).

Paths are resolved inside the container's root filesystem (archive/inroot.py: `..`
and absolute links stay inside it), on its mounted rootfs: the running container's
own mount, or one made for the call and undone after it.  Volumes and binds are not
seen (they are mounted in the container's namespace only)."""

from __future__ import annotations

import contextlib
import os
import stat

from lamina.errors import InvalidParameter, NotFound


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


def _leaf(rootfs: str, path: str, name: str) -> str:
    """The host path of `path` in the container, the last component not followed;
    NotFound as dockerd's when it is missing."""
    from lamina.archive.inroot import InRoot, MissingPath, clean, host_path

    if not path.startswith("/"):
        path = "/" + path
    parts = clean(path)
    tree = InRoot(rootfs)
    try:
        parent = tree.resolve(parts[:-1], create=False, entry=path) if parts else ""
    except (MissingPath, OSError, InvalidParameter, ValueError) as e:
        raise NotFound(f"Could not find the file {path} in container {name}") from e
    except Exception as e:  # noqa: BLE001 - InvalidArchive: a non-directory on the way
        raise NotFound(f"Could not find the file {path} in container {name}") from e
    finally:
        tree.close()
    host = os.path.join(host_path(rootfs, parent), parts[-1]) if parts else rootfs
    if not os.path.lexists(host):
        raise NotFound(f"Could not find the file {path} in container {name}")
    return host


def _stat_of(host: str, name: str) -> dict:
    st = os.lstat(host)
    mode = stat.S_IMODE(st.st_mode) | _go_mode_bits(st.st_mode)
    import time

    mtime = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(st.st_mtime)))  # Go's RFC 3339, whole seconds
    return {"name": name, "size": st.st_size, "mode": mode, "mtime": mtime,
            "linkTarget": os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""}


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


def stat_path(system, name: str, path: str) -> dict:
    """HEAD …/archive: the X-Docker-Container-Path-Stat document of `path`."""
    rec = system.containers.resolve(name)
    with mounted_rootfs(system, rec) as rootfs:
        return _stat_of(_leaf(rootfs, path, name), os.path.basename(path.rstrip("/")) or "/")


def get_archive(system, name: str, path: str, begin) -> None:
    """GET …/archive: `begin(stat)` returns the binary stream the tar of `path` is written
    to (a directory with its contents, under its own name; `/.` suffix: the contents)."""
    import tarfile

    rec = system.containers.resolve(name)
    with mounted_rootfs(system, rec) as rootfs:
        host = _leaf(rootfs, path, name)
        base = os.path.basename(path.rstrip("/")) or "/"
        out = begin(_stat_of(host, base))
        arcname = "." if path.endswith("/.") else (base if base != "/" else ".")
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            tf.add(host, arcname=arcname, recursive=True)


def put_archive(system, name: str, path: str, body, *, no_overwrite_dir_non_dir: bool = False) -> None:
    """PUT …/archive: extract the tar `body` into directory `path` (which must exist)."""
    from lamina.archive.extract import apply_layer

    from lamina.archive.inroot import InRoot, clean, host_path

    rec = system.containers.resolve(name)
    with mounted_rootfs(system, rec) as rootfs:
        _leaf(rootfs, path, name)  # NotFound when missing
        tree = InRoot(rootfs)
        try:  # every link on the way, the last one too, followed inside the rootfs
            real = host_path(rootfs, tree.resolve(clean(path if path.startswith("/") else "/" + path),
                                                  create=False, entry=path))
        except Exception:  # noqa: BLE001 - a non-directory: InvalidArchive, NotADir
            raise InvalidParameter("extraction point is not a directory") from None
        finally:
            tree.close()
        apply_layer(body, real, overlay_whiteouts=False)
