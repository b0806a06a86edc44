"""Store directories with exact modes (kept apart from the content store so that
opening a store imports nothing heavy)."""

from __future__ import annotations

import os
import stat


def private_dir(path: str, mode: int = 0o700) -> None:
    """Make a store directory with exactly `mode`, fixing an existing one (one stat
    when it is right already): other users must not read images or containers."""
    # every command opens every store directory: not makedirs' stat, mkdir and its
    # FileExistsError (4 system calls and an exception) where it exists
    try:
        st = os.stat(path)
    except FileNotFoundError:
        os.makedirs(path, mode=mode, exist_ok=True)
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        os.makedirs(path, mode=mode, exist_ok=True)  # FileExistsError, as before
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
