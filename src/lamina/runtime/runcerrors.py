"""What a failed runtime command said, as the error docker reports for it.

runc (and crun) log their failures as JSON lines (`--log-format json`) or logrus
text on stderr; dockerd turns "executable file not found" into 127, "permission
denied" into 126 (translateContainerdStartErr) and a file bound onto a directory
into a hint.  Imported only when a runtime command failed (or a foreground container
exited 1, runc's own failure code: only its log tells the two apart).
"""

from __future__ import annotations

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


def is_missing(err: bytes) -> bool:
    """Whether runc ("container does not exist") or crun ("error opening file
    `<root>/<id>/status`: No such file or directory") said the container is unknown."""
    return b"does not exist" in err or b"/status`: No such file or directory" in err


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
