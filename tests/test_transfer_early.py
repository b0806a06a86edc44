"""`load` unpacks a big layer member while reading the archive (transfer/early.py):
one pass instead of store-then-unpack, and nothing unverified is ever visible.

Layers above 4 MiB take the early path (smaller ones stay in memory and unpack
from their blob, test_transfer_archive.py).  Each test checks the store after:
no image on failure, no staging tree left in tmp/, every blob hashing to its
name, and the layer on disk holding what the tar holds."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest

from conftest import requires_root
from registry_fixtures import registry  # noqa: F401  (fixture)
from registry_fixtures import assert_store_ok, push_raw_image, sha256, tar_bytes
from test_transfer_archive import do_load, v20_archive, v20_config

from lamina.digest import Digest
from lamina.errors import InvalidArchive, NoSuchImage
from lamina.transfer import install

pytestmark = requires_root

BIG = os.urandom(5 << 20)
LAYER_BIG = tar_bytes({"data/big": BIG, "etc/small": b"small\n"})
LAYER_TOP = tar_bytes({"data/top": os.urandom(6 << 20)})


def layer_file(system, name: str, path: str) -> bytes:
    rec = system.images.resolve(name)
    from lamina.image import Image

    for layer in reversed(Image.load(system, rec.id).layers()):
        p = os.path.join(layer.dir, path)
        if os.path.exists(p):
            with open(p, "rb") as f:
                return f.read()
    raise FileNotFoundError(path)


def staging_left(system) -> list[str]:
    return [n for n in os.listdir(system.tmp_dir) if n.startswith("unpack-")]


@pytest.fixture
def no_late_unpack(monkeypatch):
    """Fail any layer unpacked from its stored blob: proves the early tree was used."""
    def refuse(self, plans, i, **kw):
        raise AssertionError(f"layer {i} was unpacked from its blob, not while the archive was read")
    monkeypatch.setattr(install.Installer, "unpack", refuse)


def test_big_plain_layers_unpack_while_read(stores, no_late_unpack):
    layers = [LAYER_BIG, LAYER_TOP]
    config = v20_config(layers)
    s = stores("a")
    loaded = do_load(s, v20_archive(layers, config, ["big:1"]))
    assert loaded[0].image_id.value == sha256(config)
    assert layer_file(s, "big:1", "data/big") == BIG
    assert layer_file(s, "big:1", "etc/small") == b"small\n"
    assert staging_left(s) == []
    assert_store_ok(s)


def test_big_gzip_layer_is_hashed_while_unpacked(stores, no_late_unpack):
    gz = gzip.compress(LAYER_BIG, mtime=0, compresslevel=1)
    config = v20_config([LAYER_BIG])  # the diff_id is the uncompressed tar's
    s = stores("gz")
    do_load(s, v20_archive([gz], config, ["gz:1"]))
    assert layer_file(s, "gz:1", "data/big") == BIG
    assert staging_left(s) == []
    assert_store_ok(s)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_big_layer_that_is_not_its_diff_id_leaves_nothing(stores, compressed):
    config = v20_config([LAYER_TOP])  # claims the other layer
    body = gzip.compress(LAYER_BIG, mtime=0, compresslevel=1) if compressed else LAYER_BIG
    s = stores("bad")
    with pytest.raises(InvalidArchive) as e:
        do_load(s, v20_archive([body], config, ["bad:1"]))
    assert "\n" not in str(e.value)
    assert s.images.list() == []
    with pytest.raises(NoSuchImage):
        s.images.resolve("bad:1")
    assert s.layers.get(Digest(sha256(LAYER_BIG))) is None and s.layers.get(Digest(sha256(LAYER_TOP))) is None
    assert staging_left(s) == []
    assert not s.content.has(Digest(sha256(LAYER_BIG)))
    assert_store_ok(s)


def test_hostile_big_layer_stays_confined(stores, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("host file")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        link = tarfile.TarInfo("esc")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        tf.addfile(link)
        for name in ("esc/victim", "../../victim", "data/pad"):
            body = b"owned" if name != "data/pad" else os.urandom(5 << 20)
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
    layer = buf.getvalue()
    config = v20_config([layer])
    s = stores("evil")
    do_load(s, v20_archive([layer], config, ["evil:1"]))
    assert victim.read_text() == "host file"
    assert layer_file(s, "evil:1", "data/pad")  # written inside the layer, as it was clamped there
    assert staging_left(s) == []
    assert_store_ok(s)


def test_a_big_member_that_is_not_a_layer_is_ignored(stores):
    """A big extra file in the archive (no layer): its early unpack fails quietly, the load works."""
    config = v20_config([LAYER_BIG])
    archive = v20_archive([LAYER_BIG], config, ["x:1"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as old, tarfile.open(fileobj=buf, mode="w") as new:
        junk = tarfile.TarInfo("aaa-junk.bin")
        junk.size = 5 << 20
        new.addfile(junk, io.BytesIO(os.urandom(5 << 20)))
        for m in old.getmembers():
            new.addfile(m, old.extractfile(m) if m.isreg() else None)
    s = stores("junk")
    do_load(s, buf.getvalue())
    assert layer_file(s, "x:1", "data/big") == BIG
    assert staging_left(s) == []
    assert_store_ok(s)


def test_layer_already_in_store_keeps_the_existing_one(stores):
    config = v20_config([LAYER_BIG])
    s = stores("twice")
    data = v20_archive([LAYER_BIG], config, ["t:1"])
    do_load(s, data)
    before = s.layers.get(Digest(sha256(LAYER_BIG))).dir
    do_load(s, data)
    assert s.layers.get(Digest(sha256(LAYER_BIG))).dir == before
    assert staging_left(s) == []
    assert_store_ok(s)


def test_truncated_big_layer_is_an_error_and_leaves_nothing(stores):
    config = v20_config([LAYER_BIG])
    data = v20_archive([LAYER_BIG], config, ["cut:1"])
    cut = data[: data.index(BIG[:64]) + (2 << 20)]  # inside the big file's data
    s = stores("cut")
    with pytest.raises(InvalidArchive):
        do_load(s, cut)
    assert s.images.list() == []
    assert staging_left(s) == []
    assert json.dumps(os.listdir(s.content.ingest_dir)) == "[]"


# --------------------------------------------------------------------- pull: layers unpacked in parallel


def _pull(system, ref):
    from lamina.reference import parse
    from lamina.transfer.progress import QuietProgress
    from lamina.transfer.pull import Puller

    return Puller(system, QuietProgress()).pull(parse(ref))


def test_pull_unpacks_every_layer_while_it_downloads(stores, registry, monkeypatch):  # noqa: F811
    """The first layer streams into the layer store; the others unpack apart, at once."""
    layers = [tar_bytes({f"l{i}/data": os.urandom(1 << 20), f"l{i}/n": str(i).encode()}) for i in range(4)]
    push_raw_image(registry.host, "early/multi", "v1", layers, compress=lambda b: gzip.compress(b, 1, mtime=0))
    real = install.Installer.unpack

    def only_live(self, plans, i, **kw):
        if kw.get("live") is None:
            raise AssertionError(f"layer {i} was unpacked from its blob, not while it downloaded")
        return real(self, plans, i, **kw)

    monkeypatch.setattr(install.Installer, "unpack", only_live)
    s = stores("p")
    _pull(s, f"{registry.host}/early/multi:v1")
    for i in range(4):
        assert layer_file(s, f"{registry.host}/early/multi:v1", f"l{i}/n") == str(i).encode()
    assert staging_left(s) == []
    assert_store_ok(s)


def test_pull_layer_that_is_not_its_diff_id_is_never_visible(stores, registry):  # noqa: F811
    good = tar_bytes({"a": b"a" * 1000})
    liar = tar_bytes({"b": b"evil"})
    claimed = tar_bytes({"b": b"nice"})
    push_raw_image(registry.host, "early/liar", "v1", [good, liar], compress=lambda b: gzip.compress(b, 1, mtime=0),
                   diff_ids=[sha256(good), sha256(claimed)])
    s = stores("liar")
    from lamina.errors import RegistryError

    with pytest.raises(RegistryError) as e:
        _pull(s, f"{registry.host}/early/liar:v1")
    assert "diff_id" in str(e.value) or "hashes to" in str(e.value)
    assert s.images.list() == []
    from lamina.digest import chain_ids

    top = chain_ids([Digest(sha256(good)), Digest(sha256(claimed))])[-1]
    assert s.layers.get(top) is None
    assert staging_left(s) == []
    assert_store_ok(s)


# --------------------------------------------------------------------- inflate: ISA-L or the standard library


def without_isal(monkeypatch) -> None:
    """Imports of python-isal fail for the test, as where it is not installed: the standard
    library's zlib inflates."""
    import builtins

    real_import = builtins.__import__

    def no_isal(name, *a, **kw):
        if name == "isal" or name.startswith("isal."):
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_isal)


