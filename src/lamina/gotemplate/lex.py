"""The lexer of Go's text/template: template text in, a list of tokens out.

Modelled on text/template/parse/lex.go (same token kinds, trim markers, comment
rules and error texts) but eager: templates given on a command line are short, so
a list is simpler than Go's goroutine-style state machine.
"""

from __future__ import annotations

from lamina.quoting import go_quote

LEFT, RIGHT = "{{", "}}"
KEYWORDS = frozenset(("block", "break", "continue", "define", "else", "end", "if", "range", "nil",
                      "template", "with"))

# token kinds
TEXT, LEFT_DELIM, RIGHT_DELIM, SPACE, IDENT, FIELD, VAR, CHAR, NUMBER, STRING, RAW = (
    "text", "{{", "}}", "space", "identifier", "field", "variable", "char", "number", "string", "raw")
BOOL, NIL, DOT, PIPE, LPAREN, RPAREN, DECLARE, ASSIGN, COMMA, KEYWORD, EOF, ERROR, OTHER = (
    "bool", "nil", ".", "|", "(", ")", ":=", "=", ",", "keyword", "EOF", "error", "other")


class Token:
    __slots__ = ("kind", "val", "pos", "line")

    def __init__(self, kind: str, val: str, pos: int, line: int):
        self.kind, self.val, self.pos, self.line = kind, val, pos, line

    def __str__(self) -> str:  # as Go's item.String(), used in "unexpected ..." errors
        if self.kind == EOF:
            return "EOF"
        if self.kind == ERROR:
            return self.val
        if self.kind == KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def _is_space(ch: str) -> bool:
    return ch in " \t\r\n"


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def _trim_marker_after_left(text: str, i: int) -> bool:
    """`{{- ` : a dash then ASCII space right after the left delimiter."""
    return text.startswith("-", i) and i + 1 < len(text) and _is_space(text[i + 1])


def _right_trim_at(text: str, i: int) -> bool:
    """` -}}` at i: an ASCII space, a dash, then the right delimiter."""
    return i < len(text) and _is_space(text[i]) and text.startswith("-" + RIGHT, i + 1)


