"""Kernel overlayfs snapshots: read-only image layers + one upper dir per container.

The mount keeps the upper dir a faithful change set (index=off,
redirect_dir=off, metacopy=off), so `diff` and `commit` read only the upper
dir: their cost follows the size of the change, not of the image.
"""

from __future__ import annotations

import os

from lamina import rootless
from lamina.snapshot import Mount, initlayer

# shutil (which imports fnmatch and re), typing and lamina.snapshot.mount where used: `diff`
# reads a container's upper dir and needs none of them
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Sequence

FAITHFUL = "index=off,redirect_dir=off,metacopy=off"
if rootless():
    # In a user namespace overlay takes `userxattr` (user.overlay.* for its opaque marks),
    # which refuses redirect_dir=off (= follow): nofollow creates no redirects either.
    FAITHFUL = "index=off,redirect_dir=nofollow,metacopy=off,userxattr"
# `volatile` (Linux >= 5.10) skips overlay's sync of the whole upper filesystem at
# unmount, which costs 100+ ms on a busy disk for every container.  A container's
# layer needs no crash durability (docker's neither); what we keep is fsync'd by
# commit.  Overlay refuses to remount a work dir a volatile mount used: `mount` resets it.
VOLATILE = "volatile"


def overlay_supported(store_root: str) -> bool:
    """Can we mount overlay with the store as upper/lower? Probed once, remembered."""
    marker = os.path.join(store_root, "overlay-ok")
    if os.path.exists(marker):
        return True
    return _probe(store_root, marker)


def volatile_supported(store_root: str) -> bool:
    marker = os.path.join(store_root, "overlay-volatile-ok")
    if os.path.exists(marker):
        return True
    if os.path.exists(marker + ".no"):
        return False
    if _probe(store_root, marker, VOLATILE):
        return True
    open(marker + ".no", "w").close()
    return False


def _probe(store_root: str, marker: str, extra: str = "") -> bool:
    import shutil
    import tempfile

    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                return False
        from lamina.snapshot.mount import mount, unmount

        probe = tempfile.mkdtemp(dir=os.path.join(store_root, "tmp"), prefix=f"overlay-{os.getpid()}-")
        try:
            for d in ("lower", "upper", "work", "merged"):
                os.mkdir(os.path.join(probe, d))
            mount("overlay", os.path.join(probe, "merged"), "overlay",
                  f"lowerdir=lower,upperdir=upper,workdir=work,{FAITHFUL}" + (f",{extra}" if extra else ""),
                  cwd=probe)
            unmount(os.path.join(probe, "merged"))
        finally:
            shutil.rmtree(probe, ignore_errors=True)
    except Exception:
        return False
    open(marker, "w").close()
    return True


class OverlaySnapshotter:
    name = "overlay"

    def __init__(self, system) -> None:
        self.root = system.root
        self._system = system  # its layer store only on commit: `diff` never builds it
        self.init_dir = initlayer.ensure(system.root)
        self.options = FAITHFUL + (f",{VOLATILE}" if volatile_supported(system.root) else "")

    def _lowerdir(self, layers: Sequence) -> str:
        # Top-most first; short relative link names keep the mount data under a page.
        names = [f"l/{initlayer.INIT_LINK_NAME}"] + [f"l/{layer.link}" for layer in reversed(layers)]
        return ":".join(names)

    def prepare(self, key: str, parent: Sequence) -> list[Mount]:
        from lamina.snapshot.placement import make_upper

        os.makedirs(key, exist_ok=True)
        make_upper(os.path.join(key, "upper"), self.root)  # where creates are cheap
        for d in ("work", "rootfs"):
            os.makedirs(os.path.join(key, d), exist_ok=True)
        return self.mounts(key, parent)

    def mounts(self, key: str, parent: Sequence) -> list[Mount]:
        options = (f"lowerdir={self._lowerdir(parent)}", f"upperdir={key}/upper",
                   f"workdir={os.path.join(key, 'work')}", self.options)
        return [Mount("overlay", "overlay", os.path.join(key, "rootfs"), options, cwd=self.root)]

    def mount(self, key: str, parent: Sequence) -> str:
        from lamina.snapshot.mount import is_mounted, mount_all

        target = os.path.join(key, "rootfs")
        if not is_mounted(target):
            work = os.path.join(key, "work")
            if os.path.exists(os.path.join(work, "work", "incompat", "volatile")):
                # every volatile mount leaves this behind, and overlay refuses to mount over it
                import shutil

                shutil.rmtree(work, ignore_errors=True)
                os.makedirs(work, exist_ok=True)
            mount_all(self.mounts(key, parent))
        return target

    def commit(self, key: str, chain_id, diff_id, parent_chain, *, written=None) -> int | None:
        """The upper dir *is* the new layer: moved into the layer store (minus
        overlay's own bookkeeping) instead of being unpacked again from the blob.
        `written` = (unpacked size, the directories overlay made): the caller wrote
        everything else into the upper dir itself, so the tree is not walked again."""
        upper = os.path.join(key, "upper")
        if not os.path.isdir(upper):
            return None
        unpacked = _tree_size(upper) if written is None else written[0]
        layers = self._system.layers
        if layers.get(chain_id) is None:
            _strip_overlay_xattrs(_walk_all(upper) if written is None else [upper, *written[1]])
            layers.adopt(chain_id, diff_id, parent_chain, upper, unpacked)
        return unpacked

    def unmount(self, ctr_dir: str) -> None:
        from lamina.snapshot.mount import unmount

        unmount(os.path.join(ctr_dir, "rootfs"))

    def lowers(self, layers: Sequence) -> list[str]:
        return [self.init_dir] + [layer.dir for layer in reversed(layers)]

    def changes(self, ctr_dir: str, layers: Sequence) -> list:
        from lamina.archive.changes import changes_from_upper

        return changes_from_upper(os.path.join(ctr_dir, "upper"), self.lowers(layers))

    def write_layer(self, ctr_dir: str, layers: Sequence, out: BinaryIO, *, clamp: int | None = None) -> None:
        from lamina.archive.layertar import write_layer_from_upper

        write_layer_from_upper(os.path.join(ctr_dir, "upper"), out, clamp=clamp)

    def remove(self, ctr_dir: str) -> None:
        from lamina.archive.rmtree import remove_path  # lighter than shutil

        self.unmount(ctr_dir)
        try:
            remove_path(ctr_dir)
        except FileNotFoundError:
            pass
        except OSError:  # rare (a busy mount): remove what can be, as before; the caller checks
            import shutil

            shutil.rmtree(ctr_dir, ignore_errors=True)


def _walk_all(root: str):
    yield root
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            yield os.path.join(dirpath, n)


def _strip_overlay_xattrs(paths) -> None:
    from lamina.archive import whiteout as wh

    keep = wh.OPAQUE_XATTR
    for name in paths:
        try:
            names = os.listxattr(name, follow_symlinks=False)
        except OSError:
            continue
        for x in names:
            if x.startswith(wh.OVERLAY_XATTR_PREFIXES) and x != keep:
                try:
                    os.removexattr(name, x, follow_symlinks=False)
                except OSError:
                    pass


def _tree_size(root: str) -> int:
    """What a layer's files weigh (whiteouts count nothing), as `images` sums it."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not (st.st_mode & 0o170000 == 0o020000 and st.st_rdev == 0):
                total += st.st_size
    return total
