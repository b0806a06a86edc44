"""OCI / Docker image formats: media types and the small pure helpers around them.

Configs and manifests stay as parsed JSON dicts next to their exact raw bytes
(the digest is always of the raw bytes; we never re-serialise a stored object).
"""

from __future__ import annotations

import os

from lamina.digest import Digest
# untrusted documents parsed (leanjson: `inspect IMAGE` parses a config without this module)
from lamina.leanjson import MAX_DOCUMENT, loads_document, parse_json  # noqa: F401
from lamina.record import record

TYPE_CHECKING = False  # json and typing are imported where used: `images` and `inspect` read only
if TYPE_CHECKING:
    from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
# Docker's PATH for a container (and a build stage) whose image sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}


def host_arch() -> str:
    m = os.uname().machine
    return _GO_ARCH.get(m, m)


def foreign_arch(config: dict) -> str:
    """An image config's architecture when it is not the host's (its processes run
    emulated: runtime/binfmt.py), else ""."""
    arch = str(config.get("architecture") or "")
    return arch if arch and arch != host_arch() else ""


def now_rfc3339() -> str:
    """UTC time as Docker writes it: RFC 3339 with nanoseconds, `Z` suffix."""
    from datetime import datetime, timezone  # lazily: `run` never needs it

    t = datetime.now(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


def parse_time(text: str) -> float:
    """RFC 3339 (any fraction length) -> epoch seconds; 0 when absent or malformed."""
    if not text:
        return 0.0
    from datetime import datetime

    try:
        main, _, frac = text.rstrip("Z").partition(".")
        tz = "+00:00"
        for sign in ("+", "-"):
            if sign in frac:
                frac, tzpart = frac.split(sign, 1)
                tz = sign + tzpart
        if len(main) > 19:  # offset without fraction
            main, tz = main[:19], main[19:]
        base = datetime.fromisoformat(main + tz)
        return base.timestamp() + (float("0." + frac) if frac.isdigit() else 0.0)
    except ValueError:
        return 0.0


def dumps(obj: Any) -> bytes:
    """Canonical encoding for documents we create (compact, like Go's json.Marshal)."""
    import json

    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@record
class Descriptor:
    media_type: str
    digest: Digest
    size: int

    def to_json(self) -> dict:
        return {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}

    @classmethod
    def from_json(cls, d: dict) -> "Descriptor":
        return cls(d["mediaType"], Digest(d["digest"]), int(d["size"]))


def empty_container_config() -> dict:
    """Docker's container Config struct with every field at its zero value, in
    Go's field order (what `docker import` / `inspect` show)."""
    return {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
        "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
        "Labels": None,
    }


def new_config(arch: str | None = None) -> dict:
    """An empty image config (what `import` starts from), keys in docker's order."""
    return {
        "architecture": arch or host_arch(),
        "config": empty_container_config(),
        "container_config": empty_container_config(),
        "created": now_rfc3339(),
        "history": [],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }


def make_manifest(config: Descriptor, layers: list[Descriptor]) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [d.to_json() for d in layers],
    }


def merge_env(base: list[str] | None, overrides) -> list[str]:
    """`K=V` lists merged like docker: an override replaces the same key in place,
    new keys are appended in order."""
    env = list(base or [])
    index = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for item in overrides or ():
        key = item.split("=", 1)[0]
        if key in index:
            env[index[key]] = item
        else:
            index[key] = len(env)
            env.append(item)
    return env


def diff_ids(config: dict) -> list[Digest]:
    return [Digest(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]


def container_config(config: dict) -> dict:
    return config.get("config") or {}
