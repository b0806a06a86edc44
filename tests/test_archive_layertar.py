"""Layer tar writing: Docker's conventions, whiteout conversion, round trips, speed."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
from pathlib import Path

import pytest
from conftest import requires_root
from test_archive_support import tree_state

from lamina.archive.changes import Change, changes_between
from lamina.archive.extract import apply_layer
from lamina.archive.layertar import write_layer_from_changes, write_layer_from_upper, write_tree
from lamina.archive.tarwriter import encode_header
from lamina.digest import EMPTY_LAYER_DIFF_ID

pytestmark = requires_root

CAP_V2 = b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)
CAP_V3 = b"\x01\x00\x00\x03\x00\x20\x00\x00" + bytes(12) + b"\xe8\x03\x00\x00"  # rootid 1000


def tar_of(write, *args) -> bytes:
    out = io.BytesIO()
    write(*args, out)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    return list(tarfile.open(fileobj=io.BytesIO(data)))


def test_empty_layer_is_1024_zero_bytes(tmp_path):
    data = tar_of(write_tree, str(tmp_path))
    assert data == bytes(1024)
    assert "sha256:" + hashlib.sha256(data).hexdigest() == str(EMPTY_LAYER_DIFF_ID)
    assert "sha256:" + hashlib.sha256(tar_of(write_layer_from_changes, str(tmp_path), [])).hexdigest() == str(
        EMPTY_LAYER_DIFF_ID)


def special_tree(root: Path, *, cap_v3: bool = False) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin/su").write_bytes(b"su")
    os.chmod(root / "bin/su", 0o4755)
    (root / "bin/ping").write_bytes(b"ping")
    os.setxattr(root / "bin/ping", "security.capability", CAP_V2)
    os.setxattr(root / "bin/ping", "user.other", b"not exported")
    if cap_v3:  # exported as v2, so not part of the lossless round trip
        (root / "bin/v3").write_bytes(b"v3")
        os.setxattr(root / "bin/v3", "security.capability", CAP_V3)
    os.link(root / "bin/su", root / "bin/su2")
    os.symlink("su", root / "bin/sh")
    (root / "dev").mkdir()
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "dev/loop0", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    os.mkfifo(root / "dev/fifo", 0o600)
    (root / "home").mkdir()
    (root / "home/owned").write_bytes(b"o" * 513)
    os.chown(root / "home/owned", 1234, 5678)
    os.chmod(root / "home", 0o2775)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / ("long-" + "x" * 120)).write_bytes(b"")
    (root / "caf\u00e9").write_bytes(b"utf8 name")
    (root / os.fsdecode(b"raw\xff")).write_bytes(b"non-utf8 name")
    for p in [root, *root.rglob("*")]:
        os.utime(p, ns=(1_600_000_000_987_654_321, 1_600_000_000_987_654_321), follow_symlinks=False)
    return root


def test_docker_conventions(tmp_path):
    import socket

    root = special_tree(tmp_path / "root", cap_v3=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "tmp/sock"))  # sockets are skipped, as moby does
    data = tar_of(write_tree, str(root))
    sock.close()
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0
    assert data[-1536:-1024] != bytes(512)  # exactly two zero blocks, no 10240 padding
    got = {ti.name + ("/" if ti.isdir() else ""): ti for ti in members(data)}
    names = list(got)
    assert names[:3] == ["bin/", "bin/ping", "bin/sh"]  # sorted, parents first, no "./"
    assert "tmp/sock" not in got
    for ti in got.values():
        assert ti.uname == "" and ti.gname == "" and (ti.mtime == 1_600_000_000 or ti.name == "tmp")
        assert not {k for k in ti.pax_headers if k not in ("path", "SCHILY.xattr.security.capability")}
    assert got["bin/su"].mode == 0o104755 and got["home/"].mode == 0o42775 and got["tmp/"].mode == 0o41777
    assert (got["home/owned"].uid, got["home/owned"].gid, got["home/owned"].size) == (1234, 5678, 513)
    assert got["bin/su2"].type == tarfile.LNKTYPE and got["bin/su2"].linkname == "bin/su"
    assert got["bin/sh"].issym() and got["bin/sh"].linkname == "su"
    assert got["dev/null"].ischr() and (got["dev/null"].devmajor, got["dev/null"].devminor) == (1, 3)
    assert got["dev/loop0"].isblk() and got["dev/fifo"].isfifo()
    cap = got["bin/ping"].pax_headers["SCHILY.xattr.security.capability"]
    assert cap.encode("utf-8", "surrogateescape") == CAP_V2
    v3 = got["bin/v3"].pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
    assert v3 == b"\x01\x00\x00\x02" + CAP_V3[4:20]  # v3 stored as v2 (moby)
    assert "caf\u00e9" in got and os.fsdecode(b"raw\xff") in got and "long-" + "x" * 120 in got
    # raw header bytes: Go's mode field keeps the file type bits
    first = data[:512]
    assert first[100:108] == b"0040755\0" and first[257:265] == b"ustar\x0000"


def test_round_trip_keeps_everything(tmp_path, busybox_rootfs):
    """tree -> write_tree -> apply_layer -> changes_between shows no difference."""
    for src in (special_tree(tmp_path / "special"), busybox_rootfs):
        dest = tmp_path / ("copy-" + src.name)
        dest.mkdir()
        data = tar_of(write_tree, str(src))
        apply_layer(io.BytesIO(data), str(dest), overlay_whiteouts=False)
        assert changes_between(str(dest), str(src)) == []
        assert changes_between(str(src), str(dest)) == []
        assert tar_of(write_tree, str(dest)) == data  # deterministic and lossless
    assert os.getxattr(tmp_path / "copy-special/bin/ping", "security.capability") == CAP_V2
    st_src, st_dst = tree_state(tmp_path / "special"), tree_state(tmp_path / "copy-special")
    strip = lambda s: {k: v[:5] + v[6:8] for k, v in s.items()}  # mtime is whole seconds in a tar
    del st_src["bin/ping"], st_dst["bin/ping"]  # user.other is (rightly) not exported
    assert strip(st_src) == strip(st_dst)


def test_upper_dir_conversion(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc/gone", stat.S_IFCHR, 0)
    os.chown(upper / "etc/gone", 7, 8)
    os.utime(upper / "etc/gone", (1234, 1234))
    (upper / "opq").mkdir()
    os.chmod(upper / "opq", 0o2750)
    os.chown(upper / "opq", 3, 4)
    for key, value in (("trusted.overlay.opaque", b"y"), ("trusted.overlay.origin", b"x"),
                       ("trusted.overlay.impure", b"y")):
        os.setxattr(upper / "opq", key, value)
    (upper / "opq/new").write_bytes(b"n")
    os.mknod(upper / "dev1", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    got = [(ti.name, ti.type, ti.mode, ti.uid, ti.gid, ti.size, ti.mtime, dict(ti.pax_headers))
           for ti in members(tar_of(write_layer_from_upper, str(upper)))]
    names = [g[0] for g in got]
    assert names == ["dev1", "etc", "etc/.wh.gone", "opq", "opq/.wh..wh..opq", "opq/new"]
    assert got[2][1:] == (tarfile.REGTYPE, 0o600, 7, 8, 0, 1234, {})
    assert got[3][2] == 0o42750 and got[3][7] == {}  # no trusted.overlay.* ever
    assert got[4][1:] == (tarfile.REGTYPE, 0o750, 3, 4, 0, 0, {})  # dir perms, mtime 0 (moby)
    assert got[0][1] == tarfile.CHRTYPE  # only 0:0 devices are whiteouts


def test_changes_export(tmp_path):
    root = tmp_path / "root"
    (root / "etc/sub").mkdir(parents=True)
    (root / "etc/sub/new").write_bytes(b"new")
    (root / "etc/hosts").write_bytes(b"hosts")
    changes = [Change("C", "/etc"), Change("A", "/etc/sub"), Change("A", "/etc/sub/new"),
               Change("D", "/etc/group"), Change("C", "/etc/hosts"), Change("D", "/old")]
    got = [(ti.name, ti.type, ti.size) for ti in members(tar_of(write_layer_from_changes, str(root), changes))]
    assert got == [("etc", tarfile.DIRTYPE, 0), ("etc/.wh.group", tarfile.REGTYPE, 0),
                   ("etc/hosts", tarfile.REGTYPE, 5), ("etc/sub", tarfile.DIRTYPE, 0),
                   ("etc/sub/new", tarfile.REGTYPE, 3), (".wh.old", tarfile.REGTYPE, 0)]


def test_changes_export_never_follows_symlinks(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("/etc", root / "etc")
    from lamina.errors import StoreError

    with pytest.raises(StoreError, match="cannot export change A /etc/passwd"):
        tar_of(write_layer_from_changes, str(root), [Change("A", "/etc/passwd")])
    got = members(tar_of(write_layer_from_changes, str(root), [Change("A", "/etc")]))
    assert got[0].issym() and got[0].linkname == "/etc"


def test_go_header_encoding_details():
    long_dir = "d" * 120 + "/"
    h = encode_header(long_dir + "f", b"0", 0o100644, 0, 0, 0, 0)
    assert len(h) == 512 and h[345:345 + 120] == b"d" * 120  # USTAR prefix split, no PAX
    h = encode_header(long_dir, b"5", 0o40755, 0, 0, 0, 0, xattrs={"security.capability": b"\xff"})
    assert h[:len(long_dir) + 12].startswith(b"d" * 100)  # PaxHeaders.0 name truncated to 100
    assert b"SCHILY.xattr.security.capability=\xff\n" in h and b"path=" + long_dir.encode() in h
    big = encode_header("f", b"0", 0o100644, 3_000_000, 0, 0, -1)
    assert b" gid=" not in big and b"15 uid=3000000\n" in big and b"12 mtime=-1\n" in big


def _changed_tree(tmp_path: Path, n: int) -> tuple[Path, list[Change]]:
    root = tmp_path / "root"
    changes = []
    for d in range(n // 100):
        sub = root / f"dir{d:03d}"
        sub.mkdir(parents=True)
        changes.append(Change("A", f"/dir{d:03d}"))
        for f in range(100):
            (sub / f"file{f:03d}").write_bytes(b"x" * (f * 37))
            changes.append(Change("A", f"/dir{d:03d}/file{f:03d}"))
    return root, changes


def test_writing_3000_changed_files_is_fast(tmp_path):
    root, changes = _changed_tree(tmp_path, 3000)
    out = io.BytesIO()
    start = time.perf_counter()
    write_layer_from_changes(str(root), changes, out)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    write_layer_from_upper(str(root), io.BytesIO())
    elapsed_upper = time.perf_counter() - start
    assert len(members(out.getvalue())) == len(changes)
    # budget 0.5 s (typically ~0.1 s); the bound here is loose to stay robust on busy CI
    assert elapsed < 2.0 and elapsed_upper < 2.0, (elapsed, elapsed_upper)
