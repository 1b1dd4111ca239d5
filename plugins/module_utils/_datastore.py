# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Calico's datastore as one view, whichever backend holds it, and the rules that compare it with
what the nodes do (DS001-DS003, docs/findings.md).

Parsers (pure): an etcd v3 key/value listing in libcalico-go's layout (``view_from_etcd``) or the
documents ``kubectl get ... -o json`` prints for the Kubernetes datastore (``view_from_kubernetes``)
become::

    view = {"source": "etcd" | "kubernetes",
            "nodes": {name: {"ipv4_address": "192.0.2.11/24" | None,   # as registered (CIDR)
                             "ipip_tunnel_addr", "vxlan_tunnel_addr", "vxlan_mac",
                             "ready": bool | None}},                   # Kubernetes only: the Ready condition
            "blocks": {cidr: {"affinity_node": name | None,            # the block's affinity host
                              "state": "confirmed" | "pending" | "pendingDeletion" | None,   # its affinity's
                              "affinities": {name: state},             # every live host affinity of the block
                              "ipam_block": bool,                      # the IPAM block object exists
                              "allocations": n}},                      # addresses in use in it
            "errors": [str]}                                           # entries that could not be read

Soft-deleted entries (``deleted`` true; a string in the v1 BlockAffinity CRD) are dropped, as
libcalico-go's readers drop them. Only host affinities count (``virtual`` ones belong to no node).
``etcd_read`` pages through the keys at one revision over an injected ``post`` (the module's HTTP
call to the etcd v3 JSON gateway), so a listing is one consistent snapshot.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import socket

from ansible_collections.netdoctor.calico.plugins.module_utils import _findings

# libcalico-go's etcd v3 layout (model/resource.go, block.go, block_affinity.go). Handles
# (/calico/ipam/v2/handle/) are one per pod and not needed: they are never read.
ETCD_NODES = "/calico/resources/v3/projectcalico.org/nodes/"
ETCD_BLOCKS = "/calico/ipam/v2/assignment/"
ETCD_AFFINITIES = "/calico/ipam/v2/host/"
ETCD_PREFIXES = (ETCD_NODES, ETCD_BLOCKS, ETCD_AFFINITIES)
ETCD_RANGE_PATH = "/v3/kv/range"
ETCD_PAGE = 500
# 500 keys a page: a 5,000-node cluster is ~30 pages; this bound only stops a runaway loop.
ETCD_MAX_PAGES = 10_000

KUBE_NODES = "nodes"
KUBE_BLOCKS = "ipamblocks.crd.projectcalico.org"
KUBE_AFFINITIES = "blockaffinities.crd.projectcalico.org"
KUBE_RESOURCES = (KUBE_NODES, KUBE_BLOCKS, KUBE_AFFINITIES)
# Calico node fields as Kubernetes Node annotations (libcalico-go k8s/resources/node.go).
ANNOTATIONS = {
    "ipv4_address": "projectcalico.org/IPv4Address",
    "ipip_tunnel_addr": "projectcalico.org/IPv4IPIPTunnelAddr",
    "vxlan_tunnel_addr": "projectcalico.org/IPv4VXLANTunnelAddr",
    "vxlan_mac": "projectcalico.org/VXLANTunnelMACAddr",
}
NODE_FIELDS = (*ANNOTATIONS, "ready")
CHECKS = ("DS001", "DS002", "DS003")
SOURCES = ("etcd", "kubernetes")
# An affinity on its way in or out: the audit may have caught it mid-claim or mid-release.
TRANSITIONAL = ("pending", "pendingDeletion")
# Where expected_map's node IP comes from the node's own data plane or calico-node's pinned IP.
NODE_IP_SOURCES = {"bird_router_id": "BIRD router id", "vxlan_local": "vxlan.calico local address",
                   "calico_node_env": "calico-node IP env"}

_limited = _findings._limited


# --- helpers -----------------------------------------------------------------------------------

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


