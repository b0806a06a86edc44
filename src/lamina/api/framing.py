"""HTTP framing under the Engine API's requests: request bodies (Content-Length or
chunked, as the Go client uploads build contexts and `load` tars), chunked JSON
message streams (pull, push, build, load, events), hijacked connections (attach,
exec), and the two failures a handler meets besides the engine's errors."""

from __future__ import annotations

import json
import socket
import threading

class ClientGone(ConnectionError):
    """The client closed its connection while we were answering it."""


class HTTPError(Exception):
    """An answer other than the engine's errors (bad framing, unknown route, body too large)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Hijacked:
    """A connection after the upgrade: `reader` has what the client sent after its
    headers (buffered), `sock` is for writing and for half-closing."""

    def __init__(self, sock: socket.socket, reader) -> None:
        self.sock = sock
        self.reader = reader


class JSONStream:
    """Chunked `application/json` messages, each flushed (docker-py decodes per chunk)."""

    def __init__(self, request) -> None:  # a server.Request
        self._request = request
        self._lock = threading.Lock()  # pull reports from its download threads
        self.started = False
        self.closed = False

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self._request._headers(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})

    def begin(self) -> None:
        """Send the headers now (a client of /events waits for them before it reads on)."""
        with self._lock:
            self._start()
            try:
                self._request.wfile.flush()
            except OSError as e:
                self.closed = True
                raise ClientGone(str(e)) from None

    def write(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\r\n"
        with self._lock:
            if self.closed:
                raise ClientGone("stream closed")
            self._start()
            try:
                self._request._write(b"%x\r\n%s\r\n" % (len(data), data))
                self._request.wfile.flush()
            except (ClientGone, OSError) as e:
                self.closed = True
                raise ClientGone(str(e)) from None

    def fail(self, error: Exception) -> None:
        """An error: an HTTP status when nothing was sent yet, else docker's errorDetail message."""
        message = str(error)
        if not self.started:
            status = getattr(error, "http_status", None) or getattr(error, "status", 500)
            self._request.send_error_json(status, message)
            self.closed = True
            return
        code = getattr(error, "exit_code", None)
        detail = {"message": message, **({"code": code} if code and code != 1 else {})}
        self.write({"errorDetail": detail, "error": message})

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self._start()
            self.closed = True
            try:
                self._request._write(b"0\r\n\r\n")
            except ClientGone:
                pass


def _timeval(seconds: float) -> bytes:
    import struct

    return struct.pack("ll", int(seconds), int((seconds % 1) * 1e6))


class _Limited:
    """A Content-Length body."""

    def __init__(self, f, length: int) -> None:
        self._f, self._left = f, length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        if not data:
            raise HTTPError(400, "unexpected EOF in request body")
        self._left -= len(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)


class _Chunked:
    """A `Transfer-Encoding: chunked` body (the Go client's uploads), read lazily."""

    def __init__(self, f) -> None:
        self._f, self._left, self._done = f, 0, False

    def read(self, n: int = -1) -> bytes:
        out = []
        while not self._done and (n is None or n < 0 or n > 0):
            if self._left == 0:
                line = self._f.readline(1024).split(b";", 1)[0].strip()
                try:
                    self._left = int(line, 16)
                except ValueError:
                    raise HTTPError(400, "malformed chunked request body") from None
                if self._left == 0:
                    while self._f.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._done = True
                    break
            want = self._left if n is None or n < 0 else min(n, self._left)
            data = self._f.read(want)
            if not data:
                raise HTTPError(400, "unexpected EOF in chunked request body")
            out.append(data)
            self._left -= len(data)
            if n is not None and n >= 0:
                n -= len(data)
            if self._left == 0:
                self._f.readline(3)  # the chunk's CRLF
        return b"".join(out)

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)
