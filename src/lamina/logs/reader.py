"""Reading json-file logs as `docker logs` shows them: the entries of <path>.N ...
<path>.1, <path> in order, each entry's text to the stream it came from, with
--tail (last N entries), --since/--until (entry times), -t (RFC3339 with nine
fraction digits) and --details (the entry's attrs, docker's `k=v,k=v ` prefix), and
-f: what the container writes next, across rotations, until it is gone.

Entries are scanned as bytes: the files lamina writes (and dockerd's) have one
layout, `{"log":"…","stream":"…","time":"…"}`, and inside an escaped log text no
unescaped quote can stand, so `","stream":"` ends it; the text is unescaped only
when it has an escape other than its closing \\n.  Anything else goes through the
JSON decoder."""

from __future__ import annotations

import os
import time

_HEAD = b'{"log":"'
_STREAM = b'","stream":"'
_TIME = b'","time":"'
_END = b'"}'
_CHUNK = 1 << 20


def log_files(path: str) -> list[str]:
    """The files of one log, oldest first: <path>.N ... <path>.1, <path> (those that exist;
    <path>.N.gz with --log-opt compress)."""
    rotated = []
    i = 1
    while True:
        for name in (f"{path}.{i}", f"{path}.{i}.gz"):
            if os.path.exists(name):
                rotated.append(name)
                break
        else:
            break
        i += 1
    return rotated[::-1] + [path]


def parse(line: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(stream, text, time, details prefix) of one file line."""
    if line.startswith(_HEAD):
        i = line.find(_STREAM, 8)
        if i > 0:
            j = line.find(_TIME, i + 12)
            if j > 0 and line.endswith(_END) and b'"' not in line[i + 12:j]:
                raw = line[8:i]
                if b"\\" in raw:
                    raw = raw[:-2] + b"\n" if raw.endswith(b"\\n") and b"\\" not in raw[:-2] else _unescape(raw)
                return line[i + 12:j], raw, line[j + 10:-2], b""
    from lamina import leanjson

    try:
        d = leanjson.loads(line)
    except ValueError:  # a torn or damaged line (a disk that filled up): no entry
        return b"", b"", b"", b""
    if not isinstance(d, dict):
        return b"", b"", b"", b""
    details = b""
    if d.get("attrs"):
        from urllib.parse import quote_plus

        details = ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(d["attrs"].items())).encode()
    return (d.get("stream") or "").encode(), (d.get("log") or "").encode("utf-8", "surrogatepass"), \
        (d.get("time") or "").encode(), details


def _unescape(raw: bytes) -> bytes:
    from lamina import leanjson

    return leanjson.loads(b'"' + raw + b'"').encode("utf-8", "surrogatepass")


def fixed_time(t: bytes) -> bytes:
    """An entry's RFC3339Nano UTC time with nine fraction digits (docker's -t form, and
    one that sorts as the time does)."""
    if t.endswith(b"Z") and len(t) >= 20:
        base, dot, frac = t[:-1].partition(b".")
        return base + b"." + frac.ljust(9, b"0") + b"Z"
    return t


class Printer:
    """Writes entries to stdout/stderr by stream, as docker's CLI demultiplexes them."""

    def __init__(self, out, err, *, timestamps: bool = False, details: bool = False,
                 since: bytes | None = None, until: bytes | None = None) -> None:
        self.out, self.err = out, err
        self.timestamps, self.details = timestamps, details
        self.since, self.until = since, until
        self.done = False  # an entry after --until was seen: nothing more is printed
        self._buf, self._stream, self._size = [], None, 0

    def entries(self, lines) -> None:
        filtering = self.since is not None or self.until is not None
        decorate = self.timestamps or self.details
        for line in lines:
            if not line:
                continue
            stream, text, t, attrs = parse(line)
            if not stream:
                continue
            if filtering:
                ft = fixed_time(t)
                if self.since is not None and ft < self.since:
                    continue
                if self.until is not None and ft > self.until:
                    self.done = True
                    break
            if decorate:
                if self.details:
                    text = attrs + b" " + text
                if self.timestamps:
                    text = fixed_time(t) + b" " + text
            if stream != self._stream:
                self.flush()
                self._stream = stream
            self._buf.append(text)
            self._size += len(text)
            if self._size > _CHUNK:
                self.flush()

    @property
    def plain(self) -> bool:
        """Whether entries are printed as their text alone (no -t, --details, --since, --until)."""
        return not (self.timestamps or self.details or self.since is not None or self.until is not None)

    def text(self, stream: bytes, data: bytes) -> None:
        """Texts already taken out of their entries."""
        if stream != self._stream:
            self.flush()
            self._stream = stream
        self._buf.append(data)
        self._size += len(data)
        self.flush()

    def flush(self) -> None:
        if self._buf:
            f = self.err if self._stream == b"stderr" else self.out
            f.write(b"".join(self._buf))
            f.flush()
            self._buf, self._size = [], 0


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return b""
    if path.endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    return data


def _read_lines(path: str) -> list[bytes]:
    """The whole entries of a file (not one being written at its end)."""
    return _read(path).split(b"\n")[:-1]


_STDOUT_MID = b'","stream":"stdout","time":"'
_NEXT = b'"}\n{"log":"'


