"""Calico's datastore as one view, and the DS rules (plugins/module_utils/_datastore.py).

The Kubernetes documents are tests/unit/fixtures/kube/{nodes,ipamblocks,blockaffinities}.json: hand-made
in the shape `kubectl get ... -o json` prints (a v1 List), with the field names of Calico's v1 CRDs
and Node annotations (reference/calico_internals.md §3.2), not recorded from a live cluster. They hold
seed 001's five IPIP nodes plus node6, a NotReady node, and one soft-deleted block of node3.
The etcd listings are written here in libcalico-go's etcd v3 layout (§3.1) for the same cluster.
"""

import base64
import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue, _contract
from ansible_collections.netdoctor.calico.plugins.module_utils import _datastore as ds
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _datastore_rules as rules
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet, _report
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import SEED_BLOCKS, healthy, seed_fleet

KUBE = Path(__file__).parents[3] / "unit" / "fixtures" / "kube"
SEED_IPS = {i: f"192.168.{0 if i == 2 else 3}.{109 + i}" for i in range(1, 7)}
BLOCKS = {**SEED_BLOCKS, 6: "10.122.200.0"}


def kube_docs(without=()):
    """The three kubectl documents; ``without``: node names whose Node, blocks and affinities are left out."""
    docs = [json.loads((KUBE / name).read_text(encoding="utf-8"))
            for name in ("nodes.json", "ipamblocks.json", "blockaffinities.json")]
    nodes, blocks, affinities = docs
    nodes["items"] = [n for n in nodes["items"] if n["metadata"]["name"] not in without]
    blocks["items"] = [b for b in blocks["items"] if b["spec"]["affinity"].split(":", 1)[1] not in without]
    affinities["items"] = [a for a in affinities["items"] if a["spec"]["node"] not in without]
    return docs


def etcd_node(name, ip, tunnel, **spec):
    return (f"/calico/resources/v3/projectcalico.org/nodes/{name}", json.dumps({
        "kind": "Node", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": "2024-05-01T10:11:12Z"},
        "spec": {"bgp": {"ipv4Address": ip, **({"ipv4IPIPTunnelAddr": tunnel} if tunnel else {})},
                 "orchRefs": [{"nodeName": name, "orchestrator": "k8s"}], **spec}, "status": {}}))


def etcd_block(cidr, node, used, deleted=False):
    allocations = [0 if i < used else None for i in range(64)]
    return (f"/calico/ipam/v2/assignment/ipv4/block/{cidr.replace('/', '-')}", json.dumps({
        "cidr": cidr, "affinity": f"host:{node}" if node else None, "allocations": allocations,
        "unallocated": list(range(used, 64)), "attributes": [{"handle_id": f"ipip-tunnel-addr-{node}"}],
        "sequenceNumber": used, "sequenceNumberForAllocation": {}, "deleted": deleted}))


def etcd_affinity(node, cidr, state="confirmed", deleted=False):
    return (f"/calico/ipam/v2/host/{node}/ipv4/block/{cidr.replace('/', '-')}",
            json.dumps({"state": state, "deleted": deleted}))


USED = {1: 3, 2: 2, 3: 3, 4: 2, 5: 1, 6: 2}


def etcd_pairs():
    """The fixture cluster as etcd keys, node6 (no live node) included."""
    pairs = []
    for i in range(1, 7):
        name, cidr = f"node{i}", f"{BLOCKS[i]}/26"
        pairs += [etcd_node(name, f"{SEED_IPS[i]}/24", BLOCKS[i]), etcd_block(cidr, name, USED[i]),
                  etcd_affinity(name, cidr)]
    pairs += [etcd_block("10.122.99.0/26", "node3", 0, deleted=True),
              etcd_affinity("node3", "10.122.99.0/26", "pendingDeletion", deleted=True)]
    return pairs


def without(view, *names):
    view = copy.deepcopy(view)
    for name in names:
        view["nodes"].pop(name)
        for cidr in [c for c, b in view["blocks"].items() if b["affinity_node"] == name]:
            view["blocks"].pop(cidr)
    return view


def findings(view, facts):
    return rules.datastore_findings(view, _contract.expected_map(facts), facts)


