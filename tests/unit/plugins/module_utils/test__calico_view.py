"""Route classification and Calico's view of a node (plugins/module_utils/_calico_view.py)."""

from __future__ import annotations

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _calico_view as cv
from ansible_collections.netdoctor.calico.tests.unit import iptext
from ansible_collections.netdoctor.calico.tests.unit.fixtures import facts, seeds
from ansible_collections.netdoctor.calico.tests.unit.fixtures.nodes import (
    BGP_ADDR,
    BGP_ROUTES,
    VXLAN_ADDR,
    VXLAN_FDB,
    VXLAN_NEIGH,
    VXLAN_ROUTES,
)


def _classes(routes):
    return {key: [cv.route_text(r) for r in routes[key]] for key in cv.CLASSES if isinstance(routes[key], list)}


def test_route_text_reprints_the_seed_table_verbatim():
    snap = seeds.node4()
    assert "\n".join(cv.route_text(r) for r in snap["routes"]) + "\n" == seeds.NODE4_ROUTES_FIXED
    assert [cv.route_text(r) for r in iptext.parse_ip_route(BGP_ROUTES)][2] == (
        "198.18.3.0/26 proto bird nexthop via 192.0.2.13 dev eth0 weight 1 nexthop via 198.51.100.13 dev eth1 weight 1")


def test_seed001_case2_node4_classification():
    routes = cv.classify_routes(seeds.node4(), full=True)
    assert _classes(routes) == {
        "local_blocks": ["blackhole 10.122.157.128/26 proto bird"],
        "workloads": [f"10.122.157.{129 + i} dev {name} scope link" for i, name in enumerate(seeds._CALI_NODE4)],
        "tunnel": [],
        "remote_blocks": ["10.122.17.64/26 via 192.168.3.110 dev tunl0 proto bird onlink",
                          "10.122.124.128/26 via 192.168.0.111 dev tunl0 proto bird onlink",
                          "10.122.127.128/26 via 192.168.3.112 dev tunl0 proto bird onlink",
                          "10.122.173.128/26 via 192.168.3.114 dev tunl0 proto bird onlink"],
        "other": ["default via 192.168.3.253 dev eth1",
                  "172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1",
                  "192.168.3.0/24 dev eth1 proto kernel scope link src 192.168.3.113"],
    }
    assert routes["counts"]["total"] == 14
    assert routes["counts"]["by_class"] == {"local_blocks": 1, "workloads": 6, "tunnel": 0, "remote_blocks": 4,
                                            "other": 3}
    # The default route was added by hand: no proto, so proto boot, like the workload routes.
    assert routes["counts"]["by_protocol"] == {"boot": 7, "bird": 5, "kernel": 2}
    assert routes["counts"]["by_device"]["tunl0"] == 4 and routes["counts"]["by_device"]["none"] == 1
    assert routes["suspect"] == []


def test_remote_blocks_are_summarised_unless_full():
    summary = cv.classify_routes(seeds.node4())["remote_blocks"]
    assert summary == {"count": 4, "by_device": {"tunl0": 4}, "by_protocol": {"bird": 4}}
    assert len(cv.classify_routes(seeds.node4(), full=True)["remote_blocks"]) == 4


def test_seed001_case2_node4_view():
    snap = seeds.node4()
    sysctls = facts.healthy_sysctls(snap)
    sysctls["interfaces"]["cali01cf8687c65"]["proxy_arp"] = 0
    view = cv.calico_view(snap, sysctls)
    assert view["mode"] == "ipip"
    assert view["tunnel"] == {"device": "tunl0", "address": "10.122.157.128", "mtu": 1440, "up": True}
    assert view["local_blocks"] == ["10.122.157.128/26"]
    assert view["workloads"][0] == {"interface": "cali19f6ea143e3", "ip": "10.122.157.129", "up": True,
                                    "proxy_arp": 1}
    assert view["workloads"][4]["proxy_arp"] == 0
    assert view["vxlan"] is None


def test_seed001_case1_stale_route_on_node3():
    routes = cv.classify_routes(seeds.node3(stale=True), full=True)
    # No `proto` printed: proto boot, so not BIRD's - the stale route BIRD could not replace ("File exists").
    assert _classes(routes)["tunnel"] == [seeds.NODE3_STALE_ROUTE]
    assert len(routes["remote_blocks"]) == 3
    assert [(s["text"], s["reasons"]) for s in routes["suspect"]] == [(seeds.NODE3_STALE_ROUTE, [
        "next hop 10.122.127.128 is an address of this node itself",
        "next hop 10.122.127.128 is inside this node's own block 10.122.127.128/26 (a pod or its tunnel address, "
        "not the node IP of the block's owner)",
        "no onlink flag: BIRD and Felix program IPIP routes as `via <node IP> dev tunl0 onlink`"])]
    fixed = cv.classify_routes(seeds.node3(stale=False), full=True)
    assert seeds.NODE3_FIXED_ROUTE in _classes(fixed)["remote_blocks"]
    assert fixed["suspect"] == []


def test_remote_route_into_own_block_via_underlay_is_suspect():
    snap = iptext.snapshot(BGP_ADDR, BGP_ROUTES + "198.18.9.0/26 via 198.18.1.7 dev eth0 proto bird\n")
    suspects = cv.classify_routes(snap)["suspect"]
    assert [s["text"] for s in suspects] == ["198.18.9.0/26 via 198.18.1.7 dev eth0 proto bird"]
    assert "inside this node's own block 198.18.1.0/26" in suspects[0]["reasons"][0]


