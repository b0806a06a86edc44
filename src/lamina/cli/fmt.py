"""Output formatting as the docker CLI does it: tabwriter tables, human sizes and
durations (go-units), Go-style JSON, and Go templates (lamina.gotemplate) as docker's
--format and inspect -f use them.

Everything printed here may carry image-supplied text (commands, comments, labels),
so this is the one place where it is made safe for a terminal: table cells and
template fields have their control characters escaped (`\\x1b`, as `docker ps`
shows COMMAND), and JSON escapes DEL and C1 controls too.
"""

from __future__ import annotations

import sys
import time
TYPE_CHECKING = False  # not typing, nor collections.abc (it loads collections): fmt is on every listing's path
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

from lamina.quoting import escape_controls
from lamina.units import human_duration  # noqa: F401 - the CLI's name for it
from lamina.units import human_size as _human_size


def human_size(size: float) -> str:
    """go-units HumanSizeWithPrecision(size, 3), what `images` and `history` show."""
    return _human_size(size, 3)


def since(epoch: float) -> str:
    return human_duration(max(0.0, time.time() - epoch)) + " ago"


def go_time(epoch: float) -> str:
    """Go's time.String() in UTC as `docker images --format` prints CreatedAt."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(epoch))  # not datetime: ms to import


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
    lines = []
    for r in all_rows:
        line = "".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])) + (r[-1] if r else "")
        lines.append(line.rstrip() + "\n" if not r[-1] else line + "\n")
    out.write("".join(lines))  # one write (one system call where stdout is unbuffered, as docker's)


def go_json(obj, indent: int | None = None, html: bool = True) -> str:
    """JSON the way Go's encoding/json writes it (lamina.leanjson.go_json)."""
    from lamina.leanjson import go_json as _go_json

    return _go_json(obj, indent, html)


def _escape_value(text: str) -> str:
    """A printed template value made terminal-safe: what is not printable escaped as
    %q does, except newline and tab, which drive no terminal and which templates print."""
    from lamina.gotemplate.values import SafeText

    if isinstance(text, SafeText) or text.isprintable():
        return text
    return "".join(ch if ch in "\n\t" or ch.isprintable() else escape_controls(ch) for ch in text)


def wants_template(format_text: str | None) -> bool:
    """Whether --format asks for a template: not empty, and not the bare `table`
    (docker's default table)."""
    return bool(format_text) and format_text.strip(" ") != "table"


def _listing_template(format_text: str):
    """docker's formatter preFormat: `table` prefix, spaces trimmed, `\\t` and `\\n` read as tab and newline;
    `json` is `{{json .}}`, as docker's CLI since 23 reads it (20.10's printed the word)."""
    from lamina.gotemplate import parse

    if format_text == "json":
        format_text = "{{json .}}"
    is_table = format_text.startswith("table")
    text = (format_text[5:] if is_table else format_text).strip(" ")
    return is_table, parse(text.replace("\\t", "\t").replace("\\n", "\n"))


def header_context(headers: Mapping[str, str]):
    """docker's SubHeaderContext: the header of each field, and `.Label "a.b-c"` -> `b c`."""
    from lamina.gotemplate import GoMap
    from lamina.gotemplate.execute import Func

    class HeaderMap(GoMap):
        methods = {"Label": Func(lambda name: name.split(".")[-1].replace("-", " ").replace("_", " "), ("string",))}

    return HeaderMap(headers)


def print_listing(format_text: str, rows: Sequence, headers: Mapping[str, str], *,
                  parse_error: str = "template parsing error", exec_error: str = "template parsing error",
                  out=None, err=None) -> int:
    """`ps`/`images`/`history --format`: each row (a GoStruct) through the template,
    and for `table` a header row from `headers` and columns as docker's tabwriter
    sets them.  Nothing is printed if a row fails, as docker buffers; returns the
    exit code after writing docker's message to stderr."""
    from lamina.gotemplate import TemplateError
    from lamina.gotemplate.funcs import HEADER

    out, err = out or sys.stdout, err or sys.stderr
    try:
        is_table, tmpl = _listing_template(format_text)
    except TemplateError as e:
        err.write(f"{parse_error}: {e}\n")
        return 1
    try:
        lines = [tmpl.execute(row, escape=_escape_value) + "\n" for row in rows]
    except TemplateError as e:
        err.write(f"{exec_error}: {e}\n")
        return 1
    if is_table:
        header = tmpl.partial_execute(header_context(headers), funcs=HEADER) + "\n"
        out.write(tabwriter(header + "".join(lines)))
    else:
        out.write("".join(lines))
    return 0


