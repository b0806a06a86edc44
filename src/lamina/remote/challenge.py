"""Answering a registry's `WWW-Authenticate` challenge (distribution token spec).

`Basic realm=…` means: send the credentials with every request.  `Bearer
realm=…,service=…,scope=…` means: get a token from the realm (with Basic
credentials, an OAuth2 refresh token, or anonymously) and send it instead.
Tokens are cached for the scope set they were issued for; a request needing a
scope outside it gets a new token for the union (as go-containerregistry does).

Credentials only ever answer a challenge issued by the registry they belong
to (CVE-2020-15157: the transport never consults us for another host), and are
sent to a realm on a *different* host only over HTTPS: a plain-HTTP registry
naming a foreign realm gets an anonymous token request.
"""

from __future__ import annotations

import threading
import time

from lamina.errors import RegistryError
from lamina.record import record
from lamina.remote.auth import Credentials
from lamina.remote.hosts import hostname

TYPE_CHECKING = False  # typing only for annotations: push and pull start without it
if TYPE_CHECKING:
    from typing import Callable

    Fetch = Callable[[str, str, dict, bytes | None], tuple[int, bytes, str]]

MAX_TOKEN_RESPONSE = 1 << 20
DEFAULT_TOKEN_LIFETIME = 60
_PARAM = (r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')

# fetch(method, url, headers, body) -> (status, response body, reason)


@record
class Challenge:
    scheme: str                 # "basic" | "bearer" (lower-case)
    params: dict

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="x",service="y", Basic realm="z"` -> challenges in order."""
    import re  # only when a registry asks for credentials

    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if not m:
            break
        scheme, rest = m.group(1).lower(), rest[m.end():]
        params: dict[str, str] = {}
        while True:
            p = re.match(_PARAM, rest)
            if not p:
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[p.end():]
        out.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return out


def normalize_scopes(scopes) -> frozenset[str]:
    """One scope per resource with its actions sorted and merged: registries write
    `pull,push` or `push,pull` at random (Go map order), and a token for
    `repository:x:pull,push` covers `repository:x:pull`."""
    actions: dict[str, set[str]] = {}
    for scope in scopes:
        resource, sep, acts = scope.rpartition(":")
        if not sep or not resource:
            actions.setdefault(scope, set())
            continue
        actions.setdefault(resource, set()).update(a for a in acts.split(",") if a)
    return frozenset(f"{r}:{','.join(sorted(a))}" if a else r for r, a in actions.items())


def basic_header(creds: Credentials) -> str:
    import base64  # only for a registry that asks for credentials

    return "Basic " + base64.b64encode(f"{creds.username}:{creds.secret}".encode()).decode()


class Authorizer:
    """The authorization state for one registry host (shared by all threads)."""

    def __init__(self, registry_host: str, creds: Credentials | None, fetch: Fetch) -> None:
        self.registry_host = registry_host
        self.creds = creds
        self._fetch = fetch
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._token: str | None = None
        self._token_scopes: frozenset[str] = frozenset()
        self._expires = 0.0
        self.withheld_from: str | None = None  # realm host we refused to send credentials to

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization value for a request needing `scopes`, if we know how."""
        with self._lock:
            ch = self._challenge
            if ch is None:
                return None
            if ch.scheme == "basic":
                return basic_header(self.creds) if self.creds else None
            wanted = normalize_scopes(self._token_scopes | frozenset(scopes))
            if self._token is None or wanted != self._token_scopes or time.monotonic() >= self._expires:
                self._refresh(ch, wanted)
            return f"Bearer {self._token}"

    def challenged(self, header: str | None, scopes: tuple[str, ...], had_auth: bool) -> bool:
        """Record a 401's challenge; True when retrying with new authorization can help."""
        challenges = parse_challenges(header or "")
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or \
            next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            return False
        with self._lock:
            if chosen.scheme == "basic":
                first = self._challenge is None or self._challenge.scheme != "basic"
                self._challenge = chosen
                return bool(self.creds) and (first or not had_auth)
            self._challenge = chosen
            wanted = normalize_scopes(self._token_scopes | frozenset(scopes) | frozenset(chosen.scopes))
            if had_auth and wanted == self._token_scopes and time.monotonic() < self._expires:
                # the token we sent covered everything asked and was rejected: a real refusal
                self._token = None
                self._expires = 0.0
                return False
            self._refresh(chosen, wanted)
            return True

    # -- bearer tokens ----------------------------------------------------------------
    def _creds_for_realm(self, realm: str) -> Credentials | None:
        if self.creds is None:
            return None
        import urllib.parse  # only for a token realm

        parsed = urllib.parse.urlsplit(realm)
        if parsed.scheme == "https" or parsed.hostname == hostname(self.registry_host):
            return self.creds
        self.withheld_from = parsed.netloc
        return None

    def _refresh(self, ch: Challenge, scopes: frozenset[str]) -> None:
        import urllib.parse  # only for a token realm

        realm = ch.params.get("realm", "")
        if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"Error response from registry {self.registry_host}: invalid token realm {realm!r}")
        creds = self._creds_for_realm(realm)
        service = ch.params.get("service", "")
        ordered = sorted(scopes)
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": "lamina", "scope": " ".join(ordered), "service": service}
            body = urllib.parse.urlencode(form).encode()
            status, data, reason = self._fetch("POST", realm, {"Content-Type": "application/x-www-form-urlencoded"}, body)
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in ordered]
            headers = {}
            if creds is not None:
                query.append(("account", creds.username))
                headers["Authorization"] = basic_header(creds)
            sep = "&" if "?" in realm else "?"
            url = realm + (sep + urllib.parse.urlencode(query) if query else "")
            status, data, reason = self._fetch("GET", url, headers, None)
        if status != 200:
            detail = _error_detail(data) or reason
            raise RegistryError(f"Error response from registry {self.registry_host}: "
                                f"{'unauthorized' if status in (401, 403) else f'token server returned {status}'}: {detail}")
        import json

        try:
            doc = json.loads(data)
            token = doc.get("token") or doc.get("access_token")
            lifetime = int(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError, RecursionError):
            token, lifetime = None, 0
        if not token or not isinstance(token, str):
            raise RegistryError(f"Error response from registry {self.registry_host}: token server sent no token")
        self._token = token
        self._token_scopes = scopes
        self._expires = time.monotonic() + max(lifetime - 5, 1)


def _error_detail(data: bytes) -> str:
    import json

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return data[:200].decode(errors="replace").strip()
    if isinstance(doc, dict):
        errs = doc.get("errors")
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            return str(errs[0].get("message") or errs[0].get("code") or "")
        return str(doc.get("details") or doc.get("error") or doc.get("message") or "")
    return ""
