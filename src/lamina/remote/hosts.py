"""Where a registry lives: its API host, its scheme and its key in config.json.

Docker talks plain HTTP to loopback registries and to the ones listed in the
daemon's `insecure-registries`; we read the same list from
LAMINA_INSECURE_REGISTRIES (comma separated `host[:port]` or CIDR ranges).
Everything else is HTTPS with the system CAs, plus /etc/docker/certs.d/<host>/
like dockerd, so a private CA set up for docker also works for lamina.
"""

from __future__ import annotations

import os

from lamina.record import record
from lamina.reference import DEFAULT_DOMAIN

DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
CERTS_DIR = "/etc/docker/certs.d"


@record
class Endpoint:
    """A registry's API root: `http://127.0.0.1:5000` or `https://registry-1.docker.io`."""

    domain: str      # as written in references: docker.io, 127.0.0.1:5000
    host: str        # where the API is served (host[:port])
    scheme: str      # http | https

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"


def endpoint(domain: str, insecure: str | None = None) -> Endpoint:
    host = DOCKER_HUB_API if domain == DEFAULT_DOMAIN else domain
    scheme = "http" if is_insecure(host, insecure) else "https"
    return Endpoint(domain, host, scheme)


def hostname(host: str) -> str:
    """`[::1]:5000` -> `::1`, `127.0.0.1:5000` -> `127.0.0.1`."""
    if host.startswith("["):
        return host[1:host.index("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = hostname(host)
    if name == "localhost":
        return True
    import ipaddress  # an address, not a name: rarer than localhost

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_insecure(host: str, insecure: str | None = None) -> bool:
    if is_loopback(host):
        return True
    listed = os.environ.get("LAMINA_INSECURE_REGISTRIES", "") if insecure is None else insecure
    name = hostname(host)
    for item in (i.strip() for i in listed.split(",")):
        if not item:
            continue
        if item in (host, name):
            return True
        if "/" in item:
            import ipaddress

            try:
                if ipaddress.ip_address(name) in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
    return False


def config_key(domain: str) -> str:
    """The key docker uses for a registry in config.json `auths`."""
    return DOCKER_HUB_CONFIG_KEY if domain == DEFAULT_DOMAIN else domain


def normalize_server(server: str) -> str:
    """What the user typed to `login`/`logout` -> the reference domain it names.

    Accepts `https://host:5000/`, `host:5000`, `docker.io`, `index.docker.io`,
    `https://index.docker.io/v1/`."""
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if s in ("", "docker.io", "index.docker.io", "registry-1.docker.io"):
        return DEFAULT_DOMAIN
    return s


def tls_files(host: str) -> tuple[list[str], tuple[str, str] | None]:
    """CA files and a client (cert, key) pair from /etc/docker/certs.d/<host>/."""
    d = os.path.join(CERTS_DIR, host)
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return [], None
    cas = [os.path.join(d, n) for n in names if n.endswith(".crt")]
    client = None
    for n in names:
        if n.endswith(".cert"):
            key = os.path.join(d, n[:-5] + ".key")
            if os.path.exists(key):
                client = (os.path.join(d, n), key)
    return cas, client
