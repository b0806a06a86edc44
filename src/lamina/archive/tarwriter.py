"""Tar headers and streams as Go's archive/tar writes them.

`encode_header` produces the bytes Go's archive/tar writes for a header that moby's
archive package built (format PAX, falling back to plain USTAR when no PAX record
is needed), so our layers look like Docker's: type bits in the mode field, numeric
ids, `PaxHeaders.0/<name>` extended headers with sorted records.  `TarOut` buffers
a stream's writes and ends it as Go does.  (Reading, strictly: tarformat.py.)
"""

from __future__ import annotations

from lamina.archive.tarformat import BLOCK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

REG, LNK, SYM, CHR, BLK, DIR, FIFO = (b"0", b"1", b"2", b"3", b"4", b"5", b"6")
_PAX_HEADER = b"x"
END_OF_ARCHIVE = bytes(2 * BLOCK)  # Go writes exactly two zero blocks, no 10240 record padding


def _ascii(data: bytes) -> bytes:
    """Go's toASCII: drop every non-ASCII byte (used for best-effort USTAR fields)."""
    return data if data.isascii() else bytes(b for b in data if b < 0x80)


def _put_str(block: bytearray, off: int, size: int, data: bytes) -> None:
    """Go's formatter.formatString: truncate, NUL-terminate when shorter."""
    block[off : off + min(len(data), size)] = data[:size]
    if len(data) > size and block[off + size - 1] == 0x2F:  # never leave a trailing "/" after truncation
        n = len(data[: size - 1].rstrip(b"/"))
        block[off + n] = 0


def _fits_octal(value: int, size: int) -> bool:
    return 0 <= value < 1 << (3 * (size - 1))


def _put_octal(block: bytearray, off: int, size: int, value: int) -> None:
    if not _fits_octal(value, size):
        value = 0  # Go writes zero and relies on a PAX record
    block[off : off + size] = b"%0*o\0" % (size - 1, value)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's splitUSTARPath: fit a long name into the 155-byte prefix + 100-byte name."""
    length = len(name)
    if length <= 100 or not name.isascii():
        return None
    if length > 156:
        length = 156
    elif name[length - 1] == 0x2F:
        length -= 1
    i = name.rfind(b"/", 0, length)
    if i <= 0 or len(name) - i - 1 > 100 or len(name) - i - 1 == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


def _finish(block: bytearray) -> bytes:
    block[257:265] = b"ustar\x0000"
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _pax_record(key: bytes, value: bytes) -> bytes:
    size = len(key) + len(value) + 3
    size += len(str(size))
    record = b"%d %s=%s\n" % (size, key, value)
    if len(record) != size:  # adding the length field made the record longer
        record = b"%d %s=%s\n" % (len(record), key, value)
    return record


def encode_header(
    name: str,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: Mapping[str, bytes] | None = None,
    uname: str = "",
    gname: str = "",
) -> bytes:
    """One entry's header block(s), as Go's tar.Writer writes them for hdr.Format=PAX.
    Owner names are empty in layers; `export` gives them, as docker's does."""
    bname = name.encode("utf-8", "surrogateescape")
    blink = linkname.encode("utf-8", "surrogateescape")
    if (not xattrs and not uname and not gname and len(bname) <= 100 and len(blink) <= 100
            and bname.isascii() and blink.isascii() and 0 <= min(mode, uid, gid, devmajor, devminor)
            and max(mode, uid, gid, devmajor, devminor) < _MAX7 and 0 <= size < _MAX11 and 0 <= mtime < _MAX11):
        return _plain(bname, typeflag, mode, uid, gid, size, mtime, blink, devmajor, devminor)
    return _general(bname, typeflag, mode, uid, gid, size, mtime, blink, devmajor, devminor, xattrs, uname, gname)


_MAX7, _MAX11 = 1 << 21, 1 << 33  # what 7 and 11 octal digits hold
_USTAR_OWNERS = b"ustar\x0000" + bytes(64)  # magic, version, empty uname and gname


