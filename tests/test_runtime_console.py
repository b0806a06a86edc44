"""`-t` through a real pty on our side: a child python whose controlling terminal is a pty
we hold the master of, running a container through the driver with tty=True."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from itertools import count
from pathlib import Path

import pytest
from conftest import requires_root, runtime_state_dir

from lamina.runtime.console import terminal_size

pytestmark = [requires_root, pytest.mark.root]
_ids = count()

CHILD = """
import json, os, sys
from lamina.errors import LaminaError
from lamina.runtime.console import terminal_size
from lamina.runtime.oci import select_runtime
from lamina.runtime.spec import RunSpec, write_bundle
a = json.loads(sys.argv[1])
spec = RunSpec(args=tuple(a["args"]), rootfs=a["rootfs"], terminal=True, console_size=terminal_size(), hostname="tty")
write_bundle(a["bundle"], spec)
rt = select_runtime(os.environ.get("LAMINA_RUNTIME"), state_root=a["store"] + "/runtime")
try:
    rc = rt.run(a["id"], a["bundle"], tty=True, interactive=a["interactive"])
except LaminaError as e:
    print("Error:", e, file=sys.stderr)
    rc = e.exit_code
raise SystemExit(rc)
"""


@pytest.fixture(scope="module")
def rootfs(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("runc") is None and shutil.which("crun") is None:
        pytest.skip("SKIPPED LOUDLY: neither runc nor crun is installed")
    dest = tmp_path_factory.mktemp("console") / "rootfs"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    os.chmod(dest, 0o755)
    return dest


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtySession:
    """A child `python -c CHILD` on a fresh pty (its controlling terminal), us on the master."""

    def __init__(self, tmp_path: Path, rootfs: Path, args: list[str], *, interactive: bool, size=(33, 101)) -> None:
        self.master, self.slave = os.openpty()
        set_size(self.slave, *size)
        self.initial_attrs = termios.tcgetattr(self.slave)
        self.store = tmp_path / "store"
        self.cid = f"lamina-tty-{os.getpid()}-{next(_ids)}"
        spec = {
            "args": args, "rootfs": str(rootfs), "bundle": str(tmp_path / f"b{next(_ids)}"),
            "store": str(self.store), "id": self.cid, "interactive": interactive,
        }  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(spec)],
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        self.buf = b""

    def read_until(self, needle: bytes, timeout: float = 15) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; got {self.buf!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    self.buf += os.read(self.master, 65536)
                except OSError:
                    break
        return self.buf

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 20) -> int:
        rc = self.proc.wait(timeout)
        while select.select([self.master], [], [], 0.1)[0]:  # collect the rest
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            self.buf += data
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture()
def session(tmp_path: Path, rootfs: Path):
    made: list[PtySession] = []

    def make(args: list[str], **kw) -> PtySession:
        s = PtySession(tmp_path, rootfs, args, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
        state_root = runtime_state_dir(s.store)
        assert not state_root.exists() or os.listdir(state_root) == []  # the runtime's state always deleted


def test_tty_inside_is_a_pty_with_our_size(session) -> None:
    s = session(["sh", "-c", "tty; stty size; echo TERM=$TERM; exit 5"], interactive=False)
    assert s.finish() == 5
    out = s.buf.replace(b"\r", b"")
    assert b"/dev/pts/0\n33 101\nTERM=xterm\n" in out


def test_typed_input_reaches_cat(session) -> None:
    s = session(["sh", "-c", "echo ready; cat; echo done:$?"], interactive=True)
    s.read_until(b"ready")
    s.write(b"hello world\r")
    s.read_until(b"hello world\r\nhello world\r\n")  # the container pty's echo, then cat
    s.write(b"\x04")  # ^D: EOF for cat, through the container's line discipline
    s.read_until(b"done:0")
    assert s.finish() == 0


def test_raw_mode_while_running_and_restored_after(session) -> None:
    s = session(["sh", "-c", "echo ready; read x; echo got:$x"], interactive=True)
    s.read_until(b"ready")
    during = termios.tcgetattr(s.slave)
    assert not during[3] & (termios.ECHO | termios.ICANON | termios.ISIG)
    s.write(b"abc\r")
    s.read_until(b"got:abc")
    assert s.finish() == 0
    assert termios.tcgetattr(s.slave) == s.initial_attrs


def test_ctrl_c_goes_to_the_container(session) -> None:
    s = session(["sh", "-c", "trap 'echo caught; exit 7' INT; echo ready; while :; do sleep 0.05; done"], interactive=True)
    s.read_until(b"ready")
    s.write(b"\x03")
    s.read_until(b"caught")
    assert s.finish() == 7


def test_ctrl_c_without_interactive_is_forwarded_as_a_signal(session) -> None:
    # Not raw: our terminal turns ^C into SIGINT for the child's group, which passes it on.
    s = session(["sh", "-c", "trap 'echo caught; exit 7' INT; echo ready; while :; do sleep 0.05; done"], interactive=False)
    s.read_until(b"ready")
    s.write(b"\x03")
    s.read_until(b"caught")
    assert s.finish() == 7


def test_window_resize_is_forwarded(session) -> None:
    s = session(["sh", "-c", "stty size; read x; stty size"], interactive=True)
    s.read_until(b"33 101")
    set_size(s.master, 40, 120)  # the kernel sends SIGWINCH to the child's process group
    time.sleep(0.3)
    s.write(b"\r")
    s.read_until(b"40 120")
    assert s.finish() == 0


def test_without_interactive_stdin_is_not_forwarded(session) -> None:
    s = session(["sh", "-c", "read -t 1 x; echo \"got:[$x]\""], interactive=False)
    s.write(b"secret\r")
    s.read_until(b"got:[")
    assert s.finish() == 0
    assert b"got:[]" in s.buf
    assert termios.tcgetattr(s.slave) == s.initial_attrs  # not raw without -i (^C stays a signal)


def test_signal_exit_code_with_tty(session) -> None:
    s = session(["sh", "-c", 'echo ready; sh -c "kill -9 \\$\\$"; exit $?'], interactive=False)
    assert s.finish() == 137


def test_missing_command_with_tty(session) -> None:
    s = session(["git"], interactive=True)
    assert s.finish() == 127
    assert b'exec: "git": executable file not found in $PATH' in s.buf
    assert termios.tcgetattr(s.slave) == s.initial_attrs
    assert b"Traceback" not in s.buf


def test_large_output_is_not_lost(session) -> None:
    s = session(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done; echo end"], interactive=False)
    s.read_until(b"end", timeout=60)
    assert s.finish() == 0
    assert s.buf.count(b"line") == 20000


def test_terminal_size_of_a_pty() -> None:
    master, slave = os.openpty()
    try:
        set_size(slave, 12, 34)
        assert terminal_size((slave,)) == (12, 34)
        r, w = os.pipe()
        assert terminal_size((r,)) is None
        os.close(r)
        os.close(w)
    finally:
        os.close(master)
        os.close(slave)
