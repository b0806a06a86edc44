"""docker's json-file log driver, byte for byte: one JSON object per entry,
`{"log":"<line>\\n","stream":"stdout","time":"<RFC3339Nano UTC>"}` + newline.

What dockerd does and this writer repeats (moby daemon/logger/copier.go,
jsonfilelog/jsonlog/jsonlogbytes.go, loggerutils/logfile.go, 20.10):
- a line is logged when its newline arrives, with the newline; a line of 16 KiB or
  more is logged in 16 KiB pieces without newline ("partial" entries; copier's buffer
  is 16 KiB), the rest with it (an empty "\\n" entry when the length is a multiple of
  16 KiB); all pieces of one line carry the time of the first piece;
- at end of stream what remains is logged as is, without a newline;
- the escaping is jsonlog's own, not encoding/json's: `<`, `>`, `&` and control bytes
  as \\u00XX except \\n and \\r (so \\t is \\u0009), U+2028/U+2029 escaped, each byte of
  invalid UTF-8 as \\ufffd, DEL and C1 controls written raw;
- time is time.Now().UTC() in RFC3339Nano: fraction with trailing zeros trimmed;
- with max-size, the file is rotated before an entry when it already holds max-size
  bytes or more (so a file exceeds max-size by at most one entry): <path>.N-1 ->
  <path>.N ... <path> -> <path>.1, and max-file 1 truncates in place; files are 0640.

The detached-container monitor imports this module: it imports only os, time and
_thread (builtins or already loaded), nothing of lamina.
"""

from __future__ import annotations

import _codecs
import _thread
import os
import time

PARTIAL_SIZE = 16 * 1024  # copier.go's buffer: a longer line is logged in pieces of this size

# jsonlogbytes.go ffjsonWriteJSONBytesAsString: control bytes as \u00XX except \n and \r,
# the quote, the backslash and <>& escaped; escaped with one bytes.replace per special byte
# present (ASCII bytes are never part of a multi-byte sequence, valid or not)
_ASCII_ESCAPES = {c: b"\\u%04x" % c for c in range(0x20)}
_ASCII_ESCAPES.update({0x0D: b"\\r", 0x22: b'\\"', 0x5C: b"\\\\",
                       0x3C: b"\\u003c", 0x3E: b"\\u003e", 0x26: b"\\u0026"})
del _ASCII_ESCAPES[0x0A]  # the newline: `\n` in a text, the end of an entry when several are written
_SPECIAL = b"\\" + bytes(c for c in sorted(_ASCII_ESCAPES) if c != 0x5C)  # the backslash first
_NOT_SPECIAL = bytes(c for c in range(256) if c not in _SPECIAL)
_LINE_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))
_GO_REPLACE = "lamina-go-rune-error"


def _go_rune_error(exc):
    """Go's DecodeRune takes one byte of invalid UTF-8 at a time: `\ufffd` for each byte
    (Python reports a bad sequence's bytes together: end - start of them)."""
    return "\\ufffd" * (exc.end - exc.start), exc.end


_codecs.register_error(_GO_REPLACE, _go_rune_error)


def _escape_body(data: bytes) -> bytes:
    """`data` escaped as dockerd does, its newlines left as they are."""
    present = data.translate(None, _NOT_SPECIAL)
    if present:
        for c in _SPECIAL:
            if c in present:
                data = data.replace(bytes((c,)), _ASCII_ESCAPES[c])
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            data = data.decode("utf-8", _GO_REPLACE).encode("utf-8")
        for raw, esc in _LINE_SEPARATORS:
            if raw in data:
                data = data.replace(raw, esc)
    return data


def escape(data: bytes) -> bytes:
    """The JSON string body (no quotes) dockerd writes for `data`."""
    return _escape_body(data).replace(b"\n", b"\\n")


_second = [None, b""]  # the last whole second formatted, and its text: entries come many per second


def timestamp(ns: int | None = None) -> bytes:
    """RFC3339Nano in UTC as Go formats it: 2026-11-28T10:01:02.12345Z (no fraction when 0)."""
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    if _second[0] != sec:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
        _second[0] = sec
    if not frac:
        return _second[1] + b"Z"
    return b"%s.%sZ" % (_second[1], (b"%09d" % frac).rstrip(b"0"))


def entry(stream: bytes, data: bytes, ts: bytes, attrs: bytes = b"") -> bytes:
    """One line of the file: `data` is the log text with its newline if it has one;
    `attrs` is `"attrs":{…},` or empty (jsonlog writes them between stream and time)."""
    return b'{"log":"%s","stream":"%s",%s"time":"%s"}\n' % (escape(data), stream, attrs, ts)


_OPEN = b'{"log":"'


def _short_lines(buf: bytes, last: int) -> bool:
    """Whether buf[:last] has no line of PARTIAL_SIZE bytes or more: a newline in every
    half-size block is enough to know without splitting."""
    half = PARTIAL_SIZE // 2
    for k in range(0, last, half):
        if buf.find(b"\n", k, k + half) < 0:
            return max(map(len, buf[:last].split(b"\n"))) < PARTIAL_SIZE
    return True


