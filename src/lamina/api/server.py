"""Requests: http.server's parsing, for a connection the service (service.py: the
accept loop, a thread per connection) hands over; the framing pieces, bodies and
streams, are in framing.py.

A `Request` is http.server's handler with what the Engine API adds: query values as
dockerd reads them, request bodies plain or chunked with caps, JSON answers with
docker's headers, chunked JSON streams flushed per message, raw streams, and the
hijacked connection of attach/exec (`hijack`).  A write to a client that went away
raises `ClientGone` in the thread doing the work, which unwinds it (leases, locks,
temporary files are released by the code that holds them).

Against slow clients: the request line and headers must arrive within the service's
`header_timeout` (its monitor thread shuts the socket down otherwise, so a client
trickling bytes cannot keep a thread forever), each later read or write waits at
most IO_TIMEOUT, and JSON bodies are capped at MAX_JSON_BODY.
"""

from __future__ import annotations

import http.server
import json
import socket
import sys
import urllib.parse

from lamina import __version__ as VERSION
from lamina.api import API_VERSION
from lamina.api.framing import (ClientGone, HTTPError, Hijacked, JSONStream,  # noqa: F401 - imported from here
                                _Chunked, _Limited, _timeval)

MAX_JSON_BODY = 4 << 20
IO_TIMEOUT = 120.0


def query_bool(value: str | None, default: bool = False) -> bool:
    """dockerd's httputils.BoolValue: false for "", 0, no, false, none (any case)."""
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "no", "false", "none")


