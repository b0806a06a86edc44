"""What a failed runtime command said, as the error docker reports for it.

runc (and crun) log their failures as JSON lines (`--log-format json`) or logrus
text on stderr; dockerd turns "executable file not found" into 127, "permission
denied" into 126 (translateContainerdStartErr) and a file bound onto a directory
into a hint.  Imported only when a runtime command failed (or a foreground container
exited 1, runc's own failure code: only its log tells the two apart).
"""

from __future__ import annotations

import os

from lamina.errors import ContainerCommandNotExecutable, ContainerCommandNotFound, RuntimeFailure


def runtime_error(log_path: str) -> RuntimeFailure | None:
    """The error the runtime logged (json lines), as the LaminaError docker's exit code implies."""
    try:
        with open(log_path, "rb") as f:
            lines = f.read(1 << 20).splitlines()
    except OSError:
        return None
    import json  # a failed start only

    message = None
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            message = str(entry.get("msg", ""))
    if message is None:
        return None
    for prefix in ("runc run failed: ", "runc create failed: "):
        message = message.removeprefix(prefix)
    message = _as_runcs(message, log_path)
    message = _go_errno_text(message)
    # Docker's translateContainerdStartErr: command missing -> 127, EACCES -> 126, else 125.
    if 'exec: "' in message and ("executable file not found" in message or "no such file or directory" in message):
        return ContainerCommandNotFound(message)
    if "not a directory" in message:  # a bind of a file onto a directory, or the reverse
        from lamina.errors import MountTypeMismatch

        return MountTypeMismatch(f"{message}: Are you trying to mount a directory onto a file (or vice-versa)? "
                                 "Check if the specified host path exists and is the expected type")
    if "permission denied" in message:
        return ContainerCommandNotExecutable(message)
    return RuntimeFailure(message)


def _go_errno_text(message: str) -> str:
    """crun ends a failed call's message with C's strerror ("...: No such file or
    directory"); runc with Go's text for the same errno, lower-case ("no such file or
    directory"), which dockerd matches on and docker prints."""
    head, sep, tail = message.rpartition(": ")
    if sep and tail[:1].isupper() and tail in {os.strerror(n) for n in range(1, 134)}:
        return f"{head}{sep}{tail[0].lower()}{tail[1:]}"
    return message


def _as_runcs(message: str, log_path: str) -> str:
    """crun's failure in runc's words, which docker prints (and callers look for): crun logs
    "executable file `X` not found in $PATH: No such file or directory" (a path too) and
    "open executable: Permission denied" (or "Operation not permitted": a directory) with
    no command, read then from the process.json (exec) or config.json (run) beside the log."""
    if message.startswith("executable file `") and " not found in $PATH" in message:
        command = message[len("executable file `"):].split("`", 1)[0]
        problem = f"stat {command}: no such file or directory" if "/" in command else "executable file not found in $PATH"
    elif message in ("open executable: Permission denied", "open executable: Operation not permitted"):
        command, problem = _command(log_path), "permission denied"
        if command is None:
            return message
    elif message.startswith("error opening file `") and message.endswith("/status`: No such file or directory"):
        # the container went (a probe racing its stop): runc's words, which callers look for
        exec_ = os.path.exists(os.path.join(os.path.dirname(log_path), "process.json"))
        return ("exec failed: " if exec_ else "") + "container does not exist"
    else:
        return message
    start = "unable to start container process: "
    if os.path.exists(os.path.join(os.path.dirname(log_path), "process.json")):
        start = "exec failed: " + start
    return f'{start}exec: "{command}": {problem}'


def _command(log_path: str) -> str | None:
    """args[0] of the process the runtime was to start (exec's process.json, else the bundle's config.json)."""
    from lamina.leanjson import loads

    directory = os.path.dirname(log_path)
    for name, key in (("process.json", None), ("config.json", "process")):
        try:
            with open(os.path.join(directory, name), "rb") as f:
                value = loads(f.read())
        except (OSError, ValueError):
            continue
        args = ((value.get(key) if key else value) or {}).get("args") or [None]
        return args[0]
    return None


def is_missing(err: bytes) -> bool:
    """Whether runc ("container does not exist") or crun said the container is unknown:
    crun names the piece of its state it could not find, "error opening file
    `<root>/<id>/status`", or, when another delete won the race, "cannot rm state
    directory `<root>/<id>`" or "cannot open directory '<root>/<id>'", each ending
    ": No such file or directory"."""
    if b"does not exist" in err:
        return True
    return any(line.rstrip().endswith(b": No such file or directory") and any(
        what in line for what in (b"/status`: ", b"cannot rm state directory `", b"cannot open directory '"))
        for line in err.splitlines())


def last_line(err: bytes) -> str:
    lines = err.decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return "failed"
    line = lines[-1]
    try:  # runc without --log-format json prints logrus text: keep its msg
        if 'msg="' in line:
            line = line.split('msg="', 1)[1].rsplit('"', 1)[0]
    except IndexError:
        pass
    return line
