# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The contract between the two rooms: what a node sends, what the controller sends back, and
what both call a finding.

- ``CalicoNodeFact``: the ``calico_node`` fact (calico_node_facts, on the node).
- ``ExpectedMap``: block -> owner and next hop, plus every node's identity (``expected_map``, on the
  controller, from the facts); ``route_drift`` judges one node's routes against it, on either side.
- ``RouteDrift``: what route_drift returns; ``Finding``: one finding (built and ranked by
  ``_catalogue``, which holds the catalogue and the severity policy beside it).

Node code and controller code both import this module, so it imports only the standard library
and ``_calico_view``'s constants: calico_routes' payload carries it and nothing more. The JSON
Schema of report.json (docs/report.schema.json) describes the same shapes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections import Counter
from typing import TypedDict  # the annotations stay strings (PEP 563): Python 3.8 never evaluates them

from ansible_collections.netdoctor.calico.plugins.module_utils._calico_view import (
    BIRD,
    BOOT,
    FELIX,
    IPIP_DEVICES,
    VXLAN_DEVICES,
    WORKLOAD_PREFIX,
)

# ---------------------------------------------------------------------------------------------
# Typed shapes (documentation that type checkers and the schema test read; runtime data stays dicts)


class Finding(TypedDict):
    id: str            # a key of CATALOGUE
    severity: str      # one of SEVERITIES
    host: str          # the inventory name of the node it is filed under
    peer: str | None  # the other node of a pair finding (inventory name), else None
    summary: str
    evidence: dict
    remedy: str


class NodeIdentity(TypedDict, total=False):
    ip: str | None            # the registered Calico IP other nodes route to
    ip_source: str | None     # bird_router_id | vxlan_local | calico_node_env | intended
    tunnel_address: str | None
    vxlan_mac: str | None
    blocks: list[str]            # the blocks this node owns (its blackholes)
    facts: bool                  # False: the host gave no facts (unreachable)


class ExpectedBlock(TypedDict):
    owner: str | None         # None: two nodes claim it (owners_conflicts)
    next_hop: str | None
    device: str | None
    onlink: bool | None


class ExpectedMap(TypedDict):
    mode: str                    # ipip | vxlan | bgp | wireguard | none
    modes: dict[str, int]
    cross_subnet: bool
    complete: bool               # every host gave facts
    pools: list[str]
    pools_source: str            # given | derived
    prefixlens: list[int]
    blocks: dict[str, ExpectedBlock]
    nodes: dict[str, NodeIdentity]
    owners_conflicts: dict[str, list[str]]


class DriftItem(TypedDict, total=False):
    kind: str                    # wrong_next_hop | wrong_device | missing | orphan | shadow
    dst: str
    have: dict | None
    want: dict | None
    owner: str | None
    block: str                   # shadow only: the block it sits in


class RouteDrift(TypedDict, total=False):
    host: str
    mode: str
    checked: int
    ok: int
    unverified: int
    counts: dict[str, int]
    drift: list[DriftItem]
    actions: dict[str, list[dict]]   # add | replace | delete: the exact routes a repair writes
    skipped: str


class CalicoNodeFact(TypedDict, total=False):
    schema_version: int
    hostname: str                # evidence only: the node's identity is its inventory name
    links: list[dict]
    routes: dict                 # by owner: local_blocks, workloads, tunnel, remote_blocks, other
    calico: dict                 # mode, tunnel, vxlan, local_blocks (the node's Calico view)
    sysctls: dict
    network_manager: dict
    networkd: dict
    bird: dict
    firewall: dict
    identity: dict
    peer_routes: dict
    autodetection: dict
    findings: list[Finding]


# ---------------------------------------------------------------------------------------------
# Addresses, identities, the expected map and route drift

CALICO_TUNNELS = IPIP_DEVICES | VXLAN_DEVICES
# Route to a remote block per mode (calico_internals §2.3): (owner's field that is the next hop,
# device, onlink). Native BGP leaves the device to the underlay.
ROUTE_SHAPE = {"ipip": ("ip", "tunl0", True), "vxlan": ("tunnel_address", "vxlan.calico", True),
               "bgp": ("ip", None, None)}
