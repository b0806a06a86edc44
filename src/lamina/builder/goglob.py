"""Go's filepath.Match for one path component, as a regex: the wildcards of a COPY or
ADD source (context.py matches a pattern one component at a time with it).
"""

from __future__ import annotations

import re

from lamina.errors import BuildError


def go_glob(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match for one path component, as a regex."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise BuildError(f"syntax error in pattern: {pattern}")
            body = pattern[i:j]
            if body.startswith("^"):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\")
            out.append(f"[{body}]")
            i = j + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S)


def unescape(part: str) -> str:
    """A literal component of a pattern that has wildcards elsewhere: its escapes removed."""
    return re.sub(r"\\(.)", r"\1", part)
