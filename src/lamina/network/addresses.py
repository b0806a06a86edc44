"""IPv4 addresses and subnets as the per-container path needs them, without `ipaddress`.

`import ipaddress` costs a few milliseconds of a `run --rm` that has under 70 ms
for all of lamina's work; a container start only parses the bridge's subnet and
gateway, walks host addresses and prints them.  These two small values do that
with ipaddress's strictness (four decimal octets, no leading zeros) and its
spelling of the results.  The bridge's one-time set-up, which compares subnets
with the host's routes, still uses ipaddress.
"""

from __future__ import annotations


def _parse(text: str) -> int:
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError(f"{text!r} does not appear to be an IPv4 address")
    value = 0
    for part in parts:
        if not part.isdigit() or not part.isascii() or len(part) > 3 or (len(part) > 1 and part[0] == "0") \
                or int(part) > 255:
            raise ValueError(f"{text!r} does not appear to be an IPv4 address")
        value = value << 8 | int(part)
    return value


class Address:
    """An IPv4 address (ipaddress.IPv4Address's str, packed, int, ordering and hashing)."""

    __slots__ = ("value",)

    def __init__(self, value: int | str) -> None:
        self.value = _parse(value) if isinstance(value, str) else int(value)
        if not 0 <= self.value < 1 << 32:
            raise ValueError(f"{value!r} is not an IPv4 address")

    @property
    def packed(self) -> bytes:
        return self.value.to_bytes(4, "big")

    def __int__(self) -> int:
        return self.value

    def __str__(self) -> str:
        return ".".join(str(b) for b in self.packed)

    def __repr__(self) -> str:
        return f"Address({str(self)!r})"

    def __eq__(self, other) -> bool:
        return other.__class__ is Address and other.value == self.value

    def __lt__(self, other: Address) -> bool:
        return self.value < other.value

    def __hash__(self) -> int:
        return hash(("ipv4", self.value))


class Subnet:
    """An IPv4 network `a.b.c.d/n` (host bits zero), as ipaddress.IPv4Network gives it."""

    __slots__ = ("network_address", "prefixlen")

    def __init__(self, text: str) -> None:
        address, sep, length = text.partition("/")
        if not sep:
            length = "32"  # as ipaddress: a bare address is a /32
        if not length.isdigit() or not length.isascii() or int(length) > 32:
            raise ValueError(f"{text!r} is not an IPv4 network")
        self.prefixlen = int(length)
        self.network_address = Address(address)
        if self.network_address.value & ~self._mask():
            raise ValueError(f"{text} has host bits set")

    def _mask(self) -> int:
        return ((1 << 32) - 1) ^ ((1 << (32 - self.prefixlen)) - 1)

    @property
    def broadcast_address(self) -> Address:
        return Address(self.network_address.value | ((1 << (32 - self.prefixlen)) - 1))

    def hosts(self):
        """The usable host addresses, lowest first (ipaddress's rules for /31 and /32)."""
        first, last = self.network_address.value, self.broadcast_address.value
        if self.prefixlen < 31:
            first, last = first + 1, last - 1
        return (Address(v) for v in range(first, last + 1))

    def __contains__(self, address) -> bool:
        return isinstance(address, Address) and address.value & self._mask() == self.network_address.value

    def __str__(self) -> str:
        return f"{self.network_address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"Subnet({str(self)!r})"

    def __eq__(self, other) -> bool:
        return other.__class__ is Subnet and (other.network_address, other.prefixlen) == (
            self.network_address, self.prefixlen)

    def __hash__(self) -> int:
        return hash((self.network_address, self.prefixlen))