# Protocol for a route that is added because it is missing, when the node has no correct block
# route to copy it from: BIRD programs IPIP and no-encap routes, Felix VXLAN ones with proto boot.
DEFAULT_PROTOCOL = {"ipip": BIRD, "bgp": BIRD, "vxlan": BOOT}
# Pools are not in the facts; without them a stale block route off the tunnel devices is only
# recognised inside the supernets of Calico's default pool sizes around the known blocks.
_DERIVED_POOL_PREFIX = {4: 16, 6: 48}
REGISTERED_SOURCES = ("bird_router_id", "vxlan_local")


def address_text(value):
    """'192.0.2.11/24' or '192.0.2.11' -> '192.0.2.11' (canonical text); None for anything else.
    inet_pton: this runs for every node and BGP peer of a large fleet."""
    if not isinstance(value, str) or not value:
        return None
    text = value.split("/", 1)[0].strip()
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, text))
        except OSError:
            continue
    return None


def best_routes(routes, dsts):
    """dst -> the route the kernel uses among several to one dst in ``dsts``: the lowest metric,
    the first in table order on a tie."""
    out = {}
    for route in routes:
        dst = route.get("dst")
        if dst in dsts:
            best = out.get(dst)
            if best is None or (route.get("metric") or 0) < (best.get("metric") or 0):
                out[dst] = route
    return out


def calico_node_env(fact):
    """calico-node's environment as the node read it (DaemonSet env: IP, IP_AUTODETECTION_METHOD, ...)."""
    calico_node = (fact.get("identity") or {}).get("calico_node") or {}
    return calico_node.get("env") or {}


def calico_running(fact):
    """Whether Calico runs on the node: a calico-node process, a Calico mode (its devices and
    routes), BIRD's socket or a block of its own. A host without any of them (a new node, a bastion
    in the group) is the pre-install case, not a broken node."""
    calico = fact.get("calico") or {}
    return bool((fact.get("identity") or {}).get("calico_node") or calico.get("mode") not in (None, "none")
                or (fact.get("bird") or {}).get("available") or calico.get("local_blocks"))


def node_identity(fact, intended_ip=None):
    """The node's Calico IP and where it came from, its tunnel address and VXLAN MAC.

    The registered IP is what the other nodes route to: BIRD's router id (calico-node writes the
    node IP there) in BGP/IPIP mode, the ``local`` address of vxlan.calico (Felix sets it to the
    node IP) in VXLAN mode; then calico-node's ``IP`` env when it is an address, then the
    intended (inventory) IP.
    """
    calico = fact.get("calico") or {}
    vxlan = calico.get("vxlan") or {}
    registered = [("bird_router_id", (fact.get("bird") or {}).get("router_id")), ("vxlan_local", vxlan.get("local"))]
    if calico.get("mode") == "vxlan":
        registered.reverse()
    sources = [*registered, ("calico_node_env", calico_node_env(fact).get("IP")), ("intended", intended_ip)]
    ip, source = next(((a, s) for s, a in ((s, address_text(v)) for s, v in sources) if a), (None, None))
    return {
        "ip": ip,
        "ip_source": source,
        "tunnel_address": address_text((calico.get("tunnel") or {}).get("address")),
        "vxlan_mac": vxlan.get("mac"),
    }


def _local_blocks(fact):
    blocks = (fact.get("calico") or {}).get("local_blocks")
    if blocks is None:
        blocks = [r.get("dst") for r in (fact.get("routes") or {}).get("local_blocks") or ()]
    return sorted({b for b in blocks if b})


def _want(mode, node):
    """(next hop, device, onlink) of a route to a block of ``node`` (None: no single owner)."""
    field, device, onlink = ROUTE_SHAPE.get(mode, (None, None, None))
    return (node[field] if node and field else None), device, onlink


