"""`logs --since/--until` values as docker reads them: the CLI's
timetypes.GetTimestamp (a Go duration back from now, RFC3339-like times in several
layouts, local when they carry no zone, or unix seconds[.nanos] as given) then the
daemon's ParseTimestamps into (seconds, nanoseconds).  Errors carry Go's texts."""

from __future__ import annotations

import time

_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": 10**9,
          "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(s: str) -> int | None:
    """Go's time.ParseDuration in nanoseconds, None where Go returns an error."""
    neg = False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0
    while s:
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        whole, s = s[:i], s[i:]
        frac = ""
        if s[:1] == ".":
            j = 1
            while j < len(s) and s[j].isascii() and s[j].isdigit():
                j += 1
            frac, s = s[1:j], s[j:]
        if not whole and not frac:
            return None
        j = 0
        while j < len(s) and not (s[j] == "." or (s[j].isascii() and s[j].isdigit())):
            j += 1
        unit, s = s[:j], s[j:]
        if unit not in _UNITS:
            return None
        scale = _UNITS[unit]
        total += int(whole or 0) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
    return -total if neg else total


def _layout(value: str) -> tuple[str, bool]:
    """GetTimestamp's choice of layout, and whether it parses in the local zone."""
    local = not (any(c in value for c in "zZ+") or value.count("-") == 3)
    if "." in value:
        return ("2006-01-02T15:04:05.999999999" if local else "2006-01-02T15:04:05.999999999Z07:00"), local
    if "T" in value:
        colons = value.count(":")
        if not local and not any(c in value for c in "zZ") and colons:
            colons -= 1
        clock = ("15", "15:04", "15:04:05")[min(colons, 2)]
        return f"2006-01-02T{clock}{'' if local else 'Z07:00'}", local
    return ("2006-01-02" if local else "2006-01-02Z07:00"), local


class _ParseError(ValueError):
    pass


def _go_parse(value: str, layout: str, local: bool) -> tuple[int, int]:
    """time.Parse(layout, value) for GetTimestamp's layouts: (unix seconds, nanoseconds)."""
    tokens = []
    rest = layout
    for tok in ("2006", "-", "01", "-", "02", "T", "15", ":", "04", ":", "05", ".999999999", "Z07:00"):
        if rest.startswith(tok):
            tokens.append(tok)
            rest = rest[len(tok):]
    fields = {"2006": 0, "01": 1, "02": 1, "15": 0, "04": 0, "05": 0}
    nanos, offset, v = 0, None, value
    for k, tok in enumerate(tokens):
        rest_layout = "".join(tokens[k:])
        if tok in fields:
            width = 4 if tok == "2006" else 2
            n = 0
            while n < len(v) and n < width and v[n].isascii() and v[n].isdigit():
                n += 1
            if n < width and not (tok == "15" and n == 1):
                raise _ParseError(f'parsing time "{value}" as "{layout}": cannot parse "{v}" as "{tok}"')
            fields[tok], v = int(v[:n]), v[n:]
            if tok == "05" and v[:1] == "." and ".999999999" not in tokens:
                tok = ".999999999"  # Go takes a fraction after seconds the layout does not name
            else:
                continue
        if tok == ".999999999":
            if v[:1] == ".":
                n = 1
                while n < len(v) and v[n].isascii() and v[n].isdigit():
                    n += 1
                digits, v = v[1:n], v[n:]
                nanos = int((digits + "000000000")[:9]) if digits else 0
            continue
        if tok == "Z07:00":
            if v[:1] in ("Z",):
                offset, v = 0, v[1:]
            elif v[:1] in ("+", "-") and len(v) >= 6 and v[3] == ":" and v[1:3].isdigit() and v[4:6].isdigit():
                offset = (int(v[1:3]) * 3600 + int(v[4:6]) * 60) * (1 if v[0] == "+" else -1)
                v = v[6:]
            else:
                raise _ParseError(f'parsing time "{value}" as "{layout}": cannot parse "{v}" as "Z07:00"')
            continue
        if not v.startswith(tok):
            raise _ParseError(f'parsing time "{value}" as "{layout}": cannot parse "{v}" as "{rest_layout[:len(tok)]}"')
        v = v[len(tok):]
    if v:
        raise _ParseError(f'parsing time "{value}": extra text: {v}')
    year, month, day = fields["2006"], fields["01"], fields["02"]
    hour, minute, second = fields["15"], fields["04"], fields["05"]
    for name, val, top in (("month", month, 12), ("hour", hour, 23), ("minute", minute, 59), ("second", second, 59)):
        if not (1 if name == "month" else 0) <= val <= top:
            raise _ParseError(f'parsing time "{value}": {name} out of range')
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]:
        raise _ParseError(f'parsing time "{value}": day out of range')
    import calendar

    secs = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if offset is None:  # FixedZone(reference.Zone()): the zone in force now
        offset = time.localtime().tm_gmtoff if local else 0
    return secs - offset, nanos


def get_timestamp(value: str, now: float | None = None) -> str:
    """timetypes.GetTimestamp: what the CLI sends for --since/--until; ValueError with
    its text."""
    d = parse_duration(value)
    if value != "0" and d is not None:
        ref = time.time_ns() if now is None else int(now * 10**9)
        return str((ref - d) // 10**9)
    layout, local = _layout(value)
    try:
        secs, nanos = _go_parse(value, layout, local)
    except _ParseError as e:
        if "-" in value:
            raise ValueError(str(e)) from None
        try:
            parse_timestamp(value)
        except ValueError:
            raise ValueError(f'failed to parse value as time or duration: "{value}"') from None
        return value
    return f"{secs}.{nanos:09d}"


def parse_timestamp(value: str) -> tuple[int, int]:
    """timetypes.parseTimestamp: "seconds[.fraction]" -> (seconds, nanoseconds)."""
    sec, dot, frac = value.partition(".")
    s = _parse_int(sec)
    if not dot:
        return s, 0
    n = _parse_int(frac)
    return s, int(n * 10 ** (9 - len(frac)))


def _parse_int(text: str) -> int:
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    return int(text)


def rfc3339_fixed(secs: int, nanos: int) -> bytes:
    """A time as the sortable form the reader compares entries in: 2006-01-02T15:04:05.000000000Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)).encode() + b".%09dZ" % nanos
