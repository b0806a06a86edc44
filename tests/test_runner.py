"""The one container runner (lamina/runner.py), the process plumbing split out of
the runtime driver (runtime/process.py), and the one in-root resolver
(archive/inroot.find_dir) that COPY destinations use."""

from __future__ import annotations

import errno
import os

import pytest

from conftest import requires_root
from lamina.archive.inroot import InRoot, find_dir, host_path
from lamina.errors import BuildError, RuntimeFailure
from lamina.runtime import process


# --------------------------------------------------------------------------- runtime/process.py


def test_capture_returns_code_and_both_streams():
    rc, out, err = process.capture(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (rc, out, err) == (3, b"out\n", b"err\n")


def test_spawn_closes_inheritable_fds_and_gives_devnull_stdin():
    r, w = os.pipe()
    os.set_inheritable(w, True)
    out_r, out_w = os.pipe()
    try:
        pid = process.spawn(["/bin/sh", "-c", f"ls /proc/self/fd; read x; echo rc=$?"], stdin=None, stdout=out_w)
        os.close(out_w)
        os.waitpid(pid, 0)
        text = os.read(out_r, 65536).decode()
    finally:
        for fd in (r, w, out_r):
            os.close(fd)
    fds = [int(x) for x in text.split() if x.isdigit()]
    assert w not in fds  # not leaked into the runtime
    assert "rc=1" in text  # EOF from /dev/null


def test_spawn_of_a_missing_binary_is_a_one_line_error():
    with pytest.raises(RuntimeFailure, match="cannot execute /no/such/runc"):
        process.spawn(["/no/such/runc"], stdin=None)


def test_oci_driver_imports_no_heavy_modules():
    import subprocess
    import sys

    code = "import sys, lamina.runtime.oci; print(sorted({'subprocess','ctypes','select','termios'} & set(sys.modules)))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "[]"


# --------------------------------------------------------------------------- in-root resolver


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "file").write_text("x")
    os.symlink("/usr/lib", root / "lib")           # absolute: restarts at the root
    os.symlink("../../../../..", root / "usr" / "up")  # climbs: clamped at the root
    os.symlink("/etc", root / "usr" / "host-etc")  # would be the host's /etc if followed by the host
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("/missing/dir", root / "dangling")
    t = InRoot(str(root))
    yield root, t
    t.close()


def test_find_dir_follows_links_inside_the_root(tree):
    root, t = tree
    assert find_dir(t, "/lib") == "usr/lib"
    assert find_dir(t, "/usr/up/etc") == "etc"
    assert find_dir(t, "/usr/host-etc") == "etc"
    assert find_dir(t, "/") == ""
    assert host_path(str(root), find_dir(t, "/lib")) == f"{root}/usr/lib"
    assert host_path(str(root), "") == str(root)


def test_find_dir_missing_and_bad_components(tree):
    _, t = tree
    assert find_dir(t, "/usr/nope") is None
    assert find_dir(t, "/dangling") is None  # created later, through the link, by make_dirs
    with pytest.raises(NotADirectoryError):
        find_dir(t, "/etc/file")
    with pytest.raises(NotADirectoryError):
        find_dir(t, "/etc/file/below")
    with pytest.raises(OSError) as e:
        find_dir(t, "/loop1/x")
    assert e.value.errno == errno.ELOOP


def test_copy_destination_behind_a_link_stays_in_the_root(tree, tmp_path):
    from lamina.builder.fileops import Ownership, Writer

    root, _ = tree
    w = Writer(str(root), Ownership())
    assert w.resolve_dir("/usr/up/etc/new") == f"{root}/etc/new"
    assert (root / "etc" / "new").is_dir()
    assert w.resolve_dir("/dangling/sub") == f"{root}/missing/dir/sub"  # made through the link, in root
    assert w.dest_is_dir("/lib") and not w.dest_is_dir("/etc/file") and not w.dest_is_dir("/loop1")
    with pytest.raises(BuildError, match="cannot copy to non-directory: /etc/file"):
        w.resolve_dir("/etc/file")
    with pytest.raises(BuildError, match="cannot copy to non-directory: /loop1/x"):
        w.resolve_dir("/loop1/x")
    with pytest.raises(BuildError, match="no such directory"):
        w.resolve_dir("/usr/none", create=False)
    assert not os.path.exists("/missing")


# --------------------------------------------------------------------------- the runner


@requires_root
def test_a_failure_before_the_runtime_leaves_nothing_mounted_or_attached(tmp_path, busybox_tar):
    """The one runner's clean-up runs for a build step's hook failure as for `run`:
    the container is not left Up, mounted or with a live watchdog."""
    from lamina.digest import Digest
    from lamina.imageops import import_tarball
    from lamina.lifecycle import RunOptions, create
    from lamina.runner import Launch, run_container
    from lamina.snapshot.mount import is_mounted
    from lamina.system import System

    system = System(str(tmp_path / "store"))
    try:
        with open(busybox_tar, "rb") as f:
            image_id = import_tarball(system, f)
        rec = create(system, Digest(str(image_id)), "bb", RunOptions(cmd=("true",)))
        snap = system.snapshotter_for(rec)
        seen = {}

        def prepare(rootfs):
            seen["rootfs"] = rootfs
            seen["mounted"] = is_mounted(rootfs) if snap.name == "overlay" else True
            raise BuildError("refused by the hook")

        with pytest.raises(BuildError, match="refused by the hook"):
            run_container(system, rec, snap, system.unpack(image_id),
                          Launch(args=("true",), network="none"), prepare=prepare)
        assert seen["mounted"]
        if snap.name == "overlay":
            assert not is_mounted(seen["rootfs"])
        after = system.containers.get(rec.id)
        assert not after.running
        # and the same container then runs normally through `start`
        from lamina.lifecycle import start

        assert start(system, after) == 0
        assert system.containers.get(rec.id).exit_code == 0
    finally:
        system.close()


def test_a_build_steps_tmpfs_mounts_come_last_in_the_bundle(tmp_path):
    """RUN --mount=type=tmpfs goes through RunSpec like every other mount (no
    post-hoc edit of config.json), after the binds, as the builder had it."""
    from lamina.runtime.spec import RunSpec, build_spec
    from lamina.runtime.specmounts import BindMount, TmpfsMount

    spec = RunSpec(args=("true",), rootfs=str(tmp_path), mounts=(BindMount("/src", "/cache"),),
                   tmpfs=(TmpfsMount("/t", 1 << 20), TmpfsMount("/u")))
    mounts = build_spec(spec, nofile_hard=1024)["mounts"]
    assert [m["destination"] for m in mounts][-3:] == ["/cache", "/t", "/u"]
    assert mounts[-2] == {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "size=1048576"]}
    assert mounts[-1]["options"] == ["nosuid", "nodev"]
