# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Calico's datastore as one view, whichever backend holds it (the rules that compare it with what
the nodes do, DS001-DS003, are the controller's: ``plugin_utils._datastore_rules``).

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
SOURCES = ("etcd", "kubernetes")
# An affinity on its way in or out: the audit may have caught it mid-claim or mid-release.
TRANSITIONAL = ("pending", "pendingDeletion")
# Where expected_map's node IP comes from the node's own data plane or calico-node's pinned IP.
NODE_IP_SOURCES = {"bird_router_id": "BIRD router id", "vxlan_local": "vxlan.calico local address",
                   "calico_node_env": "calico-node IP env"}

# --- helpers -----------------------------------------------------------------------------------

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