class Request(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"Lamina/{VERSION}"
    sys_version = ""
    timeout = IO_TIMEOUT
    wbufsize = -1  # headers and a small body leave in one write; streams flush per message

    # ------------------------------------------------------------------ the request
    def handle_one_request(self) -> None:
        self.server.arm(self.connection)
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            if not self.parse_request():
                return
        except (OSError, ValueError):
            self.close_connection = True
            return
        finally:
            late = not self.server.disarm(self.connection)
        if late:  # cut at the header deadline: what was parsed is a fragment
            self.close_connection = True
            return
        url = urllib.parse.urlsplit(self.path)
        self.url_path = urllib.parse.unquote(url.path)
        self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self._answered = False
        self._body_read = False
        self._system = None
        from lamina.api.routes import dispatch

        try:
            dispatch(self)
        finally:
            if self._system is not None:
                self.server.stores.give_back(self._system)
        if not self._body_read and not self.close_connection:
            self._drain_body()
        try:
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def q_all(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def q_bool(self, name: str, default: bool = False) -> bool:
        return query_bool(self.q(name), default)

    def q_json(self, name: str, default=None):
        text = self.q(name)
        if not text:
            return default
        try:
            return json.loads(text)
        except ValueError as e:
            raise HTTPError(400, f"invalid {name} parameter: {e}") from None

    @property
    def system(self):
        """The store for this request (one System per request at a time, as one per command;
        lent by the service's pool, api/storepool.py)."""
        if self._system is None:
            self._system = self.server.stores.take()
        return self._system

    def close_system(self) -> None:
        """Done with the store before the request ends (a stream that may last hours)."""
        if self._system is not None:
            self.server.stores.give_back(self._system)
            self._system = None

    def body(self):
        """The request body as a binary stream (de-chunked), for tar uploads of any size."""
        self._body_read = True
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return _Chunked(self.rfile)
        return _Limited(self.rfile, self._content_length())

    def json_body(self, default=None):
        """The request body parsed as JSON (docker-py and the CLI send `null` for none)."""
        length = self._content_length() if "chunked" not in (self.headers.get("Transfer-Encoding") or "") else None
        if length is not None and length > MAX_JSON_BODY:
            self.close_connection = True  # the body stays unread
            raise HTTPError(413, f"request body too large: {length} bytes (limit {MAX_JSON_BODY})")
        data = self.body().read(MAX_JSON_BODY + 1)
        if len(data) > MAX_JSON_BODY:
            self.close_connection = True
            raise HTTPError(413, f"request body too large (limit {MAX_JSON_BODY} bytes)")
        if not data.strip():
            return default
        try:
            value = json.loads(data)
        except ValueError as e:
            raise HTTPError(400, f"invalid JSON: {e}") from None
        return default if value is None else value

    def _content_length(self) -> int:
        text = self.headers.get("Content-Length")
        if text is None:
            return 0
        if not text.strip().isdigit():
            self.close_connection = True
            raise HTTPError(400, f"invalid Content-Length: {text!r}")
        return int(text)

    def _drain_body(self) -> None:
        """Read an unread small body so the next request on the connection parses; a large
        one closes the connection instead."""
        try:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self.close_connection = True
                return
            length = self._content_length()
            if length > 65536:
                self.close_connection = True
            elif length:
                self.rfile.read(length)
        except (OSError, HTTPError):
            self.close_connection = True

    # ------------------------------------------------------------------ answers
    def _headers(self, status: int, headers: dict, reason: str | None = None) -> None:
        if self._answered:
            raise RuntimeError("answered twice")
        self._answered = True
        self.send_response_only(status, reason)
        self.send_header("Date", self.date_time_string())
        self.send_header("Server", f"Lamina/{VERSION} (linux)")
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        for k, v in headers.items():
            self.send_header(k, v)
        try:
            self.end_headers()
        except OSError as e:
            self.close_connection = True
            raise ClientGone(str(e)) from None

    def send_bytes(self, status: int, data: bytes, content_type: str = "application/json",
                   headers: dict | None = None) -> None:
        self._headers(status, {"Content-Type": content_type, "Content-Length": str(len(data)), **(headers or {})})
        if self.command != "HEAD":
            self._write(data)

    def send_json(self, status: int, value, headers: dict | None = None) -> None:
        self.send_bytes(status, json.dumps(value).encode() + b"\n", headers=headers)

    def send_empty(self, status: int = 204) -> None:
        self._headers(status, {"Content-Length": "0"} if status != 204 else {})

    def send_error_json(self, status: int, message: str) -> None:
        self.send_json(status, {"message": message})

    @property
    def answered(self) -> bool:
        return self._answered

    def stream_json(self) -> "JSONStream":
        """A chunked stream of JSON messages; headers go out with the first message, so an
        error before it is still an HTTP status."""
        return JSONStream(self)

    def raw_stream(self, content_type: str = "application/x-tar") -> int:
        """Send headers for a body that runs to the connection's end; the socket's fd, in
        blocking mode with a kernel send timeout, for engine code that writes to an fd."""
        self.close_connection = True
        self._headers(200, {"Content-Type": content_type, "Connection": "close"})
        self.wfile.flush()
        sock = self.connection
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(IO_TIMEOUT))
        return sock.fileno()

    def hijack(self, content_type: str = "application/vnd.docker.raw-stream") -> "Hijacked":
        """Take the connection over (attach, exec start): `101 UPGRADED` when the client
        asked to upgrade (the v20 CLI insists), `200 OK` otherwise, then the raw socket
        both ways.  The caller owns it until it returns; the connection is closed after."""
        upgrade = "upgrade" in (self.headers.get("Connection") or "").lower()
        self.close_connection = True
        self._body_read = True
        if upgrade:
            self._headers(101, {"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"},
                          reason="UPGRADED")
        else:
            self._headers(200, {"Content-Type": content_type})
        self.wfile.flush()
        self.connection.settimeout(None)
        return Hijacked(self.connection, self.rfile)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as e:
            self.close_connection = True
            raise ClientGone(str(e)) from None

    def client_gone(self) -> bool:
        """True once the client has closed its end (polled by long waits such as /events)."""
        import select

        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's name
        if self.server.verbose:
            sys.stderr.write("%s\n" % (format % args))
