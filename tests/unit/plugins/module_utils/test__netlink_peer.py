"""_netlink's address decoding keeps what calico-node v3.32+ reads through netlink.AddrList: whether an
address has a peer (vishvananda/netlink v1.3.1 addr_linux.go parseAddr: IPv4 sends IFA_LOCAL and
IFA_ADDRESS, differing when there is a peer; IPv6 sends IFA_LOCAL only when there is one)."""

from ansible_collections.netdoctor.calico.plugins.module_utils import _netlink as nl
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg


def _message(family, prefixlen, attrs, index=3):
    msg = ifaddrmsg()
    msg["header"]["type"] = 20
    msg["header"]["flags"] = 2
    msg["header"]["sequence_number"] = 1
    msg["family"], msg["prefixlen"], msg["index"] = family, prefixlen, index
    msg["attrs"] = attrs
    msg.encode()
    return msg.data


def test_peer_only_when_the_address_has_one():
    data = (_message(2, 24, [("IFA_ADDRESS", "198.51.100.1"), ("IFA_LOCAL", "198.51.100.7")])
            + _message(2, 24, [("IFA_ADDRESS", "192.0.2.11"), ("IFA_LOCAL", "192.0.2.11")])
            + _message(10, 64, [("IFA_LOCAL", "2001:db8:7::7"), ("IFA_ADDRESS", "2001:db8:7::1")])
            + _message(10, 64, [("IFA_ADDRESS", "2001:db8::11")]))
    got = [(a["address"], a["prefixlen"], a.get("peer", "-")) for a in nl.decode_addresses(data)]
    assert got == [("198.51.100.7", 24, "198.51.100.1"), ("192.0.2.11", 24, "-"),
                   ("2001:db8:7::7", 64, "2001:db8:7::1"), ("2001:db8::11", 64, "-")]
