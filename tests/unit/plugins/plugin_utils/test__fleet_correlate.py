"""One fault, one finding: ``_fleet.correlate`` folds the findings another finding explains into
it (what the namespace lab shows for autodetect-wrong-nic and bgp-peer-down), and only those."""

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet, _report
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import build, healthy_specs, node, refresh

FELIX_PROTOCOL = 80

SERIOUS = ("critical", "warning")


def serious(findings):
    return sorted((f["id"], f["host"], f.get("peer")) for f in findings if f["severity"] in SERIOUS)


def drop_route(facts, host, owner_block):
    """The fact's full remote routes lose the route to owner_block on host (routes withdrawn)."""
    routes = facts[host]["routes"]
    routes["remote_blocks"] = [r for r in routes["remote_blocks"] if r["dst"] != owner_block]


def session_down(facts, host, address):
    for peer in facts[host]["bird"]["peers"]:
        if peer["address"] == address:
            peer.update(state="start", info="Connect", established=False)


def bgp_peer_down(mode, protocol=None):
    """node1 <-> node3: TCP 179 dropped, both sessions down, BIRD withdrew both block routes."""
    facts = build(mode, healthy_specs())
    if protocol is not None:
        for fact in facts.values():
            for r in fact["routes"]["remote_blocks"]:
                r["protocol"] = protocol
    session_down(facts, "node1", "192.0.2.13")
    session_down(facts, "node3", "192.0.2.11")
    drop_route(facts, "node1", "198.18.3.0/26")
    drop_route(facts, "node3", "198.18.1.0/26")
    return refresh(facts)


def test_routes_bird_withdrew_with_a_bgp_session_are_that_sessions_finding():
    findings = _fleet.audit(bgp_peer_down("bgp"))[1]
    assert serious(findings) == [("BGP001", "node1", "node3"), ("BGP001", "node3", "node1")]
    # The session now carries what it broke: critical, with the lost routes as its consequences.
    bgp = [f for f in findings if f["id"] == "BGP001"]
    assert {f["severity"] for f in bgp} == {"critical"}
    assert all(f["evidence"]["consequence_count"] == 1 for f in bgp)
    rt = sorted((f for f in findings if f["id"] == "RT002"), key=lambda f: f["host"])
    assert [(f["host"], f["peer"], f["severity"]) for f in rt] == [
        ("node1", "node3", "info"), ("node3", "node1", "info")]
    assert rt[0]["evidence"]["caused_by"]["id"] == "BGP001"
    assert rt[0]["evidence"]["caused_by"]["host"] == "node1"
    assert rt[0]["evidence"]["severity_alone"] == "critical"
    assert "(a consequence of BGP001 on node1)" in rt[0]["summary"]
    assert rt[0]["remedy"].startswith("Fix BGP001 on node1 first")


def test_routes_felix_programs_are_not_explained_by_bgp():
    """IPIP from Calico v3.33 and the lab's ipip mode: Felix (proto 80) programs the routes, so a
    BGP session does not take them away; a missing one is its own finding."""
    findings = _fleet.audit(bgp_peer_down("ipip", protocol=FELIX_PROTOCOL))[1]
    assert serious(findings) == [("BGP001", "node1", "node3"), ("BGP001", "node3", "node1"),
                                 ("RT002", "node1", "node3"), ("RT002", "node3", "node1")]
    assert {f["severity"] for f in findings if f["id"] == "BGP001"} == {"warning"}
    assert not any("caused_by" in f["evidence"] for f in findings)


def misregistered_fleet():
    """node4 registered with its second NIC's address (first-found took eth1, the newest link):
    its BIRD peers from it and nobody reaches it there, so every session with node4 is down and
    BIRD withdrew the routes between node4 and the others; node4 still sends from 192.0.2.14."""
    specs = healthy_specs(3) + [node("node4", [("eth0", "192.0.2.14/24"), ("eth1", "198.51.100.14/24")],
                                     "198.51.100.14", "198.18.4.0/26", "198.18.4.0")]
    facts = build("bgp", specs)
    for host in ("node1", "node2", "node3"):
        session_down(facts, host, "198.51.100.14")
        drop_route(facts, host, "198.18.4.0/26")
        session_down(facts, "node4", f"192.0.2.1{host[-1]}")
        drop_route(facts, "node4", f"198.18.{host[-1]}.0/26")
    facts["node4"]["peer_routes"] = {f"192.0.2.1{i}": {"prefsrc": "192.0.2.14", "dev": "eth0", "gateway": None}
                                     for i in (1, 2, 3)}
    intended = {f"node{i}": f"192.0.2.1{i}" for i in (1, 2, 3, 4)}
    for host, fact in facts.items():
        fact["autodetection"]["intended"] = intended[host]
    return refresh(facts), intended


