"""GNU sparse files in tar: the maps of old-GNU `S` entries and of PAX 0.0/0.1/1.0.

`tar --sparse` stores only the data regions of a file with holes plus a map of
(offset, length) pairs; `tar --sparse --format=pax` (GNU tar's default 1.0 format)
puts the map at the start of the entry's data, 0.0/0.1 put it in PAX records,
and the old GNU format in the header and extension blocks.  Go's archive/tar
(so `docker import`) reads the PAX forms; we read all four.

The map is hostile input: its size is bounded (1 MiB, Go's maxSpecialFileSize;
unbounded extension blocks were CVE-2025-58183), every number must be a plain
non-negative int64, and the regions must be in order, not overlap, end within
the file and add up to exactly the data stored, as Go's validateSparseEntries
and its reader require.  Names and confinement are the normal entry's.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

from lamina.errors import InvalidArchive

BLOCK = 512
MAX_MAP_BYTES = 1 << 20
_INT64_MAX = (1 << 63) - 1
_OLD_GNU_SLOTS = 4  # (offset, numbytes) pairs in the main header, at byte 386
_EXT_SLOTS = 21  # pairs per extension block; its byte 504 says "another block follows"

Map = list[tuple[int, int]]


def old_gnu(header: bytes, stream: BinaryIO, name: str) -> tuple[Map, int]:
    """Map and real size of an old-GNU sparse (`S`) entry; reads its extension blocks."""
    entries = _slots(header[386:482], _OLD_GNU_SLOTS, name)
    realsize = _octal(header[483:495], name)
    extended, total = header[482], 0
    while extended:
        total += BLOCK
        if total > MAX_MAP_BYTES:
            raise InvalidArchive(f"tar entry {name!r}: sparse map larger than {MAX_MAP_BYTES >> 20} MiB")
        block = stream.read(BLOCK)
        if len(block) != BLOCK:
            raise InvalidArchive(f"tar stream is truncated inside the sparse map of {name!r}")
        entries += _slots(block[:504], _EXT_SLOTS, name)
        extended = block[504]
    return entries, realsize


def _slots(area: bytes, count: int, name: str) -> Map:
    out = []
    for i in range(count):
        field = area[i * 24 : i * 24 + 24]
        if field[0] == 0:  # an empty slot ends the list (GNU and BSD tar, Go)
            break
        out.append((_octal(field[:12], name), _octal(field[12:], name)))
    return out


def _octal(field: bytes, name: str) -> int:
    try:
        value = tarfile.nti(field)  # octal or GNU base-256, as in the other header fields
    except (ValueError, tarfile.HeaderError):
        raise InvalidArchive(f"tar entry {name!r}: invalid number in its sparse map") from None
    if not 0 <= value <= _INT64_MAX:
        raise InvalidArchive(f"tar entry {name!r}: sparse map number out of range")
    return value


def pax_format(records: dict[str, str], name: str) -> str | None:
    """"0.x" or "1.0" when the PAX records describe a sparse file, else None."""
    if not any(key.startswith("GNU.sparse.") for key in records):
        return None
    major, minor = records.get("GNU.sparse.major"), records.get("GNU.sparse.minor")
    if (major, minor) in (("0", "0"), ("0", "1")) or (major is None and minor is None and "GNU.sparse.map" in records):
        return "0.x"  # 0.0 and 0.1 had no version records: known by their map
    if (major, minor) == ("1", "0"):
        return "1.0"
    raise InvalidArchive(f"tar entry {name!r}: unsupported GNU sparse format "
                         f"{major or '?'}.{minor or '?'}")


def pax_realsize(records: dict[str, str], name: str) -> int:
    text = records.get("GNU.sparse.size", records.get("GNU.sparse.realsize"))
    if text is None:
        raise InvalidArchive(f"tar entry {name!r}: GNU sparse headers without the file's size")
    return _decimal(text, name)


def pax_map(records: dict[str, str], name: str) -> Map:
    """The 0.0/0.1 map: `GNU.sparse.map` = "offset,length,..." (0.0's repeated records
    are joined into it by the PAX parser), `GNU.sparse.numblocks` pairs."""
    count = _decimal(records.get("GNU.sparse.numblocks", ""), name)
    text = records.get("GNU.sparse.map", "")
    numbers = text.split(",") if text else []
    if len(numbers) != 2 * count:
        raise InvalidArchive(f"tar entry {name!r}: sparse map has {len(numbers)} numbers for {count} regions")
    values = [_decimal(n, name) for n in numbers]
    return list(zip(values[0::2], values[1::2]))


def read_map_1x0(stream: BinaryIO, available: int, name: str) -> tuple[Map, int]:
    """The 1.0 map at the start of the data: decimal lines (count, then offset and
    length per region), padded to a block.  Returns (map, bytes of data it used)."""
    chunks: list[bytes] = []
    newlines = 0

    def need(lines: int) -> None:
        nonlocal newlines
        while newlines < lines:
            if (len(chunks) + 1) * BLOCK > min(available, MAX_MAP_BYTES):
                raise InvalidArchive(f"tar entry {name!r}: sparse map is larger than its data or "
                                     f"than {MAX_MAP_BYTES >> 20} MiB")
            block = stream.read(BLOCK)
            if len(block) != BLOCK:
                raise InvalidArchive(f"tar stream is truncated inside the sparse map of {name!r}")
            chunks.append(block)
            newlines += block.count(b"\n")

    need(1)
    count = _decimal(b"".join(chunks).split(b"\n", 1)[0].decode("ascii", "replace"), name)
    need(1 + 2 * count)  # bounded by the byte limit, whatever `count` claims
    lines = b"".join(chunks).split(b"\n")[1 : 1 + 2 * count]
    values = [_decimal(line.decode("ascii", "replace"), name) for line in lines]
    return list(zip(values[0::2], values[1::2])), len(chunks) * BLOCK


def _decimal(text: str, name: str) -> int:
    # Go's ParseInt(s, 10, 64) without a sign: plain ASCII digits, within int64.
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit() or int(text) > _INT64_MAX:
        raise InvalidArchive(f"tar entry {name!r}: invalid number {text[:24]!r} in its sparse map")
    return int(text)


def validate(entries: Map, realsize: int, stored: int, name: str) -> None:
    """Regions in order, not overlapping, inside the file, and exactly the data stored."""
    end = 0
    for offset, length in entries:
        if offset < end or offset + length > realsize:
            raise InvalidArchive(f"tar entry {name!r}: sparse map regions overlap, are out of order "
                                 f"or end past the file's size {realsize}")
        end = offset + length
    if sum(length for _, length in entries) != stored:
        raise InvalidArchive(f"tar entry {name!r}: sparse map describes "
                             f"{sum(length for _, length in entries)} bytes of data but {stored} are stored")
