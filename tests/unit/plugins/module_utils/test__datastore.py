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
    assert view["source"] == "kubernetes" and view["errors"] == [] and view["error"] is None
    assert (view["api_group"], view["ipam"]) == ("crd.projectcalico.org/v1", "calico")
    # kube-controller-manager allocated pod CIDRs too; with Calico IPAM nothing reads them.
    assert view["nodes"]["node2"] == {"ipv4_address": "192.168.0.111/24", "ipip_tunnel_addr": "10.122.124.128",
                                      "vxlan_tunnel_addr": None, "vxlan_mac": None, "ready": True,
                                      "pod_cidrs": ["10.244.2.0/24"]}
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
    assert etcd["source"] == "etcd" and etcd["errors"] == [] and etcd["api_group"] is None
    assert etcd["blocks"] == kube["blocks"]
    assert {n: {**v, "ready": None, "pod_cidrs": []} for n, v in kube["nodes"].items()} == etcd["nodes"]


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
                                   "vxlan_tunnel_addr": "198.18.9.1", "vxlan_mac": "66:aa:bb:cc:dd:01", "ready": None,
                                   "pod_cidrs": []}
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
                                  "vxlan_mac": None, "ready": None, "pod_cidrs": []}
    assert view["blocks"]["198.18.0.0/26"]["state"] is None and view["errors"] == []
    assert (view["error"], view["api_group"], view["ipam"]) == (None, None, "calico")
    for bad in ({"source": "etcd", "nodes": {}, "blocks": {}, "error": "down"},
                {"source": "etcd", "nodes": {}, "blocks": {}, "error": {"kind": "timeout"}}):
        with pytest.raises(ValueError, match="error"):
            ds.check_view(bad)
    failed = ds.check_view(ds.error_view("kubernetes", "no-such-kind", "boom", ["kubectl get nodes"]))
    assert failed["error"] == {"kind": "other", "message": "boom", "details": ["kubectl get nodes"]}


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


# --- the two CRD groups (checked against projectcalico/calico 87c15906f2, master = v3.34.0-0.dev, and v3.32.0) --
#
# libcalico-go/lib/backend/k8s/discovery.go UsingV3CRDs: projectcalico.org/v3 only when the API server serves
# that group and not crd.projectcalico.org (both: the v3 group is the Calico API server's, over the v1 CRDs).
# tests/unit/fixtures/kube/v3/*.json are the v1 fixtures rewritten in the shape of the native v3 CRDs
# (api/config/crd/projectcalico.org_{ipamblocks,blockaffinities}.yaml, shipped in manifests/calico-v3-crds.yaml
# from v3.32.0): apiVersion projectcalico.org/v3, BlockAffinity `deleted` a bool, the labels
# model.EnsureBlockAffinityLabelsV3 sets. Each item validates against those schemas at both refs.

KUBE_V3 = KUBE / "v3"


def api_groups(*names):
    """An APIGroupList as `kubectl get --raw /apis` prints it."""
    version = {"crd.projectcalico.org": "v1", "projectcalico.org": "v3", "apps": "v1", "operator.tigera.io": "v1"}
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": n, "versions": [{"groupVersion": f"{n}/{version[n]}", "version": version[n]}],
         "preferredVersion": {"groupVersion": f"{n}/{version[n]}", "version": version[n]}} for n in names]}


