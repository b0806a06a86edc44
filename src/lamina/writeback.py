"""Start writing a file's dirty pages to disk now, without waiting for them
(sync_file_range with SYNC_FILE_RANGE_WRITE).

A layer or blob is made durable at its end (fsync, syncfs) before anything records
it.  Left alone, the kernel starts writing back only once dirty pages pass
dirty_background_ratio (GBs on a big host), so that final flush writes the whole
layer while nothing else happens.  Started as the data is written, the disk works
while extraction goes on, and the final flush finds little left.  Advisory only:
durability still comes from the fsync/syncfs that follows, so errors are ignored.
"""

from __future__ import annotations

_SYNC_FILE_RANGE_WRITE = 2
_call = None


def start(fd: int, offset: int = 0, nbytes: int = 0) -> bool:
    """Queue the writeback of bytes [offset, offset+nbytes) of fd (0: to the end);
    whether the kernel took it (a pipe, say, is refused)."""
    global _call
    if _call is None:
        from lamina import libc

        _call = libc.function("sync_file_range", libc.Int, libc.ULong, libc.ULong, libc.Int)
    return _call(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE) == 0
