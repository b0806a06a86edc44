"""Docker-style progress output for pull / push / load.

On a terminal every item (layer) owns a line that is redrawn in place with a
progress bar; otherwise, like the docker CLI, only status changes are printed
as plain `<id>: <status>` lines and byte counts are left out.  All methods are
called from worker threads, hence the lock.

`run` makes a sink (for_stream) in case it must pull, and then mostly does not:
this module imports neither typing nor threading for it (~9 ms on a busy 2-core
machine); `Progress`, the protocol, is made when a transfer module asks for it.
"""

from __future__ import annotations

import time
from _thread import allocate_lock  # what threading.Lock is, without importing threading

from lamina.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TextIO

BAR_WIDTH = 50
REDRAW_INTERVAL = 0.1


def __getattr__(name: str):
    """`Progress` (PEP 562): the protocol every sink here (and engine/events.py's) meets."""
    if name != "Progress":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Protocol

    class Progress(Protocol):
        def line(self, text: str) -> None: ...
        def status(self, item: str, text: str) -> None: ...
        def progress(self, item: str, action: str, current: int, total: int) -> None: ...

    globals()["Progress"] = Progress
    return Progress


def bar(current: int, total: int) -> str:
    if total <= 0:
        return human_size(current)
    filled = min(BAR_WIDTH, int(BAR_WIDTH * current / total))
    arrow = ">" if filled < BAR_WIDTH else ""
    body = "=" * filled + arrow + " " * (BAR_WIDTH - filled - len(arrow))
    return f"[{body}]  {human_size(current)}/{human_size(total)}"


class QuietProgress:
    def line(self, text: str) -> None:
        pass

    def status(self, item: str, text: str) -> None:
        pass

    def progress(self, item: str, action: str, current: int, total: int) -> None:
        pass


class PlainProgress:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = allocate_lock()

    def line(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def status(self, item: str, text: str) -> None:
        self.line(f"{item}: {text}")

    def progress(self, item: str, action: str, current: int, total: int) -> None:
        pass  # docker prints no byte counts when not on a terminal


class TerminalProgress:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = allocate_lock()
        self._items: list[str] = []
        self._last_draw: dict[str, float] = {}

    def line(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()
            self._items.clear()  # items above a free line are no longer redrawn

    def status(self, item: str, text: str) -> None:
        self._draw(item, f"{item}: {text}", force=True)

    def progress(self, item: str, action: str, current: int, total: int) -> None:
        self._draw(item, f"{item}: {action} {bar(current, total)}", force=current >= total > 0)

    def _draw(self, item: str, text: str, *, force: bool) -> None:
        with self._lock:
            if not force:  # byte counts are throttled; status changes always show
                now = time.monotonic()
                if now - self._last_draw.get(item, 0.0) < REDRAW_INTERVAL:
                    return
                self._last_draw[item] = now
            if item not in self._items:
                self._items.append(item)
                self._out.write(f"\x1b[2K\r{text}\n")
            else:
                up = len(self._items) - self._items.index(item)
                self._out.write(f"\x1b[{up}A\x1b[2K\r{text}\x1b[{up}B\r")
            self._out.flush()


def for_stream(out: TextIO, *, quiet: bool = False) -> Progress:
    if quiet:
        return QuietProgress()
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    return TerminalProgress(out) if tty else PlainProgress(out)


class CountingReader:
    """Wraps a readable stream and reports the running byte count (progress bars)."""

    def __init__(self, raw, report: Callable[[int], object] | None, start: int = 0) -> None:
        self._raw, self._report, self.count = raw, report, start

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self.count += len(data)
            if self._report:
                self._report(self.count)
        return data

    def readinto(self, buf) -> int:
        n = self._raw.readinto(buf) or 0
        if n:
            self.count += n
            if self._report:
                self._report(self.count)
        return n

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "CountingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