def ids(found):
    return [(f["id"], f["severity"], f["host"]) for f in found]


# --- parsing ---------------------------------------------------------------------------------------


def test_kubernetes_documents_become_the_view():
    view = ds.view_from_kubernetes(*kube_docs())
    assert view["source"] == "kubernetes" and view["errors"] == []
    assert view["nodes"]["node2"] == {"ipv4_address": "192.168.0.111/24", "ipip_tunnel_addr": "10.122.124.128",
                                      "vxlan_tunnel_addr": None, "vxlan_mac": None, "ready": True}
    assert view["nodes"]["node6"]["ready"] is False  # Ready condition "Unknown": the kubelet stopped posting
    assert view["blocks"]["10.122.17.64/26"] == {"affinity_node": "node1", "state": "confirmed",
                                                 "affinities": {"node1": "confirmed"}, "ipam_block": True,
                                                 "allocations": 3}
    # node3's old block: IPAMBlock deleted=true (bool) and BlockAffinity deleted="true" (a string in v1).
    assert "10.122.99.0/26" not in view["blocks"]
    assert list(view["blocks"]) == sorted(view["blocks"], key=ds._network_order)


def test_etcd_listing_becomes_the_same_view():
    etcd = ds.view_from_etcd(etcd_pairs())
    kube = ds.view_from_kubernetes(*kube_docs())
    assert etcd["source"] == "etcd" and etcd["errors"] == []
    assert etcd["blocks"] == kube["blocks"]
    assert {n: {**v, "ready": None} for n, v in kube["nodes"].items()} == etcd["nodes"]


def test_etcd_details():
    pairs = [
        etcd_node("v1", "192.0.2.21/24", None, ipv4VXLANTunnelAddr="198.18.9.1",
                  vxlanTunnelMACAddr="66:AA:BB:CC:DD:01"),
        # CIDR taken from the key when the value has none; an empty state is confirmed (data from before states).
        ("/calico/ipam/v2/assignment/ipv4/block/198.18.9.0-26", json.dumps({"affinity": "host:v1",
                                                                           "allocations": [0, None, 1]})),
        ("/calico/ipam/v2/host/v1/ipv4/block/198.18.9.0-26", json.dumps({"state": "", "deleted": False})),
        # A claim in flight, before its IPAM block exists.
        etcd_affinity("v2", "198.18.9.64/26", "pending"),
        # IPv6 blocks and affinities are read as well.
        ("/calico/ipam/v2/assignment/ipv6/block/fd00:18::-122", json.dumps({"cidr": "fd00:18::/122",
                                                                            "affinity": "host:v1"})),
        # A virtual affinity belongs to no node: it lives under another prefix and is not read.
        ("/calico/ipam/v2/virtual/x/ipv4/block/198.18.10.0-26", json.dumps({"state": "confirmed"})),
        ("/calico/ipam/v2/host/v1/ipv4/block/198.18.11.0-26", "{not json"),
        ("/calico/ipam/v2/host/v1/ipv4/blocks", json.dumps({"state": "confirmed"})),
    ]
    view = ds.view_from_etcd(pairs)
    assert view["nodes"]["v1"] == {"ipv4_address": "192.0.2.21/24", "ipip_tunnel_addr": None,
                                   "vxlan_tunnel_addr": "198.18.9.1", "vxlan_mac": "66:aa:bb:cc:dd:01", "ready": None}
    assert view["blocks"]["198.18.9.0/26"] == {"affinity_node": "v1", "state": "confirmed",
                                               "affinities": {"v1": "confirmed"}, "ipam_block": True, "allocations": 2}
    assert view["blocks"]["198.18.9.64/26"] == {"affinity_node": "v2", "state": "pending",
                                                "affinities": {"v2": "pending"}, "ipam_block": False, "allocations": 0}
    assert view["blocks"]["fd00:18::/122"]["affinity_node"] == "v1"
    assert "198.18.10.0/26" not in view["blocks"]
    assert len(view["errors"]) == 2
    assert view["errors"][0].startswith("/calico/ipam/v2/host/v1/ipv4/block/198.18.11.0-26")