def _cidr(value):
    """Canonical network text, as the routes in the facts print it; None when not a network."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except (TypeError, ValueError):
        return None


def _network_order(cidr):
    net = ipaddress.ip_network(cidr)
    return net.version, net.network_address.packed, net.prefixlen


def _deleted(value):
    # The v1 BlockAffinity CRD keeps "deleted" as a string; elsewhere it is a bool.
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _state(value):
    # libcalico-go treats an empty state as confirmed: data written before states existed.
    return value or "confirmed"


def _affinity_host(value):
    """'host:node-1' -> 'node-1'; None for no affinity or a virtual one."""
    if isinstance(value, str) and value.startswith("host:"):
        return value[len("host:"):] or None
    return None


def _allocations(values):
    return sum(1 for v in values or () if v is not None)


def _node(ipv4_address=None, ipip=None, vxlan=None, mac=None, ready=None):
    return {"ipv4_address": ipv4_address or None, "ipip_tunnel_addr": ipip or None,
            "vxlan_tunnel_addr": vxlan or None, "vxlan_mac": mac.lower() if isinstance(mac, str) and mac else None,
            "ready": ready}


def _view(source, nodes, blocks, affinities, errors):
    """Blocks (cidr -> {"affinity", "allocations"}) and host affinities (cidr -> {node: state})
    merged into the view's block entries."""
    out = {}
    for cidr in sorted(blocks.keys() | affinities.keys(), key=_network_order):
        block, claims = blocks.get(cidr), affinities.get(cidr, {})
        if block is not None:
            node = block["affinity"]
        else:
            confirmed = [n for n, s in claims.items() if s == "confirmed"]
            node = confirmed[0] if len(confirmed) == 1 else (next(iter(claims)) if len(claims) == 1 else None)
        out[cidr] = {"affinity_node": node, "state": claims.get(node), "affinities": dict(sorted(claims.items())),
                     "ipam_block": block is not None, "allocations": block["allocations"] if block else 0}
    return {"source": source, "nodes": dict(sorted(nodes.items())), "blocks": out, "errors": errors}


# --- etcd v3 -----------------------------------------------------------------------------------

def _b64(data):
    return base64.b64encode(data).decode("ascii")


def prefix_range_end(prefix):
    """etcd's range_end covering every key that starts with ``prefix`` (clientv3.GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def range_request(prefix, start=None, revision=None, limit=ETCD_PAGE):
    """Body of a POST to /v3/kv/range: the keys from ``start`` (default: the prefix) to the end of
    the prefix, at ``revision`` (default: the latest)."""
    prefix = prefix.encode() if isinstance(prefix, str) else prefix
    body = {"key": _b64(start or prefix), "range_end": _b64(prefix_range_end(prefix)), "limit": limit}
    if revision is not None:
        body["revision"] = revision
    return body


def etcd_read(post, prefixes=ETCD_PREFIXES, page=ETCD_PAGE):
    """Every (key, value) text pair under ``prefixes``, read a page at a time at the revision of
    the first answer. ``post(body)`` sends a range request and returns the decoded JSON reply.
    Returns ``(revision, pairs)``."""
    revision, pairs = None, []
    for prefix in prefixes:
        start = None
        for _page in range(ETCD_MAX_PAGES):
            reply = post(range_request(prefix, start, revision, page))
            if revision is None:
                revision = (reply.get("header") or {}).get("revision")
            kvs = reply.get("kvs") or []
            for kv in kvs:
                pairs.append((base64.b64decode(kv.get("key") or "").decode("utf-8", "replace"),
                              base64.b64decode(kv.get("value") or "").decode("utf-8", "replace")))
            if not reply.get("more") or not kvs:
                break
            # The next page starts right after the last key returned.
            start = base64.b64decode(kvs[-1]["key"]) + b"\0"
        else:
            raise ValueError(f"more than {ETCD_MAX_PAGES} pages of keys under {prefix}")
    return revision, pairs


def view_from_etcd(pairs):
    """The view from (key, JSON value) text pairs in libcalico-go's etcd v3 layout."""
    nodes, blocks, affinities, errors = {}, {}, {}, []
    for key, value in pairs:
        if not key.startswith(ETCD_PREFIXES):
            continue
        try:
            obj = json.loads(value)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            errors.append(f"{key}: {exc}")
            continue
        if key.startswith(ETCD_NODES):
            name = (obj.get("metadata") or {}).get("name") or key[len(ETCD_NODES):]
            spec = obj.get("spec") or {}
            bgp = spec.get("bgp") or {}
            nodes[name] = _node(bgp.get("ipv4Address"), bgp.get("ipv4IPIPTunnelAddr"),
                                spec.get("ipv4VXLANTunnelAddr"), spec.get("vxlanTunnelMACAddr"))
        elif key.startswith(ETCD_BLOCKS):
            # .../assignment/ipv4/block/10.244.0.64-26: the CIDR with its "/" as "-".
            cidr = _cidr(obj.get("cidr") or key.rsplit("/", 1)[-1].replace("-", "/", 1))
            if cidr is None:
                errors.append(f"{key}: no block CIDR")
            elif not _deleted(obj.get("deleted")):
                blocks[cidr] = {"affinity": _affinity_host(obj.get("affinity")),
                                "allocations": _allocations(obj.get("allocations"))}
        else:
            # .../host/<node>/ipv4/block/<cidr with - for />
            parts = key[len(ETCD_AFFINITIES):].split("/")
            cidr = _cidr(parts[3].replace("-", "/", 1)) if len(parts) == 4 and parts[2] == "block" else None
            if cidr is None:
                errors.append(f"{key}: not a block affinity key")
            elif not _deleted(obj.get("deleted")):
                affinities.setdefault(cidr, {})[parts[0]] = _state(obj.get("state"))
    return _view("etcd", nodes, blocks, affinities, errors)


