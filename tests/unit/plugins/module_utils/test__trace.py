"""Seed 003's 8-step pod-to-pod trace (plugins/module_utils/_trace.py) on fixtures: the seed's own
example, seed 001's two cases (a stale next hop, an asymmetric source), VXLAN and strict rp_filter.

Halves are built the way the calico_trace module builds them, with ``kernel_lookup`` standing in
for the kernel's `ip route get` (longest prefix, the route's src or the device's address)."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _trace
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _trace_judge as judge
from ansible_collections.netdoctor.calico.tests.unit import iptext
from ansible_collections.netdoctor.calico.tests.unit.fixtures import seeds
from ansible_collections.netdoctor.calico.tests.unit.fixtures.nodes import VXLAN_ADDR, VXLAN_FDB, VXLAN_NEIGH

POD_A, POD_B = "192.168.8.42", "192.168.60.173"


def kernel_lookup(snap, ip):
    """What `ip route get ip` answers on this snapshot (no policy rules, no metrics)."""
    names = {link["index"]: link["name"] for link in snap["links"]}
    if any(a["address"] == ip for a in snap["addresses"]):
        return {"dst": f"{ip}/32", "gateway": None, "dev": "lo", "prefsrc": ip, "table": 255}
    best = (_trace.covering_routes(snap["routes"], ip, limit=1) or [None])[0]
    if best is None or best["type"] != "unicast":
        return None
    src = best.get("prefsrc") or next(
        (a["address"] for a in snap["addresses"] if names.get(a["index"]) == best["dev"] and a["family"] == 4
         and a["scope"] == "global"), None)
    return {"dst": f"{ip}/32", "gateway": best["gateway"], "dev": best["dev"], "prefsrc": src, "table": 254}


def sysctls(snap, **overrides):
    """A healthy node's sysctls; overrides: {"ip_forward": 0, "<dev>.<key>": value, "all.rp_filter": 1}."""
    out = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
           "interfaces": {link["name"]: {"rp_filter": 0, "forwarding": 1,
                                         "proxy_arp": 1 if link["name"].startswith("cali") else 0}
                          for link in snap["links"]}}
    for key, value in overrides.items():
        if key == "ip_forward":
            out["net.ipv4.ip_forward"] = value
        elif key == "all.rp_filter":
            out["net.ipv4.conf.all.rp_filter"] = value
        else:
            dev, name = key.rsplit(".", 1)
            out["interfaces"][dev][name] = value
    return out


def pod_info(pod_snap, peer, probe_ok=True):
    return {"netns": "/proc/4242/ns/net", "note": "the network namespace of process 4242 (pause)",
            "snapshot": pod_snap, "lookup": kernel_lookup(pod_snap, peer),
            "probe": {"ran": True, "ok": probe_ok, "attempts": 1 if probe_ok else 2}}


def half(host, snap, src, dst, *, node_ip=None, sysctl=None, pods=None, intended_ip=None):
    """What calico_trace returns on this node, with kernel_lookup as the kernel."""
    lookups = {ip: kernel_lookup(snap, ip) for ip in (src, dst)}
    owned = [ip for ip in (src, dst) if _trace.owns(ip, lookups[ip], _trace.covering_routes(snap["routes"], ip))]
    underlay = {}
    for ip in (src, dst):
        under = None if ip in owned else _trace.underlay_target(lookups[ip], snap["neighbours"], snap["fdb"])
        if under and under["target"]:
            underlay[under["target"]] = kernel_lookup(snap, under["target"])
    return _trace.node_half(host=host, src=src, dst=dst, snapshot=snap, lookups=lookups,
                            sysctls=sysctl or sysctls(snap), underlay_lookups=underlay, pods=pods, node_ip=node_ip,
                            node_ip_source="bird_router_id" if node_ip else None, intended_ip=intended_ip)


def seed003(*, a_sysctl=None, b_sysctl=None, a=None, b=None, pod_a=None, probe_ok=True):
    node_a, node_b = seeds.seed003_nodes()
    node_a, node_b = a or node_a, b or node_b
    snap_pa, snap_pb = seeds.seed003_pods()
    snap_pa = pod_a or snap_pa
    ha = half("dev-slave-107", node_a, POD_A, POD_B, node_ip="10.39.0.107", sysctl=a_sysctl and a_sysctl(node_a),
              pods={POD_A: pod_info(snap_pa, POD_B, probe_ok)})
    hb = half("dev-slave-140", node_b, POD_A, POD_B, node_ip="10.39.0.140", sysctl=b_sysctl and b_sysctl(node_b),
              pods={POD_B: pod_info(snap_pb, POD_A, probe_ok)})
    return ha, hb


