"""`-o FILE` of save and export, checked and written as docker does.

docker refuses an output path that exists and is not a regular file (a device
such as /dev/null, a directory, a FIFO, a socket, a symbolic link): renaming a
finished temp file over it would replace the node itself.  A regular file is
replaced only through a private temp file beside it (O_EXCL, random name, mode
0600 until done), so a planted symlink cannot redirect the write, and a
failure leaves the old file as it was and no partial archive.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from lamina.errors import LaminaError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device file"),
    (stat.S_ISBLK, "a block device file"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link directly"),
)


class OutputPathError(LaminaError):
    """An output path docker would refuse (the message is docker's)."""


def check_output_path(path: str, failed: str) -> None:
    """`failed` is docker's prefix, e.g. "failed to save image"."""
    parent = os.path.dirname(path)
    if parent:
        try:
            os.stat(parent)
        except OSError as e:
            raise OutputPathError(f"{failed}: invalid output path: stat {parent}: {_reason(e)}") from None
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise OutputPathError(f"{failed}: invalid output path: lstat {path}: {_reason(e)}") from None
    for test, kind in _KINDS:
        if test(mode):
            raise OutputPathError(f"{failed}: cannot write to {kind}")


@contextmanager
def output_file(path: str, failed: str) -> Iterator[BinaryIO]:
    """A file to write the output to; it becomes `path` when the block ends without error."""
    import tempfile

    check_output_path(path, failed)
    target = os.path.abspath(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.")
    except OSError as e:
        raise OutputPathError(f"{failed}: open {path}: {_reason(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _reason(e: OSError) -> str:
    return (e.strerror or str(e)).lower()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
