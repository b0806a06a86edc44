"""Digests: the validated `sha256:<hex>` value and hashing while streaming."""

from __future__ import annotations

from lamina.errors import InvalidDigest
from lamina.record import record

TYPE_CHECKING = False  # typing and hashlib (OpenSSL) are imported only where used: read verbs need neither
if TYPE_CHECKING:
    from typing import BinaryIO

_HEX = "0123456789abcdef"
CHUNK = 1 << 20


@record(order=True)
class Digest:
    """`sha256:` + 64 lowercase hex.  Validated on construction, so a Digest is
    always safe to use as a file name or in a URL (CVE-2024-3727)."""

    value: str

    def __post_init__(self) -> None:
        # sha256:<64 lowercase hex>; strip() leaves nothing iff every character is hex (no re: start-up cost)
        v = self.value
        if not isinstance(v, str) or len(v) != 71 or not v.startswith("sha256:") or v[7:].strip(_HEX):
            raise InvalidDigest(f"invalid digest {self.value!r}: want sha256:<64 lowercase hex>")

    @classmethod
    def parse(cls, text: str) -> "Digest":
        return cls(text)

    @classmethod
    def of_bytes(cls, data: bytes) -> "Digest":
        return cls("sha256:" + _sha256_hex(data))

    @classmethod
    def from_hex(cls, hexdigest: str) -> "Digest":
        return cls("sha256:" + hexdigest)

    @property
    def hex(self) -> str:
        return self.value[7:]

    @property
    def short(self) -> str:
        """The 12-hex short ID docker prints."""
        return self.value[7:19]

    def __str__(self) -> str:
        return self.value


def _sha256_hex(data: bytes) -> str:
    """Small documents (configs, manifests: what read verbs verify) hash with Python's
    own sha256, whose import is cheap; importing hashlib loads OpenSSL, milliseconds a
    read verb cannot spare.  Larger data gets OpenSSL's faster code."""
    if len(data) <= 1 << 16:
        try:
            from _sha256 import sha256  # CPython's builtin module (3.12 renamed it _sha2)
        except ImportError:
            try:
                from _sha2 import sha256
            except ImportError:
                from hashlib import sha256
    else:
        from hashlib import sha256
    return sha256(data).hexdigest()


class HashingReader:
    """Wraps a readable stream and hashes what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        import hashlib

        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, buf) -> int:  # lets tarfile / shutil use it efficiently
        n = self._raw.readinto(buf)
        if n:
            self._hash.update(memoryview(buf)[:n])
            self.size += n
        return n or 0

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def digest(self) -> Digest:
        return Digest.from_hex(self._hash.hexdigest())


class VerifyingReader(HashingReader):
    """A HashingReader that raises `mismatch(actual_digest)` at the end of the stream
    when the bytes do not hash to `expected`: a consumer that passes data on (save,
    push) learns of corruption before it can finish its output."""

    def __init__(self, raw: BinaryIO, expected: Digest, mismatch) -> None:
        super().__init__(raw)
        self.expected = expected
        self._mismatch = mismatch

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        if (not data and n != 0) or n is None or n < 0:
            self._check()
        return data

    def readinto(self, buf) -> int:
        n = super().readinto(buf)
        if not n:
            self._check()
        return n

    def _check(self) -> None:
        if self.digest() != self.expected:
            raise self._mismatch(self.digest())

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "VerifyingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TeeReader:
    """Reads from `raw` and copies every byte to `sink` (e.g. a blob writer, which
    hashes and stores it while another consumer, such as the layer extractor, reads)."""

    def __init__(self, raw: BinaryIO, sink) -> None:
        self._raw = raw
        self._sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._sink.write(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append(Digest.of_bytes(f"{out[-1]} {d}".encode()))
    return out


EMPTY_LAYER_DIFF_ID = Digest("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")
