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


def test_byref_passes_an_int_for_the_call_to_fill_in():
    """prctl's PR_GET_PDEATHSIG writes the signal set by PR_SET_PDEATHSIG through the pointer
    (in a child: the setting would outlive the test in this process)."""
    code = ("from lamina import libc; prctl = libc.function('prctl'); "
            "assert prctl(1, 15, 0, 0, 0) == 0, libc.errno(); "  # PR_SET_PDEATHSIG, SIGTERM
            "sig = libc.Int(0); assert prctl(2, libc.byref(sig), 0, 0, 0) == 0; print(sig.value)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")})
    assert out.stdout.strip() == "15"


def test_ctypes_is_imported_by_libc_py_only():
    import re

    src = os.path.join(os.path.dirname(__file__), "..", "src", "lamina")
    importers = []
    for folder, _, files in os.walk(src):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    if re.search(r"^\s*(import ctypes|from ctypes\b)", f.read(), re.M):
                        importers.append(os.path.relpath(path, src))
    assert importers == ["libc.py"]


def test_the_dns_server_s_subreaper_switch_through_libc():
    """network/dns.py reads and sets PR_SET_CHILD_SUBREAPER (its server must be init's orphan)."""
    code = ("import sys; from lamina.network.dns import _subreaper; "
            "print(_subreaper(None), _subreaper(True), _subreaper(None), _subreaper(False), _subreaper(None), "
            "'ctypes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")})
    assert out.stdout.split() == ["False", "True", "True", "False", "False", "False"]
