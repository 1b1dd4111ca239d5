# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The datastore rules DS000-DS003 (controller only): calico_datastore_info's view of Calico's
datastore (``module_utils._datastore``) against the fleet's facts and expected map. DS000 is the
view itself missing (the read failed); DS001-DS003 then do not run."""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import (
    EVIDENCE_LIMIT,
    SEVERITIES,
    SEVERITY_RANK,
    finding,
    limited,
)
from ansible_collections.netdoctor.calico.plugins.module_utils._contract import (
    address_text,
)
from ansible_collections.netdoctor.calico.plugins.module_utils._datastore import (
    ANNOTATIONS,
    NODE_IP_SOURCES,
    TRANSITIONAL,
    check_view,
    parse_bool,
    pod_cidr_view,
)

CHECKS = ("DS000", "DS001", "DS002", "DS003")
# The checks a datastore that was read runs on every host (DS000 is filed under "datastore").
COMPARISONS = ("DS001", "DS002", "DS003")
MISSING_HOST = "datastore"


def _views(datastore):
    """The views of a ``datastore`` option: one view, or {cluster: view}."""
    if not isinstance(datastore, dict):
        return []
    if "source" in datastore:
        return [datastore]
    return [v for v in datastore.values() if isinstance(v, dict)]


def junit_checks(checks, datastore):
    """The catalogue's ``checks`` a JUnit report gives every host: DS001-DS003 only where a
    datastore view was read (none given, or its read failed: they did not run), DS000 never (its
    finding has a suite of its own)."""
    ran = any(not v.get("error") for v in _views(datastore))
    return tuple(c for c in checks if c not in CHECKS or (ran and c in COMPARISONS))


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
        severity = SEVERITIES[min(SEVERITY_RANK[p[4]] for p in problems)]
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
        out.append(finding(
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


def _node_name(match, host):
    return min((n for n, h in match.items() if h == host), default=host)


def _block_finding(view, key, cidrs, match):
    kind, host, name = key
    where, count = _where(view), len(cidrs)
    blocks = f"{count} block{'' if count == 1 else 's'} ({', '.join(cidrs[:3])}{' ...' if count > 3 else ''})"
    evidence = {"kind": kind, "source": view["source"], "ipam": view["ipam"], "blocks": limited(cidrs),
                "datastore": {c: view["blocks"].get(c) for c in cidrs[:EVIDENCE_LIMIT]}}
    peer = match.get(name) if name else None
    if kind == "not_announced":
        severity = "warning"
        summary = f"{where} gives {host} {blocks}, but {host} does not announce them (no blackhole route)"
        release = ("if the block is not meant to be its any more, release the affinity (`calicoctl ipam check`, "
                   "`calicoctl ipam release`)." if view["ipam"] == "calico" else
                   "with host-local IPAM its blocks are its Node's spec.podCIDRs (kube-controller-manager's "
                   f"allocation): `kubectl get node {_node_name(match, host)} -o jsonpath='{{.spec.podCIDRs}}'`.")
        remedy = (f"calico-node on {host} programs a blackhole for each block affine to it and BIRD exports it; "
                  f"without it the other nodes may have no route to pods in it. Check calico-node's logs on {host} "
                  f"and restart it; {release}")
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
    return finding("DS002", severity, host, summary, evidence, remedy, peer=peer)


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
    if len(quiet) > EVIDENCE_LIMIT:
        # No sign either way, for many nodes: most likely an inventory that covers part of the cluster.
        blocks = sorted(c for name in quiet for c in blocks_of.get(name, ()))
        out.append(finding(
            "DS003", "info", quiet[0],
            f"{_where(view)} has {len(quiet)} nodes that are no host of the audited fleet ({', '.join(quiet[:3])} ...)",
            {"source": view["source"], "datastore_nodes": limited(quiet), "count": len(quiet),
             "blocks": limited(blocks)},
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
    return finding(
        "DS003", severity, name,
        f"{_where(view)} still has node {name} ({ds['ipv4_address'] or 'no address'}), which is no host of the "
        f"audited fleet" + (f": {signs}" if signs else ""),
        {"datastore_node": name, "source": view["source"], "registered": {k: ds[k] for k in ANNOTATIONS},
         "ready": ds.get("ready"), "bgp_sessions_down_from": limited(down), "blocks": limited(blocks)},
        f"If the machine {name} is gone, decommission it: {_delete_cmd(view, name)}. Every node of the "
        f"node-to-node mesh keeps trying to peer with it (BGP001) and keeps routes to its {len(blocks)} block(s). "
        "If it still runs, add it to the inventory so it is audited.")


def uses_pod_cidr(facts_by_host):
    """Whether Calico runs over host-local IPAM on the Nodes' pod CIDRs (libcalico-go's
    ``USE_POD_CIDR``), as the nodes show it: calico-node's USE_POD_CIDR where the facts have it
    (read as strconv.ParseBool, as envconfig does), else the active Calico CNI config's IPAM type
    ``host-local`` on any node. Returns (bool, why)."""
    explicit, host_local = {}, []
    for host, fact in sorted(facts_by_host.items()):
        if not isinstance(fact, dict):
            continue
        identity = fact.get("identity") or {}
        env = (identity.get("calico_node") or {}).get("env") or {}
        if env.get("USE_POD_CIDR") not in (None, ""):
            explicit[host] = bool(parse_bool(env["USE_POD_CIDR"]))
        if (identity.get("cni") or {}).get("ipam_type") == "host-local":
            host_local.append(host)
    if explicit:
        on = sorted(h for h, v in explicit.items() if v)
        return bool(on), (f"calico-node runs with USE_POD_CIDR=true on {', '.join(on[:3])}" if on
                          else "calico-node runs with USE_POD_CIDR=false")
    if host_local:
        return True, f"the Calico CNI config uses host-local IPAM on {', '.join(host_local[:3])}"
    return False, None


_MISSING_REMEDY = {
    "resource_absent": "The API server serves neither crd.projectcalico.org nor projectcalico.org IPAM resources: "
                       "Calico's CRDs are not installed, or kubectl talks to another cluster. Check "
                       "`kubectl api-resources | grep -i projectcalico` and the kubeconfig/context given "
                       "(audit_kubeconfig, audit_kube_context).",
    "credentials": "The datastore refused the credentials. Kubernetes: use a kubeconfig allowed to list nodes, "
                   "ipamblocks and blockaffinities (calico-node's ClusterRole has them). etcd: the client "
                   "certificate and key Calico uses (ETCD_CERT_FILE, ETCD_KEY_FILE) as etcd_cert/etcd_key.",
    "tls": "The server's certificate does not verify: give the CA that signed it (etcd: Calico's "
           "ETCD_CA_CERT_FILE as etcd_ca; Kubernetes: the kubeconfig's certificate-authority-data), and reach "
           "the server by a name or address its certificate lists.",
    "timeout": "The datastore did not answer in time from where the module runs (the controller): check that "
               "it is reachable from there (firewall, VPN, proxy), or raise the module's timeout.",
    "unreachable": "Nothing answered at the datastore's address from where the module runs (the controller): "
                   "check the endpoints (etcd_endpoints; the kubeconfig's server), and that they are reachable "
                   "from there, or run the read on a control-plane node.",
    "file": "A file the read needs is missing or unreadable where the module runs (it names the option): fix "
            "the path (audit_etcd_ca, audit_etcd_cert, audit_etcd_key, audit_kubeconfig).",
    "config": "kubectl's configuration is unusable: check the kubeconfig and the context given.",
    "kubectl": "kubectl is not installed where the module runs: install it or give its path (audit_kubectl).",
}


def _missing_finding(view):
    error = view["error"]
    where = _where(view)
    summary = (f"{where} could not be read ({error['kind'].replace('_', ' ')}): {error['message']}; "
               "the datastore checks (DS001-DS003) did not run")
    return finding(
        "DS000", "warning", MISSING_HOST, summary,
        {"source": view["source"], "kind": error["kind"], "message": error["message"],
         "details": limited(error["details"]), "api_group": view.get("api_group")},
        _MISSING_REMEDY.get(error["kind"], "Read the message, fix what it names and rerun the audit.")
        + " Until then nothing says whether the nodes agree with Calico's datastore (DS001-DS003).")


def datastore_findings(view, expected, facts_by_host):
    """DS000-DS003 over the datastore view (``check_view``'s input), the fleet's expected map
    (``_contract.expected_map``) and its facts (host -> calico_node fact, None when it gave none).
    A view whose read failed is DS000 alone; a Kubernetes view of a cluster that runs Calico over
    host-local IPAM (``uses_pod_cidr``) is read as libcalico-go reads it then (``pod_cidr_view``)."""
    view = check_view(view)
    if view["error"]:
        return [_missing_finding(view)]
    pod_cidr, _why = uses_pod_cidr(facts_by_host)
    if pod_cidr and view["source"] == "kubernetes" and view["ipam"] != "host-local":
        view = pod_cidr_view(view)
    match = match_nodes(view, expected, facts_by_host)
    return (_identity_findings(view, expected, facts_by_host, match)
            + _block_findings(view, expected, facts_by_host, match)
            + _stale_findings(view, facts_by_host, match))
