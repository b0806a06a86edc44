"""A foreground run's tie to its CLI, held by the container's monitor.

`run -it`, and a foreground `run --restart`, run their container under a monitor, as
dockerd does, with the CLI attached (cli/commands/services.py `run_attached`,
`run_followed`), so that the detach keys can leave it running and the monitor applies
the restart policy.  But lamina promises that a foreground run ends with its CLI: a `kill -9` of
the CLI, or its terminal hanging up, leaves no container running (README; the front's
watchdog keeps that promise for the other foreground runs).  So the monitor watches the
pipe the CLI sent the container's ID on (services.py `Monitor`): the CLI keeps its
write end open while it is attached, and the kernel closes it however the CLI ends.  A
detach writes RELEASE first; EOF without it means the CLI vanished, and the monitor
kills the run (SIGKILL through a pidfd of its init, its child: never another process
that got the pid), which then ends as any run does (Exited (137), cleanup, `--rm`),
with no restart.  A pipe needs no protocol on the attach connection and covers the
time before there is one (the CLI killed while the container starts).  Only the first
run is tied: at its exit the tie is dropped (the CLI ends with that exit code; a
restart policy then goes on alone)."""

from __future__ import annotations

import os
import threading

RELEASE = b"d"
_SIGKILL = 9


class Tether:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._pidfd: int | None = None
        self._done = False
        self.cut = False  # the CLI vanished without detaching
        threading.Thread(target=self._watch, name="tether", daemon=True).start()

    def _watch(self) -> None:
        try:
            data = os.read(self._fd, 1)  # until the CLI's RELEASE or its end
        except OSError:
            data = b""
        finally:
            os.close(self._fd)
        with self._lock:
            if data != RELEASE and not self._done:
                self.cut = True
                self._kill()

    def started(self, init_pid: int) -> None:
        """The tied run's init runs (still our unreaped child: the pidfd is its own)."""
        with self._lock:
            if self._done:
                return
            self._pidfd = os.pidfd_open(init_pid)
            if self.cut:  # the CLI died while the container started
                self._kill()

    def _kill(self) -> None:
        if self._pidfd is not None:
            import signal

            try:
                signal.pidfd_send_signal(self._pidfd, _SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def armed(self) -> bool:
        return not self._done

    def release(self) -> bool:
        """At the tied run's exit: the tie dropped; True when the CLI had vanished (then
        no restart: as a user's kill)."""
        with self._lock:
            self._done = True
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            return self.cut
