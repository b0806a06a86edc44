"""docker cp's engine side (engine/archive.py) on a running container that fights back.

CVE-2018-15664 class: a process in the container swaps a directory on the copied
path for a symlink to a host directory between the engine's path resolution and its
open.  Every read and write must stay inside the container's root: the test loops
the swap in a real busybox container while it calls get_archive/stat_path/
put_archive many times, and asserts the host canary is never read nor written.
Plus plain correctness of the archive entries against what dockerd answers.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import requires_root

pytestmark = requires_root

SECRET = b"HOST-CANARY-7f3a9c"


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar):
    from lamina.engine.images import import_image
    from lamina.system import System

    root = tmp_path_factory.mktemp("race") / "store"
    system = System(str(root))
    with open(busybox_tar, "rb") as f:
        import_image(system, f, repository="busybox")
    yield system
    system.close()


def lamina(system, *args, check=True):
    return subprocess.run([sys.executable, "-m", "lamina", "--root", system.root, *args], capture_output=True,
                          text=True, check=check)


@pytest.fixture
def canary(tmp_path):
    d = tmp_path / "canary"
    d.mkdir()
    (d / "file").write_bytes(SECRET * 100)
    (d / "sub").mkdir()
    (d / "sub" / "g").write_bytes(SECRET)
    for i in range(1, 201):
        (d / f"f{i}").write_bytes(SECRET)
    return d


def run_container(system, name, script) -> str:
    """Run `script` in a busybox container; its host rootfs once it has made /ready."""
    cid = lamina(system, "run", "-d", "--name", name, "busybox", "sh", "-c", script).stdout.strip()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if lamina(system, "exec", name, "test", "-e", "/ready", check=False).returncode == 0:
            return os.path.join(system.containers.path(cid), "rootfs")
        time.sleep(0.1)
    raise AssertionError(f"{name} did not get ready")


def attack(canary) -> str:
    """/x/d and /y/d are, in turn, a real directory and a symlink to the host's
    canary (an absolute host path: what a path-following host process would walk
    into).  Both hold f1..f200, so a walk by path swapped midway reads the host's.
    The container's own loop moves /x/d with busybox mv (a gap in between)."""
    return (f"for t in x y; do mkdir -p /$t/d/sub; echo inside > /$t/d/file; echo in > /$t/d/sub/g; "
            f"ln -s {canary} /$t/link; for i in $(seq 200); do echo inside > /$t/d/f$i; done; done; "
            "touch /ready; "
            "while :; do mv /x/d /x/real; mv /x/link /x/d; mv /x/d /x/link; mv /x/real /x/d; done")


# /y/d <-> /y/link swapped atomically in a tight loop, as the CVE's exploit does from inside
# the container with renameat2(RENAME_EXCHANGE) (busybox has no such applet): the same rename
# the container's process would make, on its rootfs, with no gap for the reader to trip on.
EXCHANGE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (p.encode() for p in sys.argv[1:3])
while libc.renameat2(-100, a, -100, b, 2) == 0 or ctypes.get_errno() == 2:  # AT_FDCWD, RENAME_EXCHANGE
    pass  # (ENOENT: a copy is replacing one of the two)
sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
"""


@pytest.fixture
def attacked(store, canary):
    """(container name, paths to copy) while both swaps run."""
    rootfs = run_container(store, "racer", attack(canary))
    swap = subprocess.Popen([sys.executable, "-c", EXCHANGE, f"{rootfs}/y/d", f"{rootfs}/y/link"])
    try:
        yield "racer"
        assert swap.poll() is None, "the exchange loop stopped"
    finally:
        swap.kill()
        swap.wait()
        lamina(store, "rm", "-f", "racer", check=False)


PATHS = ("/x/d/file", "/y/d/file", "/x/d", "/y/d", "/y/d/.", "/x/d/.", "/y/d/sub/g", "/y/d/")


def tar_bytes(system, name, path) -> bytes:
    from lamina.engine.archive import get_archive

    buf = io.BytesIO()
    get_archive(system, name, path, lambda stat: buf)
    return buf.getvalue()


def test_get_archive_and_stat_never_read_the_host_through_a_swapped_dir(store, canary, attacked):
    from lamina.engine.archive import stat_path
    from lamina.errors import LaminaError

    read, i, deadline = 0, 0, time.monotonic() + 300
    while i < 400 or (not read and time.monotonic() < deadline):  # 400 tries, more until one has read
        path = PATHS[i % len(PATHS)]
        i += 1
        try:
            data = tar_bytes(store, attacked, path)
            stat = stat_path(store, attacked, path)
        except (LaminaError, OSError):
            continue  # the swap won the race: an error is fine, the host's bytes are not
        read += 1
        assert SECRET not in data, path
        assert stat["size"] != len(SECRET) * 100  # (a link's target is a path in the container: no leak)
    assert read > 0, "never read the real directory"
    assert lamina(store, "inspect", "-f", "{{.State.Running}}", attacked).stdout.strip() == "true"


def test_put_archive_never_writes_the_host_through_a_swapped_dir(store, canary, attacked):
    from lamina.engine.archive import put_archive
    from lamina.errors import LaminaError

    before = sorted(os.listdir(canary))
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tf:
        info = tarfile.TarInfo("pwned")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"pwned"))
    written, i, deadline = 0, 0, time.monotonic() + 300
    while i < 300 or (not written and time.monotonic() < deadline):  # 300 tries, more until one has written
        try:
            put_archive(store, attacked, ("/y/d", "/x/d", "/y/d/sub")[i % 3], io.BytesIO(payload.getvalue()))
            written += 1
        except (LaminaError, OSError):
            pass
        i += 1
        assert not (canary / "pwned").exists() and not (canary / "sub" / "pwned").exists()
    assert sorted(os.listdir(canary)) == before and (canary / "file").read_bytes() == SECRET * 100
    assert written > 0


def regular_files(top) -> list:
    """The regular files at or below `top`, no link followed (a copied link keeps its
    target, a host path here: docker cp copies the link, not what it names)."""
    if top.is_symlink() or not top.exists():
        return []
    return [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file() and not p.is_symlink()]


def test_cli_cp_under_attack_stays_in_the_container(store, canary, attacked, tmp_path):
    """`lamina cp` both ways is the same engine code: the same guarantee."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "pwned").write_text("pwned\n")
    outs, i, deadline = 0, 0, time.monotonic() + 300
    # twelve rounds at least, more until a copy out of a file has won a race (most lose it: an error
    # is fine, the host's bytes are not), so that the check below has something to check; the
    # deadline is far (a loaded machine runs few rounds a minute), never a count of tries
    while True:
        out = tmp_path / f"out{i}"
        got = lamina(store, "cp", f"{attacked}:{PATHS[i % len(PATHS)]}", str(out), check=False)
        assert "Traceback" not in got.stderr, got.stderr
        outs += bool(regular_files(out))
        lamina(store, "cp", str(src / "pwned"), f"{attacked}:/y/d", check=False)
        lamina(store, "cp", f"{src}/.", f"{attacked}:/y/d/", check=False)
        i += 1
        if i >= 12 and (outs or time.monotonic() > deadline):
            break
    copied = [p for p in regular_files(tmp_path) if not {canary, src} & set(p.parents)]
    assert copied, "nothing was copied out"
    assert not any(SECRET in p.read_bytes() for p in copied)
    assert not (canary / "pwned").exists()


