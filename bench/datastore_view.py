"""The datastore view at fleet scale: a 5,000-node etcd listing (a Node, an IPAM block and a block
affinity per node, the values shaped as libcalico-go writes them) parsed into the view, and the DS
rules run over it and bench/fleet_scale.py's 5,000-node fleet of facts, with planted drift (nodes
registered with another address, moved blocks, stale nodes) so every rule does real work.

Target: parsing plus the rules <= 1 s; the view, which travels from the module to the controller's
audit, small (a few hundred bytes per node). Run alone: .venv/bin/python bench/datastore_view.py
"""

import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet_scale as fleet  # noqa: E402 - the synthetic fleet lives there
from ansible_collections.netdoctor.calico.plugins.module_utils import _contract, _datastore  # noqa: E402
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _datastore_rules  # noqa: E402

TARGET_S = 1.0
MOVED_IP, MOVED_BLOCK, STALE = range(100, 5000, 500), range(150, 5000, 500), 10


def etcd_pairs():
    pairs = []
    for i in range(fleet.NODES + STALE):
        name, cidr = f"node{i:04d}", fleet.block(i)
        address = f"{fleet.ip(i + 1)}/16" if i in MOVED_IP else f"{fleet.ip(i)}/16"
        owner = f"node{i + 1:04d}" if i in MOVED_BLOCK else name
        pairs.append((f"{_datastore.ETCD_NODES}{name}", json.dumps({
            "kind": "Node", "apiVersion": "projectcalico.org/v3", "metadata": {"name": name},
            "spec": {"bgp": {"ipv4Address": address, "ipv4IPIPTunnelAddr": fleet.tunnel(i)},
                     "orchRefs": [{"nodeName": name, "orchestrator": "k8s"}]}})))
        allocations = [0, 1, 2, 3, 4, 5] + [None] * 58
        pairs.append((f"/calico/ipam/v2/assignment/ipv4/block/{cidr.replace('/', '-')}", json.dumps({
            "cidr": cidr, "affinity": f"host:{owner}", "allocations": allocations, "unallocated": list(range(6, 64)),
            "attributes": [{"handle_id": f"k8s-pod-network.{i:064x}", "secondary": {"node": owner}}] * 6,
            "sequenceNumber": 6, "deleted": False})))
        pairs.append((f"/calico/ipam/v2/host/{owner}/ipv4/block/{cidr.replace('/', '-')}",
                      json.dumps({"state": "confirmed", "deleted": False})))
    return pairs


def main():
    facts = {f"node{i:04d}": fleet.node_fact(i) for i in range(fleet.NODES)}
    expected = _contract.expected_map(facts)
    pairs = etcd_pairs()
    listing_mb = sum(len(k) + len(v) for k, v in pairs) / 1e6
    parse, rules = [], []
    for _run in range(3):  # the machine may be busy: the median of three
        start = time.perf_counter()
        view = _datastore.view_from_etcd(pairs)
        parse.append(time.perf_counter() - start)
        start = time.perf_counter()
        found = _datastore_rules.datastore_findings(view, expected, facts)
        rules.append(time.perf_counter() - start)
    by_id = {}
    for finding in found:
        by_id[finding["id"]] = by_id.get(finding["id"], 0) + 1
    view_kb = len(json.dumps(view)) / 1e3
    total = statistics.median(parse) + statistics.median(rules)
    print(f"datastore-{fleet.NODES}: etcd listing {listing_mb:.1f} MB ({len(pairs)} keys); view {view_kb:.0f} KB "
          f"as JSON; {len(found)} findings {dict(sorted(by_id.items()))}")
    print(f"datastore-{fleet.NODES}: parse {statistics.median(parse):.2f} s, rules {statistics.median(rules):.2f} s "
          f"(median of 3), total {total:.2f} s")
    if total > TARGET_S:
        sys.stderr.write(f"over target: parse + rules <= {TARGET_S} s\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
