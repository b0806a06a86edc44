"""A pulled layer inflated on its download thread (streams.InflatingPipe): the reader gets
what archive/compression.py's decoder gives for the same bytes, in bounded chunks, and the
same kinds of error; a pull of a layer whose blob is right but whose gzip is bad records
nothing."""

from __future__ import annotations

import gzip
import io
import os
import threading
import zlib

import pytest

from conftest import requires_root
from registry_fixtures import registry  # noqa: F401  (fixture)
from registry_fixtures import assert_store_ok, push_raw_image, tar_bytes
from test_transfer_early import without_isal

from lamina.archive.compression import open_stream
from lamina.archive.tarformat import MalformedTar
from lamina.errors import InvalidArchive, LaminaError
from lamina.transfer.load import load
from lamina.transfer.progress import QuietProgress
from lamina.transfer.streams import CHUNK, InflatingPipe

LAYER = tar_bytes({"data/random": os.urandom(3 << 20), "data/text": b"lamina layer text\n" * 100_000})
Z = gzip.compress(LAYER, 1, mtime=0)


@pytest.fixture(params=["isal", "zlib"])
def inflater(request, monkeypatch):
    """Both decoders: python-isal when installed, else (and also) the standard library's."""
    if request.param == "isal":
        pytest.importorskip("isal")
    else:
        without_isal(monkeypatch)
    return request.param


def through_pipe(data: bytes, piece: int) -> tuple[bytes, int]:
    """`data` fed in pieces by a producer thread (as a download feeds it); returns what
    the reader got and the largest chunk it was handed.  A reading error is raised."""
    pipe = InflatingPipe(4)

    def produce() -> None:
        for i in range(0, len(data), piece):
            pipe.put(data[i:i + piece])
        pipe.finish()

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    parts, biggest = [], 0
    try:
        while chunk := pipe.read():
            parts.append(chunk)
            biggest = max(biggest, len(chunk))
    finally:
        pipe.close()
        t.join(30)
    assert not t.is_alive()
    return b"".join(parts), biggest


def decoded(data: bytes) -> bytes:
    return open_stream(io.BytesIO(data)).read()


@pytest.mark.parametrize("piece", [1 << 20, 65536, 4093])
@pytest.mark.parametrize("blob", ["one", "members", "padded", "plain", "other"])
def test_reader_gets_what_the_decoder_gives(inflater, piece, blob):
    data = {"one": Z, "members": Z + gzip.compress(b"second member", 9, mtime=0) + Z,
            "padded": Z + b"\0" * 1000 + Z + b"\0" * 5, "plain": LAYER,
            "other": b"BZh9" + os.urandom(5000)}[blob]  # not gzip: passed as it is, for the reader's decoder
    got, _ = through_pipe(data, piece)
    assert got == (data if blob == "other" else decoded(data))


def test_a_stream_shorter_than_a_head_passes(inflater):
    assert through_pipe(b"ab", 1)[0] == b"ab"
    assert through_pipe(b"", 1)[0] == b""


def test_tiny_pieces_still_inflate(inflater):
    small = gzip.compress(b"x" * 5000 + os.urandom(3000), mtime=0)
    assert through_pipe(small, 1)[0] == decoded(small)


def test_cut_short_is_malformed_tar(inflater):
    with pytest.raises(MalformedTar):
        through_pipe(Z[:-100], 65536)
    with pytest.raises(MalformedTar):
        through_pipe(Z[:5000], 1000)
    with pytest.raises(MalformedTar):
        decoded(Z[:-100])  # the reader of a stored blob says the same


@pytest.mark.parametrize("bad", ["crc", "garbage", "corrupt"])
def test_bad_gzip_is_invalid_archive(inflater, bad):
    data = {"crc": Z[:-8] + b"\0\0\0\0" + Z[-4:], "garbage": Z + b"this is no gzip member",
            "corrupt": Z[:20] + bytes(b ^ 0x5A for b in Z[20:4000]) + Z[4000:]}[bad]
    with pytest.raises(InvalidArchive) as e:
        through_pipe(data, 65536)
    assert not isinstance(e.value, MalformedTar)
    assert "not valid gzip data" in str(e.value)
    with pytest.raises(InvalidArchive):
        decoded(data)


