"""Docker image references: strict parsing and normalisation.

Grammar from distribution/reference: `[domain/]path[:tag][@digest]`.  The first
path component is a domain when it contains `.` or `:` or is `localhost`; otherwise the domain is docker.io, and a single-component
name on docker.io gets `library/`.  Validation happens before any work, so
`Ubuntu`, `a//b` and `x:t1:t2` never reach the store or the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lamina.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = {"index.docker.io", "registry-1.docker.io"}
DEFAULT_TAG = "latest"

_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(
    r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX_ID = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_LENGTH_MAX = 255


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """Fully qualified repository: `docker.io/library/ubuntu`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """What docker prints in REPOSITORY: `ubuntu`, `foo/bar`, `host:5000/x`."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len("library/"):] if self.path.startswith("library/") else self.path
        return self.repository

    @property
    def name(self) -> str:
        """Canonical key stored in the tag table: `docker.io/library/ubuntu:latest`."""
        if self.digest and not self.tag:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or DEFAULT_TAG}"

    @property
    def familiar(self) -> str:
        if self.digest and not self.tag:
            return f"{self.familiar_repository}@{self.digest}"
        return f"{self.familiar_repository}:{self.tag or DEFAULT_TAG}"

    def __str__(self) -> str:
        return self.familiar


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; raises InvalidReference with docker's wording."""
    if not text:
        raise InvalidReference("invalid reference format")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(f"invalid reference format: bad digest in {text!r}")
    tag = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid reference format: bad tag in {text!r}")
    if not remainder:
        raise InvalidReference("invalid reference format")
    domain, path = _split_domain(remainder)
    components = path.split("/")
    for comp in components:
        if not _PATH_COMPONENT.match(comp):
            if comp.lower() != comp and _PATH_COMPONENT.match(comp.lower()):
                raise InvalidReference("invalid reference format: repository name must be lowercase")
            raise InvalidReference("invalid reference format")
    if not _DOMAIN.match(domain):
        raise InvalidReference("invalid reference format")
    if len(f"{domain}/{path}") > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, f"library/{name}"
    if first.lower() != first and not ("." in first or ":" in first):
        # docker's daemon rejects `UPPER/x` although the grammar reads UPPER as a host.
        raise InvalidReference("invalid reference format: repository name must be lowercase")
    if "." in first or ":" in first or first == "localhost":
        domain = DEFAULT_DOMAIN if first in LEGACY_DOMAINS else first
        path = rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return domain, path


def looks_like_id(text: str) -> bool:
    """A full 64-hex image/container ID (with or without `sha256:`)."""
    t = text[7:] if text.startswith("sha256:") else text
    return bool(_HEX_ID.match(t))


def is_id_prefix(text: str) -> bool:
    t = text[7:] if text.startswith("sha256:") else text
    return 1 <= len(t) <= 64 and all(c in "0123456789abcdef" for c in t)
