# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Seed 003's pod-to-pod trace, the node's half (pure: data in, data out; the eight steps are
judged on the controller, ``plugin_utils._trace_judge``).

    send   1 pod A -> node A    2 node A -> toward node B    3 node B accepts it    4 node B -> pod B
    reply  5 pod B -> node B    6 node B -> toward node A    7 node A accepts it    8 node A -> pod A

Each node contributes a *half* (``node_half``, built by the calico_trace module on that node): its
own pods' veths, workload routes and pod-side view (gateway neighbour, a ping), the kernel's
lookups (``ip route get``) towards both pods and towards the underlay next hop, and the sysctls
that gate forwarding. Only what the steps read travels, so a half is small on any node.
The controller's ``trace(src_half, dst_half, src, dst)`` judges the eight steps; ``combine`` picks the two owners
out of every node's half (the playbook runs the module on every node; nodes that own neither
pod stop after two route lookups). Reference: calico_internals §2.3 (route shapes), §2.5
(sysctls), §2.7 (which source addresses a node accepts encapsulated traffic from).
"""

from __future__ import annotations

import ipaddress
import socket

from ansible_collections.netdoctor.calico.plugins.module_utils import _calico_view

SCHEMA_VERSION = 1
POD_GATEWAY = "169.254.1.1"  # the CNI plugin's `default via 169.254.1.1 dev eth0` in every pod
BAD_NEIGHBOUR_STATES = frozenset(("failed", "incomplete"))
BAD_OPERSTATES = frozenset(("DOWN", "LOWERLAYERDOWN", "NOTPRESENT"))
COVERING_LIMIT = 3  # routes quoted per lookup: the one the kernel uses and what it would fall back to
VXLAN_DEVICES = _calico_view.VXLAN_DEVICES
TUNNEL_DEVICES = _calico_view.TUNNEL_DEVICES


# --- addresses and routes ----------------------------------------------------------------------

def ip_text(value, what="address"):
    """The canonical text of an IP address; ValueError naming ``what`` for anything else."""
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not an IP address") from None


def _v4_int(text):
    return int.from_bytes(socket.inet_aton(text), "big")


def _contains(dst, family, addr, addr_int):
    """Whether route dst ('a.b.c.d/len', 'default') holds addr. IPv4 in integer arithmetic: this
    runs once per route of a table that can hold 100k of them."""
    if dst in (None, "default"):
        return 0
    prefix, _slash, length = dst.partition("/")
    if family == 4 and addr_int is not None:
        plen = int(length or 32)
        try:
            net = _v4_int(prefix)
        except OSError:
            return None
        mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
        return plen if (net & mask) == (addr_int & mask) else None
    try:
        network = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return None
    return network.prefixlen if addr in network else None


def covering_routes(routes, ip, limit=COVERING_LIMIT):
    """Main-table routes whose prefix holds ip, most specific first: the first is the route the
    kernel's main-table lookup uses (a lower metric wins among equal prefixes)."""
    addr = ipaddress.ip_address(ip)
    addr_int = _v4_int(str(addr)) if addr.version == 4 else None
    found = []
    for route in routes or ():
        if route.get("family") != addr.version:
            continue
        plen = _contains(route.get("dst"), addr.version, addr, addr_int)
        if plen is not None:
            found.append((-plen, route.get("metric") or 0, len(found), route))
    found.sort(key=lambda item: item[:3])
    return [item[3] for item in found[:limit]]


def is_workload_device(name):
    return bool(name) and name.startswith(_calico_view.WORKLOAD_PREFIX)


def is_local_lookup(lookup):
    """The kernel delivers to a workload veth on this node: the pod lives here."""
    return bool(lookup) and not lookup.get("gateway") and is_workload_device(lookup.get("dev"))


def workload_route(covering, ip):
    """``ip/32 dev caliX scope link`` (or the /128) among the covering routes, else None."""
    host_len = 128 if ":" in ip else 32
    for route in covering:
        if (route.get("dst") == f"{ip}/{host_len}" and is_workload_device(route.get("dev"))
                and not route.get("gateway") and route.get("type", "unicast") == "unicast"):
            return route
    return None


def local_block(covering):
    """The node's own block holding the address: Calico's blackhole route (proto bird or felix)."""
    return next((r for r in covering if r.get("type") == "blackhole"
                 and r.get("protocol") in _calico_view.CALICO_PROTOCOLS), None)


