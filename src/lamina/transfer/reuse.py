"""A load member that is probably a blob the store has: checked, not written again.

`docker load` of an image it has is fast; rewriting (and fsyncing) hundreds of
megabytes we hold already is most of lamina's cost there.  `ReusingWriter`
takes the member's chunks in place of a BlobWriter: it hashes them and
compares them with the stored candidate blob as they come, and writes
nothing while they match.  At the end the candidate is reused only when the
bytes hashed to its name (the name alone is never trusted, and a stored blob
that rotted is not reused).  The guess may be wrong (the member differs, or
the stored blob does): the bytes read so far are then exactly the candidate's
first bytes, so they are copied from it into a real BlobWriter and the member
goes on as an ordinary blob.  Nothing is lost on a stream that cannot be
read twice (stdin).
"""

from __future__ import annotations

import hashlib

from lamina.digest import CHUNK, Digest


class ReusingWriter:
    """BlobWriter's write/commit/abort, writing only where the member is not `candidate`."""

    def __init__(self, content, candidate: Digest) -> None:
        self._content = content
        self._candidate = candidate
        self._stored = content.open(candidate)  # this inode stays ours even if the blob is replaced
        self._hash = hashlib.sha256()
        self._writer = None  # a BlobWriter once the guess proved wrong
        self.size = 0
        self.digest: Digest | None = None

    @property
    def reused(self) -> bool:
        return self._writer is None and self.digest is not None

    def write(self, data: bytes) -> int:
        if self._writer is not None:
            return self._writer.write(data)
        self._hash.update(data)
        if self._stored.read(len(data)) != data:
            self._diverge()
            return self._writer.write(data)
        self.size += len(data)
        return len(data)

    def _diverge(self) -> None:
        """The member is not the candidate: write what matched so far from the stored copy."""
        w = self._writer = self._content.writer()
        try:
            self._stored.seek(0)
            left = self.size
            while left:
                chunk = self._stored.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"blob {self._candidate} shrank while it was read")
                w.write(chunk)
                left -= len(chunk)
        finally:
            self._stored.close()

    def commit(self) -> Digest:
        if self._writer is None:
            digest = Digest.from_hex(self._hash.hexdigest())
            if digest == self._candidate and not self._stored.read(1) and self._content.has(digest):
                self._stored.close()
                self.digest = digest
                return digest
            self._diverge()  # same bytes as the stored file, but not its name: store them as any member
        self.digest = self._writer.commit()
        return self.digest

    def abort(self) -> None:
        if not self._stored.closed:
            self._stored.close()
        if self._writer is not None:
            self._writer.abort()