def _derived_pools(blocks):
    pools = set()
    for cidr in blocks:
        net = ipaddress.ip_network(cidr, strict=False)
        pools.add(str(net.supernet(new_prefix=min(net.prefixlen, _DERIVED_POOL_PREFIX[net.version]))))
    return sorted(pools)


def expected_map(facts_by_host, intended_ips=None, pools=None, cross_subnet=False):
    """Block -> owner and next hop, plus each node's identity, from every node's facts.

    ``facts_by_host`` maps each host of the fleet to its ``calico_node`` fact, or to None when
    the host gave no facts (unreachable): such a host stays in ``nodes`` (with its intended IP)
    so routes towards it are not taken for orphans, and the map is marked incomplete.
    ``pools`` (IPPool CIDRs) makes orphan detection off the tunnel devices exact;
    ``cross_subnet`` accepts the unencapsulated same-subnet route of IPIP/VXLAN CrossSubnet.
    The map is sent to every node, so it stays one small entry per block.
    """
    intended_ips = intended_ips or {}
    nodes, owners, modes = {}, {}, Counter()
    for host in sorted(facts_by_host):
        fact = facts_by_host[host]
        if not isinstance(fact, dict):
            ip = address_text(intended_ips.get(host))
            nodes[host] = {"ip": ip, "ip_source": "intended" if ip else None, "tunnel_address": None,
                           "vxlan_mac": None, "blocks": [], "facts": False}
            continue
        mode = (fact.get("calico") or {}).get("mode")
        if mode and mode != "none":
            modes[mode] += 1
        node = node_identity(fact, intended_ips.get(host))
        node["blocks"] = _local_blocks(fact)
        nodes[host] = node
        for cidr in node["blocks"]:
            owners.setdefault(cidr, []).append(host)
    mode = modes.most_common(1)[0][0] if modes else "none"
    blocks, conflicts = {}, {}
    for cidr, claimants in owners.items():
        owner = claimants[0] if len(claimants) == 1 else None
        if owner is None:
            conflicts[cidr] = claimants
        next_hop, device, onlink = _want(mode, nodes[owner] if owner else None)
        blocks[cidr] = {"owner": owner, "next_hop": next_hop, "device": device, "onlink": onlink}
    prefixlens = sorted({int(cidr.rsplit("/", 1)[1]) for cidr in blocks})
    return {
        "mode": mode,
        "modes": dict(modes),
        "cross_subnet": bool(cross_subnet),
        "complete": all(isinstance(f, dict) for f in facts_by_host.values()),
        "pools": sorted(pools) if pools else _derived_pools(blocks),
        "pools_source": "given" if pools else "derived",
        "prefixlens": prefixlens,
        "blocks": blocks,
        "nodes": nodes,
        "owners_conflicts": conflicts,
    }


def _have(route):
    view = {"gateway": route.get("gateway"), "dev": route.get("dev"), "onlink": bool(route.get("onlink")),
            "protocol": route.get("protocol"), "type": route.get("type", "unicast")}
    if route.get("metric"):
        view["metric"] = route["metric"]
    if route.get("multipath"):
        view["multipath"] = [{"gateway": h.get("gateway"), "dev": h.get("dev")} for h in route["multipath"]]
    return view


def _calico_owned(route):
    protocol = route.get("protocol")
    return protocol in (BIRD, FELIX) or (protocol == BOOT and route.get("dev") in CALICO_TUNNELS)


def _owner_protocol(route, mode):
    """Whether the route carries the protocol of the daemon that owns block routes in ``mode``."""
    protocol = route.get("protocol")
    return protocol in (BIRD, FELIX) or (protocol == BOOT and mode == "vxlan")