def owns(ip, lookup, covering=None):
    """Whether the pod with this IP is on this node: the kernel delivers it to a workload veth, or
    (when its workload route is gone) the node holds the pod's block. ``covering`` is needed only
    when the lookup found no usable route (a local block is a blackhole)."""
    if is_local_lookup(lookup):
        return True
    return covering is not None and (workload_route(covering, ip) is not None or local_block(covering) is not None)


def needs_routes(lookups):
    """Whether ownership needs the route table: a lookup that found no usable route may be a pod
    of this node whose workload route is gone (its block's blackhole answers)."""
    return any(lookup is None for lookup in lookups.values())


def underlay_target(lookup, neighbours=(), fdb=()):
    """Where a packet to a remote pod really goes: ``{"target", "via", "tunnel_neighbour",
    "fdb"}`` or None for a local or unroutable pod. VXLAN: the FDB destination of the next hop's
    MAC (Felix's neighbour + FDB entries); IPIP and native routing: the next hop itself."""
    if not lookup or not lookup.get("gateway") or is_local_lookup(lookup):
        return None
    dev, gateway = lookup.get("dev"), lookup["gateway"]
    if dev not in VXLAN_DEVICES:
        return {"target": gateway, "via": "gateway", "tunnel_neighbour": None, "fdb": None}
    neigh = next((n for n in neighbours if n.get("dev") == dev and n.get("dst") == gateway), None)
    mac = (neigh or {}).get("lladdr")
    entry = next((f for f in fdb if f.get("dev") == dev and f.get("lladdr") == mac), None) if mac else None
    return {"target": (entry or {}).get("dst"), "via": "fdb", "tunnel_neighbour": neigh, "fdb": entry}


# --- the pod's network namespace ---------------------------------------------------------------

def fib_trie_local_addresses(text):
    """The local IPv4 addresses in /proc/<pid>/net/fib_trie (``|-- A`` then ``/32 host LOCAL``):
    which namespace holds a pod IP, read without entering any namespace."""
    out, leaf = set(), None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            leaf = stripped[4:]
        elif leaf and stripped.startswith("/32 host LOCAL"):
            out.add(leaf)
    return out


def if_inet6_addresses(text):
    """The IPv6 addresses in /proc/<pid>/net/if_inet6 (32 hex digits first on each line)."""
    out = set()
    for line in text.splitlines():
        word = line.split()[0] if line.split() else ""
        if len(word) == 32:
            try:
                out.add(str(ipaddress.IPv6Address(bytes.fromhex(word))))
            except ValueError:
                continue
    return out


def pod_side(ip, peer_ip, snapshot, lookup):
    """What the pod's own namespace shows: the interface holding its IP, the gateway it routes
    the peer through and that gateway's neighbour entry (seed 003: 169.254.1.1 must resolve to the
    host veth's MAC)."""
    snapshot = snapshot or {}
    links = {link["index"]: link for link in snapshot.get("links") or ()}
    holder = next((a for a in snapshot.get("addresses") or () if a.get("address") == ip), None)
    link = links.get((holder or {}).get("index")) or {}
    gateway = (lookup or {}).get("gateway")
    neigh = None
    if gateway:
        neigh = next((n for n in snapshot.get("neighbours") or ()
                      if n.get("dst") == gateway and n.get("dev") == lookup.get("dev")), None)
    return {"interface": link.get("name"), "operstate": link.get("operstate"), "up": link.get("up"),
            "mac": link.get("mac"), "holds_ip": holder is not None, "peer": peer_ip,
            "route": lookup, "gateway_neighbour": neigh}


# --- one node's half -----------------------------------------------------------------------------

def _link_view(link):
    return {k: link.get(k) for k in ("index", "name", "kind", "up", "operstate", "mtu", "mac")}


def pod_interface(covering, lookup, ip):
    """The host-side veth of this node's pod: its workload route's device, else the lookup's."""
    wl = workload_route(covering, ip)
    return (wl or {}).get("dev") or ((lookup or {}).get("dev") if is_local_lookup(lookup) else None)


def half_interfaces(snapshot, lookups, owned):
    """The links a half describes: every link but the workload veths, plus the veths of this
    node's pods in the trace (a node can have hundreds of veths; two matter)."""
    routes = (snapshot or {}).get("routes") or []
    pods = {pod_interface(covering_routes(routes, ip), lookups.get(ip), ip) for ip in owned}
    names = [link["name"] for link in (snapshot or {}).get("links") or () if not is_workload_device(link["name"])]
    return names + sorted(p for p in pods if p)


