"""Fleet cross-checks: the expected map, one node's drift, and the cross-node findings, on
fleets of facts (seed 001's IPIP cluster, healthy fleets in every mode)."""

import copy
import json

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect, _catalogue, _contract
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import (
    BIRD,
    BOOT,
    build,
    healthy,
    healthy_specs,
    link,
    refresh,
    route,
    seed_case1,
    seed_case2,
    seed_fleet,
)


def ids(findings, severities=("critical", "warning")):
    return sorted((f["id"], f["host"], f.get("peer")) for f in findings if f["severity"] in severities)


def all_routes(fact):
    return [r for key in ("local_blocks", "workloads", "tunnel", "remote_blocks", "other")
            for r in fact["routes"][key]]


# --- expected map -----------------------------------------------------------------------------

def test_expected_map_ipip_routes_blocks_to_the_owners_registered_ip():
    expected = _contract.expected_map(seed_fleet())
    assert expected["mode"] == "ipip"
    assert expected["complete"] is True
    assert expected["blocks"]["10.122.17.64/26"] == {"owner": "node1", "next_hop": "192.168.3.110",
                                                     "device": "tunl0", "onlink": True}
    # node2 has no 192.168.3.111: calico-node registered its 192.168.0.111 (BIRD router id).
    assert expected["nodes"]["node2"]["ip"] == "192.168.0.111"
    assert expected["nodes"]["node2"]["ip_source"] == "bird_router_id"
    assert expected["blocks"]["10.122.124.128/26"]["next_hop"] == "192.168.0.111"
    assert expected["nodes"]["node3"]["tunnel_address"] == "10.122.127.128"
    assert expected["nodes"]["node3"]["blocks"] == ["10.122.127.128/26"]
    assert expected["owners_conflicts"] == {}
    assert expected["prefixlens"] == [26]
    assert expected["pools"] == ["10.122.0.0/16"]
    assert expected["pools_source"] == "derived"


def test_expected_map_vxlan_routes_via_the_owners_tunnel_address():
    expected = _contract.expected_map(healthy("vxlan"))
    assert expected["mode"] == "vxlan"
    assert expected["blocks"]["198.18.2.0/26"] == {"owner": "node2", "next_hop": "198.18.2.0",
                                                   "device": "vxlan.calico", "onlink": True}
    node = expected["nodes"]["node2"]
    assert (node["ip"], node["ip_source"], node["vxlan_mac"]) == ("192.0.2.12", "vxlan_local", "66:00:00:00:00:02")


def test_expected_map_bgp_leaves_the_device_to_the_underlay():
    expected = _contract.expected_map(healthy("bgp"))
    assert expected["blocks"]["198.18.3.0/26"] == {"owner": "node3", "next_hop": "192.0.2.13", "device": None,
                                                   "onlink": None}


def test_identity_falls_back_to_the_ip_env_then_the_intended_ip():
    fact = healthy("bgp")["node1"]
    fact["bird"] = {"available": False, "router_id": None, "peers": []}
    fact["identity"]["calico_node"]["env"]["IP"] = "192.0.2.99/24"
    assert _contract.node_identity(fact, "192.0.2.11")["ip"] == "192.0.2.99"
    assert _contract.node_identity(fact)["ip_source"] == "calico_node_env"
    fact["identity"]["calico_node"]["env"]["IP"] = "autodetect"
    identity = _contract.node_identity(fact, "192.0.2.11")
    assert (identity["ip"], identity["ip_source"]) == ("192.0.2.11", "intended")
    assert _contract.node_identity(fact)["ip"] is None


def test_a_host_without_facts_stays_in_the_map_and_makes_it_incomplete():
    facts = seed_fleet()
    facts["node5"] = None
    expected = _contract.expected_map(facts, intended_ips={"node5": "192.168.3.114"})
    assert expected["complete"] is False
    assert expected["nodes"]["node5"] == {"ip": "192.168.3.114", "ip_source": "intended", "tunnel_address": None,
                                          "vxlan_mac": None, "blocks": [], "facts": False}
    assert "10.122.173.128/26" not in expected["blocks"]


def test_given_pools_replace_the_guess():
    expected = _contract.expected_map(seed_fleet(), pools=["10.122.0.0/17"])
    assert (expected["pools"], expected["pools_source"]) == (["10.122.0.0/17"], "given")


