"""`load` of a layer the store has (transfer/reuse.py): the member is hashed and
compared with the stored blob, not written again, and the stored layer is reused;
a member that only claims to be that layer is refused or stored as itself, and the
stored blob is never touched."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from conftest import requires_root
from registry_fixtures import assert_store_ok, sha256, tar_bytes
from test_transfer_archive import do_load, v20_archive, v20_config

from lamina.digest import Digest
from lamina.errors import InvalidArchive, NoSuchImage
from lamina.reference import parse

pytestmark = requires_root

BIG = os.urandom(5 << 20)
LAYER = tar_bytes({"data/big": BIG})
TWIN = tar_bytes({"data/big": os.urandom(5 << 20)})  # another layer of exactly the same size
assert len(TWIN) == len(LAYER)


def blob_stat(system, layer: bytes) -> tuple[int, int]:
    st = os.stat(system.content.path(Digest(sha256(layer))))
    return st.st_ino, st.st_mtime_ns


def docker25_archive(layer: bytes, diff_id: str, tag: str) -> bytes:
    """The docker 25 layout: layers named blobs/sha256/<digest>, whatever they hold."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in ((f"blobs/sha256/{diff_id[7:]}", layer),
                           (f"blobs/sha256/{hashlib.sha256(config).hexdigest()}", config),
                           ("manifest.json", json.dumps([{
                               "Config": f"blobs/sha256/{hashlib.sha256(config).hexdigest()}",
                               "RepoTags": [tag], "Layers": [f"blobs/sha256/{diff_id[7:]}"]}]).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("layout", ["v20", "docker25"])
def test_second_load_does_not_write_the_layer_again(stores, layout, monkeypatch):
    from lamina.transfer import early

    s = stores(f"again-{layout}")
    if layout == "v20":
        data = v20_archive([LAYER], v20_config([LAYER]), ["a:1"])
    else:
        data = docker25_archive(LAYER, sha256(LAYER), "a:1")
    do_load(s, data)
    before = blob_stat(s, LAYER)
    layer_dir = s.layers.get(Digest(sha256(LAYER))).dir
    s.images.untag(parse("a:1"))  # loaded again: the tag comes back

    def refuse(*a, **kw):
        raise AssertionError("unpacked a layer the store has")

    monkeypatch.setattr(early.EarlyUnpack, "copying", classmethod(refuse))
    do_load(s, data)
    assert blob_stat(s, LAYER) == before  # same file: not rewritten, not replaced
    assert s.layers.get(Digest(sha256(LAYER))).dir == layer_dir
    assert s.images.resolve("a:1") is not None
    assert os.listdir(s.content.ingest_dir) == []
    assert_store_ok(s)


def test_a_member_claiming_a_stored_layer_is_refused(stores):
    """docker 25 layout: the member is named after a stored layer and the config claims
    its diff_id, but it holds other bytes of the same size: refused, stored blob intact."""
    s = stores("claim")
    do_load(s, docker25_archive(LAYER, sha256(LAYER), "good:1"))
    before = blob_stat(s, LAYER)
    with pytest.raises(InvalidArchive, match="diffID"):
        do_load(s, docker25_archive(TWIN, sha256(LAYER), "evil:1"))
    with pytest.raises(NoSuchImage):
        s.images.resolve("evil:1")
    assert blob_stat(s, LAYER) == before
    assert not s.content.has(Digest(sha256(TWIN)))
    assert os.listdir(s.content.ingest_dir) == []
    assert_store_ok(s)


def test_a_v20_member_claiming_a_stored_layer_is_refused(stores):
    s = stores("claim20")
    do_load(s, v20_archive([LAYER], v20_config([LAYER]), ["good:1"]))
    before = blob_stat(s, LAYER)
    with pytest.raises(InvalidArchive, match="diffID"):
        do_load(s, v20_archive([TWIN], v20_config([LAYER]), ["evil:1"]))
    with pytest.raises(NoSuchImage):
        s.images.resolve("evil:1")
    assert blob_stat(s, LAYER) == before
    assert_store_ok(s)


def test_a_different_layer_of_the_same_size_is_stored_as_itself(stores):
    """v20 layout: the size matches a stored blob, so the member is compared with it;
    it differs, and what was read before the difference is not lost."""
    s = stores("twin")
    do_load(s, v20_archive([LAYER], v20_config([LAYER]), ["one:1"]))
    do_load(s, v20_archive([TWIN], v20_config([TWIN]), ["two:1"]))
    with s.content.open(Digest(sha256(TWIN))) as f:
        assert f.read() == TWIN
    assert s.layers.get(Digest(sha256(TWIN))) is not None
    assert_store_ok(s)
