"""One Dockerfile line, split as BuildKit does: the command word and its `--flags`
(extractBuilderFlags, on bytes), the arguments by keyword (line_parsers.go: JSON or
shell form, `k=v` words, whitespace lists) and the `<<EOF` heredoc words in it.

parser.py walks the file (directives, continuations, heredoc bodies, line numbers)
and calls these for each instruction; nothing here knows about lines or files.
Errors are `LineError`, which the parser turns into `file:line: message`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from lamina.errors import ShellError

from .shell import GO_SPACES, ShellLex, go_isspace

NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"

_ASCII_WS = re.compile(r"[\t\v\f\r ]+")  # BuildKit's reWhitespace / tokenWhitespace
_HEREDOC = re.compile(r"([0-9]*)<<(-?)([^<]*)", re.S)
_LEADING_TABS = re.compile(r"^\t+", re.M)
_BYTE_SPACES = frozenset(b"\t\n\v\f\r \x85\xa0")  # unicode.IsSpace(rune(byte))


class LineError(Exception):
    """An error inside one instruction; the caller adds the file and line."""


@dataclass(frozen=True)
class Heredoc:
    name: str  # the delimiter with its quotes removed (also the file name for COPY/ADD)
    content: str  # the body as written: every line with its line ending, tabs kept
    expand: bool  # False when any part of the delimiter was quoted
    chomp: bool  # <<- : leading tabs are stripped from the body and the terminator
    fd: int = 0  # 3<<EOF

    @property
    def body(self) -> str:
        return _LEADING_TABS.sub("", self.content) if self.chomp else self.content


def first_word(line: str) -> str:
    return _ASCII_WS.split(line.strip(GO_SPACES), maxsplit=1)[0]


def split_command(line: str) -> tuple[str, list[str], str]:
    parts = _ASCII_WS.split(line.strip(GO_SPACES), maxsplit=1)
    rest, flags = (_extract_flags(parts[1]) if len(parts) == 2 else ("", []))
    return parts[0], flags, rest.strip(GO_SPACES)


def _extract_flags(text: str) -> tuple[str, list[str]]:
    """Leading `--flag[=value]` words; `--` ends them.  Works on bytes like BuildKit,
    so flag values are rebuilt one byte per character (non-ASCII becomes mojibake)
    and the bytes 0x85/0xA0 count as blanks.  Quotes and backslashes are processed."""
    b = text.encode("utf-8", "surrogatepass")
    n = len(b)
    words: list[str] = []
    word: list[int] = []
    phase, quote, blank_ok = 0, 0, False  # phase: 0 between words, 1 in word, 2 in quote
    pos = 0
    while pos <= n:
        ch = b[pos] if pos < n else -1
        if phase == 0:
            if pos == n:
                break
            if ch in _BYTE_SPACES:
                pos += 1
                continue
            if ch != 0x2D or pos + 1 == n or b[pos + 1] != 0x2D:  # not "--"
                return b[pos:].decode("utf-8", "replace"), words
            phase = 1
        if pos == n:
            if word != [0x2D, 0x2D] and (blank_ok or word):
                words.append(bytes(word).decode("latin-1"))
            break
        if phase == 1:
            if ch in _BYTE_SPACES:
                phase = 0
                if word == [0x2D, 0x2D]:
                    return b[pos:].decode("utf-8", "replace"), words
                if blank_ok or word:
                    words.append(bytes(word).decode("latin-1"))
                word, blank_ok = [], False
            elif ch in (0x22, 0x27):
                quote, blank_ok, phase = ch, True, 2
            elif ch == 0x5C and pos + 1 == n:
                pass  # a backslash at the end is dropped
            else:
                if ch == 0x5C:
                    pos += 1
                    ch = b[pos]
                word.append(ch)
        else:
            if ch == quote:
                phase = 1
            elif ch == 0x5C and pos + 1 == n:
                phase = 1
            else:
                if ch == 0x5C:
                    pos += 1
                    ch = b[pos]
                word.append(ch)
        pos += 1
    return "", words


# -- per-instruction argument parsers (BuildKit's line_parsers.go) -------------------


def _parse_json(rest: str) -> tuple[tuple[str, ...], bool] | None:
    rest = rest.lstrip(GO_SPACES)
    if not rest.startswith("["):
        return None
    try:
        items, _ = _JSON.raw_decode(rest)  # trailing text after the array is ignored
    except ValueError:
        return None  # not JSON: the caller falls back to shell form
    except RecursionError:
        raise LineError(NOT_STRING_ARRAY) from None
    if not all(isinstance(x, str) for x in items):
        raise LineError(NOT_STRING_ARRAY)
    # Go decodes a lone surrogate escape to U+FFFD
    return tuple(re.sub("[\ud800-\udfff]", "\ufffd", x) for x in items), True


def _reject(value: str) -> float:
    raise ValueError(value)


def _finite(value: str) -> float:
    f = float(value)
    if f in (float("inf"), float("-inf")):
        raise ValueError(value)  # Go: number out of range for float64 -> not JSON
    return f


_JSON = json.JSONDecoder(parse_constant=_reject, parse_float=_finite)


def _maybe_json(rest: str, esc: str) -> tuple[tuple[str, ...], bool]:
    if rest == "":
        return (), False
    return _parse_json(rest) or ((rest,), False)


def _maybe_json_to_list(rest: str, esc: str) -> tuple[tuple[str, ...], bool]:
    return _parse_json(rest) or _whitespace_delimited(rest, esc)


def _whitespace_delimited(rest: str, esc: str) -> tuple[tuple[str, ...], bool]:
    return (tuple(_ASCII_WS.split(rest)) if rest else ()), False


def _string(rest: str, esc: str) -> tuple[tuple[str, ...], bool]:
    return ((rest,) if rest else ()), False


def split_words(rest: str, esc: str = "\\") -> list[str]:
    """ENV/LABEL/ARG words: split on blanks outside quotes; quotes and escapes are kept
    (the expander removes them).  BuildKit's parseWords."""
    words: list[str] = []
    word: list[str] = []
    phase, quote, blank_ok = 0, "", False
    n, i = len(rest), 0
    while True:
        if phase == 0:
            if i >= n:
                break
            if go_isspace(rest[i]):
                i += 1
                continue
            phase = 1
        if i >= n:
            if blank_ok or word:
                words.append("".join(word))
            break
        ch = rest[i]
        if phase == 1:
            if go_isspace(ch):
                phase = 0
                if blank_ok or word:
                    words.append("".join(word))
                word, blank_ok = [], False
                i += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, 2
            if ch == esc:
                if i + 1 == n:
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
        else:
            if ch == quote:
                phase = 1
            if ch == esc and quote != "'":
                if i + 1 == n:
                    phase = 1
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
        word.append(ch)
        i += 1
    return words