def test_vxlan_node():
    snap = iptext.snapshot(VXLAN_ADDR, VXLAN_ROUTES, VXLAN_NEIGH, VXLAN_FDB)
    routes = cv.classify_routes(snap, full=True)
    assert _classes(routes) == {
        "local_blocks": ["blackhole 198.18.1.0/26 proto 80"],
        "workloads": ["198.18.1.2 dev cali1a2b3c4d5e6 scope link"],
        "tunnel": [],
        "remote_blocks": ["198.18.2.0/26 via 198.18.2.0 dev vxlan.calico onlink",
                          "198.18.2.64/26 via 198.18.2.0 dev vxlan.calico onlink",
                          "198.18.3.0/26 via 192.0.2.13 dev eth0 proto 80 onlink"],  # CrossSubnet, no encap
        "other": ["default via 192.0.2.1 dev eth0 proto static",
                  "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.11"],
    }
    assert routes["suspect"] == []  # VXLAN next hops are VTEP addresses inside remote blocks
    assert routes["counts"]["by_protocol"] == {"static": 1, "felix": 2, "boot": 3, "kernel": 1}
    view = cv.calico_view(snap, {}, routes)
    assert view["mode"] == "vxlan"
    assert view["tunnel"] == {"device": "vxlan.calico", "address": "198.18.1.0", "mtu": 1450, "up": True}
    assert view["vxlan"] == {
        "device": "vxlan.calico", "vni": 4096, "port": 4789, "local": "192.0.2.11", "parent": "eth0",
        "mac": "66:11:22:33:44:55",
        "neighbours": [{"index": 5, "dev": "vxlan.calico", "family": 4, "dst": "198.18.2.0",
                        "lladdr": "66:aa:bb:cc:dd:02", "state": ["permanent"]}],
        "fdb": [{"index": 5, "dev": "vxlan.calico", "lladdr": "66:aa:bb:cc:dd:02", "dst": "192.0.2.12",
                 "state": ["permanent"]}],
    }


def test_native_bgp_with_ecmp():
    snap = iptext.snapshot(BGP_ADDR, BGP_ROUTES)
    routes = cv.classify_routes(snap, full=True)
    assert [r["dst"] for r in routes["remote_blocks"]] == ["198.18.2.0/26", "198.18.3.0/26"]
    assert routes["counts"]["by_device"] == {"none": 1, "eth0": 3}  # ECMP counts under its first hop
    view = cv.calico_view(snap, {})
    assert view["mode"] == "bgp" and view["tunnel"] is None


@pytest.mark.parametrize(("addr", "routes", "mode"), [
    # IPIP routes programmed by Felix (v3.33+): proto 80 on tunl0.
    ("5: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 state UNKNOWN\n    link/ipip 0.0.0.0 brd 0.0.0.0\n",
     "blackhole 198.18.1.0/26 proto 80\n198.18.2.0/26 via 192.0.2.12 dev tunl0 proto 80 onlink\n", "ipip"),
    # tunl0 exists (the ipip module is loaded) but carries nothing: BIRD blackholes say BGP.
    ("5: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 state UNKNOWN\n    link/ipip 0.0.0.0 brd 0.0.0.0\n",
     "blackhole 198.18.1.0/26 proto bird\n", "bgp"),
    ("9: wireguard.cali: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1440 state UNKNOWN\n    link/none\n"
     "    inet 198.18.1.3/32 scope global wireguard.cali\n", "", "wireguard"),
    ("2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP\n    inet 192.0.2.11/24 scope global eth0\n",
     "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.11\n", "none"),
])
def test_mode_inference(addr, routes, mode):
    snap = iptext.snapshot(addr, routes)
    assert cv.calico_view(snap, {})["mode"] == mode
    assert cv.calico_view(snap, {}, cv.classify_routes(snap, full=True))["mode"] == mode


def test_wireguard_tunnel_and_ipv6_workloads():
    snap = iptext.snapshot(
        "9: wireguard.cali: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1440 state UNKNOWN\n    link/none\n"
        "    inet 198.18.1.3/32 scope global wireguard.cali\n"
        "7: calia1b2c3d4e5f@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1440 state UP\n",
        "fd00:10:244::5 dev calia1b2c3d4e5f metric 1024 pref medium\nblackhole fd00:10:244::/122 proto bird\n")
    routes = cv.classify_routes(snap)
    assert routes["counts"]["by_class"]["workloads"] == 1 and routes["counts"]["by_class"]["local_blocks"] == 1
    view = cv.calico_view(snap, {}, routes)
    assert view["tunnel"]["device"] == "wireguard.cali" and view["tunnel"]["address"] == "198.18.1.3"
    assert view["workloads"] == [{"interface": "calia1b2c3d4e5f", "ip": "fd00:10:244::5", "up": True,
                                  "proxy_arp": None}]


def test_routes_missing_keys_are_still_classified():
    snap = {"links": [], "addresses": [], "routes": [
        {"dst": "198.18.2.0/26", "gateway": "192.0.2.12", "dev": "tunl0", "protocol": 12, "onlink": True},
        {"dst": "198.18.1.0/26", "type": "blackhole", "protocol": 80},
    ]}
    counts = cv.classify_routes(snap)["counts"]["by_class"]
    assert counts == {"local_blocks": 1, "workloads": 0, "tunnel": 0, "remote_blocks": 1, "other": 0}


def test_a_cali_route_that_is_not_a_workload():
    snap = iptext.snapshot("", "198.18.9.0/24 via 198.18.1.2 dev cali1a2b3c4d5e6\n"
                               "198.18.1.7 dev cali1a2b3c4d5e6 scope link\n")
    routes = cv.classify_routes(snap)
    assert [r["dst"] for r in routes["other"]] == ["198.18.9.0/24"]
    assert [r["dst"] for r in routes["workloads"]] == ["198.18.1.7/32"]
