"""Decompress a layer stream chosen by its magic bytes, never by what a manifest claims.

Everything is streamed and in-process (no external xz/gzip binaries, CVE-2014-9357).
Decoder failures (truncated or corrupt data) surface as InvalidArchive.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import BinaryIO

from lamina.archive.tarformat import GO_UNEXPECTED_EOF, MalformedTar
from lamina.errors import InvalidArchive

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_BUFFER = 1 << 20
_FILES = (io.BufferedReader, io.FileIO, io.BytesIO)  # whose readinto is the file's own


def sniff(head: bytes) -> str:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "tar"


class _Prefixed(io.RawIOBase):
    """`f` with the bytes already read for sniffing put back in front."""

    def __init__(self, head: bytes, f: BinaryIO) -> None:
        self._head = head
        self._f = f

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if isinstance(self._f, _FILES):  # straight into the buffer: a load's archive is read with one copy less
            return self._f.readinto(buf) or 0
        data = self._f.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n


class _Decoded(io.RawIOBase):
    """A decompressor's output; decoder errors become InvalidArchive."""

    _ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, ValueError, zlib.error, lzma.LZMAError)

    def __init__(self, inner, kind: str, errors: tuple[type[BaseException], ...] = ()) -> None:
        self._inner = inner
        self._kind = kind
        self._errors = self._ERRORS + errors

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        try:
            data = self._inner.read(len(buf))
        except self._errors as e:
            message = f"layer is not valid {self._kind} data (truncated or corrupt): {e}"
            if isinstance(e, EOFError):  # the compressed stream was cut short
                raise MalformedTar(message, GO_UNEXPECTED_EOF) from None
            raise InvalidArchive(message) from None
        n = len(data)
        buf[:n] = data
        return n


def _read_head(f: BinaryIO, size: int) -> bytes:
    head = b""
    while len(head) < size:
        chunk = f.read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _gunzip(source: BinaryIO):
    """A gzip reader: python-isal's igzip when installed (lamina[fast]; Intel's ISA-L
    inflates ~3x faster than zlib: a pull or load is bound by it), else the standard
    library's.  Both check the CRC and length, read concatenated members and raise
    EOFError for a stream cut short."""
    try:
        from isal import igzip, isal_zlib
    except ImportError:
        return gzip.GzipFile(fileobj=source, mode="rb"), ()
    return igzip.IGzipFile(fileobj=source, mode="rb"), (isal_zlib.error,)


def open_stream(f: BinaryIO) -> BinaryIO:
    head = _read_head(f, 6)
    kind = sniff(head)
    source = io.BufferedReader(_Prefixed(head, f), _BUFFER)
    if kind == "tar":
        return source
    extra: tuple[type[BaseException], ...] = ()
    if kind == "gzip":
        inner, extra = _gunzip(source)
    elif kind == "bzip2":
        inner = bz2.BZ2File(source, mode="rb")
    elif kind == "xz":
        inner = lzma.LZMAFile(source, mode="rb")
    else:
        try:
            import zstandard  # optional dependency: lamina[zstd]
        except ImportError:
            raise InvalidArchive(
                "layer is zstd-compressed but the optional 'zstandard' module is not installed "
                "(pip install 'lamina[zstd]')"
            ) from None
        # python-zstandard does not report a frame cut short; a truncated layer is then
        # caught by the tar reader (missing data or end-of-archive marker).
        inner = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True, closefd=False)
        extra = (zstandard.ZstdError,)
    return io.BufferedReader(_Decoded(inner, kind, extra), _BUFFER)
