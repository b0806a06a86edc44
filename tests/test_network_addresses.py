"""network.addresses: the lean IPv4 values of the per-container path give what
ipaddress gives (the bridge's set-up still uses ipaddress; a start must not)."""

from __future__ import annotations

import ipaddress

import pytest

from lamina.network.addresses import Address, Subnet
from lamina.network.ipam import mac_for, veth_name
from lamina.network.resolvconf import for_namespace


@pytest.mark.parametrize("text", ["0.0.0.0", "10.47.0.2", "255.255.255.255", "127.0.0.53", "192.168.247.1"])
def test_address_is_ipaddress_spelling(text):
    a, ref = Address(text), ipaddress.IPv4Address(text)
    assert (str(a), a.packed, int(a)) == (str(ref), ref.packed, int(ref))
    assert veth_name(a) == veth_name(ref) and mac_for(a) == mac_for(ref)
    assert Address(int(ref)) == a and hash(Address(text)) == hash(a) and a != ref


@pytest.mark.parametrize("text", ["1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1.2.3.-4", "a.b.c.d", "",
                                  "1.2.3.4 ", "\u0661.2.3.4"])
def test_address_refuses_what_ipaddress_refuses(text):
    with pytest.raises(ValueError):
        ipaddress.IPv4Address(text)
    with pytest.raises(ValueError):
        Address(text)


@pytest.mark.parametrize("text", ["10.47.0.0/16", "172.31.247.0/24", "10.0.0.0/30", "10.0.0.0/31", "10.0.0.7/32", "10.0.0.9"])
def test_subnet_hosts_and_membership_as_ipaddress(text):
    net, ref = Subnet(text), ipaddress.IPv4Network(text)
    assert str(net) == str(ref) and net.prefixlen == ref.prefixlen
    assert [str(h) for h, _ in zip(net.hosts(), range(300))] == [str(h) for h, _ in zip(ref.hosts(), range(300))]
    assert str(net.broadcast_address) == str(ref.broadcast_address)
    for probe in ("10.47.255.255", "10.48.0.0", "172.31.247.9", "10.0.0.3", "10.0.0.7"):
        assert (Address(probe) in net) == (ipaddress.IPv4Address(probe) in ref)


@pytest.mark.parametrize("text", ["10.47.0.1/16", "10.0.0.0/33", "10.0.0.0/x", "10.0.0.0/"])
def test_subnet_refuses_what_ipaddress_refuses(text):
    with pytest.raises(ValueError):
        ipaddress.IPv4Network(text)
    with pytest.raises(ValueError):
        Subnet(text)


def test_resolv_conf_drops_loopback_and_ipv6_nameservers_as_before():
    text = ("nameserver 127.0.0.53\nnameserver 127.1.2.3\nnameserver 10.0.0.2\nnameserver ::1\n"
            "nameserver fe80::1%eth0\nnameserver 2001:db8::1\nnameserver not-an-address\nnameserver 1.2.3\n"
            "search example.org\n")
    assert for_namespace(text) == ("nameserver 10.0.0.2\nnameserver not-an-address\nnameserver 1.2.3\n"
                                   "search example.org\n")
    assert for_namespace("nameserver 127.0.0.1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