def _judge(route, want, owner_node, cross_subnet):
    """None when ``route`` is right for a block, else the drift kind."""
    if route.get("type", "unicast") != "unicast":
        return "wrong_next_hop"
    gateways = [h.get("gateway") for h in route["multipath"]] if route.get("multipath") else [route.get("gateway")]
    # CrossSubnet: a same-subnet owner is reached unencapsulated, via its node IP off the tunnel.
    if cross_subnet and owner_node and owner_node["ip"] in gateways and route.get("dev") not in CALICO_TUNNELS:
        return None
    if want["next_hop"] is not None and want["next_hop"] not in gateways:
        return "wrong_next_hop"
    if want["device"] is not None and route.get("dev") != want["device"]:
        return "wrong_device"
    if want["onlink"] and not route.get("onlink"):
        return "wrong_device"
    return None


def route_drift(routes, expected, host, *, neighbours=None, fdb=None):
    """Compare one node's kernel routes (snapshot route dicts) with the expected map.

    Every block not owned by ``host`` must have a route with the owner's next hop (and the
    device/onlink of the mode). Returns ``{"host", "mode", "checked", "ok", "counts",
    "drift": [{"kind", "dst", "have", "want", "owner"}], "actions": {"add", "replace",
    "delete"}}`` where kind is wrong_next_hop, wrong_device, missing, orphan (a route Calico
    would own to a block nobody owns) or shadow (a non-Calico route inside someone's block);
    ``actions`` are the exact routes a repair writes (shadows are left to a person, and orphans
    are deleted only when the map is complete). One pass over the routes, one over the blocks.
    """
    mode = expected.get("mode")
    result = {"host": host, "mode": mode, "checked": 0, "ok": 0, "unverified": 0, "counts": {}, "drift": [],
              "actions": {"add": [], "replace": [], "delete": []}}
    if mode not in ROUTE_SHAPE:
        result["skipped"] = f"mode {mode!r}: no main-table block routes to check"
        return result
    blocks = expected["blocks"]
    have = best_routes(routes, blocks)
    rest = [route for route in routes if route.get("dst") not in blocks]

    nodes, cross_subnet = expected["nodes"], expected.get("cross_subnet", False)
    drift, wrong = [], []
    protocol_seen, checked = None, 0
    for dst, route in have.items():
        want = blocks[dst]
        owner = want["owner"]
        if owner == host or owner is None:
            continue
        checked += 1
        kind = _judge(route, want, nodes.get(owner), cross_subnet)
        if kind is None:
            if protocol_seen is None and _owner_protocol(route, mode):
                protocol_seen = route.get("protocol")
            continue
        drift.append({"kind": kind, "dst": dst, "have": _have(route), "want": _want_view(want), "owner": owner})
        wrong.append((dst, route))
    # Repairs write what the owner of the route would: the protocol of this node's correct
    # block routes, and a Calico route keeps its own protocol when replaced.
    protocol = protocol_seen if protocol_seen is not None else DEFAULT_PROTOCOL[mode]
    replace = [_target(dst, blocks[dst], route.get("protocol") if _owner_protocol(route, mode) else protocol)
               for dst, route in wrong if blocks[dst]["next_hop"] is not None]
    add, delete = [], []
    for dst in blocks.keys() - have.keys():
        want = blocks[dst]
        if want["owner"] in (host, None):
            continue
        checked += 1
        drift.append({"kind": "missing", "dst": dst, "have": None, "want": _want_view(want), "owner": want["owner"]})
        if want["next_hop"] is not None:
            add.append(_target(dst, want, protocol))
    outside, unverified = _outside_blocks(rest, expected, host, delete)
    drift += outside
    l2_actions = {"neighbour": [], "fdb": []}
    if mode == "vxlan" and neighbours is not None:
        drift += l2_drift(expected, host, neighbours, fdb or (), l2_actions)
    counts = Counter(item["kind"] for item in drift)
    drift.sort(key=lambda item: (item["kind"], item["dst"]))
    result.update(checked=checked, ok=checked - counts["wrong_next_hop"] - counts["wrong_device"] - counts["missing"],
                  counts=dict(counts), unverified=unverified, drift=drift,
                  actions={"add": sorted(add, key=_dst), "replace": sorted(replace, key=_dst),
                           "delete": sorted(delete, key=_dst)})
    if neighbours is not None and mode == "vxlan":
        result["l2_actions"] = l2_actions
    return result


