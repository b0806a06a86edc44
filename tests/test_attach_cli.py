"""`lamina attach` (issue 12) on real detached containers, driven through a real pty.

docker 20.10.24's behaviour, recorded on the development machine with `docker attach`
against containers of an imported busybox image: the detach keys print `read escape
sequence` on stderr and exit 1 (the CLI returns term's EscapeError), the container
keeps running; the end of the container ends attach with its exit code; a stopped
container is refused with the CLI's own words, bare, exit 1; a signal the client gets
is forwarded (no tty); with --sig-proxy=false a ctrl-c ends only the client."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import requires_root

LAMINA = [sys.executable, "-m", "lamina"]


def lamina(root, *args, check=True, timeout=60, **kw):
    p = subprocess.run(LAMINA + ["--root", str(root), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


class Pty:
    """A lamina command on a pty of its own: send keys, read what it shows, its exit."""

    def __init__(self, root, *args) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execvp(LAMINA[0], LAMINA + ["--root", str(root), *args])
        self.out = b""

    def read_until(self, needle: bytes, timeout: float = 15) -> bytes:
        end = time.monotonic() + timeout
        while needle not in self.out and time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.out += data
        assert needle in self.out, self.out
        return self.out

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 20) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if ready:
                    self.out += os.read(self.fd, 65536)
            except OSError:
                pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"still running: {self.out!r}")


@pytest.fixture
def store(tmp_path, busybox_tar):
    root = tmp_path / "store"
    lamina(root, "import", busybox_tar, "busybox:latest")
    yield root
    ids = lamina(root, "ps", "-aq", check=False).stdout.split()
    if ids:
        lamina(root, "rm", "-f", *ids, check=False)


def _status(root, name):
    return lamina(root, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()


@requires_root
def test_tty_shell_detach_keys_then_exit(store):
    lamina(store, "run", "-dit", "--name", "shell", "busybox", "sh")
    client = Pty(store, "attach", "shell")
    client.send(b"echo hel''lo\n")
    client.read_until(b"hello")
    client.send(b"\x10\x11")  # ctrl-p ctrl-q
    assert client.wait() == 1
    assert b"read escape sequence" in client.out
    assert _status(store, "shell") == ["running", "0"]
    client = Pty(store, "attach", "--detach-keys", "ctrl-x,y", "shell")
    client.send(b"echo ag''ain\n")
    client.read_until(b"again")
    client.send(b"\x18y")
    assert client.wait() == 1
    assert _status(store, "shell") == ["running", "0"]
    client = Pty(store, "attach", "shell")
    client.send(b"exit 5\n")
    assert client.wait() == 5
    assert b"read escape sequence" not in client.out
    assert _status(store, "shell") == ["exited", "5"]


@requires_root
def test_the_exit_code_of_a_removed_rm_container(store):
    """--rm removes the container at its exit: attach still ends with its code (docker
    20.10's attach does), read from the `die` event its monitor journaled before."""
    lamina(store, "run", "-dit", "--rm", "--name", "gone", "busybox", "sh")
    client = Pty(store, "attach", "gone")
    client.send(b"echo st''ill\n")
    client.read_until(b"still")
    client.send(b"exit 6\n")
    assert client.wait() == 6
    assert lamina(store, "inspect", "gone", check=False).returncode == 1


@requires_root
def test_output_and_exit_code_without_tty(store):
    lamina(store, "run", "-d", "--name", "job", "busybox", "sh", "-c", "sleep 1; echo out; echo err >&2; exit 3")
    p = lamina(store, "attach", "job", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    p = lamina(store, "attach", "job", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (
        1, "", "You cannot attach to a stopped container, start it first\n")
    p = lamina(store, "attach", "nosuch", check=False)
    assert (p.returncode, p.stderr) == (1, "Error: No such container: nosuch\n")


@requires_root
def test_signals_forwarded_or_not(store):
    script = 'trap "echo got-int; exit 8" INT; while true; do echo tick; sleep 0.1; done'
    lamina(store, "run", "-d", "--name", "trap", "busybox", "sh", "-c", script)
    client = Pty(store, "attach", "--sig-proxy=false", "trap")
    client.read_until(b"tick", timeout=60)  # it follows the output: its signal handling is set up
    client.send(b"\x03")  # the pty's ctrl-c: SIGINT to the client only
    assert client.wait() == -signal.SIGINT
    assert _status(store, "trap") == ["running", "0"]
    client = Pty(store, "attach", "trap")
    client.read_until(b"tick", timeout=60)
    client.send(b"\x03")
    client.read_until(b"got-int")
    assert client.wait() == 8


@requires_root
def test_stdin_through_the_relay_and_piped_detach(store):
    lamina(store, "run", "-di", "--name", "cat", "busybox", "sh", "-c", "cat; exit 4")
    # run -d attaches nothing: a client leaving does not close the container's stdin
    assert lamina(store, "inspect", "-f", "{{.Config.StdinOnce}}", "cat").stdout == "false\n"
    p = subprocess.Popen(LAMINA + ["--root", str(store), "attach", "cat"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(b"one\n\x10\x11two\n", timeout=30)
    assert (p.returncode, err) == (1, b"read escape sequence\n")
    time.sleep(0.5)
    assert _status(store, "cat") == ["running", "0"]
    assert b"one\n" in lamina(store, "logs", "cat").stdout.encode()
    assert b"two" not in lamina(store, "logs", "cat").stdout.encode()


@requires_root
def test_detach_key_spec(store):
    from lamina.runtime.detachkeys import Scanner, parse

    assert parse("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse("ctrl-@,ctrl-[,ctrl-_,DEL,a") == b"\x00\x1b\x1f\x7fa"
    for bad, key in (("ctrl-", "ctrl-"), ("x,,", ""), ("ctrl-A", "ctrl-A"), ("abc", "abc")):
        with pytest.raises(ValueError, match=f"^Unknown character: '{key}'$"):
            parse(bad)
    s = Scanner(b"\x10\x11")
    assert s.feed(b"a\x10") == (b"a", False)
    assert s.feed(b"b") == (b"\x10b", False)
    assert s.feed(b"\x10\x10\x11") == (b"\x10", True)
    lamina(store, "run", "-dit", "--name", "keys", "busybox", "sh")
    client = Pty(store, "attach", "--detach-keys", "ctrl-", "keys")
    assert client.wait() == 1
    assert b"Invalid detach keys (ctrl-) provided" in client.out
    p = lamina(store, "attach", "keys", check=False, stdin=subprocess.DEVNULL)
    assert (p.returncode, p.stderr) == (1, "the input device is not a TTY\n")


@requires_root
def test_exec_detach_keys_leave_the_process_running(store):
    lamina(store, "run", "-d", "--name", "svc", "busybox", "sleep", "300")
    client = Pty(store, "exec", "-it", "svc", "sh")
    client.send(b"sleep 1234 &\n")
    client.send(b"echo st''arted\n")
    client.read_until(b"started")
    client.send(b"\x10\x11")
    assert client.wait() == 1
    assert b"read escape sequence" in client.out
    time.sleep(0.5)
    ps = lamina(store, "exec", "svc", "ps").stdout
    assert "sleep 1234" in ps and " sh" in ps  # the shell and its job go on after the detach
    client = Pty(store, "exec", "-it", "--detach-keys", "ctrl-", "svc", "sh")
    assert client.wait() == 1
    assert b"Error response from daemon: Invalid escape keys (ctrl-) provided" in client.out
    client = Pty(store, "exec", "-it", "svc", "sh")
    client.send(b"exit 3\n")
    assert client.wait() == 3