def registered_ip(router_id=None, snapshot=None, env_ip=None):
    """The node's Calico (registered) IP as the node knows it, and where it was read: BIRD's
    router id (BGP and IPIP), else the VXLAN device's local address (Felix sets it to the node
    IP), else calico-node's IP env when it is an address."""
    if router_id:
        return router_id, "bird_router_id"
    for link in (snapshot or {}).get("links") or ():
        local = (link.get("vxlan") or {}).get("local")
        if link.get("name") in VXLAN_DEVICES and local:
            return local, "vxlan_local"
    if env_ip:
        try:
            return str(ipaddress.ip_interface(env_ip.strip()).ip), "calico_node_env"
        except ValueError:
            pass
    return None, None


def node_half(*, host, src, dst, snapshot, lookups, sysctls=None, underlay_lookups=None, pods=None,
              node_ip=None, node_ip_source=None, intended_ip=None):
    """What one node contributes to the trace (docs/trace.md, "Data").

    ``lookups``: ``{ip: route_get(ip)}`` for src and dst; ``underlay_lookups``: ``{address:
    route_get(address)}`` for the underlay targets (``underlay_target``); ``pods``: ``{ip:
    {"netns", "note", "snapshot", "lookup", "probe"}}`` for this node's pods (pod-side reads,
    None where the pod's namespace was not found). A node that owns neither pod returns only
    ``{"schema_version", "host", "owns": []}``.
    """
    ips = (src, dst)
    routes = (snapshot or {}).get("routes") or []
    covering = {ip: covering_routes(routes, ip) for ip in ips}
    owned = [ip for ip in ips if owns(ip, lookups.get(ip), covering[ip])]
    if not owned:
        return {"schema_version": SCHEMA_VERSION, "host": host, "owns": []}
    view = _calico_view.calico_view(snapshot)
    links = snapshot.get("links") or []
    by_index = {link["index"]: link for link in links}
    neighbours, fdb = snapshot.get("neighbours") or [], snapshot.get("fdb") or []
    addresses = [{"address": a["address"], "prefixlen": a.get("prefixlen"),
                  "dev": (by_index.get(a.get("index")) or {}).get("name")}
                 for a in snapshot.get("addresses") or () if a.get("scope") in ("global", 0)]
    pod_views = {}
    for ip in owned:
        info = (pods or {}).get(ip) or {}
        other = dst if ip == src else src
        side = pod_side(ip, other, info["snapshot"], info.get("lookup")) if info.get("snapshot") else None
        pod_views[ip] = {"interface": pod_interface(covering[ip], lookups.get(ip), ip),
                         "route": workload_route(covering[ip], ip), "block": local_block(covering[ip]),
                         "netns": info.get("netns"), "note": info.get("note"), "pod": side,
                         "probe": info.get("probe")}
    paths = {}
    for ip in ips:
        lookup = lookups.get(ip)
        under = None if ip in owned else underlay_target(lookup, neighbours, fdb)
        if under and under["target"]:
            ulookup = (underlay_lookups or {}).get(under["target"])
            hop = (ulookup or {}).get("gateway") or under["target"]
            under["lookup"] = ulookup
            under["neighbour"] = next((n for n in neighbours if n.get("dst") == hop
                                       and n.get("dev") == (ulookup or {}).get("dev")), None)
        paths[ip] = {"lookup": lookup, "routes": covering[ip], "underlay": under}
    keep = set(half_interfaces(snapshot, lookups, owned))
    sysctls = sysctls or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "host": host,
        "owns": owned,
        "node_ip": node_ip, "node_ip_source": node_ip_source, "intended_ip": intended_ip,
        "mode": view["mode"],
        "tunnel": view["tunnel"],
        "vxlan": {k: (view["vxlan"] or {}).get(k) for k in ("device", "local", "mac")} if view["vxlan"] else None,
        "local_blocks": view["local_blocks"],
        "addresses": addresses,
        "links": {link["name"]: _link_view(link) for link in links if link["name"] in keep},
        "sysctls": {**{k: v for k, v in sysctls.items() if k != "interfaces"},
                    "interfaces": {k: v for k, v in (sysctls.get("interfaces") or {}).items() if k in keep}},
        "pods": pod_views,
        "paths": paths,
    }


def check_pair(src, dst):
    """Two different pod addresses of one IP version; ValueError otherwise."""
    if src == dst:
        raise ValueError(f"src and dst are the same address {src}: give two pods")
    if (":" in src) != (":" in dst):
        raise ValueError(f"src {src} and dst {dst} are of different IP versions")