# ---------------------------------------------------------------------------------------------
# VXLAN L2 state per peer (calico_internals §2.3): Felix programs, for each remote VTEP, a permanent
# neighbour <VTEP address> lladdr <VTEP MAC> on vxlan.calico and an FDB entry <VTEP MAC> dst <node IP>.

L2_KINDS = ("neighbour_missing", "neighbour_wrong", "fdb_missing", "fdb_wrong")
_BAD_NUD = ("failed", "incomplete", "none")


def vxlan_l2(neighbours, fdb, device="vxlan.calico"):
    """VTEP address -> (neighbour MAC, the FDB dst of that MAC, "permanent" or the state) on
    ``device``; a missing part is ""."""
    dst_of = {}
    for entry in fdb or ():
        if entry.get("dev") == device and entry.get("lladdr") and entry.get("dst"):
            dst_of.setdefault(entry["lladdr"].lower(), entry["dst"])
    out = {}
    for entry in neighbours or ():
        if entry.get("dev") != device or entry.get("family", 4) != 4 or not entry.get("dst"):
            continue
        state = entry.get("state") or ()
        if set(state) & set(_BAD_NUD) or not entry.get("lladdr"):
            continue
        mac = entry["lladdr"].lower()
        out[entry["dst"]] = (mac, dst_of.get(mac, ""), "permanent" if "permanent" in state else ",".join(state))
    return out


def _fdb_dsts(fdb, device="vxlan.calico"):
    out = {}
    for entry in fdb or ():
        if entry.get("dev") == device and entry.get("lladdr") and entry.get("dst"):
            out.setdefault(entry["lladdr"].lower(), set()).add(entry["dst"])
    return out


def l2_drift(expected, host, neighbours, fdb, actions):
    """Per remote VTEP of the map: the permanent neighbour (VTEP address -> the owner's VTEP MAC) and
    the FDB entry (that MAC -> the owner's node IP) on vxlan.calico, as Felix programs them. Appends
    the writes that restore them to ``actions`` (neighbour, fdb) and returns the drift items."""
    have = vxlan_l2(neighbours, fdb)
    fdb_dsts = _fdb_dsts(fdb)
    items = []
    for owner, node in sorted((expected.get("nodes") or {}).items()):
        vtep, mac, ip = node.get("tunnel_address"), (node.get("vxlan_mac") or "").lower(), node.get("ip")
        if owner == host or not vtep or not mac or not ip or node.get("facts") is False or not node.get("blocks"):
            continue
        want = {"vtep": vtep, "lladdr": mac, "dst": ip, "dev": "vxlan.calico"}
        got_mac, _got_dst, state = have.get(vtep, ("", "", ""))
        if not got_mac:
            items.append({"kind": "neighbour_missing", "dst": vtep, "have": None, "want": want, "owner": owner})
        elif got_mac != mac or state != "permanent":
            items.append({"kind": "neighbour_wrong", "dst": vtep, "want": want, "owner": owner,
                          "have": {"lladdr": got_mac, "state": state}})
        if not got_mac or got_mac != mac or state != "permanent":
            actions["neighbour"].append({"dst": vtep, "lladdr": mac, "dev": "vxlan.calico"})
        dsts = fdb_dsts.get(mac) or set()
        if ip not in dsts:
            kind = "fdb_wrong" if dsts else "fdb_missing"
            items.append({"kind": kind, "dst": vtep, "want": want, "owner": owner,
                          "have": {"lladdr": mac, "dst": sorted(dsts)} if dsts else None})
            actions["fdb"].append({"lladdr": mac, "dst": ip, "dev": "vxlan.calico", "replace": sorted(dsts)})
    return items


def _dst(route):
    return route["dst"]


def _want_view(want):
    return {"gateway": want["next_hop"], "dev": want["device"], "onlink": bool(want["onlink"])}


