"""A COPY's layer tar, written while the files are copied (one read of each source).

Used when a COPY goes into a directory no lower layer has (copystep's "fresh"
directory): the step's upper dir then holds only the parents overlay copied up
plus what the COPY writes, so the layer is exactly "the upper dir as it stands
before the copy" followed by every entry as the Writer creates it.  Headers
follow archive.layertar's conventions (names without `./`, directories with a
trailing `/`, numeric owners, whole-second mtimes, PAX via tarwriter), so the
result is the layer `write_layer_from_upper` would have produced, without
reading 280 MB back from disk.
"""

from __future__ import annotations

import os
import stat
import threading

from lamina.archive import whiteout as wh
from lamina.archive.tarwriter import BLK, CHR, DIR, FIFO, LNK, REG, SYM, TarOut, encode_header


class TarTee(TarOut):
    def __init__(self, out, root: str) -> None:
        super().__init__(out)     # out: a blob writer (hashes what it is given)
        self.root = root          # the upper dir; archive names are relative to it
        self._made: list[tuple[str, int, int]] = []  # dirs archived, with the times written
        self.found: list[str] = []  # the dirs the upper dir held before the copy (made by overlay)
        self.unpacked = 0           # what the layer's files weigh (snapshot/overlay.py's _tree_size)

    def arc(self, host_path: str) -> str:
        return host_path[len(self.root) + 1:]

    # ------------------------------------------------------------------ entries
    def existing(self) -> bool:
        """Archive what the upper dir holds now (directories only, parents first);
        False if it holds anything else, and the caller must not use the tee."""
        entries = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort(key=os.fsencode)
            if filenames:
                return False
            for name in dirnames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode) or wh.get_xattr(path, wh.CAPABILITY_XATTR) is not None:
                    return False
                entries.append((path, st))
        entries.sort(key=lambda e: os.fsencode(self.arc(e[0])))
        for path, st in entries:
            self.directory(path, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
        self.found = [path for path, _ in entries]
        return True

    def directory(self, path: str, mode: int, uid: int, gid: int, mtime_ns: int) -> None:
        """A directory header, written before its content: its mtime is put back by
        restore_times() once the copy is done, so disk and tar agree."""
        st = os.lstat(path)
        self._made.append((path, st.st_atime_ns, mtime_ns))
        arc = self.arc(path)
        self.write(encode_header(arc + "/", DIR, stat.S_IFDIR | stat.S_IMODE(mode), uid, gid, 0,
                                 mtime_ns // 10**9))
        if wh.is_opaque(path):  # a dir overlay made opaque over a deleted lower one
            self.write(encode_header(arc + "/" + wh.OPAQUE, REG, stat.S_IMODE(mode) & 0o777, uid, gid, 0, 0))

    def restore_times(self) -> None:
        for path, atime_ns, mtime_ns in reversed(self._made):
            os.utime(path, ns=(atime_ns, mtime_ns), follow_symlinks=False)

    def _reg_header(self, path: str, bits: int, uid: int, gid: int, size: int, mtime_ns: int) -> bytes:
        self.unpacked += size
        return encode_header(self.arc(path), REG, stat.S_IFREG | bits, uid, gid, size, mtime_ns // 10**9)

    def file_header(self, path: str, bits: int, uid: int, gid: int, size: int, mtime_ns: int) -> None:
        self.write(self._reg_header(path, bits, uid, gid, size, mtime_ns))

    def small_file(self, path: str, bits: int, uid: int, gid: int, mtime_ns: int, data: bytes) -> None:
        """Header, data and padding of a file read in one piece, in one append (a COPY of
        many small files spends its time in per-call overhead)."""
        size = len(data)
        buf = self.buf
        buf += self._reg_header(path, bits, uid, gid, size, mtime_ns)
        buf += data
        buf += bytes(-size % 512)
        if len(buf) >= self.FLUSH:
            self.flush()

    def data(self, chunk: bytes) -> None:
        if len(chunk) >= self.FLUSH:
            self.flush()
            self.out.write(chunk)
        else:
            self.write(chunk)

    def pad(self, size: int) -> None:
        self.write(bytes(-size % 512))

    def symlink(self, path: str, target: str, uid: int, gid: int, mtime_ns: int) -> None:
        self.unpacked += len(os.fsencode(target))  # a link's lstat size
        self.write(encode_header(self.arc(path), SYM, stat.S_IFLNK | 0o777, uid, gid, 0, mtime_ns // 10**9,
                                 target))

    def hardlink(self, path: str, first: str, st: os.stat_result) -> None:
        """Another name of the file archived as `first` (layertar's type `1` entry)."""
        st = os.lstat(first)
        self.unpacked += st.st_size  # every name counts (os.walk lists each)
        self.write(encode_header(self.arc(path), LNK, st.st_mode, st.st_uid, st.st_gid, 0,
                                 st.st_mtime_ns // 10**9, self.arc(first)))

    def node(self, path: str, st: os.stat_result, bits: int, uid: int, gid: int) -> None:
        mode = st.st_mode
        kind = CHR if stat.S_ISCHR(mode) else BLK if stat.S_ISBLK(mode) else FIFO
        major = os.major(st.st_rdev) if kind != FIFO else 0
        minor = os.minor(st.st_rdev) if kind != FIFO else 0
        self.write(encode_header(self.arc(path), kind, stat.S_IFMT(mode) | bits, uid, gid, 0,
                                 st.st_mtime_ns // 10**9, "", major, minor))


class Behind:
    """A writer that writes to `out` on a thread of its own: the layer blob's sha256 and
    its file writes (both release the GIL) run beside the copy instead of after each
    file's.  One thread, in order: the blob is the same bytes.  Use as a context
    manager; `close()` waits for the last write and raises what the thread met."""

    def __init__(self, out) -> None:
        from lamina.transfer.streams import Pipe

        self.out = out
        self.pipe = Pipe(8)  # a few flushes ahead: the writer keeps up, memory stays small
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="lamina-layer-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while chunk := self.pipe.read():
                self.out.write(chunk)
        except BaseException as e:  # noqa: BLE001 - handed to the writing thread
            self.error = e
            self.pipe.close()  # the next put raises Cancelled

    def write(self, data) -> None:
        from lamina.transfer.streams import Cancelled

        try:
            self.pipe.put(data)
        except Cancelled:
            raise self.error or OSError("layer writer stopped") from None

    def close(self) -> None:
        self.pipe.finish()
        self.thread.join()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> "Behind":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # stopped before the blob can be aborted under it (what is queued is dropped)
        self.pipe.close()
        self.pipe.finish()
        self.thread.join()
