"""buildx's CSV flag values (`--output`, `--cache-to`, `--cache-from`): one line of
comma-separated `key=value` fields, read with a CSV reader so a quoted field may hold
a comma.  Each flag has its own shorthand for a bare value; the fields are common."""

from __future__ import annotations

from lamina.errors import UsageError


def fields(text: str) -> list[str]:
    """The fields of `text`; buildx's `invalid value TEXT` when it is not one CSV line."""
    import csv

    try:
        return next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise UsageError(f"invalid value {text}") from None


def pairs(items: list[str]) -> list[tuple[str, str]]:
    """(key, value) for each `key=value` field, the key lower-cased as buildx reads it."""
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"invalid value {item}")
        out.append((key.strip().lower(), value))
    return out
