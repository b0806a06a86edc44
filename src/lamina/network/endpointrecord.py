"""A container's place on a network, as a value (`Endpoint`): what attaching it gave
(network/endpoint.py), and what its /etc files and published ports are made from.
Apart from endpoint.py so that a monitor handed its endpoint (network/handoff.py)
does not import the attach code."""

from __future__ import annotations

from lamina.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.network.addresses import Address

NETWORK = "bridge"


@record
class Endpoint:
    network: str                 # "bridge", or a user network's name
    netns: str
    address: Address
    prefixlen: int
    gateway: Address
    mac: str
    network_id: str = ""         # a user network's ID ("" for the default bridge)
    nameserver: str = ""         # the network's resolver (its gateway) when names resolve there
    aliases: tuple = ()
    etc_from: str = ""           # container:NAME: the directory of the container whose /etc files it sees
    hostname: str = ""           # container:NAME: that container's hostname, which it shares
