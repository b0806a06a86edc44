"""Dockerfile syntax: text -> nodes with line ranges (a port of BuildKit's parser package).

Public API::

    parse(text: str, filename="Dockerfile") -> ParseResult        # raises BuildError
    ParseResult: nodes, directives, escape, syntax, check, warnings, filename; .error(where, msg)
    Node: keyword, args, flags, json_form, original, start_line, end_line, heredocs, rest, inner
    Heredoc: name, content, expand, chomp, fd; .body (content with <<- tabs stripped)
    Directive(name, value, line); CheckOptions; parse_check(value); detect_syntax(text)
    Warning(rule, message, line); INSTRUCTIONS (lowercased keywords)
    parse_heredoc(word) -> Heredoc | None; split_words(text, escape) -> list[str]

This layer is syntax only: which instruction, its flags as `--x=y` tokens, its arguments
as BuildKit's AST holds them (quotes and escapes still in place, nothing expanded) and
where it is.  Argument counts, flag names and everything else semantic are checked by
instructions.py.  Behaviour follows BuildKit v0.12's parser byte for byte where it can,
including its quirks (each one is commented); tests compare against the Go parser.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..errors import BuildError
from .shell import ShellError, ShellLex, go_isspace

__all__ = [
    "INSTRUCTIONS", "CheckOptions", "Directive", "Heredoc", "Node", "ParseResult", "Warning",
    "detect_syntax", "parse", "parse_check", "parse_heredoc", "split_words",
]  # fmt: skip

INSTRUCTIONS = frozenset(
    "add arg cmd copy entrypoint env expose from healthcheck label maintainer onbuild run "
    "shell stopsignal user volume workdir".split()
)
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})
MAX_LINE_BYTES = 65535  # bufio.MaxScanTokenSize - 1, line ending included
NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"

_GO_SPACES = "".join(chr(c) for c in range(0x3001) if go_isspace(chr(c)))
_ASCII_WS = re.compile(r"[\t\v\f\r ]+")  # BuildKit's reWhitespace / tokenWhitespace
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")
_HEREDOC = re.compile(r"([0-9]*)<<(-?)([^<]*)", re.S)
_LEADING_TABS = re.compile(r"^\t+", re.M)
_BYTE_SPACES = frozenset(b"\t\n\v\f\r \x85\xa0")  # unicode.IsSpace(rune(byte))


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


@dataclass(frozen=True)
class Node:
    keyword: str  # lowercased instruction name ("run")
    args: tuple[str, ...]  # BuildKit's argument list (JSON items, words, k/v pairs, ...)
    flags: tuple[str, ...]  # "--mount=type=cache,target=/x" tokens, in order
    json_form: bool  # exec form: args are the JSON array's strings
    original: str  # the logical line, continuations joined, as `Step N/M :` prints it
    start_line: int
    end_line: int  # the last line used, heredoc terminators included
    heredocs: tuple[Heredoc, ...] = ()
    rest: str = ""  # the raw text after the keyword and the flags
    inner: Node | None = None  # ONBUILD's trigger instruction (same lines)


@dataclass(frozen=True)
class Directive:
    name: str  # "syntax" | "escape" | "check" (lowercased)
    value: str
    line: int


@dataclass(frozen=True)
class CheckOptions:
    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False
    experimental: frozenset[str] = frozenset()
    experimental_all: bool = False


@dataclass(frozen=True)
class Warning:
    rule: str  # a build-check rule name, e.g. "NoEmptyContinuation"
    message: str
    line: int


@dataclass(frozen=True)
class ParseResult:
    nodes: tuple[Node, ...]
    directives: tuple[Directive, ...] = ()
    escape: str = "\\"
    syntax: str | None = None  # `# syntax=` (or `//syntax=`, JSON, after a shebang)
    check: CheckOptions = field(default_factory=CheckOptions)
    warnings: tuple[Warning, ...] = ()
    filename: str = "Dockerfile"

    def directive(self, name: str) -> str | None:
        return next((d.value for d in self.directives if d.name == name), None)

    def error(self, where: Node | int, message: str) -> BuildError:
        line = where.start_line if isinstance(where, Node) else where
        return BuildError(f"{self.filename}:{line}: {message}")


class _SyntaxError(Exception):
    """An error inside one instruction; the caller adds the file and line."""


def parse(text: str, filename: str = "Dockerfile") -> ParseResult:
    """Parse a whole Dockerfile.  Every failure is a BuildError naming `filename:line`."""
    if text == "":
        raise BuildError(f"{filename}:1: the Dockerfile cannot be empty")
    return _Parser(text, filename).run()


def parse_check(value: str) -> CheckOptions:
    """`# check=skip=A,B;error=true;experimental=all` (raises ValueError)."""
    value = value.strip()
    if not value:
        return CheckOptions()
    opts: dict[str, object] = {}
    for part in value.split(";", 2):
        key, sep, val = part.partition("=")
        if not sep:
            raise ValueError(f"invalid check option {json.dumps(part)}")
        key, val = key.strip(), val.strip()
        if key in ("skip", "experimental"):
            if val == "all":
                opts[key + "_all"] = True
            else:
                opts[key] = frozenset(r.strip() for r in val.split(","))
        elif key == "error":
            if val not in _GO_BOOLS:
                raise ValueError(f"failed to parse check option {json.dumps(part)}")
            opts["error"] = _GO_BOOLS[val]
        else:
            raise ValueError(f"invalid check option {json.dumps(key)}")
    return CheckOptions(**opts)  # type: ignore[arg-type]


_GO_BOOLS = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
             **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False)}  # fmt: skip


def detect_syntax(text: str) -> str | None:
    """BuildKit's DetectSyntax: `# syntax=`, then `// syntax=`, then `{"syntax": ...}`;
    a first-line `#!` shebang is skipped.  Returns the frontend reference or None."""
    text = text.removeprefix("\ufeff")
    if text.startswith("#!"):
        text = text.partition("\n")[2]
    for prefix in ("#", "//"):
        seen: set[str] = set()
        for raw in text.split("\n"):
            line = raw.removesuffix("\r")
            if not line.startswith(prefix):
                break
            m = _DIRECTIVE.fullmatch(line[len(prefix) :].lstrip(_GO_SPACES))
            if not m or m[1].lower() not in ("syntax", "escape", "check") or m[1].lower() in seen:
                break
            seen.add(m[1].lower())
            if m[1].lower() == "syntax":
                return m[2].partition(" ")[0]
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    value = doc.get("syntax") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.text = text
        parts = text.split("\n")  # only \n ends a line, like bufio's ScanLines
        self.lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        self.escape = "\\"
        self._set_escape("\\")
        self.directives: list[Directive] = []
        self.directives_done = False
        self.warnings: list[Warning] = []
        # bufio.Scanner stops at the first line that does not fit its 64 KiB buffer;
        # the lines before it are still parsed and their errors win.
        self.too_long: int | None = None
        for i, raw in enumerate(self.lines):
            if len(raw) * 4 > MAX_LINE_BYTES and len(raw.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES + (
                1 if raw.endswith("\n") else 0
            ):
                self.too_long = i + 1
                del self.lines[i:]
                break

    def fail(self, line: int, message: str) -> BuildError:
        return BuildError(f"{self.filename}:{line}: {message}")

    def _set_escape(self, token: str) -> None:
        if token not in ("\\", "`"):
            raise _SyntaxError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        # The escape token is a continuation when it ends the line (blanks may follow)
        # unless it is itself escaped.  Like Go's regexp this cannot see `a\\\`.
        self._continuation = re.compile(rf"(?:([^{e}])|^){e}[ \t]*\Z")

    def _directive(self, token: str, line: int) -> None:
        if self.directives_done:
            return
        # `^#\s*key\s*=\s*value\s*$`, with Go's ASCII-only \s
        m = _DIRECTIVE.fullmatch(token[1:].lstrip("\t\n\f\r ")) if token.startswith("#") else None
        key = m[1].lower() if m else ""
        if key not in ("syntax", "escape", "check"):
            self.directives_done = True  # anything else ends the leading block
            return
        if any(d.name == key for d in self.directives):
            raise self.fail(line, f"only one {key} parser directive can be used")
        value = m[2]  # type: ignore[index]
        try:
            if key == "escape":
                self._set_escape(value)
            elif key == "check":
                parse_check(value)
        except (_SyntaxError, ValueError) as e:
            raise self.fail(line, str(e)) from None
        self.directives.append(Directive(key, value, line))

    def _process(self, raw: str, line: int, first: bool) -> str:
        token = raw.rstrip("\r\n")
        if first:
            token = token.lstrip(_GO_SPACES)
        self._directive(token, line)
        return "" if token.startswith("#") else token

    def _trim_continuation(self, line: str) -> tuple[str, bool]:
        m = self._continuation.search(line)
        if m is None:
            return line, True
        return line[: m.start()] + (m[1] or ""), False

    def run(self) -> ParseResult:
        lines, n = self.lines, len(self.lines)
        nodes: list[Node] = []
        i = current = 0
        while i < n:
            raw = lines[i]
            if current == 0:
                raw = raw.removeprefix("\ufeff")
            i += 1
            processed = self._process(raw, current + 1, first=True)
            current += 1
            start = current
            line, done = self._trim_continuation(processed)
            if done and line == "":
                continue
            empty_continuation = False
            while not done and i < n:
                raw = lines[i]
                i += 1
                processed = self._process(raw, current + 1, first=False)
                current += 1
                if raw.rstrip("\r\n").lstrip(_GO_SPACES).startswith("#"):
                    continue  # comment lines inside a continuation are dropped
                if processed.lstrip(_GO_SPACES) == "":
                    empty_continuation = True
                    continue
                part, done = self._trim_continuation(processed)
                line += part
            if empty_continuation:
                self.warnings.append(
                    Warning("NoEmptyContinuation", f"Empty continuation line found in: {line}", start)
                )
            try:
                node = self._node(line, strict=True)
                target = node.inner if node.keyword == "onbuild" and node.inner else node
                docs: list[Heredoc] = []
                if target.keyword in HEREDOC_INSTRUCTIONS and not target.json_form:
                    docs = _heredocs_from_line(line)
            except _SyntaxError as e:
                raise self.fail(start, str(e)) from None
            bodies: list[Heredoc] = []
            for doc in docs:
                content: list[str] = []
                while i < n:
                    raw = lines[i]
                    i += 1
                    current += 1
                    candidate = raw.rstrip("\r\n")
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        break
                    content.append(raw)
                else:
                    raise self.fail(start, "unterminated heredoc")
                bodies.append(Heredoc(doc.name, "".join(content), doc.expand, doc.chomp, doc.fd))
            nodes.append(_relocate(node, start, current, tuple(bodies)))
        if not nodes:
            raise self.fail(max(current, 1), "file with no instructions")
        if self.too_long is not None:
            raise self.fail(self.too_long, f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}")
        try:
            check = parse_check(next((d.value for d in self.directives if d.name == "check"), ""))
        except ValueError as e:  # validated in _directive already
            raise self.fail(1, str(e)) from None
        syntax = next((d.value for d in self.directives if d.name == "syntax"), None)
        return ParseResult(
            nodes=tuple(nodes),
            directives=tuple(self.directives),
            escape=self.escape,
            syntax=syntax.partition(" ")[0] if syntax else detect_syntax(self.text),
            check=check,
            warnings=tuple(self.warnings),
            filename=self.filename,
        )

    def _node(self, line: str, strict: bool) -> Node:
        written, flags, rest = _split_command(line)
        keyword = written.lower()
        if keyword == "onbuild":
            inner = self._node(rest, strict=False) if rest else None
            args = (_first_word(inner.original),) + inner.args if inner else ()
            json_form = inner.json_form if inner else False
            return Node(keyword, args, tuple(flags), json_form, line, 0, 0, rest=rest, inner=inner)
        parser = _LINE_PARSERS.get(keyword)
        if parser is None:
            if strict:
                raise _SyntaxError(f"unknown instruction: {written}")
            # an unknown ONBUILD trigger fails only when it fires; BuildKit's AST then
            # holds one empty argument (parseIgnore)
            return Node(keyword, ("",), tuple(flags), False, line, 0, 0, rest=rest)
        args, json_form = parser(rest, self.escape)
        return Node(keyword, args, tuple(flags), json_form, line, 0, 0, rest=rest)


def _relocate(node: Node, start: int, end: int, docs: tuple[Heredoc, ...]) -> Node:
    # an ONBUILD trigger shares the lines and the heredocs of its ONBUILD
    inner = _relocate(node.inner, start, end, docs) if node.inner else None
    return Node(node.keyword, node.args, node.flags, node.json_form, node.original, start, end,
                docs, node.rest, inner)  # fmt: skip


def _first_word(line: str) -> str:
    return _ASCII_WS.split(line.strip(_GO_SPACES), maxsplit=1)[0]


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = _ASCII_WS.split(line.strip(_GO_SPACES), maxsplit=1)
    rest, flags = (_extract_flags(parts[1]) if len(parts) == 2 else ("", []))
    return parts[0], flags, rest.strip(_GO_SPACES)


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
    rest = rest.lstrip(_GO_SPACES)
    if not rest.startswith("["):
        return None
    try:
        items, _ = _JSON.raw_decode(rest)  # trailing text after the array is ignored
    except ValueError:
        return None  # not JSON: the caller falls back to shell form
    except RecursionError:
        raise _SyntaxError(NOT_STRING_ARRAY) from None
    if not all(isinstance(x, str) for x in items):
        raise _SyntaxError(NOT_STRING_ARRAY)
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
                raise _SyntaxError(f"{key} must have two arguments")
            return (parts[0], parts[1]), False
        out: list[str] = []
        for w in words:
            if "=" not in w:
                raise _SyntaxError(
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


_LINE_PARSERS = {
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
        raise _SyntaxError(str(e)) from None
    if len(raw) != 1:
        if not strict:
            return None
        raise _SyntaxError(f"internal lexing of heredoc produced inconsistent results: {m[3]}")
    quotes = words[0].count("'") + words[0].count('"')
    expand = quotes == raw[0].count("'") + raw[0].count('"')
    return Heredoc(words[0], "", expand, m[2] == "-", min(int(m[1] or 0), 2**64 - 1))


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lex = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line, {})
    except ShellError:
        return []  # BuildKit ignores lexing errors here: then there is no heredoc
    return [doc for w in words if (doc := parse_heredoc(w, strict=True)) is not None]
