"""One more process in a running container, and the freezer: `runc exec`, `pause`, `resume`, `ps`.

`exec` writes a process.json built from the container's own config.json process
(so capabilities, rlimits, noNewPrivileges, apparmor and the user come with it,
as docker's exec takes them from the container's spec) with exec's overrides,
and runs `runc exec --process`.  Three ways to wait, as run has:

- foreground without a tty: runc passes our stdio to the process and returns
  its exit code (128+n for a signal); signals sent to us are forwarded;
- `-t`: runc hands the pty master over a console socket only when it detaches,
  so, as run -t does, we become a child subreaper, `runc exec --detach`, relay
  the pty and reap the process, adopted when runc exits;
- `-d`: `runc exec --detach` with stdio on /dev/null; we return once it runs.

runc prints its own failure on stderr too (it shares the process's stdio);
callers check the command beforehand (spec.check_command's lookup) so that the
common failures are reported before runc runs, with docker's text alone.

Each exec gets a private scratch directory in its container's directory,
`exec-<pid>-<hex>` (process.json, runc's log, the console socket), removed when
it ends; one whose maker was killed goes with the next exec into the container
(`ExecDir` sweeps them) or with the container.  Not under the store's tmp/: a
health probe every interval would make every command run the store's recovery.
"""

from __future__ import annotations

import os

from lamina.errors import RuntimeFailure

# runtime/process.py (signal, hence enum) is imported by the functions that start processes:
# `ps` and `inspect` come here for `frozen` and `running_execs` only.

# docker's caps.GetAllCapabilities() for `exec --privileged`: every capability this kernel has.
_CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)


