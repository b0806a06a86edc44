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
from .lineparsers import (  # noqa: F401 - Heredoc, parse_heredoc, split_words: this module's API
    GO_SPACES, LINE_PARSERS, Heredoc, LineError, first_word, heredocs_from_line, parse_heredoc, split_command,
    split_words)

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

_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")


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
            m = _DIRECTIVE.fullmatch(line[len(prefix) :].lstrip(GO_SPACES))
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
            raise LineError(f"invalid escape token '{token}' does not match ` or \\")
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
        except (LineError, ValueError) as e:
            raise self.fail(line, str(e)) from None
        self.directives.append(Directive(key, value, line))

    def _process(self, raw: str, line: int, first: bool) -> str:
        token = raw.rstrip("\r\n")
        if first:
            token = token.lstrip(GO_SPACES)
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
                if raw.rstrip("\r\n").lstrip(GO_SPACES).startswith("#"):
                    continue  # comment lines inside a continuation are dropped
                if processed.lstrip(GO_SPACES) == "":
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
                    docs = heredocs_from_line(line)
            except LineError as e:
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
        written, flags, rest = split_command(line)
        keyword = written.lower()
        if keyword == "onbuild":
            inner = self._node(rest, strict=False) if rest else None
            args = (first_word(inner.original),) + inner.args if inner else ()
            json_form = inner.json_form if inner else False
            return Node(keyword, args, tuple(flags), json_form, line, 0, 0, rest=rest, inner=inner)
        parser = LINE_PARSERS.get(keyword)
        if parser is None:
            if strict:
                raise LineError(f"unknown instruction: {written}")
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