def failing(result):
    return [s["n"] for s in result["steps"] if not s["ok"]]


# --- seed 003 --------------------------------------------------------------------------------

def test_seed003_healthy_every_step_passes_with_the_seeds_evidence():
    ha, hb = seed003()
    assert ha["owns"] == [POD_A] and hb["owns"] == [POD_B]
    result = judge.trace(ha, hb, POD_A, POD_B)
    assert failing(result) == [] and result["first_failure"] is None and result["finding"] is None
    steps = {s["n"]: s for s in result["steps"]}
    assert [steps[n]["direction"] for n in range(1, 9)] == ["send"] * 4 + ["reply"] * 4
    assert [steps[n]["node"] for n in range(1, 9)] == ["dev-slave-107", "dev-slave-107", "dev-slave-140",
                                                       "dev-slave-140", "dev-slave-140", "dev-slave-140",
                                                       "dev-slave-107", "dev-slave-107"]
    one = steps[1]["evidence"]
    # The seed's three checks of pod A: the workload route, the veth's MAC, and the pod's ARP entry.
    assert one["workload_route"] == "192.168.8.42 dev cali69de609d5af scope link"
    assert one["veth"] == {"up": True, "operstate": "UP", "mac": "ea:88:97:5f:06:d9"}
    assert one["pod_side"]["gateway_neighbour"] == seeds.SEED003_A_POD_NEIGH.strip()
    assert one["pod_side"]["route"] == "192.168.60.173 via 169.254.1.1 dev eth0 src 192.168.8.42"
    assert steps[2]["evidence"]["routes"][0] == seeds.SEED003_REMOTE_ROUTE
    assert steps[2]["evidence"]["lookup"] == "192.168.60.173 via 10.39.0.140 dev eth0 src 10.39.0.107"
    assert steps[2]["evidence"]["peer_block"] == "192.168.60.128/26"
    assert steps[4]["evidence"]["workload_route"] == seeds.SEED003_B_WORKLOAD_ROUTE
    assert result["probe"]["send"] == {"node": "dev-slave-107", "from": POD_A, "to": POD_B, "ran": True, "ok": True,
                                       "attempts": 1}
    assert judge.render(result)[-1] == "all 8 steps pass"


def test_seed003_pod_gateway_resolving_to_another_mac_fails_step_1():
    pod_a = iptext.snapshot(seeds.SEED003_A_POD_ADDR, seeds.SEED003_POD_ROUTES,
                            "169.254.1.1 dev eth0 lladdr 02:42:ac:11:00:02 REACHABLE\n")
    result = judge.trace(*seed003(pod_a=pod_a), POD_A, POD_B)
    assert failing(result) == [1]
    assert result["first_failure"]["evidence"]["problems"] == [
        "the pod resolved 169.254.1.1 to 02:42:ac:11:00:02, not cali69de609d5af's MAC ea:88:97:5f:06:d9"]


def test_proxy_arp_off_is_step_1_on_the_source_node_and_step_5_on_the_destination():
    result = judge.trace(*seed003(a_sysctl=lambda s: sysctls(s, **{"cali69de609d5af.proxy_arp": 0})), POD_A, POD_B)
    assert failing(result) == [1]
    first = result["first_failure"]
    assert first["node"] == "dev-slave-107" and "proxy_arp=0 on cali69de609d5af" in first["evidence"]["problems"][0]
    assert first["remedy"].startswith("`sysctl -w net.ipv4.conf.cali69de609d5af.proxy_arp=1` on dev-slave-107")
    # Pod B gets the request (the node reaches it by its permanent neighbour entry) but cannot
    # resolve its gateway to answer: the reply's first step.
    result = judge.trace(*seed003(b_sysctl=lambda s: sysctls(s, **{"calie664becc2fd.proxy_arp": 0})), POD_A, POD_B)
    assert failing(result) == [5] and result["first_failure"]["node"] == "dev-slave-140"


