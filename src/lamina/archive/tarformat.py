"""Tar headers read strictly (written as Go writes them: tarwriter.py).

`StrictTarInfo` plugs into `tarfile` (read one member after the other) and replaces the
parts of its header parsing that are unsafe or too lenient for hostile layers:
the PAX parser (CPython's is regex-based, unbounded and, before 3.11.10, open to
ReDoS, CVE-2024-6232), GNU long names and sparse maps (unbounded, CVE-2025-58183;
maps are read by `sparse.py`) and the silent "treat garbage as end of archive" rule.
"""

from __future__ import annotations

import tarfile

from lamina.archive import sparse
from lamina.errors import InvalidArchive

BLOCK = 512
MAX_PATH = 4096
MAX_PAX_SIZE = 1 << 20  # Go's archive/tar limit for special headers (maxSpecialFileSize)

_ZERO_BLOCK = bytes(BLOCK)

# How Go's archive/tar (docker's untar) names the two faults of a stream that is no
# well-formed tar at all: io.ErrUnexpectedEOF and tar.ErrHeader.
GO_UNEXPECTED_EOF = "unexpected EOF"
GO_INVALID_HEADER = "archive/tar: invalid tar header"


class MalformedTar(InvalidArchive):
    """A tar stream cut short or with a header that is no tar header.  The message is
    lamina's; `go_error` is Go's words for the same fault, for the verbs that answer as
    docker does (`import`)."""

    def __init__(self, message: str, go_error: str) -> None:
        super().__init__(message)
        self.go_error = go_error


def parse_pax(data: bytes, where: int) -> dict[str, str]:
    """Strict, linear PAX record parser: `<len> <key>=<value>\\n` ..."""
    records: dict[str, str] = {}
    sparse_map: list[str] = []  # GNU sparse 0.0 repeats offset/numbytes records, in order
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] == 0 and data.count(0, pos) == end - pos:
            break  # some writers NUL-pad the record area
        space = data.find(b" ", pos, pos + 20)
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise InvalidArchive(f"invalid PAX header at offset {where}: bad record length")
        stop = pos + int(digits)
        if stop > end or stop <= space + 1 or data[stop - 1] != 0x0A:
            raise InvalidArchive(f"invalid PAX header at offset {where}: bad record length")
        key, eq, value = data[space + 1 : stop - 1].partition(b"=")
        if not eq or not key:
            raise InvalidArchive(f"invalid PAX header at offset {where}: record without key")
        try:
            skey = key.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArchive(f"invalid PAX header at offset {where}: key is not UTF-8") from None
        if skey in ("path", "linkpath", "GNU.sparse.name") and b"\0" in value:
            raise InvalidArchive(f"invalid PAX header at offset {where}: NUL in {skey}")
        text = value.decode("utf-8", "surrogateescape")  # binary xattrs survive the round trip
        if skey in ("GNU.sparse.offset", "GNU.sparse.numbytes"):
            # As Go's parsePAX: strictly alternating, joined into GNU.sparse.map.
            if skey != ("GNU.sparse.offset", "GNU.sparse.numbytes")[len(sparse_map) % 2] or "," in text:
                raise InvalidArchive(f"invalid PAX header at offset {where}: GNU sparse records out of order")
            sparse_map.append(text)
        else:
            records[skey] = text
        pos = stop
    if sparse_map:
        records["GNU.sparse.map"] = ",".join(sparse_map)
    return records


def pax_time_ns(text: str) -> int | None:
    """Exact nanoseconds from a PAX time such as `1700000000.123456789` (floats lose digits)."""
    sec, _, frac = text.partition(".")
    neg = sec.startswith("-")
    if not sec.lstrip("-").isdigit() or (frac and not frac.isdigit()):
        return None
    ns = abs(int(sec)) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    return -ns if neg else ns