def test_the_crd_group_is_the_one_libcalico_go_picks():
    assert ds.api_group_from_discovery(api_groups("apps", "crd.projectcalico.org")) == "crd.projectcalico.org/v1"
    assert ds.api_group_from_discovery(api_groups("apps", "projectcalico.org")) == "projectcalico.org/v3"
    # The Calico API server serves projectcalico.org/v3 over the v1 CRDs: read those directly.
    assert ds.api_group_from_discovery(api_groups("projectcalico.org", "crd.projectcalico.org")) == \
        "crd.projectcalico.org/v1"
    assert ds.api_group_from_discovery(api_groups("apps", "operator.tigera.io")) is None
    with pytest.raises(ValueError, match="APIGroupList"):
        ds.api_group_from_discovery({"kind": "Status"})
    # Always qualified: an unqualified name on a cluster with the API server would be its v3 objects.
    assert ds.resources_of("crd.projectcalico.org/v1") == (
        "nodes", "ipamblocks.crd.projectcalico.org", "blockaffinities.crd.projectcalico.org")
    assert ds.resources_of("projectcalico.org/v3") == (
        "nodes", "ipamblocks.projectcalico.org", "blockaffinities.projectcalico.org")


def v3_docs():
    nodes = json.loads((KUBE / "nodes.json").read_text(encoding="utf-8"))
    return [nodes] + [json.loads((KUBE_V3 / name).read_text(encoding="utf-8"))
                      for name in ("ipamblocks.json", "blockaffinities.json")]


def test_v3_crd_documents_become_the_same_view():
    v1 = ds.view_from_kubernetes(*kube_docs())
    v3 = ds.view_from_kubernetes(*v3_docs(), api_group="projectcalico.org/v3")
    assert v3["errors"] == [] and v3["api_group"] == "projectcalico.org/v3"
    assert {k: v for k, v in v3.items() if k != "api_group"} == {k: v for k, v in v1.items() if k != "api_group"}
    # node3's old block: deleted true (a bool in both v3 CRDs) is soft-deleted.
    assert "10.122.99.0/26" not in v3["blocks"]
    affinities = v3_docs()[2]["items"]
    assert all(isinstance(a["spec"]["deleted"], bool) for a in affinities)


