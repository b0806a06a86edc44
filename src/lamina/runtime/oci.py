"""Driving an OCI runtime (runc or crun, same CLI) for one container at a time.

Cost matters here: `lamina run --rm img true` has a 60 ms budget and runc alone
takes ~25 ms.  So a start without -t spawns exactly one process (`runc run`),
nothing is probed per start (no `runc state`, no `--version`), this module
imports nothing beyond what lamina loads anyway (pty code, ctypes and select
come only with -t), and processes are started by runtime/process.py (posix_spawn,
no `subprocess`).  The version is probed only on
request and cached in a small JSON file keyed by the binary's identity.

Each runtime gets its own state root, `<store>/runtime/<name>`: runc and crun
keep incompatible state there, and neither must see docker's containers.
"""

from __future__ import annotations

import os

from lamina.errors import RuntimeFailure
from lamina.leanjson import loads
from lamina.record import record
from lamina.runtime.process import ForwardSignals, capture, fresh, kill_and_reap, spawn

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time that `run` does not have
    from typing import Callable, Protocol
else:
    Protocol = object

KNOWN = ("runc", "crun")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


class OCIRuntime(Protocol):
    """What the rest of lamina may use of a runtime."""

    name: str  # "runc" | "crun"
    path: str
    state_root: str
    note: str | None  # one line for the user (e.g. why we did not use crun), or None

    def run(self, container_id: str, bundle_dir: str, *, tty: bool, interactive: bool,
            after_exit: Callable[[], None] | None = None, log_sink=None,
            learn: Callable[[str], None] | None = None) -> int: ...

    def state(self, container_id: str) -> dict | None: ...

    def kill(self, container_id: str, sig: int | str = "TERM", *, all_processes: bool = False) -> None: ...

    def delete(self, container_id: str, *, force: bool = False, missing_ok: bool = False) -> None: ...

    def security_warning(self) -> str | None: ...

    def discard(self, container_id: str, init: int) -> None: ...

    def destroy(self, container_id: str) -> None: ...