# --- Kubernetes datastore ----------------------------------------------------------------------

def _items(document, what):
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise ValueError(f"kubectl's {what} output is not a list of objects")
    return [i for i in document["items"] if isinstance(i, dict)]


def _ready(node):
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return None


def view_from_kubernetes(nodes, blocks, affinities):
    """The view from the documents ``kubectl get nodes``, ``... ipamblocks.crd.projectcalico.org``
    and ``... blockaffinities.crd.projectcalico.org`` print with ``-o json``. There is no Calico
    Node object in this datastore: its fields are the Kubernetes Node's annotations."""
    errors, out_nodes, out_blocks, out_affinities = [], {}, {}, {}
    for node in _items(nodes, KUBE_NODES):
        meta = node.get("metadata") or {}
        if not meta.get("name"):
            errors.append("a node without metadata.name")
            continue
        notes = meta.get("annotations") or {}
        out_nodes[meta["name"]] = _node(*(notes.get(a) for a in ANNOTATIONS.values()), ready=_ready(node))
    for block in _items(blocks, KUBE_BLOCKS):
        spec = block.get("spec") or {}
        cidr = _cidr(spec.get("cidr"))
        if cidr is None:
            errors.append(f"ipamblock {(block.get('metadata') or {}).get('name')}: no spec.cidr")
        elif not _deleted(spec.get("deleted")):
            out_blocks[cidr] = {"affinity": _affinity_host(spec.get("affinity")),
                                "allocations": _allocations(spec.get("allocations"))}
    for affinity in _items(affinities, KUBE_AFFINITIES):
        spec = affinity.get("spec") or {}
        cidr = _cidr(spec.get("cidr"))
        if cidr is None or not spec.get("node"):
            errors.append(f"blockaffinity {(affinity.get('metadata') or {}).get('name')}: no spec.cidr or spec.node")
        elif not _deleted(spec.get("deleted")) and (spec.get("type") or "host") == "host":
            out_affinities.setdefault(cidr, {})[spec["node"]] = _state(spec.get("state"))
    return _view("kubernetes", out_nodes, out_blocks, out_affinities, errors)


def check_view(view):
    """The view with every field present; ValueError when it is not one (fleet_audit's option)."""
    if not isinstance(view, dict) or view.get("source") not in SOURCES:
        raise ValueError("not a datastore view: expected the datastore result of netdoctor.calico."
                         f"calico_datastore_info (a dict with source {' or '.join(SOURCES)}, nodes, blocks)")
    if not isinstance(view.get("nodes"), dict) or not isinstance(view.get("blocks"), dict):
        raise ValueError("a datastore view needs the dicts nodes and blocks")
    nodes = {str(name): {f: (node or {}).get(f) for f in NODE_FIELDS} for name, node in view["nodes"].items()}
    blocks = {}
    for cidr, entry in view["blocks"].items():
        block = entry or {}
        blocks[_cidr(cidr) or cidr] = {"affinity_node": block.get("affinity_node"), "state": block.get("state"),
                                       "affinities": dict(block.get("affinities") or {}),
                                       "ipam_block": bool(block.get("ipam_block", True)),
                                       "allocations": int(block.get("allocations") or 0)}
    return {"source": view["source"], "nodes": nodes, "blocks": blocks, "errors": list(view.get("errors") or ())}


# --- the rules ---------------------------------------------------------------------------------

