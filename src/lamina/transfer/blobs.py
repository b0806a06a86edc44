"""Writing a blob that came from outside into the content store, verified.

The bytes go to an ingest file while they are hashed; the blob becomes
visible only when its size and digest match the descriptor (and, when asked,
the sha256 of its decompressed content matches the layer's diff_id).  On any
failure the ingest file is removed: nothing partial is ever visible.
"""

from __future__ import annotations


from lamina import oci
from lamina.digest import CHUNK, Digest
from lamina.errors import DigestMismatch, LaminaError
from lamina.store.content import ContentStore
from lamina.digest import TeeReader
from lamina.transfer.progress import CountingReader

TYPE_CHECKING = False  # typing only for annotations: push and pull start without it
if TYPE_CHECKING:
    from typing import BinaryIO, Callable


def store_blob(content: ContentStore, reader: BinaryIO, desc: oci.Descriptor, *,
               diff_id: Digest | None = None, on_bytes: Callable[[int], None] | None = None,
               tee=None) -> int | None:
    """Copy `reader` into the store as blob `desc`.  With `diff_id`, also check the
    decompressed content; returns its size then.  `tee` (a Pipe) gets every byte
    too, for a layer unpacked while it downloads (a Pipe is finished once the bytes
    are verified, before the blob is made durable).  Raises DigestMismatch with a
    short reason ("digest mismatch …", "size mismatch …") for the caller to frame."""
    from lamina.transfer.streams import Pipe

    counted = CountingReader(reader, on_bytes)
    try:
        with content.writer(desc.digest, desc.size) as w:
            uncompressed = None
            if diff_id is None:
                while chunk := counted.read(CHUNK):
                    w.write(chunk)
                    if tee is not None:
                        tee.put(chunk)
            else:
                tee_reader = TeeReader(counted, w)
                uncompressed = _check_diff_id(tee_reader, diff_id)
                tee_reader.drain()  # bytes after the compressed stream still count for the digest
            if w.size != desc.size:
                raise DigestMismatch(f"size mismatch (got {w.size} bytes, expected {desc.size})")
            if isinstance(tee, Pipe):
                # the bytes are verified: the unpacker may finish (its layer is checked by
                # its own diff_id) while this thread makes the blob durable (an fsync of
                # the whole blob, which no longer delays the layer).  An EarlyUnpack's
                # finish() waits for its unpacker: it is finished after, as before.
                w.verify()
                tee.finish()
            w.commit()
            return uncompressed
    except DigestMismatch as e:
        msg = str(e)
        if "larger than its declared size" in msg:
            raise DigestMismatch(f"size mismatch (more than the {desc.size} bytes declared)") from None
        if "content hashes to" in msg:
            raise DigestMismatch(f"digest mismatch (content hashes to {msg.rsplit(' ', 1)[-1]})") from None
        raise


def _check_diff_id(stream: BinaryIO, diff_id: Digest) -> int:
    """Decompress (whatever the format) and hash; returns the uncompressed size."""
    import hashlib  # loads OpenSSL: only when a layer is checked (an up-to-date pull checks none)

    from lamina.archive.extract import open_layer_stream

    h = hashlib.sha256()
    size = 0
    try:
        plain = open_layer_stream(stream)
        while chunk := plain.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    except DigestMismatch:
        raise
    except (LaminaError, OSError, EOFError, ValueError) as e:
        raise DigestMismatch(f"layer content cannot be decompressed: {e}") from None
    got = Digest.from_hex(h.hexdigest())
    if got != diff_id:
        raise DigestMismatch(f"diff_id mismatch (uncompressed content hashes to {got}, config says {diff_id})")
    return size


def verify_stored_layer(content: ContentStore, digest: Digest, diff_id: Digest) -> int:
    """Check that a blob already in the store decompresses to `diff_id`."""
    with content.open(digest) as f:
        return _check_diff_id(f, diff_id)
