"""lamina/libc.py: libc's calls through bare _ctypes function pointers, errno included,
without importing ctypes (the run path's mounts and namespaces, issue 9's start-up)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from conftest import requires_root


def test_importing_libc_loads_no_ctypes():
    code = ("import sys; from lamina import libc; libc.function('getpid')(); "
            "print('ctypes' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")})
    assert out.stdout.strip() == "False"


def test_results_and_errno_as_ctypes_gives_them():
    from lamina import libc

    assert libc.function("getpid")() == os.getpid()
    umount2 = libc.function("umount2", libc.CharP, libc.Int)
    assert umount2(b"/nonexistent/lamina-libc-test", 2) == -1
    assert libc.errno() == errno.ENOENT


def test_an_unknown_symbol_is_an_attribute_error():
    from lamina import libc

    with pytest.raises(AttributeError):
        libc.function("lamina_no_such_function")


@requires_root
def test_mount_and_unmount_a_tmpfs(tmp_path):
    from lamina import libc

    mount = libc.function("mount", libc.CharP, libc.CharP, libc.CharP, libc.ULong, libc.CharP)
    umount2 = libc.function("umount2", libc.CharP, libc.Int)
    target = str(tmp_path / "m")
    os.mkdir(target)
    ms_nosuid_nodev_noexec = 0x2 | 0x4 | 0x8
    assert mount(b"lamina-libc", target.encode(), b"tmpfs", ms_nosuid_nodev_noexec, b"size=1m") == 0, \
        os.strerror(libc.errno())
    try:
        with open("/proc/self/mountinfo") as f:
            assert any(line.split()[4] == target for line in f)
    finally:
        assert umount2(target.encode(), 2) == 0
    assert umount2(target.encode(), 2) == -1 and libc.errno() == errno.EINVAL  # not mounted any more