def _node_names(host, fact):
    """The names a host may have as a Calico node: its inventory name, its hostname, the node-name
    files and calico-node's NODENAME."""
    names = [host]
    if isinstance(fact, dict):
        identity = fact.get("identity") or {}
        env = (identity.get("calico_node") or {}).get("env") or {}
        names += [fact.get("hostname"), identity.get("nodename_file"), (identity.get("cni") or {}).get("nodename"),
                  env.get("NODENAME")]
    return [n for n in names if n]


def match_nodes(view, expected, facts_by_host):
    """Datastore node name -> fleet host: by name first, then by registered address for the
    hosts no name matched (an inventory of IP addresses)."""
    by_name = {}
    for host in sorted(facts_by_host):
        for name in _node_names(host, facts_by_host[host]):
            by_name.setdefault(name, host)
    out = {name: by_name[name] for name in view["nodes"] if name in by_name}
    taken = set(out.values())
    by_ip = {}
    for host, node in sorted(expected["nodes"].items()):
        if node.get("ip") and host not in taken:
            by_ip.setdefault(node["ip"], host)
    for name, node in sorted(view["nodes"].items()):
        host = by_ip.get(address_text(node["ipv4_address"]))
        if name not in out and host and host not in taken:
            out[name] = host
            taken.add(host)
    return out


def _named(host, name):
    """A host, with its datastore node name when that differs."""
    return host if host == name else f"{host} (node {name})"


def _where(view):
    return "etcd" if view["source"] == "etcd" else "the Kubernetes datastore"


def _show_cmd(view, name):
    if view["source"] == "etcd":
        return f"`calicoctl get node {name} -o yaml`"
    return f"`kubectl get node {name} -o jsonpath='{{.metadata.annotations}}'`"


def _held(fact, address):
    return any(address_text(a.get("address")) == address for link in fact.get("links") or ()
               for a in link.get("addresses") or ())


def _identity_problems(ds, node, fact):
    """[(field, datastore value, node value, where the node value comes from, severity)]."""
    problems = []
    registered = address_text(ds["ipv4_address"])
    if node.get("ip_source") in NODE_IP_SOURCES and node.get("ip") and registered != node["ip"]:
        problems.append(("ipv4_address", ds["ipv4_address"], node["ip"], NODE_IP_SOURCES[node["ip_source"]],
                         "critical"))
    if registered and fact.get("links") and not _held(fact, registered):
        problems.append(("ipv4_address", ds["ipv4_address"], None, "on none of its interfaces", "critical"))
    calico = fact.get("calico") or {}
    tunnel = calico.get("tunnel") or {}
    field = {"tunl0": "ipip_tunnel_addr", "vxlan.calico": "vxlan_tunnel_addr"}.get(tunnel.get("device"))
    if field and tunnel.get("address") and address_text(ds[field]) != address_text(tunnel["address"]):
        # Peers reach a VXLAN node's pods via its VTEP address; tunl0's address only sources host traffic.
        problems.append((field, ds[field], tunnel["address"], f"address of {tunnel['device']}",
                         "critical" if field == "vxlan_tunnel_addr" else "warning"))
    mac = ((calico.get("vxlan") or {}).get("mac") or "").lower()
    if tunnel.get("device") == "vxlan.calico" and mac and ds["vxlan_mac"] != mac:
        problems.append(("vxlan_mac", ds["vxlan_mac"], mac, "MAC of vxlan.calico", "critical"))
    return problems


def _identity_findings(view, expected, facts_by_host, match):
    """DS001: the datastore's record of a node (the address every other node routes and peers
    to, its tunnel address and VTEP MAC) is not what the node itself uses."""
    out = []
    for name, host in sorted(match.items()):
        fact = facts_by_host.get(host)
        if not isinstance(fact, dict):
            continue
        ds, node = view["nodes"][name], expected["nodes"].get(host) or {}
        problems = _identity_problems(ds, node, fact)
        if not problems:
            continue
        parts = [f"{field} {have or 'unset'} ({where})" if want is None else
                 f"{field} {have or 'unset'}, but {host} uses {want} ({where})"
                 for field, have, want, where, _sev in problems]
        severity = _findings.SEVERITIES[min(_findings.SEVERITY_RANK[p[4]] for p in problems)]
        fields = {}
        for field, have, want, where, _sev in problems:
            fields.setdefault(field, {"datastore": have, "node": []})["node"].append({"value": want, "source": where})
        remedy = (f"The other nodes route to {host}'s blocks and peer with it at what {_where(view)} holds, so "
                  "both must agree. Compare with the address it should have "
                  f"({node.get('ip') or 'its inventory address'}) and {_show_cmd(view, name)}. "
                  f"If the node is right, restart calico-node on {host} so it registers again (with IP=autodetect it "
                  "re-detects every 60 s; with IP unset it keeps the stored address until its Node is re-created) "
                  "and Felix re-programs the tunnel device from the datastore. If the datastore is right, the node's "
                  "autodetection picks another address (AD001/AD002): fix IP_AUTODETECTION_METHOD first.")
        out.append(_findings.finding(
            "DS001", severity, host,
            f"{_where(view)} registers {_named(host, name)} with " + "; ".join(parts),
            {"datastore_node": name, "source": view["source"], "fields": fields,
             "registered_on_node": _held(fact, address_text(ds["ipv4_address"])) if address_text(ds["ipv4_address"])
             else False},
            remedy))
    return out