def tokenize(text: str) -> list[Token]:
    return _Lexer(text).run()


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[Token] = []
        self.pos = 0
        self.line = 1
        self.paren = 0

    def emit(self, kind: str, start: int, end: int) -> None:
        self.tokens.append(Token(kind, self.text[start:end], start, self.line))
        self.line += self.text.count("\n", start, end)

    def error(self, msg: str) -> bool:
        """An error token ends the list (the parser reports it); False for `return self.error(...)`."""
        self.tokens.append(Token(ERROR, msg, self.pos, self.line))
        return False

    def run(self) -> list[Token]:
        text = self.text
        while True:
            start = self.pos
            i = text.find(LEFT, start)
            if i < 0:
                if start < len(text):
                    self.emit(TEXT, start, len(text))
                self.tokens.append(Token(EOF, "", len(text), self.line))
                return self.tokens
            after = i + len(LEFT)
            trim = _trim_marker_after_left(text, after)
            end_text = i
            if trim:
                while end_text > start and _is_space(text[end_text - 1]):
                    end_text -= 1
            if end_text > start:
                self.emit(TEXT, start, end_text)
            self.line += text.count("\n", end_text, i)
            self.pos = after + (2 if trim else 0)
            if text.startswith("/*", self.pos):
                if not self.comment():
                    return self.tokens
                continue
            self.tokens.append(Token(LEFT_DELIM, LEFT, i, self.line))
            if not self.inside_action():
                return self.tokens

    def comment(self) -> bool:
        text = self.text
        close = text.find("*/", self.pos + 2)
        if close < 0:
            self.error("unclosed comment")
            return False
        self.line += text.count("\n", self.pos, close)
        j = close + 2
        if _right_trim_at(text, j):
            j += 4
            trim = True
        elif text.startswith(RIGHT, j):
            j += 2
            trim = False
        else:
            self.pos = j
            self.error("comment ends before closing delimiter")
            return False
        if trim:
            j = self._skip_space(j)
        self.pos = j
        return True

    def _skip_space(self, j: int) -> int:
        while j < len(self.text) and _is_space(self.text[j]):
            if self.text[j] == "\n":
                self.line += 1
            j += 1
        return j

    def inside_action(self) -> bool:
        """Lex from self.pos to the closing delimiter; False after an error token."""
        text = self.text
        n = len(text)
        while True:
            p = self.pos
            if _right_trim_at(text, p) or text.startswith(RIGHT, p):
                if self.paren:
                    return self.error("unclosed left paren")
                if text[p] != "}":  # ` -}}`: the marker's space belongs to it, no space token
                    p += 2
                    end = self._skip_space(p + 2)
                else:
                    end = p + 2
                self.tokens.append(Token(RIGHT_DELIM, RIGHT, p, self.line))
                self.pos = end
                return True
            if p >= n:
                return self.error("unclosed action")
            ch = text[p]
            if _is_space(ch):
                q = p
                while q < n and _is_space(text[q]) and not _right_trim_at(text, q):
                    q += 1
                self.emit(SPACE, p, q)
                self.pos = q
            elif ch == "=":
                self.emit(ASSIGN, p, p + 1)
                self.pos = p + 1
            elif ch == ":":
                if not text.startswith(":=", p):
                    return self.error("expected :=")
                self.emit(DECLARE, p, p + 2)
                self.pos = p + 2
            elif ch == "|":
                self.emit(PIPE, p, p + 1)
                self.pos = p + 1
            elif ch == '"':
                if not self.quoted(p, '"', "unterminated quoted string", STRING):
                    return False
            elif ch == "`":
                q = text.find("`", p + 1)
                if q < 0:
                    return self.error("unterminated raw quoted string")
                self.emit(RAW, p, q + 1)
                self.pos = q + 1
            elif ch == "'":
                if not self.quoted(p, "'", "unterminated character constant", CHAR):
                    return False
            elif ch == "$":
                q = self._word_end(p + 1)
                if not self._at_terminator(q):
                    return self.error(f"bad character {_go_rune(text[q])}")
                self.emit(VAR, p, q)
                self.pos = q
            elif ch == ".":
                if p + 1 < n and text[p + 1].isdigit():
                    if not self.number(p):
                        return False
                    continue
                q = self._word_end(p + 1)
                if q > p + 1 and not self._at_terminator(q):
                    return self.error(f"bad character {_go_rune(text[q])}")
                self.emit(DOT if q == p + 1 else FIELD, p, q)
                self.pos = q
            elif ch in "+-" or ch.isdigit():
                if not self.number(p):
                    return False
            elif _is_alnum(ch):
                q = self._word_end(p)
                word = text[p:q]
                if not self._at_terminator(q):
                    self.pos = q
                    return self.error(f"bad character {_go_rune(text[q])}")
                kind = KEYWORD if word in KEYWORDS and word != "nil" else (
                    BOOL if word in ("true", "false") else NIL if word == "nil" else IDENT)
                self.emit(kind, p, q)
                self.pos = q
            elif ch == ",":
                self.emit(COMMA, p, p + 1)
                self.pos = p + 1
            elif ch == "(":
                self.paren += 1
                self.emit(LPAREN, p, p + 1)
                self.pos = p + 1
            elif ch == ")":
                self.paren -= 1
                if self.paren < 0:
                    return self.error("unexpected right paren")
                self.emit(RPAREN, p, p + 1)
                self.pos = p + 1
            elif ch.isascii() and ch.isprintable():
                self.emit(OTHER, p, p + 1)  # the parser says what it expected instead
                self.pos = p + 1
            else:
                return self.error(f"unrecognized character in action: {_go_rune(ch)}")

    def _at_terminator(self, q: int) -> bool:
        """Go's atTerminator: what may follow a word, field or variable."""
        text = self.text
        return q >= len(text) or _is_space(text[q]) or text[q] in ".,|:()" or text.startswith(RIGHT, q)

    def _word_end(self, q: int) -> int:
        while q < len(self.text) and _is_alnum(self.text[q]):
            q += 1
        return q

    def quoted(self, p: int, quote: str, unterminated: str, kind: str) -> bool:
        text = self.text
        q = p + 1
        while True:
            if q >= len(text) or text[q] == "\n":
                self.error(unterminated)
                return False
            if text[q] == "\\":
                q += 2
                continue
            if text[q] == quote:
                break
            q += 1
        self.emit(kind, p, q + 1)
        self.pos = q + 1
        return True

    def number(self, p: int) -> bool:
        """Scan as Go does (digits, hex/octal/binary prefixes, `_`, fraction, exponent);
        the parser decides whether the text is a valid number."""
        text = self.text
        q = p
        if q < len(text) and text[q] in "+-":
            q += 1
        digits = "0123456789_"
        if text.startswith(("0x", "0X"), q):
            q += 2
            digits = "0123456789abcdefABCDEF_"
        elif text.startswith(("0o", "0O", "0b", "0B"), q):
            q += 2
        while q < len(text) and text[q] in digits:
            q += 1
        if q < len(text) and text[q] == ".":
            q += 1
            while q < len(text) and text[q] in digits:
                q += 1
        exp = "pP" if digits.startswith("0123456789a") else "eE"
        if q < len(text) and text[q] in exp:
            q += 1
            if q < len(text) and text[q] in "+-":
                q += 1
            while q < len(text) and text[q] in "0123456789_":
                q += 1
        if q < len(text) and text[q] == "i":
            q += 1
        if q < len(text) and _is_alnum(text[q]):
            self.pos = p
            self.error(f"bad number syntax: {go_quote(text[p:q + 1])}")
            return False
        self.emit(NUMBER, p, q)
        self.pos = q
        return True


def _go_rune(ch: str) -> str:
    """Go's %#U: U+0023 '#'."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"