def test_an_entry_gone_after_its_stat_is_not_found(store, busybox_tar):
    """The container moves the copied path away between the stat (the archive's
    header) and the walk: the copy reports it missing, in dockerd's words."""
    from lamina.engine.archive import get_archive
    from lamina.errors import NotFound

    lamina(store, "run", "--name", "mover", "busybox", "mkdir", "/d")
    try:
        rootfs = os.path.join(store.containers.path(store.containers.resolve("mover").id), "rootfs")

        def begin(stat):
            os.rename(os.path.join(rootfs, "d"), os.path.join(rootfs, "d2"))
            return io.BytesIO()

        with pytest.raises(NotFound, match="^Could not find the file /d in container mover$"):
            get_archive(store, "mover", "/d", begin)
    finally:
        lamina(store, "rm", "-f", "mover", check=False)


# ------------------------------------------------------------------ plain correctness


@pytest.fixture(scope="module")
def still(store):
    """A stopped container with a file, a tree, links inside the root and a dangling one."""
    lamina(store, "run", "--name", "still", "busybox", "sh", "-c",
           "mkdir -p /d/sub; echo hi > /d/f; echo s > /d/sub/g; ln -s /d /ld; ln -s f /d/lf; "
           "ln -s /etc /d/le; ln -s /ld /ld2; ln -s nothere /dang; ln -s ../../../d /d/sub/up")
    yield "still"
    lamina(store, "rm", "-f", "still", check=False)


def entries(data: bytes) -> list[tuple[str, bytes, str]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [(m.name, m.type, m.linkname) for m in tf]


def test_file_dir_and_symlink_entries(store, still):
    assert entries(tar_bytes(store, still, "/d/f")) == [("f", tarfile.REGTYPE, "")]
    assert entries(tar_bytes(store, still, "/d")) == [
        ("d", tarfile.DIRTYPE, ""), ("d/f", tarfile.REGTYPE, ""), ("d/le", tarfile.SYMTYPE, "/etc"),
        ("d/lf", tarfile.SYMTYPE, "f"), ("d/sub", tarfile.DIRTYPE, ""), ("d/sub/g", tarfile.REGTYPE, ""),
        ("d/sub/up", tarfile.SYMTYPE, "../../../d")]
    assert [e[0] for e in entries(tar_bytes(store, still, "/d/."))][:3] == [".", "./f", "./le"]
    assert entries(tar_bytes(store, still, "/ld")) == [("ld", tarfile.SYMTYPE, "/d")]  # the link itself
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(store, still, "/d/f"))) as tf:
        member = tf.next()
        assert tf.extractfile(member).read() == b"hi\n" and (member.uname, member.uid) == ("root", 0)
    assert tar_bytes(store, still, "/")[:2] == b"/\0"  # the root's entry is named `/`, as dockerd names it


def test_paths_through_links_inside_the_root_resolve_as_docker(store, still):
    from lamina.engine.archive import stat_path
    from lamina.errors import LaminaError, NotFound

    # a trailing `/` follows the last link; the entries keep the asked name
    assert [e[0] for e in entries(tar_bytes(store, still, "/ld/"))][:2] == ["ld", "ld/f"]
    assert entries(tar_bytes(store, still, "/ld2/sub/up/sub/g")) == [("g", tarfile.REGTYPE, "")]
    assert entries(tar_bytes(store, still, "/d/le/passwd"))[0][0] == "passwd"  # /etc of the container
    assert stat_path(store, still, "/ld2")["linkTarget"] == "/d"  # evaluated to its end, in the root
    assert stat_path(store, still, "/d/lf")["linkTarget"] == "/d/f"
    assert stat_path(store, still, "/dang")["linkTarget"] == "/nothere"
    assert stat_path(store, still, "/")["name"] == "/" and stat_path(store, still, "/d/.")["name"] == "."
    with pytest.raises(NotFound, match="^Could not find the file /nope in container still$"):
        stat_path(store, still, "/nope")
    with pytest.raises(LaminaError, match="not a directory"):
        tar_bytes(store, still, "/d/f/")
