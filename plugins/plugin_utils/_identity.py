# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Fleet rules only the whole cluster can see (controller only): identity clashes of cloned or
reinstalled machines (DUP002: machine id, /var/lib/calico/nodename, VTEP MAC, hostname) and BGP
configuration beyond a session being down (BGP002: router id clashes, sessions up that import
nothing from a node that owns blocks, live mesh sessions with a speaker that is no node of the
cluster). Every node of a clash is named: one finding per node, its peer the next one.

DUP001 (one Calico IP, tunnel address or node name on two nodes) stays in ``_fleet``; what it
already reports is not repeated here. ``fleet_rules(findings, fleet)`` is called by
``_fleet.fleet_findings`` with the findings so far and returns them with these added, the
BGP001 findings a router id clash or a foreign speaker explains folded into it (as
``_fleet.correlate`` folds its own), before ``correlate`` runs.
"""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue
from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import (
    as_consequence,
    limited,
    with_consequences,
)
from ansible_collections.netdoctor.calico.plugins.module_utils._contract import calico_node_env

# field -> (what, severity, remedy); the value read by _FIELDS' getter.
_CLASHES = {
    "machine_id": (
        "machine id", "warning",
        "Cloned machines keep one /etc/machine-id: systemd derives MAC addresses of virtual devices "
        "(MACAddressPolicy=persistent), DHCP client ids and journal ids from it. On each clone: "
        "`rm -f /etc/machine-id /var/lib/dbus/machine-id && systemd-machine-id-setup`, then reboot."),
    "nodename_file": (
        "/var/lib/calico/nodename", "warning",
        "The file is calico-node's memory of its node name and the CNI plugin's fallback: a clone that kept it "
        "creates pods under the other node. Remove /var/lib/calico/nodename on the clone and restart calico-node "
        "(it writes its own)."),
    "vxlan_mac": (
        "VXLAN tunnel MAC", "critical",
        "Every peer maps one MAC to one node in its FDB, so traffic for one of these VTEPs goes to the other. Delete "
        "the VTEP on one node (`ip link del vxlan.calico`) and remove its `projectcalico.org/VXLANTunnelMACAddr` "
        "annotation (or the Node's vxlanTunnelMACAddr), then restart calico-node there: Felix generates a new MAC."),
    "hostname": (
        "hostname", "warning",
        "Kubernetes names its Node after the hostname: two machines with one name fight over one Node (and "
        "calico-node's default node name). `hostnamectl set-hostname <unique name>` on the clone, then re-join it."),
}


def calico_node_name(fact):
    """NODENAME, else /var/lib/calico/nodename, else the hostname (as ``_fleet.calico_node_name``)."""
    identity = fact.get("identity") or {}
    return calico_node_env(fact).get("NODENAME") or identity.get("nodename_file") or fact.get("hostname") or None


def _fields(fact):
    hc = fact.get("host_config") or {}
    vxlan = (fact.get("calico") or {}).get("vxlan") or {}
    hostname = fact.get("hostname")
    return {
        "machine_id": (hc.get("identity") or {}).get("machine_id_hash"),
        "nodename_file": (fact.get("identity") or {}).get("nodename_file"),
        "vxlan_mac": (vxlan.get("mac") or "").lower() or None if vxlan.get("device") == "vxlan.calico" else None,
        "hostname": hostname.lower() if isinstance(hostname, str) and hostname else None,
    }


def _groups(facts, getter):
    holders = {}
    for host, fact in sorted(facts.items()):
        value = getter(fact)
        if value:
            holders.setdefault(value, []).append(host)
    return {value: hosts for value, hosts in holders.items() if len(hosts) > 1}


def _per_host(fid, severity, hosts, summary, evidence, remedy):  # noqa: PLR0917 - the finding's fields
    """One finding per node of a clash, each naming all of them; the peer is the next node."""
    out = []
    for i, host in enumerate(hosts):
        peer = hosts[(i + 1) % len(hosts)]
        out.append(_catalogue.finding(fid, severity, host, summary(host), {**evidence, "hosts": limited(hosts),
                                                                           "count": len(hosts)}, remedy, peer=peer))
    return out


def identity_clashes(fleet):
    """DUP002: nodes sharing a machine id, nodename file, VTEP MAC or hostname - unless DUP001
    already says they register as one Calico node (then those clashes are that one fault)."""
    same_node = [set(hosts) for hosts in _groups(fleet.facts, calico_node_name).values()]
    out = []
    for field, (what, severity, remedy) in _CLASHES.items():
        for value, hosts in sorted(_groups(fleet.facts, lambda f, k=field: _fields(f)[k]).items()):
            if field in ("nodename_file", "hostname") and any(set(hosts) <= g for g in same_node):
                continue
            shown = f"{value[:12]}... (keyed hash)" if field == "machine_id" else value
            out += _per_host(
                "DUP002", severity, hosts,
                lambda host, w=what, s=shown, h=hosts: (
                    f"{host} shares its {w} {s} with {', '.join(x for x in h if x != host)}"
                    + (" (a cloned or reinstalled machine)" if w != "hostname" else "")),
                {"field": field, "value": shown}, remedy)
    return out


def _bird(fact):
    return fact.get("bird") or {}


def _holds(fact, address):
    return any(a.get("address") == address for link in fact.get("links") or () for a in link.get("addresses") or ())


def router_id_clashes(fleet):
    """BGP002: one BIRD router id on distinct nodes (BIRD refuses a session to a speaker with its
    own id: "Bad BGP identifier"). Nodes that all hold the address are one IP on two nodes (DUP001);
    a node whose router id is not its own address got it from a copied CALICO_ROUTER_ID."""
    out = []
    groups = _groups(fleet.facts, lambda f: _bird(f).get("router_id") if _bird(f).get("available") else None)
    for router_id, hosts in sorted(groups.items()):
        holders = [h for h in hosts if _holds(fleet.facts[h], router_id)]
        if len(holders) == len(hosts):
            continue  # the same address on every one of them: DUP001
        out += _per_host(
            "BGP002", "critical", hosts,
            lambda host, r=router_id, h=hosts: (
                f"{host} runs BIRD with router id {r}, as do {', '.join(x for x in h if x != host)}: BGP sessions "
                "between them are refused (Bad BGP identifier) and routes between them are lost"),
            {"kind": "router_id_clash", "router_id": router_id, "holders": holders,
             "members": hosts, "member_addresses": sorted(
                 a.get("address") for h in hosts for link in fleet.facts[h].get("links") or ()
                 for a in link.get("addresses") or () if a.get("family") == 4 and a.get("scope") in (None, "global")
                 and not (link.get("name") or "").startswith(("cali", "lo")))[:20],
             "router_id_env": {h: (((fleet.facts[h].get("identity") or {}).get("calico_node") or {}).get("env") or {})
                               .get("CALICO_ROUTER_ID") for h in hosts}},
            "BIRD's router id is the node's IPv4 address unless CALICO_ROUTER_ID sets it (an address, or `hash` "
            "for a hash of the node name): give each node its own - remove a copied CALICO_ROUTER_ID, or use "
            "`hash` with distinct node names - and restart calico-node on the nodes concerned. Until then the "
            "audit takes the router id for the node's IP, so DUP001 and the route checks of these nodes follow "
            "from it.")
    return out


def _established(peer):
    return peer.get("established", (peer.get("info") or "").startswith("Established"))


def session_findings(fleet):
    """BGP002: an Established session that imports nothing from a node that owns blocks, and an
    Established mesh session with a speaker that is no node of this cluster."""
    out = []
    for host in sorted(fleet.facts):
        bird = _bird(fleet.facts[host])
        if not bird.get("available"):
            continue
        protocols = {p.get("name"): p for p in bird.get("protocols") or ()}
        for peer in bird.get("peers") or ():
            address = peer.get("address")
            if not address or not _established(peer):
                continue
            other = fleet.by_ip.get(address)
            routes = (protocols.get(peer.get("name")) or {}).get("routes")
            if other and other != host and isinstance(routes, dict):
                blocks = (fleet.nodes.get(other) or {}).get("blocks") or []
                if blocks and routes.get("imported") == 0 and fleet.mode in ("bgp", "ipip"):
                    out.append(_catalogue.finding(
                        "BGP002", "warning", host,
                        f"{host}'s BGP session with {other} ({address}) is Established but imports no route, while "
                        f"{other} owns {len(blocks)} block(s)",
                        {"kind": "no_routes_imported", "session": peer.get("name"), "peer_address": address,
                         "routes": routes, "peer_blocks": limited(blocks)},
                        f"{other}'s BIRD exports nothing to {host}: check its generated config "
                        "(/etc/calico/confd/config/bird*.cfg: the block's `calico_aggr` entry and the export filter), "
                        f"its `blackhole <block> proto bird` routes, and a BGPFilter or BGPPeer that filters; `birdcl "
                        f"-s /var/run/calico/bird.ctl show route export {peer.get('name')}` on {other} shows what "
                        "it sends.", peer=other))
                continue
            mesh = "mesh" in (peer.get("type") or "") or (peer.get("name") or "").startswith("Mesh_")
            if mesh and not other and address not in fleet.holder and fleet.expected.get("complete"):
                out.append(_catalogue.finding(
                    "BGP002", "warning", host,
                    f"{host} has an Established node-to-node mesh session with {address}, which is no node of this "
                    "cluster: a live BGP speaker outside the audit exchanges routes with it",
                    {"kind": "foreign_speaker", "session": peer.get("name"), "peer_address": address,
                     "neighbor_id": (protocols.get(peer.get("name")) or {}).get("neighbor_id"),
                     "node_ips": limited(f"{h} {n['ip']}" for h, n in sorted(fleet.nodes.items()) if n.get("ip"))},
                    f"The mesh peers with every Node in the datastore: {address} is a Node that is alive but not in "
                    "this inventory (add it, or give it its own calico_cluster), or a machine of another cluster "
                    "that shares this datastore. `calicoctl get nodes -o wide` names it; if it is not meant to be "
                    "part of this cluster, remove its Node (`calicoctl delete node <name>`) from this datastore."))
    return out


def _fold(findings, cause, consequences, why):
    """Consequences become info naming the cause (the shape ``_fleet.correlate`` gives its own)."""
    if not consequences:
        return findings
    ids = {id(c) for c in consequences}
    out = []
    for f in findings:
        if id(f) in ids:
            out.append(as_consequence(f, cause, why))
        elif f is cause:
            out.append(with_consequences(f, [c for c in findings if id(c) in ids]))
        else:
            out.append(f)
    return out


def _serious(f):
    return f.get("severity") in ("critical", "warning")


def fold_consequences(findings):
    """BGP001 on a session between nodes that share a router id, and BGP001's "mesh peer that is no
    node" for a session that is Established with a foreign speaker, fold into their BGP002."""
    for cause in [f for f in findings if f.get("id") == "BGP002" and _serious(f)]:
        evidence = cause.get("evidence") or {}
        if evidence.get("kind") == "router_id_clash":
            members = set(evidence.get("members") or ())
            host, router_id = cause["host"], evidence.get("router_id")
            why = f"BIRD refuses sessions between nodes with one router id {router_id}"
            found = [f for f in findings if _serious(f) and (
                (f.get("id") == "BGP001" and f.get("host") == host
                 and (f.get("peer") in members or f.get("peer") in (evidence.get("member_addresses") or ())))
                or (f.get("id") == "DUP001" and f.get("host") == host
                    and (f.get("evidence") or {}).get("address") == router_id))]
            if host not in (evidence.get("holders") or ()):
                # The audit reads a node's IP from BIRD's router id: this node's own address then looks
                # moved (AD002, SRC001), its peers' routes and sessions to it look wrong (RT001/RT002, BGP001).
                why = (f"{host}'s router id {router_id} is not its address, and the audit reads the node IP from "
                       "the router id")
                found += [f for f in findings if _serious(f) and f not in found and (
                    (f.get("host") == host and f.get("id") in ("AD001", "AD002", "SRC001", "DUP001"))
                    or (f.get("peer") == host and f.get("id") in ("RT001", "RT002", "BGP001")))]
        elif evidence.get("kind") == "foreign_speaker":
            why = f"{evidence.get('peer_address')} is a live speaker outside the cluster, not a stale Node"
            found = [f for f in findings if f.get("id") == "BGP001" and _serious(f) and f.get("host") == cause["host"]
                     and ((f.get("evidence") or {}).get("peer") or {}).get("address") == evidence.get("peer_address")]
        else:
            continue
        current = next((f for f in findings if f is cause), None)
        if current is not None:
            findings = _fold(findings, current, found, why)
    return findings


def fleet_rules(findings, fleet):
    """The findings so far plus DUP002 and BGP002, with what BGP002 explains folded into it."""
    return fold_consequences(list(findings) + identity_clashes(fleet) + router_id_clashes(fleet)
                             + session_findings(fleet))
