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

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import BuildError

__all__ = ["Expansion", "ShellError", "ShellLex", "go_isspace"]

# Go's unicode.IsSpace; Python's str.isspace() also accepts \x1c-\x1f, which Go does not.
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_EOF = ""  # scanner sentinel: every real character is a 1-length string


def go_isspace(ch: str) -> bool:
    return ch in _GO_SPACE


def _is_name_char(ch: str) -> bool:
    # unicode.IsLetter (category L*) / unicode.IsDigit (category Nd) / '_'
    return ch != _EOF and (ch.isalpha() or ch.isdecimal() or ch == "_")


class ShellError(BuildError):
    """A word that cannot be expanded (bad substitution, unterminated quote, ${v:?})."""

    def at(self, filename: str, line: int) -> BuildError:
        """The same error located in a Dockerfile, for the executor to raise."""
        return BuildError(f"{filename}:{line}: {self}")


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
            result, words = state.stop_on(_EOF, self.raw_escapes)
        except _LexError as e:
            raise ShellError(f"failed to process {_go_quote(word)}: {e}") from None
        except RecursionError:  # ${a:-${b:-...}} nested thousands deep
            raise ShellError(f"failed to process {_go_quote(word)[:80]}: substitutions nested too deeply") from None
        return Expansion(result, tuple(words), frozenset(state.matched), frozenset(state.unmatched))


class _LexError(Exception):
    pass


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
        return self.src[self.pos] if self.pos < len(self.src) else _EOF

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
        while (ch := self.peek()) != _EOF:
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
                if ch == _EOF:  # an escape at the end of the word is dropped
                    break
                words.add_raw(ch)
            else:
                words.add_char(ch)
            out.append(ch)
        if stop:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside.
        out = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
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
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
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
                if nxt == _EOF:
                    continue
                if nxt in ('"', "$", esc):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        # A run of digits, one special parameter, or letters/digits/underscores.
        ch = self.peek()
        if ch != _EOF and ch.isdecimal():
            start = self.pos
            while self.peek() != _EOF and self.peek().isdecimal():
                self.pos += 1
            return self.src[start : self.pos]
        if ch in _SPECIAL_PARAMS and ch != _EOF:
            return self.next()
        start = self.pos
        while _is_name_char(self.peek()):
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
        if ch == _EOF:
            raise _LexError("syntax error: missing '}'")
        if ch in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            value, found = self.getenv(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == _EOF:
            raise _LexError("syntax error: missing '}'")
        if ch == "/":
            return self._replace(name)
        modifier, null_is_unset = ch, False
        if ch == ":":
            null_is_unset = True
            modifier = self.next()
            if modifier == _EOF:
                raise _LexError("syntax error: missing '}'")
        chs = (":" if null_is_unset else "") + modifier
        if modifier not in ("+", "-", "?", "#", "%"):
            if null_is_unset:
                # lex.go reads the word first, so `${v:1` reports the missing brace
                self._word_until_brace(raw=False)
            raise _LexError(f"unsupported modifier ({chs}) in substitution")
        trim = modifier in ("#", "%")
        if null_is_unset and trim:
            raise _LexError(f"unsupported modifier ({chs}) in substitution")
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
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(modifier)  # ## and %% are the longest match
        if greedy:
            word = word[1:]
        if modifier == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _word_until_brace(self, raw: bool) -> str:
        try:
            word, _ = self.stop_on("}", raw)
        except _LexError:
            if self.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise
        return word

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.stop_on("/", True)
        except _LexError:
            if self.peek() == _EOF:
                raise _LexError("syntax error: missing '/' in ${}") from None
            raise
        replacement = self._word_until_brace(raw=True)
        value, is_set = self.getenv(name)
        if self.lex.skip_unset_env and not is_set:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_to_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return _go_replace_all(regex, value, replacement)
        m = regex.search(value)
        if m is None:
            return value
        return value[: m.start()] + replacement + value[m.end() :]


# -- ${v#p} ${v%p} ${v/p/r} helpers --------------------------------------------

_REGEX_SPECIALS = frozenset("[]{}.+()|^$")


def _pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """Shell glob (only * ? and \\ escapes) to a regex, as convertShellPatternToRegex."""
    src = pattern[1:] if pattern.startswith("\ufeff") else pattern
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(src):
        tok = src[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            nxt = src[i] if i < len(src) else _EOF
            if nxt in ("}", "/") and nxt != _EOF:
                continue  # escaped ${} delimiters are not part of the pattern
            i += 1
            if nxt not in ("*", "?", "\\") or nxt == _EOF:
                raise _LexError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt or chr(0xFFFD)}'"
                )
            out.append("\\" + nxt)
        elif tok in _REGEX_SPECIALS:
            out.append("\\" + tok)
        else:
            out.append(tok)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_to_regex(pattern, greedy, anchored=True).search(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    # Reverse, keeping each "\x" escape pair in order: a\*c -> c\*a
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        if tok == "\\" and i != last:
            out[last - i - 1] = tok
            out[last - i] = pattern[i + 1]
            i += 2
        else:
            out[last - i] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Regexes find the leftmost match, so trim a prefix of the reversed string.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_replace_all(regex: re.Pattern[str], src: str, template: str) -> str:
    """Go's Regexp.ReplaceAllString: its empty-match rule and $-template expansion."""
    out: list[str] = []
    last_end = 0
    pos = 0
    while pos <= len(src):
        m = regex.search(src, pos)
        if m is None:
            break
        out.append(src[last_end : m.start()])
        # no replacement for an empty match right after the previous match
        if m.end() > last_end or m.start() == 0:
            out.append(_go_expand_template(template, m.group(0)))
        last_end = m.end()
        pos = pos + 1 if pos + 1 > m.end() else m.end()
    out.append(src[last_end:])
    return "".join(out)


def _go_expand_template(template: str, whole: str) -> str:
    # Our regexes have no capture groups: $0/${0} is the match, other names are empty.
    out: list[str] = []
    rest = template
    while True:
        before, sep, after = rest.partition("$")
        out.append(before)
        if not sep:
            return "".join(out)
        rest = after
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        brace = rest.startswith("{")
        body = rest[1:] if brace else rest
        n = 0
        while n < len(body) and _is_name_char(body[n]):
            n += 1
        if n == 0 or (brace and (n >= len(body) or body[n] != "}")):
            out.append("$")  # malformed reference: keep the $ as text
            continue
        name = body[:n]
        rest = body[n + 1 :] if brace else body[n:]
        if name == "0":
            out.append(whole)


def _go_quote(s: str) -> str:
    """Go's %q closely enough for error messages."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
