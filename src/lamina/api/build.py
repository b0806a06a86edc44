"""POST /build: the classic builder's endpoint over engine/build.py.

The context is the request body (a tar, any compression); the log comes back as
dockerd's `{"stream": …}` messages, then `{"aux": {"ID": …}}` and the
`Successfully built/tagged` lines (docker-py finds the image ID in those).

Each build runs in a process of its own (api/buildworker.py: a RUN step's output
reaches the build through the process's fds 1 and 2), so builds run side by side
and each client gets only its own build's output.  Here: the query checked and
turned into the worker's options (dockerd's 400s before anything is read), the body
fed to the worker's stdin, its log pipe turned into stream messages, and its
outcome (a pipe of its own) into the closing messages.  A client that goes away closes the log
pipe: the build stops at its next log line (the running step finishes first).
"""

from __future__ import annotations

import json
import os
import threading

from lamina.api.server import ClientGone, HTTPError


def _options(request) -> dict:
    """The build's options as the worker takes them (buildworker.options_from), checked."""
    if request.q("remote"):
        raise HTTPError(400, "remote build contexts (URLs, git) are not supported")
    network = request.q("networkmode") or "default"
    spec = dict(
        dockerfile=request.q("dockerfile") or None, tags=[t for t in request.q_all("t") if t],
        build_args={k: v for k, v in (request.q_json("buildargs", {}) or {}).items() if v is not None},
        target=request.q("target") or None, no_cache=request.q_bool("nocache"), pull=request.q_bool("pull"),
        quiet=request.q_bool("q"), labels=request.q_json("labels", {}) or {},
        network="default" if network == "bridge" else network,
        platform=_platform(request.q("platform") or ""), extra_hosts=_extra_hosts(request.q_all("extrahosts")),
        cache_images=_cache_images(request.q_json("cachefrom", [])))
    return spec


def _cache_images(value) -> list[str]:
    """`cachefrom`: a JSON array of image names (classic: steps are taken from them)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HTTPError(400, "invalid cachefrom parameter: want a JSON array of image names")
    return [v for v in value if v]


def _platform(wanted: str) -> str | None:
    """`os[/arch[/variant]]`: another architecture builds through the builder's
    --platform support (its RUN steps under qemu); None for the host's."""
    if not wanted:
        return None
    from lamina.errors import LaminaError
    from lamina.transfer.platforms import host_platform, parse_platform

    os_name, _, rest = wanted.strip().lower().partition("/")
    if os_name != "linux":
        raise HTTPError(400, f'"{wanted}": operating system is not supported')
    if not rest:
        return None  # "linux": the host's architecture
    try:
        plat = parse_platform(wanted)
    except LaminaError:
        raise HTTPError(400, f'"{wanted}": cannot parse platform specifier: invalid argument') from None
    return None if plat == host_platform() else str(plat)


def _extra_hosts(values: list[str]) -> list[str]:
    """`extrahosts=NAME:IP` (repeated: the Go CLI's --add-host, docker-py's extra_hosts)."""
    from lamina.network.options import valid_add_host

    for value in values:
        problem = valid_add_host(value)
        if problem:
            raise HTTPError(400, problem)
    return [v for v in values if v]


def build(request) -> None:
    import subprocess
    import sys

    spec = _options(request)
    server = request.server
    spec.update(root=server.root, storage_driver=server.storage_driver, runtime=server.runtime)
    body = _TarEnd(request.body())
    stream = request.stream_json()
    result_r, result_w = os.pipe()
    spec["result_fd"] = result_w
    try:
        worker = subprocess.Popen([sys.executable, "-m", "lamina.api.buildworker", json.dumps(spec)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(result_w,), bufsize=0)
    except BaseException:
        os.close(result_r)
        raise
    finally:
        os.close(result_w)
    with os.fdopen(result_r, "rb") as result:
        feeder = threading.Thread(target=_feed, args=(body, worker.stdin, request), name="lamina-build-context",
                                  daemon=True)
        feeder.start()
        gone = _relay(worker.stdout, stream)
        answer = result.read()
    worker.wait()
    feeder.join()
    if gone:
        raise ClientGone("client went away during the build")
    outcome = json.loads(answer) if answer.strip() else {"error": "the build stopped unexpectedly",
                                                         "http_status": 500}
    if "error" in outcome:
        stream.fail(_Failed(outcome))
        stream.close()
        return
    if spec["quiet"]:
        stream.write({"stream": outcome["id"] + "\n"})
    else:
        stream.write({"aux": {"ID": outcome["id"]}})
        stream.write({"stream": f"Successfully built {outcome['id'][7:19]}\n"})
        for name in outcome["tags"]:
            stream.write({"stream": f"Successfully tagged {name}\n"})
    stream.close()


class _Failed(Exception):
    """The worker's error, with the status and exit code stream.fail reads."""

    def __init__(self, outcome: dict) -> None:
        super().__init__(outcome["error"])
        self.http_status = outcome.get("http_status") or 500
        self.exit_code = outcome.get("exit_code") or 1


def _feed(body, sink, request) -> None:
    """The context into the worker's stdin; what it does not read is left unread (the
    connection then closes: its rest cannot be parsed as the next request)."""
    try:
        while True:
            data = body.read(65536)
            if not data:
                break
            sink.write(data)
    except (OSError, ValueError, HTTPError):
        request.close_connection = True
    finally:
        try:
            sink.close()
        except OSError:
            pass


def _relay(log, stream) -> bool:
    """The worker's log lines as stream messages until it closes its end; True when the
    client went away (the pipe is closed then: the worker's next line fails)."""
    partial = b""
    try:
        while True:
            data = log.read(65536)
            if not data:
                break
            *lines, partial = (partial + data).split(b"\n")
            for line in lines:
                if line.startswith(b"Sending build context to Docker daemon"):
                    continue  # the client said that already: it sent the context
                stream.write({"stream": line.decode("utf-8", "replace") + "\n"})
        if partial:
            stream.write({"stream": partial.decode("utf-8", "replace")})
        return False
    except ClientGone:
        return True
    finally:
        log.close()


class _TarEnd:
    """The context body, with the end a tar should have.  The Go CLI sends a context whose
    Dockerfile lies outside it (`-f ../x`) through a tar rewriter that stops right after
    the last entry's data: no padding, no end-of-archive blocks (Go's reader, dockerd's,
    takes that).  An uncompressed tar gets them added; anything else passes as is."""

    def __init__(self, body) -> None:
        self._body = body
        self._head = body.read(512)
        self._plain = self._head[257:262] == b"ustar"  # an uncompressed tar (not a bare Dockerfile)
        self._count = 0
        self._tail: bytes | None = None

    def read(self, n: int = -1) -> bytes:
        everything = n is None or n < 0
        out = b""
        if self._head:
            cut = len(self._head) if everything else min(n, len(self._head))
            out, self._head = self._head[:cut], self._head[cut:]
        if self._tail is None:
            want = -1 if everything else n - len(out)
            more = self._body.read(want) if want else b""
            self._count += len(out) + len(more)
            out += more
            if everything or (want and not more):  # the body ended
                self._tail = b"\0" * (-self._count % 512) + b"\0" * 1024 if self._plain else b""
            if not (everything or (want and not more)):
                return out
        elif out:
            return out
        cut = len(self._tail) if everything else min(n - len(out), len(self._tail))
        out, self._tail = out + self._tail[:cut], self._tail[cut:]
        return out

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

