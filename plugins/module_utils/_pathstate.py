# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""What the data plane IS on one node, beside what it should be (issue 12): every local workload's
/32 route and veth, the routing policy (ip rule) in front of the main table, and the MTU along the
path (pods, tunnel, underlay, /var/lib/calico/mtu). Pure over the netlink snapshot, except
``policy_lookups``, which asks the kernel (route_get) for a few destinations when rules exist.

The fact's ``path`` part::

    {"workloads": {"interfaces": n, "routed": n,
                   "missing_routes": [{"interface", "ip" | None, "up", "source"}],   # cali* veth, no /32
                   "down": [{"interface", "ip"}]},                                   # /32 on a veth that is down
     "policy": {"rules": [rule], "checked": n, "diverted": [{"dst", "what", "peer", "table", "lookup"}]} | None,
     "mtu": {"mode", "pod_mtu", "pod_interfaces", "mtu_file", "tunnel", "tunnel_mtu", "underlay", "underlay_mtu",
             "overhead"}}
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netdoctor.calico.plugins.module_utils import _contract
from ansible_collections.netdoctor.calico.plugins.module_utils._calico_view import (
    BIRD,
    BOOT,
    FELIX,
    IPIP_DEVICES,
    VXLAN_DEVICES,
    WORKLOAD_PREFIX,
)

# The rules every Linux box has: local (0), main (32766), default (32767).
DEFAULT_RULES = {(0, 255), (32766, 254), (32767, 253)}
MAIN_TABLE = 254
MAIN_PRIORITY = 32766
POLICY_LOOKUP_LIMIT = 256   # route_get calls at most, per node, when rules exist
OVERHEAD = {"ipip": 20, "vxlan": 50, "bgp": 0, "wireguard": 60}
TUNNEL_DEVICES = IPIP_DEVICES | VXLAN_DEVICES


def _is_workload(name):
    return bool(name) and name.startswith(WORKLOAD_PREFIX) and name not in TUNNEL_DEVICES


# The workloads' state lives in _contract (calico_routes restores the routes and carries only it).
workload_state = _contract.workload_state
workload_routes = _contract.workload_routes


def extra_rules(snapshot, version=4):
    """The rules in front of the main table that are not the kernel's defaults (those can send a
    destination through another table)."""
    out = []
    for rule in snapshot.get("rules") or ():
        if rule.get("family") != version:
            continue
        key = (rule.get("priority") or 0, rule.get("table"))
        if key in DEFAULT_RULES or (rule.get("priority") or 0) >= MAIN_PRIORITY:
            continue
        out.append(rule)
    return out


def _calico_route(route):
    protocol, dev = route.get("protocol"), route.get("dev") or ""
    return protocol in (BIRD, FELIX) or (protocol == BOOT and dev in TUNNEL_DEVICES)


def policy_targets(snapshot, peers=(), limit=POLICY_LOOKUP_LIMIT):
    """(dst address, what, peer) the policy check looks up: one address inside each remote block
    this node routes (Calico's routes in the main table, off the workloads) and each peer address."""
    out, seen = [], set()
    for route in snapshot.get("routes") or ():
        dst, dev = route.get("dst") or "", route.get("dev") or ""
        if (not dst or dst == "default" or ":" in dst or route.get("type", "unicast") != "unicast"
                or _is_workload(dev) or not _calico_route(route)):
            continue
        net = ipaddress.ip_network(dst, strict=False)
        if net.prefixlen >= 31:
            continue
        address = str(net.network_address + 1)
        if address not in seen:
            seen.add(address)
            out.append((address, "block " + dst, route.get("gateway")))
    for peer in peers:
        if peer and ":" not in peer and peer not in seen:
            seen.add(peer)
            out.append((peer, "peer", peer))
    return out[:limit]


def judge_policy(snapshot, lookups, targets):
    """The destinations a rule sends through another table than main (or into no route at all,
    while main has one). ``lookups``: address -> the kernel's route_get (with its table) or None."""
    diverted = []
    for address, what, peer in targets:
        lookup = lookups.get(address)
        table = (lookup or {}).get("table")
        if lookup is not None and table in (None, MAIN_TABLE):
            continue
        diverted.append({"dst": address, "what": what, "peer": peer, "table": table,
                         "lookup": None if lookup is None else {k: lookup.get(k) for k in (
                             "dst", "type", "gateway", "dev", "prefsrc", "table")}})
    return diverted


def policy_facts(snapshot, route_get, peers=(), limit=POLICY_LOOKUP_LIMIT):
    """None when only the default rules exist (nothing is looked up); else the extra rules and the
    destinations they divert. ``route_get(address)`` is the kernel's lookup."""
    rules = extra_rules(snapshot)
    if not rules:
        return None
    targets = policy_targets(snapshot, peers, limit)
    lookups = {}
    for address, _what, _peer in targets:
        try:
            lookups[address] = route_get(address)
        except (OSError, ValueError):
            lookups[address] = None
    return {"rules": [{k: r.get(k) for k in ("priority", "table", "src", "dst", "iif", "oif", "fwmark")}
                      for r in rules[:20]],
            "checked": len(targets), "diverted": judge_policy(snapshot, lookups, targets)}


def _link_of(links, ip):
    for link in links:
        if any(a.get("address") == ip for a in link.get("addresses") or ()):
            return link
    return None


def mtu_facts(fact_links, calico, node_ip=None, mtu_file=None):
    """MTU along the path: the pods' (the largest cali* veth MTU), the tunnel's, the underlay's (the
    NIC with the node IP, or VXLAN's parent) and the mode's encapsulation overhead."""
    links = list(fact_links or ())
    mode = (calico or {}).get("mode")
    pods = [lk for lk in links if _is_workload(lk.get("name")) and lk.get("mtu")]
    tunnel = (calico or {}).get("tunnel") or {}
    parent = ((calico or {}).get("vxlan") or {}).get("parent")
    underlay = next((lk for lk in links if parent and lk.get("name") == parent), None) if mode == "vxlan" else None
    if underlay is None and node_ip:
        underlay = _link_of(links, node_ip)
    return {"mode": mode, "pod_mtu": max((lk["mtu"] for lk in pods), default=None), "pod_interfaces": len(pods),
            "mtu_file": mtu_file, "tunnel": tunnel.get("device"), "tunnel_mtu": tunnel.get("mtu"),
            "underlay": (underlay or {}).get("name"), "underlay_mtu": (underlay or {}).get("mtu"),
            "overhead": OVERHEAD.get(mode)}


def path_facts(snapshot, fact_links, calico, *, node_ip=None, mtu_file=None, policy=None):
    """The fact's ``path`` part."""
    return {"workloads": workload_state(snapshot), "policy": policy,
            "mtu": mtu_facts(fact_links, calico, node_ip, mtu_file)}