@record
class CliRuntime:
    """runc or crun through their common command line."""

    name: str
    path: str
    state_root: str
    note: str | None = None

    # ------------------------------------------------------------------ run

    def run(self, container_id: str, bundle_dir: str, *, tty: bool, interactive: bool,
            after_exit: Callable[[], None] | None = None, log_sink=None,
            learn: Callable[[str], None] | None = None) -> int:
        """Create + start + wait in the foreground; returns the exit code as docker reports it
        (a signal n is 128+n).  `after_exit()`, when given, runs once the container exited
        and before the runtime deletes it (its cgroup still there: runtime/cgroups.py).
        `log_sink`: the container's output is also written to its `write(stream, data)`
        (the json-file log: runtime/tee.py; with `tty`, the pty's output as "stdout").
        `learn(container_id)`, when given, runs once the container runs, its state still
        there (the compiled seccomp filter: runtime/seccompcache.py; crun only).

        Without `tty`: one `runc run` in the foreground; the container gets our
        stdout/stderr (runc copies them) and our stdin only when `interactive`,
        else /dev/null.  With `tty`: see console.run_tty.  Signals sent to us are
        passed on to the container.  Raises ContainerCommandNotFound /
        ContainerCommandNotExecutable / RuntimeFailure when the runtime could not
        start the container; the runtime has then printed its own error line too.
        """
        _check_id(container_id)
        log = fresh(os.path.join(bundle_dir, "runtime.log"))
        ok = False
        try:
            if tty:
                from lamina.runtime.console import run_tty  # pty plumbing only when asked for

                code = run_tty(self, container_id, bundle_dir, log, interactive=interactive, log_sink=log_sink,
                               learn=learn)
            elif (after_exit is not None or learn is not None) and self.name != "runc":
                # only runc has `run --keep`; a detached start leaves the state to learn from
                from lamina.runtime.keptrun import run_kept

                code = run_kept(self, container_id, bundle_dir, log, interactive=interactive, log_sink=log_sink,
                                learn=learn)
            else:
                code = self._run_foreground(container_id, bundle_dir, log, interactive=interactive,
                                            keep=after_exit is not None, log_sink=log_sink)
            ok = True
            if after_exit is not None:
                after_exit()
        finally:
            # A finished `runc run` removes its state; anything left means runc died,
            # was killed, or ran detached: the container may still be running.
            if os.path.lexists(os.path.join(self.state_root, container_id)):
                try:
                    self.delete(container_id, force=True, missing_ok=True)
                except RuntimeFailure:
                    if ok:  # never hide the error already on its way out
                        raise
        return code

    def _base(self, log: str) -> list[str]:
        return [self.path, f"--root={self.state_root}", f"--log={log}", "--log-format=json"]

    def _run_foreground(self, container_id: str, bundle_dir: str, log: str, *, interactive: bool,
                        keep: bool = False, log_sink=None) -> int:
        # --keep: the stopped container (and its cgroup) stays for `after_exit`; run() deletes it.
        argv = [*self._base(log), "run", *(["--keep"] if keep else []), "--bundle", bundle_dir, container_id]
        if log_sink is not None:  # output through pipes, teed into the log (only then: no copy otherwise)
            from lamina.runtime.tee import run_teed

            status = run_teed(argv, stdin=0 if interactive else None, log=log_sink)
        else:
            pid = spawn(argv, stdin=0 if interactive else None)
            try:
                with ForwardSignals(pid):
                    status = os.waitpid(pid, 0)[1]
                pid = None
            finally:
                if pid is not None:  # interrupted by an exception: do not leave runc behind
                    kill_and_reap(pid)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:  # runc itself died of a signal (it reports the container's as 128+n)
            return 128 - code
        if code == 1:  # runc's own failures exit 1; only its log tells them from the container's
            from lamina.runtime.runcerrors import runtime_error

            failure = runtime_error(log)
            if failure is not None:
                raise failure
        return code

    # ------------------------------------------------------------------ other verbs

    def state(self, container_id: str) -> dict | None:
        """`runc state` as a dict, or None when the runtime does not know the container."""
        _check_id(container_id)
        rc, out, err = capture([self.path, f"--root={self.state_root}", "state", container_id])
        if rc != 0:
            from lamina.runtime.runcerrors import is_missing, last_line

            if is_missing(err):
                return None
            raise RuntimeFailure(f"{self.name} state {container_id}: {last_line(err)}")
        import json  # json imports re: kept off the start path, as below

        try:
            return json.loads(out)
        except ValueError:
            raise RuntimeFailure(f"{self.name} state {container_id}: unreadable output") from None

    def kill(self, container_id: str, sig: int | str = "TERM", *, all_processes: bool = False) -> None:
        _check_id(container_id)
        argv = [self.path, f"--root={self.state_root}", "kill"]
        if all_processes:
            argv.append("--all")
        argv += [container_id, str(int(sig)) if isinstance(sig, int) else sig]
        rc, _, err = capture(argv)
        if rc != 0:
            from lamina.runtime.runcerrors import last_line

            raise RuntimeFailure(f"{self.name} kill {container_id}: {last_line(err)}")

    def delete(self, container_id: str, *, force: bool = False, missing_ok: bool = False) -> None:
        _check_id(container_id)
        argv = [self.path, f"--root={self.state_root}", "delete"]
        if force:
            argv.append("--force")
        rc, _, err = capture([*argv, container_id])
        if rc != 0:
            from lamina.runtime.runcerrors import is_missing, last_line

            if not (missing_ok and is_missing(err)):
                raise RuntimeFailure(f"{self.name} delete {container_id}: {last_line(err)}")

    def update(self, container_id: str, resources: dict) -> None:
        """`runc update --resources -`: a running container's cgroup limits, live.
        `resources` is the OCI linux.resources object (runtime/resources.py builds it);
        runc leaves the values it holds as 0 unchanged."""
        _check_id(container_id)
        import json
        import subprocess  # stdin for the JSON; update is no start path

        source = "-" if self.name == "runc" else "/dev/stdin"  # crun reads a path only
        unlimited_pids = self.name != "runc" and (resources.get("pids") or {}).get("limit", 0) < 0
        if unlimited_pids:  # crun writes -1 as it is (EINVAL) where runc writes "max": we do
            resources = {k: v for k, v in resources.items() if k != "pids"}
        proc = subprocess.run([self.path, f"--root={self.state_root}", "update", "--resources", source, container_id],
                              input=json.dumps(resources).encode(), capture_output=True, check=False)
        if proc.returncode != 0:
            from lamina.runtime.runcerrors import last_line

            raise RuntimeFailure(f"{self.name} did not terminate successfully: exit status {proc.returncode}: "
                                 f"{last_line(proc.stderr)}")
        if unlimited_pids:
            from lamina.runtime.cgroups import unlimit_pids
            from lamina.runtime.execproc import cgroups_path

            unlimit_pids(cgroups_path(container_id))

    def discard(self, container_id: str, init: int) -> None:
        """After a run that was interrupted: delete the container (killing it) and reap
        its init, our adopted child."""
        try:
            self.delete(container_id, force=True, missing_ok=True)
        finally:
            kill_and_reap(init)

    def destroy(self, container_id: str) -> None:
        """Kill every process of the container and delete its state, whatever it was
        doing (a front that died left it running).  Free when the runtime holds no
        state for it: no process is spawned then."""
        _check_id(container_id)
        if not os.path.lexists(os.path.join(self.state_root, container_id)):
            return
        try:
            self.kill(container_id, "KILL", all_processes=True)
        except RuntimeFailure:
            pass  # stopped already, or gone meanwhile: delete --force settles it
        self.delete(container_id, force=True, missing_ok=True)

    # ------------------------------------------------------------------ facts

    def version(self) -> str:
        """The runtime's version ("1.1.5+ds1"), probed once per binary and cached."""
        return cached_fact(self.path, os.path.dirname(self.state_root), "version", self._probe_version)

    def security_warning(self) -> str | None:
        """One line when the runtime lacks a fix for a known container escape, counting
        fixes its Debian package backports (runtime/advisories.py); None otherwise.
        Assessed once per binary and cached beside the version: cheap on `run`."""
        return self._security().get("warning")

    def security_note(self) -> str | None:
        """One line when the version number alone would be a false alarm (a distribution
        backported the fixes), for `info`."""
        return self._security().get("note")

    def _security(self) -> dict:
        version = self.version()  # cached first: both facts share one cache entry

        def assess() -> dict:
            from lamina.runtime.advisories import assess

            return assess(self.name, self.path, version)

        facts = cached_fact(self.path, os.path.dirname(self.state_root), "security", assess)
        return facts if isinstance(facts, dict) else {}

    def _probe_version(self) -> str:
        rc, out, _ = capture([self.path, "--version"])
        for line in out.decode("utf-8", "replace").splitlines():
            if line.startswith(f"{self.name} version "):
                return line.split()[2]
        return "unknown"


