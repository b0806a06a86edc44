"""HTTP to one registry: keep-alive connections, auth challenges, retries, redirects.

Standard library only (http.client).  One `Transport` per registry host,
shared by the worker threads of a pull or push; connections are pooled per
(scheme, host) and a connection goes back to the pool only after its response
was read to the end.

Retries are bounded: connection errors, timeouts, 5xx and 429 are retried with
exponential backoff (429/503 honour Retry-After up to a cap); a request body
must be replayable (bytes or a callable that reopens it).  Redirects are
followed for GET/HEAD; a redirect to another host never carries our
Authorization header, and a 401 from that other host is not answered.
"""

from __future__ import annotations

import http.client
import os
import sys
import threading
import time
import urllib.parse
from _socket import gaierror  # socket's own: the socket module is not imported for plain HTTP
from collections.abc import Iterator

from lamina.errors import RegistryError
from lamina.record import record
from lamina.remote.auth import Credentials
from lamina.remote.challenge import Authorizer
from lamina.remote.hosts import Endpoint, tls_files

TYPE_CHECKING = False  # typing only for annotations: push and pull start without it
if TYPE_CHECKING:
    from typing import BinaryIO, Callable

    Body = bytes | Callable[[], BinaryIO] | Iterator[bytes] | None  # an iterator is sent chunked, once

BUFFER = 1 << 20
MAX_REDIRECTS = 5
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@record
class TransportOptions:
    timeout: float = 60.0        # connect and per-read socket timeout, seconds
    attempts: int = 5            # tries per request (first one included)
    backoff: float = 0.25        # first retry delay; doubles each time, capped by max_backoff
    max_backoff: float = 4.0
    max_retry_after: float = 60.0

    @classmethod
    def from_env(cls) -> "TransportOptions":
        """LAMINA_REGISTRY_TIMEOUT / LAMINA_REGISTRY_ATTEMPTS tune the defaults."""
        kw: dict = {}
        if os.environ.get("LAMINA_REGISTRY_TIMEOUT"):
            kw["timeout"] = float(os.environ["LAMINA_REGISTRY_TIMEOUT"])
        if os.environ.get("LAMINA_REGISTRY_ATTEMPTS"):
            kw["attempts"] = max(1, int(os.environ["LAMINA_REGISTRY_ATTEMPTS"]))
        return cls(**kw)


class Response:
    """A response being read; `close()` recycles the connection when it is safe."""

    def __init__(self, raw: http.client.HTTPResponse, conn, pool: "_Pool", url: str) -> None:
        self._raw = raw
        self._conn = conn
        self._pool = pool
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self.url = url

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    @property
    def length(self) -> int | None:
        v = self.headers.get("Content-Length")
        return int(v) if v and v.isdigit() else None

    def read(self, n: int = -1) -> bytes:
        return self._raw.read() if n is None or n < 0 else self._raw.read(n)

    def readinto(self, buf) -> int:
        return self._raw.readinto(buf)

    def read_limited(self, limit: int) -> bytes:
        """The whole body, refusing more than `limit` bytes (and not reading them)."""
        if self.length is not None and self.length > limit:
            self.close()
            raise TooLarge()
        data = self._raw.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise TooLarge()
        self.close()
        return data

    def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if not self._raw.isclosed() and self._raw.length is not None and self._raw.length <= 65536:
            try:  # drain a small rest (a HEAD, an error body) so the connection can be reused
                self._raw.read()
            except (OSError, http.client.HTTPException):
                pass
        if self._raw.isclosed() and not self._raw.will_close:
            self._pool.put(conn)
        else:
            self._raw.close()
            conn.close()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TooLarge(Exception):
    """A response body over the caller's limit (it was not read)."""


