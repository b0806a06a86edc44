"""The local web server of `lamina ui`: 127.0.0.1 only, a random token on every request.

As Jupyter does it: the token comes in the URL printed on start
(`http://127.0.0.1:PORT/?token=...`); the first visit with it sets a cookie
(HttpOnly, SameSite=Strict) so the page's own requests need not carry it.  Any
request without the right token, or whose Host is not this loopback address (a DNS
rebinding page), gets 403 and nothing else.  Each API request opens the store for
itself (one System per request, as one per command) and closes it.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from lamina.errors import LaminaError, NotFound, UsageError

STATIC = os.path.join(os.path.dirname(__file__), "static")
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/app.css": ("app.css", "text/css; charset=utf-8")}
COOKIE = "lamina_ui_token"  # + the port: browsers share cookies across ports, servers must not share tokens
# The page loads nothing from elsewhere and runs no inline script: a name that slipped
# through as markup could not run anyway.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the first URL
    "Cache-Control": "no-store",
}


class UIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, *, root: str | None = None, storage_driver: str | None = None,
                 runtime: str | None = None, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self.store_options = {"storage_driver": storage_driver, "runtime": runtime}
        self.root = root
        super().__init__(("127.0.0.1", port), Handler)
        self.port = self.server_address[1]
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.cookie = f"{COOKIE}_{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"


class Handler(BaseHTTPRequestHandler):
    server: UIServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)

    def _other(self) -> None:
        if not self._allowed(parse_qs(urlsplit(self.path).query)):
            return self._send(403, b"403 Forbidden\n", "text/plain; charset=utf-8")
        self._send(405, b"405 Method Not Allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

    def _allowed(self, query: dict) -> bool:
        if self.headers.get("Host", "") not in self.server.hosts:
            return False
        want = self.server.token.encode()
        given = query.get("token", [""])[0]
        if given:
            return hmac.compare_digest(given.encode(), want)
        return any(hmac.compare_digest(c.encode(), want) for c in self._cookies())

    def _cookies(self) -> list[str]:
        out = []
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, eq, value = part.strip().partition("=")
                if eq and name == self.server.cookie:
                    out.append(value)
        return out

    def _answer(self, head: bool) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if not self._allowed(query):
            return self._send(403, b"403 Forbidden: open the URL lamina ui printed (it carries the token)\n",
                              "text/plain; charset=utf-8", head=head)
        extra = {}
        if "token" in query:
            extra["Set-Cookie"] = f"{self.server.cookie}={self.server.token}; Path=/; HttpOnly; SameSite=Strict"
        if parts.path == "/favicon.ico":  # the page has none: say so without a 404 in the console
            return self._send(204, b"", "image/x-icon", extra, head=head)
        if parts.path in FILES:
            name, kind = FILES[parts.path]
            with open(os.path.join(STATIC, name), "rb") as f:
                return self._send(200, f.read(), kind, extra, head=head)
        from lamina.ui.views import ROUTES

        view = ROUTES.get(parts.path)
        if view is None:
            return self._json(404, {"message": f"no such page: {parts.path}"}, extra, head)
        status, value = self._call(view, {k: v[0] for k, v in query.items() if k != "token"})
        self._json(status, value, extra, head)

    def _call(self, view, query: dict) -> tuple[int, dict]:
        from lamina.system import System

        system = None
        try:
            system = System(self.server.root, **self.server.store_options)
            return 200, view(system, query)
        except NotFound as e:
            return 404, {"message": str(e)}
        except UsageError as e:
            return 400, {"message": str(e)}
        except LaminaError as e:
            return 500, {"message": str(e)}
        except Exception as e:  # a page must get an answer; the terminal gets the one line
            sys.stderr.write(f"lamina ui: {self.path.split('?')[0]}: {type(e).__name__}: {e}\n")
            return 500, {"message": f"internal error: {type(e).__name__}: {e}"}
        finally:
            if system is not None:
                system.close()

    def _json(self, status: int, value, extra: dict, head: bool) -> None:
        # ASCII with escapes: a file name that is not UTF-8 (a surrogate escape) still encodes
        self._send(status, json.dumps(value).encode(), "application/json", extra, head=head)

    def _send(self, status: int, body: bytes, kind: str, extra: dict | None = None, *, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: the terminal shows the URL only
        pass