def print_inspect_template(format_text: str, items: Sequence, out=None, err=None) -> int:
    """`inspect -f`: each object through the template as docker does it: first on the
    typed object (Go field names; an absent key of a real map such as Labels is
    `<no value>`), and if that fails, on the JSON decoded with UseNumber and
    missingkey=error, whose output or error is what docker shows."""
    from lamina.gotemplate import TemplateError, parse

    out, err = out or sys.stdout, err or sys.stderr
    try:
        tmpl = parse(format_text)
    except TemplateError as e:
        err.write(f"template parsing error: {e}\n")
        return 64
    for item in items:
        try:
            text = tmpl.execute(typed_object(item), missing_key="error", escape=_escape_value)
        except TemplateError:
            try:
                text = tmpl.execute(raw_object(item), missing_key="error", escape=_escape_value)
            except TemplateError as e:
                out.write("\n")  # docker's CLI writes the newline before it fails
                err.write(f"template parsing error: {e}\n")
                return 1
        out.write(text + "\n")
    if not items:  # docker's TemplateInspector.Flush: an empty line when nothing was found
        out.write("\n")
    return 0


# Fields of docker's inspect types that are Go maps (the rest of the objects are structs).
_MAP_FIELDS = frozenset(("Labels", "ExposedPorts", "Volumes", "Ports", "Networks", "PortBindings", "Data",
                         "Sysctls", "StorageOpt", "Tmpfs", "DriverOpts", "Options"))


# ... and slices (null in JSON, `[]` when printed).
_SLICE_FIELDS = frozenset(("Cmd", "Entrypoint", "Env", "OnBuild", "Shell", "Args", "Layers", "RepoTags",
                           "RepoDigests", "Mounts", "Binds", "Links", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts",
                           "CapAdd", "CapDrop", "SecurityOpt", "Devices", "Aliases"))

# Pointer fields that are omitted when nil: (field, the struct's key, a field telling that struct).
_OMITTED_POINTERS = (("Healthcheck", "Config", "Cmd"), ("Healthcheck", "ContainerConfig", "Cmd"),
                     ("Health", "State", "Status"),
                     # a container's sizes without -s: `{{.SizeRw}}` prints <nil> (the top object: key "")
                     ("SizeRw", "", "State"), ("SizeRootFs", "", "State"))

# Go fields of docker's inspect types whose JSON name differs.
_GO_NAMES = {"ID": "Id"}


def typed_object(value, key: str = "", parent: str = ""):
    """Inspect JSON as docker's typed objects behave: Go map fields as GoMap, the other
    objects as structs (absent fields are errors), Go field names."""
    from lamina.gotemplate.values import OMITTED, GoMap, NilMap, NilSlice, StructDict

    is_map = key in _MAP_FIELDS or (parent, key) == ("LogConfig", "Config")
    if value is None and is_map:
        return NilMap()
    if value is None and key in _SLICE_FIELDS:
        return NilSlice()
    if isinstance(value, dict):
        if is_map:
            return GoMap({k: typed_object(v, k) for k, v in value.items()})
        inner = {k: typed_object(v, k, key) for k, v in value.items()}
        for field, owner, marker in _OMITTED_POINTERS:
            if key == owner and marker in value:
                inner.setdefault(field, OMITTED)
        struct = StructDict(inner)
        renamed = {go: js for go, js in _GO_NAMES.items() if js in value}
        if renamed:
            struct.go_names = renamed
        return struct
    if isinstance(value, list):
        return [typed_object(v) for v in value]
    return value


def raw_object(value):
    """Inspect JSON as json.Decoder with UseNumber gives it: numbers are json.Number."""
    from lamina.gotemplate.values import JSONNumber

    if isinstance(value, dict):
        return {k: raw_object(v) for k, v in value.items()}
    if isinstance(value, list):
        return [raw_object(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        import json

        return JSONNumber(json.dumps(value))
    return value


def tabwriter(text: str) -> str:
    """Go's text/tabwriter as docker sets it (minwidth 10, padding 3, spaces): cells end
    with a tab; a column block is a run of lines that have that cell, padded to its
    widest cell + 3 (at least 10); the last cell of a line is never padded."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(start: int, end: int) -> None:
        for i in range(start, end):
            cells = lines[i]
            parts = [c + " " * (widths[j] - len(c)) if j < len(widths) else c for j, c in enumerate(cells)]
            out.append("".join(parts) + ("\n" if i + 1 < len(lines) else ""))

    def fmt_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = 10
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + 3)
                this += 1
            widths.append(width)
            fmt_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt_block(0, len(lines))
    return "".join(out)


def render_template(template: str, item: Mapping) -> str:
    """Compatibility wrapper (the old subset API): `item` through a listing format."""
    _, tmpl = _listing_template(template)
    return tmpl.execute(item, escape=_escape_value)


def print_inspect(items: list) -> None:
    sys.stdout.write(go_json(items, indent=4) + "\n")


def print_inspected(items: list, format_text: str | None, code: int) -> int:
    """The end of every `inspect` verb: what was found, as JSON or through `-f`; the
    exit code is 1 when a name was not found (`code`) or the template failed."""
    if format_text == "json":  # docker's CLI since 23: the array in one line (20.10's printed the word)
        sys.stdout.write(go_json(items) + "\n")
        return code
    if format_text:
        return print_inspect_template(format_text, items) or code
    print_inspect(items)
    return code
