"""One POST /build in a process of its own: `python -m lamina.api.buildworker SPEC`.

A RUN step's output reaches its build through file descriptors 1 and 2 (the runtime
inherits them), which belong to a process, not to a thread: so each build through
the service runs here, with fd 1 on its own pipe that the service turns into that
client's stream messages (api/build.py), and two builds never see each other's
output.  A process also keeps the builder's imports and memory out of the service.

SPEC is JSON: the store (`root`, `storage_driver`, `runtime`) and the build's
options as api/build.py checked them.  The context is read from stdin.  The
outcome goes to the fd `result_fd` names as one JSON object: {"id", "tags"} or {"error", "http_status",
"exit_code"}.  A client that went away closes the log pipe: the next log line
fails with EPIPE and the build unwinds as from any error (its temporary context and
step containers are removed on the way).
"""

from __future__ import annotations

import json
import os
import sys

def options_from(spec: dict):
    """BuildOptions from the checked values api/build.py sends."""
    from lamina.engine.build import BuildOptions

    extra = {}
    if spec.get("platform"):
        from lamina.engine.platformbuild import parse_platforms

        extra["platforms"] = parse_platforms([spec["platform"]])
    return BuildOptions(
        path="-", dockerfile=spec.get("dockerfile"), tags=tuple(spec.get("tags") or ()),
        build_args=dict(spec.get("build_args") or {}), target=spec.get("target"),
        no_cache=bool(spec.get("no_cache")), pull=bool(spec.get("pull")), quiet=bool(spec.get("quiet")),
        labels=dict(spec.get("labels") or {}), network=spec.get("network") or "default",
        extra_hosts=tuple(spec.get("extra_hosts") or ()), cache_images=tuple(spec.get("cache_images") or ()),
        **extra)


class _Log:
    """The build log's text stream: straight to fd 1, in order with RUN's output there."""

    def write(self, text: str) -> int:
        data = text.encode()
        while data:
            data = data[os.write(1, data):]
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    result = os.fdopen(spec["result_fd"], "w")
    sys.stdout = _Log()  # anything printed belongs to the log too
    from lamina.errors import LaminaError

    outcome = None
    try:
        from lamina.engine.build import build
        from lamina.system import System

        system = System(spec.get("root"), storage_driver=spec.get("storage_driver"), runtime=spec.get("runtime"))
        try:
            outcome = build(system, options_from(spec), out=sys.stdout, stdin=sys.stdin.buffer)
        finally:
            system.close()
    except BrokenPipeError:
        return 1  # the client went away: nobody to tell
    except LaminaError as e:
        answer = {"error": str(e), "http_status": e.http_status, "exit_code": e.exit_code}
    except Exception as e:  # noqa: BLE001 - a bug: the service's log has the traceback, the client one line
        import traceback

        traceback.print_exc()
        answer = {"error": f"{type(e).__name__}: {e}", "http_status": 500, "exit_code": 1}
    else:
        answer = {"id": outcome.image_id, "tags": list(outcome.tags)}
    result.write(json.dumps(answer))
    result.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