def test_ip_forward_off_on_the_source_stops_proxy_arp_and_forwarding():
    result = judge.trace(*seed003(a_sysctl=lambda s: {**sysctls(s), "net.ipv4.ip_forward": 0}), POD_A, POD_B)
    # The kernel proxies ARP only on interfaces that forward: the packet never leaves pod A.
    assert failing(result) == [1, 2, 8]
    assert result["first_failure"]["evidence"]["problems"][0].startswith(
        "net.ipv4.ip_forward=0 on dev-slave-107: the kernel proxies ARP only on an interface that forwards")
    assert result["first_failure"]["remedy"].startswith("`sysctl -w net.ipv4.ip_forward=1` on dev-slave-107")


def test_ip_forward_off_on_the_destination_is_step_4():
    result = judge.trace(*seed003(b_sysctl=lambda s: {**sysctls(s), "net.ipv4.ip_forward": 0}), POD_A, POD_B)
    assert failing(result) == [4, 5, 6]
    assert result["first_failure"]["evidence"]["problems"] == [
        "net.ipv4.ip_forward=0 on dev-slave-140: it forwards no pod traffic"]
    result = judge.trace(*seed003(b_sysctl=lambda s: sysctls(s, **{"eth0.forwarding": 0})), POD_A, POD_B)
    assert failing(result)[0] == 4
    assert "net.ipv4.conf.eth0.forwarding=0" in result["first_failure"]["evidence"]["problems"][0]


def test_missing_remote_block_route_is_step_2_falling_through_to_the_default_route():
    node_a, _b = seeds.seed003_nodes()
    node_a["routes"] = [r for r in node_a["routes"] if r["dst"] != "192.168.60.128/26"]
    result = judge.trace(*seed003(a=node_a, probe_ok=False), POD_A, POD_B)
    assert failing(result) == [2, 3]
    first = result["first_failure"]
    assert first["evidence"]["problems"] == [
        "dev-slave-107 has no route for 192.168.60.128/26; the lookup falls through to "
        "`default via 10.39.0.1 dev eth0 proto static`"]
    assert "BIRD learns it over BGP" in first["remedy"] and "RT002" in first["remedy"]
    assert result["finding"]["id"] == "PATH001" and result["finding"]["severity"] == "critical"
    assert result["finding"]["host"] == "dev-slave-107" and result["finding"]["peer"] == "dev-slave-140"


def test_a_next_hop_that_does_not_answer_fails_step_2():
    node_a, _b = seeds.seed003_nodes()
    node_a["neighbours"] = iptext.parse_ip_neigh("10.39.0.140 dev eth0  FAILED\n", node_a["links"])
    result = judge.trace(*seed003(a=node_a, probe_ok=False), POD_A, POD_B)
    assert failing(result) == [2]
    assert result["first_failure"]["evidence"]["problems"] == [
        "10.39.0.140 does not answer ARP on eth0 (failed): dev-slave-107 cannot reach 10.39.0.140, "
        "dev-slave-140's registered IP"]
    assert result["first_failure"]["evidence"]["underlay_neighbour"] == "10.39.0.140 dev eth0 FAILED"


def test_a_down_veth_on_the_destination_is_step_4():
    _a, node_b = seeds.seed003_nodes()
    veth = next(link for link in node_b["links"] if link["name"] == "calie664becc2fd")
    veth["operstate"] = "LOWERLAYERDOWN"
    result = judge.trace(*seed003(b=node_b), POD_A, POD_B)
    assert failing(result) == [4, 5]
    assert result["first_failure"]["evidence"]["problems"] == [
        "calie664becc2fd on dev-slave-140 is LOWERLAYERDOWN (its peer, the pod's eth0, is down)"]


def test_a_missing_workload_route_fails_steps_1_and_8_and_the_node_still_owns_the_pod_by_its_block():
    node_a, _b = seeds.seed003_nodes()
    node_a["routes"] = [r for r in node_a["routes"] if r["dst"] != "192.168.8.42/32"]
    ha, hb = seed003(a=node_a)
    assert ha["owns"] == [POD_A] and ha["pods"][POD_A]["route"] is None
    result = judge.trace(ha, hb, POD_A, POD_B)
    assert failing(result) == [1, 8]
    assert result["first_failure"]["evidence"]["problems"][0] == (
        "dev-slave-107 has no workload route `192.168.8.42 dev cali* scope link`")


