"""The forward-only reader tar streams are read through (archive/tarstream.py): exact
reads across chunk boundaries, no seeking back, the same members as tarfile's own
reader, and archives cut short inside a member refused by `load` with nothing kept."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from conftest import requires_root
from lamina.archive.tarformat import StrictTarInfo
from lamina.archive.tarstream import ForwardReader, open_tar
from lamina.errors import InvalidArchive, NoSuchImage
from lamina.transfer.load import load
from lamina.transfer.progress import QuietProgress
from registry_fixtures import assert_store_ok, sha256, tar_bytes

DATA = bytes(range(256)) * 40  # 10,240 bytes


class Trickle(io.RawIOBase):
    """A source that hands out at most `step` bytes per read, as a pipe or socket may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._at, self._step = data, 0, step

    def read(self, n: int = -1) -> bytes:
        n = self._step if n is None or n < 0 else min(n, self._step)
        out = self._data[self._at:self._at + n]
        self._at += len(out)
        return out


@pytest.mark.parametrize("chunk,step", [(100, 10_000), (4096, 7), (1 << 20, 333)])
def test_exact_reads_across_chunks(chunk, step):
    r = ForwardReader(Trickle(DATA, step), chunk=chunk)
    out, sizes = [], [1, 511, 512, 3000, 5, 4096, 2115]
    for n in sizes:
        out.append(r.read(n))
        assert len(out[-1]) == n
    assert b"".join(out) == DATA[:sum(sizes)] and r.tell() == sum(sizes)
    assert r.read(10_000) == DATA[sum(sizes):] and r.read(1) == b""  # short only at the end


def test_read_some_and_forward_seek():
    r = ForwardReader(Trickle(DATA, 1000), chunk=700)
    first = r.read_some(10_000)
    assert 0 < len(first) <= 1000 and first == DATA[:len(first)]
    assert r.seek(5000) == 5000 and r.read(4) == DATA[5000:5004]
    with pytest.raises(tarfile.StreamError):
        r.seek(10)
    assert r.seek(len(DATA) + 50) == len(DATA)  # past the end: stops there, the next read finds nothing
    assert r.read_some(10) == b""


def read_member_part(m, n: int) -> bytes:
    out = b""
    while len(out) < n:
        out += m.read(n - len(out))
    return out


def test_member_reader_refuses_a_cut_member():
    r = ForwardReader(io.BytesIO(DATA[:100]))
    m = r.member(200)
    assert read_member_part(m, 100) == DATA[:100]
    with pytest.raises(tarfile.ReadError, match="unexpected end of data"):
        m.read(50)


def mixed_tar(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, body in (("a/" + "long" * 40 + "/f", DATA), ("b/empty", b""), ("b/odd", DATA[:777])):
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
        ti = tarfile.TarInfo("b/link")
        ti.type, ti.linkname = tarfile.LNKTYPE, "b/odd"
        tf.addfile(ti)
        ti = tarfile.TarInfo("b/dir")
        ti.type, ti.pax_headers = tarfile.DIRTYPE, ({"SCHILY.xattr.user.k": "v"} if fmt == tarfile.PAX_FORMAT else {})
        tf.addfile(ti)
    return buf.getvalue()


def read_member(m) -> bytes:
    out = []
    while data := m.read(100_000):  # a member's reader hands out what is buffered: several reads
        out.append(data)
    return b"".join(out)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_same_members_as_tarfile(fmt):
    data = mixed_tar(fmt)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        want = [(m.name, m.type, m.linkname, tf.extractfile(m).read() if m.isreg() else None) for m in tf]
    got = []
    with open_tar(Trickle(data, 1500), StrictTarInfo) as tf:
        while (ti := tf.next()) is not None:
            got.append((ti.name, ti.type, ti.linkname, read_member(tf.fileobj.member(ti.size)) if ti.isreg()
                        else None))
    assert got == want


def archive(layer: bytes, cut: int | None = None) -> bytes:
    """A docker-save archive of one image with `layer`, cut after `cut` bytes of the layer member."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["cut:1"], "Layers": ["l/layer.tar"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, body in (("c.json", config), ("manifest.json", manifest), ("l/layer.tar", layer)):
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
    data = buf.getvalue()
    if cut is None:
        return data
    return data[:data.index(layer[:512]) + cut]


@requires_root
@pytest.mark.parametrize("big", [False, True], ids=["small-member", "big-member"])
def test_load_refuses_an_archive_cut_inside_a_member(stores, big):
    layer = tar_bytes({"etc/f": os.urandom(5 << 20) if big else b"x" * 3000})
    s = stores("cut")
    with pytest.raises(InvalidArchive) as e:
        load(s, io.BytesIO(archive(layer, cut=len(layer) // 2)), QuietProgress())
    assert "\n" not in str(e.value)
    assert s.images.list() == []
    with pytest.raises(NoSuchImage):
        s.images.resolve("cut:1")
    assert_store_ok(s)
    assert load(s, io.BytesIO(archive(layer)), QuietProgress())[0].tags  # the whole archive loads
    assert_store_ok(s)