# --- route drift on one node ------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["ipip", "vxlan", "bgp"])
def test_a_healthy_node_has_no_drift(mode):
    facts = healthy(mode)
    expected = _contract.expected_map(facts)
    result = _contract.route_drift(all_routes(facts["node1"]), expected, "node1")
    assert result["drift"] == []
    assert (result["checked"], result["ok"]) == (3, 3)
    assert result["actions"] == {"add": [], "replace": [], "delete": []}


def test_seed_case1_stale_next_hop_is_drift_with_the_exact_replacement():
    facts = seed_case1()
    expected = _contract.expected_map(facts)
    result = _contract.route_drift(all_routes(facts["node3"]), expected, "node3")
    assert result["drift"] == [{
        "kind": "wrong_next_hop", "dst": "10.122.17.64/26", "owner": "node1",
        "have": {"gateway": "10.122.127.128", "dev": "tunl0", "onlink": False, "protocol": BOOT, "type": "unicast"},
        "want": {"gateway": "192.168.3.110", "dev": "tunl0", "onlink": True},
    }]
    # The route was added by hand (proto boot): the repair writes it as BIRD does, like the seed's fix.
    assert result["actions"]["replace"] == [{"dst": "10.122.17.64/26", "type": "unicast", "gateway": "192.168.3.110",
                                             "dev": "tunl0", "onlink": True, "protocol": BIRD}]
    assert (result["checked"], result["ok"]) == (4, 3)
    # It travels back from the node as JSON.
    assert json.loads(json.dumps(result)) == result


def test_missing_route_is_added_with_the_protocol_of_the_nodes_calico_routes():
    facts = seed_fleet()
    expected = _contract.expected_map(facts)
    routes = [r for r in all_routes(facts["node2"]) if r["dst"] != "10.122.157.128/26"]
    result = _contract.route_drift(routes, expected, "node2")
    assert [(d["kind"], d["dst"], d["owner"], d["have"]) for d in result["drift"]] == [
        ("missing", "10.122.157.128/26", "node4", None)]
    assert result["actions"]["add"] == [{"dst": "10.122.157.128/26", "type": "unicast", "gateway": "192.168.3.113",
                                         "dev": "tunl0", "onlink": True, "protocol": BIRD}]


def test_vxlan_missing_route_is_added_as_felix_does():
    facts = healthy("vxlan")
    expected = _contract.expected_map(facts)
    routes = [r for r in all_routes(facts["node1"]) if r["dst"] != "198.18.2.0/26"]
    add = _contract.route_drift(routes, expected, "node1")["actions"]["add"]
    assert add == [{"dst": "198.18.2.0/26", "type": "unicast", "gateway": "198.18.2.0", "dev": "vxlan.calico",
                    "onlink": True, "protocol": BOOT}]


@pytest.mark.parametrize(("change", "kind"), [
    ({"dev": "eth1", "onlink": False}, "wrong_device"),   # right next hop, not encapsulated
    ({"onlink": False}, "wrong_device"),                  # BIRD/Felix always set onlink on tunl0
    ({"gateway": "192.168.0.110"}, "wrong_next_hop"),     # node1's other NIC, not its registered IP
    ({"type": "unreachable", "gateway": None, "dev": None}, "wrong_next_hop"),
])
def test_wrong_device_and_next_hop(change, kind):
    facts = seed_fleet()
    expected = _contract.expected_map(facts)
    routes = all_routes(facts["node4"])
    target = next(r for r in routes if r["dst"] == "10.122.17.64/26")
    target.update(change)
    result = _contract.route_drift(routes, expected, "node4")
    assert [(d["kind"], d["dst"], d["owner"]) for d in result["drift"]] == [(kind, "10.122.17.64/26", "node1")]
    assert [r["dst"] for r in result["actions"]["replace"]] == ["10.122.17.64/26"]


def test_orphan_route_to_a_block_nobody_owns_is_deleted_only_with_a_complete_map():
    facts = seed_fleet()
    stale = route("10.122.200.0/26", "192.168.3.120", "tunl0", BIRD, onlink=True)
    routes = [*all_routes(facts["node1"]), stale]
    result = _contract.route_drift(routes, _contract.expected_map(facts), "node1")
    assert [(d["kind"], d["dst"], d["owner"]) for d in result["drift"]] == [("orphan", "10.122.200.0/26", None)]
    assert result["actions"]["delete"] == [{"dst": "10.122.200.0/26", "type": "unicast", "gateway": "192.168.3.120",
                                            "dev": "tunl0", "onlink": True, "protocol": BIRD}]
    # node5 did not answer: its blocks are unknown, so a route via an unknown next hop may be to one of them
    # (its own block's route is one of those two now).
    facts["node5"] = None
    result = _contract.route_drift(routes, _contract.expected_map(facts), "node1")
    assert result["drift"] == [] and result["actions"]["delete"] == []
    assert result["unverified"] == 2
    # Knowing node5's address (inventory) does not tell its blocks: the route to them stays unjudged.
    result = _contract.route_drift(routes, _contract.expected_map(facts, {"node5": "192.168.3.114"}), "node1")
    assert result["drift"] == [] and result["unverified"] == 2


