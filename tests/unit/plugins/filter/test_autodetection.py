"""The recommend_method filter (plugins/filter/autodetection.py): the fleet's one
IP_AUTODETECTION_METHOD from the nodes' calico_node facts, as the preflight role asks for it; the
replay itself is tested with _autodetect (test__autodetect.py)."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.netdoctor.calico.plugins.filter import autodetection


def link(index, name, *addresses):
    return {"index": index, "name": name, "mtu": 1500, "up": True,
            "addresses": [{"address": a.split("/")[0], "prefixlen": int(a.split("/")[1]), "family": 4,
                           "scope": "global", "flags": [], "label": name} for a in addresses]}


def node_links(i, extra=True):
    links = [link(1, "lo", "127.0.0.1/8"), link(2, "eth0", f"192.0.2.{10 + i}/26")]
    return links + ([link(3, "eth1", f"198.51.100.{10 + i}/26")] if extra else [])


def facts(*nodes, **links):
    return {f"node{i}": {"links": node_links(i), "autodetection": {"calico_version": None}} for i in nodes} | {
        host: {"links": value} for host, value in links.items()}


def test_filter_is_registered():
    assert autodetection.FilterModule().filters() == {"recommend_method": autodetection.recommend_method}


def test_recommendation_for_a_fleet_whose_second_nic_wins_first_found():
    rec = autodetection.recommend_method(facts(1, 2, 3), {f"node{i}": f"192.0.2.{10 + i}" for i in (1, 2, 3)},
                                         "3.30")
    assert rec["method"] == "cidr=192.0.2.0/26"
    assert rec["operator"] == {"cidrs": ["192.0.2.0/26"]}
    assert [e["address"] for e in rec["evidence"]] == [f"192.0.2.{10 + i}/26" for i in (1, 2, 3)]


def test_no_recommendation_when_an_intended_address_is_on_no_interface():
    rec = autodetection.recommend_method(facts(1, 2), {"node1": "192.0.2.11", "node2": "203.0.113.9"},
                                         calico_version="3.30")
    assert rec["method"] is None
    assert "node2" in rec["reason"]


def test_only_the_targets_are_replayed_and_the_facts_version_is_the_default():
    # node3's fact has links with no address at all: it is no target, so it is not replayed.
    fleet = facts(1, 2, node3=[link(1, "lo", "127.0.0.1/8")])
    fleet["node1"]["autodetection"]["calico_version"] = "3.29"
    rec = autodetection.recommend_method(fleet, {"node1": "192.0.2.11", "node2": "192.0.2.12"})
    assert rec["method"] == "cidr=192.0.2.0/26"
    assert [e["host"] for e in rec["evidence"]] == ["node1", "node2"]


@pytest.mark.parametrize(("value", "targets", "message"), [
    ([], {}, r"^recommend_method expects a dict of host -> calico_node fact, got list$"),
    ({}, ["node1"], r"^recommend_method: targets must be a dict of host -> intended address, got list$"),
    ({"node1": {"links": []}, "node2": None}, {"node1": "192.0.2.11", "node2": "192.0.2.12", "node3": "192.0.2.13"},
     r"^recommend_method: no calico_node fact for node2, node3 \(netdoctor\.calico\.calico_node_facts gathers it\)$"),
])
def test_bad_input_is_named(value, targets, message):
    with pytest.raises(AnsibleFilterError, match=message):
        autodetection.recommend_method(value, targets)