def test_kubernetes_details():
    nodes, blocks, affinities = kube_docs()
    affinities["items"][0]["spec"].pop("type")       # before the type field: a host affinity
    affinities["items"][1]["spec"]["type"] = "virtual"
    affinities["items"][2]["spec"]["deleted"] = True  # the v3 CRD keeps it as a bool
    del nodes["items"][0]["metadata"]["annotations"]["projectcalico.org/IPv4IPIPTunnelAddr"]
    nodes["items"][1]["status"].pop("conditions")
    blocks["items"].append({"metadata": {"name": "broken"}, "spec": {}})
    view = ds.view_from_kubernetes(nodes, blocks, affinities)
    assert view["blocks"]["10.122.17.64/26"]["state"] == "confirmed"
    assert view["blocks"]["10.122.124.128/26"]["affinities"] == {}
    assert view["blocks"]["10.122.124.128/26"]["state"] is None  # the IPAM block still names node2
    assert view["blocks"]["10.122.127.128/26"]["affinities"] == {}
    assert view["nodes"]["node1"]["ipip_tunnel_addr"] is None and view["nodes"]["node2"]["ready"] is None
    assert view["errors"] == ["ipamblock broken: no spec.cidr"]
    with pytest.raises(ValueError, match="not a list of objects"):
        ds.view_from_kubernetes({"kind": "Status"}, blocks, affinities)


# --- reading etcd page by page ---------------------------------------------------------------------


class FakeEtcd:
    """etcd's /v3/kv/range over a sorted key space, as the gateway answers it (int64 as strings,
    false and empty fields left out)."""

    def __init__(self, pairs, revision=42):
        self.data = sorted((k.encode(), v.encode()) for k, v in pairs)
        self.revision, self.calls = revision, []

    def __call__(self, body):
        self.calls.append(body)
        start, end = base64.b64decode(body["key"]), base64.b64decode(body["range_end"])
        rows = [(k, v) for k, v in self.data if k >= start and (end == b"\0" or k < end)]
        limit = body.get("limit") or len(rows)
        reply = {"header": {"revision": str(self.revision)}, "count": str(len(rows))}
        if rows:
            reply["kvs"] = [{"key": base64.b64encode(k).decode(), "value": base64.b64encode(v).decode(),
                             "mod_revision": "7"} for k, v in rows[:limit]]
        if len(rows) > limit:
            reply["more"] = True
        return reply


def test_etcd_read_pages_at_one_revision():
    handles = [("/calico/ipam/v2/handle/k8s-pod-network.abc", "{}"),
               ("/calico/resources/v3/projectcalico.org/ippools/default", "{}")]
    fake = FakeEtcd(etcd_pairs() + handles)
    revision, pairs = ds.etcd_read(fake, page=2)
    assert revision == "42"
    assert sorted(pairs) == sorted(etcd_pairs())   # nothing outside the three prefixes
    assert all(c["limit"] == 2 for c in fake.calls)
    assert "revision" not in fake.calls[0] and {c.get("revision") for c in fake.calls[1:]} == {"42"}
    # 6 nodes, 7 blocks, 7 affinities at 2 a page: 3 + 4 + 4 requests.
    assert len(fake.calls) == 11
    assert ds.view_from_etcd(pairs) == ds.view_from_etcd(etcd_pairs())


def test_range_requests():
    assert ds.prefix_range_end(b"/calico/ipam/v2/host/") == b"/calico/ipam/v2/host0"
    assert ds.prefix_range_end(b"a\xff") == b"b"
    assert ds.prefix_range_end(b"\xff\xff") == b"\0"
    body = ds.range_request(ds.ETCD_NODES, revision="9")
    assert base64.b64decode(body["key"]) == ds.ETCD_NODES.encode()
    assert base64.b64decode(body["range_end"]) == b"/calico/resources/v3/projectcalico.org/nodes0"
    assert body["revision"] == "9" and body["limit"] == ds.ETCD_PAGE