# ---------------------------------------------------------------------- selection


def select_runtime(name: str | None, *, state_root: str) -> CliRuntime:
    """The runtime to use: `name` is None (auto), "runc", "crun" or a path to either.

    Auto prefers crun (faster start) when it can work here, else runc.  crun
    cannot run on a hybrid cgroup host whose v2 hierarchy has controllers; if it
    was asked for, we fall back to runc and say so in `.note`.  Cheap: a PATH
    lookup and one small read from /sys, no process.  `state_root` is
    `<store>/runtime`; each runtime keeps its state in `<state_root>/<name>`.
    """
    if name is None:
        crun = which("crun")
        if crun and _crun_works():
            return CliRuntime("crun", crun, os.path.join(state_root, "crun"))
        runc = which("runc")
        if runc:
            return CliRuntime("runc", runc, os.path.join(state_root, "runc"))
        if crun:
            raise RuntimeFailure("crun cannot run containers on this host (hybrid cgroups) and runc is not installed")
        raise RuntimeFailure("no OCI runtime found: install runc or crun")

    if "/" in name:
        path = os.path.abspath(name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise RuntimeFailure(f"unknown or invalid runtime name: {name} (not an executable file)")
        kind = "crun" if os.path.basename(path).startswith("crun") else "runc"
    elif name in KNOWN:
        found = which(name)
        if found is None:
            raise RuntimeFailure(f"unknown or invalid runtime name: {name} (not found in PATH)")
        path, kind = found, name
    else:
        raise RuntimeFailure(f"unknown or invalid runtime name: {name}")

    if kind == "crun" and not _crun_works():
        runc = which("runc")
        if runc is None:
            raise RuntimeFailure("crun cannot run containers on this host (hybrid cgroups) and runc is not installed")
        return CliRuntime(
            "runc",
            runc,
            os.path.join(state_root, "runc"),
            note="crun does not support this host's hybrid cgroup layout; using runc",
        )
    return CliRuntime(kind, path, os.path.join(state_root, kind))


CGROUP_ROOT = "/sys/fs/cgroup"  # cgroups.py's, not imported by every start; a test points it at a fake tree


def _crun_works() -> bool:
    """False on a hybrid cgroup host whose cgroup2 mount has controllers (crun refuses:
    "cgroups in hybrid mode not supported")."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return True  # pure cgroup v2
    try:
        with open(os.path.join(CGROUP_ROOT, "unified", "cgroup.controllers"), "rb") as f:
            return not f.read().strip()
    except OSError:
        return True  # pure v1: crun's legacy mode works


def which(program: str) -> str | None:
    for d in os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        candidate = os.path.join(d or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


# ---------------------------------------------------------------------- ids


def _check_id(container_id: str) -> None:
    # runc's own rule (^[\w+-\.]+$), checked here because we also build paths from it.
    if not container_id or container_id in (".", "..") or not set(container_id) <= _ID_CHARS:
        raise RuntimeFailure(f"invalid container id {container_id!r}")


# ---------------------------------------------------------------------- version cache


def cached_fact(path: str, cache_dir: str, field: str, compute):
    """`compute()` for the runtime binary at `path`, cached in `<cache_dir>/facts.json`
    under the binary's identity (path, inode, size, mtime: an upgrade is a new key)."""
    st = os.stat(path)
    key = f"{path}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    cache_path = os.path.join(cache_dir, "facts.json")
    try:
        with open(cache_path, "rb") as f:
            facts = loads(f.read())
        if not isinstance(facts, dict):
            facts = {}
    except (OSError, ValueError):
        facts = {}
    entry = facts.get(key)
    if isinstance(entry, dict) and field in entry:
        return entry[field]
    value = compute()
    entry = dict(entry) if isinstance(entry, dict) else {}
    entry[field] = value
    facts = {k: v for k, v in facts.items() if not k.startswith(f"{path}:")}
    facts[key] = entry
    try:
        # mkdir, not makedirs: a command that runs without a store (`version`) must not make one
        if not os.path.isdir(cache_dir):
            os.mkdir(cache_dir, 0o700)
        import json  # a cache miss only: a hit reads through leanjson

        tmp = f"{cache_path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(facts, f)
        os.replace(tmp, cache_path)
    except OSError:
        pass  # a cache we cannot write is only slower
    return value
