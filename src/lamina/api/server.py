"""Connections and requests: a thread per connection over http.server's parsing (the
framing pieces, bodies and streams, are in framing.py).

A `Request` is http.server's handler with what the Engine API adds: query values as
dockerd reads them, request bodies plain or chunked with caps, JSON answers with
docker's headers, chunked JSON streams flushed per message, raw streams, and the
hijacked connection of attach/exec (`hijack`).  A write to a client that went away
raises `ClientGone` in the thread doing the work, which unwinds it (leases, locks,
temporary files are released by the code that holds them).

Against slow clients: the request line and headers must arrive within
`header_timeout` (a monitor thread shuts the socket down otherwise, so a client
trickling bytes cannot keep a thread forever), each later read or write waits at
most IO_TIMEOUT, and JSON bodies are capped at MAX_JSON_BODY.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

from lamina import __version__ as VERSION
from lamina.api.framing import (ClientGone, HTTPError, Hijacked, JSONStream,  # noqa: F401 - imported from here
                                _Chunked, _Limited, _timeval)
from lamina.api.storepool import StorePool

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"
MAX_JSON_BODY = 4 << 20
IO_TIMEOUT = 120.0
IDLE_WORKER_S = 1.0
HEADER_TIMEOUT = float(os.environ.get("LAMINA_API_HEADER_TIMEOUT", "30"))  # shorter in the tests


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


class Service(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """The accept loop (a worker thread per open connection) and the monitor: header deadlines and
    the idle timeout (`timeout` seconds without a connection; 0 = never)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, listener, *, root: str | None = None, storage_driver: str | None = None,
                 runtime: str | None = None, timeout: float = 5.0, header_timeout: float = HEADER_TIMEOUT,
                 verbose: bool = False) -> None:
        super().__init__(listener.address, Request)
        self.listener = listener
        self.socket = listener.sock
        self.root, self.storage_driver, self.runtime = root, storage_driver, runtime
        self.idle_timeout = timeout
        self.header_timeout = header_timeout
        self.verbose = verbose
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}
        self._connections = 0
        self._last_active = time.monotonic()
        self._idle = 0  # worker threads waiting on _handoff for a connection
        self._handoff: queue.SimpleQueue = queue.SimpleQueue()
        self.stores = StorePool(root, storage_driver, runtime)  # store handles lent to requests

    # socketserver's hooks, for a socket made elsewhere
    def fileno(self) -> int:
        return self.socket.fileno()

    def get_request(self):
        conn, addr = self.socket.accept()
        return conn, addr

    def _refuse(self, request) -> None:
        """A peer that is neither root nor in the granted group: 403, in its own thread
        (reading what it sent first, so that closing does not reset the answer away)."""
        try:
            request.settimeout(2)
            request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n"
                            b"Content-Length: 47\r\n\r\n"
                            b'{"message":"permission denied: root only here"}')
            request.shutdown(socket.SHUT_WR)
            while request.recv(65536):
                pass
        except OSError:
            pass

    def shutdown_request(self, request) -> None:
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        request.close()

    def process_request(self, request, client_address) -> None:
        """A connection goes to an idle worker thread, or to a new one when none is idle:
        starting a thread is most of what a fresh connection costs (~0.2 ms, against
        dockerd's 0.07, of each `docker ps`), waking one is a few microseconds."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._handoff.put((request, client_address))
                return
        threading.Thread(target=self._worker, args=(request, client_address), daemon=True).start()

    def _worker(self, request, client_address) -> None:
        """Serve connections one after another; a worker that waited IDLE_WORKER_S for
        the next one ends (a burst of commands finds it warm, nothing lingers after).
        There is a worker per open connection: no slow client waits for another."""
        while True:
            self.process_request_thread(request, client_address)
            with self._lock:
                self._idle += 1
            try:
                request, client_address = self._handoff.get(timeout=IDLE_WORKER_S)
            except queue.Empty:
                with self._lock:  # a connection handed over meanwhile is still ours to serve
                    try:
                        request, client_address = self._handoff.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        return

    def process_request_thread(self, request, client_address) -> None:
        with self._lock:
            self._connections += 1
        try:
            if not self.listener.peer_allowed(request):
                self._refuse(request)
                self.shutdown_request(request)
                return
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections -= 1
                self._deadlines.pop(request, None)
                self._last_active = time.monotonic()

    def handle_error(self, request, client_address) -> None:
        if self.verbose:
            super().handle_error(request, client_address)

    def arm(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines[conn] = time.monotonic() + self.header_timeout

    def disarm(self, conn: socket.socket) -> bool:
        """False when the deadline had passed (the monitor cut the connection)."""
        with self._lock:
            return self._deadlines.pop(conn, None) is not None

    def monitor(self) -> None:
        """Every quarter second: cut connections whose headers are late; stop when idle."""
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._lock:
                late = [c for c, d in self._deadlines.items() if d <= now]
                for c in late:
                    del self._deadlines[c]
                idle = self._connections == 0 and now - self._last_active >= self.idle_timeout
            for c in late:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if self.idle_timeout and idle:
                self.shutdown()
                return

    def run(self) -> None:
        # One store handle held for the service's life: it recovers what a killed command
        # left before the first request, and, as the database's last connection never
        # closes between requests, SQLite does not checkpoint and delete its WAL after
        # each one (which made every request's open and close cost milliseconds).
        from lamina.system import System

        anchor = System(self.root, storage_driver=self.storage_driver, runtime=self.runtime)
        threading.Thread(target=self.monitor, name="lamina-api-monitor", daemon=True).start()
        try:
            self.serve_forever(poll_interval=0.25)
        finally:
            self.listener.close()
            self.stores.close()
            anchor.close()