def test_v3_crds_give_no_false_finding_and_the_same_findings():
    facts = seed_fleet()
    nodes, blocks, affinities = v3_docs()
    nodes["items"] = [n for n in nodes["items"] if n["metadata"]["name"] != "node6"]
    for doc in (blocks, affinities):
        doc["items"] = [i for i in doc["items"] if "node6" not in json.dumps(i["spec"])]
    assert findings(ds.view_from_kubernetes(nodes, blocks, affinities, "projectcalico.org/v3"), facts) == []
    # The same drift as test_ds001/ds002 above, in the v3 shape.
    nodes["items"][2]["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = "192.168.0.112/24"
    node5 = next(a for a in affinities["items"] if a["spec"]["node"] == "node5")
    node5["spec"]["deleted"] = True
    next(b for b in blocks["items"] if b["spec"]["affinity"] == "host:node5")["spec"]["deleted"] = True
    found = findings(ds.view_from_kubernetes(nodes, blocks, affinities, "projectcalico.org/v3"), facts)
    assert [(f["id"], f["severity"], f["host"], f["evidence"].get("kind")) for f in found] == [
        ("DS001", "critical", "node3", None), ("DS002", "warning", "node5", "not_assigned")]


def test_deleted_strings_are_read_as_go_s_parsebool():
    """libcalico-go/lib/backend/k8s/resources/ipam_affinity_v1.go: an empty string is false, else
    strconv.ParseBool, and an entry it cannot parse is an error, not a live affinity."""
    nodes, blocks, affinities = kube_docs(without=["node6"])
    cases = {"1": True, "t": True, "T": True, "TRUE": True, "True": True, "true": True,
             "0": False, "f": False, "F": False, "FALSE": False, "False": False, "": False,
             "yes": None, " true": None, "tRUE": None}
    items = affinities["items"][:1]
    affinities["items"] = []
    for i, (text, _want) in enumerate(cases.items()):
        item = copy.deepcopy(items[0])
        item["metadata"]["name"] = f"case{i}"
        item["spec"].update(cidr=f"10.9.{i}.0/26", node=f"n{i}", deleted=text)
        affinities["items"].append(item)
    view = ds.view_from_kubernetes(nodes, blocks, affinities)
    for i, (text, want) in enumerate(cases.items()):
        live = f"10.9.{i}.0/26" in view["blocks"]
        assert live is (want is False), (text, want)
        assert any(e.startswith(f"blockaffinity case{i}: ") for e in view["errors"]) is (want is None), text
    assert ds.parse_bool("t") is True and ds.parse_bool("off") is None


def test_an_etcd_affinity_with_no_value_is_confirmed():
    """libcalico-go/lib/backend/model/block_affinity.go parseValue (model/keys.go ParseValue before v3.32):
    block affinities used to be stored with no value; one is read as {}: no state, so confirmed."""
    pairs = [etcd_node("v1", "192.0.2.21/24", None), ("/calico/ipam/v2/host/v1/ipv4/block/198.18.9.0-26", ""),
             # Only an affinity gets that: an empty block or node value is still an error.
             ("/calico/ipam/v2/assignment/ipv4/block/198.18.10.0-26", ""),
             ("/calico/ipam/v2/host/v1/ipv4/block/198.18.11.0-26", json.dumps({"state": "confirmed",
                                                                               "deleted": "true"}))]
    view = ds.view_from_etcd(pairs)
    assert view["blocks"] == {"198.18.9.0/26": {"affinity_node": "v1", "state": "confirmed",
                                                "affinities": {"v1": "confirmed"}, "ipam_block": False,
                                                "allocations": 0}}
    assert len(view["errors"]) == 1 and view["errors"][0].startswith("/calico/ipam/v2/assignment/ipv4/block/")


# --- host-local IPAM (USE_POD_CIDR) ---------------------------------------------------------------------
#
# Checked against projectcalico/calico 87c15906f2 (and v3.30.0, v3.32.0): with USE_POD_CIDR libcalico-go
# registers no IPAMBlock/BlockAffinity client (libcalico-go/lib/backend/k8s/client.go); the BGP and Felix
# syncers turn each Node's status.PodCIDRs (= spec.podCIDRs) into confirmed affinities
# (lib/backend/syncersv1/updateprocessors/bgpnodeprocessor.go, felixnodeprocessor.go), so BIRD/Felix
# blackhole the pod CIDR; node/pkg/allocateip/allocateip.go allocates no tunnel address, and
# K8sNodeToCalico (lib/backend/k8s/resources/node.go) gives the IPIP tunnel address from spec.podCIDR with
# getStaticTunnelAddress (the address with `tunIp[3]++`), whatever the annotation says. The CNI config is
# Calico's with `"ipam": {"type": "host-local", "subnet": "usePodCidr"}`
# (cni-plugin/internal/pkg/utils/utils.go ReplaceHostLocalIPAMPodCIDRs).

HOST_LOCAL_CONFLIST = json.dumps({"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [
    {"type": "calico", "log_level": "info", "datastore_type": "kubernetes", "nodename": "__KUBERNETES_NODE_NAME__",
     "mtu": 1440, "ipam": {"type": "host-local", "subnet": "usePodCidr"},
     "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}},
    {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}}]})


def host_local_fleet(cni=True):
    """Seed 001's hosts and addresses, each node's block its pod CIDR 10.244.i.0/24 (nodes.json) and its
    tunl0 address the pod CIDR's .1, as calico-node with USE_POD_CIDR programs them."""
    from ansible_collections.netdoctor.calico.plugins.module_utils import _node_files
    from ansible_collections.netdoctor.calico.tests.unit.fixtures import fleet

    specs = [fleet.node(s["host"], s["nics"], s["ip"], f"10.244.{i}.0/24", f"10.244.{i}.1")
             for i, s in enumerate(fleet.seed_specs(), start=1)]
    facts = fleet.build("ipip", specs)
    parsed = _node_files.parse_cni_config(HOST_LOCAL_CONFLIST)
    for fact in facts.values():
        if cni:
            fact["identity"]["cni"] = dict(parsed, file="/etc/cni/net.d/10-calico.conflist", active=True, error=None)
    return facts


