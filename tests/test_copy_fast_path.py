"""COPY into a new directory, the fast path (issue 15: transfer speed).

The layer tar written while the files are copied (builder/teetar.py) must be the
layer archive/layertar.py writes from the finished layer directory, byte for byte,
with the size and the overlay bookkeeping the snapshot commit would have found by
walking the tree; directories are placed away from recently freed inodes
(snapshot/placement.py); the one-block tar header is the general encoder's.
"""

from __future__ import annotations

import io
import os
import random
import stat
import subprocess
import sys

import pytest

from conftest import requires_root

LAMINA = [sys.executable, "-m", "lamina"]


def lamina(root, *args):
    p = subprocess.run(LAMINA + ["--root", str(root)] + [str(a) for a in args], capture_output=True, timeout=240)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    return p.stdout.decode()


def test_plain_header_is_the_general_encoders():
    from lamina.archive import tarwriter as t

    rng = random.Random(15)
    for _ in range(3000):
        name = "".join(rng.choice("ab/._-z09") for _ in range(rng.randint(1, 100)))
        link = "".join(rng.choice("ab/._") for _ in range(rng.choice([0, 0, 7, 100])))
        args = (name.encode(), rng.choice([t.REG, t.DIR, t.SYM, t.LNK, t.CHR, t.FIFO]),
                rng.choice([0o100644, 0o40755, 0o120777, 0o20600, 0o7777]), rng.choice([0, 1000, (1 << 21) - 1]),
                rng.choice([0, 5, (1 << 21) - 1]), rng.choice([0, 1, 511, 512, 14000, (1 << 33) - 1]),
                rng.choice([0, 1700000000, (1 << 33) - 1]), link.encode(), rng.choice([0, 259]), rng.choice([0, 3]))
        assert t._plain(*args) == t._general(*args, None, "", "")
    # outside the plain case encode_header takes the general path (PAX here)
    assert len(t.encode_header("x" * 101, t.REG, 0o100644, 0, 0, 0, 0)) > 512
    assert t.encode_header("f", t.REG, 0o100644, 0, 0, 1, -1) == t._general(
        b"f", t.REG, 0o100644, 0, 0, 1, -1, b"", 0, 0, None, "", "")


def test_spreader_moves_directories_into_place_after_slow_creates(tmp_path):
    from lamina.snapshot.placement import ANCHORS, MOVE_AFTER, SLOW_S, Spreader, anchors_dir, make_upper

    store = tmp_path / "store"
    store.mkdir()
    make_upper(str(store / "upper"), str(store))
    assert (store / "upper").is_dir() and not any((store / "upper").iterdir())
    anchors = sorted(os.listdir(anchors_dir(str(store))))
    assert len(anchors) == ANCHORS and all(not os.listdir(os.path.join(anchors_dir(str(store)), a)) for a in anchors)

    s = Spreader(str(store))
    s.mkdir(str(store / "upper" / "plain"), 0o700)
    assert s.anchor is None  # fast creates: made where it is
    for _ in range(MOVE_AFTER):
        s.created(SLOW_S * 2)
    s.mkdir(str(store / "upper" / "moved"), 0o700)
    assert s.anchor is not None and (store / "upper" / "moved").is_dir()
    assert stat.S_IMODE((store / "upper" / "moved").stat().st_mode) == 0o700 & ~_umask()
    first = s.anchor
    s.mkdir(str(store / "upper" / "beside"), 0o700)  # beside the first moved one
    assert s.anchor == first and not os.listdir(first)
    for _ in range(10 * (s.MOVES + 1)):
        for _ in range(MOVE_AFTER):
            s.created(SLOW_S * 2)
        s.mkdir(str(store / "upper" / f"d{s._n}"), 0o755)
    assert s.moves == s.MOVES  # a few moves at most
    # never the anchor in use, and not one used just before it
    assert len({a for a in os.listdir(anchors_dir(str(store)))}) == ANCHORS


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@requires_root
def test_fresh_copy_layer_is_the_walked_layer(tmp_path, busybox_tar):
    from lamina.archive import whiteout as wh
    from lamina.archive.layertar import write_layer_from_upper
    from lamina.digest import Digest
    from lamina.image import Image
    from lamina.snapshot.overlay import _tree_size
    from lamina.system import System

    root = tmp_path / "store"
    lamina(root, "import", busybox_tar, "base:latest")
    ctx = tmp_path / "ctx"
    (ctx / "tree" / "sub" / "deeper").mkdir(parents=True)
    (ctx / "tree" / "empty").mkdir()
    for i in range(40):
        (ctx / "tree" / "sub" / f"f{i}").write_bytes(os.urandom(i * 700))
    (ctx / "tree" / "big").write_bytes(os.urandom(3 << 20))
    os.chmod(ctx / "tree" / "big", 0o4755)
    (ctx / "tree" / "sub" / "deeper" / "x").write_text("x\n")
    os.link(ctx / "tree" / "sub" / "f3", ctx / "tree" / "hard")
    os.symlink("sub/deeper/x", ctx / "tree" / "link")
    (ctx / "tree" / ("n" * 120)).write_text("long name\n")
    (ctx / "Dockerfile").write_text("FROM base\nCOPY tree /usr/local/new/\nCOPY tree /fresh/\n"
                                    "COPY --chown=7:8 --chmod=640 tree /owned/\n")
    image_id = lamina(root, "build", "-q", "--no-cache", "-t", "fast:1", ctx).strip().splitlines()[-1]
    system = System(str(root))
    try:
        image = Image.load(system, Digest.parse(image_id))
        for chain, diff_id in list(zip(image.chain_ids, image.diff_ids))[-3:]:
            layer = system.layers.get(chain)
            with system.content.open(diff_id) as f:
                blob = f.read()
            walked = io.BytesIO()
            write_layer_from_upper(layer.dir, walked)
            assert blob == walked.getvalue()
            assert layer.size == _tree_size(layer.dir)
            for dirpath, dirnames, filenames in os.walk(layer.dir):
                for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                    left = [x for x in os.listxattr(name, follow_symlinks=False)
                            if x.startswith(wh.OVERLAY_XATTR_PREFIXES) and x != wh.OPAQUE_XATTR]
                    assert not left, (name, left)
    finally:
        system.close()
    out = lamina(root, "run", "--rm", "fast:1", "sh", "-c",
                 "ls -l /fresh/big /owned/big | cut -c1-10; cat /fresh/link; stat -c '%u:%g' /owned/sub/f3; "
                 "stat -c %i /fresh/hard /fresh/sub/f3 | uniq | wc -l")
    assert out.split() == ["-rwsr-xr-x", "-rw-r-----", "x", "7:8", "1"]


def test_layer_writer_thread_keeps_the_order_and_hands_back_errors():
    from lamina.builder.teetar import Behind

    class Sink:
        def __init__(self):
            self.parts = []

        def write(self, data):
            self.parts.append(bytes(data))

    sink = Sink()
    chunks = [bytes([i % 251]) * (i * 37) for i in range(300)]
    with Behind(sink) as behind:
        for chunk in chunks:
            behind.write(chunk)
        behind.close()
    assert b"".join(sink.parts) == b"".join(chunks)

    class Full:
        def write(self, data):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        with Behind(Full()) as behind:
            for _ in range(100):  # the thread's error comes back from a later write or from close
                behind.write(b"x" * 4096)
            behind.close()
    assert not behind.thread.is_alive()

    with pytest.raises(RuntimeError):
        with Behind(Sink()) as behind:
            behind.write(b"partial")
            raise RuntimeError("the copy failed")
    assert not behind.thread.is_alive()  # stopped before the blob it writes is aborted
