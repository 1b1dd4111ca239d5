# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Calico's datastore as one view, whichever backend holds it (the rules that compare it with what
the nodes do, DS000-DS003, are the controller's: ``plugin_utils._datastore_rules``).

Parsers (pure): an etcd v3 key/value listing in libcalico-go's layout (``view_from_etcd``) or the
documents ``kubectl get ... -o json`` prints for the Kubernetes datastore (``view_from_kubernetes``)
become::

    view = {"source": "etcd" | "kubernetes",
            "api_group": "crd.projectcalico.org/v1" | "projectcalico.org/v3" | None,  # the CRDs read (etcd: None)
            "ipam": "calico" | "host-local",                           # blocks from IPAM objects | Node pod CIDRs
            "nodes": {name: {"ipv4_address": "192.0.2.11/24" | None,   # as registered (CIDR)
                             "ipip_tunnel_addr", "vxlan_tunnel_addr", "vxlan_mac",
                             "ready": bool | None,                     # Kubernetes only: the Ready condition
                             "pod_cidrs": [cidr]}},                    # Kubernetes only: spec.podCIDRs
            "blocks": {cidr: {"affinity_node": name | None,            # the block's affinity host
                              "state": "confirmed" | "pending" | "pendingDeletion" | None,   # its affinity's
                              "affinities": {name: state},             # every live host affinity of the block
                              "ipam_block": bool,                      # the IPAM block object exists
                              "allocations": n}},                      # addresses in use in it
            "errors": [str],                                           # entries that could not be read
            "error": None | {"kind", "message", "details": [str]}}     # the read failed: no view at all

A read that failed is a view too (``error_view``: empty, with ``error``), so the audit reports it
(DS000) instead of silently comparing nothing. ``error.kind`` is one of ``ERROR_KINDS``.

