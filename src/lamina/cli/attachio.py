"""attach's two ways of carrying the streams (cli/commands/attach.py).

`terminal`: a tty container's relay, raw both ways, this terminal in raw mode and its
size given to the container (now and on SIGWINCH).  `from_log`: the json-file log
followed from now, stdin (when attached) sent through the relay on a thread, the
signals this process receives forwarded to the container (--sig-proxy).  Both scan the
input for the detach keys and return True when they were typed."""

from __future__ import annotations

import os
import signal
import socket
import sys

_CHUNK = 65536


def terminal(system, rec, relay, keys: bytes, *, stdin: bool) -> bool:
    import select

    from lamina.fdio import write_all
    from lamina.runtime.console import RawMode
    from lamina.runtime.detachkeys import Scanner

    scanner = Scanner(keys)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # no proxy with a tty: a ctrl-c outside raw mode ends this client
    if not stdin:
        relay.shutdown(socket.SHUT_WR)  # output only: the relay keeps sending
    in_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()
    sys.stdout.flush()
    old_winch = _follow_size(system, rec)
    poller = select.poll()
    poller.register(relay.fileno(), select.POLLIN)
    if stdin:
        poller.register(in_fd, select.POLLIN)
    try:
        with RawMode(in_fd if stdin and os.isatty(in_fd) else None):
            while True:
                for fd, _ in poller.poll():
                    if fd == relay.fileno():
                        data = relay.recv(_CHUNK)
                        if not data:
                            return False
                        write_all(out_fd, data)
                        continue
                    data = os.read(in_fd, _CHUNK)
                    if not data:  # EOF: a half-close, the output still comes
                        poller.unregister(in_fd)
                        relay.shutdown(socket.SHUT_WR)
                        continue
                    data, detached = scanner.feed(data)
                    if data:
                        relay.sendall(data)
                    if detached:
                        return True
    except OSError:
        return False
    finally:
        relay.close()
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)


def _follow_size(system, rec):
    """The container's terminal takes this one's size, now and on each change."""
    from lamina.errors import LaminaError
    from lamina.runtime.console import terminal_size
    from lamina.engine.terminal import resize

    def apply(*_):
        size = terminal_size()
        if size:
            try:
                resize(system, rec.id, *size)
            except LaminaError:
                pass

    apply()
    try:
        return signal.signal(signal.SIGWINCH, apply)
    except ValueError:
        return None


def from_log(system, rec, relay, keys: bytes, *, stdin: bool, sig_proxy: bool, tail: int = 0, alive=None) -> bool:
    """`tail`, `alive`: the log's entries already there to print (-1: all) and what says
    that more may come (engine/attach.py's, by default)."""
    import queue
    import threading

    from lamina.engine import attach as engine
    from lamina.engine.logs import log_source
    from lamina.logs.reader import Printer, follow

    _, path = log_source(system, rec.id)
    detached = threading.Event()
    if stdin:
        threading.Thread(target=_send_input, args=(relay, keys, detached), daemon=True).start()
    elif relay is not None:
        relay.close()
    signals: queue.SimpleQueue = queue.SimpleQueue()
    if sig_proxy:  # docker's ForwardAllSignals; they go out between two looks at the log
        for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGPIPE,
                                             signal.SIGURG}:
            try:
                signal.signal(sig, lambda num, _frame: signals.put(num))
            except (OSError, ValueError):
                pass
    else:  # a ctrl-c ends this client only, by the signal, as docker's
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    alive = alive or engine.output_alive(system, rec)

    def going() -> bool:
        while not signals.empty():
            engine.forward_signal(system, rec, signals.get())
        return not detached.is_set() and alive()

    printer = Printer(sys.stdout.buffer, sys.stderr.buffer)
    sys.stdout.flush()
    follow(path, printer, going, tail=tail)
    return detached.is_set()


def _send_input(relay, keys: bytes, detached) -> None:
    """stdin to the relay (dropped when there is none: a foreground run's); its EOF
    closes our side of the relay, which closes the container's stdin when it was
    created with StdinOnce."""
    from lamina.runtime.detachkeys import Scanner

    scanner = Scanner(keys)
    fd = sys.stdin.fileno()
    try:
        while True:
            data = os.read(fd, _CHUNK)
            if not data:
                break
            data, done = scanner.feed(data)
            if data and relay is not None:
                relay.sendall(data)
            if done:
                detached.set()
                return
    except OSError:
        pass
    finally:
        if relay is not None:
            relay.close()
