"""Untrusted text made safe to show: Go's strconv.Quote, and the same escapes
without the quotes for table cells.

Image configs, history entries, labels and file names come from whoever made the
image.  Printed raw, an ESC or a C1 control byte in them would drive the user's
terminal (clear the screen, rewrite earlier lines, set the window title), so
every listing escapes what is not printable the way Go's %q does (`\\x1b`,
`\\u009b`), which is what `docker ps` shows for COMMAND.  Kept free of imports:
the runtime's error messages use it on the start path.
"""

from __future__ import annotations

_SHORT = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _escape(ch: str) -> str:
    """strconv.Quote's escape for one non-printable character."""
    if ch in _SHORT:
        return _SHORT[ch]
    o = ord(ch)
    if o < 0x80:
        return f"\\x{o:02x}"
    if 0xDC80 <= o <= 0xDCFF:
        return f"\\x{o - 0xDC00:02x}"  # a raw non-UTF-8 byte kept by surrogateescape: Go shows the byte
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def go_quote(text: str) -> str:
    """Go's strconv.Quote (`%q`): printable characters kept, the rest escaped."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(_escape(ch))
    out.append('"')
    return "".join(out)


def escape_controls(text: str) -> str:
    """`text` with every non-printable character (controls, DEL, C1, format and
    separator characters) escaped as strconv.Quote would; printable text unchanged."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def escape_message(text: str) -> str:
    """An error message made safe for the terminal: like escape_controls, but its
    line breaks and tabs stay (messages such as the usage block span lines)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else _escape(ch) for ch in text)