def _plain(bname: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, blink: bytes,
           devmajor: int, devminor: int) -> bytes:
    """The one USTAR block of the common entry (short ASCII names, no owner names or
    xattrs, every number in its field): the bytes _general gives it, built in one go
    (a COPY writes one per file)."""
    head = bname + bytes(100 - len(bname)) + b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode, uid, gid, size, mtime)
    tail = (typeflag + blink + bytes(100 - len(blink)) + _USTAR_OWNERS + b"%07o\0%07o\0" % (devmajor, devminor)
            + bytes(167))
    return head + b"%06o\0 " % (sum(head) + sum(tail) + 8 * 0x20) + tail


def _general(bname: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, blink: bytes,
             devmajor: int, devminor: int, xattrs: Mapping[str, bytes] | None, uname: str, gname: str) -> bytes:
    pax: dict[bytes, bytes] = {}
    ustar = not xattrs
    names = (uname.encode("utf-8", "surrogateescape"), gname.encode("utf-8", "surrogateescape"))
    for key, value in zip((b"uname", b"gname"), names):
        if len(value) > 32 or not value.isascii():
            pax[key] = value
            ustar = False
    split = None
    if len(bname) > 100 or not bname.isascii():
        pax[b"path"] = bname
        split = _split_ustar(bname)
        ustar = ustar and split is not None
    if len(blink) > 100 or not blink.isascii():
        pax[b"linkpath"] = blink
        ustar = False
    for key, value, width in ((b"uid", uid, 8), (b"gid", gid, 8), (b"size", size, 12), (b"mtime", mtime, 12)):
        if not _fits_octal(value, width):
            pax[key] = str(value).encode()
            ustar = False
    block = bytearray(BLOCK)
    if ustar:
        if split is not None:
            _put_str(block, 345, 155, split[0])
            bname = split[1]
        return _finish(_names(_fill(block, bname, typeflag, mode, uid, gid, size, mtime, blink, devmajor, devminor),
                              names))
    for key, value in (xattrs or {}).items():
        pax[b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape")] = value
    data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    head, _, base = bname.rpartition(b"/") if not bname.endswith(b"/") else (bname.rstrip(b"/"), b"", b"")
    xname = _ascii((head + b"/" if head else b"") + b"PaxHeaders.0" + (b"/" + base if base else b""))
    xblock = bytearray(BLOCK)
    _put_str(xblock, 0, 100, xname[:100].rstrip(b"/"))
    for off, width, value in ((100, 8, 0), (108, 8, 0), (116, 8, 0), (124, 12, len(data)), (136, 12, 0)):
        _put_octal(xblock, off, width, value)
    xblock[156:157] = _PAX_HEADER
    main = _fill(block, _ascii(bname), typeflag, mode, uid, gid, size, mtime, _ascii(blink), devmajor, devminor)
    main = _names(main, names)
    return _finish(xblock) + data + bytes(-len(data) % BLOCK) + _finish(main)


def _names(block: bytearray, names: tuple[bytes, bytes]) -> bytearray:
    """uname and gname fields (best-effort ASCII when a PAX record holds the real one)."""
    _put_str(block, 265, 32, _ascii(names[0]))
    _put_str(block, 297, 32, _ascii(names[1]))
    return block


def _fill(block, bname, typeflag, mode, uid, gid, size, mtime, blink, devmajor, devminor) -> bytearray:
    _put_str(block, 0, 100, bname)
    _put_octal(block, 100, 8, mode)
    _put_octal(block, 108, 8, uid)
    _put_octal(block, 116, 8, gid)
    _put_octal(block, 124, 12, size)
    _put_octal(block, 136, 12, mtime)
    block[156:157] = typeflag
    _put_str(block, 157, 100, blink)
    _put_octal(block, 329, 8, devmajor)
    _put_octal(block, 337, 8, devminor)
    return block



class TarOut:
    """Buffered output of a tar stream: headers and data go out in 256 KiB writes,
    and `finish` writes Go's end of archive (two zero blocks, nothing more)."""

    FLUSH = 256 << 10

    def __init__(self, out) -> None:
        self.out = out
        self.buf = bytearray()

    def write(self, data) -> None:
        self.buf += data
        if len(self.buf) >= self.FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.out.write(bytes(self.buf))
            self.buf = bytearray()

    def finish(self) -> None:
        self.write(END_OF_ARCHIVE)
        self.flush()
