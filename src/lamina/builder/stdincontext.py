"""`-` contexts: a context tar (any compression) or a bare Dockerfile on stdin.

The tar is unpacked into the store's tmp dir as `build-<pid>-…`, which recovery
removes if we die; the caller removes it when the build ends.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from lamina.errors import BuildError


def context_from_stream(stream: BinaryIO, tmp_dir: str) -> tuple[str, str | None]:
    """Unpack a context tar (any compression) or take a bare Dockerfile from `stream`.

    Returns (directory, dockerfile_text or None).  The directory lives in the store's
    tmp dir as `build-<pid>-…`; the caller removes it."""
    import tempfile

    from lamina.archive.compression import open_stream

    work = tempfile.mkdtemp(dir=tmp_dir, prefix=f"build-{os.getpid()}-")
    raw = open_stream(stream)
    head = raw.read(512)
    if len(head) == 512 and is_tar_header(head):
        from lamina.archive.extract import apply_layer

        apply_layer(_Rewound(head, raw), work, overlay_whiteouts=False)
        return work, None
    rest = raw.read(4 << 20)
    if raw.read(1):
        raise BuildError("Dockerfile from stdin is larger than 4 MiB")
    try:
        return work, (head + rest).decode("utf-8")
    except UnicodeDecodeError:
        raise BuildError("stdin is neither a tar archive nor a UTF-8 Dockerfile") from None


def is_tar_header(block: bytes) -> bool:
    """A ustar/gnu magic, or a valid header checksum (v7 tars)."""
    if block[257:262] == b"ustar":
        return True
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


class _Rewound:
    def __init__(self, head: bytes, f: BinaryIO) -> None:
        self._head = head
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._f.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._f.read(n)
