"""Snapshotters speak containerd's vocabulary: prepare(key, parent) returns the
mounts as data, only snapshot/mount.py turns them into mount(2) calls, and
commit (the step container's upper dir becoming a layer) happens in the
snapshotter; an import's staging tree goes in through the one LayerStore.adopt."""

from __future__ import annotations

import os

import pytest

from conftest import requires_root
from lamina.digest import Digest
from lamina.imageops import import_tarball
from lamina.snapshot import Mount, initlayer
from lamina.snapshot.mount import is_mounted, mount_all, unmount_all
from lamina.system import System

pytestmark = requires_root


@pytest.fixture
def system(tmp_path, busybox_tar, request):
    s = System(str(tmp_path / "store"), storage_driver=getattr(request, "param", "overlay"))
    with open(busybox_tar, "rb") as f:
        s.image_id = import_tarball(s, f)
    yield s
    s.close()


def test_overlay_prepare_returns_mounts_as_data(system, tmp_path):
    snap = system.snapshotter
    layers = system.unpack(system.image_id)
    key = str(tmp_path / "ctr")
    mounts = snap.prepare(key, layers)
    assert mounts == snap.mounts(key, layers)
    [m] = mounts
    assert isinstance(m, Mount)
    assert (m.type, m.source, m.target, m.cwd) == ("overlay", "overlay", f"{key}/rootfs", system.root)
    opts = dict(o.split("=", 1) for o in m.options if "=" in o)
    # top-most first: the init layer over the image's one layer, by their short links
    assert opts["lowerdir"].split(":") == [f"l/{initlayer.INIT_LINK_NAME}", f"l/{layers[0].link}"]
    assert opts["upperdir"] == f"{key}/upper" and opts["workdir"] == f"{key}/work"
    assert not is_mounted(m.target)  # prepare only describes: nothing is mounted yet
    assert mount_all(mounts) == m.target
    try:
        assert is_mounted(m.target)
        assert os.path.isfile(os.path.join(m.target, "bin", "busybox"))
        with open(os.path.join(m.target, "new"), "w") as f:
            f.write("x")
        assert os.listdir(f"{key}/upper") == ["new"]
    finally:
        unmount_all(mounts)
    assert not is_mounted(m.target)


@pytest.mark.parametrize("system", ["copy"], indirect=True)
def test_copy_prepare_returns_the_tree_in_place(system, tmp_path):
    snap = system.snapshotter
    assert snap.name == "copy"
    key = str(tmp_path / "ctr")
    os.mkdir(key)  # the container store makes a container's directory
    [m] = snap.prepare(key, system.unpack(system.image_id))
    assert (m.type, m.source, m.target) == ("bind", f"{key}/rootfs-copy", f"{key}/rootfs-copy")
    assert mount_all([m]) == m.target  # in place: nothing to mount
    assert not is_mounted(m.target)
    assert os.path.isfile(os.path.join(m.target, "bin", "busybox"))


def test_overlay_commit_moves_the_upper_dir_into_the_layer_store(system, tmp_path):
    snap = system.snapshotter
    layers = system.unpack(system.image_id)
    key = str(tmp_path / "ctr")
    snap.prepare(key, layers)
    rootfs = snap.mount(key, layers)
    with open(os.path.join(rootfs, "hello"), "w") as f:
        f.write("hello\n")
    snap.unmount(key)
    chain = Digest("sha256:" + "ab" * 32)
    assert snap.commit(key, chain, chain, layers[-1].chain_id) == len("hello\n")
    assert not os.path.exists(f"{key}/upper")  # moved, not copied
    rec = system.layers.get(chain)
    assert rec is not None and rec.size == 6 and rec.parent == str(layers[-1].chain_id)
    with open(os.path.join(rec.dir, "hello")) as f:
        assert f.read() == "hello\n"
    # a second snapshot over the new layer sees the file through its lower dirs
    key2 = str(tmp_path / "ctr2")
    snap.prepare(key2, [*layers, rec])
    root2 = snap.mount(key2, [*layers, rec])
    try:
        assert open(os.path.join(root2, "hello")).read() == "hello\n"
    finally:
        snap.unmount(key2)


@pytest.mark.parametrize("system", ["copy"], indirect=True)
def test_copy_commit_hands_nothing_over(system, tmp_path):
    key = str(tmp_path / "ctr")
    os.mkdir(key)
    system.snapshotter.prepare(key, system.unpack(system.image_id))
    chain = Digest("sha256:" + "cd" * 32)
    assert system.snapshotter.commit(key, chain, chain, None) is None
    assert system.layers.get(chain) is None


def test_layer_store_adopt_moves_a_tree_in(system, tmp_path):
    tree = tmp_path / "store" / "tmp" / "staging"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_text("data")
    chain = Digest("sha256:" + "ef" * 32)
    rec = system.layers.adopt(chain, chain, None, str(tree), 4)
    assert not tree.exists()
    assert rec.size == 4 and open(os.path.join(rec.dir, "d", "f")).read() == "data"
    assert os.path.realpath(os.path.join(system.root, "l", rec.link)) == os.path.realpath(rec.dir)
