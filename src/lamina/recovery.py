"""Crash recovery: what a killed lamina process may leave behind, and its removal.

Every temporary name carries the pid of its maker (`blob-<pid>-…`,
`import-<pid>-…`), and half-made layers carry it in their row, so a later
process can tell abandoned work from work still in progress.
"""

from __future__ import annotations

import os
import shutil

from lamina.store.db import pid_alive


def _owner(name: str) -> int | None:
    parts = name.split("-")
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


def abandoned_temp_files(system) -> list[str]:
    out = []
    for d in (system.content.ingest_dir, system.tmp_dir):
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:
            pid = _owner(name)
            if pid is None or not pid_alive(pid):
                out.append(os.path.join(d, name))
    return out


def recover(system) -> int:
    """Remove abandoned temp files and half-unpacked layers; returns how many."""
    n = system.layers.cleanup_incomplete()
    for path in abandoned_temp_files(system):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        n += 1
    return n
