"""`run -i`, `run -it` on a real pseudo-terminal, and `start -ai`."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time

import pytest

from conftest import requires_root
from test_cli_core import LAMINA, lamina, out

pytestmark = requires_root


@pytest.fixture
def root(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", str(busybox_tar), "bb:1")
    return root


def run_on_pty(argv, *, send: bytes = b"", rows=30, cols=100, timeout=30.0) -> tuple[int, bytes]:
    """Run argv with its stdio on a new pty of the given size; type `send`; return (status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    output = b""
    deadline = time.time() + timeout
    sent = False
    while time.time() < deadline:
        if send and not sent and time.time() > deadline - timeout + 1.0:
            os.write(fd, send)
            sent = True
        try:
            import select

            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                data = os.read(fd, 4096)
                if not data:
                    break
                output += data
        except OSError:  # EIO: the child side closed; collect its status below
            break
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            try:
                while True:
                    data = os.read(fd, 4096)
                    if not data:
                        break
                    output += data
            except OSError:
                pass
            return os.waitstatus_to_exitcode(status), output
    for _ in range(int(max(1.0, deadline - time.time()) * 10)):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), output
        time.sleep(0.1)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1, output


def test_run_it_gets_a_real_tty(root):
    code, output = run_on_pty(LAMINA + ["--root", str(root), "run", "-it", "--rm", "bb:1",
                                        "sh", "-c", "tty; stty size; echo TERM=$TERM"])
    text = output.decode(errors="replace")
    assert code == 0, text
    assert "/dev/pts/0" in text
    assert "30 100" in text
    assert "TERM=xterm" in text


def test_run_it_forwards_typed_input(root):
    code, output = run_on_pty(LAMINA + ["--root", str(root), "run", "-it", "--rm", "bb:1", "sh", "-c",
                                        "read line; echo got:$line"], send=b"hello\r")
    assert code == 0, output
    assert b"got:hello" in output


def test_run_i_pipes_stdin(root):
    p = subprocess.run(LAMINA + ["--root", str(root), "run", "-i", "--rm", "bb:1", "cat"],
                       input=b"piped data\n", capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == b"piped data\n"
    # without -i the container's stdin is closed: cat reads nothing and ends
    p = subprocess.run(LAMINA + ["--root", str(root), "run", "--rm", "bb:1", "cat"],
                       input=b"ignored\n", capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == b""


def test_start_ai_reattaches_stdin(root):
    lamina(root, "create", "--name", "again", "-i", "bb:1", "sh", "-c", "read x; echo start:$x")
    p = subprocess.run(LAMINA + ["--root", str(root), "start", "-ai", "again"], input=b"one\n",
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"start:one\n"
    ps = out(lamina(root, "ps", "-a", "--format", "{{.Names}} {{.Status}}"))
    assert ps.startswith("again Exited (0)")
