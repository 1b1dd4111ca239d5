"""The lab record (state.json): a new lab's shape, lookups in it, and the records `show` and
`nodes` print."""

import ipaddress
import time

from .addressing import ASN, TUNNEL_DEVICE, extra_ip, mac_from, prefix, underlay_ip, veth_name
from .calico_node import IP_METHOD, default_ds_env, pod_env
from .errors import UsageError


def new_lab(args, slot):
    name, mode = args.name, args.mode
    p = prefix(name)
    nodes = []
    for i in range(1, args.nodes + 1):
        nname = f"node{i}"
        host = 10 + i
        block = f"198.18.{64 * slot + i}.0"
        pods = []
        for j in range(1, args.pods_per_node + 1):
            pname = f"{nname}-p{j}"
            pods.append({"name": pname, "namespace": f"{p}-{pname}",
                         "ip": str(ipaddress.ip_address(block) + j),
                         "interface": veth_name(name, pname),
                         "mac": mac_from(f"{name}.{pname}.eth0", first=0x0a)})
        uip = underlay_ip(slot, host)
        nodes.append({
            "name": nname, "hostname": nname, "namespace": f"{p}-{nname}",
            "underlay_ip": uip, "extra_ip": extra_ip(slot, host) if args.extra_nic else None,
            "calico_ip": uip, "calico_cidr": f"{uip}/26", "intended_ip": uip,
            "block": f"{block}/26",
            "tunnel_address": block if mode != "bgp" else None,
            "vxlan_mac": mac_from(f"{name}.{nname}.vxlan") if mode == "vxlan" else None,
            "tunl_mac": mac_from(f"{name}.{nname}.tunl0") if mode == "ipip" else None,
            "calico_node": {"ready": True, "message": "not started yet"},
            "procs": {}, "pods": pods,
        })
    lab = {"name": name, "mode": mode, "slot": slot, "pods_per_node": args.pods_per_node,
           "extra_nic": args.extra_nic, "nm": args.nm, "status": "building",
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "underlay_cidr": f"192.0.2.{64 * slot}/26",
           "controller_ip": underlay_ip(slot, 1), "gateway_ip": underlay_ip(slot, 62),
           "bridge": f"{p}-u", "extra_bridge": f"{p}-x" if args.extra_nic else None,
           "gw_namespace": f"{p}-gw", "nodes": nodes, "faults": []}
    lab["daemonset"] = {"generation": 1, "env": default_ds_env(lab)}
    for node in nodes:
        node["pod_template"] = lab["daemonset"]["env"]
    return lab


def faults_on(lab, node, name=None):
    return [f for f in lab["faults"]
            if f["node"] == node["name"] and (name is None or f["fault"] == name)]


def node_by_name(lab, name):
    for node in lab["nodes"]:
        if node["name"] == name:
            return node
    raise UsageError(f"lab {lab['name']} has no node {name!r}")


def node_record(lab, node):
    mode = lab["mode"]
    return {
        "name": node["name"], "hostname": node["hostname"], "namespace": node["namespace"],
        "pid": node["procs"].get("keeper", {}).get("pid"),
        "underlay": [f"{node['underlay_ip']}/26"],
        "extra": [f"{node['extra_ip']}/26"] if node["extra_ip"] else [],
        "calico_ip": node["calico_ip"], "intended_ip": node["intended_ip"], "asn": ASN,
        "blocks": [node["block"]], "tunnel_device": TUNNEL_DEVICE[mode],
        "tunnel_address": node["tunnel_address"], "vxlan_mac": node["vxlan_mac"],
        "autodetection_method": pod_env(node).get(IP_METHOD),
        "calico_node": node["calico_node"],
        "processes": {k: v["pid"] for k, v in node["procs"].items()},
        "pods": [{k: pod[k] for k in ("name", "namespace", "ip", "interface")}
                 for pod in node["pods"]],
    }


def lab_record(lab):
    return {"name": lab["name"], "mode": lab["mode"], "slot": lab["slot"],
            "pods_per_node": lab["pods_per_node"], "extra_nic": lab["extra_nic"], "nm": lab["nm"],
            "controller_ip": lab["controller_ip"], "gateway_ip": lab["gateway_ip"],
            "faults": lab["faults"], "nodes": [node_record(lab, n) for n in lab["nodes"]]}
