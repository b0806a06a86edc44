"""Timing primitives: one timed command, alternating runs (A B A B ...), medians.

A timed command is started in its own process group under GNU time (/usr/bin/time -f %M), so
we get its wall-clock time and the peak resident set size of its process tree (the largest
single process among the command and its reaped descendants). GNU time is a small C program:
measuring ru_maxrss from our own wait4 would count this Python process's memory too, since a
forked or vforked child inherits its parent's RSS high-water mark until exec.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

GNU_TIME = "/usr/bin/time"


@dataclass
class Sample:
    seconds: float
    max_rss_kb: int
    rc: int
    stderr_tail: str
    timed_out: bool = False


def _tail(data: bytes, lines: int = 2, chars: int = 300) -> str:
    text = data.decode("utf-8", "replace").strip()
    keep = [ln.strip() for ln in text.splitlines() if ln.strip() and set(ln.strip()) - set("^~ ")]
    text = " | ".join(keep[-lines:])
    return text[-chars:]


def run_timed(argv: list[str], *, timeout: float, env: Optional[dict] = None,
              cwd: Optional[str] = None) -> Sample:
    """Run argv once (stdin and stdout to /dev/null); return its time and peak RSS."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(prefix="lamina-bench-rss-") as rss:
        timed_out = threading.Event()
        if os.access(GNU_TIME, os.X_OK):
            argv = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name, *argv]
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err, env=env, cwd=cwd, start_new_session=True)

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        except BaseException:
            kill()
            os.waitpid(p.pid, 0)
            p.returncode = -9
            raise
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped by us: keep Popen from waiting
        err.seek(0)
        tail = _tail(err.read()[-8192:])
        lines = [ln for ln in open(rss.name).read().split() if ln.isdigit()]
        max_rss = int(lines[-1]) if lines else int(usage.ru_maxrss)
    return Sample(elapsed, max_rss, p.returncode, tail, timed_out.is_set())


@dataclass
class Variant:
    """One tool's side of a workload.

    command(i) gives the argv of run i (warm-up runs included: i counts from 0).
    setup/teardown run once (untimed); prepare(i)/cleanup(i) around each run (untimed);
    check(0) after the first run, before its clean-up: a tool that is fast but wrong is dropped.
    skip: a reason not to run this variant at all (not implemented yet, --no-docker, ...).
    """

    name: str
    command: Callable[[int], list[str]]
    env: Optional[dict] = None
    cwd: Optional[str] = None
    setup: Optional[Callable[[], None]] = None
    prepare: Optional[Callable[[int], None]] = None
    cleanup: Optional[Callable[[int], None]] = None
    teardown: Optional[Callable[[], None]] = None
    check: Optional[Callable[[int], None]] = None   # after the first run: raise if its result is wrong
    skip: Optional[str] = None
    timeout: float = 120.0


@dataclass
class VariantResult:
    samples: list[float] = field(default_factory=list)
    max_rss_kb: int = 0
    note: Optional[str] = None

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.samples) if self.samples else None


class Settle:
    """The same disk state before every timed run of a heavy workload, for every tool.

    The root ext4 of the development VM has no journal.  Without one, ext4 does not hand
    out an inode freed less than a minute ago (RECENTCY_MIN, 60 s; 360 s while the inode
    table block holding it is still dirty): each create scans past every such inode of
    its block group, a buffer-cache lookup each (fs/ext4/ialloc.c, recently_deleted and
    find_inode_bit).  After a clean-up removed 20,000 files, whoever creates files next in
    those groups pays seconds of kernel time, and a previous run's dirty pages, written
    back during the next run, cost that run disk bandwidth.  So before each timed run:
    `sync` (the previous run's data and the freed inodes' table blocks go to disk: the
    window is then 60 s, not 360 s), then wait until WINDOW_S after the last untimed
    set-up or clean-up step ended (they are what delete).  Elsewhere (a journalled ext4,
    xfs) the wait is not needed, and costs only time.
    """

    WINDOW_S = 62.0  # RECENTCY_MIN plus a second for dtime's whole seconds

    def __init__(self):
        self.mark = 0.0       # time.time() when the last untimed step that may delete ended
        self.waited_s = 0.0   # slept in all (sync not counted)

    def touched(self) -> None:
        self.mark = time.time()

    def __call__(self) -> None:
        subprocess.run(["sync"], check=False)
        left = self.mark + self.WINDOW_S - time.time()
        if left > 0:
            self.waited_s += left
            time.sleep(left)


