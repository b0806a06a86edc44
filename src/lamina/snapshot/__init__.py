"""Snapshotters: how a container gets its own writable layer over an image.

`overlay` uses kernel overlayfs (read-only lower layers, one empty upper dir per
container); `copy` is the fallback where overlay is unavailable: a full copy of
the flattened image per container, diffed against the flattened image.  Both
give the container the same init paths (/dev, /proc, /etc/hosts...) through one
piece of code, `initlayer.populate`: overlay in a layer that shadows the image,
copy by replacing what the image put there (a symlink out of the root included).
"""

from __future__ import annotations

from typing import BinaryIO, Protocol, Sequence

from lamina.errors import UsageError

DRIVERS = ("overlay", "copy")


class Snapshotter(Protocol):
    name: str

    def prepare(self, ctr_dir: str, layers: Sequence) -> None:
        """Create the container's empty writable layer over `layers` (bottom-first)."""

    def mount(self, ctr_dir: str, layers: Sequence) -> str:
        """Make the container's root filesystem available; returns its path."""

    def unmount(self, ctr_dir: str) -> None: ...

    def changes(self, ctr_dir: str, layers: Sequence) -> list:
        """What the container Added, Changed or Deleted, as `docker diff` lists it."""

    def write_layer(self, ctr_dir: str, layers: Sequence, out: BinaryIO) -> None:
        """The container's changes as a Docker layer tar."""

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
