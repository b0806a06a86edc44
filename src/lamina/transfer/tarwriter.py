"""Writing a tar stream fast: headers from tarfile, file bodies copied by the kernel.

`save` writes hundreds of MB of blobs that already sit in the store as plain
files, so bodies go out with copy_file_range (regular file output) or sendfile
(pipes), never through Python buffers.  Headers are deterministic: mode
0644/0755, uid/gid 0, empty user names, mtime 0.  The archive ends with two
zero blocks and no record padding, as Go's archive/tar writes it.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile

BLOCK = 512
COPY_CHUNK = 1 << 30


class TarWriter:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        mode = os.fstat(fd).st_mode
        self._regular = stat.S_ISREG(mode)
        self._kernel_copy = True

    @property
    def seekable(self) -> bool:
        """Can a header be written after its body (sizes not known up front)?"""
        return self._regular

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    @staticmethod
    def _header_bytes(name: str, size: int, kind: bytes) -> bytes:
        ti = tarfile.TarInfo(name)
        ti.size = size
        ti.type = kind
        ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        ti.mtime = 0
        ti.uname = ti.gname = ""
        # GNU format: one 512-byte block per entry even past 8 GiB (base-256 size),
        # which lets file_stream patch a header in place; names here are short
        return ti.tobuf(tarfile.GNU_FORMAT)

    def _header(self, name: str, size: int, kind: bytes) -> None:
        self._write(self._header_bytes(name, size, kind))

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._write(b"\0" * (BLOCK - size % BLOCK))

    def directory(self, name: str) -> None:
        self._header(name.rstrip("/") + "/", 0, tarfile.DIRTYPE)

    def file_bytes(self, name: str, data: bytes) -> None:
        self._header(name, len(data), tarfile.REGTYPE)
        self._write(data)
        self._pad(len(data))

    def file_copy(self, name: str, path: str) -> int:
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            self._header(name, size, tarfile.REGTYPE)
            self._copy(src.fileno(), size)
        self._pad(size)
        return size

    def file_reader(self, name: str, reader, size: int) -> int:
        """A body of known size read from `reader`, which may raise at its end (a
        VerifyingReader finding the bytes it passed on corrupt)."""
        self._header(name, size, tarfile.REGTYPE)
        buf = bytearray(1 << 20)
        done = 0
        while n := reader.readinto(buf):
            if done + n > size:
                raise OSError(errno.EIO, f"{name} grew while being archived")
            self._write(memoryview(buf)[:n])
            done += n
        if done != size:
            raise OSError(errno.EIO, f"{name} shrank while being archived")
        self._pad(size)
        return size

    def file_stream(self, name: str, chunks) -> int:
        """A body of unknown size: the header is written last, in place (regular files only)."""
        if len(name) > 100:
            raise ValueError(f"name too long for a streamed entry: {name}")
        at = os.lseek(self._fd, 0, os.SEEK_CUR)
        self._write(bytes(BLOCK))
        size = 0
        for chunk in chunks:
            self._write(chunk)
            size += len(chunk)
        self._pad(size)
        header = self._header_bytes(name, size, tarfile.REGTYPE)
        assert len(header) == BLOCK
        os.pwrite(self._fd, header, at)
        return size

    def close(self) -> None:
        self._write(b"\0" * (2 * BLOCK))

    def _copy(self, src: int, size: int) -> None:
        offset = 0
        while offset < size and self._kernel_copy:
            n = min(COPY_CHUNK, size - offset)
            try:
                if self._regular:
                    done = os.copy_file_range(src, self._fd, n, offset)
                else:
                    done = os.sendfile(self._fd, src, offset, n)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
                    raise
                self._kernel_copy = False  # this pair of files cannot: copy the rest by hand
                break
            if done == 0:
                raise OSError(errno.EIO, "file shrank while being archived")
            offset += done
        os.lseek(src, offset, os.SEEK_SET)
        while offset < size:
            chunk = os.read(src, min(1 << 20, size - offset))
            if not chunk:
                raise OSError(errno.EIO, "file shrank while being archived")
            self._write(chunk)
            offset += len(chunk)
