"""The init layer every container gets between its image and its writable layer.

Like Docker's (moby daemon/initlayer): mount points and per-container files
exist here, so the runtime never creates them in the container's upper dir
(they never show up in `diff` or `commit`), and image symlinks at /dev, /proc,
/sys or /etc/hosts are shadowed instead of followed.
"""

from __future__ import annotations

import os
import shutil

INIT_DIRS = ("dev", "dev/pts", "dev/shm", "proc", "sys", "etc")
INIT_FILES = (".dockerenv", "dev/console", "etc/hosts", "etc/hostname", "etc/resolv.conf")
INIT_LINKS = (("etc/mtab", "/proc/mounts"),)
INIT_LINK_NAME = "INIT"


def populate(root: str, *, only_missing: bool = False) -> None:
    for d in INIT_DIRS:
        p = os.path.join(root, d)
        if not (only_missing and os.path.lexists(p)):
            os.makedirs(p, 0o755, exist_ok=True)
    for f in INIT_FILES:
        p = os.path.join(root, f)
        if not (only_missing and os.path.lexists(p)):
            with open(p, "w"):
                pass
            os.chmod(p, 0o755 if f == ".dockerenv" else 0o644)
    for name, target in INIT_LINKS:
        p = os.path.join(root, name)
        if not os.path.lexists(p):
            os.symlink(target, p)


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
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.symlink(os.path.join("..", "layers", "init", "diff"), link)
    except FileExistsError:
        pass
    return diff