def test_a_failing_step_with_an_answered_probe_is_a_warning():
    result = judge.trace(*seed003(a_sysctl=lambda s: sysctls(s, **{"cali69de609d5af.proxy_arp": 0})), POD_A, POD_B)
    assert result["finding"]["severity"] == "warning"
    assert result["finding"]["summary"].endswith("(the probe still got a reply: this breaks once caches expire or "
                                                 "routes are re-read)")


def test_every_step_passing_but_no_reply_points_at_what_the_trace_does_not_read():
    result = judge.trace(*seed003(probe_ok=False), POD_A, POD_B)
    assert result["first_failure"] is None
    finding = result["finding"]
    assert finding["severity"] == "critical" and "every step passes" in finding["summary"]
    assert "iptables" in finding["remedy"]
    assert judge.render(result)[-1] == finding["summary"]


def test_without_the_pod_namespace_the_pod_side_is_skipped_not_faked():
    node_a, node_b = seeds.seed003_nodes()
    note = "no process's network namespace and none under /run/netns holds 192.168.8.42"
    ha = half("a", node_a, POD_A, POD_B, node_ip="10.39.0.107",
              pods={POD_A: {"netns": None, "note": note, "snapshot": None, "lookup": None, "probe": None}})
    hb = half("b", node_b, POD_A, POD_B, node_ip="10.39.0.140")
    result = judge.trace(ha, hb, POD_A, POD_B)
    assert failing(result) == []
    assert result["steps"][0]["evidence"]["pod_side"] == f"not read: {note}"
    assert result["probe"]["send"] == {"node": "a", "from": POD_A, "to": POD_B, "ran": False, "ok": None,
                                       "note": note}
    assert result["finding"] is None
    assert judge.render(result)[-3] == f"probe {POD_A} -> {POD_B} on a: not run ({note})"


# --- seed 001 --------------------------------------------------------------------------------

NODE1_PODS = ["cali1f2e3d4c5b6"]


def seed001_node1():
    """az3-k8s-10: 192.168.0.110 + 192.168.3.110 (registered), block 10.122.17.64/26, pod .65."""
    return iptext.snapshot(seeds._two_nic_addr(110, "10.122.17.64", NODE1_PODS), """\
default via 192.168.0.253 dev eth0
blackhole 10.122.17.64/26 proto bird
10.122.17.65 dev cali1f2e3d4c5b6 scope link
10.122.124.128/26 via 192.168.0.111 dev tunl0 proto bird onlink
10.122.127.128/26 via 192.168.3.112 dev tunl0 proto bird onlink
10.122.157.128/26 via 192.168.3.113 dev tunl0 proto bird onlink
192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.110
192.168.3.0/24 dev eth1 proto kernel scope link src 192.168.3.110
""")


def seed001_node2():
    """az3-k8s-11: only eth0 (192.168.0.111, registered), block 10.122.124.128/26, pod .129."""
    return iptext.snapshot(seeds.NODE2_ADDR, """\
default via 192.168.0.253 dev eth0
10.122.17.64/26 via 192.168.3.110 dev tunl0 proto bird onlink
blackhole 10.122.124.128/26 proto bird
10.122.124.129 dev cali0a1b2c3d4e5 scope link
10.122.127.128/26 via 192.168.3.112 dev tunl0 proto bird onlink
10.122.157.128/26 via 192.168.3.113 dev tunl0 proto bird onlink
192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.111
""")


def test_seed001_case1_stale_next_hop_is_step_2_and_the_fixed_route_passes():
    src, dst = "10.122.127.129", "10.122.17.65"      # node3's pod -> node1's pod
    node1 = half("az3-k8s-10", seed001_node1(), src, dst, node_ip="192.168.3.110")
    node3 = half("az3-k8s-13", seeds.node3(stale=True), src, dst, node_ip="192.168.3.112")
    result = judge.trace(node3, node1, src, dst)
    assert result["mode"] == "ipip"
    assert failing(result) == [2, 3]
    first = result["first_failure"]
    assert first["evidence"]["routes"][0] == seeds.NODE3_STALE_ROUTE
    assert first["evidence"]["problems"][0] == (
        "next hop 10.122.127.128 is not az3-k8s-10 (its Calico IP 192.168.3.110, tunnel address 10.122.17.64)")
    assert "ip route replace 10.122.17.64/26 via 192.168.3.110 dev tunl0 onlink" in first["remedy"]
    assert result["steps"][2]["evidence"]["problems"] == [
        "az3-k8s-10 does not receive it: az3-k8s-13 sends it to 10.122.127.128, which is not az3-k8s-10's"]

    node3 = half("az3-k8s-13", seeds.node3(stale=False), src, dst, node_ip="192.168.3.112")
    result = judge.trace(node3, node1, src, dst)
    assert failing(result) == []
    assert result["steps"][1]["evidence"]["routes"][0] == seeds.NODE3_FIXED_ROUTE


