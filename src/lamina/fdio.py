"""Whole writes to a raw fd: os.write may take only part of the bytes (a pipe, a
tty, a signal), so every raw writer loops until all are taken."""

from __future__ import annotations

import os


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
