"""Sizes as docker prints them (go-units), shared by the CLI, the build log and pull/push progress."""

from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `precision` significant digits.
    The default is units.HumanSize (`12.35MB`, the build log, progress bars); `images`
    and `history` use 3 (`1.98MB`)."""
    i = 0
    while size >= 1000 and i < len(_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_UNITS[i]}"
