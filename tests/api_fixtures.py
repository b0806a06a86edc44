"""`lamina system service` in a subprocess on a temp socket, and a raw HTTP client for it.

The service runs on its own store root; stopping it checks that it leaked nothing:
it exits 0 on SIGTERM, removes its socket, and has no child process and no thread
beyond its two own (accept loop, monitor) at that point.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAMINA = [sys.executable, "-m", "lamina"]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def socket_dir() -> Path:
    """A root-owned 0755 directory every user can traverse (pytest's basetemp is 0700,
    which would refuse a non-root client before the socket's own mode is tested)."""
    path = Path(tempfile.mkdtemp(prefix="lamina-api-test-", dir="/run" if os.path.isdir("/run") else None))
    os.chmod(path, 0o755)
    return path


class Service:
    def __init__(self, root: Path, sock_dir: Path | None = None, *, timeout: int = 0, args=(), env=None) -> None:
        self.own_dir = sock_dir is None
        sock_dir = sock_dir or socket_dir()
        sock_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(sock_dir, 0o755)
        self.sock_dir = sock_dir
        self.root = root
        root.parent.mkdir(parents=True, exist_ok=True)
        self.socket = str(sock_dir / "docker.sock")
        self.host = f"unix://{self.socket}"
        self.log_path = root.parent / f"service-{root.name}.log"
        self.log = open(self.log_path, "wb")
        argv = [*LAMINA, "--root", str(root), "system", "service", "--timeout", str(timeout), *args]
        if not any(a.startswith(("-H", "--host", "--socket")) for a in args):
            argv += ["--socket", self.socket]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.wait_ready()

    def wait_ready(self, deadline: float = 20) -> None:
        end = time.time() + deadline
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("service did not start: " + self.log_path.read_text())

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        """(status, headers, body bytes)."""
        conn = UnixHTTPConnection(self.socket, timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body=None):
        status, _, data = self.request(method, path, body=body)
        return status, json.loads(data) if data.strip() else None

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def children(self) -> list[int]:
        """Its child processes: each thread's (a worker thread's Popen is that thread's child)."""
        out = []
        try:
            tasks = os.listdir(f"/proc/{self.proc.pid}/task")
        except OSError:
            return []
        for task in tasks:
            try:
                with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                    out += [int(p) for p in f.read().split()]
            except OSError:
                continue  # the thread ended meanwhile
        return sorted(out)

    def stop(self, check: bool = True) -> None:
        if self.proc.poll() is None:
            # a child that stays is a leak; one on its way out is not (the monitor the
            # service boots for the next run is its child until it forks away)
            children, deadline = self.children(), time.time() + 30
            while children and time.time() < deadline:
                time.sleep(0.05)
                children = self.children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("service did not stop on SIGTERM: " + self.log_path.read_text())
            if check:
                assert children == [], f"service left child processes {children}"
                assert self.proc.returncode == 0, self.log_path.read_text()
                assert not os.path.exists(self.socket), "service left its socket"
        self.log.close()
        if self.own_dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
        if check:
            assert "Traceback" not in self.log_path.read_text(), self.log_path.read_text()


def lamina(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LAMINA, "--root", str(root), *args], capture_output=True, text=True, **kw)


def serve_store(tmp_path_factory, busybox_tar, name: str, base_ref: str):
    """A module's service: a fresh store holding busybox as `base_ref`, served while the
    module runs; afterwards its `system check` must pass (nothing left half-done)."""
    root = tmp_path_factory.mktemp(name) / "root"
    out = lamina(root, "import", str(busybox_tar), base_ref, timeout=120)
    assert out.returncode == 0, out.stderr
    svc = Service(root)
    yield svc
    svc.stop()
    check = lamina(root, "system", "check", timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