@pytest.mark.parametrize(("fixed", "failed"), [(False, [3]), (True, [])])
def test_seed001_case2_outer_source_the_peer_drops_is_step_3(fixed, failed):
    src, dst = "10.122.157.129", "10.122.124.129"    # node4's pod -> node2's pod
    node4 = half("az3-k8s-14", seeds.node4(fixed=fixed), src, dst, node_ip="192.168.3.113")
    node2 = half("az3-k8s-11", seed001_node2(), src, dst, node_ip="192.168.0.111")
    result = judge.trace(node4, node2, src, dst)
    assert failing(result) == failed
    three = result["steps"][2]
    if fixed:
        assert three["evidence"]["outer_source"] == "192.168.3.113"
        return
    assert three["node"] == "az3-k8s-11"
    assert three["evidence"]["problems"] == [
        "az3-k8s-14 sends the encapsulated packets from 192.168.0.113, but az3-k8s-11 accepts them only from Calico "
        "node IPs (ipset cali40all-hosts-net / all-vxlan-net), where az3-k8s-14 is 192.168.3.113: az3-k8s-11 drops "
        "them"]
    assert "src 192.168.3.113" in three["remedy"] and "SRC001" in three["remedy"]
    # The reply direction is the same path backwards: step 7 names the same drop.
    reverse = judge.trace(node2, node4, dst, src)
    assert failing(reverse) == [7]


def test_registered_ip_differing_from_the_intended_one_is_quoted():
    src, dst = "10.122.127.129", "10.122.17.65"
    node1 = half("az3-k8s-10", seed001_node1(), src, dst, node_ip="192.168.3.110", intended_ip="192.168.0.110")
    node3 = half("az3-k8s-13", seeds.node3(stale=False), src, dst, node_ip="192.168.3.112")
    two = judge.trace(node3, node1, src, dst)["steps"][1]
    assert two["ok"]
    assert two["evidence"]["peer_registered_ip"] == (
        "az3-k8s-10 registered 192.168.3.110 (bird_router_id), its intended IP is 192.168.0.110 (AD001)")


# --- VXLAN, rp_filter, one node --------------------------------------------------------------

VXLAN_PEER_ADDR = """\
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP
    link/ether 52:54:00:aa:00:12 brd ff:ff:ff:ff:ff:ff
    inet 192.0.2.12/24 brd 192.0.2.255 scope global eth0
5: vxlan.calico: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN
    link/ether 66:aa:bb:cc:dd:02 brd ff:ff:ff:ff:ff:ff
    vxlan id 4096 local 192.0.2.12 dev eth0 srcport 0 0 dstport 4789 nolearning ttl auto ageing 300
    inet 198.18.2.0/32 scope global vxlan.calico
8: cali9f8e7d6c5b4@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP
    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff link-netns cni-2
"""
VXLAN_PEER_ROUTES = """\
default via 192.0.2.1 dev eth0 proto static
198.18.1.0/26 via 198.18.1.0 dev vxlan.calico onlink
blackhole 198.18.2.0/26 proto 80
198.18.2.5 dev cali9f8e7d6c5b4 scope link
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.12
"""
VXLAN_PEER_NEIGH = "198.18.1.0 dev vxlan.calico lladdr 66:11:22:33:44:55 PERMANENT\n"
VXLAN_PEER_FDB = "66:11:22:33:44:55 dev vxlan.calico dst 192.0.2.11 self permanent\n"


