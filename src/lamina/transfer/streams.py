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

TYPE_CHECKING = False  # typing only for annotations: push and pull start without it
if TYPE_CHECKING:
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


class InflatingPipe(Pipe):
    """A Pipe fed a layer blob's bytes as they download, whose reader gets them inflated
    when they are gzip (anything else passes as it is, for the reader's decoder).

    Why: unpacking a streamed layer is inflate + hash + write files on one thread, while
    the download thread (receive, hash, write the blob) waits on a full pipe most of the
    time.  Inflating on the producer's side balances the two without a third thread or a
    second hand-over.  It decodes as archive/compression.py's reader does: members read
    one after the other, zero padding after a member skipped, CRC and length checked, at
    most CHUNK bytes of output per step (a decompression bomb costs time, never memory);
    bad data reaches the reader as that reader's InvalidArchive, a stream cut short as
    MalformedTar."""

    HEAD = 6  # bytes needed to tell the format (compression.sniff)

    def __init__(self, max_chunks: int = 16) -> None:
        super().__init__(max_chunks)
        self.fed = 0             # bytes handed in so far (the blob's progress)
        self._head = b""         # the first bytes, until the format is known
        self._gzip: bool | None = None
        self._member = None      # the gzip member being inflated (None: between members)
        self._errors: tuple = ()
        self._failed = False

    def put(self, data: bytes) -> None:
        if self.cancelled:
            raise Cancelled()
        if self._failed or not data:
            return
        self.fed += len(data)
        if self._gzip is None:
            self._head += data
            if len(self._head) < self.HEAD:
                return
            data, self._head = self._head, b""
            self._decide(data)
        if not self._gzip:
            super().put(data)
            return
        try:
            self._inflate(data)
        except self._errors as e:
            self._fail(e)

    def finish(self, error: BaseException | None = None) -> None:
        if error is None and not self._failed:
            try:
                if self._gzip is None and self._head:  # fewer bytes than a head: decide on what there is
                    data, self._head = self._head, b""
                    self._decide(data)
                    if self._gzip:
                        self._inflate(data)
                    else:
                        super().put(data)
                if self._gzip and self._member is not None and not self._member.eof:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            except Cancelled:
                return
            except self._errors as e:
                self._fail(e)
                return
        if not self._failed:
            super().finish(error)

    def _decide(self, head: bytes) -> None:
        import zlib

        from lamina.archive.compression import sniff

        self._gzip = sniff(head) == "gzip"
        self._errors = (zlib.error, EOFError)
        try:
            from isal import isal_zlib  # ISA-L when installed (lamina[fast]), as compression._gunzip
        except ImportError:
            self._decompressobj = zlib.decompressobj
        else:
            self._decompressobj = isal_zlib.decompressobj
            self._errors += (isal_zlib.error,)

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._member is None:
                data = data.lstrip(b"\0")  # padding after a member, as gzip.GzipFile skips it
                if not data:
                    return
                self._member = self._decompressobj(wbits=31)  # 31: a gzip header and trailer
            member = self._member
            while True:
                out = member.decompress(data, CHUNK)
                super().put(out)
                data = member.unconsumed_tail
                if member.eof or (not data and len(out) < CHUNK):
                    break
            if member.eof:
                data, self._member = member.unused_data, None

    def _fail(self, e: BaseException) -> None:
        from lamina.archive.tarformat import GO_UNEXPECTED_EOF, MalformedTar
        from lamina.errors import InvalidArchive

        message = f"layer is not valid gzip data (truncated or corrupt): {e}"
        self._failed = True
        super().finish(MalformedTar(message, GO_UNEXPECTED_EOF) if isinstance(e, EOFError)
                       else InvalidArchive(message))
