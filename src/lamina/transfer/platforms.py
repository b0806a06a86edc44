"""Platforms (`linux/arm64/v8`) and choosing a manifest from an index.

Normalisation follows containerd/platforms: `x86_64` is `amd64`, `aarch64` is
`arm64`, amd64 `v1` and arm64 `v8` are the same as no variant, and plain `arm`
means `arm/v7`.  Entries with platform `unknown/unknown` are BuildKit
attestations, never images.
"""

from __future__ import annotations

from lamina.errors import UsageError
from lamina.oci import host_arch
from lamina.record import record

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386", "i686": "386"}
_ALIAS_VARIANT = {"armhf": "v7", "armel": "v6"}


@record
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def normalized(self) -> "Platform":
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant or _ALIAS_VARIANT.get(self.architecture, "")
        if (arch, variant) in (("amd64", "v1"), ("arm64", "v8")):
            variant = ""
        if arch == "arm" and not variant:
            variant = "v7"
        return Platform(self.os.lower(), arch, variant)

    def matches(self, other: "Platform") -> bool:
        return self.normalized() == other.normalized()

    @classmethod
    def from_json(cls, d: object) -> "Platform":
        if not isinstance(d, dict):
            return cls("unknown", "unknown")
        return cls(str(d.get("os") or ""), str(d.get("architecture") or ""), str(d.get("variant") or ""))


def parse_platform(text: str) -> Platform:
    """`linux/arm64`, `linux/arm/v7`, or a bare architecture (`arm64`, os linux)."""
    parts = text.strip().lower().split("/")
    if len(parts) == 1 and parts[0]:
        parts = ["linux", parts[0]]
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"invalid platform {text!r}: want os/arch[/variant], e.g. linux/amd64")
    return Platform(*parts).normalized()


def host_platform() -> Platform:
    return Platform("linux", host_arch()).normalized()


def is_attestation(p: Platform) -> bool:
    return p.os == "unknown" and p.architecture == "unknown"