def stdout_texts(data: bytes) -> bytes | None:
    """The texts of a whole file of stdout entries in lamina's (and dockerd's) layout,
    taken out together (a `logs` of a service's file is mostly this), or None when the
    file holds anything else (stderr, attrs, other layouts) for the entry-by-entry path."""
    n = data.count(b"\n")
    if not n or not data.endswith(b'"}\n') or not data.startswith(_HEAD) or data.count(_STDOUT_MID) != n \
            or data.count(_NEXT) != n - 1:
        return None
    parts = data[8:-3].split(_STDOUT_MID)
    body = b"".join([parts[0]] + [p.partition(_NEXT)[2] for p in parts[1:]])
    if b"\\" in body:
        if body.count(b"\\") == body.count(b"\\n"):  # only the newlines are escaped
            body = body.replace(b"\\n", b"\n")
        else:
            body = _unescape(body)
    return body


def tail_lines(path: str, n: int) -> list[bytes]:
    """The last `n` entries across the log's files (all when n < 0)."""
    out: list[bytes] = []
    for name in reversed(log_files(path)):
        lines = [x for x in _read_lines(name) if x]
        out = lines + out
        if 0 <= n <= len(out):
            return out[len(out) - n:] if n else []
    return out


def show(path: str, printer: Printer, *, tail: int = -1) -> None:
    """Everything the log holds now (docker logs without -f)."""
    if tail >= 0:
        printer.entries(tail_lines(path, tail))
    else:
        for name in log_files(path):
            data = _read(name)
            texts = stdout_texts(data) if printer.plain else None
            if texts is not None:
                printer.text(b"stdout", texts)
            else:
                printer.entries(data.split(b"\n")[:-1])  # not an entry being written at its end
            if printer.done:
                break
    printer.flush()


def follow(path: str, printer: Printer, alive, *, tail: int = -1, poll: float = 0.05) -> None:
    """docker logs -f: what is there (or its last `tail` entries), then each new entry
    as it is written, across rotations, until `alive()` says the container is gone
    (then what was written up to that moment, so no last line is lost)."""
    fd = _open(path)
    lines = (_read_to_end(fd) if fd is not None else b"").split(b"\n")
    pending = lines.pop()  # an entry being written: completed by the next read
    lines = [x for x in lines if x]
    older = log_files(path)[:-1]
    if fd is not None:  # rotated since we opened it: it is among the older ones now, read already
        ino = os.fstat(fd).st_ino
        older = [name for name in older if not _is_inode(name, ino)]
    if tail < 0:
        for name in older:
            printer.entries(_read_lines(name))
    else:
        for name in reversed(older):
            if len(lines) >= tail:
                break
            lines = [x for x in _read_lines(name) if x] + lines
        lines = lines[len(lines) - tail:] if tail else []
    printer.entries(lines)
    finished = False
    while not printer.done:
        if fd is None:
            fd = _open(path)
        if fd is not None:
            data = _read_to_end(fd)
            if data:
                lines = (pending + data).split(b"\n")
                pending = lines.pop()
                printer.entries(lines)
                printer.flush()
                continue
            passed = _rotated_past(path, fd)
            if passed is not None:
                # what was written to the old file before it was renamed, then the files
                # rotated away since (several rotations between two looks), then the new one
                lines = (pending + _read_to_end(fd)).split(b"\n")
                pending = b""  # the old file ends with a whole entry
                printer.entries(lines)
                for name in passed:
                    printer.entries(_read_lines(name))
                os.close(fd)
                fd = _open(path)
                continue
        if finished:
            break
        printer.flush()
        if printer.until is not None and _now_fixed() > printer.until:
            break
        if not alive():
            finished = True  # one more pass: what was written before it ended
            continue
        time.sleep(poll)
    if pending and not printer.done:
        printer.entries([pending])
    printer.flush()
    if fd is not None:
        os.close(fd)


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _read_to_end(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    pos = os.lseek(fd, 0, os.SEEK_CUR)
    if size < pos:  # truncated in place (max-file 1): start over
        os.lseek(fd, 0, os.SEEK_SET)
        pos = 0
    chunks = []
    while True:
        b = os.read(fd, max(size - pos, 1 << 16))
        if not b:
            break
        chunks.append(b)
        pos += len(b)
    return b"".join(chunks)


def _is_inode(name: str, ino: int) -> bool:
    try:
        return os.stat(name).st_ino == ino
    except FileNotFoundError:
        return False


def _rotated_past(path: str, fd: int) -> list[str] | None:
    """None while <path> is still the file `fd` reads; else the rotated files written
    after it (newer than it, oldest first): those between it and the new <path>."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    ino = os.fstat(fd).st_ino
    if st.st_ino == ino:
        return None
    rotated = log_files(path)[:-1]  # oldest first
    for k, name in enumerate(rotated):
        if _is_inode(name, ino):
            return rotated[k + 1:]
    if any(name.endswith(".gz") for name in rotated):
        return []  # ours was compressed into <path>.1.gz (a new file): read already
    return rotated  # ours was rotated out of the set: every file left is newer


def _now_fixed() -> bytes:
    from lamina.logs.since import rfc3339_fixed

    ns = time.time_ns()
    return rfc3339_fixed(ns // 10**9, ns % 10**9)
