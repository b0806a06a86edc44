"""RUN --mount values: BuildKit's parser (`instructions/commands_runmount.go`).

`parse_mount(spec, expand)` reads one `--mount` value (Go's csv, one record) into a
`Mount`.  The instruction parser calls it with a literal expander to report mistakes
early; values still holding `$VAR`s are kept raw (the Mount is `deferred`), and the
RUN step parses the spec again once expanded.  Preparing the mounts is mounts.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lamina.errors import InstructionError, ShellError
from lamina.quoting import go_quote
from lamina.units import ram_in_bytes

from .parser import _GO_BOOLS

_Error = InstructionError
_q = go_quote


@dataclass(frozen=True, kw_only=True)
class Mount:
    spec: str  # the --mount value as written, to re-parse once expanded
    type: str = "bind"  # bind | cache | tmpfs | secret | ssh
    from_: str | None = None
    source: str | None = None
    target: str | None = None
    readonly: bool = True
    id: str | None = None
    sharing: str | None = None  # cache: shared | private | locked
    required: bool = False  # secret / ssh
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None  # tmpfs, bytes
    env: str | None = None  # secret: expose as this environment variable
    deferred: bool = False  # some values still hold $VARs: not fully validated yet


_MOUNT_FIELD = {"type": "type", "from": "from_", "source": "source", "src": "source", "target": "target",
                "dst": "target", "destination": "target", "readonly": "readonly", "ro": "readonly",
                "readwrite": "readonly", "rw": "readonly", "required": "required", "id": "id",
                "sharing": "sharing", "mode": "mode", "uid": "uid", "gid": "gid", "size": "size", "env": "env"}  # fmt: skip


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> Mount:
    """One `--mount` value.  `expand` processes every value but `from`'s; values still
    holding `$` after it are kept raw and not validated (the Mount is `deferred`)."""
    m: dict[str, object] = {"type": "bind"}
    ro_auto, deferred = True, False
    for item in _go_csv(spec):
        key, eq, value = item.partition("=")
        key = key.lower()
        if not eq and key in ("readonly", "ro", "readwrite", "rw", "required"):
            value = "true"  # a bare boolean key
        elif not eq:
            raise _Error(f"invalid field '{item}' must be a key=value pair")
        elif key == "from" and re.search(r"\$.", value):
            raise _Error("'from' doesn't support variable expansion, define alias stage instead")
        elif expand is not None:
            try:
                value = expand(value)
            except ShellError as e:
                raise _Error(str(e)) from None
        attr = _MOUNT_FIELD.get(key)
        if attr is None:
            raise _Error(f"unexpected key '{key}' in '{item}'")
        ro_auto = ro_auto and attr != "readonly"
        if "$" in value and key != "from":
            deferred = True  # checked when the executor parses the expanded value
            if attr in ("source", "target", "id", "env"):
                m[attr] = value
        else:
            _mount_field(m, key, attr, value)
    kind = m["type"]
    if not deferred:
        for attr in ("mode", "uid", "gid"):
            if attr in m and kind not in ("secret", "ssh", "cache"):
                raise _Error(f'{attr} not allowed for "{kind}" type mounts')
        if "sharing" in m and kind != "cache":
            raise _Error(f"invalid cache sharing set for {kind} mount")
        if kind == "secret" and m.get("from_"):
            raise _Error("secret mount should not have a from")
        if kind == "secret" and not (m.get("source") or m.get("target") or m.get("id") or "env" in m):
            raise _Error("invalid secret mount. one of source, target required")
        if kind == "secret" and m.get("source") and m.get("id"):
            raise _Error("both source and id can't be set")
    if ro_auto:
        m["readonly"] = kind not in ("cache", "tmpfs")
    return Mount(spec=spec, deferred=deferred, **m)  # type: ignore[arg-type]


def _mount_field(m: dict[str, object], key: str, attr: str, value: str) -> None:
    if attr == "size" and m["type"] != "tmpfs":
        raise _Error(f"size is not allowed for {m['type']}")
    if attr == "required" and m["type"] not in ("secret", "ssh"):
        raise _Error(f"unexpected key '{key}' for mount type '{m['type']}'")
    if attr == "type":
        if value.lower() not in ("bind", "cache", "tmpfs", "secret", "ssh"):
            raise _Error(f"unsupported mount type {_q(value)}")
        value = value.lower()
    elif attr in ("readonly", "required"):
        if value not in _GO_BOOLS:
            raise _Error(f"invalid value for {key}: {value}")
        m[attr] = _GO_BOOLS[value] != (key in ("readwrite", "rw"))
        return
    elif attr == "sharing":
        if value.lower() not in ("shared", "private", "locked"):
            raise _Error(f"unsupported sharing value {_q(value)}")
        value = value.lower()
    elif attr in ("mode", "uid", "gid"):
        if not re.fullmatch("[0-7]+" if attr == "mode" else "[0-9]+", value) or int(value, 8 if attr == "mode" else 10) >> 32:
            raise _Error(f"invalid value {value} for {attr}")
        m[attr] = int(value, 8 if attr == "mode" else 10)
        return
    elif attr == "size":  # docker/go-units RAMInBytes: "64m", "1.5GiB", "512 kb"
        size = ram_in_bytes(value)
        if size is None:
            raise _Error(f"invalid size: '{value}'")
        m[attr] = size
        return
    m[attr] = value


def _go_csv(text: str) -> list[str]:
    """The first record of Go's encoding/csv reader: strict quotes, no trimming."""
    line = text.split("\n", 1)[0].removesuffix("\r")
    if line == "":
        raise _Error("failed to parse csv mounts: EOF")
    fields, i = [], 0
    while True:
        if line.startswith('"', i):  # quoted field: "" is a quote, must end at , or EOL
            m = re.compile(r'"((?:[^"]|"")*)"(?=,|\Z)').match(line, i)
            if m is None:
                raise _Error('failed to parse csv mounts: extraneous or missing " in quoted-field')
            fields.append(m[1].replace('""', '"'))
            i = m.end()
        else:
            j = line.find(",", i)
            j = len(line) if j < 0 else j
            if '"' in line[i:j]:
                raise _Error('failed to parse csv mounts: bare " in non-quoted-field')
            fields.append(line[i:j])
            i = j
        if i >= len(line):
            return fields
        i += 1