def host_local_docs():
    """The cluster's Kubernetes datastore: Nodes with pod CIDRs and no tunnel annotation (nothing allocates
    one), the IPAM CRDs served and empty."""
    nodes, blocks, affinities = kube_docs(without=["node6"])
    for node in nodes["items"]:
        node["metadata"]["annotations"].pop("projectcalico.org/IPv4IPIPTunnelAddr")
    blocks["items"], affinities["items"] = [], []
    return nodes, blocks, affinities


def test_static_tunnel_address():
    assert ds.static_tunnel_address("10.244.1.0/24") == "10.244.1.1"
    assert ds.static_tunnel_address("10.244.1.128/25") == "10.244.1.129"
    assert ds.static_tunnel_address("10.244.1.255/32") == "10.244.1.0"  # a Go byte wraps, no carry
    assert ds.static_tunnel_address("fd00:244::/64") is None           # "Cannot pick an IPv4 tunnel address"
    for bad in ("10.244.1.0", "nope/24", None):
        with pytest.raises(ValueError):
            ds.static_tunnel_address(bad)


def test_pod_cidr_view():
    view = ds.pod_cidr_view(ds.view_from_kubernetes(*host_local_docs()))
    assert view["ipam"] == "host-local" and view["errors"] == []
    assert view["nodes"]["node2"]["ipip_tunnel_addr"] == "10.244.2.1"
    assert view["blocks"] == {f"10.244.{i}.0/24": {"affinity_node": f"node{i}", "state": "confirmed",
                                                   "affinities": {f"node{i}": "confirmed"}, "ipam_block": False,
                                                   "allocations": 0} for i in range(1, 6)}
    # IPAM objects are not read in this mode; a node without a pod CIDR keeps its annotated tunnel address;
    # several pod CIDRs (dual stack) are all its blocks, the tunnel address from the first.
    nodes, blocks, affinities = kube_docs(without=["node6"])
    nodes["items"][0]["spec"] = {}
    nodes["items"][1]["spec"] = {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24", "fd00:244:2::/64"]}
    nodes["items"][2]["spec"] = {"podCIDR": "fd00:244:3::/64", "podCIDRs": ["fd00:244:3::/64", "10.244.3.0/24"]}
    nodes["items"][3]["spec"] = {"podCIDRs": ["10.244.4.0"]}
    view = ds.pod_cidr_view(ds.view_from_kubernetes(nodes, blocks, affinities))
    assert view["nodes"]["node1"]["ipip_tunnel_addr"] == "10.122.17.64"
    assert view["nodes"]["node2"]["ipip_tunnel_addr"] == "10.244.2.1"
    assert view["nodes"]["node3"]["ipip_tunnel_addr"] is None
    assert sorted(c for c, b in view["blocks"].items() if b["affinity_node"] == "node2") == [
        "10.244.2.0/24", "fd00:244:2::/64"]
    assert "10.122.17.64/26" not in view["blocks"]
    assert view["errors"] == ["node node4: pod CIDR '10.244.4.0' is not a CIDR"]
    failed = ds.error_view("kubernetes", "timeout", "slow")
    assert ds.pod_cidr_view(failed) is failed


def test_host_local_cluster_gives_no_false_finding():
    facts = host_local_fleet()
    view = ds.view_from_kubernetes(*host_local_docs())
    assert rules.uses_pod_cidr(facts) == (True, "the Calico CNI config uses host-local IPAM on node1, node2, node3")
    assert findings(view, facts) == []
    # What the audit said before it knew the mode: the tunnel address "unset" and every blackhole unowned.
    wrong = rules.datastore_findings(view, _contract.expected_map(facts), host_local_fleet(cni=False))
    assert {(f["id"], f["severity"]) for f in wrong} == {("DS001", "warning"), ("DS002", "warning")}
    assert len(wrong) == 10


def test_host_local_cluster_findings():
    facts = host_local_fleet()
    nodes, blocks, affinities = host_local_docs()
    # node3's Node now has another pod CIDR (re-created); node5's tunl0 has an address of its own.
    nodes["items"][2]["spec"] = {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"]}
    facts["node5"]["calico"]["tunnel"]["address"] = "10.244.5.7"
    found = findings(ds.view_from_kubernetes(nodes, blocks, affinities), facts)
    assert [(f["id"], f["severity"], f["host"], f["evidence"].get("kind")) for f in found] == [
        ("DS001", "warning", "node3", None), ("DS001", "warning", "node5", None),
        ("DS002", "warning", "node3", "not_announced"), ("DS002", "warning", "node3", "not_assigned")]
    assert found[2]["evidence"]["ipam"] == "host-local"
    assert "kubectl get node node3 -o jsonpath='{.spec.podCIDRs}'" in found[2]["remedy"]
    assert found[1]["evidence"]["fields"]["ipip_tunnel_addr"] == {
        "datastore": "10.244.5.1", "node": [{"value": "10.244.5.7", "source": "address of tunl0"}]}


def test_use_pod_cidr_env_decides_over_the_cni_config():
    facts = host_local_fleet(cni=False)
    assert rules.uses_pod_cidr(facts) == (False, None)
    facts["node2"]["identity"]["calico_node"]["env"]["USE_POD_CIDR"] = "true"
    assert rules.uses_pod_cidr(facts) == (True, "calico-node runs with USE_POD_CIDR=true on node2")
    assert findings(ds.view_from_kubernetes(*host_local_docs()), facts) == []
    # Explicitly off: Calico IPAM, even with a host-local CNI config.
    facts = host_local_fleet()
    for fact in facts.values():
        fact["identity"]["calico_node"]["env"]["USE_POD_CIDR"] = "false"
    assert rules.uses_pod_cidr(facts) == (False, "calico-node runs with USE_POD_CIDR=false")
    # etcd has no pod CIDRs: the mode does not change how its view is read.
    assert rules.datastore_findings(ds.view_from_etcd([]), _contract.expected_map(facts), facts)


# --- a read that failed: DS000 -------------------------------------------------------------------------


def test_a_failed_read_is_ds000_and_nothing_else():
    facts = seed_fleet()
    view = ds.error_view("kubernetes", "resource_absent", "the API server serves neither crd.projectcalico.org "
                         "nor projectcalico.org: Calico's CRDs are not installed in this cluster")
    (found,) = findings(view, facts)
    assert (found["id"], found["severity"], found["host"], found["peer"]) == ("DS000", "warning", "datastore", None)
    assert found["summary"].startswith("the Kubernetes datastore could not be read (resource absent): the API server")
    assert found["summary"].endswith("the datastore checks (DS001-DS003) did not run")
    assert found["evidence"] == {"source": "kubernetes", "kind": "resource_absent", "message": view["error"]["message"],
                                 "details": [], "api_group": None}
    assert "kubectl api-resources" in found["remedy"]
    etcd = ds.error_view("etcd", "file", "etcd_cert /etc/calico/certs/cert.pem: No such file or directory")
    (found,) = findings(etcd, facts)
    assert found["summary"].startswith("etcd could not be read (file): etcd_cert /etc/calico/certs/cert.pem")


def test_junit_checks():
    read = ds.view_from_etcd(etcd_pairs())
    failed = ds.error_view("etcd", "timeout", "slow")
    base = tuple(_catalogue.CATALOGUE)
    assert set(rules.junit_checks(base, None)) == set(base) - set(rules.CHECKS)
    assert set(rules.junit_checks(base, failed)) == set(base) - set(rules.CHECKS)
    assert set(rules.junit_checks(base, read)) == set(base) - {"DS000"}
    assert set(rules.junit_checks(base, {"a": failed, "b": read})) == set(base) - {"DS000"}


def test_the_audit_reports_a_missing_datastore():
    facts = seed_fleet()
    view = ds.error_view("kubernetes", "credentials", "kubectl could not list nodes: error: You must be logged in "
                         "to the server (Unauthorized)", ["kubectl get nodes --output=json"])
    maps, found, hosts = _fleet.audit_fleet(facts, datastore=view)
    assert ids(found) == [("DS000", "warning", "datastore")]
    assert "datastore" not in hosts
    report = _report.build_report(maps, found, hosts, "2024-05-01T10:11:12+00:00")
    assert report["summary"]["by_id"] == {"DS000": 1} and report["summary"]["warning"] == 1
    root = ET.fromstring(_report.render_junit(report, rules.junit_checks(_fleet.CHECKS, view), "warning"))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert [c.get("name") for c in suites["datastore"].iter("testcase")] == ["DS000"]
    assert suites["datastore"].get("failures") == "1"
    # No DS check claims to have passed on a node: none ran.
    assert not [c for c in suites["node1"].iter("testcase") if c.get("name").startswith("DS")]
    assert "Unauthorized" in _report.render_markdown(report)


# --- why a read failed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind"), [
    ('error: the server doesn\'t have a resource type "ipamblocks.crd.projectcalico.org"', "resource_absent"),
    ("error: You must be logged in to the server (Unauthorized)", "credentials"),
    ('Error from server (Forbidden): nodes is forbidden: User "system:anonymous" cannot list resource "nodes" in '
     'API group "" at the cluster scope', "credentials"),
    ("Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown "
     "authority", "tls"),
    ("Unable to connect to the server: net/http: TLS handshake timeout", "timeout"),
    ("Unable to connect to the server: dial tcp 192.0.2.10:6443: i/o timeout", "timeout"),
    ("Error from server (Timeout): the server was unable to return a response in the time allotted, but may "
     "still be processing the request (get nodes)", "timeout"),
    ("The connection to the server 192.0.2.10:6443 was refused - did you specify the right host or port?",
     "unreachable"),
    ("Unable to connect to the server: dial tcp: lookup api.example on 127.0.0.53:53: no such host", "unreachable"),
    ("error: context was not found for specified context: prod", "config"),
    ("error: stat /etc/kubernetes/admin.conf: no such file or directory", "file"),
    ("error: something new", "other"),
])
def test_kubectl_error_kind(text, kind):
    assert ds.kubectl_error_kind(text) == kind