def all_capabilities() -> list[str]:
    """The capabilities the running kernel knows (cap_last_cap), in kernel order."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 40
    return list(_CAP_NAMES[: last + 1])


def exec_process(config: dict, *, args, env, cwd: str, user=None, tty: bool = False,
                 console_size: tuple[int, int] | None = None, privileged: bool = False) -> dict:
    """The process.json of an exec: the container's config.json `process` with exec's
    args, env (final, as runc gets it), cwd and terminal; `user` (runtime.rootfs.UserIds)
    when -u was given.  A non-root process keeps the bounding set only (spec.build_spec's
    rule); --privileged gets every capability, as docker's exec does (never inheritable
    or ambient ones: CVE-2022-29162)."""
    process = dict(config.get("process") or {})
    process.update({"args": list(args), "env": list(env), "cwd": cwd, "terminal": tty})
    process.pop("consoleSize", None)
    if tty and console_size:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    if user is not None:
        process["user"] = {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)}
    caps = dict(process.get("capabilities") or {})
    if privileged or user is not None:
        bounding = all_capabilities() if privileged else list(caps.get("bounding") or [])
        active = bounding if privileged or process["user"].get("uid", 0) == 0 else []
        caps = {"bounding": bounding, "effective": active, "permitted": active, "inheritable": [], "ambient": []}
        process["capabilities"] = caps
    return process


def bind_views(config: dict) -> tuple[tuple[str, str], ...]:
    """(destination, source) of a config.json's bind mounts, in runc's order (rootfs lookups)."""
    return tuple((m.get("destination", ""), m.get("source", "")) for m in config.get("mounts") or ()
                 if m.get("type") == "bind")


def cwd_problem(config: dict, cwd: str) -> str | None:
    """Why runc could not chdir to `cwd` in the container of `config` ("no such file or
    directory", "not a directory"), or None (also when only runc can tell: a cwd on a
    mount of its own making, /dev, /proc, a tmpfs, is left to it)."""
    from lamina.runtime.rootfs import _MountView

    for m in config.get("mounts") or ():
        dest = (m.get("destination") or "").rstrip("/")
        if m.get("type") != "bind" and (cwd == dest or cwd.startswith(dest + "/")):
            return None
    rootfs = (config.get("root") or {}).get("path")
    if not rootfs:
        return None
    try:
        st = os.stat(_MountView(rootfs, bind_views(config)).resolve(cwd))
    except (OSError, RuntimeFailure) as e:
        return os.strerror(e.errno).lower() if isinstance(e, OSError) and e.errno else None
    import stat

    return None if stat.S_ISDIR(st.st_mode) else "not a directory"


class ExecDir:
    """`<work_dir>/exec-<pid>-<hex>/`: an exec's process.json, runc log and console socket,
    removed on exit; those of killed execs are swept on entry."""

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.exec_id = os.urandom(32).hex()  # docker's exec ID: inspect's ExecIDs while it runs
        self.path = os.path.join(work_dir, f"exec-{os.getpid()}-{self.exec_id}")

    def __enter__(self) -> ExecDir:
        from lamina.store.db import pid_alive

        for name in os.listdir(self.work_dir):
            parts = name.split("-")
            if parts[0] == "exec" and len(parts) == 3 and parts[1].isdigit() and not pid_alive(int(parts[1])):
                _remove(os.path.join(self.work_dir, name))
        os.mkdir(self.path, 0o700)
        return self

    def __exit__(self, *exc: object) -> None:
        _remove(self.path)


def running_execs(work_dir: str) -> list[str]:
    """IDs of the execs under way in a container (their scratch directories, makers alive)."""
    from lamina.store.db import pid_alive

    try:
        names = os.listdir(work_dir)
    except OSError:
        return []
    out = []
    for name in names:
        parts = name.split("-")
        if parts[0] == "exec" and len(parts) == 3 and parts[1].isdigit() and pid_alive(int(parts[1])):
            out.append(parts[2])
    return out


def _remove(path: str) -> None:
    """An exec's scratch directory: flat, its files ours."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def run_exec(runtime, container_id: str, process: dict, *, work_dir: str, interactive: bool = False,
             detach: bool = False, stdout: int = 1, stderr: int = 2, timeout: float | None = None,
             stdin: int = 0, on_pid=None, detach_keys: bytes = b"") -> int:
    """Run `process` in container `container_id` through `runtime` (a CliRuntime); its
    exit code as docker reports it (0 at once for `detach`).  With a tty, `on_pid(pid)`
    learns the process once it runs (the API's exec resize reaches its tty by it).  Raises RuntimeFailure
    (ContainerCommandNotFound / ...NotExecutable) with runc's message when runc
    could not start it, and TimeoutError once the process, still running after
    `timeout` seconds (a health probe's), has been killed."""
    from lamina.runtime.process import ForwardSignals, kill_and_reap, raise_if_failed, spawn
    from lamina.leanjson import dumps

    if detach and process.get("terminal"):  # nobody reads a detached exec's tty: run it without one
        process = dict(process, terminal=False)
    with ExecDir(work_dir) as d:
        spec = os.path.join(d.path, "process.json")
        fd = os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, dumps(process, separators=(",", ":")).encode())
        finally:
            os.close(fd)
        log = os.path.join(d.path, "runtime.log")
        argv = [runtime.path, f"--root={runtime.state_root}", f"--log={log}", "--log-format=json",
                "exec", "--process", spec]
        if process.get("terminal") and not detach:
            return _exec_tty(argv, container_id, d.path, log, interactive=interactive, stdout=stdout, stdin=stdin,
                             on_pid=on_pid, detach_keys=detach_keys)
        if detach:
            devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            try:
                pid = spawn([*argv, "--detach", container_id], stdin=None, stdout=devnull, stderr=devnull)
            finally:
                os.close(devnull)
            raise_if_failed(_wait(pid), log, f"{runtime.name} exec")
            return 0
        pidfile = os.path.join(d.path, "exec.pid")
        if timeout is not None:
            argv += ["--pid-file", pidfile]
        pid = spawn([*argv, container_id], stdin=stdin if interactive else None, stdout=stdout, stderr=stderr)
        try:
            with ForwardSignals(pid):
                code = _wait(pid) if timeout is None else _wait_for(pid, timeout, pidfile)
            pid = None
        except TimeoutError:
            pid = None  # _wait_for has reaped runc
            raise
        finally:
            if pid is not None:
                kill_and_reap(pid)
        if code == 255 or code == 1:  # runc's own failures; only its log tells them from the process's
            from lamina.runtime.runcerrors import runtime_error

            failure = runtime_error(log)
            if failure is not None:
                raise failure
        return code


def _wait(pid: int) -> int:
    """A child's exit code as docker reports it (128+n for a signal)."""
    from lamina.runtime.process import exit_code

    return exit_code(os.waitpid(pid, 0)[1])