def test_orphan_via_a_known_node_is_still_reported_with_an_incomplete_map():
    facts = seed_fleet()
    routes = [*all_routes(facts["node1"]), route("10.122.200.0/26", "192.168.3.112", "tunl0", BIRD, onlink=True)]
    facts["node5"] = None
    result = _contract.route_drift(routes, _contract.expected_map(facts), "node1")
    assert [d["kind"] for d in result["drift"]] == ["orphan"]
    assert result["actions"]["delete"] == []


def test_bgp_orphan_off_the_tunnel_needs_to_be_inside_a_pool():
    facts = healthy("bgp")
    expected = _contract.expected_map(facts)
    inside = route("198.18.77.0/26", "192.0.2.99", "eth0", BIRD)
    outside = route("203.0.113.0/24", "192.0.2.1", "eth0", BIRD)  # learned from an external BGP peer
    result = _contract.route_drift([*all_routes(facts["node1"]), inside, outside], expected, "node1")
    assert [(d["kind"], d["dst"]) for d in result["drift"]] == [("orphan", "198.18.77.0/26")]


def test_a_calico_route_inside_a_known_block_is_not_an_orphan():
    facts = seed_fleet()
    inside = route("10.122.17.96/27", "192.168.3.110", "tunl0", BIRD, onlink=True)
    result = _contract.route_drift([*all_routes(facts["node2"]), inside], _contract.expected_map(facts), "node2")
    assert result["drift"] == []


def test_non_calico_routes_are_ignored_unless_they_shadow_a_block():
    facts = seed_fleet()
    expected = _contract.expected_map(facts)
    shadow = route("10.122.17.64/28", "192.168.0.1", "eth0", 4)
    unrelated = route("172.17.0.0/16", None, "docker0", 2, scope="link")
    borrowed = route("10.122.17.99/32", "192.168.3.112", "tunl0", BIRD, onlink=True)  # a borrowed pod IP
    result = _contract.route_drift([*all_routes(facts["node2"]), shadow, unrelated, borrowed], expected, "node2")
    assert [(d["kind"], d["dst"], d["owner"], d.get("block")) for d in result["drift"]] == [
        ("shadow", "10.122.17.64/28", "node1", "10.122.17.64/26")]
    assert result["actions"] == {"add": [], "replace": [], "delete": []}


def test_the_lowest_metric_route_is_the_one_judged():
    facts = seed_fleet()
    expected = _contract.expected_map(facts)
    routes = all_routes(facts["node2"])
    static = route("10.122.17.64/26", "192.168.0.1", "eth0", 4, metric=100)
    assert _contract.route_drift([*routes, static], expected, "node2")["drift"] == []
    bird = next(r for r in routes if r["dst"] == "10.122.17.64/26")
    bird["metric"], static["metric"] = 10, 5
    drift = _contract.route_drift([static, *routes], expected, "node2")["drift"]
    assert [(d["kind"], d["have"]["gateway"]) for d in drift] == [("wrong_next_hop", "192.168.0.1")]


def test_cross_subnet_accepts_the_unencapsulated_route_to_a_same_subnet_owner():
    facts = seed_fleet()
    routes = all_routes(facts["node4"])
    target = next(r for r in routes if r["dst"] == "10.122.17.64/26")
    target.update(dev="eth1", onlink=False)
    assert _contract.route_drift(routes, _contract.expected_map(facts), "node4")["drift"]
    assert _contract.route_drift(routes, _contract.expected_map(facts, cross_subnet=True), "node4")["drift"] == []


def test_bgp_multipath_is_right_when_a_hop_is_the_owner():
    facts = healthy("bgp")
    routes = all_routes(facts["node1"])
    target = next(r for r in routes if r["dst"] == "198.18.2.0/26")
    target.update(gateway=None, multipath=[{"gateway": "192.0.2.12", "dev": "eth0", "onlink": False, "weight": 1},
                                           {"gateway": "192.0.2.254", "dev": "eth0", "onlink": False, "weight": 1}])
    assert _contract.route_drift(routes, _contract.expected_map(facts), "node1")["drift"] == []