def _target(dst, want, protocol):
    # dev None (BGP mode): the kernel resolves the gateway on the underlay.
    return {"dst": dst, "type": "unicast", "gateway": want["next_hop"], "dev": want["device"],
            "onlink": bool(want["onlink"]), "protocol": protocol}


def _enclosing_block(net, expected):
    """The known block strictly containing ``net``, or None."""
    for plen in expected.get("prefixlens") or ():
        if plen < net.prefixlen:
            block = str(net.supernet(new_prefix=plen))
            if block in expected["blocks"]:
                return block
    return None


def _outside_blocks(routes, expected, host, delete):
    """Orphans (Calico routes to blocks nobody owns) and shadows (non-Calico routes inside a
    remote block), plus how many Calico routes could not be judged. Only these few routes are
    parsed: the workload routes are skipped by name."""
    blocks, nodes, complete = expected["blocks"], expected["nodes"], expected.get("complete")
    pools = [ipaddress.ip_network(p) for p in expected.get("pools") or ()]
    # With a node missing from the map its blocks are unknown: a Calico route is only an orphan
    # for sure when it points at a node whose blocks we know, and which does not own it.
    known = set() if complete else {a for n in nodes.values() if n.get("facts") is not False
                                    for a in (n["ip"], n["tunnel_address"]) if a}
    items, unverified = [], 0
    for route in routes:
        dst, dev = route.get("dst"), route.get("dev") or ""
        if (not dst or dst == "default" or route.get("type", "unicast") != "unicast"
                or dev.startswith(WORKLOAD_PREFIX)):
            continue
        net = ipaddress.ip_network(dst, strict=False)
        block = _enclosing_block(net, expected)
        if _calico_owned(route):
            # Host routes are borrowed pod IPs and tunnel addresses; more specific routes inside a
            # known block are Calico's too.
            if block or net.prefixlen == net.max_prefixlen:
                continue
            if dev in CALICO_TUNNELS or any(net.subnet_of(p) for p in pools if p.version == net.version):
                if not complete and route.get("gateway") not in known:
                    unverified += 1
                    continue
                items.append({"kind": "orphan", "dst": dst, "have": _have(route), "want": None, "owner": None})
                if complete:
                    delete.append({"dst": dst, "type": "unicast", "gateway": route.get("gateway"),
                                   "dev": route.get("dev"), "onlink": bool(route.get("onlink")),
                                   "protocol": route.get("protocol")})
        elif block and blocks[block]["owner"] not in (host, None):
            items.append({"kind": "shadow", "dst": dst, "have": _have(route), "want": _want_view(blocks[block]),
                          "owner": blocks[block]["owner"], "block": block})
    return items, unverified


# ---------------------------------------------------------------------------------------------
# The route digest: a node's remote-block routes in O(1) bytes, checked on the controller

DIGEST_MODULUS = 1 << 128


def digest_entry(route, mode, l2=None):
    """What route_drift judges of a route, canonical: (dst, type, next hops) and, where the mode
    fixes the device (IPIP, VXLAN), the device class (the tunnel's name, or "" off the tunnels)
    and onlink. With ``l2`` (VXLAN: VTEP address -> (MAC, FDB dst, state)), a route on vxlan.calico
    also carries the MAC its next hop resolves to and that MAC's VTEP (node IP), "" when missing."""
    hops = tuple(sorted(h.get("gateway") or "" for h in route["multipath"])) if route.get("multipath") else (
        route.get("gateway") or "",)
    entry = (route.get("dst"), route.get("type") or "unicast", hops)
    if ROUTE_SHAPE.get(mode, (None, None))[1] is not None:
        dev = route.get("dev") or ""
        entry += (dev if dev in CALICO_TUNNELS else "", bool(route.get("onlink")))
        if l2 is not None and dev == "vxlan.calico":
            mac, vtep, state = l2.get(route.get("gateway") or "", ("", "", ""))
            entry += (mac if state == "permanent" else "", vtep)
    return entry


