"""`loads` for the read verbs' hot path (and `dumps` for `run`'s), without
importing the json package.

`import json` imports `re` (its decoder compiles regexes at import), and the two
cost more start-up time than `lamina ps` has for everything else.  The C scanner
under json (`_json.make_scanner`) decodes on its own, given the options json's
decoder would pass it; anything it does not accept (bad JSON) goes to `json.loads`
for the same value or the same JSONDecodeError.  `dumps` likewise drives json's
C encoder as `json.dumps(obj)` does, byte for byte.  `go_json` writes JSON as Go's
encoding/json does (docker's output), and `parse_json`/`loads_document` read untrusted
documents (configs, manifests) within a size and a nesting bound.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lamina.errors import LaminaError

try:
    from _json import make_scanner as _make_scanner
except ImportError:  # an interpreter without the C accelerator
    _make_scanner = None


class _Options:
    """What json.JSONDecoder gives the C scanner (json.loads' defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod({"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
                                  .__getitem__)
    memo: dict = {}


try:
    from _json import encode_basestring_ascii as _ascii, make_encoder as _make_encoder
except ImportError:
    _make_encoder = None

_scan = _make_scanner(_Options) if _make_scanner is not None else None
MAX_DOCUMENT = 4 << 20  # manifests, indexes and configs larger than 4 MiB are refused
MAX_DEPTH = 64  # nesting of a manifest, index or config (real ones nest < 10)
_WS = " \t\n\r"


def loads(text: str | bytes):
    """json.loads(text), for str or UTF-8 bytes."""
    raw = text
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig" if text[:3] == b"\xef\xbb\xbf" else "utf-8")
        except UnicodeDecodeError:  # json.loads also reads UTF-16 and UTF-32, or raises the same
            import json

            return json.loads(raw)
    if _scan is not None and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WS))
        try:
            value, end = _scan(text, start)
        except Exception:  # noqa: BLE001 - json.loads below raises the real error
            pass
        else:
            if end == len(text) or not text[end:].strip(_WS):
                return value
    import json

    return json.loads(text)



class _NotJSON(Exception):
    pass


def _not_json(value):
    raise _NotJSON  # json.dumps below raises the real TypeError


def dumps(obj, separators: tuple[str, str] = (", ", ": ")) -> str:
    """json.dumps(obj, separators=separators) with json's other defaults (ASCII), the
    same bytes: what JSONEncoder.encode runs, the C encoder; anything else goes to
    json.dumps.  `(",", ":")` writes the compact form (config.json on every start)."""
    if _make_encoder is not None:
        if isinstance(obj, str):
            return _ascii(obj)
        item_sep, key_sep = separators
        try:
            # JSONEncoder.iterencode's arguments: markers, default, encoder, indent,
            # key_separator, item_separator, sort_keys, skipkeys, allow_nan
            return "".join(_make_encoder({}, _not_json, _ascii, None, key_sep, item_sep, False, False, True)(obj, 0))
        except Exception:  # noqa: BLE001 - json.dumps gives the same text or the real error
            pass
    import json

    return json.dumps(obj, separators=separators)


# -- writing as Go's encoding/json does (cli/fmt.go_json), without json or re --------

_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_ESCAPES.update({c: f"\\u{c:04x}" for c in range(0x20) if c not in _ESCAPES})  # \b, \f too: Go has no short forms
_ESCAPES.update({c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)})  # DEL and C1 controls (not Go: terminal safety)
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_ESCAPES_HTML = {**_ESCAPES, ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}
_SPECIAL_ASCII = '"\\'
_SPECIAL_HTML = '"\\<>&'


class Unsupported(Exception):
    """A value go_dumps does not write (a type other than JSON's): use json.dumps."""


def _string(s: str, html: bool) -> str:
    if s.isascii() and s.isprintable() and not any(c in s for c in (_SPECIAL_HTML if html else _SPECIAL_ASCII)):
        return f'"{s}"'
    out = s.translate(_ESCAPES_HTML if html else _ESCAPES)
    if not out.isascii():
        try:
            out.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: Go writes U+FFFD for invalid text
            out = "".join("\\ufffd" if "\ud800" <= c <= "\udfff" else c for c in out)
    return f'"{out}"'


def _scalar(v, html: bool) -> str:
    if isinstance(v, str):
        return _string(v, html)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        return float.__repr__(v)
    raise Unsupported(type(v).__name__)