def test_a_wrong_registered_ip_is_one_ad001_with_its_consequences():
    facts, intended = misregistered_fleet()
    findings = _fleet.audit(facts, intended_ips=intended)[1]
    assert serious(findings) == [("AD001", "node4", None)]
    ad = next(f for f in findings if f["id"] == "AD001")
    assert ad["severity"] == "critical"
    assert ad["evidence"]["recommended_method"]
    consequences = [f for f in findings if "caused_by" in f["evidence"]]
    # Sessions both ways, routes both ways (through their sessions), and SRC001 on node4.
    assert sorted((f["id"], f["host"]) for f in consequences) == sorted(
        [("BGP001", h) for h in ("node1", "node2", "node3")] + [("BGP001", "node4")] * 3
        + [("RT002", h) for h in ("node1", "node2", "node3")] + [("RT002", "node4")] * 3 + [("SRC001", "node4")])
    assert all(f["severity"] == "info" for f in consequences)
    assert {(f["evidence"]["caused_by"]["id"], f["evidence"]["caused_by"]["host"]) for f in consequences} == {
        ("AD001", "node4")}
    assert ad["evidence"]["consequence_count"] == len(consequences)
    src = next(f for f in consequences if f["id"] == "SRC001")
    assert "sends from its intended IP 192.0.2.14" in src["evidence"]["caused_by"]["why"]


def test_a_source_that_is_not_the_intended_ip_stays_its_own_finding():
    """SRC001 is the AD001 seen again only when the node sends from its intended IP."""
    facts, intended = misregistered_fleet()
    facts["node4"]["links"][1]["addresses"].append(
        {"family": 4, "address": "192.0.2.99", "prefixlen": 24, "scope": "global", "flags": [], "label": "eth0"})
    facts["node4"]["peer_routes"] = {f"192.0.2.1{i}": {"prefsrc": "192.0.2.99", "dev": "eth0", "gateway": None}
                                     for i in (1, 2, 3)}
    findings = _fleet.audit(refresh(facts), intended_ips=intended)[1]
    assert serious(findings) == [("AD001", "node4", None), ("SRC001", "node4", None)]


def test_nothing_to_fold_leaves_the_findings_as_they_are():
    facts = bgp_peer_down("bgp")
    expected = _fleet.expected_map(facts)
    findings = _fleet.fleet_findings(facts, expected)
    again = _fleet.correlate([f for f in findings if "caused_by" not in f["evidence"]
                              and f["id"] != "BGP001"], _fleet._Fleet(facts, expected, None), {})
    assert all("caused_by" not in f["evidence"] for f in again)


@pytest.mark.parametrize("fail_on", ["critical", "warning"])
def test_folding_never_changes_the_verdict(fail_on):
    """fail_on fails on the folded findings exactly when it failed on them unfolded."""
    facts = bgp_peer_down("bgp")
    findings = _fleet.audit(facts)[1]
    unfolded = [{**f, "severity": f["evidence"].get("severity_alone", f["severity"])} for f in findings]
    assert bool(_catalogue.failing(findings, fail_on)) == bool(_catalogue.failing(unfolded, fail_on))


def test_the_matrix_shows_a_folded_consequence_at_the_severity_of_its_cause():
    facts = bgp_peer_down("bgp")
    maps, findings, hosts = _fleet.audit_fleet(facts)
    report = _report.build_report(maps, findings, hosts, "2026-01-01T00:00:00+00:00")
    _order, cells = _report.matrix(report)
    assert cells[("node1", "node3")] == ("critical", ["BGP001", "RT002"])
