"""The glob patterns of `${v#p} ${v##p} ${v%p} ${v%%p} ${v/p/r} ${v//p/r}` (BuildKit's
lex.go: convertShellPatternToRegex, trimPrefix/trimSuffix, Go's ReplaceAllString
with `$0` templates), and the two primitives the word lexer in shell.py shares with
them: its scanner's end sentinel and the `${name}` character class.
"""

from __future__ import annotations

import re

EOF = ""  # scanner sentinel: every real character is a 1-length string


class LexError(Exception):
    """A word that cannot be lexed; ShellLex reports it as a ShellError."""


def is_name_char(ch: str) -> bool:
    # unicode.IsLetter (category L*) / unicode.IsDigit (category Nd) / '_'
    return ch != EOF and (ch.isalpha() or ch.isdecimal() or ch == "_")


_REGEX_SPECIALS = frozenset("[]{}.+()|^$")


def pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
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
            nxt = src[i] if i < len(src) else EOF
            if nxt in ("}", "/") and nxt != EOF:
                continue  # escaped ${} delimiters are not part of the pattern
            i += 1
            if nxt not in ("*", "?", "\\") or nxt == EOF:
                raise LexError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt or chr(0xFFFD)}'"
                )
            out.append("\\" + nxt)
        elif tok in _REGEX_SPECIALS:
            out.append("\\" + tok)
        else:
            out.append(tok)
    return re.compile("".join(out))


def trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = pattern_to_regex(pattern, greedy, anchored=True).search(value)
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


def trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Regexes find the leftmost match, so trim a prefix of the reversed string.
    return trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def go_replace_all(regex: re.Pattern[str], src: str, template: str) -> str:
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
        while n < len(body) and is_name_char(body[n]):
            n += 1
        if n == 0 or (brace and (n >= len(body) or body[n] != "}")):
            out.append("$")  # malformed reference: keep the $ as text
            continue
        name = body[:n]
        rest = body[n + 1 :] if brace else body[n:]
        if name == "0":
            out.append(whole)
