"""open_layer_stream + apply_layer on malformed, truncated and oversized input
(catalogue 4.A items 12-14): always a one-line InvalidArchive, never a traceback or
a hang, and the whole stream is consumed."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
import tarfile
import time

import pytest
from conftest import requires_root
from test_archive_support import Dir, Entry, File, Symlink, tar_bytes

from lamina.archive.extract import apply_layer, open_layer_stream
from lamina.archive.rmtree import remove_tree
from lamina.archive.layertar import write_tree
from lamina.digest import HashingReader
from lamina.errors import InvalidArchive

pytestmark = requires_root

GOOD = tar_bytes(Dir("etc"), File("etc/a", b"x" * 5000), File("etc/b", b"y" * 700))
ENTRIES = GOOD[: 512 + 512 + 5120 + 512 + 1024]  # GOOD without its end-of-archive blocks


def apply_bytes(data: bytes, root, *, overlay: bool = False) -> int:
    return apply_layer(open_layer_stream(io.BytesIO(data)), str(root), overlay_whiteouts=overlay)


def raw_header(ti: tarfile.TarInfo, fmt=tarfile.GNU_FORMAT) -> bytes:
    return ti.tobuf(fmt, "utf-8", "surrogateescape")


def expect_invalid(data: bytes, root, match: str) -> InvalidArchive:
    with pytest.raises(InvalidArchive, match=match) as err:
        apply_bytes(data, root)
    assert "\n" not in str(err.value)
    return err.value


def pax_header(records: bytes) -> bytes:
    ti = tarfile.TarInfo("PaxHeaders.0/x")
    ti.type = tarfile.XHDTYPE
    ti.size = len(records)
    return raw_header(ti, tarfile.USTAR_FORMAT) + records + bytes(-len(records) % 512)


# --------------------------------------------------------------------------- truncation / garbage


@pytest.mark.parametrize(
    "cut, match",
    [
        (1500, "truncated inside the data of 'etc/a'"),  # inside file data
        (512 + 512 + 5120 + 100, "truncated: it ends at offset"),  # inside a header
        (len(ENTRIES), "end-of-archive marker"),  # at a header boundary, no end blocks
        (0, "layer stream is empty"),
    ],
)
def test_truncated_tar(tmp_path, cut, match):
    expect_invalid(GOOD[:cut], tmp_path, match)


def test_not_a_tar(tmp_path):
    expect_invalid(b"hello world\n" * 100, tmp_path, "not a tar archive")
    expect_invalid(bytes([0x42]) * 4096, tmp_path, "not a tar archive")
    bad = bytearray(GOOD)
    bad[0] ^= 0xFF
    expect_invalid(bytes(bad), tmp_path, "not a tar archive: bad checksum in the header at offset 0")


def test_garbage_instead_of_the_next_header(tmp_path):
    data = ENTRIES + b"\xff" * 512 + bytes(1024)
    expect_invalid(data, tmp_path, "corrupt tar stream: bad checksum in the header at offset")


def test_trailing_garbage_after_end_marker_is_read_and_ignored(tmp_path):
    data = GOOD + b"garbage after the end of the archive" * 100
    reader = HashingReader(io.BytesIO(data))
    apply_layer(reader, str(tmp_path), overlay_whiteouts=False)
    assert reader.size == len(data)  # drained: the caller's diff_id covers every byte
    assert (tmp_path / "etc/b").read_bytes() == b"y" * 700


def test_negative_size_and_owner_in_base256(tmp_path):
    for field in ("size", "uid"):
        for kind in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE):
            ti = tarfile.TarInfo("x")
            ti.type = kind
            setattr(ti, field, -5)
            expect_invalid(raw_header(ti) + bytes(1024), tmp_path, "negative size, mode or owner")


def rec(body: bytes) -> bytes:
    """A well-formed record for `body` (`key=value`)."""
    size = len(body) + 2
    size += len(str(size))
    size = len(b"%d %s\n" % (size, body))  # the length field may have grown by a digit
    return b"%d %s\n" % (size, body)


@pytest.mark.parametrize(
    "records, match",
    [
        (b"0 path=x\n", "bad record length"),  # zero-length record (CVE-2019-20907 loop)
        (b"99999 path=x\n", "bad record length"),
        (b"12 path=x\n", "bad record length"),  # length not ending at a newline
        (b"x path=abc\n", "bad record length"),
        (rec(b"novalue"), "record without key"),
        (rec(b"=value"), "record without key"),
        (rec(b"path=a\0b"), "NUL in path"),
        (rec(b"GNU.sparse.map=0,10,20,5"), "GNU sparse headers without the file's size"),
        (rec(b"size=-1"), "invalid PAX size"),
        (rec(b"mtime=12x.5"), "invalid PAX mtime"),
    ],
)
def test_bad_pax_records(tmp_path, records, match):
    ti = tarfile.TarInfo("f")
    expect_invalid(pax_header(records) + raw_header(ti) + bytes(1024), tmp_path, match)


def test_chains_of_meta_headers_are_bounded(tmp_path):
    two = pax_header(rec(b"path=a")) + pax_header(rec(b"path=b")) + raw_header(tarfile.TarInfo("f")) + bytes(1024)
    apply_bytes(two, tmp_path)  # tolerated, like Go (the nearest header wins)
    assert sorted(os.listdir(tmp_path)) == ["b"]
    many = pax_header(rec(b"path=a")) * 5000 + raw_header(tarfile.TarInfo("f")) + bytes(1024)
    expect_invalid(many, tmp_path, "more than 8 extended headers in a row")


def test_global_pax_header_is_ignored(tmp_path):
    ti = tarfile.TarInfo("pax_global_header")
    ti.type = tarfile.XGLTYPE
    record = rec(b"comment=hello")
    ti.size = len(record)
    data = raw_header(ti, tarfile.USTAR_FORMAT) + record + bytes(-len(record) % 512) + GOOD
    apply_bytes(data, tmp_path)
    assert (tmp_path / "etc/a").exists() and not (tmp_path / "pax_global_header").exists()


# --------------------------------------------------------------------------- bounds


def test_oversized_pax_header_is_refused(tmp_path):
    data = tar_bytes(File("f", pax={"comment": "x" * (1 << 20)}))
    expect_invalid(data, tmp_path, "PAX header of .* exceeds 1048576")


def test_path_longer_than_4096_is_refused(tmp_path):
    expect_invalid(tar_bytes(File("a/" * 2100 + "x")), tmp_path, "path longer than 4096")
    ti = tarfile.TarInfo("b" * 10000)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(ti)
    expect_invalid(data.getvalue(), tmp_path, "GNU long name of 10001 bytes")


def test_sparse_entries_are_read_and_their_maps_checked(tmp_path):
    # Sparse files are supported (issue 8, Low 15; tests/test_attack_cli.py has the
    # attacks): an old-GNU entry with an empty map is an empty file; a 1.0 entry
    # whose map is missing from its data is refused.
    ti = tarfile.TarInfo("sparse")
    ti.type = tarfile.GNUTYPE_SPARSE
    apply_bytes(raw_header(ti) + bytes(1024), tmp_path)
    assert (tmp_path / "sparse").read_bytes() == b""
    pax = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "s", "GNU.sparse.realsize": "9"}
    expect_invalid(tar_bytes(File("x", pax=pax)), tmp_path, "sparse map is larger than its data")


def test_unknown_entry_type_is_refused(tmp_path):
    expect_invalid(tar_bytes(Entry("volume-label", b"V")), tmp_path, "unsupported type b'V'")


@pytest.fixture
def deep_root(tmp_path):
    """A root removed with our own remove_tree: pytest's cleanup (shutil.rmtree)
    recurses and would crash on the trees built here."""
    root = tmp_path / "root"
    root.mkdir()
    yield root
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove_tree(fd, "root")
    finally:
        os.close(fd)


def test_deep_trees_are_linear_and_removable(deep_root):
    """1100 levels by name, 1300 through a symlink (beyond Python's recursion limit
    and our fd bounds); write the deep tree back as a layer; replace its top by a file."""
    tmp_path = deep_root
    deep = "d/" * 1100
    entries = [File(deep + f"f{i}", b"x") for i in range(50)] + [File("d/" * k + "g", b"") for k in range(1, 200)]
    entries += [Symlink("s", deep.rstrip("/")), File("s/" + "e/" * 200 + "h", b"h")]
    start = time.perf_counter()
    apply_bytes(tar_bytes(*entries), tmp_path)
    assert time.perf_counter() - start < 10
    assert (tmp_path / deep / "f49").read_bytes() == b"x"
    out = io.BytesIO()
    write_tree(str(tmp_path), out)
    names = [ti.name for ti in tarfile.open(fileobj=io.BytesIO(out.getvalue()))]
    assert names[:2] == ["d", "d/d"] and deep + "e/" * 200 + "h" in names and len(names) == 1300 + 50 + 199 + 2
    apply_bytes(tar_bytes(File("d", b"now a file")), tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["d", "s"] and (tmp_path / "d").read_bytes() == b"now a file"


# --------------------------------------------------------------------------- compression


@pytest.mark.parametrize("name, compress", [
    ("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress), ("plain", lambda b: b),
    ("zstd", lambda b: __import__("zstandard").ZstdCompressor().compress(b)),
])
def test_compressions_are_sniffed_by_magic(tmp_path, name, compress):
    if name == "zstd":
        pytest.importorskip("zstandard")
    assert apply_bytes(compress(GOOD), tmp_path) == 5700
    assert (tmp_path / "etc/a").read_bytes() == b"x" * 5000


@pytest.mark.parametrize("name, compress", [
    ("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress),
    ("zstd", lambda b: __import__("zstandard").ZstdCompressor().compress(b)),
])
def test_truncated_compressed_layers(tmp_path, name, compress):
    if name == "zstd":
        pytest.importorskip("zstandard")
    blob = compress(tar_bytes(File("r", os.urandom(200_000))))
    for cut in (len(blob) // 2, len(blob) - 10):
        root = tmp_path / str(cut)
        root.mkdir()
        with pytest.raises(InvalidArchive, match=r"truncated|not valid"):
            apply_bytes(blob[:cut], root)


def test_gzip_with_non_tar_content_and_trailing_garbage(tmp_path):
    expect_invalid(gzip.compress(b"hello world " * 1000), tmp_path, "not a tar archive")
    expect_invalid(gzip.compress(GOOD) + b"garbage!", tmp_path, "not valid gzip data")


def test_zstd_without_the_optional_module(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)
    expect_invalid(b"\x28\xb5\x2f\xfd" + bytes(100), tmp_path, "optional 'zstandard' module is not installed")


def test_absurd_values_are_invalid_archive_not_tracebacks(tmp_path):
    dev = tarfile.TarInfo("dev/x")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 0o7777777, 0o7777777
    expect_invalid(raw_header(dev, tarfile.USTAR_FORMAT) + bytes(1024), tmp_path, "cannot apply tar entry 'dev/x'")
    expect_invalid(tar_bytes(File("x", pax={"SCHILY.xattr.": "v"})), tmp_path, "cannot apply tar entry 'x'")
    expect_invalid(tar_bytes(File("y", uid=0o7777777 + 1, gid=5, pax={"uid": "4294967295"})), tmp_path,
                   "invalid owner 4294967295:5")


@pytest.mark.parametrize("tail", [bytes(1024), bytes(512), bytes(1024) + b"trailing", bytes(10240)])
def test_end_of_archive_forms_that_are_accepted(tmp_path, tail):
    apply_bytes(ENTRIES + tail, tmp_path)
    apply_bytes(tail, tmp_path / "etc")  # an empty layer


def test_zero_block_followed_by_data_is_corrupt(tmp_path):
    expect_invalid(ENTRIES + bytes(512) + tar_bytes(File("x")), tmp_path, "data after the end-of-archive block")
    expect_invalid(ENTRIES + bytes(512) + b"partial", tmp_path, "data after the end-of-archive block")


class _Trickle:
    """A non-seekable stream that returns at most 7 bytes per read (a slow socket)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._data.read(7 if n is None or n < 0 else min(n, 7))


@pytest.mark.parametrize("compress", [gzip.compress, lambda b: b])
def test_short_reads_from_a_non_seekable_source(tmp_path, compress):
    reader = HashingReader(_Trickle(compress(GOOD)))
    assert apply_layer(open_layer_stream(reader), str(tmp_path), overlay_whiteouts=False) == 5700
    assert reader.size == len(compress(GOOD))


def test_inflating_a_bomb_keeps_memory_bounded():
    """A layer of 256 MiB of zeros gzips to ~250 KiB; inflating it must hand it over
    in bounded pieces (the registry/load path), never as one giant buffer."""
    import io
    import resource

    from lamina.transfer.streams import inflating

    bomb = gzip.compress(bytes(256 << 20), 9)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with inflating(io.BytesIO(bomb)) as plain:
        total, largest = 0, 0
        while chunk := plain.read(1 << 20):
            total += len(chunk)
            largest = max(largest, len(chunk))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert total == 256 << 20
    assert largest <= 1 << 20
    assert grown_mb < 64, f"max RSS grew by {grown_mb:.0f} MiB"
