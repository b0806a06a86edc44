"""Reproducible images (issue 15): SOURCE_DATE_EPOCH and `build --reproducible`.

Two clean stores (two machines) build the same Dockerfile and context: with
SOURCE_DATE_EPOCH they make the same image ID and manifest digest, also after a
push of each to a loopback registry (gzip done on each side); new files in the
layers carry the epoch as mtime, older ones keep theirs (a clamp, not a set);
without it `created` differs between the two builds, as docker's does.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import requires_root
from registry_fixtures import registry  # noqa: F401  (fixture)

LAMINA = [sys.executable, "-m", "lamina"]
EPOCH = 1700000000                  # 2023-11-14T22:13:20Z
OLD = 1500000000                    # a context file older than the epoch keeps its time
DOCKERFILE = """FROM base
ENV A=1
COPY old.txt new.txt /srv/
COPY tree /opt/tree
RUN mkdir -p /var/made && echo $$ > /var/made/pid && echo made > /var/made/when && touch /etc/passwd
WORKDIR /work
LABEL x=y
"""


def lamina(root, *args, env=None, check=True):
    full_env = dict(os.environ)
    full_env.pop("SOURCE_DATE_EPOCH", None)
    full_env.update(env or {})
    p = subprocess.run(LAMINA + ["--root", str(root)] + [str(a) for a in args], capture_output=True,
                       timeout=240, env=full_env)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout.decode()}\n{p.stderr.decode()}")
    return p


def _context(path, now_offset: int):
    """The same context, its files written at a different time (a second checkout)."""
    path.mkdir()
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "old.txt").write_text("old\n")
    (path / "new.txt").write_text("new\n")
    (path / "tree" / "sub").mkdir(parents=True)
    (path / "tree" / "sub" / "f").write_bytes(os.urandom(0) + b"data" * 1000)
    os.utime(path / "old.txt", (OLD, OLD))
    for p in (path / "new.txt", path / "tree" / "sub" / "f", path / "tree" / "sub", path / "tree"):
        t = EPOCH + 1000 + now_offset
        os.utime(p, (t, t))
    return path


@pytest.fixture
def two(tmp_path, busybox_tar):
    """Two stores with the same base (imported with SOURCE_DATE_EPOCH: the same ID) and two checkouts."""
    out = []
    for i, name in enumerate(("A", "B")):
        root = tmp_path / name
        lamina(root, "import", busybox_tar, "base:latest", env={"SOURCE_DATE_EPOCH": str(OLD)})
        out.append((root, _context(tmp_path / f"ctx{name}", i * 777)))
    return out


def image_id(root, name) -> str:
    return lamina(root, "inspect", "--type", "image", "--format", "{{.Id}}", name).stdout.decode().strip()


def raw_config(root, name) -> dict:
    return json.loads(lamina(root, "inspect", "--type", "image", name).stdout)[0]


def stored_config(root, name) -> dict:
    from lamina.system import System

    s = System(str(root))
    try:
        return json.loads(s.images.raw_config(s.images.resolve(name).id))
    finally:
        s.close()


def manifest_digest(root, name) -> str:
    """sha256 of the manifest the store keeps for the image (what `save` and `push` of
    the uncompressed layers would name)."""
    from lamina.digest import Digest
    from lamina.system import System

    s = System(str(root))
    try:
        rec = s.images.resolve(name)
        return str(Digest.of_bytes(s.images.raw_manifest(rec)))
    finally:
        s.close()


def layer_members(root, name) -> dict[str, tarfile.TarInfo]:
    """Every entry of every layer blob of the image (the top one wins), by path."""
    out: dict[str, tarfile.TarInfo] = {}
    from lamina.digest import Digest
    from lamina.image import Image
    from lamina.system import System

    s = System(str(root))
    try:
        img = Image.load(s, Digest(image_id(root, name)))
        for blob in img.layer_blobs():
            with s.content.open(blob.descriptor.digest) as f, tarfile.open(fileobj=f, mode="r|*") as tf:
                for ti in tf:
                    out[ti.name.rstrip("/")] = ti
    finally:
        s.close()
    return out


@requires_root
def test_two_stores_same_image_and_manifest(two, registry):  # noqa: F811
    (ra, ca), (rb, cb) = two
    assert image_id(ra, "base") == image_id(rb, "base")
    lamina(ra, "build", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", "-t", "app:1", ca)
    lamina(rb, "build", "-t", "app:1", cb, env={"SOURCE_DATE_EPOCH": str(EPOCH)})  # from the environment
    ida, idb = image_id(ra, "app:1"), image_id(rb, "app:1")
    assert ida == idb
    assert manifest_digest(ra, "app:1") == manifest_digest(rb, "app:1")

    cfg = raw_config(ra, "app:1")
    assert cfg["Created"] == "2023-11-14T22:13:20Z"
    assert "Container" not in cfg or not cfg["Container"]  # no step container's random ID
    history = stored_config(ra, "app:1")["history"]
    assert [h["created"] for h in history[1:]] == ["2023-11-14T22:13:20Z"] * 6  # the base's own entry first

    members = layer_members(ra, "app:1")
    assert members["srv/old.txt"].mtime == OLD                 # older than the epoch: kept
    assert members["srv/new.txt"].mtime == EPOCH               # newer: clamped
    assert members["opt/tree/sub/f"].mtime == EPOCH
    for path in ("var/made/pid", "var/made/when", "var/made", "etc/passwd", "work"):
        assert members[path].mtime == EPOCH, path             # written by RUN / WORKDIR now: clamped
    # the unpacked layer on disk says what the blob says (a container sees the epoch too)
    out = lamina(ra, "run", "--rm", "app:1", "stat", "-c", "%Y", "/var/made/pid", "/srv/old.txt").stdout.decode()
    assert out.split() == [str(EPOCH), str(OLD)]

    # pushed from both stores (each compresses its own layers): the same manifest digest
    digests = []
    for root in (ra, rb):
        ref = f"{registry.host}/repro/app:{root.name}"
        lamina(root, "tag", "app:1", ref)
        out = lamina(root, "push", ref).stdout.decode()
        digests.append([w for w in out.split() if w.startswith("sha256:")][-1])
    assert digests[0] == digests[1]


@requires_root
def test_without_epoch_created_differs_and_cache_keeps_epochs_apart(two):
    (ra, ca), (rb, cb) = two
    lamina(ra, "build", "-t", "plain:1", ca)
    lamina(rb, "build", "-t", "plain:1", cb)
    a, b = raw_config(ra, "plain:1"), raw_config(rb, "plain:1")
    assert a["Created"] != b["Created"] and image_id(ra, "plain:1") != image_id(rb, "plain:1")
    assert not a["Created"].startswith("2023-11-14")
    # the same build with an epoch in the store that has the plain one cached: no cached step is
    # taken (its images record another time), and the result equals a clean store's
    out = lamina(ra, "build", "--reproducible", "-t", "r:1", ca).stdout.decode()
    assert "Using cache" not in out
    lamina(rb, "build", "--build-arg", "SOURCE_DATE_EPOCH=0", "-t", "r:1", cb)
    assert image_id(ra, "r:1") == image_id(rb, "r:1")
    assert raw_config(ra, "r:1")["Created"] == "1970-01-01T00:00:00Z"
    # a second build with the same epoch is all cache hits
    again = lamina(ra, "build", "--reproducible", "-t", "r:2", ca).stdout.decode()
    assert again.count("Using cache") >= 5 and image_id(ra, "r:2") == image_id(ra, "r:1")


@requires_root
def test_bad_epoch_is_a_flag_error(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "Dockerfile").write_text("FROM scratch\n")
    p = lamina(tmp_path / "s", "build", "--build-arg", "SOURCE_DATE_EPOCH=yesterday", d, check=False)
    assert p.returncode != 0
    assert p.stderr.decode().strip().splitlines()[-1].endswith(
        "invalid SOURCE_DATE_EPOCH: 'yesterday' (want a number of seconds since 1970)")
    assert "Traceback" not in p.stderr.decode()


@requires_root
def test_import_and_commit_honour_epoch(tmp_path, busybox_tar):
    root = tmp_path / "s"
    env = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    lamina(root, "import", busybox_tar, "base:latest", env=env)
    assert raw_config(root, "base")["Created"] == "2023-11-14T22:13:20Z"
    lamina(root, "run", "--name", "c1", "base", "sh", "-c", "echo hi > /made")
    lamina(root, "commit", "c1", "committed:1", env=env)
    assert raw_config(root, "committed:1")["Created"] == "2023-11-14T22:13:20Z"
    assert layer_members(root, "committed:1")["made"].mtime == EPOCH
    # the container's own file is not touched: only the layer's tar is clamped
    lamina(root, "start", "c1")
    assert lamina(root, "commit", "c1", "committed:2").returncode == 0
    assert layer_members(root, "committed:2")["made"].mtime > EPOCH
    lamina(root, "rm", "-f", "c1")


def test_parallel_gzip_is_the_same_on_any_core_count():
    """Push's gzip gives the same bytes whatever the worker count (the blob digest of a
    reproducible image must not depend on the machine)."""
    from lamina.transfer.compress import parallel_gzip

    data = (os.urandom(3 << 20) + b"text " * 600_000) * 2
    outs = []
    for workers in (1, 2, 5):
        buf = io.BytesIO()
        with ThreadPoolExecutor(workers) as pool:
            parallel_gzip(io.BytesIO(data), buf.write, pool, level=1)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1] == outs[2]
    assert outs[0][4:8] == b"\0\0\0\0" and outs[0][9] == 3  # no mtime; the OS byte is fixed (Unix)
    import gzip

    assert gzip.decompress(outs[0]) == data


def test_layer_writers_clamp_and_clamp_times_never_follows_links(tmp_path):
    """The tar writers clamp what they write (the copy snapshotter's path); clamp_times
    clamps a tree in place without following a symlink out of it."""
    from lamina.archive.changes import Change
    from lamina.archive.layertar import clamp_times, write_layer_from_changes, write_tree

    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "new").write_text("n")
    (root / "old").write_text("o")
    outside = tmp_path / "outside"
    outside.write_text("x")
    os.utime(outside, (EPOCH + 50, EPOCH + 50))
    os.symlink(str(outside), root / "link")
    os.utime(root / "old", (OLD, OLD))
    for p in (root / "d" / "new", root / "d"):
        os.utime(p, (EPOCH + 99, EPOCH + 99))

    def mtimes(data: bytes) -> dict:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            return {m.name.rstrip("/"): m.mtime for m in tf.getmembers()}

    buf = io.BytesIO()
    write_tree(str(root), buf, clamp=EPOCH)
    got = mtimes(buf.getvalue())
    assert got["d"] == got["d/new"] == EPOCH and got["old"] == OLD
    buf = io.BytesIO()
    write_layer_from_changes(str(root), [Change("A", "/d/new"), Change("C", "/old")], buf, clamp=EPOCH)
    assert mtimes(buf.getvalue()) == {"d/new": EPOCH, "old": OLD}
    buf = io.BytesIO()
    write_tree(str(root), buf)
    assert mtimes(buf.getvalue())["d/new"] == EPOCH + 99  # no epoch: the times as they are

    clamp_times(str(root), EPOCH)
    assert os.stat(root / "d" / "new").st_mtime == EPOCH and os.stat(root / "old").st_mtime == OLD
    assert os.stat(outside).st_mtime == EPOCH + 50  # the link's target outside is not touched
