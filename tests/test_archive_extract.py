"""apply_layer: breakouts (moby testBreakout / containerd TestBreakouts style), special
files and malformed input.  Catalogue 4.A items 1-10 and 13.

Each breakout case extracts hand-built tar headers into tmp/dest next to
tmp/victim/hello and then checks that the victim is unchanged, nothing appeared
next to dest, no file in dest carries hello's content, and host canaries in /etc
are untouched; plus the case's own expectation (an in-root effect or an
InvalidArchive naming the entry).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import requires_root
from test_archive_support import Char, Dir, Fifo, File, Hardlink, Symlink, tar_stream

from lamina.archive.extract import apply_layer
from lamina.errors import InvalidArchive

pytestmark = requires_root

HOST_CANARIES = ("/etc/passwd", "/etc/shadow", "/etc/hostname", "/etc/group")


def _host_state() -> dict[str, tuple]:
    state = {}
    for path in HOST_CANARIES:
        if os.path.exists(path):
            st = os.lstat(path)
            state[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                           hashlib.sha256(Path(path).read_bytes()).hexdigest())
    return state


def _victim_state(victim: Path) -> dict[str, tuple]:
    out = {}
    for p in [victim, *victim.rglob("*")]:
        st = os.lstat(p)
        out[str(p)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size,
                       p.read_bytes() if p.is_file() else b"")
    return out


@dataclass
class Box:
    base: Path
    dest: Path
    victim: Path
    hello: Path
    secret: bytes
    victim_before: dict
    host_before: dict

    def apply(self, *entries, overlay: bool = False) -> int:
        return apply_layer(tar_stream(*entries), str(self.dest), overlay_whiteouts=overlay)

    def assert_confined(self) -> None:
        assert sorted(os.listdir(self.base)) == ["dest", "victim"]
        assert _victim_state(self.victim) == self.victim_before
        assert _host_state() == self.host_before
        assert self.dest.is_dir() and not self.dest.is_symlink()
        for p in self.dest.rglob("*"):
            if p.is_file() and not p.is_symlink():
                assert p.read_bytes() != self.secret, f"{p} has the victim's content"


@pytest.fixture
def box(tmp_path: Path) -> Box:
    dest, victim = tmp_path / "dest", tmp_path / "victim"
    dest.mkdir()
    victim.mkdir()
    hello = victim / "hello"
    secret = f"hello {time.time_ns()}".encode()
    hello.write_bytes(secret)
    os.chmod(hello, 0o644)
    os.utime(hello, (1_000_000_000, 1_000_000_000))
    return Box(tmp_path, dest, victim, hello, secret, _victim_state(victim), _host_state())


MODES = [pytest.param(False, id="flat"), pytest.param(True, id="overlay")]


def _links_to(path: Path, other: Path) -> bool:
    a, b = os.lstat(path), os.lstat(other)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# --------------------------------------------------------------------------- 4.A 1-3: names and symlinks


@pytest.mark.parametrize("overlay", MODES)
@pytest.mark.parametrize("name", ["../victim/hello", "/../victim/hello", "a/../../victim/hello",
                                  "./../../victim/hello", "/victim/hello"])
def test_dotdot_and_absolute_names_are_clamped_inside_root(box, overlay, name):
    box.apply(File(name, b"pwned"), overlay=overlay)
    box.assert_confined()
    assert (box.dest / "victim/hello").read_bytes() == b"pwned"


@pytest.mark.parametrize("overlay", MODES)
def test_absolute_etc_passwd_lands_in_root(box, overlay):
    box.apply(File("/etc/passwd", b"root::0:0::/:/bin/sh\n"), overlay=overlay)
    box.assert_confined()
    assert (box.dest / "etc/passwd").read_bytes() == b"root::0:0::/:/bin/sh\n"


@pytest.mark.parametrize("overlay", MODES)
@pytest.mark.parametrize(
    "link, write, lands",
    [
        ("../../..", "evil/x", "x"),
        ("/", "evil/x", "x"),
        ("/etc", "evil/passwd", "etc/passwd"),
        ("../victim", "evil/hello", "victim/hello"),
        ("../../../../../../../../../victim", "evil/hello", "victim/hello"),
        ("/../../victim/", "evil/hello", "victim/hello"),
    ],
)
def test_write_through_escaping_symlink_is_rerooted(box, overlay, link, write, lands):
    box.apply(Symlink("evil", link), File(write, b"pwned"), overlay=overlay)
    box.assert_confined()
    assert (box.dest / lands).read_bytes() == b"pwned"
    assert os.readlink(box.dest / "evil") == link  # symlinks are kept verbatim


@pytest.mark.parametrize("overlay", MODES)
def test_absolute_symlink_to_the_real_victim_is_rerooted(box, overlay):
    box.apply(Symlink("v", str(box.victim)), File("v/hello", b"pwned", mode=0o777, uid=1234), overlay=overlay)
    box.assert_confined()
    inside = box.dest / str(box.victim).lstrip("/") / "hello"
    assert inside.read_bytes() == b"pwned"
    assert os.stat(inside).st_uid == 1234


def test_symlink_from_an_earlier_layer_is_rerooted_too(box):
    box.apply(Symlink("etc", str(box.victim)))
    box.apply(File("etc/hello", b"pwned", mode=0o777), Dir("etc/sub", mode=0o777))
    box.assert_confined()
    assert (box.dest / str(box.victim).lstrip("/") / "hello").read_bytes() == b"pwned"


def test_symlink_loop_is_an_error_not_a_hang(box):
    with pytest.raises(InvalidArchive, match="too many levels of symbolic links"):
        box.apply(Symlink("a", "b"), Symlink("b", "a"), File("a/x"))
    box.assert_confined()


def test_self_referencing_symlink_entry_itself_is_fine(box):
    box.apply(Symlink("dash", "dash"), Symlink("up", "../../../../x"))  # kaniko: real images have these
    assert os.readlink(box.dest / "dash") == "dash"


def test_file_under_a_regular_file_is_an_error(box):
    with pytest.raises(InvalidArchive, match="'f/x'.*not a directory"):
        box.apply(File("f", b"data"), File("f/x"))


# --------------------------------------------------------------------------- 4.A 4-5: hardlinks


@pytest.mark.parametrize("overlay", MODES)
@pytest.mark.parametrize("target", ["../victim/hello", "/etc/shadow", "../../../../../../../etc/passwd",
                                    "esc/hello", "absesc/hello"])
def test_hardlink_outside_root_fails(box, overlay, target):
    with pytest.raises(InvalidArchive, match="hardlink 'h' .*target not found"):
        box.apply(Symlink("esc", "../victim"), Symlink("absesc", str(box.victim)),
                  Hardlink("h", target), overlay=overlay)
    box.assert_confined()


@pytest.mark.parametrize("overlay", MODES)
def test_hardlink_with_escaping_name_links_the_in_root_file(box, overlay):
    box.apply(File("victim/hello", b"inside"), Hardlink("h", "../victim/hello"),
              Hardlink("h2", "/victim/hello"), overlay=overlay)
    box.assert_confined()
    assert _links_to(box.dest / "h", box.dest / "victim/hello")
    assert _links_to(box.dest / "h2", box.dest / "victim/hello")
    assert os.lstat(box.dest / "h").st_nlink == 3


@pytest.mark.parametrize("target", [".", "", "/", "..", "a/..", "./"])
def test_hardlink_to_the_root_fails(box, target):
    with pytest.raises(InvalidArchive, match="target is the root directory"):
        box.apply(Hardlink("h", target))
    box.assert_confined()


def test_hardlink_to_a_directory_fails(box):
    with pytest.raises(InvalidArchive, match="target is a directory"):
        box.apply(Dir("d"), Hardlink("h", "d"))


def test_hardlink_to_symlink_links_the_symlink_itself(box):
    box.apply(Symlink("s", "/etc/passwd"), Hardlink("h", "s", mode=0o777, uid=1234))
    box.assert_confined()
    assert (box.dest / "h").is_symlink() and _links_to(box.dest / "h", box.dest / "s")
    assert os.readlink(box.dest / "h") == "/etc/passwd"


def test_hardlink_to_symlink_pointing_at_host_file_changes_no_host_metadata(box):
    box.apply(Symlink("s", str(box.hello)), Hardlink("h", "s", mode=0o777, uid=1234, gid=5678))
    box.assert_confined()
    assert os.lstat(box.dest / "h").st_uid == 1234  # lchown of the link, never the target


def test_symlink_before_its_target_and_hardlink_through_symlinked_dir(box):
    box.apply(Symlink("s", "target"), File("target", b"data"), Hardlink("h", "s"),
              Dir("real"), File("real/f", b"f"), Symlink("alias", "real"), Hardlink("h2", "alias/f"))
    assert _links_to(box.dest / "h", box.dest / "s")
    assert (box.dest / "h").read_bytes() == b"data"
    assert _links_to(box.dest / "h2", box.dest / "real/f")


# --------------------------------------------------------------------------- 4.A 6-8: root and replacing


@pytest.mark.parametrize("overlay", MODES)
@pytest.mark.parametrize("name", [".", "/", "./", "..", "", "sub/..", "./.", "a/../..", "//"])
@pytest.mark.parametrize("kind", ["symlink", "hardlink", "file", "fifo"])
def test_entries_that_would_replace_the_root_are_rejected(box, overlay, name, kind):
    entry = {"symlink": Symlink(name, str(box.victim)), "hardlink": Hardlink(name, "x"),
             "file": File(name, b"x"), "fifo": Fifo(name)}[kind]
    with pytest.raises(InvalidArchive, match="would replace the root directory"):
        box.apply(File("x", b"x"), entry, File("after/y", b"y"), overlay=overlay)
    box.assert_confined()
    assert not (box.dest / "after").exists()


@pytest.mark.parametrize("name", [".", "./", "/", ""])
def test_directory_entry_for_the_root_is_skipped(box, name):
    os.chmod(box.dest, 0o755)
    box.apply(Dir(name, mode=0o700, uid=1234), File("x", b"x"))
    assert stat.S_IMODE(os.stat(box.dest).st_mode) == 0o755 and os.stat(box.dest).st_uid == 0


def test_symlink_chain_stays_inside(box):
    box.apply(Dir("x"), Symlink("x/a", "."), Symlink("x/a/b", "."), Symlink("x/a/b/c", "../.."),
              File("x/c/victim/hello", b"pwned"), File("x/a/b/c/d", b"d"))
    box.assert_confined()
    assert os.readlink(box.dest / "x/b") == "." and os.readlink(box.dest / "x/c") == "../.."
    assert (box.dest / "victim/hello").read_bytes() == b"pwned"
    assert (box.dest / "d").read_bytes() == b"d"


@pytest.mark.parametrize("overlay", MODES)
def test_file_replaces_symlink_instead_of_writing_through(box, overlay):
    box.apply(Symlink("p", "../victim/hello"), File("p", b"pwned"),
              Symlink("q", str(box.hello)), File("q", b"pwned"), overlay=overlay)
    box.assert_confined()
    for name in "pq":
        assert not (box.dest / name).is_symlink() and (box.dest / name).read_bytes() == b"pwned"


def test_symlink_replaces_directory_and_later_writes_follow_it_inside(box):
    box.apply(Dir("d"), File("d/f", b"f"), Symlink("d", "../victim"), File("d/x", b"pwned"))
    box.assert_confined()
    assert (box.dest / "d").is_symlink() and (box.dest / "victim/x").read_bytes() == b"pwned"


def test_directory_replaces_symlink(box):
    box.apply(Symlink("d", str(box.victim)), Dir("d", mode=0o700, uid=1234), File("d/hello", b"x"))
    box.assert_confined()
    st = os.lstat(box.dest / "d")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 1234
    assert (box.dest / "d/hello").read_bytes() == b"x"


def test_replacing_rules(box):
    box.apply(Dir("a"), File("a/keep", b"k"), File("b", b"file"), Dir("c"), File("c/x"))
    box.apply(Dir("a", mode=0o700), Dir("b"), File("c", b"now a file"))
    assert (box.dest / "a/keep").read_bytes() == b"k"  # dir over dir merges
    assert stat.S_IMODE(os.stat(box.dest / "a").st_mode) == 0o700  # ...and updates metadata
    assert (box.dest / "b").is_dir()  # dir over file replaces
    assert (box.dest / "c").read_bytes() == b"now a file"  # file over dir removes the dir


# --------------------------------------------------------------------------- 4.A 9: metadata never via links


def test_metadata_of_symlink_entries_never_reaches_the_target(box):
    box.apply(Symlink("l", str(box.hello), uid=1234, gid=5678, mtime=5),
              Symlink("r", "../victim/hello", uid=1234, mtime=5))
    box.assert_confined()
    st = os.lstat(box.dest / "l")
    assert (st.st_uid, st.st_gid, st.st_mtime) == (1234, 5678, 5)


def test_dir_entry_over_symlink_to_host_dir_does_not_chmod_it(box):
    before = os.stat(box.victim)
    box.apply(Symlink("l", str(box.victim)), Dir("l", mode=0o777, uid=1234, mtime=5))
    box.assert_confined()
    after = os.stat(box.victim)
    assert (before.st_mode, before.st_uid) == (after.st_mode, after.st_uid)


# --------------------------------------------------------------------------- 4.A 10: whiteouts


@pytest.mark.parametrize("overlay", MODES)
@pytest.mark.parametrize("name", [".wh..", ".wh...", "etc/.wh..", ".wh.", "etc/.wh.", "a/b/.wh..."])
def test_invalid_whiteouts_are_rejected(box, overlay, name):
    with pytest.raises(InvalidArchive, match="invalid whiteout entry"):
        box.apply(Dir("etc"), File(name), overlay=overlay)
    box.assert_confined()


def test_whiteout_under_escaping_symlink_stays_inside_flat(box):
    box.apply(File("victim/hello", b"inside"), File("victim/other", b"o"))
    box.apply(Symlink("lnk", "../victim"), File("lnk/.wh.hello"),
              Symlink("abs", str(box.victim)), File("abs/.wh.hello"))
    box.assert_confined()
    assert not (box.dest / "victim/hello").exists() and (box.dest / "victim/other").exists()


def test_whiteout_under_escaping_symlink_stays_inside_overlay(box):
    box.apply(Symlink("lnk", "../victim"), File("lnk/.wh.hello"), overlay=True)
    box.assert_confined()
    st = os.lstat(box.dest / "victim/hello")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_opaque_marker_at_root_and_through_symlink(box):
    box.apply(File("a", b"a"), Dir("d"), File("d/x"))
    box.apply(File("b", b"b"), File(".wh..wh..opq"), File("c", b"c"), Symlink("lnk", "../victim"),
              File("lnk/.wh..wh..opq"))
    box.assert_confined()
    assert sorted(os.listdir(box.dest)) == ["b", "c", "lnk", "victim"]


# --------------------------------------------------------------------------- whiteout semantics


def test_overlay_whiteouts_become_devices_and_xattrs(box):
    box.apply(Dir("etc"), File("etc/.wh.gone", uid=1234, gid=5678), Dir("d"), File("d/.wh..wh..opq"),
              File("d/new", b"n"), Dir(".wh..wh.plnk"), File(".wh..wh.plnk/123", b"x"), overlay=True)
    st = os.lstat(box.dest / "etc/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and (st.st_uid, st.st_gid) == (1234, 5678)
    assert os.getxattr(box.dest / "d", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(box.dest)) == ["d", "etc"]


def test_flat_whiteouts_delete_lower_content_only(box):
    box.apply(Dir("etc"), File("etc/gone", b"x"), Dir("tree"), Dir("tree/sub"), File("tree/sub/f"),
              Symlink("etc/link", "/"), Dir("o"), File("o/lower1"), Dir("o/keep"), File("o/keep/lower2"))
    box.apply(File("etc/.wh.gone"), File(".wh.tree"), File("etc/.wh.link"), File("etc/.wh.missing"),
              File("nodir/.wh.x"),
              File("etc/mine", b"m"), File("etc/.wh.mine"),  # whiteouts never hide their own layer
              Dir("o"), File("o/-early", b"e"), File("o/.wh..wh..opq"), Dir("o/keep"), File("o/keep/new"))
    assert sorted(os.listdir(box.dest / "etc")) == ["mine"]
    assert not (box.dest / "tree").exists()
    assert sorted(str(p.relative_to(box.dest)) for p in (box.dest / "o").rglob("*")) == [
        "o/-early", "o/keep", "o/keep/new"]


def test_flat_opaque_before_the_dirs_own_entries(box):
    box.apply(Dir("o"), File("o/old"), Dir("o/sub"), File("o/sub/old"))
    box.apply(File("o/.wh..wh..opq"), Dir("o/sub"), File("o/sub/new"), File("o/z"))
    assert sorted(str(p.relative_to(box.dest)) for p in (box.dest / "o").rglob("*")) == [
        "o/sub", "o/sub/new", "o/z"]


def test_aufs_hardlink_sources_are_used_and_removed(box):
    box.apply(Dir(".wh..wh.plnk"), File(".wh..wh.plnk/1234.5678", b"shared"), Dir("bin"),
              Hardlink("bin/a", ".wh..wh.plnk/1234.5678"), Hardlink("bin/b", "/.wh..wh.plnk/1234.5678"),
              Dir(".wh..wh.aufs"), File(".wh..wh.orph/x"))
    assert sorted(os.listdir(box.dest)) == ["bin"]
    assert (box.dest / "bin/a").read_bytes() == b"shared" and _links_to(box.dest / "bin/a", box.dest / "bin/b")


# --------------------------------------------------------------------------- special files, owners, times


def test_special_files_owners_modes_and_times(box):
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    n = box.apply(
        Dir("bin", mode=0o755, mtime=111),
        File("bin/su", b"su", mode=0o4755),
        File("bin/wall", b"wall", mode=0o2755, gid=5),
        File("bin/ping", b"ping", mode=0o755,
             pax={"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape"),
                  "SCHILY.xattr.user.note": "hi", "SCHILY.xattr.trusted.overlay.opaque": "y",
                  "SCHILY.xattr.user.overlay.origin": "x"}),
        Dir("tmp", mode=0o1777),
        File("owned", b"o", mode=0o640, uid=1234, gid=5678, mtime=222),
        Dir("dev"), Char("dev/null", 1, 3, mode=0o666, uid=1234, gid=5678),
        Fifo("dev/fifo", mode=0o600, uid=1234),
        Hardlink("bin/su-again", "bin/su", mode=0o4755),  # a hardlink header carries the inode metadata
        Symlink("bin/sh", "busybox", uid=1234, gid=5678, mtime=333),
        File("exact", pax={"mtime": "1600000000.123456789"}),
    )
    d = box.dest
    assert n == len(b"su") + len(b"wall") + len(b"ping") + len(b"o")
    assert stat.S_IMODE(os.stat(d / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(d / "bin/wall").st_mode) == 0o2755 and os.stat(d / "bin/wall").st_gid == 5
    assert stat.S_IMODE(os.stat(d / "tmp").st_mode) == 0o1777
    assert os.getxattr(d / "bin/ping", "security.capability") == cap
    assert os.getxattr(d / "bin/ping", "user.note") == b"hi"
    assert not [x for x in os.listxattr(d / "bin/ping") if "overlay" in x]
    st = os.stat(d / "owned")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime) == (1234, 5678, 0o640, 222)
    st = os.lstat(d / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o666, 1234, 5678)
    st = os.lstat(d / "dev/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 1234
    assert _links_to(d / "bin/su", d / "bin/su-again") and os.stat(d / "bin/su").st_nlink == 2
    st = os.lstat(d / "bin/sh")
    assert os.readlink(d / "bin/sh") == "busybox" and (st.st_uid, st.st_gid, st.st_mtime) == (1234, 5678, 333)
    assert os.stat(d / "bin").st_mtime == 111  # directory times are restored after their children
    assert os.stat(d / "exact").st_mtime_ns == 1_600_000_000_123_456_789


def test_block_device(box):
    import tarfile

    from test_archive_support import Entry

    box.apply(Entry("dev/loop9", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=9))
    st = os.lstat(box.dest / "dev/loop9")
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 9)


def test_missing_parents_are_created_0755_whatever_the_umask(box):
    old = os.umask(0o077)
    try:
        box.apply(File("a/b/c/file", b"x", mode=0o600))
    finally:
        os.umask(old)
    for sub in ("a", "a/b", "a/b/c"):
        assert stat.S_IMODE(os.stat(box.dest / sub).st_mode) == 0o755
