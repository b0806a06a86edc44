"""Real registries on loopback for the registry tests, plus the faults we need.

- `registry`: Debian's docker-registry (CNCF distribution), no auth.
- `basic_registry`: the same behind htpasswd Basic auth (alice / s3cret).
- `token_registry`: `auth: token`, backed by `TokenServer` (a tiny http.server that
  issues RS256 JWTs signed with a key whose self-signed cert is the registry's
  rootcertbundle; signing is done with the openssl CLI).
- `TamperProxy`: an HTTP proxy in front of a registry whose `fault` hook can
  rewrite any exchange (wrong bytes, truncation, endless bodies, 5xx, 429…).
- `Recorder`: a server on 127.0.0.2 (another host) that records what reaches it.

Import the fixtures into a test module with `from registry_fixtures import *`.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

REGISTRY_BIN = shutil.which("docker-registry")
USER, PASSWORD = "alice", "s3cret"

requires_registry = pytest.mark.skipif(REGISTRY_BIN is None, reason="SKIPPED LOUDLY: docker-registry not installed")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RegistryServer:
    def __init__(self, workdir: Path, auth: str = "") -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.workdir = workdir
        (workdir / "storage").mkdir(parents=True, exist_ok=True)
        config = (
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n  secret: lamina-test-secret\n"
            + auth
        )
        (workdir / "config.yml").write_text(config)
        self.log = open(workdir / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(workdir / "config.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection(self.host, timeout=1)
                c.request("GET", "/v2/")
                c.getresponse().read()
                c.close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"registry did not start: {(workdir / 'registry.log').read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# -- token auth --------------------------------------------------------------------------
class _QuietServer(http.server.ThreadingHTTPServer):
    """Clients that hang up mid-response are part of the tests, not errors to print."""

    def handle_error(self, request, client_address) -> None:
        pass


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry tokens: anonymous requests get pull on `public/*` only,
    alice/s3cret gets whatever she asks for."""

    def __init__(self, workdir: Path, service: str = "lamina-test", issuer: str = "lamina-test-issuer",
                 host: str = "127.0.0.1") -> None:
        self.key = workdir / "token.key"
        self.cert = workdir / "token.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=lamina-token"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.service, self.issuer = service, issuer
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                server.requests.append({"path": self.path, "authorization": auth, "scopes": q.get("scope", [])})
                user = None
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if (u, p) != (USER, PASSWORD):
                        body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]}).encode()
                        self.send_response(401)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    user = u
                access = []
                for scope in q.get("scope", []):
                    kind, name, actions = scope.split(":")
                    granted = actions.split(",") if user else (["pull"] if name.startswith("public/") else [])
                    access.append({"type": kind, "name": name, "actions": granted})
                body = json.dumps({"token": server.token(user or "", access), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = free_port(host)
        self.httpd = _QuietServer((host, self.port), Handler)
        self.realm = f"http://{host}:{self.port}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, subject: str, access: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                             check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def auth_config(self) -> str:
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {self.service}\n"
                f"    issuer: {self.issuer}\n    rootcertbundle: {self.cert}\n")

    def stop(self) -> None:
        self.httpd.shutdown()


# -- fault injection ---------------------------------------------------------------------
class Exchange:
    """One proxied request, as the fault hook sees it."""

    def __init__(self, handler, method: str, path: str, headers: dict, body: bytes) -> None:
        self.handler, self.method, self.path, self.headers, self.body = handler, method, path, headers, body

    def respond(self, status: int, body: bytes = b"", headers: dict | None = None, *, length: int | None = None,
                close: bool = False) -> None:
        h = self.handler
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        if close:
            h.send_header("Connection", "close")
        h.end_headers()
        if self.method != "HEAD":
            h.wfile.write(body)
        if close:
            h.close_connection = True

    def upstream(self) -> tuple[int, dict, bytes]:
        return self.handler.server.proxy.forward(self.method, self.path, self.headers, self.body)


class TamperProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.log: list[tuple[str, str, dict]] = []
        self.fault = None  # callable(Exchange) -> bool (True when it answered)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self):
                body = self._body()
                headers = {k: v for k, v in self.headers.items()}
                proxy.log.append((self.command, self.path, headers))
                ex = Exchange(self, self.command, self.path, headers, body)
                if proxy.fault is not None and proxy.fault(ex):
                    return
                status, rheaders, rbody = ex.upstream()
                ex.respond(status, rbody, rheaders)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.httpd = _QuietServer(("127.0.0.1", self.port), Handler)
        self.httpd.proxy = self
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
        c = http.client.HTTPConnection(self.upstream, timeout=30)
        hdrs = {k: v for k, v in headers.items()
                if k.lower() not in ("host", "connection", "content-length", "transfer-encoding")}
        c.request(method, path, body=body or None, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        out = {k: v for k, v in r.getheaders()
               if k.lower() not in ("content-length", "connection", "transfer-encoding", "date")}
        if "Location" in out:  # keep the client talking to us
            out["Location"] = out["Location"].replace(f"http://{self.upstream}", f"http://{self.host}")
        c.close()
        return r.status, out, data

    def stop(self) -> None:
        self.httpd.shutdown()


class Recorder:
    """A server on another host (127.0.0.2) that records headers and answers `reply`."""

    def __init__(self, reply=None) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.reply = reply or (lambda path: (200, {"Content-Type": "application/json"},
                                             json.dumps({"token": "evil-token"}).encode()))
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                rec.requests.append((self.path, {k: v for k, v in self.headers.items()}))
                status, headers, body = rec.reply(self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = free_port("127.0.0.2")
        self.host = f"127.0.0.2:{self.port}"
        self.httpd = _QuietServer(("127.0.0.2", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    if REGISTRY_BIN is None:
        pytest.skip("SKIPPED LOUDLY: docker-registry not installed")
    r = RegistryServer(tmp_path_factory.mktemp("registry"))
    yield r
    r.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory):
    if REGISTRY_BIN is None:
        pytest.skip("SKIPPED LOUDLY: docker-registry not installed")
    work = tmp_path_factory.mktemp("basic-registry")
    line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True).stdout
    (work / "htpasswd").write_text(line.strip() + "\n")
    r = RegistryServer(work, f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {work / 'htpasswd'}\n")
    yield r
    r.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory):
    if REGISTRY_BIN is None:
        pytest.skip("SKIPPED LOUDLY: docker-registry not installed")
    work = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(work)
    r = RegistryServer(work, tokens.auth_config())
    r.tokens = tokens
    yield r
    r.stop()
    tokens.stop()


@pytest.fixture
def proxy(registry):
    p = TamperProxy(registry.host)
    yield p
    p.stop()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.stop()


@pytest.fixture
def docker_config(tmp_path, monkeypatch) -> Path:
    """An empty DOCKER_CONFIG dir for this test (never the user's ~/.docker)."""
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.setenv("LAMINA_REGISTRY_ATTEMPTS", "3")
    return d


def login_file(config_dir: Path, host: str, user: str = USER, password: str = PASSWORD) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


# -- images made with the store API ------------------------------------------------------
def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_image(system, layers: list[bytes], tag: str | None = None, *, cmd=("sh",)):
    """An image with these uncompressed layer tars, as `import`/`commit` store them."""
    from lamina import oci
    from lamina.reference import parse
    from lamina.store.images import LayerBlob

    config = oci.new_config()
    config["config"]["Cmd"] = list(cmd)
    config["config"]["Env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    blobs = []
    for i, data in enumerate(layers):
        diff_id = system.content.put_bytes(data)
        blobs.append(LayerBlob(oci.Descriptor(oci.OCI_LAYER, diff_id, len(data)), diff_id))
        config["history"].append({"created": config["created"], "created_by": f"layer {i}"})
    config["rootfs"]["diff_ids"] = [str(b.diff_id) for b in blobs]
    tags = (parse(tag),) if tag else ()
    return system.images.create(oci.dumps(config), blobs, size=sum(len(l) for l in layers), tags=tags)


def assert_store_ok(system) -> None:
    """Invariant I2: every blob hashes to its name, every image's blobs exist."""
    from lamina.check import check_store

    problems, _ = check_store(system)
    assert problems == []
    for name in os.listdir(system.content.ingest_dir):
        raise AssertionError(f"ingest leftover {name}")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- raw registry writes (to build documents lamina would never push) ---------------------
def _request(host: str, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    c = http.client.HTTPConnection(host, timeout=30)
    c.request(method, path, body=body, headers={"Content-Length": str(len(body)), **(headers or {})})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def put_blob(host: str, repo: str, data: bytes) -> str:
    status, headers, _ = _request(host, "POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, status
    loc = urllib.parse.urlsplit(headers["Location"])
    sep = "&" if loc.query else "?"
    digest = sha256(data)
    status, _, body = _request(host, "PUT", f"{loc.path}?{loc.query}{sep}digest={digest}", data,
                               {"Content-Type": "application/octet-stream"})
    assert status == 201, (status, body)
    return digest


def put_manifest(host: str, repo: str, ref: str, doc: dict | bytes, media_type: str) -> str:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    status, _, body = _request(host, "PUT", f"/v2/{repo}/manifests/{ref}", raw, {"Content-Type": media_type})
    assert status == 201, (status, body)
    return sha256(raw)


def push_raw_image(host: str, repo: str, tag: str, layers: list[bytes], *, compress=None, arch: str = "amd64",
                   docker_types: bool = False, diff_ids: list[str] | None = None, extra: dict | None = None):
    """Push an image by hand: layers as given (compress(layer) -> bytes to store), our own config.
    Returns (manifest digest, config digest)."""
    from lamina import oci

    config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha256(l) for l in layers]},
              "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}
    config.update(extra or {})
    raw_config = json.dumps(config).encode()
    config_digest = put_blob(host, repo, raw_config)
    descs = []
    for layer in layers:
        blob = compress(layer) if compress else layer
        if compress is None:
            media = oci.DOCKER_LAYER if docker_types else oci.OCI_LAYER
        else:
            media = oci.DOCKER_LAYER_GZIP if docker_types else (
                oci.OCI_LAYER_ZSTD if blob[:4] == b"\x28\xb5\x2f\xfd" else oci.OCI_LAYER_GZIP)
        descs.append({"mediaType": media, "digest": put_blob(host, repo, blob), "size": len(blob)})
    mtype = oci.DOCKER_MANIFEST if docker_types else oci.OCI_MANIFEST
    manifest = {"schemaVersion": 2, "mediaType": mtype,
                "config": {"mediaType": oci.DOCKER_CONFIG if docker_types else oci.OCI_CONFIG,
                           "digest": config_digest, "size": len(raw_config)},
                "layers": descs}
    return put_manifest(host, repo, tag, manifest, mtype), config_digest


__all__ = ["registry", "basic_registry", "token_registry", "proxy", "recorder", "docker_config",
           "requires_registry", "login_file", "make_image", "tar_bytes", "assert_store_ok", "sha256",
           "TamperProxy", "Recorder", "Exchange", "USER", "PASSWORD", "put_blob", "put_manifest",
           "push_raw_image"]