def test_modes_without_main_table_block_routes_are_skipped():
    facts = healthy("bgp")
    for fact in facts.values():
        fact["calico"]["mode"] = "wireguard"
    result = _contract.route_drift(all_routes(facts["node1"]), _contract.expected_map(facts), "node1")
    assert result["drift"] == [] and "wireguard" in result["skipped"]


# --- fleet findings ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["ipip", "vxlan", "bgp"])
def test_healthy_fleets_have_no_findings(mode):
    expected, findings, hosts = _fleet.audit(healthy(mode))
    assert findings == []
    assert {h["status"] for h in hosts.values()} == {"ok"}
    assert hosts["node1"]["routes"] == {"checked": 3, "ok": 3, "by": "controller"}  # the facts carry full routes


def test_the_seed_fleet_itself_is_healthy():
    assert _fleet.audit(seed_fleet())[1] == []


def test_seed_case1_is_rt001_on_node3_naming_node1():
    expected, findings, hosts = _fleet.audit(seed_case1())
    assert ids(findings) == [("RT001", "node3", "node1")]
    finding = findings[0]
    assert finding["severity"] == "critical"
    assert finding["evidence"]["routes"] == ["10.122.17.64/26 via 10.122.127.128 dev tunl0"]
    assert finding["evidence"]["expected"] == ["10.122.17.64/26 via 192.168.3.110 dev tunl0 onlink"]
    assert finding["evidence"]["owner_ip"] == "192.168.3.110"
    # The stray next hop is node3's own tunnel address: named, so nobody has to look it up.
    assert finding["evidence"]["next_hops"] == {"10.122.127.128": "its own tunnel address"}
    assert "ip route replace 10.122.17.64/26 via 192.168.3.110 dev tunl0 proto bird onlink" in finding["remedy"]
    assert hosts["node3"]["routes"]["wrong_next_hop"] == 1


def test_seed_case2_is_src001_from_every_dual_homed_node_towards_node2():
    expected, findings, _hosts = _fleet.audit(seed_case2())
    assert ids(findings) == [("SRC001", f"node{i}", "node2") for i in (1, 3, 4, 5)]
    node4 = next(f for f in findings if f["host"] == "node4")
    assert node4["severity"] == "critical"
    assert node4["evidence"]["route_get"] == ["192.168.0.111 dev eth0 src 192.168.0.113"]
    assert node4["evidence"]["calico_ip"] == "192.168.3.113"
    assert node4["evidence"]["calico_interface"] == "eth1"
    assert "ip route replace 192.168.0.111/32 dev eth0 src 192.168.3.113" in node4["remedy"]


def test_src001_leaving_by_another_interface_with_the_right_source():
    facts = seed_fleet()
    facts["node4"]["peer_routes"]["192.168.0.111"] = {"prefsrc": "192.168.3.113", "dev": "eth0", "gateway": None}
    findings = _fleet.audit(facts)[1]
    assert [(f["id"], f["severity"], f["host"], f.get("peer")) for f in findings] == [
        ("SRC001", "warning", "node4", "node2")]


def test_src001_groups_many_peers_into_one_finding():
    specs = healthy_specs(14)
    facts = healthy("ipip", 14)
    for spec in specs[1:]:
        facts["node1"]["peer_routes"][spec["ip"]] = {"prefsrc": "192.0.2.200", "dev": "eth0", "gateway": None}
    findings = _fleet.audit(facts)[1]
    assert len(findings) == 1
    assert findings[0].get("peer") is None
    assert findings[0]["evidence"]["count"] == 13
    assert len(findings[0]["evidence"]["peers"]) == _fleet.EVIDENCE_LIMIT


def test_rt002_missing_orphan_and_double_owned():
    facts = seed_fleet()
    remote = facts["node2"]["routes"]["remote_blocks"]
    remote[:] = [r for r in remote if r["dst"] != "10.122.157.128/26"]
    facts["node1"]["routes"]["remote_blocks"].append(route("10.122.200.0/26", "192.168.3.120", "tunl0", onlink=True))
    facts["node5"]["calico"]["local_blocks"].append("10.122.127.128/26")  # node3's block
    findings = _fleet.audit(facts)[1]
    rt002 = {f["evidence"]["kind"]: f for f in findings if f["id"] == "RT002"}
    assert (rt002["missing"]["host"], rt002["missing"]["peer"], rt002["missing"]["severity"]) == (
        "node2", "node4", "critical")
    assert rt002["missing"]["evidence"]["expected"] == ["10.122.157.128/26 via 192.168.3.113 dev tunl0 onlink"]
    assert (rt002["orphan"]["host"], rt002["orphan"].get("peer"), rt002["orphan"]["severity"]) == (
        "node1", None, "warning")
    assert rt002["orphan"]["evidence"]["routes"] == ["10.122.200.0/26 via 192.168.3.120 dev tunl0 proto bird onlink"]
    assert rt002["double_owned"]["evidence"]["claimants"] == ["node3", "node5"]
    assert (rt002["double_owned"]["host"], rt002["double_owned"]["peer"]) == ("node3", "node5")
    # The doubly-owned block's routes are not judged: nobody knows the right next hop.
    assert not [f for f in findings if f["id"] == "RT001"]