def _announcers(expected):
    """Block -> the hosts holding its blackhole (one, or the claimants of a double claim)."""
    out = {cidr: [b["owner"]] for cidr, b in expected["blocks"].items() if b.get("owner")}
    out.update({cidr: list(hosts) for cidr, hosts in (expected.get("owners_conflicts") or {}).items()})
    return out


def _block_findings(view, expected, facts_by_host, match):
    """DS002: a block the datastore gives a node that the node does not announce (no blackhole),
    and a block a node announces that the datastore gives to another node or to nobody."""
    audited = {h for h, f in facts_by_host.items() if isinstance(f, dict)}
    names_of = {}
    for name, host in match.items():
        names_of.setdefault(host, set()).add(name)
    announcers = _announcers(expected)
    groups = {}
    for cidr in sorted(view["blocks"].keys() | announcers.keys()):
        block = view["blocks"].get(cidr)
        if block and block["state"] in TRANSITIONAL:
            continue
        name = block["affinity_node"] if block else None
        holders = [h for h in announcers.get(cidr, ()) if h in audited]
        wrong = [h for h in holders if name not in names_of.get(h, ())]
        for holder in wrong:
            kind = "assigned_elsewhere" if name else "not_assigned"
            groups.setdefault((kind, holder, name), []).append(cidr)
        assigned = match.get(name)
        if assigned in audited and assigned not in holders and not wrong:
            groups.setdefault(("not_announced", assigned, None), []).append(cidr)
    out = []
    for key, cidrs in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1], str(item[0][2]))):
        out.append(_block_finding(view, key, cidrs, match))
    return out


def _block_finding(view, key, cidrs, match):
    kind, host, name = key
    where, count = _where(view), len(cidrs)
    blocks = f"{count} block{'' if count == 1 else 's'} ({', '.join(cidrs[:3])}{' ...' if count > 3 else ''})"
    evidence = {"kind": kind, "source": view["source"], "blocks": _limited(cidrs),
                "datastore": {c: view["blocks"].get(c) for c in cidrs[:_findings.EVIDENCE_LIMIT]}}
    peer = match.get(name) if name else None
    if kind == "not_announced":
        severity = "warning"
        summary = f"{where} gives {host} {blocks}, but {host} does not announce them (no blackhole route)"
        remedy = (f"calico-node on {host} programs a blackhole for each block affine to it and BIRD exports it; "
                  f"without it the other nodes may have no route to pods in it. Check calico-node's logs on {host} "
                  "and restart it; if the block is not meant to be its any more, release the affinity "
                  "(`calicoctl ipam check`, `calicoctl ipam release`).")
    elif kind == "assigned_elsewhere":
        severity = "critical"
        owner = _named(peer, name) if peer else f"node {name}"
        summary = f"{host} announces {blocks} that {where} gives to {owner}"
        evidence["assigned_to"] = name
        remedy = (f"Traffic for these blocks is drawn to {host}, whose pods do not hold them. The datastore says "
                  f"{owner} owns them: drop {host}'s stale claim (restart calico-node on {host}; once no pod of the "
                  f"block runs there, `ip route del blackhole <block>` on {host}). If {name} is a node that is gone, "
                  "decommission it first (DS003).")
    else:
        severity = "warning"
        summary = f"{host} announces {blocks} that {where} gives to no node"
        remedy = (f"The block was released or never allocated to {host} in {where}: its blackhole on {host} is "
                  "stale (BIRD runs with persist, so its routes outlive a release). Restart calico-node on "
                  f"{host}, or `ip route del blackhole <block>` there once no pod of the block runs on it; the "
                  "other nodes' routes to it then go too (RT002 orphans).")
    return _findings.finding("DS002", severity, host, summary, evidence, remedy, peer=peer)


