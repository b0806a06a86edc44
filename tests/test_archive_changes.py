"""changes_from_upper / changes_between against `docker diff` on real overlay mounts.

The expectations below were recorded on this machine from Docker 20.10.24
(overlay2, native diff) with `docker import` of the same busybox + /data tree
(`base` fixture) and `docker run IMAGE sh -c COMMAND; docker diff CONTAINER`.
They are Docker's raw output: Docker prints the siblings of a directory in Go map
order (it varied between two `docker diff` calls of one container), deletions last;
we compare against that output brought into our deterministic order
(`docker_order_key`).  Here the same commands run with busybox under chroot in an
overlay mount (index=off, redirect_dir=off, metacopy=off).

Each case also checks the layer tars: the upper dir as a tar
(write_layer_from_upper) and the changes as a tar (write_layer_from_changes),
applied flat onto a copy of the image and as an overlay lower dir, must reproduce
the container's filesystem exactly.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import make_busybox_rootfs, requires_root
from test_archive_support import docker_order_key, in_chroot, overlay

from lamina.archive.changes import Change, changes_between, changes_from_upper
from lamina.archive.extract import apply_layer
from lamina.archive.layertar import write_layer_from_changes, write_layer_from_upper, write_tree

pytestmark = requires_root

ON_BASE = {
    's01': ('echo hi > /tmp/x',
            ['C /tmp', 'A /tmp/x']),
    's02': ('mkdir -p /newd/b/c && touch /newd/b/c/f /newd/a',
            ['A /newd', 'A /newd/a', 'A /newd/b', 'A /newd/b/c', 'A /newd/b/c/f']),
    's03': ('rm /etc/group',
            ['C /etc', 'D /etc/group']),
    's04': ('rm -rf /data/dir4',
            ['C /data', 'D /data/dir4']),
    's05': ('rm -rf /data/dir1 && mkdir /data/dir1 && touch /data/dir1/new',
            ['C /data', 'C /data/dir1', 'A /data/dir1/new', 'D /data/dir1/f2', 'D /data/dir1/sub', 'D /data/dir1/f1']),
    's06': ('rm /data/file1 && mkdir /data/file1 && touch /data/file1/x',
            ['C /data', 'C /data/file1', 'A /data/file1/x']),
    's07': ('rm -rf /data/dir2 && echo x > /data/dir2',
            ['C /data', 'C /data/dir2']),
    's08': ('chmod 600 /data/file2',
            ['C /data', 'C /data/file2']),
    's09': ('touch /data/file3',
            ['C /data', 'C /data/file3']),
    's10': ('chown 1:1 /data/file4',
            ['C /data', 'C /data/file4']),
    's11': ('chown root:root /data/file5 && touch /data/dir3/tmp && rm /data/dir3/tmp',
            []),
    's12': ('mv /data/a /data/moved',
            ['C /data', 'A /data/moved', 'D /data/a']),
    's13': ('ln -sf file2 /data/link',
            ['C /data', 'C /data/link']),
    's14': ('touch /data/zz /data/b-x /data/b0 && mkdir -p /data/b/c /data/b-y && chown 1 /data/dir5 && touch /data/dir5/k2',
            ['C /data', 'C /data/b-x', 'A /data/b-y', 'A /data/b0', 'A /data/b', 'A /data/b/c', 'C /data/dir5', 'A /data/dir5/k2', 'A /data/zz']),
    's15': ('mkfifo /data/fifo && mknod /data/cdev c 1 3 && ln /data/file6 /data/hl',
            ['C /data', 'A /data/fifo', 'A /data/cdev', 'A /data/hl']),
    's16': ('rm -rf /data/dir5 && mkdir /data/dir5',
            ['C /data', 'C /data/dir5', 'D /data/dir5/k']),
    's17': ('chmod 700 /data/dir3',
            ['C /data', 'C /data/dir3']),
    's18': ('rm /data/dir1/f1 && echo new > /data/dir1/f2 && rm -rf /data/dir1/sub',
            ['C /data', 'C /data/dir1', 'C /data/dir1/f2', 'D /data/dir1/sub', 'D /data/dir1/f1']),
    's19': ('rm -rf /data/dir2/sub && mkdir /data/dir2/sub && chmod 700 /data/dir2/sub',
            ['C /data', 'C /data/dir2', 'C /data/dir2/sub', 'D /data/dir2/sub/g2']),
    's20': ('rm /data/file1 && echo same > /data/file1',
            ['C /data', 'C /data/file1']),
}

ON_LAYER2 = {
    'm01': ('touch /data/file3',
            ['C /data', 'A /data/file3']),
    'm02': ('mkdir -p /data/dir4/x && touch /data/dir4/x/new',
            ['C /data', 'A /data/dir4', 'A /data/dir4/x', 'A /data/dir4/x/new']),
    'm03': ('rm -rf /data/dir1',
            ['C /data', 'D /data/dir1']),
    'm04': ('touch /data/dir1/f1',
            ['C /data', 'C /data/dir1', 'A /data/dir1/f1']),
    'm05': ('rm /data/dir3/h',
            ['C /data', 'C /data/dir3', 'D /data/dir3/h']),
    'm06': ('rm -rf /data/dir1 && mkdir /data/dir1',
            ['C /data', 'C /data/dir1', 'D /data/dir1/l2']),
    'm07': ('chmod 700 /data/l2dir',
            ['C /data', 'C /data/l2dir']),
    'm08': ('rm -rf /data/dir2 && mkdir -p /data/dir2/sub && touch /data/dir2/sub/g2',
            ['C /data', 'C /data/dir2', 'C /data/dir2/sub', 'C /data/dir2/sub/g2', 'D /data/dir2/g']),
    'm09': ('echo x > /data/dir1/l2 && rm /data/l2dir/q',
            ['C /data', 'C /data/dir1', 'C /data/dir1/l2', 'C /data/l2dir', 'D /data/l2dir/q']),
}

LAYER2 = (
    'rm -rf /data/dir1 && mkdir /data/dir1 && touch /data/dir1/l2 && rm /data/file3 && rm -rf /data/dir4 && echo l2 > /data/dir3/h && mkdir /data/l2dir && touch /data/l2dir/q',
    ['C /data', 'A /data/l2dir', 'A /data/l2dir/q', 'C /data/dir1', 'A /data/dir1/l2', 'D /data/dir1/f1', 'D /data/dir1/f2', 'D /data/dir1/sub', 'C /data/dir3', 'C /data/dir3/h', 'D /data/file3', 'D /data/dir4'],
)


def make_base(root: Path) -> Path:
    """The image the Docker runs used: busybox rootfs plus /data (mtimes 2020-09-13)."""
    make_busybox_rootfs(root)
    data = root / "data"
    for sub in ["dir1/sub", "dir2/sub", "dir3", "dir4/x/y", "dir5"]:
        (data / sub).mkdir(parents=True, exist_ok=True)
    for f in ["dir1/f1", "dir1/f2", "dir1/sub/f3", "dir2/g", "dir2/sub/g2", "dir3/h", "dir4/x/y/z", "dir5/k",
              "file1", "file2", "file3", "file4", "file5", "file6", "a", "b-x"]:
        (data / f).write_text(f + "\n")
    os.symlink("file1", data / "link")
    for p in [data, *data.rglob("*")]:
        os.utime(p, (1600000000, 1600000000), follow_symlinks=False)
    return root


def as_tar(write, *args) -> bytes:
    out = io.BytesIO()
    write(*args, out)
    return out.getvalue()


def apply_tar(data: bytes, root: Path, *, overlay_whiteouts: bool) -> None:
    apply_layer(io.BytesIO(data), str(root), overlay_whiteouts=overlay_whiteouts)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """Lower dirs of the image (top-most first) for base and base+layer2, and the
    same images flattened by applying their layer tars (copy fallback)."""
    work = tmp_path_factory.mktemp("image")
    base = make_base(work / "base")
    flat_base = work / "flat-base"
    flat_base.mkdir()
    apply_tar(as_tar(write_tree, str(base)), flat_base, overlay_whiteouts=False)
    # layer 2 is made like `docker commit`: run LAYER2's command, tar the upper dir
    with overlay(work / "m", [base], work / "u", work / "w") as merged:
        in_chroot(merged, LAYER2[0])
        assert [str(c) for c in changes_from_upper(str(work / "u"), [str(base)])] == sorted(
            LAYER2[1], key=docker_order_key)
    layer2_tar = as_tar(write_layer_from_upper, str(work / "u"))
    l2 = work / "l2"
    l2.mkdir()
    apply_tar(layer2_tar, l2, overlay_whiteouts=True)
    flat_l2 = work / "flat-l2"
    shutil.copytree(flat_base, flat_l2, symlinks=True)
    apply_tar(layer2_tar, flat_l2, overlay_whiteouts=False)
    return {"base": ([base], flat_base), "l2": ([l2, base], flat_l2), "work": work}


CASES = [pytest.param("base", *v, id=k) for k, v in ON_BASE.items()] + [
    pytest.param("l2", *v, id=k) for k, v in ON_LAYER2.items()]


@pytest.mark.parametrize("img, command, docker", CASES)
def test_changes_match_docker_diff(image, tmp_path, img, command, docker):
    lowers, flat_old = image[img]
    expected = sorted(docker, key=docker_order_key)
    upper = tmp_path / "upper"
    with overlay(tmp_path / "merged", lowers, upper, tmp_path / "work") as merged:
        in_chroot(merged, command)
        from_upper = changes_from_upper(str(upper), [str(p) for p in lowers])
        assert [str(c) for c in from_upper] == expected
        with overlay(tmp_path / "old", lowers) as old:
            assert [str(c) for c in changes_between(str(merged), str(old))] == expected
        # the copy fallback: the same answer between flat trees
        flat_new = tmp_path / "flat-new"
        subprocess.run(["cp", "-a", f"{merged}/.", str(flat_new)], check=True)
        assert [str(c) for c in changes_between(str(flat_new), str(flat_old))] == expected

        # layer tars reproduce the container's filesystem, flat and as an overlay lower
        upper_tar = as_tar(write_layer_from_upper, str(upper))
        changes_tar = as_tar(write_layer_from_changes, str(merged), from_upper)
        for name, tar in (("upper", upper_tar), ("changes", changes_tar)):
            flat = tmp_path / f"flat-{name}"
            shutil.copytree(flat_old, flat, symlinks=True)
            apply_tar(tar, flat, overlay_whiteouts=False)
            assert changes_between(str(flat), str(merged)) == [], name
        layer = tmp_path / "layer"
        layer.mkdir()
        apply_tar(upper_tar, layer, overlay_whiteouts=True)
        with overlay(tmp_path / "view", [layer, *lowers]) as view:
            assert changes_between(str(view), str(merged)) == []


# --------------------------------------------------------------------------- rules not covered by the Docker runs


def _touch(path: Path, data: bytes = b"", mtime_ns: int = 1_600_000_000_000_000_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_mtime_rule_zero_nanoseconds_and_sizes(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for root in (old, new):
        _touch(root / "same-second", mtime_ns=1_600_000_000_000_000_000 if root == old else 1_600_000_000_123_000_000)
        _touch(root / "both-ns", mtime_ns=1_600_000_000_100_000_000 if root == old else 1_600_000_000_200_000_000)
        _touch(root / "other-second", mtime_ns=1_600_000_000_000_000_000 if root == old else 1_600_000_001_000_000_000)
        _touch(root / "size", b"a" if root == old else b"ab")
        _touch(root / "dir/only-dir-mtime-differs", b"x")
        os.utime(root / "dir", ns=(1, 1) if root == old else (2, 2))
    assert [str(c) for c in changes_between(str(new), str(old))] == ["C /both-ns", "C /other-second", "C /size"]


def test_capability_change_is_a_change(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _touch(lower / "bin/ping", b"ping")
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)
    with overlay(tmp_path / "m", [lower], upper, tmp_path / "w") as merged:
        os.setxattr(merged / "bin/ping", "security.capability", cap)
        assert [str(c) for c in changes_from_upper(str(upper), [str(lower)])] == ["C /bin", "C /bin/ping"]
        assert [str(c) for c in changes_between(str(merged), str(lower))] == ["C /bin", "C /bin/ping"]


def test_block_devices_ignore_mtime_like_moby(tmp_path):
    # moby tests `mode & S_IFDIR == S_IFDIR`, which is also true for S_IFBLK
    old, new = tmp_path / "old", tmp_path / "new"
    for root, t in ((old, 1), (new, 2)):
        root.mkdir()
        os.mknod(root / "blk", 0o600 | 0o060000, os.makedev(7, 1))
        os.mknod(root / "chr", 0o600 | 0o020000, os.makedev(1, 3))
        for n in ("blk", "chr"):
            os.utime(root / n, (t, t))
    assert [str(c) for c in changes_between(str(new), str(old))] == ["C /chr"]


def test_lower_whiteouts_and_opaque_dirs_hide_what_is_below(tmp_path):
    """Lookups in the lowers stop at a whiteout or an opaque dir: recreating what
    a middle layer deleted is an addition, not a change."""
    bottom, middle, upper = tmp_path / "bottom", tmp_path / "middle", tmp_path / "upper"
    _touch(bottom / "gone", b"old")
    _touch(bottom / "opq/hidden", b"old")
    _touch(bottom / "opq/kept", b"old")
    middle.mkdir()
    os.mknod(middle / "gone", 0o600 | 0o020000, 0)
    (middle / "opq").mkdir()
    os.setxattr(middle / "opq", "trusted.overlay.opaque", b"y")
    _touch(middle / "opq/kept", b"old")
    os.utime(middle / "opq", (1, 1))
    lowers = [middle, bottom]
    with overlay(tmp_path / "m", lowers, upper, tmp_path / "w") as merged:
        (merged / "gone").write_bytes(b"old")
        (merged / "opq/hidden").write_bytes(b"old")
        os.unlink(merged / "opq/kept")
        expected = ["A /gone", "C /opq", "A /opq/hidden", "D /opq/kept"]
        assert [str(c) for c in changes_from_upper(str(upper), [str(p) for p in lowers])] == expected
        with overlay(tmp_path / "old", lowers) as old:
            assert [str(c) for c in changes_between(str(merged), str(old))] == expected


@requires_root
def test_every_kind_of_entry_below_an_added_directory(tmp_path):
    """Below an added directory only an entry's type is read (the directory's own d_type):
    every kind is listed, in name order, and a whiteout (char device 0:0) only in an
    overlay's upper dir is left out, as it was when each entry was stat'ed."""
    import socket

    upper, lower = tmp_path / "upper", tmp_path / "lower"
    lower.mkdir()
    new = upper / "new"
    (new / "sub").mkdir(parents=True)
    _touch(new / "sub" / "f")
    _touch(new / "file")
    os.symlink("/nowhere", new / "link")
    os.symlink("sub", new / "dirlink")
    os.mkfifo(new / "fifo")
    os.mknod(new / "null", 0o600 | 0o020000, os.makedev(1, 3))
    os.mknod(new / "wh", 0o600 | 0o020000, 0)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(new / "sock"))
    listed = ["A /new", "A /new/dirlink", "A /new/fifo", "A /new/file", "A /new/link", "A /new/null", "A /new/sock",
              "A /new/sub", "A /new/sub/f"]
    assert [str(c) for c in changes_from_upper(str(upper), [str(lower)])] == listed
    assert [str(c) for c in changes_between(str(upper), str(lower))] == sorted(listed + ["A /new/wh"])


def test_root_is_never_listed_and_order_is_by_name_not_path(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    for p in ("a-c", "a/b", "a.x", "b"):
        _touch(new / p)
    os.chmod(new, 0o700)
    assert [str(c) for c in changes_between(str(new), str(old))] == [
        "A /a", "A /a/b", "A /a-c", "A /a.x", "A /b"]


def test_change_value():
    assert str(Change("A", "/etc/hosts")) == "A /etc/hosts"
    for bad in (("X", "/a"), ("A", "a"), ("A", "/")):
        with pytest.raises(ValueError):
            Change(*bad)