def _name_val(key: str):  # ENV and LABEL: `k=v ...` or the legacy `k v w`
    def parse(rest: str, esc: str) -> tuple[tuple[str, ...], bool]:
        words = split_words(rest, esc)
        if not words:
            return (), False
        if "=" not in words[0]:
            parts = _ASCII_WS.split(rest, maxsplit=1)
            if len(parts) < 2:
                raise LineError(f"{key} must have two arguments")
            return (parts[0], parts[1]), False
        out: list[str] = []
        for w in words:
            if "=" not in w:
                raise LineError(
                    f"Syntax error - can't find = in {json.dumps(w, ensure_ascii=False)}."
                    " Must be of the form: name=value"
                )
            out.extend(w.split("=", 1))
        return tuple(out), False

    return parse


def _name_or_name_val(rest: str, esc: str) -> tuple[tuple[str, ...], bool]:  # ARG
    return tuple(split_words(rest, esc)), False


def _health(rest: str, esc: str) -> tuple[tuple[str, ...], bool]:
    b = rest.encode("utf-8", "surrogatepass")  # BuildKit scans bytes here too
    sep = next((k for k, c in enumerate(b) if c in _BYTE_SPACES), len(b))
    if sep == 0:
        return (), False
    after = next((k for k in range(sep, len(b)) if b[k] not in _BYTE_SPACES), len(b))
    args, json_form = _maybe_json(b[after:].decode("utf-8", "replace"), esc)
    return (b[:sep].decode("utf-8", "replace"),) + args, json_form


LINE_PARSERS = {
    "add": _maybe_json_to_list, "arg": _name_or_name_val, "cmd": _maybe_json,
    "copy": _maybe_json_to_list, "entrypoint": _maybe_json, "env": _name_val("ENV"),
    "expose": _whitespace_delimited, "from": _whitespace_delimited, "healthcheck": _health,
    "label": _name_val("LABEL"), "maintainer": _string, "run": _maybe_json, "shell": _maybe_json,
    "stopsignal": _string, "user": _string, "volume": _maybe_json_to_list, "workdir": _string,
}  # fmt: skip


def parse_heredoc(word: str, strict: bool = False) -> Heredoc | None:
    """`[fd]<<[-]WORD` -> Heredoc without content, or None when `word` is not one
    (nor when WORD cannot be lexed, unless `strict`: BuildKit's MustParseHeredoc)."""
    m = _HEREDOC.fullmatch(word)
    if m is None or not m[3]:
        return None
    lex = ShellLex("\\", skip_unset_env=True)
    try:
        words = lex.process_words(m[3], {})
        if len(words) != 1:
            return None
        # Parse with and without quotes: a difference means part of WORD was quoted,
        # and a quoted delimiter turns expansion of the body off.
        lex.raw_quotes = True
        raw = lex.process_words(m[3], {})
    except ShellError as e:
        if not strict:
            return None
        raise LineError(str(e)) from None
    if len(raw) != 1:
        if not strict:
            return None
        raise LineError(f"internal lexing of heredoc produced inconsistent results: {m[3]}")
    quotes = words[0].count("'") + words[0].count('"')
    expand = quotes == raw[0].count("'") + raw[0].count('"')
    return Heredoc(words[0], "", expand, m[2] == "-", min(int(m[1] or 0), 2**64 - 1))


def heredocs_from_line(line: str) -> list[Heredoc]:
    lex = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line, {})
    except ShellError:
        return []  # BuildKit ignores lexing errors here: then there is no heredoc
    return [doc for w in words if (doc := parse_heredoc(w, strict=True)) is not None]
