"""A small thread pool for push and pull: what they used of concurrent.futures.

concurrent.futures imports logging (and with it traceback, string, weakref...),
tens of milliseconds at the start of a `push` or `pull` that may not even run a
task.  This is the part those verbs need: `submit` returns a `Task` whose
`result()` re-raises the worker's exception; `cancel()` drops a task that has
not started; leaving the `with` block waits for the tasks already running.
"""

from __future__ import annotations

import threading
from collections import deque


class TaskCancelled(Exception):
    """result() of a task cancelled before it started."""


class Task:
    __slots__ = ("fn", "args", "_done", "_result", "_error")

    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args
        self._done = threading.Event()
        self._result = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._result = self.fn(*self.args)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits on result()
            self._error = e
        finally:
            self.fn = self.args = None  # drop references (blobs, pipes) as soon as it ends
            self._done.set()

    def result(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self) -> BaseException | None:
        self._done.wait()
        return self._error


class Workers:
    """Up to `size` threads, started as tasks are submitted; each ends when the queue is empty."""

    def __init__(self, size: int, name: str = "lamina-worker") -> None:
        self.size, self.name = max(1, size), name
        self._queue: deque[Task] = deque()
        self._lock = threading.Lock()
        self._running = 0
        self._threads: list[threading.Thread] = []

    def submit(self, fn, *args) -> Task:
        task = Task(fn, args)
        with self._lock:
            self._queue.append(task)
            if self._running >= self.size:
                return task
            self._running += 1
            t = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._threads.append(t)
        t.start()
        return task

    def cancel(self, task: Task) -> bool:
        """Drop `task` if no thread took it yet (its result() then raises TaskCancelled)."""
        with self._lock:
            try:
                self._queue.remove(task)
            except ValueError:
                return False
        task._error = TaskCancelled()
        task.fn = task.args = None
        task._done.set()
        return True

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._running -= 1
                    return
                task = self._queue.popleft()
            task._run()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        while True:  # a task may submit more (an upload its compression blocks): until none is left
            with self._lock:
                threads, self._threads = self._threads, []
            if not threads:
                return
            for t in threads:
                t.join()
