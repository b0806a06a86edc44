"""A layer unpacked while its bytes are still arriving: one pass instead of two.

`load` reads an archive as a stream and a layer member's diff_id is known only
once the config (later in a docker-save archive) has been read; `pull`
downloads up to three layers at once but the layer store makes them bottom-up.
Rather than store a blob and read it back to unpack it, the same chunks that
go to the blob's ingest file are handed (through a bounded Pipe) to a worker
thread that unpacks them into a private staging dir under the store's tmp/
(separate dirs: layers unpack in parallel, in any order).  The tree is
only a guess until it is checked: `take(diff_id)` hands it over when what was
unpacked hashes to the diff_id (for a plain tar the caller has checked the
blob's digest, which covers the very same bytes, so no second hash is made),
and the installer then moves it in as the layer (LayerStore.adopt).  A tree
that fails, is not a layer, or does not match is removed and never visible;
the layer is then unpacked from its verified blob as before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading

from typing import BinaryIO

from lamina.digest import CHUNK, Digest, HashingReader
from lamina.transfer.streams import Cancelled, Pipe

PIPE_CHUNKS = 16  # chunks (1 MiB each from the archive reader) held between reader and unpacker


class EarlyUnpack:
    def __init__(self, tmp_dir: str) -> None:
        self.plain = False
        self.head = b""
        self.dir: str | None = tempfile.mkdtemp(dir=tmp_dir, prefix=f"unpack-{os.getpid()}-")
        self.digest: Digest | None = None
        self.size = 0
        self.error: BaseException | None = None
        self._pipe: Pipe | None = None
        self._thread: threading.Thread | None = None
        self._inline = False

    def _start(self, head: bytes) -> None:
        self.plain = _is_plain(head)  # its blob digest is its diff_id: no second hash needed
        self._pipe = Pipe(PIPE_CHUNKS)
        self._thread = threading.Thread(target=self._run, name="lamina-early-unpack", daemon=True)
        self._thread.start()

    # -- producer (the archive reader, a download) --------------------------------------
    def put(self, chunk: bytes) -> None:
        if self._thread is None and chunk and self.error is None:
            self._start(chunk[:8])
        pipe = self._pipe
        if pipe is None:
            return
        try:
            pipe.put(chunk)
        except Cancelled:  # the unpacker gave up (not a layer) or was discarded: the blob is still written
            self._pipe = None

    def finish(self, error: BaseException | None = None) -> None:
        """No more bytes (`error`: the archive failed); waits for the unpacker."""
        if self._pipe is not None:
            self._pipe.finish(error)
        if self._thread is not None:
            self._thread.join()
        elif error is None:
            self.error = ValueError("no bytes")  # nothing was unpacked: not a layer

    @classmethod
    def inline(cls, tmp_dir: str, source: BinaryIO, sink) -> "EarlyUnpack":
        """Copy `source` to its end into `sink` (a blob writer) and unpack the same
        bytes on the way, in this thread: no hand-over between threads, which on a
        busy machine costs more than the overlap gains (each wait is a trip through
        the run queue).  An unpacking failure is recorded, not raised (the rest is
        still copied); a failure to read `source` or write `sink` is raised."""
        early = cls(tmp_dir)
        early._inline = True
        early._thread = threading.current_thread()  # started: take() may hand the tree over
        try:
            tee = _Tee(source, sink)
            early.head = tee.head() or b""
            early.plain = _is_plain(early.head)
            early._unpack(tee)
            tee.drain()
        except BaseException:
            early.discard()
            raise
        return early

    # -- consumer ---------------------------------------------------------------------
    def _run(self) -> None:
        pipe = self._pipe
        self._unpack(pipe)
        if self.error is not None:
            pipe.close()

    def _unpack(self, source) -> None:
        from lamina.archive.extract import apply_layer, open_layer_stream

        try:
            if self.plain:
                self.size = apply_layer(source, self.dir, overlay_whiteouts=True)
            else:
                stream = HashingReader(open_layer_stream(source))
                self.size = apply_layer(stream, self.dir, overlay_whiteouts=True)
                stream.drain()
                self.digest = stream.digest()
        except Exception as e:  # kept, not raised: the blob path decides what is wrong
            self.error = e

    # -- the result -------------------------------------------------------------------
    def take(self, diff_id: Digest, blob_digest: Digest) -> tuple[str, int] | None:
        """(staging dir, unpacked size) when the tree is the layer `diff_id`, else None.
        `blob_digest` is the verified digest of the bytes that were unpacked."""
        if self.error is not None or self.dir is None or self._thread is None:
            return None
        got = blob_digest if self.plain else self.digest
        if got != diff_id:
            return None
        tree, self.dir = self.dir, None
        return tree, self.size

    def discard(self) -> None:
        """Stop the unpacker (a producer still feeding it is told to stop) and remove
        the tree unless it was taken."""
        pipe = self._pipe
        if pipe is not None:
            pipe.close()
        if not self._inline:
            self.finish(Cancelled())
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _is_plain(head: bytes) -> bool:
    from lamina.archive.compression import sniff

    return sniff(head) == "tar"


class _Tee:
    """Reads `source` a chunk at a time, writes each chunk to `sink` as it is read,
    and serves it in whatever pieces the reader asks for (tarfile's are 10 KiB: the
    sink still sees 1 MiB writes)."""

    def __init__(self, source: BinaryIO, sink) -> None:
        self._source = source
        self._sink = sink
        self._buf = memoryview(b"")
        self._first: bytes | None = None

    def _fill(self) -> bool:
        data = self._source.read(CHUNK)
        if not data:
            return False
        self._sink.write(data)
        if self._first is None:
            self._first = data[:8]
        self._buf = memoryview(data)
        return True

    def head(self) -> bytes | None:
        if self._first is None and not self._buf:
            self._fill()
        return self._first

    def read(self, n: int = -1) -> bytes:
        if not self._buf and not self._fill():
            return b""
        if n is None or n < 0 or n >= len(self._buf):
            out, self._buf = self._buf, memoryview(b"")
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return bytes(out)

    def drain(self) -> None:
        """The rest of `source` into `sink` (what was served is in it already)."""
        self._buf = memoryview(b"")
        while self._fill():
            pass
