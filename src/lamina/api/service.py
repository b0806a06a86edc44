"""The API service: the accept loop over a listener's socket (a worker thread per open
connection, reused for the next one), the monitor that cuts connections whose headers
are late and stops the service when idle, and the store pool its requests borrow from.
Each connection is served by api/server.py's `Request`.
"""

from __future__ import annotations

import os
import queue
import socket
import socketserver
import threading
import time

from lamina.api.server import Request
from lamina.api.storepool import StorePool

IDLE_WORKER_S = 1.0
HEADER_TIMEOUT = float(os.environ.get("LAMINA_API_HEADER_TIMEOUT", "30"))  # shorter in the tests


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
