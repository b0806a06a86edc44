"""Sizes and times as docker prints them (go-units; Go's RFC 3339), shared by the CLI, the
Engine API, the build log and pull/push progress."""

from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `precision` significant digits.
    The default is units.HumanSize (`12.35MB`, the build log, progress bars); `images`
    and `history` use 3 (`1.98MB`)."""
    i = 0
    while size >= 1000 and i < len(_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_UNITS[i]}"


def ram_in_bytes(text: str) -> int | None:
    """go-units RAMInBytes (`64m`, `1.5GiB`, `512 kb`: binary multiples); None when
    docker would say `invalid size: '…'`.  Without `re`: run's flags use it."""
    rest = text.removesuffix("b").removesuffix("B")  # ^(\d+(\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$
    rest = rest.removesuffix("i").removesuffix("I")
    unit = 1
    if rest and rest[-1] in "kKmMgGtTpP":
        unit = 1024 ** " kmgtp".index(rest[-1].lower())
        rest = rest[:-1]
    rest = rest.removesuffix(" ")
    whole, dot, frac = rest.partition(".")
    if not (whole.isascii() and whole.isdigit()) or (dot and not (frac.isascii() and frac.isdigit())):
        return None
    return int(float(rest) * unit)


_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits (`stats`' `500KiB / 64MiB`)."""
    i = 0
    while size >= 1024 and i < len(_BINARY) - 1:
        size /= 1024.0
        i += 1
    return f"{size:.4g}{_BINARY[i]}"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String() for the values HEALTHCHECK takes (history text, a
    health probe's timeout message)."""
    if ns == 0:
        return "0s"
    neg, ns = ns < 0, abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return ("-" if neg else "") + _trim(ns / size) + unit
    h, rem = divmod(ns, 3600 * 10**9)
    m, rem = divmod(rem, 60 * 10**9)
    s = _trim(rem / 10**9) + "s"
    text = (f"{h}h{m}m" if h else f"{m}m" if m else "") + s
    return ("-" if neg else "") + text


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration (`ps` STATUS, the API's Status texts)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def rfc3339(epoch: float | None) -> str:
    """Go's RFC 3339 with nanoseconds, as the Engine API writes times (zero time for none)."""
    if not epoch:
        return "0001-01-01T00:00:00Z"
    # datetime.fromtimestamp's split, without importing datetime (inspect's start-up time):
    # whole seconds toward zero, microseconds rounded half-even, carried into the seconds
    import time

    whole = int(epoch)
    us = round((epoch - whole) * 1e6)
    if us >= 1000000:
        us, whole = us - 1000000, whole + 1
    elif us < 0:
        us, whole = us + 1000000, whole - 1
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)) + f"{us:06d}000Z"
