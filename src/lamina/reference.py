"""Docker image references: strict parsing and normalisation.

Grammar from distribution/reference: `[domain/]path[:tag][@digest]`.  The first
path component is a domain when it contains `.` or `:` or is `localhost`; otherwise the domain is docker.io, and a single-component
name on docker.io gets `library/`.  Validation happens before any work, so
`Ubuntu`, `a//b` and `x:t1:t2` never reach the store or the network.
"""

from __future__ import annotations

from lamina.errors import InvalidReference
from lamina.record import record

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = {"index.docker.io", "registry-1.docker.io"}
DEFAULT_TAG = "latest"

NAME_TOTAL_LENGTH_MAX = 255

# The grammar's regular expressions, written out as matchers: importing `re` costs
# more start-up time than `lamina images` has (these run on every listed tag).
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = "0123456789abcdef"


def _path_component_ok(c: str) -> bool:
    """^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$"""
    i, n = 0, len(c)
    while True:
        j = i
        while j < n and c[j] in _LOWER_ALNUM:
            j += 1
        if j == i:
            return False
        if j == n:
            return True
        if c[j] == ".":
            i = j + 1
        elif c[j] == "_":
            i = j + 2 if c[j + 1:j + 2] == "_" else j + 1
        elif c[j] == "-":
            i = j + 1
            while i < n and c[i] == "-":
                i += 1
        else:
            return False


def _label_ok(label: str) -> bool:
    """[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]"""
    return bool(label) and label[0] != "-" and label[-1] != "-" and all(ch in _ALNUM or ch == "-" for ch in label)


def _domain_ok(d: str) -> bool:
    """^(?:LABEL(?:\\.LABEL)*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$"""
    if d.startswith("["):
        end = d.find("]")
        inner, port = d[1:end], d[end + 1:]
        if end < 0 or not inner or inner.strip("0123456789abcdefABCDEF:"):
            return False
    else:
        host, colon, port = d.partition(":")
        port = colon + port
        if not all(_label_ok(label) for label in host.split(".")):
            return False
    return not port or (port[0] == ":" and len(port) > 1 and port[1:].isascii() and port[1:].isdigit())


def _tag_ok(tag: str) -> bool:
    """^[\\w][\\w.-]{0,127}$ (\\w as Python's re has it: alphanumeric or _)"""
    return (0 < len(tag) <= 128 and (tag[0].isalnum() or tag[0] == "_")
            and all(ch.isalnum() or ch in "_.-" for ch in tag))


def _digest_ok(d: str) -> bool:
    """^sha256:[0-9a-f]{64}$"""
    return len(d) == 71 and d.startswith("sha256:") and not d[7:].strip(_HEX)


@record
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
        if not _digest_ok(digest):
            raise InvalidReference("invalid reference format")  # docker's words: no detail for a bad digest
    tag = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _tag_ok(tag):
            raise InvalidReference("invalid reference format")  # nor for a bad tag
    if not remainder:
        raise InvalidReference("invalid reference format")
    domain, path = _split_domain(remainder)
    components = path.split("/")
    for comp in components:
        if not _path_component_ok(comp):
            if comp.lower() != comp and _path_component_ok(comp.lower()):
                raise InvalidReference("invalid reference format: repository name must be lowercase")
            raise InvalidReference("invalid reference format")
    if not _domain_ok(domain):
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
    return len(t) == 64 and not t.strip(_HEX)


def is_id_prefix(text: str) -> bool:
    t = text[7:] if text.startswith("sha256:") else text
    return 1 <= len(t) <= 64 and all(c in "0123456789abcdef" for c in t)
