"""Calico's etcd v3 keys for a namespace lab: what calico-node and Calico IPAM would have written for
the nodes, blocks and tunnel addresses of `tests/lab/labctl show` (reference/calico_internals.md
§3.1: libcalico-go's keys, the JSON field names of its Node, block and affinity values).

Pure: the lab record in, {key: JSON text} out. The lab's registered IP (`calico_ip`) is what its
"datastore" (state.json) holds; its prefix length is the one of the interface that carries it.
"""

import hashlib
import ipaddress
import json

NODE_KEY = "/calico/resources/v3/projectcalico.org/nodes/{name}"
BLOCK_KEY = "/calico/ipam/v2/assignment/ipv4/block/{cidr}"
AFFINITY_KEY = "/calico/ipam/v2/host/{name}/ipv4/block/{cidr}"
TUNNEL_HANDLE = {"ipip": ("ipip-tunnel-addr-{}", "ipipTunnelAddress"),
                 "vxlan": ("vxlan-tunnel-addr-{}", "vxlanTunnelAddress")}


def _with_prefix(node, address):
    for cidr in node["underlay"] + node["extra"]:
        if cidr.split("/")[0] == address:
            return cidr
    return f"{address}/32"


def node_value(node, mode):
    spec = {"bgp": {"ipv4Address": _with_prefix(node, node["calico_ip"])},
            "orchRefs": [{"nodeName": node["name"], "orchestrator": "k8s"}],
            "addresses": [{"address": _with_prefix(node, node["calico_ip"]), "type": "CalicoNodeIP"}]}
    if mode == "ipip":
        spec["bgp"]["ipv4IPIPTunnelAddr"] = node["tunnel_address"]
    elif mode == "vxlan":
        spec["ipv4VXLANTunnelAddr"] = node["tunnel_address"]
        spec["vxlanTunnelMACAddr"] = node["vxlan_mac"]
    return {"kind": "Node", "apiVersion": "projectcalico.org/v3",
            "metadata": {"name": node["name"], "creationTimestamp": None}, "spec": spec, "status": {}}


def block_value(node, mode, cidr):
    """The IPAM block of a node: its tunnel address and its pods allocated, the rest free."""
    net = ipaddress.ip_network(cidr)
    allocations, attributes, sequence = [None] * net.num_addresses, [], {}
    owners = []
    if mode in TUNNEL_HANDLE and node["tunnel_address"]:
        handle, kind = TUNNEL_HANDLE[mode]
        owners.append((node["tunnel_address"], {"handle_id": handle.format(node["name"]),
                                                "secondary": {"node": node["name"], "type": kind}}))
    for pod in node["pods"]:
        container = hashlib.sha256(pod["name"].encode()).hexdigest()
        owners.append((pod["ip"], {"handle_id": f"k8s-pod-network.{container}",
                                   "secondary": {"namespace": "default", "node": node["name"], "pod": pod["name"]}}))
    for address, attribute in owners:
        ordinal = int(ipaddress.ip_address(address)) - int(net.network_address)
        allocations[ordinal] = len(attributes)
        attributes.append(attribute)
        sequence[str(ordinal)] = len(attributes)
    return {"cidr": cidr, "affinity": f"host:{node['name']}", "allocations": allocations,
            "unallocated": [i for i, a in enumerate(allocations) if a is None], "attributes": attributes,
            "sequenceNumber": len(attributes), "sequenceNumberForAllocation": sequence, "deleted": False}


def etcd_kvs(record):
    """{key: JSON text} of every node, IPAM block and confirmed host affinity of the lab."""
    out = {}
    for node in record["nodes"]:
        out[NODE_KEY.format(name=node["name"])] = json.dumps(node_value(node, record["mode"]))
        for cidr in node["blocks"]:
            name = cidr.replace("/", "-")
            out[BLOCK_KEY.format(cidr=name)] = json.dumps(block_value(node, record["mode"], cidr))
            affinity = {"state": "confirmed", "deleted": False}
            out[AFFINITY_KEY.format(name=node["name"], cidr=name)] = json.dumps(affinity)
    return out