def test_a_node_that_lost_every_route_gets_one_finding_per_kind():
    facts = healthy("ipip", 14)
    facts["node1"]["routes"]["remote_blocks"] = []
    rt002 = [f for f in _fleet.audit(facts)[1] if f["id"] == "RT002"]
    assert len(rt002) == 1
    assert rt002[0]["evidence"]["count"] == 13
    assert rt002[0].get("peer") is None


def test_drift_sent_by_the_nodes_is_used_instead_of_the_facts():
    facts = seed_fleet()
    expected = _contract.expected_map(facts)
    routes = all_routes(seed_case1()["node3"])
    for fact in facts.values():
        fact["routes"]["remote_blocks"] = {"count": 4, "by_device": {"tunl0": 4}, "by_protocol": {"bird": 4}}
    drift = {"node3": _contract.route_drift(routes, expected, "node3")}
    assert ids(_fleet.fleet_findings(facts, expected)) == []
    assert ids(_fleet.fleet_findings(facts, expected, drift_by_host=drift)) == [("RT001", "node3", "node1")]


def test_without_drift_the_nodes_own_route_finding_stays():
    """Facts with summarised remote routes and no drift results: the node-local RT001 (routes
    pointing back into the node) is all there is; with the drift, the fleet's RT001 names the owner."""
    facts = seed_case1()
    routes = [r for key in ("local_blocks", "workloads", "tunnel", "remote_blocks", "other")
              for r in facts["node3"]["routes"][key]]
    for fact in facts.values():
        fact["routes"]["remote_blocks"] = {"count": 4, "by_device": {"tunl0": 4}, "by_protocol": {"bird": 4}}
    expected = _contract.expected_map(facts)
    alone = _fleet.fleet_findings(facts, expected)
    assert [(f["id"], f["severity"], f["host"], f["peer"]) for f in alone] == [("RT001", "warning", "node3", None)]
    drift = {"node3": _contract.route_drift(routes, expected, "node3")}
    together = _fleet.fleet_findings(facts, expected, drift_by_host=drift)
    assert [(f["id"], f["severity"], f["host"], f["peer"]) for f in together] == [
        ("RT001", "critical", "node3", "node1")]


def test_dup001_two_nodes_with_one_ip():
    facts = healthy("ipip")
    facts["node2"]["bird"]["router_id"] = "192.0.2.11"
    dup = [f for f in _fleet.audit(facts)[1] if f["id"] == "DUP001"]
    assert [(f["host"], f["peer"], f["evidence"]["address"]) for f in dup] == [("node1", "node2", "192.0.2.11")]


def test_mtu001_names_the_odd_node():
    facts = healthy("vxlan")
    facts["node3"]["calico"]["tunnel"]["mtu"] = 1410
    mtu = [f for f in _fleet.audit(facts)[1] if f["id"] == "MTU001"]
    assert [(f["host"], f["evidence"]["mtu"]) for f in mtu] == [("node3", 1410)]
    assert mtu[0]["evidence"]["fleet_mtus"] == {"1450": 3, "1410": 1}


def test_bgp001_session_down_and_mesh_peer_that_is_no_node():
    facts = seed_fleet()
    peers = facts["node1"]["bird"]["peers"]
    peers[0].update(state="start", info="Active Socket: Connection refused")  # node2
    peers[1].update(address="192.168.0.112", name="Mesh_192_168_0_112")  # node3's eth0, not its Calico IP
    findings = _fleet.audit(refresh(facts))[1]
    bgp = sorted((f["host"], f.get("peer"), f["summary"], f["evidence"]) for f in findings if f["id"] == "BGP001")
    assert [(h, p) for h, p, _s, _e in bgp] == [("node1", "node2"), ("node1", "node3")]
    # The node-local finding names the peer by address; the fleet names the node.
    assert "not Established" in bgp[0][2] and bgp[0][3]["peer_address"] == "192.168.0.111"
    assert "192.168.0.112 (node3's address on eth0, registered as 192.168.3.112)" in bgp[1][2]


