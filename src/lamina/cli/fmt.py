"""Output formatting as the docker CLI does it: tabwriter tables, human sizes and
durations (go-units), Go-style JSON and a small subset of Go templates.

Everything printed here may carry image-supplied text (commands, comments, labels),
so this is the one place where it is made safe for a terminal: table cells and
template fields have their control characters escaped (`\\x1b`, as `docker ps`
shows COMMAND), and JSON escapes DEL and C1 controls too.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

from lamina.quoting import escape_controls


def human_size(size: float) -> str:
    """go-units HumanSizeWithPrecision(size, 3): decimal units, 3 significant digits."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
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


def since(epoch: float) -> str:
    return human_duration(max(0.0, time.time() - epoch)) + " ago"


def go_time(epoch: float) -> str:
    """Go's time.String() in UTC as `docker images --format` prints CreatedAt."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], out=None) -> None:
    """text/tabwriter(minwidth=10, tabwidth=1, padding=3, ' '): columns padded to
    the widest cell + 3, at least 10; the last column is not padded."""
    out = out or sys.stdout
    rows = [[escape_controls(str(cell)) for cell in r] for r in rows]
    all_rows = [list(headers)] + rows
    widths = [0] * len(headers)
    for r in all_rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + 3, 10)
    for r in all_rows:
        line = "".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])) + (r[-1] if r else "")
        out.write(line.rstrip() + "\n" if not r[-1] else line + "\n")


# In JSON text these characters only occur inside strings, where each is one escape
# pair (`\\x`) or a raw character: matched pairwise so `\\\\b` stays a backslash + b.
_JSON_FIXUPS = re.compile("\\\\.|[<>&\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _json_fixup(m: re.Match) -> str:
    text = m.group()
    if text in ("\\b", "\\f"):
        return "\\u0008" if text == "\\b" else "\\u000c"  # Go (before 1.22) has no short forms for these
    if len(text) == 2:
        return text
    if "\ud800" <= text <= "\udfff":
        return "\\ufffd"  # a lone surrogate: Go writes U+FFFD for invalid text
    return f"\\u{ord(text):04x}"


def go_json(obj, indent: int | None = None) -> str:
    """JSON the way Go's encoding/json writes it: HTML characters, U+2028/U+2029 and
    controls escaped.  Unlike Go, DEL and C1 controls are escaped too (the same JSON
    value; a raw C1 CSI from an image could still drive a terminal)."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, separators=(",", ":") if indent is None else None)
    return _JSON_FIXUPS.sub(_json_fixup, text)


_FIELD = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def render_template(template: str, item: Mapping) -> str:
    """The subset of Go templates people use with --format: `{{.Field}}`,
    `{{json .}}`, `{{json .Field}}`, `table` prefix handled by the caller."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")

    def repl(m: re.Match) -> str:
        as_json, path = m.group(1), m.group(2)
        value = item
        for part in [p for p in path.split(".") if p]:
            value = value.get(part, "") if isinstance(value, Mapping) else ""
        if as_json:
            return go_json(value)
        if isinstance(value, (dict, list)):
            return go_json(value)
        return escape_controls(str(value))

    return _FIELD.sub(repl, template)


def print_inspect(items: list) -> None:
    sys.stdout.write(go_json(items, indent=4) + "\n")
