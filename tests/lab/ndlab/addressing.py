"""The lab's naming and numbering plan: modes, the address ranges of a slot, node, pod and
interface names, deterministic MACs (tests/lab/README.md, Addressing)."""

import hashlib
import ipaddress

from .runner import run_json

ASN = 64512
POOL = "198.18.0.0/16"
MODES = ("bgp", "vxlan", "ipip")
TUNNEL_DEVICE = {"bgp": None, "vxlan": "vxlan.calico", "ipip": "tunl0"}
POD_MTU = {"bgp": 1500, "vxlan": 1450, "ipip": 1480}
VXLAN_PORT = 4789


def prefix(lab_name):
    return f"nd-{lab_name}"


def underlay_ip(slot, host):
    return f"192.0.2.{64 * slot + host}"


def extra_ip(slot, host):
    return f"198.51.100.{64 * slot + host}"


def slot_networks(slot):
    return [ipaddress.ip_network(f"192.0.2.{64 * slot}/26"),
            ipaddress.ip_network(f"198.51.100.{64 * slot}/26"),
            ipaddress.ip_network(f"198.18.{64 * slot}.0/18")]


def proto_name(ip):
    return "Mesh_" + ip.replace(".", "_")


def veth_name(lab_name, pod_name):
    return "cali" + sha_hex(f"{lab_name}.{pod_name}")[:11]


def sha_hex(text):
    return hashlib.sha1(text.encode()).hexdigest()


def mac_from(seed, first=0x66):
    # Locally administered unicast, deterministic per seed (Felix's VXLAN MACs look alike).
    b = hashlib.sha1(seed.encode()).digest()
    return ":".join(f"{x:02x}" for x in (first,) + tuple(b[:5]))


def in_underlay(lab, ip):
    return ipaddress.ip_address(ip) in ipaddress.ip_network(lab["underlay_cidr"])


def root_ns_addresses():
    """Addresses, gateways and neighbours the root namespace already uses outside any lab."""
    used = set()
    for link in run_json(["ip", "-j", "addr", "show"]):
        if not link["ifname"].startswith("nd-"):
            used.update(a["local"] for a in link.get("addr_info", []) if a["family"] == "inet")
    for route in run_json(["ip", "-j", "route", "show", "table", "all"]):
        if not route.get("dev", "").startswith("nd-"):
            used.update(route[k] for k in ("gateway", "prefsrc") if route.get(k))
    for neigh in run_json(["ip", "-4", "-j", "neigh", "show"]):
        if not neigh.get("dev", "").startswith("nd-"):
            used.add(neigh["dst"])
    return {ipaddress.ip_address(a) for a in used if ":" not in a}
