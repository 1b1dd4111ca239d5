"""calico_node_facts' can-reach lookups: what calico-node's net.Dial("udp4"|"udp6", dest:80) gets on the node
(node/pkg/lifecycle/startup/autodetection/reachaddr.go at v3.32.0): a hostname resolved by the node's resolver,
the addresses tried in order until the kernel has a route (Go's dialSerial), the kernel's source address."""

import socket

from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect
from ansible_collections.netdoctor.calico.plugins.modules import calico_node_facts as facts


class FakeNetlink:
    def __init__(self, routes):
        self.routes, self.asked = routes, []

    def route_get(self, dst):
        self.asked.append(dst)
        src = self.routes.get(dst)
        return None if src is None else {"prefsrc": src, "dev": "eth0", "gateway": None}


def _gai(answers):
    def getaddrinfo(host, port, family, socktype):
        assert (port, socktype) == (80, socket.SOCK_DGRAM)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(family, socktype, 17, "", (a, port) if family == socket.AF_INET else (a, port, 0, 0))
                for a in answers[host] if (":" in a) == (family == socket.AF_INET6)]
    return getaddrinfo


def test_hostname_first_routable_address(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _gai({"gw.example.test": ["203.0.113.9", "192.0.2.1", "2001:db8::1"]}))
    nl = FakeNetlink({"192.0.2.1": "192.0.2.11", "2001:db8::1": "2001:db8::11"})
    sources = facts._can_reach_sources(nl, [("can-reach=gw.example.test", 4), ("can-reach=gw.example.test", 6),
                                            ("first-found", 4), (None, 6)])
    assert sources == {"gw.example.test": {
        4: {"resolved": "192.0.2.1", "addresses": ["203.0.113.9", "192.0.2.1"], "source": "192.0.2.11",
            "error": None},
        6: {"resolved": "2001:db8::1", "addresses": ["2001:db8::1"], "source": "2001:db8::11", "error": None}}}
    assert nl.asked == ["203.0.113.9", "192.0.2.1", "2001:db8::1"]
    snap = {"links": [{"index": 2, "name": "eth0"}],
            "addresses": [{"index": 2, "family": 4, "address": "192.0.2.11", "prefixlen": 24},
                          {"index": 2, "family": 6, "address": "2001:db8::11", "prefixlen": 64}]}
    v6 = _autodetect.autodetect(snap, "can-reach=gw.example.test", 6, route_source=sources)
    assert (v6["address"], v6["reach"]["resolved"]) == ("2001:db8::11/64", "2001:db8::1")


def test_unresolvable_unroutable_and_literals(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _gai({"far.example.test": ["203.0.113.9"]}))
    nl = FakeNetlink({})
    assert facts._reach(nl, "nowhere.example.test", 4)["error"].startswith("dial udp4: lookup nowhere.example.test:")
    assert facts._reach(nl, "far.example.test", 4) == {
        "resolved": "203.0.113.9", "addresses": ["203.0.113.9"], "source": None,
        "error": "dial udp4 203.0.113.9:80: connect: network is unreachable"}
    # The method text after "can-reach=" is taken as it is (no trimming), as calico-node does.
    assert list(facts._can_reach_sources(nl, [("can-reach= 192.0.2.1", 4)])) == [" 192.0.2.1"]
    nl = FakeNetlink({"192.0.2.1": "192.0.2.11"})
    assert facts._reach(nl, "::ffff:192.0.2.1", 4)["source"] == "192.0.2.11"
    assert facts._reach(nl, "192.0.2.1", 6)["error"] == "dial udp6: address 192.0.2.1: no suitable address found"
