"""Operations on a running container's processes: exec, top, pause, unpause.

They work on any running container, whoever keeps it (a foreground front or a
detached container's monitor): the runtime's state and the bundle's config.json
are all they need.  Docker's texts: a container that is not running, paused or
not paused is a Conflict naming its full ID (exec into a paused one names it as
given); an exec that cannot start raises ExecFailed with the text docker prints
on the exec's stdout (126, 127 for a command that is not found).
"""

from __future__ import annotations

import os

from lamina.errors import Conflict, ExecFailed, LaminaError, RuntimeFailure
from lamina.record import record

_OCI_PREFIX = "OCI runtime exec failed: "


@record
class ExecOptions:
    """What `docker exec` flags can change about the process (a @record, as RunOptions)."""

    cmd: tuple[str, ...]
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    user: str | None = None       # None: the container's user
    workdir: str | None = None    # None: the container's WorkingDir
    env: tuple[str, ...] = ()     # K=V, over the container's Env
    privileged: bool = False
    detach_keys: bytes = b""      # -it: typed, the client leaves (runtime/detachkeys.Detached), the process goes on


def is_paused(system, rec) -> bool:
    """Whether container `rec` is paused (its cgroup frozen): a file read, no process.
    For `ps` (`Up X (Paused)`) and `inspect` (State.Paused, Status "paused")."""
    if not rec.running:
        return False
    from lamina.runtime.execproc import cgroups_path, frozen

    return frozen(cgroups_path(rec.id))


def exec_ids(system, rec) -> list[str] | None:
    """inspect's ExecIDs: the execs (health probes too) under way in it, or None (docker's null)."""
    if not rec.running:
        return None
    from lamina.runtime.execproc import running_execs

    return running_execs(system.containers.path(rec.id)) or None


def _running(system, rec):
    """The runtime that runs `rec`, or Conflict when nothing runs it (a record saying
    running while its runtime holds no state is a front still starting it)."""
    if rec.running:
        from lamina.recovery import runtime_for
        from lamina.runtime.execproc import has_container

        runtime = runtime_for(system, rec)
        if has_container(runtime, rec.id):
            return runtime
    if rec.state == "restarting":  # between two runs of its restart policy
        raise Conflict(f"Container {rec.id} is restarting, wait until the container is running")
    raise Conflict(f"Container {rec.id} is not running")


# ---------------------------------------------------------------------- exec


def exec_container(system, name: str, opts: ExecOptions, *, console_size: tuple[int, int] | None = None,
                   stdio: tuple[int, int, int] = (0, 1, 2), on_pid=None) -> int:
    """Run `opts.cmd` in running container `name`; its exit code (0 at once with detach).

    The process inherits the container's process (capabilities, rlimits,
    noNewPrivileges, user) from its bundle's config.json; env is the container's
    Env (docker's daemon environment for exec's tty) with `opts.env` over it; cwd
    and user as docker's exec picks them.  `stdio`: the fds it reads and writes (the API
    service's pipes; a tty exec writes stdout only); `on_pid`: run_exec's."""
    rec = system.containers.resolve(name)
    runtime = _running(system, rec)
    if is_paused(system, rec):
        raise Conflict(f"Container {name} is paused, unpause the container before exec")
    config = _bundle_config(system, rec)
    process = _process(config, rec.config, opts, console_size)
    from lamina.runtime.execproc import run_exec

    try:
        return run_exec(runtime, rec.id, process, work_dir=system.containers.path(rec.id),
                        interactive=opts.interactive, detach=opts.detach,
                        stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], on_pid=on_pid,
                        detach_keys=opts.detach_keys)
    except RuntimeFailure as e:
        raise _exec_failed(str(e), e.exit_code) from None


def _bundle_config(system, rec) -> dict:
    from lamina.leanjson import loads

    path = os.path.join(system.containers.path(rec.id), "bundle", "config.json")
    try:
        with open(path, "rb") as f:
            return loads(f.read())
    except (OSError, ValueError):
        raise Conflict(f"Container {rec.id} is not running") from None


def _process(config: dict, cfg: dict, opts: ExecOptions, console_size) -> dict:
    """process.json for the exec, after the checks docker's exec makes before the process
    starts (user, cwd, the command's lookup), each failing with docker's text."""
    from lamina.runtime.execproc import bind_views, cwd_problem, exec_process
    from lamina.runtime.rootfs import find_executable, lookup_user
    from lamina.runtime.spec import container_env

    if not opts.cmd:
        raise ExecFailed(_OCI_PREFIX + "exec failed: unable to start container process: exec: \"\": "
                         "executable file not found in $PATH: unknown", 127)
    env = container_env(tuple(cfg.get("Env") or ()) + tuple(opts.env), cfg.get("Hostname") or "", opts.tty)
    cwd = opts.workdir or cfg.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise ExecFailed(_OCI_PREFIX + "exec failed: Cwd must be an absolute path: unknown")
    rootfs = (config.get("root") or {}).get("path") or "/nonexistent"
    user = None
    if opts.user:  # docker resolves -u in the container's files (daemon's getUser): bare text
        try:
            user = lookup_user(rootfs, opts.user)
        except LaminaError as e:
            raise ExecFailed(str(e)) from None
    path = next((e[5:] for e in env if e.startswith("PATH=")), None)
    # what runc would report, checked before it runs (it would print its own line on stderr too)
    problem = cwd_problem(config, cwd)
    if problem:
        raise _exec_failed(f'exec failed: unable to start container process: chdir to cwd ("{cwd}") set in '
                           f"config.json failed: {problem}", 126)
    try:
        find_executable(rootfs, opts.cmd[0], path, cwd, mounts=bind_views(config))
    except RuntimeFailure as e:
        raise _exec_failed("exec failed: unable to start container process: " + str(e), e.exit_code) from None
    return exec_process(config, args=opts.cmd, env=env, cwd=cwd, user=user, tty=opts.tty,
                        console_size=console_size, privileged=opts.privileged)


