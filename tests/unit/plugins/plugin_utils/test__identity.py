"""Fleet identity clashes (DUP002) and BGP configuration (BGP002), through _fleet.audit."""

import copy

from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet, _identity
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import healthy, refresh


def with_host_config(facts):
    for i, fact in enumerate(sorted(facts)):
        facts[fact]["host_config"] = {"identity": {"machine_id_hash": f"{i:032x}", "machine_id_state": "ok"}}
    return facts


def serious(findings):
    return sorted(((f["id"], f["host"], f["peer"]) for f in findings if f["severity"] in ("critical", "warning")),
                  key=str)


def audit(facts):
    return _fleet.audit(refresh(facts))[1]


def test_healthy_fleets_have_no_clash():
    for mode in ("bgp", "ipip", "vxlan"):
        assert serious(audit(with_host_config(healthy(mode)))) == []


def test_cloned_machine_id_names_every_node_of_the_clash():
    facts = with_host_config(healthy("ipip"))
    for host in ("node2", "node4"):
        facts[host]["host_config"]["identity"]["machine_id_hash"] = "f" * 32
    found = audit(facts)
    dup = [f for f in found if f["id"] == "DUP002"]
    assert serious(dup) == [("DUP002", "node2", "node4"), ("DUP002", "node4", "node2")]
    assert dup[0]["severity"] == "warning" and dup[0]["evidence"]["hosts"] == ["node2", "node4"]
    assert dup[0]["evidence"]["value"] == "ffffffffffff... (keyed hash)"
    assert serious(found) == serious(dup)


def test_three_clones_each_get_a_finding():
    facts = with_host_config(healthy("bgp"))
    for host in ("node1", "node2", "node3"):
        facts[host]["hostname"] = "web"
    dup = [f for f in audit(facts) if f["id"] == "DUP002"]
    assert [(f["host"], f["peer"]) for f in dup] == [("node1", "node2"), ("node2", "node3"), ("node3", "node1")]
    assert dup[0]["evidence"]["field"] == "hostname" and dup[0]["evidence"]["count"] == 3


def test_vtep_mac_clash_is_critical():
    facts = with_host_config(healthy("vxlan"))
    facts["node3"]["calico"]["vxlan"]["mac"] = facts["node1"]["calico"]["vxlan"]["mac"].upper()
    dup = [f for f in audit(facts) if f["id"] == "DUP002"]
    assert {(f["host"], f["severity"], f["evidence"]["field"]) for f in dup} == {
        ("node1", "critical", "vxlan_mac"), ("node3", "critical", "vxlan_mac")}


def test_nodename_clash_already_dup001_is_not_repeated():
    facts = with_host_config(healthy("ipip"))
    facts["node2"]["identity"]["nodename_file"] = "node1"
    facts["node2"]["hostname"] = "node1"
    found = audit(facts)
    assert [f["evidence"]["field"] for f in found if f["id"] == "DUP002"] == []
    assert any(f["id"] == "DUP001" for f in found)
    # The file alone (NODENAME pins the name): DUP002
    facts = with_host_config(healthy("ipip"))
    facts["node2"]["identity"]["nodename_file"] = "node1"
    for host in facts:
        facts[host]["identity"]["calico_node"]["env"]["NODENAME"] = host
    dup = [f for f in audit(facts) if f["id"] == "DUP002"]
    assert {(f["host"], f["evidence"]["field"]) for f in dup} == {("node1", "nodename_file"),
                                                                  ("node2", "nodename_file")}


def test_router_id_clash_folds_the_down_sessions():
    facts = with_host_config(healthy("bgp"))
    facts["node3"]["bird"]["router_id"] = facts["node1"]["bird"]["router_id"]
    for a, b in (("node1", "node3"), ("node3", "node1")):
        for peer in facts[a]["bird"]["peers"]:
            if peer["address"] == facts[b]["bird"]["router_id"] or peer["address"] == "192.0.2.13" and a == "node1":
                peer.update(state="start", info="Active", established=False)
    found = audit(facts)
    bgp2 = [f for f in found if f["id"] == "BGP002"]
    assert {(f["host"], f["severity"]) for f in bgp2} == {("node1", "critical"), ("node3", "critical")}
    assert serious(found) == [("BGP002", "node1", "node3"), ("BGP002", "node3", "node1")]
    folded = [f for f in found if f["id"] == "BGP001"]
    assert folded and all(f["severity"] == "info" and f["evidence"]["caused_by"]["id"] == "BGP002" for f in folded)
    assert all(f["evidence"]["consequence_count"] >= 1 for f in bgp2)


def test_same_router_id_because_same_ip_is_dup001s():
    facts = healthy("bgp")
    found = _identity.router_id_clashes(_fleet._Fleet(facts, _fleet.expected_map(facts), None))
    assert found == []


def protocol(name, imported):
    return {"name": name, "proto": "BGP", "table": "master", "state": "up", "since": "07:40:01",
            "info": "Established", "routes": {"imported": imported, "filtered": 0, "exported": 1, "preferred": 0}}


def test_established_session_importing_nothing():
    facts = with_host_config(healthy("bgp"))
    facts["node2"]["bird"]["protocols"] = [protocol("Mesh_192_0_2_11", 0), protocol("Mesh_192_0_2_13", 1)]
    found = audit(facts)
    assert serious(found) == [("BGP002", "node2", "node1")]
    f = next(f for f in found if f["id"] == "BGP002")
    assert f["evidence"]["kind"] == "no_routes_imported" and "show route export" in f["remedy"]


def test_live_mesh_session_with_a_foreign_speaker_replaces_bgp001s_stale_node_story():
    facts = with_host_config(healthy("ipip"))
    facts["node1"]["bird"]["peers"].append({"name": "Mesh_203_0_113_9", "address": "203.0.113.9",
                                            "type": "node-to-node mesh", "state": "up", "since": "07:40:01",
                                            "info": "Established"})
    found = audit(facts)
    assert serious(found) == [("BGP002", "node1", None)]
    bgp001 = [f for f in found if f["id"] == "BGP001"]
    assert bgp001 and bgp001[0]["severity"] == "info" and bgp001[0]["evidence"]["caused_by"]["id"] == "BGP002"
    # Down, it is the stale Node BGP001 already describes.
    facts = with_host_config(healthy("ipip"))
    facts["node1"]["bird"]["peers"].append({"name": "Mesh_203_0_113_9", "address": "203.0.113.9",
                                            "type": "node-to-node mesh", "state": "start", "since": "07:40:01",
                                            "info": "Connect", "established": False})
    assert [f[0] for f in serious(audit(facts))] == ["BGP001", "BGP001"]


def test_facts_without_host_config_still_audit():
    facts = healthy("bgp")
    assert serious(audit(copy.deepcopy(facts))) == []
