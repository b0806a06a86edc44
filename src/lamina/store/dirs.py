"""Store directories with exact modes (kept apart from the content store so that
opening a store imports nothing heavy)."""

from __future__ import annotations

import os


def private_dir(path: str, mode: int = 0o700) -> None:
    """Make a store directory with exactly `mode`, fixing an existing one (one stat
    when it is right already): other users must not read images or containers."""
    os.makedirs(path, mode=mode, exist_ok=True)
    if os.stat(path).st_mode & 0o7777 != mode:
        os.chmod(path, mode)
