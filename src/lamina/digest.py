"""Digests: the validated `sha256:<hex>` value and hashing while streaming."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from lamina.errors import InvalidDigest

_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """`sha256:` + 64 lowercase hex.  Validated on construction, so a Digest is
    always safe to use as a file name or in a URL (CVE-2024-3727)."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _SHA256.match(self.value):
            raise InvalidDigest(f"invalid digest {self.value!r}: want sha256:<64 lowercase hex>")

    @classmethod
    def parse(cls, text: str) -> "Digest":
        return cls(text)

    @classmethod
    def of_bytes(cls, data: bytes) -> "Digest":
        return cls("sha256:" + hashlib.sha256(data).hexdigest())

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


class HashingReader:
    """Wraps a readable stream and hashes what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
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