def new_nic(host):
    """Seed 004: a NIC added after install; first-found walks the newest link first."""
    def edit(name, snapshot):
        if name == host:
            snapshot["links"].append({k: v for k, v in link(9, "vmbr1", kind="bridge").items() if k != "addresses"})
            snapshot["addresses"].append({"index": 9, "family": 4, "address": "203.0.113.5", "prefixlen": 24,
                                          "scope": "global", "flags": ["permanent"], "label": "vmbr1"})
    return edit


def test_ad002_new_nic_changes_the_pick_and_one_method_fits_the_fleet():
    facts = seed_fleet(new_nic("node3"))
    findings = _fleet.audit(facts)[1]
    assert ids(findings) == [("AD002", "node3", None)]
    evidence = findings[0]["evidence"]
    assert evidence["predicted"] == "203.0.113.5/24"
    method = evidence["recommended_method"]
    assert method and f"IP_AUTODETECTION_METHOD={method}" in findings[0]["remedy"]
    assert "node_local_remedy" in evidence
    # The recommendation is honest: replayed on every node it picks the registered IP.
    nodes = _contract.expected_map(facts)["nodes"]
    for host, fact in facts.items():
        snap = _autodetect.snapshot_from_fact_links(fact["links"])
        picked = _autodetect.autodetect(snap, method, 4, calico_version="3.30")["address"].split("/")[0]
        assert picked == nodes[host]["ip"], host


def test_ad002_in_vxlan_mode_compares_with_the_vxlan_local_address():
    """Without BIRD the node alone does not know its registered IP; the fleet reads vxlan.calico's local."""
    facts = build("vxlan", healthy_specs(), edit=new_nic("node2"))
    findings = _fleet.audit(facts)[1]
    assert ids(findings) == [("AD002", "node2", None)]
    assert findings[0]["evidence"]["registered_source"] == "vxlan_local"
    assert findings[0]["evidence"]["recommended_method"]


def test_ad001_registered_ip_is_not_the_intended_one():
    facts = seed_fleet()
    intended = {f"node{i}": f"192.168.3.{109 + i}" for i in (1, 3, 4, 5)} | {"node2": "192.168.0.111"}
    facts["node4"]["bird"]["router_id"] = "192.168.0.113"
    findings = _fleet.audit(refresh(facts), intended_ips=intended)[1]
    ad = [f for f in findings if f["id"].startswith("AD")]
    # Registered with the wrong address now (AD001); first-found would move it back (AD002, node-local).
    assert [(f["id"], f["severity"], f["host"]) for f in ad] == [
        ("AD001", "critical", "node4"), ("AD002", "critical", "node4")]
    assert ad[0]["evidence"]["registered"] == "192.168.0.113"
    assert ad[0]["evidence"]["intended"] == "192.168.3.113"
    assert ad[0]["evidence"]["recommended_method"] == ad[1]["evidence"]["recommended_method"]


def test_ad001_the_method_picks_another_address_than_the_inventory_says():
    """Nothing registered is known (BIRD unreadable): the replay is compared with the inventory."""
    facts = healthy("bgp", 1)
    facts["node1"]["bird"] = {"available": False, "error": "no socket", "router_id": None, "peers": []}
    findings = _fleet.audit(refresh(facts), intended_ips={"node1": "192.0.2.50"})[1]
    assert ids(findings) == [("AD001", "node1", None)]
    finding = findings[0]
    assert (finding["evidence"]["predicted"], finding["evidence"]["intended"]) == ("192.0.2.11/24", "192.0.2.50")
    # 192.0.2.50 is on no interface: no method can pick it, and the remedy says so.
    assert finding["evidence"]["recommended_method"] is None
    assert "No single IP_AUTODETECTION_METHOD fits the fleet" in finding["remedy"]
    assert "pin IP=<address>" in finding["remedy"]


def test_a_pinned_ip_env_is_not_judged_by_the_replay():
    facts = seed_fleet(new_nic("node3"))
    facts["node3"]["identity"]["calico_node"]["env"]["IP"] = "192.168.3.112"
    assert ids(_fleet.audit(refresh(facts))[1]) == []