def alternate(variants: list[Variant], *, runs: int, warmup: int, budget_s: float,
              log: Callable[[str], None],
              after: Optional[Callable[[list[Variant]], None]] = None,
              settle: Optional[Settle] = None) -> dict[str, VariantResult]:
    """Run every variant warmup+runs times, alternating A B A B ...; keep the measured runs.

    A variant that fails (non-zero exit, time-out, exception in its set-up) is dropped with a
    note; the others go on. Past budget_s, no new round starts once each variant has at
    least one measured run. after(variants still running) is called before the teardowns.

    With `settle`, a round is: the previous round's clean-ups, every variant's prepare,
    then each timed run after settle() (sync, and the wait for inodes freed by those
    steps to be reusable): one wait per round, the same state for every variant.
    """
    results = {v.name: VariantResult() for v in variants}
    active: list[Variant] = []
    started: list[Variant] = []
    for v in variants:
        if v.skip:
            results[v.name].note = v.skip
            continue
        try:
            started.append(v)
            if v.setup:
                v.setup()
            active.append(v)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            results[v.name].note = f"set-up failed: {e}"
            log(f"  {v.name}: set-up failed: {e}")
    if settle is not None:
        settle.touched()
    deadline = time.monotonic() + budget_s
    pending: list[tuple[Variant, int]] = []  # settle: clean-ups deferred to the round's end
    try:
        for i in range(warmup + runs):
            if not active:
                break
            if i > warmup and time.monotonic() > deadline:
                for v in active:
                    results[v.name].note = (f"time budget {budget_s:.0f}s reached after "
                                            f"{len(results[v.name].samples)} run(s)")
                log(f"  time budget reached after {i - warmup} measured round(s)")
                break
            kind = "warm-up" if i < warmup else f"run {i - warmup + 1}/{runs}"
            ready = list(active)
            if settle is not None:
                _cleanups(pending)
                for v in list(ready):
                    try:
                        if v.prepare:
                            v.prepare(i)
                    except Exception as e:  # noqa: BLE001
                        _drop(v, results, active, log, kind, f"failed: {e}")
                        ready.remove(v)
                        _quiet(v.cleanup, i)
                settle.touched()
            for v in ready:
                if settle is None and v.prepare:
                    try:
                        v.prepare(i)
                    except Exception as e:  # noqa: BLE001
                        _drop(v, results, active, log, kind, f"failed: {e}")
                        _quiet(v.cleanup, i)
                        continue
                if settle is not None:
                    settle()
                ok = _timed(v, i, results[v.name], active, log, kind, warmup)
                if settle is not None and ok:
                    pending.append((v, i))
                else:
                    _quiet(v.cleanup, i)
        _cleanups(pending)
        if after and active:
            try:
                after(list(active))
            except Exception as e:  # noqa: BLE001
                log(f"  after the runs: {e}")
    finally:
        _cleanups(pending)
        for v in started:
            _quiet(v.teardown)
    return results


def _drop(v: Variant, results: dict, active: list, log, kind: str, note: str) -> None:
    results[v.name].note = note
    if v in active:
        active.remove(v)
    log(f"  {v.name:16} {kind}: {note}")


def _timed(v: Variant, i: int, res: VariantResult, active: list, log, kind: str, warmup: int) -> bool:
    """One timed run of v (and its check after the first); False if v was dropped (its
    clean-up is then the caller's, at once)."""
    try:
        s = run_timed(v.command(i), timeout=v.timeout, env=v.env, cwd=v.cwd)
        if v.check and i == 0 and s.rc == 0 and not s.timed_out:
            try:
                v.check(i)
            except Exception as e:  # noqa: BLE001
                raise RuntimeError(f"wrong result: {e}") from None
    except Exception as e:  # noqa: BLE001
        res.note = str(e) if isinstance(e, RuntimeError) else f"failed: {e}"
        active.remove(v)
        log(f"  {v.name:16} {kind}: {res.note}")
        return False
    if s.timed_out:
        res.note = f"timed out after {v.timeout:.0f}s"
    elif s.rc != 0:
        res.note = f"failed (exit {s.rc}): {s.stderr_tail}"
    if res.note and (s.timed_out or s.rc != 0):
        active.remove(v)
        log(f"  {v.name:16} {kind}: {res.note}")
        return False
    res.max_rss_kb = max(res.max_rss_kb, s.max_rss_kb)
    if i >= warmup:
        res.samples.append(s.seconds)
    log(f"  {v.name:16} {kind}: {s.seconds:8.3f}s  maxrss {s.max_rss_kb / 1024:6.1f} MB")
    return True


def _cleanups(pending: list) -> None:
    while pending:
        v, i = pending.pop(0)
        _quiet(v.cleanup, i)


def _quiet(fn, *args) -> None:
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - clean-up is best effort
        pass


def hyperfine(variants: list[Variant], *, runs: int, export: str, timeout: float = 300) -> dict[str, float]:
    """Cross-check of stateless commands with hyperfine (no shell, 1 warm-up): variant -> median s.

    hyperfine runs each command's runs back to back (not alternating): a second opinion on
    the alternating medians, not a replacement.
    """
    import json
    import shlex
    exe = "/usr/bin/hyperfine"
    if not os.access(exe, os.X_OK):
        return {}
    cmds = []
    for v in variants:
        argv = v.command(0)
        if v.env and v.env.get("DOCKER_BUILDKIT"):
            argv = ["env", f"DOCKER_BUILDKIT={v.env['DOCKER_BUILDKIT']}", *argv]
        cmds.append(shlex.join(argv))
    names = [a for v in variants for a in ("-n", v.name)]
    subprocess.run([exe, "-N", "--warmup", "1", "--runs", str(runs), "--style", "none",
                    "--export-json", export, *names, *cmds],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=timeout, check=True)
    with open(export) as f:
        data = json.load(f)
    return {r["command"]: r["median"] for r in data["results"]}
