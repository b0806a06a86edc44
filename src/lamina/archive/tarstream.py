"""A forward-only stream that `tarfile` reads in its seekable mode ("r", not "r|").

Why: tarfile's stream mode wraps the source in its `_Stream`, which reads 10 KiB
at a time and re-joins and re-slices its buffer on every read, so each byte of
a layer was copied three or four times in Python-level loops (a third of a
`load`'s user time).  The seekable mode only needs read, tell and a seek that
never goes back (tarfile seeks to the next header, which is always ahead:
every header and data read is sequential), so this reader gives it that over
any stream: 1 MiB reads from the source and one copy per byte served.
Seeking backwards is refused, as `_Stream` does.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

CHUNK = 1 << 20


class ForwardReader:
    def __init__(self, source: BinaryIO, chunk: int = CHUNK) -> None:
        self._source = source
        self._chunk = chunk
        self._buf = b""   # the last chunk read from the source…
        self._at = 0      # …served up to here
        self._pos = 0     # stream offset of what is served next

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        """Exactly n bytes, fewer only at the end of the source (tarfile relies on it)."""
        if n is None or n < 0:
            parts = [self._buf[self._at:]]
            self._buf, self._at = b"", 0
            while data := self._source.read(self._chunk):
                parts.append(data)
            out = b"".join(parts)
        elif len(self._buf) - self._at >= n:
            if self._at == 0 and n == len(self._buf):
                out = self._buf  # the whole chunk: no copy
            else:
                out = self._buf[self._at:self._at + n]
            self._at += n
        else:
            out = self._fill(n)
        self._pos += len(out)
        return out

    def read_some(self, n: int) -> bytes:
        """Up to n bytes (at least one unless the source has ended): what is buffered,
        else the source's next chunk, handed on without a copy when it fits."""
        if self._at >= len(self._buf):
            self._buf, self._at = self._source.read(self._chunk), 0
        if self._at == 0 and n >= len(self._buf):
            out, self._buf = self._buf, b""
        else:
            out = self._buf[self._at:self._at + n]
            self._at += len(out)
        self._pos += len(out)
        return out

    def _fill(self, n: int) -> bytes:
        """n bytes across the buffer's end and further source reads."""
        parts = [self._buf[self._at:]] if self._at < len(self._buf) else []
        got = len(self._buf) - self._at
        self._buf, self._at = b"", 0
        while got < n:
            data = self._source.read(max(self._chunk, n - got))
            if not data:
                break
            need = n - got
            if len(data) > need:
                parts.append(data[:need])
                self._buf, self._at = data, need
                got = n
            else:
                parts.append(data)
                got += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise tarfile.StreamError("seeking backwards is not allowed")
        skip = pos - self._pos
        while skip:
            got = len(self.read(min(skip, self._chunk)))
            if not got:
                break  # the end of the source: the next read finds nothing
            skip -= got
        return self._pos

    def member(self, size: int) -> "MemberReader":
        """The next `size` bytes (a member's data) as a stream of their own."""
        return MemberReader(self, size)


class MemberReader:
    """Reads at most `size` bytes of a ForwardReader: one archive member's data."""

    def __init__(self, reader: ForwardReader, size: int) -> None:
        self._reader = reader
        self._left = size

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes (b"" at the member's end); a stream that ends before is a ReadError."""
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._reader.read_some(n) if n else b""
        if n and not data:
            raise tarfile.ReadError("unexpected end of data")  # as tarfile's own member reader
        self._left -= len(data)
        return data


def open_tar(source: BinaryIO, tarinfo: type[tarfile.TarInfo]) -> tarfile.TarFile:
    """A tar stream opened for reading one member after the other (as mode "r|"
    allows); `fileobj` of the result is the ForwardReader."""
    return tarfile.TarFile(fileobj=ForwardReader(source), mode="r", tarinfo=tarinfo)