def _entries(stream: bytes, lines: bytes, ts: bytes, attrs: bytes = b"") -> bytes:
    """The entries of whole lines (`lines` ends with a newline), each shorter than
    PARTIAL_SIZE, stamped `ts`: each newline becomes the end of one entry and the
    start of the next (an escaped text holds no raw newline)."""
    sep = b'\\n","stream":"%s",%s"time":"%s"}\n{"log":"' % (stream, attrs, ts)
    return _OPEN + _escape_body(lines).replace(b"\n", sep)[:-len(_OPEN)]


class JsonFileWriter:
    """Appends a container's output to <path> as dockerd's json-file driver does.

    `write(stream, data)` takes raw bytes as read from the container's pipe, in any
    chunking; `close()` logs what is left of an unfinished line and closes the file.
    Safe to call from several threads (one lock)."""

    def __init__(self, path: str, max_size: int | None = None, max_file: int = 1, *,
                 attrs: bytes | None = None, compress: bool = False) -> None:
        """`attrs`: the JSON object of --log-opt labels/env/tag's attributes (options.py);
        `compress`: rotated files are gzipped (<path>.1.gz ...), as with --log-opt compress=true."""
        self.path = path
        self._attrs = b'"attrs":%s,' % attrs if attrs else b""
        self.max_size = max_size if max_size and max_size > 0 else None
        self.max_file = max(1, max_file)
        self.compress = compress and self.max_file >= 2 and self.max_size is not None
        self._last_time = b""  # of the last entry written: a compressed file's header keeps it
        self._lock = _thread.allocate_lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._pending = {}     # stream -> bytes of the unfinished line (< PARTIAL_SIZE)
        self._partial_ts = {}  # stream -> time of the first piece of a line logged in pieces

    def write(self, stream: str, data: bytes) -> None:
        if not data:
            return
        name = stream.encode()
        with self._lock:
            buf = self._pending.pop(stream, b"") + data
            out = []
            start = 0
            last = buf.rfind(b"\n")
            # The lines that arrived together, short ones (no piece of a longer line among
            # them), written with one replace or translate over all of them: what a busy
            # container's output costs is per read, not per line.
            if last >= 0 and stream not in self._partial_ts and _short_lines(buf, last):
                out.append(_entries(name, buf[:last + 1], timestamp(), self._attrs))
                start = last + 1
            now = None
            while True:
                nl = buf.find(b"\n", start)
                end = len(buf) if nl < 0 else nl
                # pieces of 16 KiB while the line is that long (its newline not in the buffer yet)
                while end - start >= PARTIAL_SIZE:
                    ts = self._partial_ts.get(stream)
                    if ts is None:
                        ts = now = now or timestamp()
                        self._partial_ts[stream] = ts
                    out.append(entry(name, buf[start:start + PARTIAL_SIZE], ts, self._attrs))
                    start += PARTIAL_SIZE
                if nl < 0:
                    break
                ts = self._partial_ts.pop(stream, None) or now or timestamp()
                now = now or ts
                out.append(entry(name, buf[start:nl + 1], ts, self._attrs))
                start = nl + 1
            if start < len(buf):
                self._pending[stream] = buf[start:]
            if out:
                self._emit(b"".join(out))

    def flush_partial(self) -> None:
        """Log the unfinished lines as they are, without a newline (dockerd at end of stream)."""
        with self._lock:
            out = []
            for stream in list(self._pending):
                data = self._pending.pop(stream)
                ts = self._partial_ts.pop(stream, None) or timestamp()
                out.append(entry(stream.encode(), data, ts, self._attrs))
            self._partial_ts.clear()
            if out:
                self._emit(b"".join(out))

    def close(self) -> None:
        if self._fd is None:
            return
        self.flush_partial()
        with self._lock:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the file ---------------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        """Write whole entries, rotating as logfile.go does before an entry once the file
        holds max-size bytes: the entry that reaches max-size is the file's last."""
        while data:
            if self.max_size is not None and self._size >= self.max_size:
                self._rotate()
            cut = len(data)
            if self.max_size is not None and self._size + cut > self.max_size:
                cut = data.find(b"\n", max(0, self.max_size - self._size - 1)) + 1 or len(data)
            self._write_all(data[:cut] if cut < len(data) else data)
            data = data[cut:]

    def _write_all(self, data: bytes) -> None:
        self._size += len(data)
        if self.compress:
            self._last_time = data[data.rindex(b'"time":"') + 8:-3]
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = None
        path = self.path
        if self.max_file >= 2:
            ext = ".gz" if self.compress else ""
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.rename(f"{path}.{i - 1}{ext}", f"{path}.{i}{ext}")
                except FileNotFoundError:
                    pass
            try:
                os.rename(path, f"{path}.1")
            except FileNotFoundError:
                pass
            else:
                if self.compress:
                    _compress(f"{path}.1", self._last_time)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        self._size = 0


def _compress(name: str, last_time: bytes) -> None:
    """<name> -> <name>.gz as logfile.go's compressFile: gzip with the last entry's time in
    the header's extra field ({"lastTime":…}), then <name> removed."""
    import zlib

    extra = b'{"lastTime":"%s"}' % last_time
    fd = os.open(f"{name}.gz", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    with open(fd, "wb") as raw, open(name, "rb") as src:
        # gzip.GzipFile writes no extra field: the header by hand (FEXTRA), deflate by zlib
        raw.write(b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + len(extra).to_bytes(2, "little") + extra)
        comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
        crc, size = 0, 0
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            raw.write(comp.compress(chunk))
        raw.write(comp.flush())
        raw.write(crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little"))
    os.unlink(name)
