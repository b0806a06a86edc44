"""Moving bytes between threads so download, inflate and unpack overlap.

Unpacking a layer is three kinds of work: network and hashing, inflating, and
writing files.  zlib, hashlib and socket reads release the GIL, so giving each
its own thread lets a 2-core machine run them side by side instead of one
after the other.  `Pipe` is a bounded hand-over between two threads (the
producer blocks when the consumer lags: memory stays bounded); `inflating`
turns a compressed stream into a plain one on a worker thread.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import BinaryIO


CHUNK = 1 << 20


class Cancelled(Exception):
    """The consumer went away; the producer should stop feeding."""


class Pipe:
    """A bounded queue of byte chunks with a file-like reading end."""

    def __init__(self, max_chunks: int = 16) -> None:
        self._chunks: deque[bytes] = deque()
        self._max = max_chunks
        self._cond = threading.Condition()
        self._done = False
        self._error: BaseException | None = None
        self._cancelled = False
        self._rest = memoryview(b"")

    # -- producer side -------------------------------------------------------------------
    def put(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            while len(self._chunks) >= self._max and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                raise Cancelled()
            self._chunks.append(bytes(data))
            self._cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._done = True
            self._error = error
            self._cond.notify_all()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    # -- consumer side -------------------------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        if not self._rest:
            with self._cond:
                while not self._chunks and not self._done:
                    self._cond.wait()
                if self._chunks:
                    self._rest = memoryview(self._chunks.popleft())
                    self._cond.notify_all()
                elif self._error is not None:
                    raise self._error
                else:
                    return b""
        if n is None or n < 0 or n >= len(self._rest):
            whole = len(self._rest) == len(self._rest.obj)  # a whole chunk is handed on as it is, no copy
            data, self._rest = self._rest.obj if whole else bytes(self._rest), memoryview(b"")
        else:
            data, self._rest = bytes(self._rest[:n]), self._rest[n:]
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def close(self) -> None:
        with self._cond:
            self._cancelled = True
            self._chunks.clear()
            self._cond.notify_all()

    def __enter__(self) -> "Pipe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def inflating(source: BinaryIO) -> BinaryIO:
    """`source` decompressed on a worker thread (gzip, zstd, bzip2 or xz, by magic;
    a plain tar passes through).  The layer decoders read in bounded pieces, so a
    decompression bomb costs time, never memory: the pipe holds a few chunks."""
    from lamina.archive.compression import open_stream

    pipe = Pipe()

    def run() -> None:
        try:
            plain = open_stream(source)
            while data := plain.read(CHUNK):
                pipe.put(data)
            pipe.finish()
        except Cancelled:
            pass
        except BaseException as e:  # handed to the reading thread, which raises it
            pipe.finish(e)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    threading.Thread(target=run, name="lamina-inflate", daemon=True).start()
    return pipe