@pytest.mark.parametrize("isal", [True, False])
def test_gzip_layers_read_the_same_with_or_without_isal(isal, monkeypatch):
    """python-isal (the `fast` extra) inflates when installed; the standard library is the
    fallback: the same bytes, and a cut or corrupt stream is the same kind of error."""
    from lamina.archive.compression import open_stream
    from lamina.archive.tarformat import MalformedTar

    if isal:
        pytest.importorskip("isal")
    else:
        without_isal(monkeypatch)
    z = gzip.compress(LAYER_BIG, 1, mtime=0)
    assert open_stream(io.BytesIO(z)).read() == LAYER_BIG
    assert open_stream(io.BytesIO(z + z)).read() == LAYER_BIG * 2  # concatenated members, as Go reads them
    with pytest.raises(MalformedTar):
        open_stream(io.BytesIO(z[:-100])).read()
    with pytest.raises(InvalidArchive):
        open_stream(io.BytesIO(z[:-8] + b"\0\0\0\0" + z[-4:])).read()  # CRC


def test_a_layer_the_store_has_is_not_unpacked_again(stores, monkeypatch):
    """A second load of the same layer (v20 layout: the member's name says nothing) does
    not unpack it while reading: the store has a layer blob of exactly its size."""
    from lamina.transfer import early

    config = v20_config([LAYER_BIG])
    s = stores("again")
    do_load(s, v20_archive([LAYER_BIG], config, ["a:1"]))

    def refuse(*a, **kw):
        raise AssertionError("unpacked a layer the store has")

    monkeypatch.setattr(early.EarlyUnpack, "copying", classmethod(refuse))
    other = v20_config([LAYER_BIG]).replace(b'"sh"', b'"true"')
    do_load(s, v20_archive([LAYER_BIG], other, ["b:1"]))
    assert layer_file(s, "b:1", "data/big") == BIG
    assert_store_ok(s)
