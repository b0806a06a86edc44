"""The Docker Engine API service (`lamina system service`): docker's CLI, docker-py and
the rest of the ecosystem speak to lamina's engine over a unix socket, as to dockerd.

- `listen.py`: the listening socket (unix path made 0660 root:GROUP in a root-only
  directory, a live one refused and a stale one replaced; loopback TCP; systemd's
  LISTEN_FDS) and the peer check (SO_PEERCRED: root or the granted group).
- `server.py`: connections, one thread each; requests (query values, body caps,
  header deadlines against slow-loris), responses (JSON, chunked JSON streams, raw
  streams, hijacked connections), the idle timeout.
- `framing.py`: request bodies (plain, chunked), chunked JSON streams, the hijacked
  connection, `ClientGone` and `HTTPError`.
- `routes.py`: the route table, `/vX.Y/` prefixes, docker's 404 `page not found`.
- `system.py`, `images.py`, `build.py`, `containers.py`, `events.py`: the handlers,
  each a thin translation of a request into engine calls (lamina.engine) and of
  their records into dockerd's JSON.  Nothing here imports the CLI.
- `storepool.py`: store handles kept between requests and lent again (opening one costs
  more than a `ps`).
- `buildworker.py`: one POST /build in a process of its own (RUN's output is the
  process's fds 1 and 2: so builds run side by side, each client seeing its own).

HTTP stack: the standard library (http.server's request parsing, socketserver's
ThreadingMixIn over a unix or TCP socket).  What the Engine API needs beyond plain
HTTP/1.1 is three things: bodies that arrive chunked (the Go client sends build
contexts and `load` tars so), responses streamed in chunks and flushed per message,
and the connection taken over after a `101 UPGRADED` (attach, exec).  All three are a
few lines on a blocking socket a handler owns (its thread; `Request.hijack` hands the
raw socket over), while the maintained asyncio servers (aiohttp, uvicorn) would put
every engine call, which blocks on disk, runc and registries, in an executor and
make the hijacked socket a transport to bridge back to threads.  A thread per
connection is what dockerd (a goroutine each) and podman do; it keeps a slow
client from blocking any other and lets a disconnect unwind its work where it
happens (a write raises `ClientGone` in the thread doing the work).  No dependency
is added, and the service's idle memory stays small.
"""

API_VERSION = "1.41"  # the Engine API version served (dockerd 20.10's)
MIN_API_VERSION = "1.12"
