"""Transport details that need no registry: Retry-After, refused connections, TLS to a
plain-HTTP server, and the terminal progress display."""

from __future__ import annotations

import io
import time

import pytest

from registry_fixtures import registry, proxy  # noqa: F401 - pytest fixtures

from lamina.errors import RegistryError
from lamina.remote.hosts import Endpoint
from lamina.remote.transport import Transport, TransportOptions, retry_after
from lamina.transfer.progress import PlainProgress, TerminalProgress, bar, human_size


def test_retry_after_forms():
    assert retry_after("3") == 3.0
    assert retry_after("") is None and retry_after("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after(future) <= 31


def test_connection_refused_fails_fast():
    from registry_fixtures import free_port

    port = free_port()
    t = Transport(Endpoint(f"127.0.0.1:{port}", f"127.0.0.1:{port}", "http"), options=TransportOptions(backoff=0.01))
    start = time.time()
    with pytest.raises(RegistryError) as e:
        t.request("GET", "/v2/", what="ping")
    assert time.time() - start < 2
    assert str(e.value) == (f"Error response from registry 127.0.0.1:{port}: ping: connection refused "
                            "(gave up after 2 attempts)")


def test_https_to_plain_http_registry(registry):
    t = Transport(Endpoint(registry.host, registry.host, "https"), options=TransportOptions(backoff=0.01))
    with pytest.raises(RegistryError, match="TLS handshake failed.*LAMINA_INSECURE_REGISTRIES"):
        t.request("GET", "/v2/", what="ping")


def test_stalled_body_times_out(proxy):
    def stall(ex):
        h = ex.handler
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"x" * 10)
        h.wfile.flush()
        time.sleep(3)
        return True

    proxy.fault = stall
    t = Transport(Endpoint(proxy.host, proxy.host, "http"), options=TransportOptions(timeout=0.5))
    with t.request("GET", "/v2/", what="ping") as resp:
        with pytest.raises(OSError):
            resp.read(1000)


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_redraws_in_place():
    out = FakeTty()
    p = TerminalProgress(out)
    p.status("aaaaaaaaaaaa", "Pulling fs layer")
    p.status("bbbbbbbbbbbb", "Pulling fs layer")
    p.progress("aaaaaaaaaaaa", "Downloading", 50, 100)
    p.status("aaaaaaaaaaaa", "Pull complete")
    p.line("Digest: sha256:x")
    text = out.getvalue()
    assert "\x1b[2A" in text  # moved up two lines to redraw the first item
    assert "aaaaaaaaaaaa: Downloading [=========================>" in text
    assert text.endswith("Digest: sha256:x\n")
    assert bar(1, 2).endswith("]  1B/2B") and human_size(12_345_678) == "12.35MB"
    plain = io.StringIO()
    PlainProgress(plain).progress("a", "Downloading", 1, 2)
    assert plain.getvalue() == ""
