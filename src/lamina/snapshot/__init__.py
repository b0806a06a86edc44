"""Snapshotters: how a container gets its own writable layer over an image.

`overlay` uses kernel overlayfs (read-only lower layers, one empty upper dir per
container); `copy` is the fallback where overlay is unavailable: a full copy of
the flattened image per container, diffed against the flattened image.  Both
give the container the same init paths (/dev, /proc, /etc/hosts...) through one
piece of code, `initlayer.populate`: overlay in a layer that shadows the image,
copy by replacing what the image put there (a symlink out of the root included).

The vocabulary is containerd's: `prepare(key, parent)` makes an active
snapshot and returns the mounts that show it, as data (`Mount`); `mounts(key,
parent)` returns them again; `commit(key, ...)` turns an active snapshot into a
committed layer of the layer store.  Only snapshot/mount.py turns mounts into
mount(2) calls (`mount_all`).  Here a key is the container's directory and a
parent the image's layers, bottom-first.
"""

from __future__ import annotations

from lamina.errors import UsageError
from lamina.record import record

# Neither dataclasses nor typing at run time: `diff` and `inspect` import this package,
# and those two cost more start-up time than the whole command.  Type checkers see the
# Protocol; at run time Snapshotter is a plain base.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol, Sequence
else:
    Protocol = object

DRIVERS = ("overlay", "copy")


@record
class Mount:
    """One mount, as data: what mount(2) gets (containerd's mount.Mount).

    `options` are the comma-joined data/flags; `cwd` is the directory relative
    paths in them resolve against (overlay's short lower-dir links, as Docker's
    overlay2 keeps its mount data under a page).  A bind whose source is its
    target is a tree already in place (the copy snapshotter's): nothing to mount."""

    type: str
    source: str
    target: str
    options: tuple[str, ...] = ()
    cwd: str | None = None


class Snapshotter(Protocol):
    name: str

    def prepare(self, key: str, parent: Sequence) -> list[Mount]:
        """Create the active snapshot `key` (an empty writable layer over `parent`,
        layers bottom-first); returns the mounts that show it."""

    def mounts(self, key: str, parent: Sequence) -> list[Mount]:
        """The mounts of the active snapshot `key`, as `prepare` returned them."""

    def commit(self, key: str, chain_id, diff_id, parent_chain, *, written=None) -> int | None:
        """Make the active snapshot's changes the committed layer `chain_id` of the
        layer store (its blob is stored already); returns the unpacked size, or None
        when this snapshotter cannot hand its changes over (the layer is then
        unpacked from its blob when first needed).  `written` = (unpacked size,
        directories the snapshotter made) when the caller wrote the rest itself."""

    def mount(self, key: str, parent: Sequence) -> str:
        """`mount_all(mounts(key, parent))`; returns the root filesystem's path."""

    def unmount(self, ctr_dir: str) -> None: ...

    def changes(self, ctr_dir: str, layers: Sequence) -> list:
        """What the container Added, Changed or Deleted, as `docker diff` lists it."""

    def write_layer(self, ctr_dir: str, layers: Sequence, out: BinaryIO, *, clamp: int | None = None) -> None:
        """The container's changes as a Docker layer tar (`clamp`: SOURCE_DATE_EPOCH, no later mtime)."""

    def remove(self, ctr_dir: str) -> None: ...


def select_snapshotter(system, requested: str | None) -> Snapshotter:
    if requested and requested not in DRIVERS:
        raise UsageError(f"unknown storage driver {requested!r} (choose overlay or copy)")
    if requested != "copy":
        from lamina.snapshot.overlay import OverlaySnapshotter, overlay_supported

        if requested == "overlay" or overlay_supported(system.root):
            return OverlaySnapshotter(system)
    from lamina.snapshot.copy import CopySnapshotter

    return CopySnapshotter(system)
