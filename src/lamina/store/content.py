"""Content-addressed blobs: `blobs/sha256/<hex>`.

A blob is written to `ingest/` while it is hashed, fsync'd, verified against
the digest and size it claims, and only then renamed into place, so a blob is
never visible half-written and always hashes to its name.  Putting a blob that
exists is a no-op ("content is stored at DIGEST", not "because of this call").
"""

from __future__ import annotations

import os

from lamina.digest import CHUNK, Digest, VerifyingReader
from lamina.errors import DigestMismatch, NotFound, StoreError
from lamina.leanjson import MAX_DOCUMENT

_WRITEBACK_STEP = 16 << 20  # a big blob's writeback started every 16 MiB (lamina/writeback.py)

TYPE_CHECKING = False  # hashlib (OpenSSL) and typing only where used: reading a blob needs neither
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator


def _make_temp(directory: str, prefix: str) -> tuple[int, str]:
    """tempfile.mkstemp(dir=directory, prefix=prefix): a new 0600 file, opened exclusively.
    tempfile imports shutil, random and re: milliseconds of a push or pull that writes one blob."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        path = os.path.join(directory, prefix + os.urandom(6).hex())
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no usable temporary file name in {directory}")


class BlobWriter:
    """A blob being ingested.  Use as a context manager; `commit()` publishes it."""

    def __init__(self, store: "ContentStore", expected: Digest | None, expected_size: int | None) -> None:
        self._store = store
        self._expected = expected
        self._expected_size = expected_size
        import hashlib

        fd, self._tmp = _make_temp(store.ingest_dir, f"blob-{os.getpid()}-")
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self._flushed = 0  # bytes whose writeback was started
        self.digest: Digest | None = None

    def write(self, data: bytes) -> int:
        if self._expected_size is not None and self.size + len(data) > self._expected_size:
            raise DigestMismatch(
                f"blob {self._expected or '(unknown)'} is larger than its declared size {self._expected_size}"
            )
        self._hash.update(data)
        self.size += len(data)
        written = self._file.write(data)
        if self.size - self._flushed >= _WRITEBACK_STEP:
            from lamina import writeback

            self._file.flush()
            writeback.start(self._file.fileno(), self._flushed, self.size - self._flushed)  # commit's fsync finds it written
            self._flushed = self.size
        return written

    def flush(self) -> None:
        self._file.flush()

    def verify(self) -> Digest:
        """The digest of what was written, checked against the expected digest and size
        (commit() checks it first; a caller may check before, to act on verified bytes
        while the blob is made durable)."""
        digest = Digest.from_hex(self._hash.hexdigest())
        if self._expected is not None and digest != self._expected:
            raise DigestMismatch(f"blob {self._expected}: content hashes to {digest}")
        if self._expected_size is not None and self.size != self._expected_size:
            raise DigestMismatch(f"blob {digest}: size {self.size}, expected {self._expected_size}")
        return digest

    def commit(self) -> Digest:
        digest = self.verify()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._store.protect(digest)
        # the verified copy replaces a stored one, which may have rotted on disk
        final = self._store.path(digest)
        os.chmod(self._tmp, 0o444)
        os.replace(self._tmp, final)
        _fsync_dir(os.path.dirname(final))
        self.digest = digest
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.digest is None:
            self.abort()


def corrupted(digest: Digest, why: str) -> DigestMismatch:
    """The error for a stored blob that no longer holds what its name says."""
    return DigestMismatch(f"blob {digest} is corrupted in the store ({why}); run `lamina system check`")


from lamina.store.dirs import private_dir  # noqa: E402,F401 - its old home; importers may use either


class ContentStore:
    def __init__(self, root: str) -> None:
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        self.ingest_dir = os.path.join(root, "ingest")
        private_dir(os.path.dirname(self.blob_dir))
        private_dir(self.blob_dir)
        private_dir(self.ingest_dir)
        self.leases = None  # the System's Leases: what a writer touches is protected from sweeps

    def protect(self, digest: Digest) -> None:
        if self.leases is not None:
            self.leases.protect("blob", str(digest))

    def path(self, digest: Digest) -> str:
        return os.path.join(self.blob_dir, digest.hex)

    def has(self, digest: Digest) -> bool:
        """Is the blob stored?  Under a lease, it stays stored while the lease lasts."""
        self.protect(digest)
        return os.path.exists(self.path(digest))

    def size(self, digest: Digest) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the store") from None

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the store") from None

    def open_verified(self, digest: Digest) -> VerifyingReader:
        """Open a blob for passing on (save, push): reading it to the end raises
        DigestMismatch if it no longer hashes to its name."""
        return VerifyingReader(self.open(digest), digest,
                               lambda actual: corrupted(digest, f"its content hashes to {actual}"))

    def read(self, digest: Digest, limit: int = MAX_DOCUMENT) -> bytes:
        """Read a small document blob and verify it still hashes to its name."""
        with self.open(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise StoreError(f"blob {digest} is larger than {limit} bytes")
        if Digest.of_bytes(data) != digest:
            raise corrupted(digest, f"its content hashes to {Digest.of_bytes(data)}")
        return data

    def writer(self, expected: Digest | None = None, size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected, size)

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        digest = Digest.of_bytes(data)
        if expected is not None and digest != expected:
            raise DigestMismatch(f"blob {expected}: content hashes to {digest}")
        with self.writer(digest, len(data)) as w:  # even when stored: see BlobWriter.commit
            w.write(data)
            return w.commit()

    def put_stream(self, stream: BinaryIO, expected: Digest | None = None, size: int | None = None) -> Digest:
        with self.writer(expected, size) as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
            return w.commit()

    def delete(self, digest: Digest) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def walk(self) -> Iterator[Digest]:
        for name in os.listdir(self.blob_dir):
            try:
                yield Digest.from_hex(name)
            except Exception:  # a stray file is reported by `system check`, not here
                continue

    def verify(self, digest: Digest) -> bool:
        import hashlib

        h = hashlib.sha256()
        with self.open(digest) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest() == digest.hex


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
