"""Checking credentials against a registry, as `docker login` does.

`GET /v2/` to get the challenge, then answer it with the credentials: a Basic
registry must accept them on `/v2/`, a token registry's realm must issue a
token for them.  Credentials are never sent to a foreign realm over plain
HTTP, so such a login fails instead of silently becoming anonymous.
"""

from __future__ import annotations

from lamina.errors import RegistryError
from lamina.remote.auth import Credentials
from lamina.remote.hosts import endpoint
from lamina.remote.transport import Transport, TransportOptions


def verify_login(domain: str, creds: Credentials, options: TransportOptions | None = None) -> None:
    transport = Transport(endpoint(domain), creds, options or TransportOptions.from_env())
    try:
        with transport.request("GET", "/v2/", what="login") as resp:
            status = resp.status
        if transport.auth.withheld_from:
            raise RegistryError(f"Error response from registry {domain}: login: refusing to send credentials "
                                f"to token realm {transport.auth.withheld_from} over plain HTTP")
        if status == 401:
            raise transport.unauthorized("login")
        if status != 200:
            raise RegistryError(f"Error response from registry {domain}: login: /v2/ returned {status}")
    finally:
        transport.close()