def _sessions(facts_by_host):
    """BGP peer address -> ([hosts with an Established session to it], [hosts with one that is not])."""
    out = {}
    for host, fact in sorted(facts_by_host.items()):
        if not isinstance(fact, dict):
            continue
        for peer in (fact.get("bird") or {}).get("peers") or ():
            established = peer.get("established", (peer.get("info") or "").startswith("Established"))
            out.setdefault(address_text(peer.get("address")), ([], []))[0 if established else 1].append(host)
    return out


def _stale_findings(view, facts_by_host, match):
    """DS003: a Node in the datastore that is no host of the fleet and shows no sign of life (no
    Established BGP session from any node, not Ready in Kubernetes)."""
    stale = sorted(set(view["nodes"]) - set(match))
    sessions = _sessions(facts_by_host) if stale else {}
    # Indexed once: an inventory that is a small part of a large cluster leaves most nodes unmatched.
    blocks_of = {}
    for cidr, block in view["blocks"].items():
        blocks_of.setdefault(block["affinity_node"], []).append(cidr)
    out, quiet = [], []
    for name in stale:
        ds = view["nodes"][name]
        address = address_text(ds["ipv4_address"])
        up, down = sessions.get(address, ([], [])) if address else ([], [])
        if up or ds.get("ready") is True:
            continue  # alive: a node the inventory does not list
        signs = []
        if down:
            signs.append(f"BGP sessions to {address} from {len(down)} node(s) are not Established")
        if ds.get("ready") is False:
            signs.append("its Kubernetes Node is not Ready")
        if signs:
            out.append(_stale_finding(view, name, "warning", "; ".join(signs), down, sorted(blocks_of.get(name, ()))))
        else:
            quiet.append(name)
    if len(quiet) > _findings.EVIDENCE_LIMIT:
        # No sign either way, for many nodes: most likely an inventory that covers part of the cluster.
        blocks = sorted(c for name in quiet for c in blocks_of.get(name, ()))
        out.append(_findings.finding(
            "DS003", "info", quiet[0],
            f"{_where(view)} has {len(quiet)} nodes that are no host of the audited fleet ({', '.join(quiet[:3])} ...)",
            {"source": view["source"], "datastore_nodes": _limited(quiet), "count": len(quiet),
             "blocks": _limited(blocks)},
            "Either the inventory covers only part of the cluster (audit them all to check these), or these "
            f"machines are gone: decommission each ({_delete_cmd(view, '<name>')})."))
    else:
        out += [_stale_finding(view, name, "info", None, [], sorted(blocks_of.get(name, ()))) for name in quiet]
    return out


def _delete_cmd(view, name):
    if view["source"] == "etcd":
        return f"`calicoctl delete node {name}` (it releases the node's IPAM blocks too)"
    return f"`kubectl delete node {name}` (calico-kube-controllers then releases its IPAM blocks)"


def _stale_finding(view, name, severity, signs, down, blocks):  # noqa: PLR0917 - one finding's inputs
    ds = view["nodes"][name]
    return _findings.finding(
        "DS003", severity, name,
        f"{_where(view)} still has node {name} ({ds['ipv4_address'] or 'no address'}), which is no host of the "
        f"audited fleet" + (f": {signs}" if signs else ""),
        {"datastore_node": name, "source": view["source"], "registered": {k: ds[k] for k in ANNOTATIONS},
         "ready": ds.get("ready"), "bgp_sessions_down_from": _limited(down), "blocks": _limited(blocks)},
        f"If the machine {name} is gone, decommission it: {_delete_cmd(view, name)}. Every node of the "
        f"node-to-node mesh keeps trying to peer with it (BGP001) and keeps routes to its {len(blocks)} block(s). "
        "If it still runs, add it to the inventory so it is audited.")


def datastore_findings(view, expected, facts_by_host):
    """DS001-DS003 over the datastore view (``check_view``'s input), the fleet's expected map
    (``_fleet.expected_map``) and its facts (host -> calico_node fact, None when it gave none)."""
    view = check_view(view)
    match = match_nodes(view, expected, facts_by_host)
    return (_identity_findings(view, expected, facts_by_host, match)
            + _block_findings(view, expected, facts_by_host, match)
            + _stale_findings(view, facts_by_host, match))