def _key(k, html: bool) -> str:
    if isinstance(k, str):
        return _string(k, html)
    if k is None or isinstance(k, (bool, int, float)):
        return _string(_scalar(k, html), html)  # json.dumps writes such keys as strings
    raise Unsupported(type(k).__name__)


def go_dumps(obj, indent: int | None = None, html: bool = True) -> str:
    """json.dumps(obj, indent=indent, ensure_ascii=False, compact when indent is None)
    with Go's escapes, as go_json below writes it; raises Unsupported for a value
    json.dumps would need a default= or a type check for."""
    parts: list[str] = []
    add = parts.append
    item_sep, key_sep = (",", ":") if indent is None else (",", ": ")

    def write(v, level: int) -> None:
        if isinstance(v, dict):
            if not v:
                add("{}")
                return
            add("{")
            inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
            first = True
            for k, x in v.items():
                add(inner if first else item_sep + inner)
                first = False
                add(_key(k, html))
                add(key_sep)
                write(x, level + 1)
            add("" if indent is None else "\n" + " " * (indent * level))
            add("}")
        elif isinstance(v, (list, tuple)):
            if not v:
                add("[]")
                return
            add("[")
            inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
            first = True
            for x in v:
                add(inner if first else item_sep + inner)
                first = False
                write(x, level + 1)
            add("" if indent is None else "\n" + " " * (indent * level))
            add("]")
        else:
            add(_scalar(v, html))

    write(obj, 0)
    return "".join(parts)


# In JSON text these characters only occur inside strings, where each is one escape
# pair (`\\x`) or a raw character: matched pairwise so `\\\\b` stays a backslash + b.
_JSON_FIXUPS = "\\\\.|[<>&\x7f-\x9f\u2028\u2029\ud800-\udfff]"  # compiled on first use: re costs ms
_JSON_FIXUPS_NO_HTML = "\\\\.|[\x7f-\x9f\u2028\u2029\ud800-\udfff]"


def _json_fixup(m) -> str:
    text = m.group()
    if text in ("\\b", "\\f"):
        return "\\u0008" if text == "\\b" else "\\u000c"  # Go (before 1.22) has no short forms for these
    if len(text) == 2:
        return text
    if "\ud800" <= text <= "\udfff":
        return "\\ufffd"  # a lone surrogate: Go writes U+FFFD for invalid text
    return f"\\u{ord(text):04x}"


def go_json(obj, indent: int | None = None, html: bool = True) -> str:
    """JSON the way Go's encoding/json writes it: HTML characters (unless html=False,
    an Encoder with SetEscapeHTML(false)), U+2028/U+2029 and controls escaped.  Unlike
    Go, DEL and C1 controls are escaped too (the same JSON value; a raw C1 CSI from an
    image could still drive a terminal)."""
    try:  # the same text without importing json and re (inspect's start-up time)
        return go_dumps(obj, indent, html)
    except Unsupported:
        pass
    import json
    import re

    text = json.dumps(obj, indent=indent, ensure_ascii=False, separators=(",", ":") if indent is None else None)
    return re.sub(_JSON_FIXUPS if html else _JSON_FIXUPS_NO_HTML, _json_fixup, text)


def parse_json(raw: bytes, what: str, error: type[LaminaError] | None = None) -> Any:
    """Untrusted JSON (a manifest, index, config, archive manifest) -> value, or
    `error` naming `what`: invalid text, or nesting so deep that the decoder
    (or a later json.dumps in `inspect`) would overflow the stack.  `error` is
    StoreError unless given (errors is imported only to raise it)."""
    if error is None:
        from lamina.errors import StoreError as error
    if len(raw) > MAX_DOCUMENT:
        raise error(f"{what} is larger than 4 MiB")
    try:
        doc = loads(raw)
    except RecursionError:
        raise error(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{what} is not valid JSON: {e}") from None
    if _depth(doc) > MAX_DEPTH:
        raise error(f"{what} is nested more than {MAX_DEPTH} levels deep")
    return doc


def _depth(doc: Any) -> int:
    """Nesting depth, walked without recursion (only containers are visited)."""
    deepest = 0
    todo = [(doc, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        todo.extend((v, depth + 1) for v in items if isinstance(v, (dict, list)))
    return deepest


def loads_document(raw: bytes, what: str, error: type[LaminaError] | None = None) -> dict:
    doc = parse_json(raw, what, error)
    if not isinstance(doc, dict):
        if error is None:
            from lamina.errors import StoreError as error
        raise error(f"{what} is not a JSON object")
    return doc
