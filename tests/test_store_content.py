"""Content store: verified, atomic, idempotent."""

import io
import os

import pytest

from lamina.digest import Digest, chain_ids
from lamina.errors import DigestMismatch, InvalidDigest
from lamina.store.content import ContentStore


def test_put_and_read_roundtrip(tmp_path):
    cs = ContentStore(str(tmp_path))
    d = cs.put_bytes(b"hello")
    assert d == Digest.of_bytes(b"hello")
    assert cs.read(d) == b"hello"
    assert cs.put_bytes(b"hello") == d  # idempotent
    assert os.listdir(cs.ingest_dir) == []


def test_wrong_digest_leaves_nothing(tmp_path):
    cs = ContentStore(str(tmp_path))
    wrong = Digest.of_bytes(b"other")
    with pytest.raises(DigestMismatch):
        cs.put_stream(io.BytesIO(b"hello"), expected=wrong)
    assert not cs.has(wrong)
    assert list(cs.walk()) == []
    assert os.listdir(cs.ingest_dir) == []


def test_size_cap_stops_endless_stream(tmp_path):
    cs = ContentStore(str(tmp_path))

    class Endless(io.RawIOBase):
        def read(self, n=-1):
            return b"x" * 65536

    with pytest.raises(DigestMismatch, match="larger than its declared size"):
        cs.put_stream(Endless(), expected=Digest.of_bytes(b"x"), size=10)
    assert os.listdir(cs.ingest_dir) == []


def test_corruption_detected_on_read(tmp_path):
    cs = ContentStore(str(tmp_path))
    d = cs.put_bytes(b"{}")
    os.chmod(cs.path(d), 0o644)
    with open(cs.path(d), "wb") as f:
        f.write(b"{ }")
    with pytest.raises(DigestMismatch):
        cs.read(d)
    assert not cs.verify(d)


@pytest.mark.parametrize("bad", ["sha256:../../x", "sha256:ABC", "md5:abc", "sha256:" + "a" * 63, ""])
def test_digest_validation(bad):
    with pytest.raises(InvalidDigest):
        Digest(bad)


def test_chain_ids_match_docker():
    # Values computed by Docker's layer store for two layers (formats-api A3 recipe).
    a = Digest("sha256:" + "1" * 64)
    b = Digest("sha256:" + "2" * 64)
    ids = chain_ids([a, b])
    assert ids[0] == a
    assert ids[1] == Digest.of_bytes(f"{a} {b}".encode())