def _exec_failed(message: str, code: int) -> ExecFailed:
    """docker's text for a runc exec failure: containerd's `OCI runtime exec failed: …: unknown`;
    127 for a command that is not found (docker ≥ 23; 20.10's daemon says 126 for every one).
    dockerd adds its hint to a "not a directory"."""
    text = f"{_OCI_PREFIX}{message}: unknown"
    if "not a directory" in message:
        text += (": Are you trying to mount a directory onto a file (or vice-versa)? "
                 "Check if the specified host path exists and is the expected type")
    return ExecFailed(text, 127 if code == 127 else 126)


# ---------------------------------------------------------------------- top


def top(system, name: str, ps_args: str = "") -> tuple[list[str], list[list[str]]]:
    """GET /containers/{name}/top: (Titles, Processes) of `ps` on the host, only the
    container's processes, as dockerd does it (`ps -ef` unless `ps_args`)."""
    rec = system.containers.resolve(name)
    runtime = _running(system, rec)
    ps_args = ps_args or "-ef"
    _check_ps_args(ps_args)
    from lamina.runtime.execproc import pids as runtime_pids
    from lamina.runtime.process import capture

    procs = runtime_pids(runtime, rec.id)
    ps = _which("ps")
    args = ps_args.split(" ")
    rc, out, err = capture([ps, *args, "-q", ",".join(map(str, procs))]) if procs else (1, b"", b"")
    if rc != 0:  # some options (f) cannot go with -q: dockerd retries without it
        rc, out, err = capture([ps, *args])
        if rc != 0:
            first = err.decode("utf-8", "replace").split("\n", 1)[0] or f"exit status {rc}"
            raise LaminaError(f"ps: {first}")  # dockerd: the first line ps wrote, exit 1
    return _parse_ps(out.decode("utf-8", "replace"), set(procs))


def _check_ps_args(ps_args: str) -> None:
    """dockerd's validatePSArgs: `-o x=PID…` may only rename the pid column."""
    words = ps_args.replace("\t", " ").split(" ")
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if eq and value.lstrip().startswith("PID") and key and key != "pid":
            raise LaminaError(f'specifying "{key}={value}" is not allowed')


def _which(program: str) -> str:
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        candidate = os.path.join(d or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeFailure(f'exec: "{program}": executable file not found in $PATH')


def _fields(line: str) -> list[str]:
    """Go's strings.FieldsFunc on ASCII white space (dockerd's fieldsASCII)."""
    return line.replace("\t", " ").replace("\r", " ").replace("\f", " ").replace("\n", " ").split()


def _parse_ps(output: str, procs: set[int]) -> tuple[list[str], list[list[str]]]:
    """dockerd's parsePSOutput: the header's fields are the titles; a line counts when its
    PID is one of the container's (a thread line `-` follows its process); the last
    column takes what overhangs, joined by one space."""
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise LaminaError("Couldn't find PID field in ps output")
    at = titles.index("PID")
    processes: list[list[str]] = []
    keep = False
    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        if len(fields) <= at:
            continue
        if fields[at] == "-":
            if keep:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[at])
        except ValueError:
            raise LaminaError(f"Unexpected pid '{fields[at]}': strconv.Atoi: parsing "
                              f"\"{fields[at]}\": invalid syntax") from None
        keep = pid in procs
        if keep:
            processes.append(_row(fields, len(titles)))
    return titles, processes


def _row(fields: list[str], n: int) -> list[str]:
    return fields[: n - 1] + [" ".join(fields[n - 1:])]


# ---------------------------------------------------------------------- pause


def pause(system, name: str) -> None:
    """POST /containers/{name}/pause: freeze every process of it (runc pause)."""
    rec = system.containers.resolve(name)
    if not rec.running:
        raise Conflict(f"Container {rec.id} is not running")
    runtime = _running(system, rec)
    if is_paused(system, rec):
        raise Conflict(f"Container {rec.id} is already paused")
    from lamina.runtime.execproc import pause as runtime_pause

    runtime_pause(runtime, rec.id)


def unpause(system, name: str) -> None:
    """POST /containers/{name}/unpause: thaw it (runc resume)."""
    rec = system.containers.resolve(name)
    if not is_paused(system, rec):
        raise Conflict(f"Container {rec.id} is not paused")
    from lamina.recovery import runtime_for
    from lamina.runtime.execproc import resume

    resume(runtime_for(system, rec), rec.id)
