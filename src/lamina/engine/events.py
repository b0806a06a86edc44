"""Long work as an iterator of docker-shaped progress events.

The engine's long operations (pull, push, load, build) report through a sink:
the transfer `Progress` protocol (line/status/progress) or, for a build, a text
stream.  `Events` is such a sink that turns each report into the JSON message
dockerd streams for the same work ({"status": …, "id": …, "progressDetail": …}
or {"stream": "Step 1/2 : …\\n"}), and `run_with_events` runs the work in a
worker thread so the caller iterates the events as they happen; the work's
result (or error) comes out at the end of the iteration.
"""

from __future__ import annotations

import queue
import threading

_DONE = object()


class Events:
    """A progress sink (transfer.progress.Progress and a writable text stream) that
    hands docker-shaped event dicts to `emit`."""

    def __init__(self, emit) -> None:
        self._emit = emit
        self._partial = ""

    # transfer.progress.Progress
    def line(self, text: str) -> None:
        self._emit({"status": text})

    def status(self, item: str, text: str) -> None:
        self._emit({"status": text, "id": item})

    def progress(self, item: str, action: str, current: int, total: int) -> None:
        self._emit({"status": action, "id": item, "progressDetail": {"current": current, "total": total}})

    # a text stream (the build log): one {"stream": line} per complete line
    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._emit({"stream": line + "\n"})
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._partial:
            self._emit({"stream": self._partial})
            self._partial = ""


class EventStream:
    """Iterate the events of `work(sink)` while it runs; `.result` once exhausted.

    The worker's exception is raised from the iteration, after the events it
    emitted; a consumer that stops early still waits for the work to finish
    (`close`), so no half-done operation outlives the iterator."""

    def __init__(self, work) -> None:
        self.result = None
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), name="lamina-engine", daemon=True)
        self._started = False
        self._finished = False

    def _run(self, work) -> None:
        sink = Events(self._queue.put)
        try:
            self.result = work(sink)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer's thread
            self._error = e
        finally:
            sink.close()
            self._queue.put(_DONE)

    def __iter__(self):
        if self._finished:
            return
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            item = self._queue.get()
            if item is _DONE:
                break
            yield item
        self._thread.join()
        self._finished = True
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Wait for the work (started or not) to finish; raise its error."""
        for _ in self:
            pass


def run_with_events(work) -> EventStream:
    """`work(sink) -> result` as an iterable of its events (see EventStream)."""
    return EventStream(work)


def collect(work) -> tuple[object, list[dict]]:
    """Run `work(sink)` in this thread: (its result, the events it emitted)."""
    events: list[dict] = []
    sink = Events(events.append)
    try:
        result = work(sink)
    finally:
        sink.close()
    return result, events
