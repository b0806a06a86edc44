"""POST /build: the classic builder's endpoint over engine/build.py.

The context is the request body (a tar, any compression); the log comes back as
dockerd's `{"stream": …}` messages, then `{"aux": {"ID": …}}` and the
`Successfully built/tagged` lines (docker-py finds the image ID in those).

A RUN step's output reaches the build through file descriptors 1 and 2 (the runtime
inherits them: builder/runstep.py points them at the build's stream), which are the
process's: so the service runs one build at a time (`_BUILDS`), with fd 1 on a pipe
for the whole build, and sends the log through the same pipe so that the builder's
lines and RUN's output keep their order.  A client that goes away stops the build
at its next log line (ClientGone unwinds it; the running step finishes first).
"""

from __future__ import annotations

import os
import threading

from lamina.api.server import ClientGone, HTTPError

_BUILDS = threading.Lock()


def _options(request):
    from lamina.engine.build import BuildOptions

    if request.q("remote"):
        raise HTTPError(400, "remote build contexts (URLs, git) are not supported")
    network = request.q("networkmode") or "default"
    wanted = request.q("platform")
    if wanted:
        import platform

        from lamina.api.system import _ARCH

        arch = _ARCH.get(platform.machine(), platform.machine())
        if wanted.lower() not in ("linux", f"linux/{arch}") and not wanted.lower().startswith(f"linux/{arch}/"):
            raise HTTPError(400, f"platform {wanted} is not supported: lamina builds for linux/{arch}")
    return BuildOptions(
        path="-", dockerfile=request.q("dockerfile") or None, tags=tuple(t for t in request.q_all("t") if t),
        build_args={k: v for k, v in (request.q_json("buildargs", {}) or {}).items() if v is not None},
        target=request.q("target") or None, no_cache=request.q_bool("nocache"), pull=request.q_bool("pull"),
        quiet=request.q_bool("q"), labels=request.q_json("labels", {}) or {},
        network="default" if network == "bridge" else network)


def build(request) -> None:
    from lamina.engine.build import build as engine_build

    options = _options(request)
    system = request.system
    body = _TarEnd(request.body())
    stream = request.stream_json()
    with _BUILDS:
        relay = _Relay(stream)
        outcome = None
        error = None
        try:
            outcome = engine_build(system, options, out=relay.out, stdin=body)
        except ClientGone:
            raise
        except Exception as e:  # noqa: BLE001 - reported on the stream
            error = e
        finally:
            relay.finish()
        if relay.gone:
            raise ClientGone("client went away during the build")
    if error is not None:
        if not isinstance(error, _lamina_error()):
            import traceback

            traceback.print_exception(error)
        stream.fail(error)
        stream.close()
        return
    if options.quiet:
        stream.write({"stream": outcome.image_id + "\n"})
    else:
        stream.write({"aux": {"ID": outcome.image_id}})
        stream.write({"stream": f"Successfully built {outcome.image_id[7:19]}\n"})
        for name in outcome.tags:
            stream.write({"stream": f"Successfully tagged {name}\n"})
    stream.close()


def _lamina_error():
    from lamina.errors import LaminaError

    return LaminaError


class _Relay:
    """fd 1 on a pipe for the build; a thread turns what comes out into stream messages."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.gone = False
        read_end, write_end = os.pipe()
        self._saved = os.dup(1)
        os.dup2(write_end, 1)
        os.close(write_end)
        self.out = _Out(self)
        self._reader = threading.Thread(target=self._pump, args=(read_end,), name="lamina-build-log", daemon=True)
        self._reader.start()

    def _pump(self, fd: int) -> None:
        partial = b""
        with os.fdopen(fd, "rb", buffering=0) as f:
            while True:
                data = f.read(65536)
                if not data:
                    break
                if self.gone:
                    continue  # keep draining: the build must not block on a full pipe
                *lines, partial = (partial + data).split(b"\n")
                try:
                    for line in lines:
                        if line.startswith(b"Sending build context to Docker daemon"):
                            continue  # the client said that already: it sent the context
                        self.stream.write({"stream": line.decode("utf-8", "replace") + "\n"})
                except ClientGone:
                    self.gone = True
        if partial and not self.gone:
            try:
                self.stream.write({"stream": partial.decode("utf-8", "replace")})
            except ClientGone:
                self.gone = True

    def finish(self) -> None:
        os.dup2(self._saved, 1)  # the pipe's last write end closes: the reader sees EOF
        os.close(self._saved)
        self._reader.join()


class _Out:
    """The build log's text stream: writes go to fd 1 (the pipe), in order with RUN's output."""

    def __init__(self, relay: _Relay) -> None:
        self._relay = relay

    def write(self, text: str) -> int:
        if self._relay.gone:
            raise ClientGone("client went away during the build")
        data = text.encode()
        while data:
            data = data[os.write(1, data):]
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


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

