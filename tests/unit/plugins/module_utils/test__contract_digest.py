"""The route digest (issue 17): a node's remote-block routes in O(1) bytes that the controller checks
against the expected map, so a healthy node needs one round trip. Every kind of drift route_drift
knows must change the digest; a healthy node's digest must match in every mode."""

import copy

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _contract
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import (
    KERNEL,
    build,
    healthy,
    healthy_specs,
    node,
    route,
)


def summarised(facts):
    """The facts as a large fleet sends them: remote block routes summarised, only the digest."""
    out = copy.deepcopy(facts)
    for fact in out.values():
        fact["routes"]["remote_blocks"] = {"count": len(fact["routes"]["remote_blocks"])}
    return out


def needed(facts, **kwargs):
    facts = summarised(facts)
    return _fleet.drift_needed(facts, _contract.expected_map(facts, **kwargs))


@pytest.mark.parametrize("mode", ["ipip", "vxlan", "bgp"])
def test_a_healthy_fleet_needs_no_second_round_trip(mode):
    facts = summarised(healthy(mode, count=6))
    expected = _contract.expected_map(facts)
    assert _fleet.drift_needed(facts, expected) == []
    drift = _fleet.collect_drift(facts, expected)
    assert {h: (d["checked"], d["ok"], d["by"]) for h, d in drift.items()} == {h: (5, 5, "digest") for h in facts}
    _maps, findings, hosts = _fleet.audit_fleet(facts)
    assert [f for f in findings if f["severity"] != "info"] == []
    assert {line["routes"]["by"] for line in hosts.values()} == {"digest"}


def test_the_digest_is_small_and_order_free():
    facts = healthy("ipip", count=6)
    digest = facts["node1"]["route_digest"]
    assert set(digest) == {"mode", "pools", "count", "hash"} and len(repr(digest)) < 200
    routes = list(reversed(build("ipip", healthy_specs(6))["node1"]["routes"]["remote_blocks"]))
    assert _contract.route_digest(routes, "ipip", facts["node1"]["calico"]["local_blocks"]) == digest


def _edited(edit, mode="ipip"):
    def on_node3(host, snapshot):
        if host == "node3":
            edit(snapshot["routes"])
    return build(mode, healthy_specs(4), edit=on_node3)


def _replace(routes, dst, new):
    routes[:] = [new if r["dst"] == dst and r["type"] == "unicast" else r for r in routes]


@pytest.mark.parametrize(("kind", "edit"), [
    ("wrong_next_hop",
     lambda rs: _replace(rs, "198.18.1.0/26", route("198.18.1.0/26", "192.0.2.99", "tunl0", onlink=True))),
    ("wrong_device", lambda rs: _replace(rs, "198.18.1.0/26", route("198.18.1.0/26", "192.0.2.11", "eth0"))),
    ("missing", lambda rs: rs.remove(next(r for r in rs if r["dst"] == "198.18.1.0/26"))),
    ("orphan", lambda rs: rs.append(route("198.18.9.0/26", "192.0.2.19", "tunl0", onlink=True))),
    ("shadow", lambda rs: rs.append(route("198.18.1.0/27", None, "eth0", KERNEL, scope="link"))),
    ("extra", lambda rs: rs.append(route("198.18.1.0/26", "192.0.2.12", "tunl0", onlink=True, metric=50))),
])
def test_every_kind_of_drift_changes_the_digest(kind, edit):
    facts = _edited(edit)
    assert needed(facts) == ["node3"], kind
    # The detail the second round trip brings names it; an extra route behind the one the kernel uses
    # (higher metric) is inert, so the detail clears the node.
    detail = _contract.route_drift(facts["node3"]["routes"]["remote_blocks"] + facts["node3"]["routes"]["other"],
                                   _contract.expected_map(facts), "node3")
    assert bool(detail["drift"]) is (kind != "extra"), kind


def test_without_the_drift_phase_a_differing_digest_is_still_a_finding():
    facts = summarised(_edited(lambda rs: rs.remove(next(r for r in rs if r["dst"] == "198.18.2.0/26"))))
    _maps, findings, _hosts = _fleet.audit_fleet(facts)
    rt = [(f["id"], f["host"], f["evidence"]["kind"]) for f in findings if f["id"].startswith("RT")]
    assert rt == [("RT002", "node3", "digest")]


def test_pools_decide_which_foreign_routes_count():
    # A foreign route outside the derived /16 around the node's blocks is only seen with the pools given.
    facts = _edited(lambda rs: rs.append(route("198.19.1.0/26", None, "eth0", KERNEL, scope="link")))
    assert needed(facts) == []
    for fact in facts.values():
        fact["route_digest"] = _contract.route_digest(
            fact["routes"]["remote_blocks"] + fact["routes"]["other"] + fact["routes"]["local_blocks"],
            fact["calico"]["mode"], fact["calico"]["local_blocks"], ["198.18.0.0/15"])
    assert needed(facts, pools=["198.18.0.0/15"]) == ["node3"]


def test_cross_subnet_owners_on_the_same_subnet_are_reached_off_the_tunnel():
    specs = [node(f"node{i}", [("eth0", f"192.0.2.{10 + i}/24" if i < 3 else f"198.51.100.{10 + i}/24")],
                  f"192.0.2.{10 + i}" if i < 3 else f"198.51.100.{10 + i}", f"198.18.{i}.0/26", f"198.18.{i}.0")
             for i in range(1, 5)]
    by_host = {s["host"]: s for s in specs}

    def same_subnet_direct(host, snapshot):
        mine = by_host[host]["ip"].rsplit(".", 1)[0]
        for r in snapshot["routes"]:
            owner = next((s for s in specs if s["block"] == r["dst"]), None)
            if owner and owner["host"] != host and r["type"] == "unicast" and owner["ip"].startswith(mine + "."):
                r.update(gateway=owner["ip"], dev="eth0", onlink=False, protocol=80)

    facts = build("ipip", specs, edit=same_subnet_direct)
    assert needed(facts, cross_subnet=True) == []
    # Without CrossSubnet the same routes are drift.
    assert needed(facts) == ["node1", "node2", "node3", "node4"]
