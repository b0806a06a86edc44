"""GET/HEAD/PUT /containers/{id}/archive (docker cp): a path's stat in the
X-Docker-Container-Path-Stat header (base64 of its JSON), its tar, or a tar put in."""

from __future__ import annotations

import base64
import json

from lamina.api.server import ClientGone, HTTPError


def _path(request) -> str:
    path = request.q("path")
    if not path:
        raise HTTPError(400, "path is required")  # dockerd: "Bad parameters"
    return path


def _header(stat: dict) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


def head(request, id: str) -> None:  # noqa: A002 - dockerd's path parameter
    from lamina.engine.archive import stat_path

    stat = stat_path(request.system, id, _path(request))
    request.send_bytes(200, b"", content_type="text/plain; charset=utf-8",
                       headers={"X-Docker-Container-Path-Stat": _header(stat)})


def get(request, id: str) -> None:  # noqa: A002
    from lamina.api.containers import _FdWriter
    from lamina.engine.archive import get_archive

    def begin(stat: dict):
        request.close_connection = True
        request._headers(200, {"Content-Type": "application/x-tar", "Connection": "close",
                               "X-Docker-Container-Path-Stat": _header(stat)})
        request.wfile.flush()
        request.connection.settimeout(None)
        return _FdWriter(request.connection.fileno())

    try:
        get_archive(request.system, id, _path(request), begin)
    except (BrokenPipeError, ConnectionResetError) as e:
        raise ClientGone(str(e)) from None


def put(request, id: str) -> None:  # noqa: A002
    from lamina.engine.archive import put_archive

    body = request.body()
    try:
        put_archive(request.system, id, _path(request), body,
                    no_overwrite_dir_non_dir=request.q_bool("noOverwriteDirNonDir"),
                    copy_uid_gid=request.q_bool("copyUIDGID"))
    except BaseException:
        request.close_connection = True  # refused before (or while) the upload was read: its rest is no request
        _drain(request, body)
        raise
    request.send_bytes(200, b"", content_type="text/plain; charset=utf-8")


_DRAIN_LIMIT = 256 * 1024  # what Go's net/http reads of an unread body before it answers


def _drain(request, body) -> None:
    """Read some of a refused upload's rest, as dockerd's HTTP server does: a client
    still sending a small tar then reads the answer (`No such container:path`)
    instead of a broken pipe."""
    try:
        request.connection.settimeout(2.0)
        left = _DRAIN_LIMIT
        while left > 0:
            chunk = body.read(min(65536, left))
            if not chunk:
                return
            left -= len(chunk)
    except Exception:  # noqa: BLE001 - best effort (a cut or malformed rest): the refusal is the answer
        pass