def vxlan_pair(fdb=VXLAN_FDB):
    src, dst = "198.18.1.2", "198.18.2.5"
    node1 = iptext.snapshot(VXLAN_ADDR, """\
default via 192.0.2.1 dev eth0 proto static
blackhole 198.18.1.0/26 proto 80
198.18.1.2 dev cali1a2b3c4d5e6 scope link
198.18.2.0/26 via 198.18.2.0 dev vxlan.calico onlink
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.11
""", VXLAN_NEIGH, fdb)
    node2 = iptext.snapshot(VXLAN_PEER_ADDR, VXLAN_PEER_ROUTES, VXLAN_PEER_NEIGH, VXLAN_PEER_FDB)
    ip1, src1 = _trace.registered_ip(None, node1)
    ip2, _src2 = _trace.registered_ip(None, node2)
    assert (ip1, src1, ip2) == ("192.0.2.11", "vxlan_local", "192.0.2.12")
    h1 = _trace.node_half(host="node1", src=src, dst=dst, snapshot=node1,
                          lookups={ip: kernel_lookup(node1, ip) for ip in (src, dst)}, sysctls=sysctls(node1),
                          underlay_lookups={"192.0.2.12": kernel_lookup(node1, "192.0.2.12")}, node_ip=ip1)
    h2 = half("node2", node2, src, dst, node_ip=ip2)
    return h1, h2, src, dst


def test_vxlan_path_follows_the_vtep_neighbour_and_fdb():
    h1, h2, src, dst = vxlan_pair()
    assert h1["vxlan"] == {"device": "vxlan.calico", "local": "192.0.2.11", "mac": "66:11:22:33:44:55"}
    result = judge.trace(h1, h2, src, dst)
    assert failing(result) == []
    two, three = result["steps"][1]["evidence"], result["steps"][2]["evidence"]
    assert two["tunnel_neighbour"] == "198.18.2.0 dev vxlan.calico lladdr 66:aa:bb:cc:dd:02 PERMANENT"
    assert two["fdb"] == "66:aa:bb:cc:dd:02 dev vxlan.calico dst 192.0.2.12"
    assert two["underlay"] == "192.0.2.12 dev eth0 src 192.0.2.11"
    assert three["outer_source"] == "192.0.2.11" and three["received_at"] == "192.0.2.12 on eth0"


def test_vxlan_fdb_pointing_elsewhere_is_step_2():
    h1, h2, src, dst = vxlan_pair(fdb="66:aa:bb:cc:dd:02 dev vxlan.calico dst 192.0.2.99 self permanent\n")
    result = judge.trace(h1, h2, src, dst)
    assert failing(result)[0] == 2
    assert result["first_failure"]["evidence"]["problems"][0] == (
        "the FDB sends node2's VTEP traffic to 192.0.2.99, which is not node2's")
    assert "Felix programs" in result["first_failure"]["remedy"]


def test_strict_rp_filter_with_an_asymmetric_route_back_is_step_3():
    src, dst = "198.18.1.2", "198.18.2.9"
    node1 = iptext.snapshot("""\
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP
    link/ether 52:54:00:aa:00:11 brd ff:ff:ff:ff:ff:ff
    inet 192.0.2.11/24 brd 192.0.2.255 scope global eth0
7: cali1a2b3c4d5e6@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP
    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff link-netns cni-1
""", """\
blackhole 198.18.1.0/26 proto bird
198.18.1.2 dev cali1a2b3c4d5e6 scope link
198.18.2.0/26 via 192.0.2.12 dev eth0 proto bird
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.11
""")
    # node2 routes node1's block back over eth1 (a second uplink): asymmetric.
    node2_addr = """\
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP
    link/ether 52:54:00:aa:00:12 brd ff:ff:ff:ff:ff:ff
    inet 192.0.2.12/24 brd 192.0.2.255 scope global eth0
3: eth1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP
    link/ether 52:54:00:aa:01:12 brd ff:ff:ff:ff:ff:ff
    inet 198.51.100.12/24 brd 198.51.100.255 scope global eth1
9: cali5e6d7c8b9a0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP
    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff link-netns cni-1
"""
    node2 = iptext.snapshot(node2_addr, """\
198.18.1.0/26 via 198.51.100.11 dev eth1 proto bird
blackhole 198.18.2.0/26 proto bird
198.18.2.9 dev cali5e6d7c8b9a0 scope link
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.12
198.51.100.0/24 dev eth1 proto kernel scope link src 198.51.100.12
""")
    h1 = half("node1", node1, src, dst, node_ip="192.0.2.11")
    loose = judge.trace(h1, half("node2", node2, src, dst, node_ip="192.0.2.12"), src, dst)
    assert 3 not in failing(loose)
    h2 = half("node2", node2, src, dst, node_ip="192.0.2.12", sysctl=sysctls(node2, **{"all.rp_filter": 1}))
    three = judge.trace(h1, h2, src, dst)["steps"][2]
    assert not three["ok"]
    assert three["evidence"]["problems"] == [
        "strict rp_filter on node2's eth0 drops packets from 198.18.1.2: its route back leaves by eth1"]
    assert three["evidence"]["rp_filter"]["eth0"]["effective"] == 1
    assert "rp_filter=2" in three["remedy"]