def test_etcd_read_is_bounded(monkeypatch):
    monkeypatch.setattr(ds, "ETCD_MAX_PAGES", 3)

    def endless(body):
        key = base64.b64decode(body["key"]) + b"x"
        return {"header": {"revision": "1"}, "kvs": [{"key": base64.b64encode(key).decode(), "value": ""}],
                "more": True}
    with pytest.raises(ValueError, match="more than 3 pages"):
        ds.etcd_read(endless)


# --- the rules ---------------------------------------------------------------------------------------


def test_a_cluster_that_agrees_gives_no_finding():
    facts = seed_fleet()
    assert findings(ds.view_from_kubernetes(*kube_docs(without=["node6"])), facts) == []
    assert findings(without(ds.view_from_etcd(etcd_pairs()), "node6"), facts) == []


def test_vxlan_fleet_that_agrees():
    facts = healthy("vxlan")
    view = {"source": "etcd", "nodes": {}, "blocks": {}}
    for host, fact in facts.items():
        vx = fact["calico"]["vxlan"]
        view["nodes"][host] = {"ipv4_address": vx["local"] + "/24", "vxlan_mac": vx["mac"],
                               "vxlan_tunnel_addr": fact["calico"]["tunnel"]["address"]}
        view["blocks"][fact["calico"]["local_blocks"][0]] = {"affinity_node": host, "state": "confirmed"}
    assert findings(view, facts) == []
    view["nodes"]["node2"]["vxlan_mac"] = "66:00:00:00:00:99"
    view["nodes"]["node3"]["vxlan_tunnel_addr"] = "198.18.3.7"
    found = findings(view, facts)
    assert ids(found) == [("DS001", "critical", "node2"), ("DS001", "critical", "node3")]
    assert found[0]["evidence"]["fields"] == {"vxlan_mac": {"datastore": "66:00:00:00:00:99", "node": [
        {"value": "66:00:00:00:00:02", "source": "MAC of vxlan.calico"}]}}
    assert "vxlan_tunnel_addr 198.18.3.7, but node3 uses 198.18.3.0" in found[1]["summary"]