def _wait_for(runc: int, timeout: float, pidfile: str) -> int:
    """runc's exit code, or TimeoutError after killing the process it runs when that
    outlives `timeout`.  runc is then left a moment to reap it: killed first, it would
    leave the process a zombie of whoever is the subreaper (a monitor)."""
    import select

    from lamina.runtime.process import kill_and_reap, read_pid

    fd = os.pidfd_open(runc)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if poller.poll(max(0, int(timeout * 1000))):
            return _wait(runc)
        # Killing the runtime would not end the process: kill its process group, children
        # and all.  runc makes the process a session (and group) leader; crun puts it in a
        # group of a helper's (which has exited), never ours, and lives on to reap it.
        try:
            group = os.getpgid(read_pid(pidfile))
            if group != os.getpgrp():
                os.killpg(group, 9)
        except (OSError, RuntimeFailure):
            pass  # not started yet, or gone meanwhile
        if poller.poll(2000):
            _wait(runc)
            runc = None
    finally:
        os.close(fd)
    if runc is not None:
        kill_and_reap(runc)
    raise TimeoutError(f"exec exceeded {timeout}s")


def _exec_tty(argv: list[str], container_id: str, scratch: str, log: str, *, interactive: bool,
              stdout: int, stdin: int = 0, on_pid=None, detach_keys: bytes = b"") -> int:
    from lamina.runtime import console
    from lamina.runtime.detachkeys import Detached, keep_open
    from lamina.runtime.process import (ForwardSignals, Subreaper, adopt, exit_code, kill_and_reap, raise_if_failed,
                                        read_pid, spawn)

    pidfile = os.path.join(scratch, "exec.pid")
    with console.ConsoleSocket(scratch) as sock, Subreaper():
        runc = spawn([*argv, "--detach", "--console-socket", sock.path, "--pid-file", pidfile, container_id],
                     stdin=None)
        proc = None
        try:
            with ForwardSignals(runc) as forward:
                code = _wait(runc)
                runc = None
                raise_if_failed(code, log, "exec")
                proc = forward.pid = read_pid(pidfile)
                adopt(proc)
                forward.same_group = False
                if on_pid is not None:
                    on_pid(proc)
                master = sock.receive_master()
                try:
                    status = console.relay(master, proc, interactive=interactive, stdin_fd=stdin, stdout_fd=stdout,
                                           detach_keys=detach_keys)
                except Detached:  # the process goes on, its terminal held by a process of its own
                    keep_open(master)
                    proc = None
                    raise
                finally:
                    os.close(master)
                proc = None
        finally:
            if runc is not None:
                kill_and_reap(runc)
            if proc is not None:  # relay failed: the process is ours to end and reap
                kill_and_reap(proc)
    return exit_code(status)


# ---------------------------------------------------------------------- freezer and pids


# A runtime's state file in `<state root>/<id>/`, and its field naming the container's
# init: runc's, crun's.
STATE_FILES = (("state.json", "init_process_pid"), ("status", "pid"))


def has_container(runtime, container_id: str) -> bool:
    """Whether the runtime holds a created container of that id: its state file is written
    once `create` is done, the directory before."""
    base = os.path.join(runtime.state_root, container_id)
    return any(os.path.exists(os.path.join(base, name)) for name, _ in STATE_FILES)


def pause(runtime, container_id: str) -> None:
    _runc(runtime, "pause", container_id)


def resume(runtime, container_id: str) -> None:
    _runc(runtime, "resume", container_id)


def pids(runtime, container_id: str) -> list[int]:
    """Host pids of every process of the container (its cgroup's), as `runc ps` lists them."""
    out = _runc(runtime, "ps", "--format", "json", container_id)
    from lamina.leanjson import loads

    try:
        value = loads(out or b"[]")
    except ValueError:
        raise RuntimeFailure(f"{runtime.name} ps {container_id}: unreadable output") from None
    return [int(p) for p in value or []]


def _runc(runtime, *args: str) -> bytes:
    from lamina.runtime.process import capture

    rc, out, err = capture([runtime.path, f"--root={runtime.state_root}", *args])
    if rc != 0:
        from lamina.runtime.runcerrors import last_line

        raise RuntimeFailure(f"{runtime.name} {args[0]} {args[-1]}: {last_line(err)}")
    return out


def cgroups_path(container_id: str) -> str:
    """The cgroup runner.run_container gives every container (config.json cgroupsPath)."""
    return f"/lamina/{container_id}"


def frozen(cgroups_path: str) -> bool:
    """Whether the freezer holds the cgroup at `cgroups_path` (config.json's cgroupsPath,
    e.g. /lamina/<id>): a file read, no process, so `ps` and `inspect` can ask per row."""
    from lamina.runtime.cgroups import container_dir, unified

    if unified():
        name, paused = "cgroup.freeze", (b"1",)
    else:
        name, paused = "freezer.state", (b"FROZEN", b"FREEZING")
    try:
        with open(os.path.join(container_dir(cgroups_path, "freezer"), name), "rb") as f:
            return f.read().strip() in paused
    except OSError:
        return False