def test_a_bomb_is_handed_on_in_bounded_chunks(inflater):
    """256 MiB of zeros in ~250 KiB of gzip, fed in one piece: no chunk over CHUNK."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1 << 20)
    bomb = b"".join(c.compress(zero) for _ in range(256)) + c.flush()
    assert len(bomb) < 1 << 20
    pipe = InflatingPipe(2)
    t = threading.Thread(target=lambda: (pipe.put(bomb), pipe.finish()), daemon=True)
    t.start()
    total, biggest = 0, 0
    while chunk := pipe.read():
        total += len(chunk)
        biggest = max(biggest, len(chunk))
    t.join(30)
    assert total == 256 << 20 and biggest <= CHUNK


def test_a_reader_that_goes_away_stops_the_producer(inflater):
    from lamina.transfer.streams import Cancelled

    pipe = InflatingPipe(2)
    pipe.put(Z[:100_000])  # inflates to about as much: one chunk, the pipe is not full
    pipe.close()
    with pytest.raises(Cancelled):
        pipe.put(Z[100_000:])


# --------------------------------------------------------------------- a pull of a bad gzip layer


@requires_root
@pytest.mark.parametrize("first", [True, False], ids=["streamed", "apart"])
@pytest.mark.parametrize("bad", ["cut", "crc"])
def test_pull_of_a_layer_whose_gzip_is_bad_records_nothing(stores, registry, bad, first,  # noqa: F811
                                                           monkeypatch):
    """The blob is what its digest says, but it does not inflate: the pull fails with a
    one-line error and leaves no image, no layer, no staging dir, no partial layer dir.
    The first layer is inflated by its download thread (InflatingPipe), the next ones
    by their own unpackers (EarlyUnpack)."""
    from lamina.reference import parse
    from lamina.transfer.pull import Puller

    good = tar_bytes({"base": b"base layer\n"})
    blob = Z[:-100] if bad == "cut" else Z[:-8] + b"\0\0\0\0" + Z[-4:]
    push_raw_image(registry.host, f"inflate/{bad}", "v1", [LAYER, good] if first else [good, LAYER],
                   compress=lambda b: blob if b is LAYER else gzip.compress(b, mtime=0))
    failed = []
    real_fail = InflatingPipe._fail
    monkeypatch.setattr(InflatingPipe, "_fail", lambda self, e: (failed.append(e), real_fail(self, e)))
    s = stores(bad)
    before = set(os.listdir(s.layers.layers_dir))
    with pytest.raises(LaminaError) as e:
        Puller(s, QuietProgress()).pull(parse(f"{registry.host}/inflate/{bad}:v1"))
    assert "gzip" in str(e.value) and "\n" not in str(e.value)
    assert s.images.list() == []
    assert s.db.execute("SELECT count(*) FROM layers WHERE complete=0").fetchone()[0] == 0
    top = [r for r in s.layers.all() if r.parent is not None]
    assert top == []  # the bad layer never became one (a good base may have: it is verified)
    if first:
        assert s.layers.all() == [] and len(failed) == 1  # found bad by the download thread
    assert set(os.listdir(s.layers.layers_dir)) - before == {os.path.basename(os.path.dirname(r.dir))
                                                             for r in s.layers.all()}
    assert [n for n in os.listdir(s.tmp_dir) if n.startswith("unpack-")] == []
    assert_store_ok(s)


# --------------------------------------------------------------------- load: durable before visible


@requires_root
def test_load_makes_blobs_and_layers_durable_before_they_are_visible(stores, monkeypatch):
    """Each blob is fsync'd before it is renamed to its digest (commit), and each layer's
    complete row comes after a syncfs that followed its tree's last write."""
    from test_transfer_archive import v20_archive, v20_config

    from lamina.store import content, layers

    events: list[str] = []
    real_syncfs, real_fsync, real_replace = layers._syncfs, content.os.fsync, content.os.replace
    real_create = layers.LayerStore.create

    def syncfs(path):
        events.append("syncfs")
        real_syncfs(path)

    def create(self, chain_id, diff_id, parent, fill):
        def filled(target):
            size = fill(target)
            events.append("tree")
            return size
        rec = real_create(self, chain_id, diff_id, parent, filled)
        events.append("row")
        return rec

    monkeypatch.setattr(layers, "_syncfs", syncfs)
    monkeypatch.setattr(layers.LayerStore, "create", create)
    monkeypatch.setattr(content.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(content.os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1])
    big = [tar_bytes({"a/big": os.urandom(5 << 20)}), tar_bytes({"b/big": os.urandom(6 << 20)})]
    s = stores("durable")
    load(s, io.BytesIO(v20_archive(big, v20_config(big), ["durable/me:1"])), QuietProgress())
    assert events.count("row") == 2 and events.count("rename") >= 2
    for i, e in enumerate(events):
        if e == "rename":
            assert events[i - 1] == "fsync"
        if e == "row":
            tree = max(j for j in range(i) if events[j] == "tree")
            assert "syncfs" in events[tree:i]
    assert s.images.resolve("durable/me:1") is not None
    assert_store_ok(s)