def test_unreachable_hosts_are_reported_and_the_rest_is_audited():
    facts = seed_case1()
    facts["node5"] = None
    _expected, findings, hosts = _fleet.audit(facts, unreachable={"node2": "UNREACHABLE! ssh timeout"})
    assert ids(findings) == [("RT001", "node3", "node1"), ("UNREACH", "node2", None), ("UNREACH", "node5", None)]
    node2 = next(f for f in findings if f["host"] == "node2")
    assert "ssh timeout" in node2["summary"]
    assert hosts["node5"]["status"] == "unreachable"
    assert hosts["node2"]["status"] == "unreachable"
    # node5's block is unknown now; the routes to it on the others are not taken for orphans.
    assert not [f for f in findings if f["id"] == "RT002"]


def test_node_local_findings_are_merged_and_not_repeated():
    facts = seed_case1()
    local = {"id": "RT001", "severity": "critical", "host": "node3", "peer": "node1", "summary": "from the node",
             "evidence": {}, "remedy": "x"}
    facts["node3"]["findings"] = [local]
    facts["node2"]["findings"] = [{"id": "NM001", "severity": "critical", "summary": "NM manages cali*",
                                   "evidence": {}, "remedy": "y"}]
    findings = _fleet.audit(facts)[1]
    assert ids(findings) == [("NM001", "node2", None), ("RT001", "node3", "node1")]
    assert next(f for f in findings if f["id"] == "RT001")["summary"] == "from the node"


def test_findings_are_worst_first():
    facts = seed_case1()
    facts["node1"]["findings"] = [{"id": "SYS001", "severity": "info", "host": "node1", "summary": "s",
                                   "evidence": {}, "remedy": "r"}]
    facts["node4"]["calico"]["tunnel"]["mtu"] = 1400
    severities = [f["severity"] for f in _fleet.audit(facts)[1]]
    assert severities == ["critical", "warning", "info"]


def test_every_finding_has_the_catalogue_shape():
    facts = seed_case2()
    facts.update({k: v for k, v in seed_case1().items() if k == "node3"})
    facts["node1"] = None
    for finding in _fleet.audit(facts)[1]:
        assert {"id", "severity", "host", "summary", "evidence", "remedy"} <= finding.keys()
        assert finding["severity"] in ("critical", "warning", "info")
        assert finding["remedy"] and finding["summary"]


