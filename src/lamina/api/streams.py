"""A container's output over the API: GET /containers/{id}/logs and POST …/attach.

Both read the json-file log the container's monitor writes (lamina/logs): without a
tty each write is framed with docker's 8-byte header (stream 1 stdout or 2 stderr,
three zero bytes, the big-endian length); with one, the bytes go raw.  `logs` is a
plain response running to the connection's end; `attach` is hijacked (101 UPGRADED)
and follows the output from the moment it attached until the container exits.
With stdin=1 on a container created with OpenStdin, what the client sends goes to
the container through its monitor's stdin relay (runtime/stdinrelay.py), once the
container runs (docker run -i attaches before it starts it); else it is dropped."""

from __future__ import annotations

import struct
import threading

from lamina.api.server import ClientGone, HTTPError


class Framed:
    """A Printer's out/err: writes framed (no tty) or raw (tty) to the socket."""

    def __init__(self, sock, stream: int, lock: threading.Lock, *, raw: bool) -> None:
        self._sock, self._stream, self._lock, self._raw = sock, stream, lock, raw

    def write(self, data: bytes) -> int:
        if not data:
            return 0
        head = b"" if self._raw else struct.pack(">BxxxI", self._stream, len(data))
        with self._lock:
            try:
                self._sock.sendall(head + data)
            except OSError as e:
                raise ClientGone(str(e)) from None
        return len(data)

    def flush(self) -> None:
        pass


def _bound(request, name: str, *, until: bool = False) -> bytes | None:
    """since/until as the daemon reads them (seconds[.nanos]; 0 is no bound)."""
    from lamina.logs.since import parse_timestamp, rfc3339_fixed

    value = request.q(name) or ""
    if not value or value == "0":
        return None
    try:
        secs, nanos = parse_timestamp(value)
    except ValueError as e:
        raise HTTPError(400, str(e)) from None
    return rfc3339_fixed(secs, nanos)


def _tail(value: str | None) -> int:
    value = value or "all"
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not digits.isascii() or not digits.isdigit():
        return -1
    return max(int(value), -1)


def logs(request, id: str) -> None:  # noqa: A002 - dockerd's path parameter
    from lamina.engine.logs import log_source, writer_alive
    from lamina.logs.reader import Printer, follow, show

    if not (request.q_bool("stdout") or request.q_bool("stderr")):
        raise HTTPError(400, "Bad parameters: you must choose at least one stream")
    system = request.system
    rec, path = log_source(system, id)
    since, until = _bound(request, "since"), _bound(request, "until", until=True)
    tty = bool(rec.config.get("Tty"))
    fd = request.raw_stream("application/vnd.docker.raw-stream" if tty
                            else "application/vnd.docker.multiplexed-stream")
    sock = request.connection
    lock = threading.Lock()
    out = Framed(sock, 1, lock, raw=tty) if request.q_bool("stdout") else _Drop()
    err = Framed(sock, 2, lock, raw=tty) if request.q_bool("stderr") else _Drop()
    del fd
    printer = Printer(out, err, timestamps=request.q_bool("timestamps"), details=request.q_bool("details"),
                      since=since, until=until)
    tail = _tail(request.q("tail"))
    if request.q_bool("follow"):
        follow(path, printer, lambda: writer_alive(system, rec.id) and not request.client_gone(), tail=tail)
    else:
        show(path, printer, tail=tail)


class _Drop:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def attach(request, id: str) -> None:  # noqa: A002
    """POST /containers/{id}/attach?stream=1&stdout=1&stderr=1[&logs=1]: hijacked; the
    output written from now on (and the log so far with logs=1) until it exits."""
    from lamina.engine.attach import output_alive
    from lamina.engine.logs import log_source
    from lamina.logs.reader import Printer, follow, show

    system = request.system
    rec, path = log_source(system, id)
    tty = bool(rec.config.get("Tty"))
    conn = request.hijack("application/vnd.docker.raw-stream" if tty
                          else "application/vnd.docker.multiplexed-stream")
    lock = threading.Lock()
    out = Framed(conn.sock, 1, lock, raw=tty) if request.q_bool("stdout") else _Drop()
    err = Framed(conn.sock, 2, lock, raw=tty) if request.q_bool("stderr") else _Drop()
    if tty and rec.config.get("OpenStdin") and request.q_bool("stream"):
        _attach_terminal(system, rec, conn, stdin=request.q_bool("stdin"))
        return
    printer = Printer(out, err)
    done = threading.Event()
    if request.q_bool("stdin") and rec.config.get("OpenStdin"):
        bundle = system.containers.path(rec.id) + "/bundle"
        threading.Thread(target=_feed_input, args=(conn.reader, bundle, done), daemon=True).start()
    else:
        threading.Thread(target=_drain_input, args=(conn.reader,), daemon=True).start()

    alive = output_alive(system, rec)  # the run attached to, as `lamina attach` follows it
    if not request.q_bool("stream"):
        if request.q_bool("logs"):
            show(path, printer)
        return
    try:
        follow(path, printer, alive, tail=-1 if request.q_bool("logs") else 0)
    finally:
        done.set()
        try:
            conn.sock.shutdown(2)
        except OSError:
            pass


def _drain_input(reader) -> None:
    """Read what the client sends (nowhere to put it) until it closes its side: the
    CLI half-closes at once when it has no stdin to send, and still reads."""
    try:
        while reader.read1(65536):
            pass
    except (OSError, ValueError):
        pass


def _feed_input(reader, bundle_dir: str, done: threading.Event) -> None:
    """The client's input into the container's stdin relay, connected once the
    container runs; the client's EOF (its half-close) ends the connection to the
    relay, which closes the container's stdin when it was created with StdinOnce."""
    import time

    from lamina.runtime.stdinrelay import connect

    relay = None

    def connected():
        nonlocal relay
        while relay is None and not done.is_set():
            relay = connect(bundle_dir)
            if relay is None:
                time.sleep(0.05)
        return relay

    try:
        while True:
            data = reader.read1(65536)
            if not data:
                break
            if connected() is None:
                return
            relay.sendall(data)
        connected()  # an EOF before the start still reaches the relay (`echo x | docker run -i`)
    except (OSError, ValueError):
        pass
    finally:
        if relay is not None:
            relay.close()


def _attach_terminal(system, rec, conn, *, stdin: bool) -> None:
    """A tty container with stdin open: its monitor's relay carries the raw terminal
    both ways (its log has whole lines only, a prompt would never show).  The relay
    is there once the container runs: connected as soon as it is."""
    from lamina.engine.attach import connect_relay

    relay = None
    try:
        relay = connect_relay(system, rec)  # the one way in, `lamina attach`'s too
        if relay is None:
            return
        if stdin:
            threading.Thread(target=_pipe_input, args=(conn.reader, relay), daemon=True).start()
        else:
            threading.Thread(target=_drain_input, args=(conn.reader,), daemon=True).start()
        while True:
            data = relay.recv(65536)
            if not data:
                break
            conn.sock.sendall(data)
    except OSError as e:
        raise ClientGone(str(e)) from None
    finally:
        if relay is not None:
            relay.close()
        try:
            conn.sock.shutdown(2)
        except OSError:
            pass


def _pipe_input(reader, relay) -> None:
    """Client input to the relay; its EOF half-closes the relay connection (input only)."""
    try:
        while True:
            data = reader.read1(65536)
            if not data:
                break
            relay.sendall(data)
        relay.shutdown(1)
    except (OSError, ValueError):
        pass
