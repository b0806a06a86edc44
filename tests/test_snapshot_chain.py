"""Long layer chains still mount (short link names keep overlay's mount data
under one page), layers are shared between images by chain ID, and the copy
fallback flattens the same chain to the same files."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from conftest import requires_root
from lamina import oci
from lamina.digest import Digest
from lamina.reference import parse
from lamina.store.images import LayerBlob
from lamina.system import System
from test_cli_core import lamina, out

pytestmark = requires_root

DEPTH = 125  # docker's own maximum chain depth


def layer_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(f"chain/{name}")
        info.size = len(data)
        info.mtime = 1
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def add_layers(system: System, base_id: Digest, count: int, tag: str) -> Digest:
    config = system.images.config(base_id)
    layers = system.images.layer_blobs(system.images.get(base_id))
    for i in range(count):
        blob = layer_tar(f"f{i:03d}", f"{i}\n".encode())
        digest = system.content.put_bytes(blob)
        layers.append(LayerBlob(oci.Descriptor(oci.OCI_LAYER, digest, len(blob)), digest))
        config["rootfs"]["diff_ids"].append(str(digest))
        config["history"].append({"created": config["created"], "created_by": f"layer {i}"})
    return system.images.create(oci.dumps(config), layers, size=0, tags=(parse(tag),))


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_long_chain_mounts(tmp_path, busybox_tar, driver):
    root = tmp_path / "store"
    base = out(lamina(root, "import", str(busybox_tar), "bb:1")).strip()
    system = System(str(root))
    try:
        add_layers(system, Digest(base), DEPTH - 1, "deep:1")
    finally:
        system.close()
    p = lamina(root, "run", "--rm", "deep:1", "sh", "-c", "ls /chain | wc -l; cat /chain/f123", driver=driver)
    assert out(p).split() == [str(DEPTH - 1), "123"]
    info = json.loads(out(lamina(root, "inspect", "deep:1")))[0]
    assert len(info["RootFS"]["Layers"]) == DEPTH


def test_layers_shared_by_chain_id(tmp_path, busybox_tar):
    root = tmp_path / "store"
    base = out(lamina(root, "import", str(busybox_tar), "bb:1")).strip()
    system = System(str(root))
    try:
        a = add_layers(system, Digest(base), 3, "a:1")
        lamina(root, "run", "--rm", "a:1", "true")
        before = len(system.layers.all())
        b = add_layers(system, Digest(base), 3, "b:1")  # same content -> same chain ids
        assert a == b or system.images.config(a)["rootfs"] == system.images.config(b)["rootfs"]
        lamina(root, "run", "--rm", "b:1", "true")
        assert len(system.layers.all()) == before
    finally:
        system.close()
