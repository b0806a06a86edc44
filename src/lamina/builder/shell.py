"""Builder-side word expansion, a port of BuildKit's ``frontend/dockerfile/shell/lex.go``.

Public API::

    lex = ShellLex(escape="\\\\")                 # or "`" after `# escape=``
    lex.process_word(word, env) -> str           # ENV/LABEL/COPY/WORKDIR/... values
    lex.process_words(word, env) -> list[str]    # EXPOSE: expand, then split into words
    lex.expand(word, env) -> Expansion           # result + words + matched/unmatched names
    go_isspace(ch) -> bool                       # Go's unicode.IsSpace (shared with parser)

``env`` is any ``Mapping[str, str]``; a name is "set" when it is a key, even with an
empty value.  Errors raise :class:`ShellError` (a ``BuildError`` without a line
number; the executor re-raises it with :meth:`ShellError.at`).

Supported: ``$v ${v} ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?m} ${v?m} ${v#p} ${v##p}
${v%p} ${v%%p} ${v/p/r} ${v//p/r}``, single quotes (literal), double quotes (``\\"``,
``\\$`` and ``\\\\`` escapes), and the escape token outside quotes.  Everything else after a
name inside ``${...}`` is "unsupported modifier"; ``${}`` is a bad substitution.

The options mirror lex.go's fields and exist for the parser's heredoc detection:
``raw_quotes`` keeps quote characters, ``raw_escapes`` keeps escape characters,
``skip_unset_env`` leaves references to unset names as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ShellError  # noqa: F401 - re-exported: it lived here
from ..quoting import go_quote
from .shellpattern import EOF, LexError, go_replace_all, is_name_char, pattern_to_regex, trim_prefix, trim_suffix

__all__ = ["GO_SPACES", "Expansion", "ShellError", "ShellLex", "go_isspace"]

# Go's unicode.IsSpace; Python's str.isspace() also accepts \x1c-\x1f, which Go does not.
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
GO_SPACES = "".join(sorted(_GO_SPACE))  # the same, for str.strip
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


def go_isspace(ch: str) -> bool:
    return ch in _GO_SPACE


@dataclass(frozen=True)
class Expansion:
    result: str  # the expanded word (ProcessWord)
    words: tuple[str, ...]  # the expanded word split into words (ProcessWords)
    matched: frozenset[str]  # names looked up and found (cache keys, lint)
    unmatched: frozenset[str]  # names looked up and not set (UndefinedVar lint)


class ShellLex:
    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset_env: bool = False,
        skip_process_quotes: bool = False,
    ) -> None:
        if escape not in ("\\", "`"):
            raise ValueError(f"invalid escape token {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.skip_process_quotes = skip_process_quotes

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self.expand(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return list(self.expand(word, env).words)

    def expand(self, word: str, env: Mapping[str, str]) -> Expansion:
        state = _Word(self, word, env)
        try:
            result, words = state.stop_on(EOF, self.raw_escapes)
        except LexError as e:
            raise ShellError(f"failed to process {go_quote(word)}: {e}") from None
        except RecursionError:  # ${a:-${b:-...}} nested thousands deep
            raise ShellError(f"failed to process {go_quote(word)[:80]}: substitutions nested too deeply") from None
        return Expansion(result, tuple(words), frozenset(state.matched), frozenset(state.unmatched))


class _Words:
    """lex.go's wordsStruct: splits on unquoted, unescaped whitespace as it goes."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if go_isspace(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, s: str) -> None:
        # an empty quoted string still starts a word, but only text ever ends one
        self.buf += s
        self.in_word = True

    def add_expanded(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def finish(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False
        return self.words


class _Word:
    """One expansion run over `src` (lex.go's shellWord)."""

    def __init__(self, lex: ShellLex, src: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.env = env
        # text/scanner drops one leading byte-order mark
        self.src = src[1:] if src.startswith("\ufeff") else src
        self.pos = 0
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    # -- scanner -----------------------------------------------------------
    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    # -- grammar -----------------------------------------------------------
    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        esc = self.lex.escape
        quotes = not self.lex.skip_process_quotes
        out: list[str] = []
        # Each nested call has its own word buffer.  (BuildKit shares one buffer between
        # nested calls, which drops the text before `${v:-w}` in ProcessWords; we don't.)
        words = _Words()
        while (ch := self.peek()) != EOF:
            if stop and ch == stop:
                self.next()
                return "".join(out), words.finish()
            if ch == "$" or (quotes and ch in "'\""):
                if ch == "$":
                    tmp = self.dollar()
                    words.add_expanded(tmp)
                else:
                    tmp = self.single_quote() if ch == "'" else self.double_quote()
                    words.add_raw(tmp)
                out.append(tmp)
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    words.add_raw(ch)
                    out.append(ch)
                ch = self.next()
                if ch == EOF:  # an escape at the end of the word is dropped
                    break
                words.add_raw(ch)
            else:
                words.add_char(ch)
            out.append(ch)
        if stop:
            raise LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside.
        out = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == EOF:
                raise LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        # $ expands; the escape token only escapes ", $ and itself (else it stays).
        esc = self.lex.escape
        out = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = self.peek()
            if ch == EOF:
                raise LexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt == EOF:
                    continue
                if nxt in ('"', "$", esc):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        # A run of digits, one special parameter, or letters/digits/underscores.
        ch = self.peek()
        if ch != EOF and ch.isdecimal():
            start = self.pos
            while self.peek() != EOF and self.peek().isdecimal():
                self.pos += 1
            return self.src[start : self.pos]
        if ch in _SPECIAL_PARAMS and ch != EOF:
            return self.next()
        start = self.pos
        while is_name_char(self.peek()):
            self.pos += 1
        return self.src[start : self.pos]

    def getenv(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.getenv(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        self.next()  # the {
        ch = self.peek()
        if ch == EOF:
            raise LexError("syntax error: missing '}'")
        if ch in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            value, found = self.getenv(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == EOF:
            raise LexError("syntax error: missing '}'")
        if ch == "/":
            return self._replace(name)
        modifier, null_is_unset = ch, False
        if ch == ":":
            null_is_unset = True
            modifier = self.next()
            if modifier == EOF:
                raise LexError("syntax error: missing '}'")
        chs = (":" if null_is_unset else "") + modifier
        if modifier not in ("+", "-", "?", "#", "%"):
            if null_is_unset:
                # lex.go reads the word first, so `${v:1` reports the missing brace
                self._word_until_brace(raw=False)
            raise LexError(f"unsupported modifier ({chs}) in substitution")
        trim = modifier in ("#", "%")
        if null_is_unset and trim:
            raise LexError(f"unsupported modifier ({chs}) in substitution")
        word = self._word_until_brace(raw=trim)
        value, is_set = self.getenv(name)
        if self.lex.skip_unset_env and not is_set:
            return "${" + name + chs + word + "}"
        empty = not is_set or (null_is_unset and value == "")
        if modifier == "-":
            return word if empty else value
        if modifier == "+":
            return "" if empty else word
        if modifier == "?":
            if not is_set:
                raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(modifier)  # ## and %% are the longest match
        if greedy:
            word = word[1:]
        if modifier == "%":
            return trim_suffix(word, value, greedy)
        return trim_prefix(word, value, greedy)

    def _word_until_brace(self, raw: bool) -> str:
        try:
            word, _ = self.stop_on("}", raw)
        except LexError:
            if self.peek() == EOF:
                raise LexError("syntax error: missing '}'") from None
            raise
        return word

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.stop_on("/", True)
        except LexError:
            if self.peek() == EOF:
                raise LexError("syntax error: missing '/' in ${}") from None
            raise
        replacement = self._word_until_brace(raw=True)
        value, is_set = self.getenv(name)
        if self.lex.skip_unset_env and not is_set:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = pattern_to_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return go_replace_all(regex, value, replacement)
        m = regex.search(value)
        if m is None:
            return value
        return value[: m.start()] + replacement + value[m.end() :]
