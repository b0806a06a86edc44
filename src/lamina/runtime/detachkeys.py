"""The detach key sequence of attach, exec and run -it (`--detach-keys`, default ctrl-p,ctrl-q).

The spec is parsed as moby/term's ToBytes: comma-separated keys, each one character,
`ctrl-@`, `ctrl-a` … `ctrl-z`, `ctrl-[`, `ctrl-\\`, `ctrl-]`, `ctrl-^`, `ctrl-_` or `DEL`.
The input is scanned as its escapeProxy does: bytes that may begin the sequence are held
back until they either complete it (detach: they are never sent) or stop matching (sent
on, in order)."""

from __future__ import annotations

import os

DEFAULT = "ctrl-p,ctrl-q"
_CTRL = "@abcdefghijklmnopqrstuvwxyz[\\]^_"


def parse(spec: str) -> bytes:
    """The byte sequence of `spec`; ValueError with term's text for an unknown key."""
    codes = bytearray()
    for key in spec.split(","):
        if len(key.encode()) == 1:  # one byte, as Go's len()
            codes.append(ord(key))
        elif key.startswith("ctrl-") and len(key) == 6 and key[5] in _CTRL:
            codes.append(_CTRL.index(key[5]))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class Scanner:
    """feed(data) -> (bytes to send on, detached)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            candidate = self.held + bytes((b,))
            if self.keys.startswith(candidate):
                if len(candidate) == len(self.keys):
                    return bytes(out), True
                self.held = candidate
                continue
            out += self.held
            self.held = b""
            if self.keys[0] == b:
                self.held = bytes((b,))
            else:
                out.append(b)
        return bytes(out), False


class Detached(Exception):
    """The detach keys were typed: the client leaves, what it was attached to goes on."""


def keep_open(master: int) -> None:
    """A terminal's master after its client detached: held (and its output drained) by a
    small process of its own until the other side is gone, so the process on the tty
    gets no hangup and never blocks writing (docker's exec goes on after a detach)."""
    pid = os.fork()
    if pid:
        return
    try:  # the child: nothing of the client's but the master
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2 and fd != master:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.set_blocking(master, True)
        while os.read(master, 65536):
            pass
    except OSError:  # EIO: every slave fd is closed, the process is gone
        pass
    finally:
        os._exit(0)