def test_etcd_error_kind():
    import socket
    import ssl
    import urllib.error

    class Status(OSError):
        def __init__(self, code):
            super().__init__(f"HTTP {code}")
            self.code = code

    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    required = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
    assert ds.etcd_error_kind(urllib.error.URLError(verify)) == "tls"
    assert ds.etcd_error_kind(required) == "credentials"
    # etcd with --client-cert-auth may also just close the connection on a client without a certificate.
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)")
    assert ds.etcd_error_kind(eof, client_cert=False) == "credentials"
    assert ds.etcd_error_kind(eof) == "tls"
    assert ds.etcd_error_kind(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))) == \
        "unreachable"
    assert ds.etcd_error_kind(urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))) == \
        "unreachable"
    assert ds.etcd_error_kind(urllib.error.URLError(TimeoutError("timed out"))) == "timeout"
    assert ds.etcd_error_kind(TimeoutError("timed out")) == "timeout"
    assert ds.etcd_error_kind(Status(401)) == "credentials" and ds.etcd_error_kind(Status(404)) == "http"
    assert ds.etcd_error_kind(ValueError("Expecting value")) == "bad_output"
    assert ds.worst_kind(["unreachable", "tls", "timeout"]) == "tls"
    assert ds.worst_kind([]) == "other"
