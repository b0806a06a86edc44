"""rtnetlink (NETLINK_ROUTE), the kernel's interface for links, addresses and routes:
the requests `ip link add ... type veth`, `ip addr add` and `ip route add` send,
sent from this process instead of through an `ip` exec (~3 ms each start).

A socket belongs to the network namespace it was opened in, for its whole life: a
socket opened on a thread that joined a container's namespace (netns.call_in, or
netns.create's `then`) configures that namespace from any thread.  Only what a
container start needs is here; the bridge's one-time set-up keeps `ip`.
"""

from __future__ import annotations

import os
import struct

import _socket  # the C module: socket.py's enums cost more than a container's whole network set-up

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 18, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_GATEWAY = 5
IFF_UP = 0x1
AF_INET = 2
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=IHHII")    # nlmsghdr: length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")   # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")    # ifaddrmsg: family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst/src length, tos, table, protocol, scope, type, flags


def attr(kind: int, value: bytes | str | int) -> bytes:
    """One rtattr: a string gets its NUL, an int is a u32; padded to 4 bytes."""
    if isinstance(value, str):
        value = value.encode() + b"\0"
    elif isinstance(value, int):
        value = struct.pack("=I", value)
    size = 4 + len(value)
    return struct.pack("=HH", size, kind) + value + bytes(-size % 4)


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


class Socket:
    """A NETLINK_ROUTE socket of the calling thread's network namespace; every request
    waits for the kernel's answer and raises its error as OSError (errno set)."""

    def __init__(self) -> None:
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes) -> bytes:
        """Send one message; returns the kernel's reply to it (b"" for a bare ACK)."""
        self.seq += 1
        self.sock.sendto(_HEADER.pack(_HEADER.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK,
                                      self.seq, 0) + body, (0, 0))  # to the kernel (port id 0)
        reply = b""
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                size, msg_type, _, seq, _ = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size:offset + size]
                offset += (size + 3) & ~3
                if seq != self.seq:
                    continue  # an answer to an earlier request given up on
                if msg_type != NLMSG_ERROR:
                    reply = payload  # a GET's answer; its ACK follows
                    continue
                error = -struct.unpack_from("=i", payload)[0]
                if error:
                    raise OSError(error, os.strerror(error))
                return reply

    # ------------------------------------------------------------------ links

    def index(self, name: str) -> int:
        """The ifindex of interface `name` in this socket's namespace (ENODEV if none)."""
        reply = self.request(RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name))
        return _IFINFO.unpack_from(reply)[2]

    def add_veth(self, name: str, peer: str, *, peer_netns_fd: int, peer_mac: str | None = None,
                 master: int = 0) -> None:
        """A veth pair: `name` here, up (and on bridge `master` when given), and `peer`
        created straight into the namespace open at `peer_netns_fd`, still down (the
        kernel cannot open a veth before its pair is complete: ENOTCONN).  EEXIST when
        `name` (or `peer` there) is taken."""
        peer_attrs = attr(IFLA_IFNAME, peer) + attr(IFLA_NET_NS_FD, peer_netns_fd)
        if peer_mac:
            peer_attrs += attr(IFLA_ADDRESS, _mac(peer_mac))
        info = attr(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA, attr(
            VETH_INFO_PEER, _IFINFO.pack(0, 0, 0, 0, 0) + peer_attrs))
        body = _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + attr(IFLA_IFNAME, name) + attr(IFLA_LINKINFO, info)
        if master:
            body += attr(IFLA_MASTER, master)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))

    def delete_link(self, index: int) -> None:
        """Delete a link (a veth takes its peer along)."""
        self.request(RTM_DELLINK, 0, _IFINFO.pack(0, 0, index, 0, 0))

    # ------------------------------------------------------------------ addresses and routes

    def add_address(self, index: int, address, prefixlen: int, broadcast=None) -> None:
        """An IPv4 address (`packed` bytes: network.addresses.Address) on link `index`."""
        body = _IFADDR.pack(AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, address.packed) + attr(IFA_ADDRESS, address.packed)
        if broadcast is not None:
            body += attr(IFA_BROADCAST, broadcast.packed)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_default_route(self, gateway) -> None:
        """`ip route add default via GATEWAY`."""
        body = _RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body + attr(RTA_GATEWAY, gateway.packed))