def _digest(entries):
    """Order-independent multiset hash: the sum of the entries' SHA-256 prefixes, and their count."""
    total = 0
    for entry in entries:
        total += int.from_bytes(hashlib.sha256(repr(entry).encode()).digest()[:16], "big")
    return {"count": len(entries), "hash": f"{total % DIGEST_MODULUS:032x}"}


def digest_routes(routes, pools):
    """The routes a node's digest covers: unicast, not default, not host routes (borrowed pod IPs,
    tunnel addresses), off the workload devices, and either Calico's (proto bird or 80, boot on a
    tunnel device) or inside the pools (so a foreign route shadowing a block counts too)."""
    nets = [ipaddress.ip_network(p) for p in pools or ()]
    out = []
    for route in routes:
        dst, dev = route.get("dst"), route.get("dev") or ""
        if not dst or dst == "default" or route.get("type", "unicast") != "unicast" or dev.startswith(WORKLOAD_PREFIX):
            continue
        net = ipaddress.ip_network(dst, strict=False)
        if net.prefixlen == net.max_prefixlen:
            continue
        if _calico_owned(route) or any(net.version == p.version and net.subnet_of(p) for p in nets):
            out.append(route)
    return out


def route_digest(routes, mode, local_blocks, pools=None, *, neighbours=None, fdb=None):
    """The node's side (calico_node_facts): a digest of its remote-block routes, O(1) bytes at any
    fleet size. ``pools``: the IP pools when known, else the supernets around the node's own blocks.
    In VXLAN mode with ``neighbours`` (and ``fdb``) each route on vxlan.calico also covers the
    neighbour MAC and FDB VTEP of its next hop (``"l2": true``)."""
    covered = digest_routes(routes, pools or _derived_pools(local_blocks))
    l2 = vxlan_l2(neighbours, fdb) if mode == "vxlan" and neighbours is not None else None
    out = {"mode": mode, "pools": sorted(pools) if pools else None,
           **_digest([digest_entry(r, mode, l2) for r in covered])}
    if l2 is not None:
        out["l2"] = True
    return out


# ---------------------------------------------------------------------------------------------
# Local workloads (WL001): each cali* veth needs `<pod IP>/32 dev caliX scope link` (proto boot)


def workload_state(snap):
    """cali* veths without a /32 route (pod IP from its neighbour entry, Felix's static ARP) and
    /32 routes on a veth that is down."""
    veths = {lk["name"]: lk for lk in snap.get("links") or () if (lk.get("name") or "").startswith(WORKLOAD_PREFIX)
             and lk["name"] not in CALICO_TUNNELS}
    routed = {}
    for r in snap.get("routes") or ():
        if r.get("dev") in veths and r.get("type", "unicast") == "unicast" and (r.get("dst") or "").endswith("/32"):
            routed.setdefault(r["dev"], []).append(r["dst"][:-3])
    neigh = {}
    for n in snap.get("neighbours") or ():
        if n.get("dev") in veths and n.get("family") == 4 and not set(n.get("state") or ()) & set(_BAD_NUD):
            neigh.setdefault(n["dev"], []).append(n)
    missing, down = [], []
    for name in sorted(veths):
        if name not in routed:
            found = sorted(neigh.get(name) or (), key=lambda n: "permanent" not in (n.get("state") or ()))
            ip = found[0]["dst"] if found else None
            missing.append({"interface": name, "ip": ip, "up": bool(veths[name].get("up")),
                            "source": "neighbour" if ip else None})
        elif not veths[name].get("up"):
            down += [{"interface": name, "ip": ip} for ip in routed[name]]
    return {"interfaces": len(veths), "routed": len(routed), "missing_routes": missing, "down": down}


def workload_routes(state):
    """The /32 routes to restore (pod IP known)."""
    return [{"dst": f"{w['ip']}/32", "type": "unicast", "dev": w["interface"], "scope": "link", "protocol": BOOT,
             "gateway": None, "onlink": False} for w in state.get("missing_routes") or () if w.get("ip")]