def test_ds001_registered_address_is_not_the_one_the_node_uses():
    facts = seed_fleet()
    nodes, blocks, affinities = kube_docs(without=["node6"])
    # node3's calico-node registered its eth0 address once; BIRD now runs with eth1's.
    nodes["items"][2]["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = "192.168.0.112/24"
    # node4 is registered with an address it does not have at all.
    nodes["items"][3]["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = "192.168.9.9/24"
    # node5's tunl0 address is not the registered one: a warning, tunl0 only sources host traffic.
    nodes["items"][4]["metadata"]["annotations"]["projectcalico.org/IPv4IPIPTunnelAddr"] = "10.122.173.129"
    found = findings(ds.view_from_kubernetes(nodes, blocks, affinities), facts)
    assert ids(found) == [("DS001", "critical", "node3"), ("DS001", "critical", "node4"),
                          ("DS001", "warning", "node5")]
    node3, node4, node5 = found
    assert node3["summary"] == ("the Kubernetes datastore registers node3 with ipv4_address 192.168.0.112/24, "
                                "but node3 uses 192.168.3.112 (BIRD router id)")
    assert node3["evidence"]["registered_on_node"] is True  # eth0 still carries it
    assert node4["evidence"]["registered_on_node"] is False
    assert node4["evidence"]["fields"]["ipv4_address"]["node"] == [
        {"value": "192.168.3.113", "source": "BIRD router id"}, {"value": None, "source": "on none of its interfaces"}]
    assert "kubectl get node node4 -o jsonpath='{.metadata.annotations}'" in node4["remedy"]
    assert node5["evidence"]["fields"] == {"ipip_tunnel_addr": {"datastore": "10.122.173.129", "node": [
        {"value": "10.122.173.128", "source": "address of tunl0"}]}}


def test_ds001_needs_what_the_node_uses():
    facts = seed_fleet()
    # Without BIRD's router id the node's IP is the intended one: not what the node uses, so not compared.
    facts["node3"]["bird"]["router_id"] = None
    view = without(ds.view_from_etcd(etcd_pairs()), "node6")
    view["nodes"]["node3"]["ipv4_address"] = "192.168.0.112/24"
    assert findings(view, facts) == []
    facts["node3"]["identity"]["calico_node"]["env"]["IP"] = "192.168.3.112"  # a pinned IP is what it registers
    assert ids(findings(view, facts)) == [("DS001", "critical", "node3")]
    facts["node3"] = None  # unreachable: nothing to compare
    assert findings(view, facts) == []


def test_ds002_blocks_moved_released_or_not_announced():
    facts = seed_fleet()
    view = without(ds.view_from_etcd(etcd_pairs()), "node6")
    blocks = view["blocks"]
    # The datastore moved node3's block to node4: node3 still announces it, node4 does not.
    blocks["10.122.127.128/26"].update(affinity_node="node4", affinities={"node4": "confirmed"})
    # node5's block was released: node5 keeps its blackhole.
    blocks.pop("10.122.173.128/26")
    # node1 got a second block it does not announce.
    blocks["10.122.17.128/26"] = {"affinity_node": "node1", "state": "confirmed", "affinities": {"node1": "confirmed"},
                                  "ipam_block": True, "allocations": 1}
    # Affinities in flight are not judged.
    blocks["10.122.18.0/26"] = {"affinity_node": "node2", "state": "pending", "affinities": {"node2": "pending"}}
    blocks["10.122.124.128/26"]["state"] = "pendingDeletion"
    found = findings(view, facts)
    assert [(f["id"], f["severity"], f["host"], f["peer"], f["evidence"]["kind"], f["evidence"]["blocks"])
            for f in found] == [
        ("DS002", "critical", "node3", "node4", "assigned_elsewhere", ["10.122.127.128/26"]),
        ("DS002", "warning", "node1", None, "not_announced", ["10.122.17.128/26"]),
        ("DS002", "warning", "node5", None, "not_assigned", ["10.122.173.128/26"]),
    ]
    assert found[0]["summary"] == "node3 announces 1 block (10.122.127.128/26) that etcd gives to node4"
    assert found[0]["evidence"]["datastore"]["10.122.127.128/26"]["affinity_node"] == "node4"
    assert found[2]["evidence"]["datastore"] == {"10.122.173.128/26": None}


def test_ds002_blocks_of_unaudited_nodes_are_not_judged():
    facts = seed_fleet()
    facts["node1"] = None
    view = without(ds.view_from_etcd(etcd_pairs()), "node6")
    view["blocks"]["10.122.17.128/26"] = {"affinity_node": "node1", "state": "confirmed"}
    assert findings(view, facts) == []


def test_ds003_stale_nodes():
    facts = seed_fleet()
    # Kubernetes: node6 is NotReady.
    (stale,) = findings(ds.view_from_kubernetes(*kube_docs()), facts)
    assert (stale["id"], stale["severity"], stale["host"]) == ("DS003", "warning", "node6")
    assert stale["evidence"]["blocks"] == ["10.122.200.0/26"]
    assert "`kubectl delete node node6`" in stale["remedy"]
    # etcd: no sign of life either way is only worth knowing: the inventory may be a part of the cluster.
    etcd = ds.view_from_etcd(etcd_pairs())
    (stale,) = findings(etcd, facts)
    assert (stale["severity"], stale["evidence"]["bgp_sessions_down_from"]) == ("info", [])
    assert "`calicoctl delete node node6`" in stale["remedy"]
    # The mesh still tries to peer with it: BGP001's cause, a warning.
    for host in ("node1", "node2"):
        facts[host]["bird"]["peers"].append({"name": "Mesh_192_168_3_115", "address": "192.168.3.115",
                                             "state": "start", "info": "Active Socket: Connection refused"})
    (stale,) = findings(etcd, facts)
    assert (stale["severity"], stale["evidence"]["bgp_sessions_down_from"]) == ("warning", ["node1", "node2"])
    assert "BGP sessions to 192.168.3.115 from 2 node(s) are not Established" in stale["summary"]
    # Established somewhere: alive, only missing from the inventory.
    facts["node1"]["bird"]["peers"][-1].update(state="up", info="Established")
    assert findings(etcd, facts) == []


def test_ds003_an_inventory_of_part_of_the_cluster_gives_one_finding():
    facts = seed_fleet()
    view = without(ds.view_from_etcd(etcd_pairs()), "node6")
    for i in range(20):
        view["nodes"][f"w{i:02d}"] = {"ipv4_address": f"192.168.7.{i}/24"}
        view["blocks"][f"10.123.{i}.0/26"] = {"affinity_node": f"w{i:02d}", "state": "confirmed"}
    (found,) = findings(view, facts)
    assert (found["id"], found["severity"], found["host"]) == ("DS003", "info", "w00")
    assert found["summary"] == "etcd has 20 nodes that are no host of the audited fleet (w00, w01, w02 ...)"
    assert found["evidence"]["count"] == 20 and found["evidence"]["datastore_nodes"][-1] == "... 10 more"
    # A node the mesh cannot reach still gets its own warning.
    facts["node1"]["bird"]["peers"].append({"address": "192.168.7.3", "state": "start", "info": "Active"})
    assert ids(findings(view, facts)) == [("DS003", "warning", "w03"), ("DS003", "info", "w00")]


def test_nodes_are_matched_by_nodename_then_by_address():
    facts = {f"10.0.0.{i}": fact for i, fact in enumerate(seed_fleet().values(), start=1)}  # inventory of IPs
    view = without(ds.view_from_etcd(etcd_pairs()), "node6")
    assert rules.match_nodes(ds.check_view(view), _contract.expected_map(facts), facts) == {
        f"node{i}": f"10.0.0.{i}" for i in range(1, 6)}  # by the facts' hostname
    for fact in facts.values():
        fact["hostname"] = fact["identity"]["nodename_file"] = "localhost"
    matched = rules.match_nodes(ds.check_view(view), _contract.expected_map(facts), facts)
    assert matched == {f"node{i}": f"10.0.0.{i}" for i in range(1, 6)}  # by the registered address
    assert findings(view, facts) == []


def test_the_ds_checks_are_the_catalogue_s():

    assert set(rules.CHECKS) == {fid for fid in _catalogue.CATALOGUE if fid.startswith("DS")}


def test_check_view():
    for bad in (None, {}, {"source": "consul", "nodes": {}, "blocks": {}}, {"source": "etcd", "nodes": []}):
        with pytest.raises(ValueError):
            ds.check_view(bad)
    view = ds.check_view({"source": "etcd", "nodes": {"n": {"ipv4_address": "192.0.2.1/24"}},
                          "blocks": {"198.18.0.0/26": {"affinity_node": "n"}}})
    assert view["nodes"]["n"] == {"ipv4_address": "192.0.2.1/24", "ipip_tunnel_addr": None, "vxlan_tunnel_addr": None,
                                  "vxlan_mac": None, "ready": None}
    assert view["blocks"]["198.18.0.0/26"]["state"] is None and view["errors"] == []


# --- through the fleet audit and its reports ---------------------------------------------------------


def test_the_audit_reports_the_datastore_findings():
    facts = seed_fleet()
    view = ds.view_from_kubernetes(*kube_docs())
    view["nodes"]["node3"]["ipv4_address"] = "192.168.0.112/24"
    maps, found, hosts = _fleet.audit_fleet(facts, datastore=view)
    assert ids(f for f in found if f["id"].startswith("DS")) == [("DS001", "critical", "node3"),
                                                                 ("DS003", "warning", "node6")]
    assert hosts["node3"]["ids"] == ["DS001"] and "node6" not in hosts
    assert ids(_fleet.audit(facts)[1]) == []  # no datastore, no DS rule
    report = _report.build_report(maps, found, hosts, "2024-05-01T10:11:12+00:00")
    assert report["summary"]["by_id"] == {"DS001": 1, "DS003": 1}
    root = ET.fromstring(_report.render_junit(report, _fleet.CHECKS, "warning"))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    # The stale node is no host of the audit: its suite holds only its own finding.
    assert [c.get("name") for c in suites["node6"].iter("testcase")] == ["DS003"]
    assert suites["node6"].get("failures") == "1"
    assert len(list(suites["node1"].iter("testcase"))) == len(_fleet.CHECKS)
    assert "node6" in _report.render_markdown(report) and "node6" in _report.render_html(report)