class StrictTarInfo(tarfile.TarInfo):
    """A TarInfo whose parsing is bounded and whose errors are InvalidArchive.

    Used as `tarstream.open_tar(f, StrictTarInfo)` (or tarfile.open's mode "r|").  Global PAX
    headers are validated and ignored, as moby does.  `mtime_ns`/`atime_ns` carry
    exact PAX times when present."""

    mtime_ns: int | None = None
    atime_ns: int | None = None

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> "StrictTarInfo":
        stream = tarfile_.fileobj
        offset = stream.tell()
        buf = stream.read(BLOCK)
        if len(buf) != BLOCK:
            if offset == 0 and not buf:
                raise InvalidArchive("not a tar archive: the layer stream is empty")  # docker imports it as an empty image
            raise MalformedTar(f"tar stream is truncated: it ends at offset {offset + len(buf)} "
                               "before the end-of-archive marker", GO_UNEXPECTED_EOF)
        if buf == _ZERO_BLOCK:
            raise tarfile.EOFHeaderError("end of file header")
        try:
            obj = cls.frombuf(buf, tarfile_.encoding, tarfile_.errors)
        except tarfile.HeaderError as e:
            what = "not a tar archive" if offset == 0 else "corrupt tar stream"
            raise MalformedTar(f"{what}: {e} in the header at offset {offset}", GO_INVALID_HEADER) from None
        obj.offset = offset
        if min(obj.size, obj.uid, obj.gid, obj.mode) < 0:
            raise InvalidArchive(f"tar entry {obj.name!r}: negative size, mode or owner in header at offset {offset}")
        if obj.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) and obj.size > MAX_PATH + 1:
            raise InvalidArchive(f"GNU long name of {obj.size} bytes at offset {offset} exceeds {MAX_PATH}")
        if obj.type == tarfile.GNUTYPE_SPARSE:
            return obj._old_gnu_sparse(buf, tarfile_)
        return obj._proc_member(tarfile_)

    def _old_gnu_sparse(self, header: bytes, tarfile_: tarfile.TarFile) -> "StrictTarInfo":
        """An old-GNU `S` entry (CPython's reader drops a region at offset 0 and has no bounds)."""
        entries, realsize = sparse.old_gnu(header, tarfile_.fileobj, self.name)
        self._set_sparse(tarfile_, entries, realsize, data_start=tarfile_.fileobj.tell(), stored=self.size)
        return self

    def _pax_sparse(self, records: dict[str, str], kind: str, tarfile_: tarfile.TarFile) -> None:
        """Turn the member a sparse PAX header describes into its real file."""
        if not self.isreg() or self.sparse is not None:
            raise InvalidArchive(f"tar entry {self.name!r}: GNU sparse headers on a "
                                 f"{'sparse' if self.sparse is not None else 'non-regular'} entry")
        realsize = sparse.pax_realsize(records, self.name)
        data_start, stored = self.offset_data, self.size
        end = data_start + self._block(stored)  # the next header, whatever the map says
        if kind == "1.0":
            if tarfile_.fileobj.tell() != data_start:
                raise InvalidArchive(f"tar entry {self.name!r}: sparse map not at the start of its data")
            entries, used = sparse.read_map_1x0(tarfile_.fileobj, stored, self.name)
            data_start, stored = data_start + used, stored - used
        else:
            entries = sparse.pax_map(records, self.name)
        if records.get("GNU.sparse.name"):
            self.name = records["GNU.sparse.name"]
        self._set_sparse(tarfile_, entries, realsize, data_start=data_start, stored=stored)
        tarfile_.offset = end

    def _set_sparse(self, tarfile_: tarfile.TarFile, entries: sparse.Map, realsize: int, *,
                    data_start: int, stored: int) -> None:
        """As CPython keeps sparse members: `sparse` regions, `size` the real size, data
        at `offset_data`; the regions must hold exactly the `stored` bytes."""
        sparse.validate(entries, realsize, stored, self.name)
        self.sparse = entries
        self.offset_data = data_start
        tarfile_.offset = data_start + self._block(stored)
        self.size = realsize

    def _proc_pax(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > MAX_PAX_SIZE:
            raise InvalidArchive(f"PAX header of {self.size} bytes at offset {self.offset} exceeds {MAX_PAX_SIZE}")
        raw = tarfile_.fileobj.read(self._block(self.size))
        if len(raw) < self.size:
            raise MalformedTar(f"tar stream is truncated inside the PAX header at offset {self.offset}",
                               GO_UNEXPECTED_EOF)
        records = parse_pax(raw[: self.size], self.offset)
        nxt = _next_header(self, tarfile_, lambda: self.fromtarfile(tarfile_))
        if self.type == tarfile.XGLTYPE:
            return nxt  # global headers: validated above, then ignored (moby does the same)
        nxt.offset = self.offset
        if getattr(nxt, "_pax_applied", False):
            return nxt  # several PAX headers in a row: the nearest one wins, as in Go
        if nxt.sparse is not None and "size" in records:  # would replace the checked real size
            raise InvalidArchive(f"tar entry {nxt.name!r}: PAX size on an old-GNU sparse entry")
        nxt._apply_records(records)
        if "size" in records:  # the real size moves the start of the next header
            end = nxt.offset_data
            if nxt.isreg() or nxt.type not in tarfile.SUPPORTED_TYPES:
                end += nxt._block(nxt.size)
            tarfile_.offset = end
        kind = sparse.pax_format(records, nxt.name)
        if kind is not None:
            nxt._pax_sparse(records, kind, tarfile_)
        return nxt

    def _proc_gnulong(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        return _next_header(self, tarfile_, lambda: super(StrictTarInfo, self)._proc_gnulong(tarfile_))

    def _apply_records(self, records: dict[str, str]) -> None:
        for key, value in records.items():
            if key == "path":
                self.name = value.rstrip("/") if self.isdir() else value
            elif key == "linkpath":
                self.linkname = value
            elif key in ("size", "uid", "gid"):
                if not value.isdigit():
                    raise InvalidArchive(f"tar entry {self.name!r}: invalid PAX {key} {value!r}")
                setattr(self, key, int(value))
            elif key in ("mtime", "atime"):
                ns = pax_time_ns(value)
                if ns is None:
                    raise InvalidArchive(f"tar entry {self.name!r}: invalid PAX {key} {value!r}")
                setattr(self, key + "_ns", ns)
                if key == "mtime":
                    self.mtime = ns // 1_000_000_000
            elif key in ("uname", "gname"):
                setattr(self, key, value)
        self.pax_headers = records
        self._pax_applied = True


_MAX_META_HEADERS = 8


def _next_header(meta: tarfile.TarInfo, tarfile_: tarfile.TarFile, parse):
    """Parse the member a meta header (PAX, GNU long name) belongs to.  tarfile does
    this recursively, so a chain of thousands of meta headers would overflow the
    stack: allow a few in a row, as real archives never need more."""
    depth = getattr(tarfile_, "_lamina_meta_depth", 0)
    if depth >= _MAX_META_HEADERS:
        raise InvalidArchive(f"more than {_MAX_META_HEADERS} extended headers in a row at offset {meta.offset}")
    tarfile_._lamina_meta_depth = depth + 1
    try:
        return parse()
    finally:
        tarfile_._lamina_meta_depth = depth