def test_both_pods_on_one_node():
    snap = iptext.snapshot(VXLAN_ADDR + """\
8: cali0f0e0d0c0b0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP
    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff link-netns cni-2
""", """\
blackhole 198.18.1.0/26 proto 80
198.18.1.2 dev cali1a2b3c4d5e6 scope link
198.18.1.3 dev cali0f0e0d0c0b0 scope link
""")
    h = half("node1", snap, "198.18.1.2", "198.18.1.3", node_ip="192.0.2.11")
    assert h["owns"] == ["198.18.1.2", "198.18.1.3"]
    result = judge.combine({"node1": {"changed": False, "trace": h}}, "198.18.1.2", "198.18.1.3")
    assert failing(result) == []
    assert result["steps"][2]["evidence"]["same_node"] == "both pods are on node1: no packet crosses the network"
    assert result["src_node"] == result["dst_node"] == "node1"


def test_ipv6_pods_skip_the_ipv4_sysctls():
    src, dst = "2001:db8:1::2", "2001:db8:1::3"
    snap = iptext.snapshot(VXLAN_ADDR + """\
8: cali0f0e0d0c0b0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP
    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff link-netns cni-2
""", f"""\
blackhole 2001:db8:1::/122 proto 80
{src} dev cali1a2b3c4d5e6 metric 1024
{dst} dev cali0f0e0d0c0b0 metric 1024
""")
    # An IPv4 ip_forward=0 says nothing about IPv6 forwarding: no step fails on it.
    h = half("node1", snap, src, dst, sysctl={**sysctls(snap), "net.ipv4.ip_forward": 0})
    assert h["owns"] == [src, dst]
    result = judge.trace(h, h, src, dst)
    assert failing(result) == []
    assert result["steps"][0]["evidence"]["sysctls"] == judge.IPV6_SYSCTLS_NOTE
    with pytest.raises(ValueError, match="different IP versions"):
        judge.combine({"node1": h}, src, "198.18.1.3")


# --- the half, the fleet ---------------------------------------------------------------------

def test_a_node_owning_neither_pod_answers_with_owns_only():
    node_a, node_b = seeds.seed003_nodes()
    lookups = {ip: kernel_lookup(node_a, ip) for ip in ("192.168.60.173", "192.168.60.174")}
    assert not _trace.needs_routes(lookups)
    assert _trace.node_half(host="a", src="192.168.60.173", dst="192.168.60.174", snapshot=None,
                            lookups=lookups) == {"schema_version": 1, "host": "a", "owns": []}


def test_the_half_keeps_only_this_trace_s_veths():
    snap = seeds.node4()
    src, dst = "10.122.157.130", "10.122.124.129"
    h = half("az3-k8s-14", snap, src, dst, node_ip="192.168.3.113")
    assert sorted(h["links"]) == ["cali09e016ead53", "docker0", "eth0", "eth1", "lo", "tunl0"]
    assert sorted(h["sysctls"]["interfaces"]) == sorted(h["links"])
    assert h["pods"][src]["interface"] == "cali09e016ead53"
    assert [r["dst"] for r in h["paths"][dst]["routes"]] == ["10.122.124.128/26", "default"]
    assert h["paths"][dst]["underlay"]["target"] == "192.168.0.111"


def _results():
    ha, hb = seed003()
    return {"dev-slave-107": {"changed": False, "trace": ha}, "dev-slave-140": {"changed": False, "trace": hb},
            "other": {"changed": False, "trace": {"schema_version": 1, "host": "x", "owns": []}},
            "down": {"unreachable": True, "msg": "ssh: connect to host down port 22"}, "skipped": None}