class _Pool:
    def __init__(self, scheme: str, host: str, timeout: float) -> None:
        self.scheme, self.host, self.timeout = scheme, host, timeout
        self._idle: list = []
        self._lock = threading.Lock()
        self._ssl = None  # an ssl.SSLContext, made for the first https connection

    def get(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it was reused (a reused one may have been closed by the server)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self.new()

    def new(self) -> tuple[http.client.HTTPConnection, bool]:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, timeout=self.timeout, context=self._context(),
                                               blocksize=BUFFER), False
        return http.client.HTTPConnection(self.host, timeout=self.timeout, blocksize=BUFFER), False

    def put(self, conn) -> None:
        with self._lock:
            self._idle.append(conn)

    def _context(self):
        if self._ssl is None:
            import ssl  # only for https: a plain-HTTP registry is reached without it

            ctx = ssl.create_default_context()
            cas, client = tls_files(self.host)
            for ca in cas:
                ctx.load_verify_locations(cafile=ca)
            if client:
                ctx.load_cert_chain(*client)
            self._ssl = ctx
        return self._ssl

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()


class Transport:
    def __init__(self, endpoint: Endpoint, creds: Credentials | None = None,
                 options: TransportOptions | None = None) -> None:
        self.endpoint = endpoint
        self.options = options or TransportOptions()
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._pools_lock = threading.Lock()
        self.auth = Authorizer(endpoint.host, creds, self._fetch_token)
        self.sleep = time.sleep  # tests replace it to observe backoff

    @property
    def name(self) -> str:
        return self.endpoint.domain

    def url(self, path: str) -> str:
        return self.endpoint.base + path

    def close(self) -> None:
        for p in list(self._pools.values()):
            p.close()

    # -- the request loop -------------------------------------------------------------
    def request(self, method: str, url: str, *, what: str, headers: dict | None = None, body: Body = None,
                scopes: tuple[str, ...] = (), follow: bool = True, authorize: bool = True) -> Response:
        """Send a request, answering auth challenges, retrying transient failures and
        following redirects; returns any other response for the caller to judge.
        `what` names the object in error messages ("manifest for x:latest")."""
        if url.startswith("/"):
            url = self.url(url)
        origin = urllib.parse.urlsplit(url).netloc
        one_shot = isinstance(body, Iterator)  # a stream being produced cannot be sent again
        attempt, auth_retries, redirects = 0, 0, 0
        while True:
            own = authorize and self._is_own(url)
            hdrs = dict(headers or {})
            if urllib.parse.urlsplit(url).netloc != origin:
                hdrs.pop("Authorization", None)  # redirected elsewhere: nothing of ours goes along
            had_auth = False
            if own:
                value = self.auth.header(scopes)
                if value:
                    hdrs["Authorization"] = value
                    had_auth = True
            try:
                resp = self._send(method, url, hdrs, body)
            except (OSError, http.client.HTTPException) as e:
                ssl = sys.modules.get("ssl")  # not imported: not a TLS error
                if ssl is not None and isinstance(e, ssl.SSLCertVerificationError):
                    raise RegistryError(f"Error response from registry {self.name}: {what}: TLS: {e.verify_message}") from None
                if ssl is not None and isinstance(e, ssl.SSLError):
                    raise RegistryError(f"Error response from registry {self.name}: {what}: TLS handshake failed "
                                        f"({e.reason or e}); if it serves plain HTTP, list it in "
                                        "LAMINA_INSECURE_REGISTRIES") from None
                attempt += 1
                # no such host / nothing listening: one more try (a registry restarting), not a full series
                fast = isinstance(e, (ConnectionRefusedError, gaierror))
                limit = min(2, self.options.attempts) if fast else self.options.attempts
                limit = 1 if one_shot else limit
                if attempt >= limit:
                    raise RegistryError(f"Error response from registry {self.name}: {what}: {_describe(e)} "
                                        f"(gave up after {attempt} attempts)") from None
                self.sleep(self._backoff(attempt))
                continue
            if one_shot:
                return resp
            if resp.status == 401 and own:
                challenge = resp.header("WWW-Authenticate")
                resp.close()
                if auth_retries < 2 and self.auth.challenged(challenge, scopes, had_auth):
                    auth_retries += 1
                    continue
                raise self.unauthorized(what)
            if resp.status in RETRY_STATUS:
                attempt += 1
                detail = error_detail(resp)
                delay = self._backoff(attempt)
                after = retry_after(resp.header("Retry-After"))
                if after is not None:
                    if after > self.options.max_retry_after:
                        raise RegistryError(f"Error response from registry {self.name}: {what}: {resp.status} {detail} "
                                            f"(asked to retry after {after:.0f}s)")
                    delay = max(delay, after)
                if attempt >= self.options.attempts:
                    raise RegistryError(f"Error response from registry {self.name}: {what}: {resp.status} {detail} "
                                        f"(gave up after {attempt} attempts)")
                self.sleep(delay)
                continue
            if follow and method in ("GET", "HEAD") and resp.status in (301, 302, 303, 307, 308):
                location = resp.header("Location")
                resp.close()
                redirects += 1
                if not location or redirects > MAX_REDIRECTS:
                    raise RegistryError(f"Error response from registry {self.name}: {what}: too many redirects")
                url = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    raise RegistryError(f"Error response from registry {self.name}: {what}: bad redirect {location!r}")
                continue
            return resp

    def unauthorized(self, what: str) -> RegistryError:
        hint = ""
        if self.auth.withheld_from:
            hint = f" (credentials not sent to token realm {self.auth.withheld_from} over plain HTTP)"
        elif self.auth.creds is None:
            hint = " (not logged in)"
        return RegistryError(f"Error response from registry {self.name}: {what}: unauthorized: authentication required{hint}")

    def _is_own(self, url: str) -> bool:
        p = urllib.parse.urlsplit(url)
        return p.scheme == self.endpoint.scheme and p.netloc == self.endpoint.host

    def _backoff(self, attempt: int) -> float:
        return min(self.options.backoff * (2 ** (attempt - 1)), self.options.max_backoff)

    def _pool(self, scheme: str, host: str) -> _Pool:
        with self._pools_lock:
            pool = self._pools.get((scheme, host))
            if pool is None:
                pool = self._pools[(scheme, host)] = _Pool(scheme, host, self.options.timeout)
            return pool

    def _send(self, method: str, url: str, headers: dict, body: Body) -> Response:
        p = urllib.parse.urlsplit(url)
        pool = self._pool(p.scheme, p.netloc)
        target = (p.path or "/") + (f"?{p.query}" if p.query else "")
        headers.setdefault("User-Agent", "lamina/0.1")
        chunked = isinstance(body, Iterator)
        for fresh in (False, True):
            conn, reused = pool.new() if chunked else pool.get()
            stream = body() if callable(body) else body
            try:
                if stream is None and method in ("PUT", "POST", "PATCH"):
                    headers.setdefault("Content-Length", "0")
                conn.request(method, target, body=stream, headers=headers, encode_chunked=chunked)
                raw = conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                conn.close()
                if reused and not fresh:
                    continue  # the server closed an idle keep-alive connection: not a failure
                raise
            except BaseException:
                conn.close()
                raise
            finally:
                if callable(body) and hasattr(stream, "close"):
                    stream.close()
            return Response(raw, conn, pool, url)
        raise AssertionError("unreachable")

    def _fetch_token(self, method: str, url: str, headers: dict, body: bytes | None) -> tuple[int, bytes, str]:
        what = f"token from {urllib.parse.urlsplit(url).netloc}"
        with self.request(method, url, what=what, headers=headers, body=body, authorize=False) as resp:
            try:
                data = resp.read_limited(1 << 20)
            except TooLarge:
                raise RegistryError(f"Error response from registry {self.name}: {what}: response too large") from None
            return resp.status, data, resp.reason


def retry_after(value: str) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils  # an HTTP date here is rare: not worth importing email up front

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_detail(resp: Response) -> str:
    """`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}` -> `manifest unknown`."""
    try:
        data = resp.read_limited(1 << 16)
    except (TooLarge, OSError, http.client.HTTPException):
        return resp.reason
    import json  # an error response's body: not on the way of one that succeeds

    try:
        doc = json.loads(data)
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            return str(errs[0].get("message") or errs[0].get("code") or resp.reason).strip()
    except (ValueError, RecursionError):  # a body nested past the decoder's stack: not a detail
        pass
    text = data[:200].decode(errors="replace").strip().splitlines()
    return text[0] if text else resp.reason


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):  # socket.timeout is TimeoutError
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, gaierror):
        return f"cannot resolve the registry's host name ({e.strerror or e})"
    if isinstance(e, ConnectionResetError):
        return "connection reset by peer"
    return str(e) or type(e).__name__

