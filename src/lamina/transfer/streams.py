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
import zlib
from collections import deque
from typing import BinaryIO

from lamina.errors import InvalidArchive

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
            data, self._rest = bytes(self._rest), memoryview(b"")
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
    """`source` decompressed on a worker thread when it is gzip or zstd (by magic);
    anything else passes through for the layer reader to handle."""
    pipe = Pipe()

    def run() -> None:
        try:
            head = source.read(CHUNK)
            decoder = _decoder(head)
            data = head
            while data:
                out = decoder(data)
                if out:
                    pipe.put(out)
                data = source.read(CHUNK)
            tail = decoder(None)
            if tail:
                pipe.put(tail)
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


def _decoder(head: bytes):
    if head.startswith(b"\x1f\x8b"):
        return _GzipDecoder()
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            import zstandard
        except ImportError:
            return _identity
        return _ZstdDecoder(zstandard)
    return _identity


def _identity(data: bytes | None) -> bytes:
    return data or b""


class _GzipDecoder:
    """gzip, including concatenated members (pigz, parallel writers)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(31)

    def __call__(self, data: bytes | None) -> bytes:
        if data is None:
            if not self._d.eof:
                raise InvalidArchive("layer is not valid gzip data (truncated)")
            return b""
        out = []
        try:
            while data:
                out.append(self._d.decompress(data))
                if not self._d.eof:
                    break
                data = self._d.unused_data
                if data:
                    self._d = zlib.decompressobj(31)
        except zlib.error as e:
            raise InvalidArchive(f"layer is not valid gzip data (corrupt): {e}") from None
        return b"".join(out)


class _ZstdDecoder:
    def __init__(self, zstandard) -> None:
        self._z = zstandard
        self._d = zstandard.ZstdDecompressor().decompressobj()

    def __call__(self, data: bytes | None) -> bytes:
        if data is None:
            return b""
        out = []
        try:
            while data:
                out.append(self._d.decompress(data))
                data = self._d.unused_data if self._d.eof else b""
                if data:
                    self._d = self._z.ZstdDecompressor().decompressobj()
        except self._z.ZstdError as e:
            raise InvalidArchive(f"layer is not valid zstd data (corrupt): {e}") from None
        return b"".join(out)
