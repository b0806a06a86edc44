"""A watchdog for a foreground container: the front may die, the container must not run on.

There is no daemon: the lamina process that runs a container (`run`, `start`, a
build's RUN step) is its only keeper.  Killed with SIGKILL (or by the OOM killer)
it runs no cleanup, and `runc run` plus the container would go on untracked.  So
before the runtime starts, the front forks a watchdog holding the read end of a
pipe whose write end only the front has (O_CLOEXEC: runc never inherits it).  The
front writes one byte when it is done with the container itself; EOF without that
byte means the front died, and the watchdog then execs the command it was given:
for a container, a fresh interpreter running lamina/reaper.py, which reaps it with
`recovery.reap` (the same cleanup `rm -f` and the next command's recovery use):
processes killed through the runtime, rootfs unmounted, network released, the
record Exited (137); and removed if it was `run --rm`.  This module knows only
that command line, nothing of the store or the layers above the runtime.

The watchdog's pid is what the record names as the container's keeper, so `ps`
says Up until the reaping is finished, never Exited while the container runs.

Cost on the normal path is one fork, one pipe and one wait: the forked child only
sleeps in read(2) and does nothing else in Python (the front may have threads;
the child imports nothing).  Alternatives considered: PR_SET_PDEATHSIG on runc
only kills runc, not the container (its init is not runc's child once started,
and the signal follows the *thread* that forked); a subreaper-only design needs a
live front; a shell watchdog saves nothing over fork and adds a dependency.
"""

from __future__ import annotations

import os

# _signal: the same calls without the signal module's enum (~4 ms of every run's start-up)
import _signal as signal

# The watchdog must outlive the front long enough to clean up: typed Ctrl-C and a
# terminal hang-up go to the front's process group and session, not to it.
_SHIELDED = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTSTP)
_DONE = b"d"
# A detached container's monitor execs itself into a small relay (lamina/handover.py): a
# forked watchdog would then keep alone the copy of the big front it shares today, so
# there it waits as a shell (~0.1 MB of its own, not ~6 MB).  The same protocol: the
# byte, else EOF and the reaper (the ignored signals stay ignored across exec).
_SHELL = ("/bin/sh", "-c", 'read -r x <&3; [ "$x" = d ] && exit 0; exec 3<&-; exec "$@"', "watchdog")
# The pid of a process that ends right after its container (`lamina run`: reap_at_exit).
_EXITING: list[int] = []


def reap_at_exit() -> None:
    """This process ends as soon as its container is done with (the `lamina` launcher's
    `run`): `done()` leaves its watchdog, which exits on its own once it reads the byte,
    to init to reap after this process's end, instead of waiting until the kernel has
    scheduled it (~1 ms, several on a busy machine).  Keyed by pid: a monitor forked
    from this process (run -d) still reaps its own."""
    _EXITING[:] = [os.getpid()]


class Watchdog:
    """Forks the watchdog that execs `argv` should the front die first; `done()` (or
    leaving the `with`) ends it.  `argv[0]` is a path (execv, no PATH search)."""

    def __init__(self, argv: list[str], *, lean: bool = False) -> None:
        """`lean`: the watchdog execs a shell that waits instead (a monitor's, which
        outlives the front's memory: see `_SHELL`)."""
        argv = list(argv)
        r, w = os.pipe()  # both O_CLOEXEC
        # Blocked across fork so a Ctrl-C cannot hit the child before it shields itself.
        saved = signal.pthread_sigmask(signal.SIG_BLOCK, _SHIELDED)
        try:
            pid = os.fork()
            if pid == 0:
                _watch(r, w, argv, saved, lean)  # never returns
        except BaseException:
            os.close(r)
            os.close(w)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        os.close(r)
        self.pid = pid
        self._w: int | None = w

    @classmethod
    def adopt(cls, pid: int, w: int) -> Watchdog:
        """The watchdog this process forked before it exec'd itself (a detached
        container's monitor: lamina/monitor.py): its pid and the pipe's write end."""
        self = cls.__new__(cls)
        self.pid, self._w = pid, w
        return self

    def done(self) -> None:
        """The front has finished with the container itself: the watchdog exits, reaped here
        (or by init after this process's end: reap_at_exit)."""
        if self._w is None:
            return
        try:
            os.write(self._w, _DONE)
        except OSError:
            pass  # it died already; the wait below still reaps it
        os.close(self._w)
        self._w = None
        if _EXITING and _EXITING[0] == os.getpid():
            return  # reaped by init once this process ends (reap_at_exit)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()


def _watch(r: int, w: int, argv: list[str], mask, lean: bool = False) -> None:
    """The forked child: only os/signal calls (no imports, no locks another thread held)."""
    try:
        os.close(w)
        try:
            for sig in _SHIELDED:
                signal.signal(sig, signal.SIG_IGN)  # discards one already pending, too
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        except ValueError:
            pass  # forked from a non-main thread: the signals stay blocked instead
        os.setsid()  # own session and group: out of the terminal's reach
        os.chdir("/")  # keep no directory (or mount) of the front busy
        if r != 3:
            os.dup2(r, 3)  # r may be 0..2 when the front's stdio was closed
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            if fd != null:
                os.dup2(null, fd)
        for name in os.listdir("/proc/self/fd"):  # every fd the front had: db, locks, pipes, the pty
            if int(name) > 3:
                try:
                    os.close(int(name))
                except OSError:
                    pass  # listdir's own fd, closed already
        if lean:
            os.set_inheritable(3, True)
            try:
                os.execv(_SHELL[0], [*_SHELL, *argv])
            except OSError:
                pass  # no shell: it waits here after all
        got = os.read(3, 1)  # sleeps until the front writes or dies (EINTR is retried)
        if got == _DONE:
            os._exit(0)
        os.close(3)
        os.execv(argv[0], argv)  # the front died: the reaper takes over
    except BaseException:
        pass
    os._exit(1)