Soft-deleted entries (``deleted`` true; a string in the v1 BlockAffinity CRD, read as Go's
strconv.ParseBool reads it) are dropped, as libcalico-go's readers drop them. Only host affinities
count (``virtual`` ones belong to no node). ``etcd_read`` pages through the keys at one revision
over an injected ``post`` (the module's HTTP call to the etcd v3 JSON gateway), so a listing is one
consistent snapshot. ``api_group_from_discovery`` picks the CRD group libcalico-go picks, and
``pod_cidr_view`` turns a Kubernetes view into what libcalico-go reads with ``USE_POD_CIDR``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import ssl

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
# Calico's CRDs are served in one of two groups (libcalico-go lib/backend/k8s/discovery.go
# UsingV3CRDs): crd.projectcalico.org/v1 (every release; with the Calico API server, which serves
# projectcalico.org/v3 on top of it, too) or, from v3.32 (manifests/calico-v3-crds.yaml), the native
# projectcalico.org/v3 CRDs alone. Always name the group: an unqualified `ipamblocks` on a cluster
# with the API server is projectcalico.org/v3.
API_GROUP_V1 = "crd.projectcalico.org/v1"
API_GROUP_V3 = "projectcalico.org/v3"
API_GROUPS = (API_GROUP_V1, API_GROUP_V3)
KUBE_DISCOVERY = "/apis"
KUBE_BLOCKS = "ipamblocks.crd.projectcalico.org"
KUBE_AFFINITIES = "blockaffinities.crd.projectcalico.org"
KUBE_RESOURCES = (KUBE_NODES, KUBE_BLOCKS, KUBE_AFFINITIES)
# Why a read failed (the module's classification, DS000's evidence).
ERROR_KINDS = ("resource_absent", "credentials", "tls", "timeout", "unreachable", "file", "config", "kubectl",
               "bad_output", "http", "other")
# Calico node fields as Kubernetes Node annotations (libcalico-go k8s/resources/node.go).
ANNOTATIONS = {
    "ipv4_address": "projectcalico.org/IPv4Address",
    "ipip_tunnel_addr": "projectcalico.org/IPv4IPIPTunnelAddr",
    "vxlan_tunnel_addr": "projectcalico.org/IPv4VXLANTunnelAddr",
    "vxlan_mac": "projectcalico.org/VXLANTunnelMACAddr",
}
NODE_FIELDS = (*ANNOTATIONS, "ready", "pod_cidrs")
SOURCES = ("etcd", "kubernetes")
IPAM_MODES = ("calico", "host-local")
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


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(text):
    """Go's strconv.ParseBool: True/False, or None for anything else (Go's error)."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    return None


def _deleted(value):
    """Whether an entry is soft-deleted; ValueError when its ``deleted`` cannot be read.

    The v1 BlockAffinity CRD keeps ``deleted`` as a string, which libcalico-go reads with
    strconv.ParseBool, an empty one as false, and refuses the entry otherwise
    (lib/backend/k8s/resources/ipam_affinity_v1.go); elsewhere it is a JSON bool."""
    if value is None or isinstance(value, bool):
        return value is True
    if isinstance(value, str):
        parsed = parse_bool(value) if value else False
        if parsed is None:
            raise ValueError(f"deleted {value!r} is not a boolean (strconv.ParseBool)")
        return parsed
    raise ValueError(f"deleted {value!r} is not a boolean")


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


def _node(ipv4_address=None, ipip=None, vxlan=None, mac=None, ready=None, pod_cidrs=()):  # noqa: PLR0917 - the fields
    return {"ipv4_address": ipv4_address or None, "ipip_tunnel_addr": ipip or None,
            "vxlan_tunnel_addr": vxlan or None, "vxlan_mac": mac.lower() if isinstance(mac, str) and mac else None,
            "ready": ready, "pod_cidrs": list(pod_cidrs)}


def _view(source, nodes, blocks, affinities, errors, api_group=None):  # noqa: PLR0917 - the view's parts
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
    return {"source": source, "api_group": api_group, "ipam": "calico", "nodes": dict(sorted(nodes.items())),
            "blocks": out, "errors": errors, "error": None}


def error_view(source, kind, message, details=(), api_group=None):
    """The view of a read that failed: nothing in it, and why (``kind``: one of ``ERROR_KINDS``)."""
    view = _view(source, {}, {}, {}, [], api_group)
    view["error"] = {"kind": kind if kind in ERROR_KINDS else "other", "message": str(message),
                     "details": [str(d) for d in details]}
    return view


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
        # Affinities were once stored with no value: libcalico-go reads one as {} - no state, so
        # confirmed (lib/backend/model/block_affinity.go parseValue; model/keys.go before v3.32).
        text = "{}" if value == "" and key.startswith(ETCD_AFFINITIES) else value
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            deleted = _deleted(obj.get("deleted"))
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
            elif not deleted:
                blocks[cidr] = {"affinity": _affinity_host(obj.get("affinity")),
                                "allocations": _allocations(obj.get("allocations"))}
        else:
            # .../host/<node>/ipv4/block/<cidr with - for />
            parts = key[len(ETCD_AFFINITIES):].split("/")
            cidr = _cidr(parts[3].replace("-", "/", 1)) if len(parts) == 4 and parts[2] == "block" else None
            if cidr is None:
                errors.append(f"{key}: not a block affinity key")
            elif not deleted:
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


def _pod_cidrs(node):
    """The Node's pod CIDRs, spec.podCIDR (the one the tunnel address comes from) first: Kubernetes
    keeps it as podCIDRs[0]."""
    spec = node.get("spec") or {}
    cidrs = spec.get("podCIDRs") if isinstance(spec.get("podCIDRs"), list) else []
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return [c for c in cidrs if isinstance(c, str) and c]


def resources_of(api_group):
    """The Node, IPAMBlock and BlockAffinity resources kubectl lists, their CRD group named."""
    group = (api_group or API_GROUP_V1).split("/", 1)[0]
    return (KUBE_NODES, f"ipamblocks.{group}", f"blockaffinities.{group}")


def api_group_from_discovery(document):
    """The group/version of Calico's CRDs that libcalico-go uses, from the API server's group list
    (``kubectl get --raw /apis``, an APIGroupList), or None when neither group is served.

    libcalico-go's rule (lib/backend/k8s/discovery.go UsingV3CRDs): projectcalico.org/v3 only when
    that group is served and crd.projectcalico.org is not; when both are, the v3 group is the Calico
    API server's, backed by the v1 CRDs, which it reads directly."""
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise ValueError("the API server's group list (/apis) is not an APIGroupList")
    served = {g.get("name") for g in document["groups"] if isinstance(g, dict)}
    if API_GROUP_V1.split("/", 1)[0] in served:
        return API_GROUP_V1
    if API_GROUP_V3.split("/", 1)[0] in served:
        return API_GROUP_V3
    return None


def view_from_kubernetes(nodes, blocks, affinities, api_group=API_GROUP_V1):
    """The view from the documents ``kubectl get nodes``, ``... ipamblocks.<group>`` and
    ``... blockaffinities.<group>`` print with ``-o json`` (``api_group``: the group/version they
    were read from; the v1 and v3 CRDs differ only in BlockAffinity's ``deleted``, a string in v1).
    There is no Calico Node object in this datastore: its fields are the Kubernetes Node's
    annotations."""
    errors, out_nodes, out_blocks, out_affinities = [], {}, {}, {}
    for node in _items(nodes, KUBE_NODES):
        meta = node.get("metadata") or {}
        if not meta.get("name"):
            errors.append("a node without metadata.name")
            continue
        notes = meta.get("annotations") or {}
        out_nodes[meta["name"]] = _node(*(notes.get(a) for a in ANNOTATIONS.values()), ready=_ready(node),
                                        pod_cidrs=_pod_cidrs(node))
    for block in _items(blocks, "ipamblocks"):
        spec = block.get("spec") or {}
        name = (block.get("metadata") or {}).get("name")
        cidr = _cidr(spec.get("cidr"))
        if cidr is None:
            errors.append(f"ipamblock {name}: no spec.cidr")
            continue
        try:
            deleted = _deleted(spec.get("deleted"))
        except ValueError as exc:
            errors.append(f"ipamblock {name}: {exc}")
            continue
        if not deleted:
            out_blocks[cidr] = {"affinity": _affinity_host(spec.get("affinity")),
                                "allocations": _allocations(spec.get("allocations"))}
    for affinity in _items(affinities, "blockaffinities"):
        spec = affinity.get("spec") or {}
        name = (affinity.get("metadata") or {}).get("name")
        cidr = _cidr(spec.get("cidr"))
        if cidr is None or not spec.get("node"):
            errors.append(f"blockaffinity {name}: no spec.cidr or spec.node")
            continue
        try:
            deleted = _deleted(spec.get("deleted"))
        except ValueError as exc:
            errors.append(f"blockaffinity {name}: {exc}")
            continue
        if not deleted and (spec.get("type") or "host") == "host":
            out_affinities.setdefault(cidr, {})[spec["node"]] = _state(spec.get("state"))
    return _view("kubernetes", out_nodes, out_blocks, out_affinities, errors, api_group)


def static_tunnel_address(pod_cidr):
    """The IPIP tunnel address libcalico-go gives a node with USE_POD_CIDR: its spec.podCIDR's
    address with the last byte plus one (lib/backend/k8s/resources/node.go getStaticTunnelAddress:
    ``tunIp[3]++``, a byte that wraps); None for an IPv6 pod CIDR; ValueError when not a CIDR."""
    try:
        if "/" not in pod_cidr:  # Go's net.ParseCIDR wants the prefix length
            raise ValueError(pod_cidr)
        address = ipaddress.ip_interface(pod_cidr).ip
    except (TypeError, ValueError):
        raise ValueError(f"pod CIDR {pod_cidr!r} is not a CIDR") from None
    if address.version != 4:
        return None
    packed = bytearray(address.packed)
    packed[3] = (packed[3] + 1) % 256
    return str(ipaddress.IPv4Address(bytes(packed)))


def pod_cidr_view(view):
    """A Kubernetes view as libcalico-go reads that datastore with ``USE_POD_CIDR`` (Calico over
    host-local IPAM): no IPAM blocks or block affinities are read - each node's blocks are its
    Node's pod CIDRs, confirmed (lib/backend/syncersv1/updateprocessors/bgpnodeprocessor.go and
    felixnodeprocessor.go), and a node with a spec.podCIDR has the IPIP tunnel address
    ``static_tunnel_address`` gives, whatever its annotation says (k8s/resources/node.go
    K8sNodeToCalico). A view of a failed read is returned as it is."""
    if view.get("error"):
        return view
    nodes, affinities, errors = {}, {}, list(view.get("errors") or ())
    for name, entry in view["nodes"].items():
        node = dict(entry)
        cidrs = list(node.get("pod_cidrs") or ())
        if cidrs:
            try:
                node["ipip_tunnel_addr"] = static_tunnel_address(cidrs[0])
            except ValueError:
                node["ipip_tunnel_addr"] = None  # reported below
        for cidr in cidrs:
            if "/" not in cidr or _cidr(cidr) is None:
                errors.append(f"node {name}: pod CIDR {cidr!r} is not a CIDR")
            else:
                affinities.setdefault(_cidr(cidr), {})[name] = "confirmed"
        nodes[name] = node
    out = _view(view["source"], nodes, {}, affinities, errors, view.get("api_group"))
    out["ipam"] = "host-local"
    return out


def check_view(view):
    """The view with every field present; ValueError when it is not one (fleet_audit's option)."""
    if not isinstance(view, dict) or view.get("source") not in SOURCES:
        raise ValueError("not a datastore view: expected the datastore result of netdoctor.calico."
                         f"calico_datastore_info (a dict with source {' or '.join(SOURCES)}, nodes, blocks)")
    if not isinstance(view.get("nodes"), dict) or not isinstance(view.get("blocks"), dict):
        raise ValueError("a datastore view needs the dicts nodes and blocks")
    error = view.get("error")
    if error is not None and not (isinstance(error, dict) and error.get("message")):
        raise ValueError("a datastore view's error is null or a dict with kind and message")
    nodes = {}
    for name, entry in view["nodes"].items():
        node = entry or {}
        nodes[str(name)] = {f: node.get(f) for f in NODE_FIELDS}
        nodes[str(name)]["pod_cidrs"] = [str(c) for c in node.get("pod_cidrs") or ()]
    blocks = {}
    for cidr, entry in view["blocks"].items():
        block = entry or {}
        blocks[_cidr(cidr) or cidr] = {"affinity_node": block.get("affinity_node"), "state": block.get("state"),
                                       "affinities": dict(block.get("affinities") or {}),
                                       "ipam_block": bool(block.get("ipam_block", True)),
                                       "allocations": int(block.get("allocations") or 0)}
    if error is not None:
        error = {"kind": error.get("kind") if error.get("kind") in ERROR_KINDS else "other",
                 "message": str(error["message"]), "details": [str(d) for d in error.get("details") or ()]}
    return {"source": view["source"], "api_group": view.get("api_group"),
            "ipam": view.get("ipam") if view.get("ipam") in IPAM_MODES else "calico", "nodes": nodes,
            "blocks": blocks, "errors": list(view.get("errors") or ()), "error": error}


# --- why a read failed -------------------------------------------------------------------------

# kubectl's messages (client-go, apimachinery), most telling first: a TLS handshake timeout is a
# timeout, an x509 error a TLS problem even though kubectl says "Unable to connect to the server".
_KUBECTL_KINDS = (
    ("timeout", ("timeout", "timed out", "deadline exceeded", "time allotted", "(Timeout)")),
    ("tls", ("x509:", "tls:", "certificate")),
    ("credentials", ("Unauthorized", "Forbidden", "forbidden", "must be logged in", "provide credentials")),
    ("resource_absent", ("doesn't have a resource type", "could not find the requested resource",
                         "no matches for kind")),
    ("file", ("no such file or directory", "permission denied", "is a directory")),
    ("config", ("context was not found", "no configuration has been provided", "invalid configuration",
                "error loading config", "cluster has no server defined")),
    ("unreachable", ("refused", "no such host", "no route to host", "network is unreachable",
                     "Unable to connect to the server", "connection reset", "EOF")),
)


def kubectl_error_kind(text):
    """The ``ERROR_KINDS`` entry for what kubectl printed on stderr."""
    for kind, needles in _KUBECTL_KINDS:
        if any(n in (text or "") for n in needles):
            return kind
    return "other"


# The most telling kind first, for a read where several endpoints failed differently: a member that
# refuses our certificate says more than a member that is down.
_KIND_ORDER = ("file", "tls", "credentials", "resource_absent", "config", "kubectl", "bad_output", "http",
               "timeout", "unreachable", "other")


def worst_kind(kinds):
    """The kind that says most about a failure, of several."""
    kinds = [k for k in kinds if k in _KIND_ORDER] or ["other"]
    return min(kinds, key=_KIND_ORDER.index)


def etcd_error_kind(exc, client_cert=True):
    """The ``ERROR_KINDS`` entry for an exception of one request to etcd's gateway (urllib's
    URLError wraps the socket's or TLS's own; ``HTTPError`` carries etcd's status).
    ``client_cert``: whether a client certificate was offered - etcd with --client-cert-auth drops a
    client without one, with an alert or by closing the connection right after the handshake."""
    status = getattr(exc, "code", None)
    if isinstance(status, int):
        return "credentials" if status in (401, 403) else "http"
    reason = getattr(exc, "reason", None)
    cause = reason if isinstance(reason, BaseException) else exc
    if isinstance(cause, (socket.timeout, TimeoutError)) or "timed out" in str(reason or exc):
        return "timeout"
    if not client_cert and isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError)):
        return "credentials"
    if isinstance(cause, ssl.SSLError):
        text = str(cause).upper()
        # The server's alerts about our client certificate: it wants one, or does not trust ours.
        if any(a in text for a in ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA",
                                   "CERTIFICATE_UNKNOWN", "CERTIFICATE_EXPIRED", "ACCESS_DENIED")):
            return "credentials" if "ALERT" in text else "tls"
        return "tls"
    if isinstance(cause, OSError):
        return "unreachable"
    if isinstance(exc, ValueError):
        return "bad_output"
    return "other"
