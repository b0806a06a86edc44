"""/containers/{id}/exec and /exec/{id}/…: exec instances, as dockerd keeps them.

An exec instance lives in the service's memory (dockerd's do too: they do not outlive
the daemon): created with its command, started once (hijacked, or detached), and
inspectable with its ExitCode, which is set before the hijacked stream closes (a
client reads to the end, then asks for it).  The process runs through the engine's
exec (lamina.engine.exec) with pipes for its stdio: without a tty its stdout and
stderr are framed with docker's 8-byte header; with one, the pty's bytes go raw."""

from __future__ import annotations

import os
import secrets
import select
import struct
import threading
import time

from lamina.api.server import ClientGone, HTTPError
from lamina.errors import Conflict, NotFound

_EXECS: dict[str, dict] = {}
_LOCK = threading.Lock()
_KEEP = 256  # finished instances kept for inspection (dockerd drops them with their container)


def _get(exec_id: str) -> dict:
    with _LOCK:
        inst = _EXECS.get(exec_id)
    if inst is None:
        raise NotFound(f"No such exec instance: {exec_id}")
    return inst


def create(request, id: str) -> None:  # noqa: A002 - dockerd's path parameter
    from lamina.api.createspec import _strings

    body = request.json_body({})
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: the body must be an object")
    cmd = _strings(body.get("Cmd"), "ExecConfig.Cmd")
    if not cmd:
        raise HTTPError(400, "No exec command specified")
    system = request.system
    rec = system.containers.resolve(id)
    if not rec.running:
        raise Conflict(f"Container {rec.id} is not running")
    size = body.get("ConsoleSize")
    exec_id = secrets.token_hex(32)
    inst = {
        "ID": exec_id, "Running": False, "ExitCode": None, "ContainerID": rec.id, "Pid": 0,
        "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout")),
        "OpenStderr": bool(body.get("AttachStderr")), "CanRemove": False, "DetachKeys": body.get("DetachKeys") or "",
        "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0], "arguments": list(cmd[1:]),
                          "privileged": bool(body.get("Privileged")), "user": body.get("User") or ""},
        "_env": _strings(body.get("Env"), "ExecConfig.Env"), "_workdir": body.get("WorkingDir") or None,
        "_size": tuple(size) if isinstance(size, list) and len(size) == 2 and all(size) else None,
        "_started": False,
    }
    with _LOCK:
        if len(_EXECS) >= _KEEP:  # the oldest finished ones go
            for key in [k for k, v in _EXECS.items() if v["ExitCode"] is not None][: len(_EXECS) // 2]:
                del _EXECS[key]
        _EXECS[exec_id] = inst
    request.send_json(201, {"Id": exec_id})


def inspect(request, id: str) -> None:  # noqa: A002
    inst = _get(id)
    request.send_json(200, {k: v for k, v in inst.items() if not k.startswith("_")})


def resize(request, id: str) -> None:  # noqa: A002
    """A size given before the start is the pty's first; afterwards the running process's
    tty is resized (its pid comes once runc started it: dockerd waits up to 10 s too)."""
    from lamina.api.lifecycle import atoi
    from lamina.runtime.console import resize_process_tty

    inst = _get(id)
    height, width = atoi(request.q("h") or ""), atoi(request.q("w") or "")
    if not inst["_started"]:
        inst["_size"] = (height, width)
    elif inst["ProcessConfig"]["tty"]:
        deadline = time.monotonic() + 10
        while not inst["Pid"] and inst["ExitCode"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if inst["Pid"] and inst["Running"]:
            resize_process_tty(inst["Pid"], height, width)
    request.send_bytes(200, b"", content_type="text/plain; charset=utf-8")


def start(request, id: str) -> None:  # noqa: A002
    from lamina.engine.exec import ExecOptions, exec_container

    inst = _get(id)
    body = request.json_body({}) or {}
    with _LOCK:
        if inst["_started"]:
            raise Conflict(f"Error: Exec command {id} has already run")
        inst["_started"] = True
    pc = inst["ProcessConfig"]
    tty = bool(pc["tty"])
    detach = bool(body.get("Detach"))
    opts = ExecOptions(cmd=(pc["entrypoint"], *pc["arguments"]), interactive=inst["OpenStdin"] and not detach,
                       tty=tty, detach=detach, user=pc["user"] or None, workdir=inst["_workdir"],
                       env=inst["_env"], privileged=pc["privileged"])
    system = request.system
    if detach:
        inst["Running"] = True
        try:
            exec_container(system, inst["ContainerID"], opts)
        finally:
            inst["Running"] = False
        request.send_bytes(200, b"", content_type="text/plain; charset=utf-8")
        return
    conn = request.hijack("application/vnd.docker.raw-stream" if tty
                          else "application/vnd.docker.multiplexed-stream")
    _run_attached(system, inst, opts, conn, tty)


def _run_attached(system, inst: dict, opts, conn, tty: bool) -> None:
    from lamina.engine.exec import exec_container
    from lamina.errors import LaminaError

    fds: list[int] = []
    sock = conn.sock
    lock = threading.Lock()
    try:
        in_r, in_w = os.pipe() if opts.interactive else (None, None)
        fds += [f for f in (in_r, in_w) if f is not None]
        if opts.interactive:
            threading.Thread(target=_feed, args=(conn.reader, in_w), daemon=True).start()
            fds.remove(in_w)  # the feeder closes it at the client's EOF
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        fds += [out_r, out_w, err_r, err_w]
        pump = threading.Thread(target=_pump, args=(sock, lock, {out_r: 1, err_r: 2}, tty), daemon=True)
        pump.start()
        inst["Running"] = True
        try:
            code = exec_container(system, inst["ContainerID"], opts, console_size=inst["_size"],
                                  stdio=(in_r if in_r is not None else 0, out_w, err_w),
                                  on_pid=lambda pid: inst.__setitem__("Pid", pid))
        except LaminaError as e:  # could not start: docker writes the reason on the stream
            _send(sock, lock, (str(e) + "\n").encode(), 1, tty)
            code = e.exit_code if e.exit_code not in (None, 0) else 126
        finally:
            inst["Running"] = False
        for f in (out_w, err_w):
            os.close(f)
            fds.remove(f)
        pump.join(10)  # what the process wrote before it exited
        inst["ExitCode"] = code  # before the stream closes: the client asks for it next
    finally:
        for f in fds:
            try:
                os.close(f)
            except OSError:
                pass
        try:
            sock.shutdown(2)
        except OSError:
            pass


def _send(sock, lock, data: bytes, stream: int, raw: bool) -> None:
    head = b"" if raw else struct.pack(">BxxxI", stream, len(data))
    with lock:
        try:
            sock.sendall(head + data)
        except OSError as e:
            raise ClientGone(str(e)) from None


def _pump(sock, lock, streams: dict, raw: bool) -> None:
    """The process's stdout/stderr pipes to the client until both reach EOF."""
    open_fds = dict(streams)
    alive = True
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [])
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                del open_fds[fd]
                continue
            if alive:
                try:
                    _send(sock, lock, data, open_fds[fd], raw)
                except ClientGone:
                    alive = False  # keep draining: the process must not block on a full pipe


def _feed(reader, fd: int) -> None:
    """The client's stdin into the process's pipe; EOF (the client's half-close) closes it."""
    try:
        while True:
            data = reader.read1(65536)
            if not data:
                break
            os.write(fd, data)
    except (OSError, ValueError):
        pass
    finally:
        os.close(fd)