def test_docs_findings_md_documents_exactly_the_catalogue():
    import pathlib
    import re

    doc = pathlib.Path(__file__).parents[4] / "docs" / "findings.md"
    headings = re.findall(r"^## (\S+) — ", doc.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert sorted(headings) == sorted(_catalogue.CATALOGUE)
    assert set(_fleet.CHECKS) == set(_catalogue.CATALOGUE)


# --- several clusters, inventory names ---------------------------------------------------------

def _aliased(facts, prefix, suffix=""):
    """The same nodes under other inventory names (their facts keep the hostnames nodeN)."""
    return {f"{prefix}{host}{suffix}": fact for host, fact in facts.items()}


def _serious(findings):
    return [(f["id"], f["host"]) for f in findings if f["severity"] in ("critical", "warning")]


def test_two_healthy_clusters_in_one_inventory_are_judged_apart():
    facts = {**_aliased(healthy("ipip"), "a-"), **_aliased(healthy("vxlan"), "b-")}
    clusters = {h: h.split("-", 1)[0] for h in facts}
    maps, findings, hosts = _fleet.audit_fleet(facts, clusters=clusters)
    assert set(maps) == {"a", "b"} and (maps["a"]["mode"], maps["b"]["mode"]) == ("ipip", "vxlan")
    assert _serious(findings) == []
    assert {hosts[h]["cluster"] for h in facts} == {"a", "b"} and hosts["b-node2"]["cluster"] == "b"
    # As one cluster (no calico_cluster), every node would be expected to route the other cluster's
    # blocks: the grouping is what keeps them apart.
    _maps, merged, _hosts = _fleet.audit_fleet(facts)
    assert any(i in ("RT002", "CL001", "DUP001") for i, _h in _serious(merged))


def test_a_fault_in_one_cluster_is_named_on_that_node_only():
    def lose_route(host, snapshot):
        if host == "node3":  # node3 lost its route to node1's block
            snapshot["routes"] = [r for r in snapshot["routes"] if r["dst"] != "198.18.1.0/26"]

    facts = {**_aliased(healthy("ipip"), "a-"), **_aliased(build("ipip", healthy_specs(), edit=lose_route), "b-")}
    _maps, findings, _hosts = _fleet.audit_fleet(facts, clusters={h: h[0] for h in facts})
    serious = _serious(findings)
    assert serious and {h for _i, h in serious} == {"b-node3"}
    assert all(f["cluster"] == "b" for f in findings if f["host"] == "b-node3")


def test_findings_are_filed_under_the_inventory_name_not_the_hostname():
    facts = _aliased(healthy("ipip"), "", ".example.com")
    facts["node2.example.com"]["sysctls"]["net.ipv4.ip_forward"] = 0
    refresh(facts)
    assert facts["node2.example.com"]["findings"][0]["host"] == "node2"  # what the node itself says
    _maps, findings, hosts = _fleet.audit_fleet(facts)
    assert ("SYS001", "node2.example.com") in _serious(findings)
    assert {f["host"] for f in findings} <= set(facts)
    assert hosts["node2.example.com"]["hostname"] == "node2" and hosts["node2.example.com"]["status"] == "findings"
    # node2.example.com -> node2 is a domain, not another machine: no HOST001.
    assert not [f for f in findings if f["id"] == "HOST001"]


def test_two_hosts_with_one_hostname_are_one_calico_node():
    facts = healthy("ipip")
    facts["node4"]["hostname"] = "node3"
    facts["node4"]["identity"]["nodename_file"] = "node3"
    _maps, findings, _hosts = _fleet.audit_fleet(facts)
    dup = [f for f in findings if f["id"] == "DUP001"]
    assert [(f["host"], f["peer"], f["severity"]) for f in dup] == [("node3", "node4", "critical")]
    assert dup[0]["evidence"]["node_name"] == "node3"
    # The alias that names another machine is reported, at info only.
    host001 = [f for f in findings if f["id"] == "HOST001"]
    assert [(f["host"], f["severity"]) for f in host001] == [("node4", "info")]


def test_a_node_in_another_mode_than_its_cluster_is_a_finding_not_a_crash():
    facts = {**healthy("ipip"), "node9": healthy("vxlan", count=5)["node5"]}
    _maps, findings, _hosts = _fleet.audit_fleet(facts)
    cl = [(f["host"], f["severity"]) for f in findings if f["id"] == "CL001"]
    assert cl == [("node9", "critical")]


def test_blocks_outside_the_given_pools_are_a_finding():
    _maps, findings, _hosts = _fleet.audit_fleet(healthy("ipip"), pools=["198.18.1.0/24"])
    assert sorted(f["host"] for f in findings if f["id"] == "CL001") == ["node2", "node3", "node4"]


def test_pools_and_datastores_per_cluster():
    facts = {**_aliased(healthy("ipip"), "a-"), **_aliased(healthy("ipip"), "b-")}
    clusters = {h: h[0] for h in facts}
    _maps, findings, _hosts = _fleet.audit_fleet(facts, clusters=clusters,
                                                 pools={"a": ["198.18.0.0/16"], "b": ["198.18.0.0/24"]})
    assert {f["cluster"] for f in findings if f["id"] == "CL001"} == {"b"}
    with pytest.raises(ValueError, match="several clusters"):
        _fleet.audit_fleet(facts, clusters=clusters, datastore={"source": "etcd", "nodes": {}, "blocks": {}})
    with pytest.raises(ValueError, match="not a datastore view"):
        _fleet.audit_fleet(facts, clusters=clusters, datastore={"c": {}})


def test_a_host_without_calico_is_reported_once_and_judged_by_nothing_else():
    facts = healthy("ipip", count=3)
    bastion = copy.deepcopy(healthy("ipip", count=4)["node4"])  # its Calico parts are taken away below
    bastion["hostname"] = "bastion"
    bastion["identity"]["calico_node"] = None
    bastion["bird"] = {**bastion["bird"], "available": False, "router_id": None, "peers": [],
                       "error": "no such file: /var/run/calico/bird.ctl"}
    bastion["links"] = [lk for lk in bastion["links"] if lk["name"] != "tunl0"]
    bastion["routes"] = {k: ([] if isinstance(v, list) else v) for k, v in bastion["routes"].items()}
    bastion["calico"] = {**bastion["calico"], "mode": "none", "tunnel": None, "local_blocks": []}
    bastion["sysctls"]["net.ipv4.ip_forward"] = 0  # a pre-install host: SYS001 would be critical on a node
    bastion["route_digest"] = None
    facts["bastion"] = refresh({"bastion": bastion})["bastion"]
    assert [f["id"] for f in facts["bastion"]["findings"]] == ["NOCAL001"]
    _maps, findings, hosts = _fleet.audit_fleet(facts)
    assert [(f["id"], f["host"], f["severity"]) for f in findings] == [("NOCAL001", "bastion", "info")]
    assert hosts["bastion"]["status"] == "findings" and hosts["bastion"]["worst"] == "info"
