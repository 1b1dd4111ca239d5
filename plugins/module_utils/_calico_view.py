# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Calico's view of a node's netlink snapshot: who owns each route, the networking mode, the
tunnel device, local blocks, workloads and VXLAN neighbours (pure: data in, data out).

Route owners (docs/development.md, reference calico_internals §2): BIRD = proto 12 (IPIP up to
v3.32, native BGP, its blackholes), Felix = proto 80 (blackholes, no-encap, IPIP from v3.33) and
proto boot 3 (workload /32s and VXLAN routes). A large node has ~100k routes, so classification
is one pass of dict lookups and string tests; addresses are parsed only for the few routes that
need a closer look, and once per distinct next hop.
"""

from __future__ import annotations

import ipaddress

BOOT, BIRD, FELIX = 3, 12, 80
CALICO_PROTOCOLS = frozenset((BIRD, FELIX))
# What `ip route` prints for a protocol number; boot is hidden unless `ip -d route`.
PROTOCOL_NAMES = {2: "kernel", BOOT: "boot", 4: "static", BIRD: "bird", 16: "dhcp", FELIX: "felix"}
_IPROUTE_PROTO = {2: "kernel", 4: "static", BIRD: "bird", 16: "dhcp"}

IPIP_DEVICES = frozenset(("tunl0",))
VXLAN_DEVICES = frozenset(("vxlan.calico", "vxlan-v6.calico"))
WIREGUARD_DEVICES = frozenset(("wireguard.cali", "wg-v6.cali"))
TUNNEL_DEVICES = IPIP_DEVICES | VXLAN_DEVICES | WIREGUARD_DEVICES
WORKLOAD_PREFIX = "cali"  # FELIX_INTERFACEPREFIX default
CLASSES = ("local_blocks", "workloads", "tunnel", "remote_blocks", "other")


def route_text(route):
    """One route the way `ip route` prints it (multipath hops on the same line)."""
    parts = []
    if route.get("type") not in (None, "unicast"):
        parts.append(route["type"])
    dst = route.get("dst") or "default"
    if dst.endswith(("/32", "/128")):
        dst = dst.rsplit("/", 1)[0]
    parts.append(dst)
    if route.get("gateway"):
        parts += ["via", route["gateway"]]
    if route.get("dev"):
        parts += ["dev", route["dev"]]
    proto = route.get("protocol")
    if proto not in (None, BOOT):
        parts += ["proto", _IPROUTE_PROTO.get(proto, str(proto))]
    if route.get("scope") not in (None, "universe"):
        parts += ["scope", str(route["scope"])]
    if route.get("prefsrc"):
        parts += ["src", route["prefsrc"]]
    if route.get("metric"):
        parts += ["metric", str(route["metric"])]
    if route.get("onlink"):
        parts.append("onlink")
    for hop in route.get("multipath") or ():
        parts += ["nexthop", "via", str(hop.get("gateway")), "dev", str(hop.get("dev")),
                  "weight", str(hop.get("weight", 1))]
        if hop.get("onlink"):
            parts.append("onlink")
    return " ".join(parts)


_ROUTE_DEFAULTS = {"type": "unicast", "protocol": None, "dev": None, "gateway": None, "multipath": None,
                   "dst": None, "scope": None, "onlink": False}


def _classify(routes):
    """One pass over the table -> (classes, counts by (class, device, protocol), distinct next hops).

    Classes hold the snapshot's own route dicts in table order. Subscripts rather than .get():
    this loop is most of the cost on a 100k-route node; routes missing a key are completed first.
    """
    try:
        return _classify_complete(routes)
    except KeyError:
        return _classify_complete([{**_ROUTE_DEFAULTS, **r} for r in routes])


def _classify_complete(routes):
    local, workloads, tunnel, remote, other = [], [], [], [], []
    counts, hops = {}, set()
    count, add_hop = counts.get, hops.add
    calico_protos, tunnels, vxlans, prefix = CALICO_PROTOCOLS, TUNNEL_DEVICES, VXLAN_DEVICES, WORKLOAD_PREFIX
    for r in routes:
        dev, proto = r["dev"], r["protocol"]
        if dev is None and r["multipath"]:
            dev = r["multipath"][0].get("dev")
        if dev in tunnels:
            gateway = r["gateway"]
            if (gateway or r["multipath"]) and (proto in calico_protos or (proto == BOOT and dev in vxlans)):
                remote.append(r)
                key = ("remote_blocks", dev, proto)
            else:
                tunnel.append(r)
                key = ("tunnel", dev, proto)
            if gateway:
                add_hop(gateway)
            else:
                hops.update(hop.get("gateway") for hop in r["multipath"] or () if hop.get("gateway"))
        elif dev is None:
            if r["type"] == "blackhole" and proto in calico_protos:
                local.append(r)
                key = ("local_blocks", dev, proto)
            else:
                other.append(r)
                key = ("other", dev, proto)
        elif dev.startswith(prefix):
            dst = r["dst"] or ""
            # IPv6 routes carry no scope: a /128 on cali* is a workload route as it is.
            if not r["gateway"] and (dst.endswith("/128") or (dst.endswith("/32") and r["scope"] == "link")):
                workloads.append(r)
                key = ("workloads", dev, proto)
            else:
                other.append(r)
                key = ("other", dev, proto)
        elif (r["gateway"] or r["multipath"]) and proto in calico_protos and r["dst"] != "default":
            remote.append(r)
            key = ("remote_blocks", dev, proto)
            hops.update(_next_hops(r))
        else:
            other.append(r)
            key = ("other", dev, proto)
        counts[key] = count(key, 0) + 1
    classes = {"local_blocks": local, "workloads": workloads, "tunnel": tunnel, "remote_blocks": remote,
               "other": other}
    return classes, counts, hops


def _tally(counts, field, classes=CLASSES):
    """Sum the (class, device, protocol) counts by device (field 1) or protocol (field 2)."""
    out = {}
    for key, n in counts.items():
        if key[0] in classes:
            name = (key[1] or "none") if field == 1 else PROTOCOL_NAMES.get(key[2], str(key[2]))
            out[name] = out.get(name, 0) + n
    return out


def _next_hops(route):
    if route.get("gateway"):
        return [route["gateway"]]
    return [hop["gateway"] for hop in route.get("multipath") or () if hop.get("gateway")]


class _LocalBlocks:
    """This node's own blocks; membership test for next hops (one per peer, not per route)."""

    def __init__(self, dsts):
        self.nets = []
        for dst in dsts:
            try:
                self.nets.append(ipaddress.ip_network(dst, strict=False))
            except (TypeError, ValueError):
                continue
        # Cheap prefilter: a next hop inside an IPv4 block starts with the block's fixed octets.
        self.prefixes = tuple(
            ".".join(str(net.network_address).split(".")[:net.prefixlen // 8]) + "." if net.version == 4 else ""
            for net in self.nets)

    def find(self, hop):
        if not self.nets or not hop.startswith(self.prefixes):
            return None
        ip = ipaddress.ip_address(hop)
        return next((str(net) for net in self.nets if ip in net), None)


def _nexthop_reasons(hop, own, local):
    """Why a next hop looks wrong from this node alone (seed 001 case 1), or an empty list."""
    reasons = []
    if hop in own:
        reasons.append(f"next hop {hop} is an address of this node itself")
    block = local.find(hop)
    if block:
        reasons.append(f"next hop {hop} is inside this node's own block {block} (a pod or its tunnel "
                       "address, not the node IP of the block's owner)")
    return reasons


def _suspects(classes, hops, snapshot):
    """Routes on a tunnel or owned by Calico whose next hop is this node itself or inside its own
    blocks: they look broken on this node alone. Next hops are judged once each; the table is
    scanned only when one is bad. (Wrong next hops towards other nodes need the fleet's map.)"""
    local = _LocalBlocks(r.get("dst") for r in classes["local_blocks"])
    own = {a.get("address") for a in snapshot.get("addresses") or ()}
    bad = {hop: why for hop in hops if (why := _nexthop_reasons(hop, own, local))}
    if not bad:
        return []
    out = []
    for r in classes["remote_blocks"] + classes["tunnel"]:
        reasons = [why for hop in _next_hops(r) for why in bad.get(hop, ())]
        if reasons and r.get("dev") in IPIP_DEVICES and not r.get("onlink"):
            reasons.append("no onlink flag: BIRD and Felix program IPIP routes as `via <node IP> dev tunl0 onlink`")
        if reasons:
            out.append({"route": r, "text": route_text(r), "reasons": reasons})
    return out


def classify_routes(snapshot, full=False):
    """The ``routes`` part of the fact: the main table split by owner, in one pass.

    Classes: ``local_blocks`` (blackhole, proto bird/80), ``workloads`` (/32 dev cali* scope link,
    /128 dev cali*), ``tunnel`` (other routes on tunl0 / vxlan.calico / wireguard.cali),
    ``remote_blocks`` (Calico-owned routes to other nodes' blocks: proto 12/80 with a next hop via
    a tunnel or the underlay, proto boot via vxlan.calico), ``other``. ``remote_blocks`` is a
    summary ``{"count", "by_device", "by_protocol"}`` unless ``full``. ``counts`` has ``total``,
    ``by_class``, ``by_protocol``, ``by_device`` (a multipath route under its first hop's device,
    "none" for blackholes); ``suspect`` lists routes that look wrong on this
    node alone: ``[{"route", "text", "reasons"}]``.
    """
    routes = snapshot.get("routes") or []
    classes, counts, hops = _classify(routes)
    out = {
        "counts": {
            "total": len(routes),
            "by_class": {key: len(classes[key]) for key in CLASSES},
            "by_protocol": _tally(counts, 2),
            "by_device": _tally(counts, 1),
        },
        "suspect": _suspects(classes, hops, snapshot),
    }
    out.update(classes)
    if not full:
        out["remote_blocks"] = {
            "count": len(classes["remote_blocks"]),
            "by_device": _tally(counts, 1, ("remote_blocks",)),
            "by_protocol": _tally(counts, 2, ("remote_blocks",)),
        }
    return out


def _remote_devices(routes):
    remote = routes.get("remote_blocks")
    if isinstance(remote, dict):
        return set(remote.get("by_device") or ())
    return {r.get("dev") for r in remote or ()}


def infer_mode(links_by_name, routes):
    """vxlan.calico -> vxlan; tunl0 carrying routes -> ipip; wireguard.cali -> wireguard; BIRD
    blackholes or Calico routes via the underlay -> bgp; else none."""
    if VXLAN_DEVICES & links_by_name.keys():
        return "vxlan"
    remote_devices = _remote_devices(routes)
    tunnel_devices = {r.get("dev") for r in routes.get("tunnel") or ()}
    if IPIP_DEVICES & (remote_devices | tunnel_devices):
        return "ipip"
    if WIREGUARD_DEVICES & links_by_name.keys():
        return "wireguard"
    if remote_devices - TUNNEL_DEVICES or any(r.get("protocol") == BIRD for r in routes.get("local_blocks") or ()):
        return "bgp"
    return "none"


_MODE_DEVICES = {"ipip": ("tunl0",), "vxlan": ("vxlan.calico", "vxlan-v6.calico"),
                 "wireguard": ("wireguard.cali", "wg-v6.cali")}


def _tunnel(mode, links_by_name, addrs_by_index):
    for name in _MODE_DEVICES.get(mode, ()):
        link = links_by_name.get(name)
        if link:
            family = 6 if "v6" in name else 4
            address = next((a["address"] for a in addrs_by_index.get(link["index"], ()) if a["family"] == family),
                           None)
            return {"device": name, "address": address, "mtu": link.get("mtu"), "up": link.get("up")}
    return None


def _vxlan(snapshot, links_by_name, links_by_index):
    for name in ("vxlan.calico", "vxlan-v6.calico"):
        link = links_by_name.get(name)
        if not link:
            continue
        info = link.get("vxlan") or {}
        parent = links_by_index.get(info.get("link") or link.get("link"))
        return {
            "device": name, "vni": info.get("vni"), "port": info.get("port"), "local": info.get("local"),
            "parent": parent["name"] if parent else None, "mac": link.get("mac"),
            "neighbours": [n for n in snapshot.get("neighbours") or () if n.get("index") == link["index"]],
            "fdb": [f for f in snapshot.get("fdb") or () if f.get("index") == link["index"]],
        }
    return None


def calico_view(snapshot, sysctls=None, routes=None):
    """The ``calico`` part of the fact.

    ``routes`` is ``classify_routes(snapshot)`` when the caller already has it (either form).
    Returns ``{"mode", "tunnel": {"device", "address", "mtu", "up"} | None, "local_blocks":
    [cidr], "workloads": [{"interface", "ip", "up", "proxy_arp"}], "vxlan": {"device", "vni",
    "port", "local", "parent", "mac", "neighbours", "fdb"} | None}``.
    """
    if routes is None:
        routes = classify_routes(snapshot)
    links = snapshot.get("links") or []
    links_by_name = {link["name"]: link for link in links}
    links_by_index = {link["index"]: link for link in links}
    addrs_by_index = {}
    for addr in snapshot.get("addresses") or ():
        addrs_by_index.setdefault(addr["index"], []).append(addr)
    per_if = (sysctls or {}).get("interfaces") or {}
    mode = infer_mode(links_by_name, routes)
    workloads = []
    for r in routes.get("workloads") or ():
        link = links_by_name.get(r.get("dev")) or {}
        workloads.append({"interface": r.get("dev"), "ip": (r.get("dst") or "").split("/")[0],
                          "up": link.get("up"), "proxy_arp": (per_if.get(r.get("dev")) or {}).get("proxy_arp")})
    return {
        "mode": mode,
        "tunnel": _tunnel(mode, links_by_name, addrs_by_index),
        "local_blocks": [r.get("dst") for r in routes.get("local_blocks") or ()],
        "workloads": workloads,
        "vxlan": _vxlan(snapshot, links_by_name, links_by_index),
    }