def test_combine_picks_the_owners_and_renders_the_steps():
    result = judge.combine(_results(), POD_A, POD_B)
    assert (result["src_node"], result["dst_node"]) == ("dev-slave-107", "dev-slave-140")
    assert result["lines"][0] == "pod 192.168.8.42 (dev-slave-107) -> pod 192.168.60.173 (dev-slave-140), mode bgp"
    assert result["lines"][1].startswith("send  1 ok   dev-slave-107: pod 192.168.8.42 hands its packets")
    assert len(result["lines"]) == 12


def test_combine_names_the_first_failure_in_its_lines():
    ha, hb = seed003(b_sysctl=lambda s: {**sysctls(s), "net.ipv4.ip_forward": 0}, probe_ok=False)
    result = judge.combine({"a": ha, "b": hb}, POD_A, POD_B)
    assert result["lines"][4].startswith("send  4 FAIL b: b delivers to pod 192.168.60.173")
    assert result["lines"][-2] == "first failing step: 4 on b: net.ipv4.ip_forward=0 on b: it forwards no pod traffic"
    assert result["lines"][-1].startswith("remedy: `sysctl -w net.ipv4.ip_forward=1` on b")
    assert result["finding"]["summary"] == (
        "pod 192.168.8.42 (a) -> pod 192.168.60.173 (b): step 4 fails on b: net.ipv4.ip_forward=0 on b: it "
        "forwards no pod traffic")


def test_combine_errors_are_clear():
    with pytest.raises(ValueError, match=r"^src: 'pod-a' is not an IP address$"):
        judge.combine(_results(), "pod-a", POD_B)
    with pytest.raises(ValueError, match="same address"):
        judge.combine(_results(), POD_A, " 192.168.8.42")
    with pytest.raises(ValueError, match=r"no node owns dst 192\.168\.60\.9: none of the 3 node\(s\) that answered .*"
                                         r"No result from: down, skipped\.$"):
        judge.combine(_results(), POD_A, "192.168.60.9")
    twice = _results()
    twice["other"] = copy.deepcopy(twice["dev-slave-140"])
    with pytest.raises(ValueError, match=r"dst 192\.168\.60\.173 is claimed by dev-slave-140, other"):
        judge.combine(twice, POD_A, POD_B)


# --- small parts -----------------------------------------------------------------------------

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 4
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 169.254.1.1
        /32 link UNICAST
     |-- 198.18.129.1
        /32 host LOCAL
"""  # /proc/<pid>/net/fib_trie of a lab pod


def test_fib_trie_and_if_inet6_give_the_local_addresses():
    assert _trace.fib_trie_local_addresses(FIB_TRIE) == {"127.0.0.1", "198.18.129.1"}
    assert _trace.if_inet6_addresses(
        "20010db8000000000000000000000005 02 80 00 80     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n") == {"2001:db8::5", "::1"}


def test_covering_routes_most_specific_first():
    routes = iptext.parse_ip_route(seeds.NODE4_ROUTES_FIXED)
    assert [r["dst"] for r in _trace.covering_routes(routes, "10.122.157.129")] == [
        "10.122.157.129/32", "10.122.157.128/26", "default"]
    assert _trace.covering_routes(routes, "10.122.157.129", limit=1)[0]["dev"] == "cali19f6ea143e3"
    six = iptext.parse_ip_route("default via fe80::1 dev eth0\n2001:db8:1::/64 via fe80::2 dev eth0\n", family=6)
    assert [r["dst"] for r in _trace.covering_routes(six, "2001:db8:1::5")] == ["2001:db8:1::/64", "default"]
    assert _trace.covering_routes(routes, "2001:db8:1::5") == []


def test_registered_ip_order_and_ip_text():
    assert _trace.registered_ip("192.0.2.11", None, "192.0.2.99") == ("192.0.2.11", "bird_router_id")
    assert _trace.registered_ip(None, None, "192.0.2.99/24") == ("192.0.2.99", "calico_node_env")
    assert _trace.registered_ip(None, None, "autodetect") == (None, None)
    assert _trace.ip_text(" 2001:DB8::1 ") == "2001:db8::1"
    with pytest.raises(ValueError, match="dst: '198.18.1.300' is not an IP address"):
        _trace.ip_text("198.18.1.300", "dst")
