# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Fleet cross-checks over the per-node ``calico_node`` facts (controller only).

The expected map and route drift are the contract both rooms share (``module_utils._contract``);
``fleet_findings`` runs the cross-node rules of the catalogue (docs/findings.md) over them and
merges the node-local findings, ``correlate`` folds consequences under their causes.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect, _catalogue
from ansible_collections.netdoctor.calico.plugins.module_utils._calico_view import BIRD, route_text
from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import (
    EVIDENCE_LIMIT,
    SEVERITIES,
    limited,
    sort_findings,
    worst_severity,
)
from ansible_collections.netdoctor.calico.plugins.module_utils._contract import (
    REGISTERED_SOURCES,
    ROUTE_SHAPE,
    address_text,
    calico_node_env,
    calico_running,
    expected_map,
    route_drift,
)
from ansible_collections.netdoctor.calico.plugins.module_utils._datastore import check_view
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _datastore_rules, _identity, _probes
from ansible_collections.netdoctor.calico.plugins.plugin_utils._digest_book import DigestBook, digest_drift

# The JUnit report has one testcase per check per host.
CHECKS = tuple(_catalogue.CATALOGUE)


# ---------------------------------------------------------------------------------------------
# Cross-node rules


class _Fleet:
    """What every rule needs once: node identities and who holds which address."""

    def __init__(self, facts_by_host, expected, intended_ips):
        self.facts = {h: f for h, f in facts_by_host.items() if isinstance(f, dict)}
        self.expected = expected
        self.nodes = expected["nodes"]
        self.mode = expected["mode"]
        self.intended = {h: address_text(ip) for h, ip in (intended_ips or {}).items()}
        self.by_ip = {}
        for host, node in self.nodes.items():
            if node["ip"]:
                self.by_ip.setdefault(node["ip"], host)
        # Every address of every node, for naming a stray next hop or peer address.
        self.holder = {}
        for host, node in self.nodes.items():
            if node["tunnel_address"]:
                self.holder[node["tunnel_address"]] = (host, "tunnel address")
        for host, fact in self.facts.items():
            for link in fact.get("links") or ():
                for addr in link.get("addresses") or ():
                    self.holder.setdefault(addr.get("address"), (host, f"address on {link.get('name')}"))
        for ip, host in self.by_ip.items():
            self.holder[ip] = (host, f"Calico IP ({self.nodes[host]['ip_source']})")

    def describe(self, address, viewer=None):
        """'node3's tunnel address' style naming of an address, or None."""
        held = self.holder.get(address)
        if not held:
            return None
        host, what = held
        whose = "its own" if host == viewer else f"{host}'s"
        return f"{whose} {what}"

    def calico_interface(self, host):
        """The link holding the host's Calico IP, or None."""
        ip = self.nodes[host]["ip"]
        for link in self.facts[host].get("links") or ():
            if any(a.get("address") == ip for a in link.get("addresses") or ()):
                return link.get("name")
        return None


def fleet_findings(facts_by_host, expected, drift_by_host=None, unreachable=None, intended_ips=None):
    """Every finding of the fleet: the node-local ones from the facts plus the cross-node rules.

    ``facts_by_host``: host -> calico_node fact (None when the host gave none); ``expected``:
    from expected_map; ``drift_by_host``: host -> route_drift result from the node (when a host
    has none but its fact carries the full remote block routes, its drift is computed here);
    ``unreachable``: hosts that failed or were unreachable (a list, or host -> reason);
    ``intended_ips``: host -> the address the node should be registered with.
    """
    if isinstance(unreachable, dict):
        reasons = dict(unreachable)
    else:
        reasons = {h: None for h in unreachable or ()}
    for host, fact in facts_by_host.items():
        if not isinstance(fact, dict):
            reasons.setdefault(host, None)
    fleet = _Fleet(facts_by_host, expected, intended_ips)
    drift_by_host = collect_drift(facts_by_host, expected, drift_by_host)

    out = [_unreachable(host, reason, fleet) for host, reason in sorted(reasons.items())]
    derived = _duplicates(fleet) + _names(fleet) + _mtu(fleet) + _double_owned(fleet) + _mixed(fleet)
    for host in sorted(fleet.facts):
        if not calico_running(fleet.facts[host]):
            continue  # its one finding (NOCAL001) is the node's own
        if drift_by_host.get(host):
            derived += _route_findings(host, drift_by_host[host], fleet)
        elif (fleet.facts[host].get("route_digest") and expected.get("mode") in ROUTE_SHAPE
              and not any(f.get("id") in ("RT001", "RT002") for f in fleet.facts[host].get("findings") or ())):
            # The node's own route finding already names what is wrong; else say the digest differs.
            derived.append(_digest_differs(host, fleet))
        derived += _source_findings(host, fleet)
        derived += _mesh_peer_findings(host, fleet)
    local = _node_local(fleet, drift_by_host)
    derived += _autodetect_findings(fleet, local)
    # A node-local rule already said it: keep the node's finding, drop the fleet's repeat.
    said = {(f.get("id"), f.get("host"), f.get("peer")) for f in local}
    out += local + [f for f in derived if (f["id"], f["host"], f.get("peer")) not in said]
    out = _identity.fleet_rules(out, fleet)
    out += _probes.probe_findings(_probes.matrix(facts_by_host), out)
    return sort_findings(correlate(out, fleet, drift_by_host))


# ---------------------------------------------------------------------------------------------
# One fault, one finding: consequences folded into their cause


def _misregistered(fleet, findings):
    """host -> its wrong registered IP, for the nodes with an AD001 whose registered IP (BIRD's
    router id, vxlan.calico's local address) is not their intended IP."""
    ad001 = {f.get("host") for f in findings if f.get("id") == "AD001"}
    out = {}
    for host in ad001 & set(fleet.facts):
        node = fleet.nodes.get(host) or {}
        auto = fleet.facts[host].get("autodetection") or {}
        intended = fleet.intended.get(host) or address_text(auto.get("intended"))
        if node.get("ip_source") in REGISTERED_SOURCES and intended and node.get("ip") != intended:
            out[host] = {"registered": node["ip"], "intended": intended}
    return out


def _cause_of(finding, fleet, findings_by_key, wrong, bird_added):
    """(cause finding, why) when ``finding`` is what another finding already explains, else None.

    - A node registered with a wrong IP (AD001) peers from it over BGP (its sessions fail, and its
      peers' sessions to that address fail) and is expected by everyone at it, so SRC001's "leaves
      from another source than the Calico IP" is the same fault when that source is its intended IP.
    - A block route BIRD programs is missing on a node whose BGP session to the block's owner is
      down (BGP001 on either side): BIRD withdrew it with the session.
    """
    fid, host, peer = finding.get("id"), finding.get("host"), finding.get("peer")
    evidence = finding.get("evidence") or {}
    if fid in ("BGP001", "PROBE001"):
        for side in (peer, host):
            cause = findings_by_key.get(("BIRD001", side)) if side else None
            if cause is not None and cause is not finding:
                return cause, f"BIRD is not running on {side}, so no BGP session with it can be up"
    if fid == "BGP001" and host in wrong:
        cause = findings_by_key.get(("AD001", host))
        why = f"{host}'s BIRD peers from its wrong registered IP {wrong[host]['registered']}"
        return (cause, why) if cause else None
    if fid == "BGP001" and peer in wrong and evidence.get("peer_address") == wrong[peer]["registered"]:
        cause = findings_by_key.get(("AD001", peer))
        why = f"the session is to {peer}'s wrong registered IP {wrong[peer]['registered']}"
        return (cause, why) if cause else None
    if fid == "SRC001" and host in wrong and evidence.get("source") == wrong[host]["intended"]:
        cause = findings_by_key.get(("AD001", host))
        why = (f"{host} sends from its intended IP {wrong[host]['intended']}; only its registered IP "
               f"{wrong[host]['registered']} is wrong")
        return (cause, why) if cause else None
    if fid == "RT002" and evidence.get("kind") == "missing" and peer and host in bird_added:
        for side in ((host, peer), (peer, host)):
            cause = findings_by_key.get(("BGP001",) + side)
            if cause is not None:
                return cause, (f"BIRD programs {host}'s block routes (proto bird) and the BGP session between "
                               f"{host} and {peer} is down")
    return None


def correlate(findings, fleet, drift_by_host=None):
    """Fold the findings that are consequences of another finding into it, so one fault reads as
    one finding: a consequence drops to info, its evidence names the cause (``caused_by``), and
    the root cause lists its consequences and takes the worst of their severities, so fail_on
    gives the same verdict as before. Causes chain (a missing route <- its BGP session <- the
    node's wrong registered IP); every consequence points at the root."""
    wrong = _misregistered(fleet, findings)
    # Nodes whose missing block routes BIRD would add (the protocol of their correct block routes).
    bird_added = {host for host, drift in (drift_by_host or {}).items()
                  if any(r.get("protocol") == BIRD for r in ((drift or {}).get("actions") or {}).get("add") or ())}
    by_key = {}
    for f in findings:
        if f.get("severity") in ("critical", "warning"):
            by_key.setdefault((f.get("id"), f.get("host"), f.get("peer")), f)
            by_key.setdefault((f.get("id"), f.get("host")), f)
    causes = {}
    for f in findings:
        if f.get("severity") not in ("critical", "warning"):
            continue
        found = _cause_of(f, fleet, by_key, wrong, bird_added)
        if found and found[0] is not f:
            causes[id(f)] = found
    if not causes:
        return findings

    def root(f):
        whys = []
        for _step in range(len(findings)):  # bounded: causes never form a cycle, but never loop forever
            nxt = causes.get(id(f))
            if nxt is None:
                break
            f = nxt[0]
            whys.append(nxt[1])
        return f, "; ".join(whys)

    consequences = {}
    out = []
    for f in findings:
        if id(f) not in causes:
            out.append(f)
            continue
        cause, why = root(f)
        consequences.setdefault(id(cause), []).append(f)
        out.append(_catalogue.as_consequence(f, cause, why))
    for i, f in enumerate(out):
        mine = consequences.get(id(f))
        if mine:
            out[i] = _catalogue.with_consequences(f, mine)
    return out


def _node_local(fleet, drift_by_host):
    """The nodes' own findings, their peer addresses named as hosts; a node's "routes point back
    into this node" (RT001) gives way to the drift check, which names each block's owner."""
    out = []
    for host in sorted(fleet.facts):
        fact = fleet.facts[host]
        drifted = {d["dst"] for d in (drift_by_host.get(host) or {}).get("drift") or ()}
        suspects = {s["route"].get("dst") for s in (fact.get("routes") or {}).get("suspect") or ()}
        for item in fact.get("findings") or ():
            if item.get("id") == "RT001" and not item.get("peer") and suspects and suspects <= drifted:
                continue
            # The inventory name is the node's identity; the hostname it reported is evidence.
            finding = {**item, "host": host}
            peer_host = fleet.by_ip.get(item.get("peer"))
            if peer_host:
                finding["peer"] = peer_host
                finding["evidence"] = {**(item.get("evidence") or {}), "peer_address": item["peer"]}
            out.append(finding)
    return out


def collect_drift(facts_by_host, expected, drift_by_host=None):
    """host -> route_drift result: the ones the nodes sent, else computed here for the hosts
    whose fact carries the full remote block routes (small fleets, tests), else a clean result
    for the hosts whose route digest matches the map (the healthy case: one round trip)."""
    out, books = dict(drift_by_host or {}), {}
    for host, fact in facts_by_host.items():
        if out.get(host) is None and isinstance(fact, dict):
            routes = _full_routes(fact)
            if routes is not None:
                vxlan = (fact.get("calico") or {}).get("vxlan") or {}
                l2 = ({"neighbours": vxlan.get("neighbours") or [], "fdb": vxlan.get("fdb") or []}
                      if "neighbours" in vxlan else {})
                out[host] = {**route_drift(routes, expected, host, **l2), "by": "controller"}
            elif fact.get("route_digest"):
                l2 = bool(fact["route_digest"].get("l2"))
                if l2 not in books:
                    books[l2] = DigestBook(expected, l2=l2)
                out[host] = digest_drift(books[l2], expected, host, fact)
    return {h: d for h, d in out.items() if d is not None}


def drift_needed(facts_by_host, expected):
    """The hosts whose routes must be checked on the node (calico_routes in check mode): their
    digest differs from what the map predicts, or they sent none. Healthy nodes are not in it."""
    if expected.get("mode") not in ROUTE_SHAPE:
        return []
    done = collect_drift(facts_by_host, expected)
    return sorted(h for h, f in facts_by_host.items()
                  if isinstance(f, dict) and calico_running(f) and h not in done)


def host_summaries(facts_by_host, expected, findings, drift_by_host=None, unreachable=()):
    """One line of the report per node: status, identity, route check and finding counts."""
    by_host = {}
    for finding in findings:
        by_host.setdefault(finding.get("host"), []).append(finding)
    drift_by_host = drift_by_host or {}
    out = {}
    for host in sorted(set(facts_by_host) | set(unreachable or ())):
        fact = facts_by_host.get(host)
        node = expected["nodes"].get(host) or {}
        mine = by_host.get(host, [])
        counts = Counter(f.get("severity") for f in mine)
        drift = drift_by_host.get(host)
        peers = ((fact or {}).get("bird") or {}).get("peers") or ()
        gone = host in (unreachable or ()) or not isinstance(fact, dict)
        out[host] = {
            "status": "unreachable" if gone else ("findings" if mine else "ok"),
            "hostname": (fact or {}).get("hostname"),
            "ip": node.get("ip"),
            "ip_source": node.get("ip_source"),
            "mode": ((fact or {}).get("calico") or {}).get("mode"),
            "blocks": len(node.get("blocks") or ()),
            "worst": worst_severity(mine),
            "counts": {s: counts.get(s, 0) for s in SEVERITIES},
            "ids": sorted({f.get("id") for f in mine}),
            # by: where the routes were judged - their digest, the node's own check, or here.
            "routes": ({"checked": drift.get("checked"), "ok": drift.get("ok"), **(drift.get("counts") or {}),
                        "by": drift.get("by") or "node"} if drift else None),
            "bgp": {"peers": len(peers), "established": sum(1 for p in peers if _established(p))},
        }
        row = _probes.matrix({host: fact}).get(host) if isinstance(fact, dict) else None
        if row is not None:
            out[host]["probes"] = row   # _report.build_report moves it to report["probes"]
    return out


def _established(peer):
    # _bird gives "established"; older facts only BIRD's info column.
    return peer.get("established", (peer.get("info") or "").startswith("Established"))


def audit(facts_by_host, *, intended_ips=None, drift_by_host=None, unreachable=None, pools=None, cross_subnet=False,
          datastore=None):
    """The controller's whole analysis: (expected map, findings, per-host summaries).
    ``datastore``: calico_datastore_info's view, which adds the DS rules (``_datastore``)."""
    expected = expected_map(facts_by_host, intended_ips, pools=pools, cross_subnet=cross_subnet)
    drift = collect_drift(facts_by_host, expected, drift_by_host)
    findings = fleet_findings(facts_by_host, expected, drift, unreachable, intended_ips)
    if datastore is not None:
        findings = sort_findings(findings + _datastore_rules.datastore_findings(datastore, expected, facts_by_host))
    hosts = host_summaries(facts_by_host, expected, findings, drift, unreachable)
    return expected, findings, hosts


DEFAULT_CLUSTER = "default"


def _per_cluster(value, cluster, what):
    """An option given once for every cluster, or as {cluster: value}."""
    if isinstance(value, dict) and not (what == "datastore" and "source" in value):
        return value.get(cluster)
    return value


def group_clusters(hosts, clusters=None):
    """cluster -> its hosts (sorted); ``clusters``: host -> cluster name (missing: DEFAULT_CLUSTER)."""
    out = {}
    for host in sorted(hosts):
        name = (clusters or {}).get(host) or DEFAULT_CLUSTER
        out.setdefault(str(name), []).append(host)
    return out


def audit_fleet(facts_by_host, *, clusters=None, intended_ips=None, drift_by_host=None, unreachable=None,
                pools=None, cross_subnet=False, datastore=None):
    """Every cluster of an inventory judged on its own facts alone: its own map, mode, pools and
    datastore. ``clusters``: host -> cluster name (default: one cluster); ``pools``,
    ``cross_subnet`` and ``datastore`` are one value for every cluster or {cluster: value}.
    Returns ({cluster: expected map}, findings, per-host summaries); every finding and host line
    carries its ``cluster``."""
    groups = group_clusters(facts_by_host, clusters)
    if isinstance(datastore, dict) and "source" in datastore and len(groups) > 1:
        raise ValueError("one datastore view was given for several clusters: pass {cluster: view}")
    if isinstance(datastore, dict) and "source" not in datastore and (not datastore or set(datastore) - set(groups)):
        check_view(datastore)  # neither a view nor {cluster: view}: raises, saying what a view is
    unreachable = unreachable if isinstance(unreachable, dict) else {h: None for h in unreachable or ()}
    maps, findings, hosts = {}, [], {}
    for cluster, members in groups.items():
        member_set = set(members)
        expected, found, lines = audit(
            {h: facts_by_host[h] for h in members},
            intended_ips={h: ip for h, ip in (intended_ips or {}).items() if h in member_set},
            drift_by_host={h: d for h, d in (drift_by_host or {}).items() if h in member_set},
            unreachable={h: r for h, r in unreachable.items() if h in member_set},
            pools=_per_cluster(pools, cluster, "pools"), cross_subnet=bool(_per_cluster(cross_subnet, cluster, "")),
            datastore=_per_cluster(datastore, cluster, "datastore"))
        maps[cluster] = expected
        findings += [{**f, "cluster": cluster} for f in found]
        hosts.update({h: {**line, "cluster": cluster} for h, line in lines.items()})
    return maps, sort_findings(findings), hosts


def _full_routes(fact):
    """The node's main table when its fact carries the full remote block routes, else None."""
    routes = fact.get("routes") or {}
    if not isinstance(routes.get("remote_blocks"), list):
        return None
    return [r for key in ("local_blocks", "workloads", "tunnel", "remote_blocks", "other")
            for r in routes.get(key) or ()]


def _unreachable(host, reason, fleet):
    node = fleet.nodes.get(host) or {}
    return _catalogue.finding(
        "UNREACH", "warning", host,
        f"{host} gave no facts ({reason or 'failed or unreachable'}): it was not audited",
        {"reason": reason, "ip": node.get("ip"), "ip_source": node.get("ip_source")},
        f"Make {host} reachable (SSH, python, become) and rerun the audit; routes towards it are "
        "checked against an incomplete map until then, so no orphan route is deleted.",
    )


def calico_node_name(fact):
    """The name calico-node registers the node under: NODENAME, else /var/lib/calico/nodename, else
    the hostname (calico-node's own order of precedence)."""
    identity = fact.get("identity") or {}
    return (calico_node_env(fact).get("NODENAME") or identity.get("nodename_file") or fact.get("hostname")
            or None)


def _short(name):
    return str(name).split(".", 1)[0].lower()


def _names(fleet):
    """DUP001 for two hosts that register as one Calico node; HOST001 (info) for a host whose
    inventory name and hostname name different machines."""
    out, holders = [], {}
    for host, fact in sorted(fleet.facts.items()):
        name = calico_node_name(fact)
        if name:
            holders.setdefault(name, []).append(host)
        hostname = fact.get("hostname")
        if hostname and address_text(host) is None and _short(hostname) != _short(host):
            out.append(_catalogue.finding(
                "HOST001", "info", host,
                f"{host} reports the hostname {hostname!r}: findings are filed under the inventory name {host}",
                {"inventory_name": host, "hostname": hostname, "calico_node_name": name},
                "Nothing to do if this inventory alias is intended; otherwise check the inventory points at the "
                "right machine."))
    for name, hosts in sorted(holders.items()):
        if len(hosts) < 2:
            continue
        out.append(_catalogue.finding(
            "DUP001", "critical", hosts[0],
            f"{len(hosts)} hosts register as the same Calico node {name!r}: {', '.join(hosts)}",
            {"field": "node_name", "node_name": name, "hosts": hosts,
             "hostnames": {h: fleet.facts[h].get("hostname") for h in hosts}},
            f"Give each machine its own hostname (hostnamectl set-hostname) or NODENAME, then restart calico-node "
            f"on {', '.join(hosts[1:])}: both write one Node resource, so their blocks and address overwrite each "
            "other.",
            peer=hosts[1]))
    return out


def _duplicates(fleet):
    out = []
    for field, what in (("ip", "Calico IP"), ("tunnel_address", "tunnel address")):
        holders = {}
        for host, node in fleet.nodes.items():
            if node[field] and node.get("facts") is not False:
                holders.setdefault(node[field], []).append(host)
        for address, hosts in sorted(holders.items()):
            if len(hosts) < 2:
                continue
            out.append(_catalogue.finding(
                "DUP001", "critical", hosts[0],
                f"{len(hosts)} nodes share the {what} {address}: {', '.join(hosts)}",
                {"field": field, "address": address, "hosts": hosts,
                 "sources": {h: fleet.nodes[h]["ip_source"] for h in hosts} if field == "ip" else None},
                f"Give each node its own {what}: "
                + ("fix IP_AUTODETECTION_METHOD (AD001) or the pinned IP env so each node registers its own "
                   "address; calico-node refuses to start on an IPv4 address conflict."
                   if field == "ip" else
                   f"release the duplicate tunnel address from Calico IPAM (calicoctl ipam check) and restart "
                   f"calico-node on {', '.join(hosts[1:])} so it allocates a new one."),
                peer=hosts[1],
            ))
    return out


def _mixed(fleet):
    """CL001: nodes of one cluster that run another mode than the cluster's, or own blocks outside
    the cluster's given IP pools."""
    modes = fleet.expected.get("modes") or {}
    out = []
    if len(modes) > 1:
        by_mode = {}
        for host, fact in sorted(fleet.facts.items()):
            mode = (fact.get("calico") or {}).get("mode")
            if mode and mode != "none":
                by_mode.setdefault(mode, []).append(host)
        for mode, hosts in sorted(by_mode.items()):
            if mode == fleet.mode:
                continue
            for host in hosts:
                out.append(_catalogue.finding(
                    "CL001", "critical", host,
                    f"{host} runs Calico in {mode} mode while the rest of its cluster runs {fleet.mode}",
                    {"mode": mode, "cluster_mode": fleet.mode, "modes": dict(modes),
                     "hosts_in_mode": limited(hosts)},
                    f"One encapsulation per IP pool: check the IPPool ({mode} vs {fleet.mode}) and calico-node's "
                    "CALICO_NETWORKING_BACKEND; if the host belongs to another cluster, set its calico_cluster "
                    "host variable so each cluster is audited on its own."))
    if fleet.expected.get("pools_source") == "given":
        pools = [ipaddress.ip_network(p) for p in fleet.expected.get("pools") or ()]
        for host, node in sorted(fleet.nodes.items()):
            outside = [b for b in node.get("blocks") or ()
                       if not any(ipaddress.ip_network(b).subnet_of(p) for p in pools
                                  if p.version == ipaddress.ip_network(b).version)]
            if outside:
                out.append(_catalogue.finding(
                    "CL001", "warning", host,
                    f"{host} owns {len(outside)} block(s) outside its cluster's IP pools",
                    {"blocks": limited(outside), "pools": fleet.expected.get("pools")},
                    "The audit's pools (audit_pools) must be the cluster's IPPools; a block outside them is another "
                    "cluster's (set calico_cluster) or a pool that was deleted while still in use."))
    return out


_MTU_SETTING = {"vxlan.calico": "vxlanMTU", "vxlan-v6.calico": "vxlanMTUV6", "tunl0": "ipipMTU"}


def _mtu(fleet):
    by_device = {}
    for host, fact in fleet.facts.items():
        tunnel = (fact.get("calico") or {}).get("tunnel") or {}
        if tunnel.get("device") and tunnel.get("mtu"):
            by_device.setdefault(tunnel["device"], {})[host] = tunnel["mtu"]
    out = []
    for device, mtus in sorted(by_device.items()):
        counts = Counter(mtus.values())
        if len(counts) < 2:
            continue
        common = counts.most_common(1)[0][0]
        for host in sorted(h for h, mtu in mtus.items() if mtu != common):
            out.append(_catalogue.finding(
                "MTU001", "warning", host,
                f"{device} MTU on {host} is {mtus[host]}, the rest of the fleet mostly uses {common}",
                {"device": device, "mtu": mtus[host], "fleet_mtus": {str(k): v for k, v in counts.most_common()}},
                f"Use one tunnel MTU on every node (FelixConfiguration {_MTU_SETTING.get(device, 'ipipMTU')}, "
                "or the operator's calicoNetwork.mtu), sized to the smallest underlay MTU minus the "
                "encapsulation overhead (IPIP 20, VXLAN 50); a larger MTU on one side drops big packets silently.",
            ))
    return out


def _double_owned(fleet):
    out = []
    for cidr, hosts in sorted(fleet.expected["owners_conflicts"].items()):
        out.append(_catalogue.finding(
            "RT002", "critical", hosts[0],
            f"block {cidr} is claimed by {len(hosts)} nodes: {', '.join(hosts)}",
            {"kind": "double_owned", "block": cidr, "claimants": hosts,
             "routes": {h: f"blackhole {cidr}" for h in hosts}},
            f"Check the block's affinity (calicoctl ipam show --show-blocks; kubectl get blockaffinities) and "
            f"remove the stale claim: the node that does not hold the affinity must drop its blackhole "
            f"(restart calico-node there, or `ip route del blackhole {cidr}` once its pods are gone). "
            "Routes to this block are not checked until it has one owner.",
            peer=hosts[1],
        ))
    return out


_ROUTE_RULES = {
    # kind: (finding id, severity)
    "wrong_next_hop": ("RT001", "critical"),
    "wrong_device": ("RT001", "critical"),
    "shadow": ("RT001", "warning"),
    "missing": ("RT002", "critical"),
    "orphan": ("RT002", "warning"),
    # VXLAN L2 state per peer (issue 12): the route is right, the packets still go nowhere.
    "neighbour_missing": ("VX001", "critical"),
    "neighbour_wrong": ("VX001", "critical"),
    "fdb_missing": ("VX001", "critical"),
    "fdb_wrong": ("VX001", "critical"),
}


def _ip_route(verb, route):
    return f"ip route {verb} {route_text({**route, 'prefsrc': None, 'multipath': None})}"


def _commands(verb, routes):
    shown = "; ".join(f"`{_ip_route(verb, r)}`" for r in routes[:3])
    return shown + (" ..." if len(routes) > 3 else "")


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _route_findings(host, drift, fleet):
    """RT001/RT002 from one node's drift: one finding per kind and owner (orphans: per next hop),
    or one per kind when a node has more owners in a kind than the evidence limit (a node that
    lost every route)."""
    actions = drift.get("actions") or {}
    targets = {r["dst"]: r for key in ("add", "replace") for r in actions.get(key) or ()}
    by_kind = {}
    for item in drift.get("drift") or ():
        key = item.get("owner") or (item.get("have") or {}).get("gateway")
        by_kind.setdefault(item["kind"], {}).setdefault(key, []).append(item)
    out = []
    l2 = {}
    for kind, groups in sorted(by_kind.items()):
        if kind in _PATH_L2_KINDS:
            for owner, batch in groups.items():
                l2.setdefault(owner, []).extend(batch)
            continue
        batches = list(groups.values())
        if len(batches) > EVIDENCE_LIMIT:
            batches = [[item for batch in batches for item in batch]]
        out += [_route_finding(host, kind, batch, fleet, targets) for batch in batches]
    out += [_l2_finding(host, owner, items) for owner, items in sorted(l2.items(), key=lambda i: str(i[0]))]
    return out


_PATH_L2_KINDS = ("neighbour_missing", "neighbour_wrong", "fdb_missing", "fdb_wrong")


def _l2_finding(host, owner, items):
    """VX001: a VXLAN peer's permanent neighbour or FDB entry on vxlan.calico missing or wrong."""
    want = items[0]["want"]
    kinds = sorted({i["kind"] for i in items})
    what = []
    for item in items:
        have = item.get("have") or {}
        if item["kind"] == "neighbour_missing":
            what.append(f"no neighbour entry for {owner}'s VTEP {want['vtep']}")
        elif item["kind"] == "neighbour_wrong":
            what.append(f"the neighbour entry for {want['vtep']} is {have.get('lladdr')} ({have.get('state')}), "
                        f"not {want['lladdr']} permanent")
        elif item["kind"] == "fdb_missing":
            what.append(f"no FDB entry for {want['lladdr']} (dst {want['dst']})")
        else:
            what.append(f"the FDB entry for {want['lladdr']} points at {', '.join(have.get('dst') or [])}, "
                        f"not {want['dst']}")
    commands = (f"`ip neigh replace {want['vtep']} lladdr {want['lladdr']} dev vxlan.calico nud permanent`; "
                f"`bridge fdb replace {want['lladdr']} dev vxlan.calico dst {want['dst']} self permanent`")
    return _catalogue.finding(
        "VX001", "critical", host,
        f"{host} cannot reach {owner}'s pods over VXLAN: {'; '.join(what)}",
        {"kind": "l2", "kinds": kinds, "owner": owner, "vtep": want["vtep"], "vtep_mac": want["lladdr"],
         "node_ip": want["dst"], "have": limited([{"kind": i["kind"], **(i.get("have") or {})} for i in items])},
        f"Felix programs one permanent neighbour and one FDB entry per remote VTEP; something removed or changed "
        f"them on {host} (a script flushing neighbours, NetworkManager, a VTEP MAC that changed without Felix "
        f"noticing). Restore them: {commands} (netdoctor.calico.calico_routes does it), then look at Felix's log "
        "for why it has not.", peer=owner)


def _digest_differs(host, fleet):
    sent = fleet.facts[host]["route_digest"]
    return _catalogue.finding(
        "RT002", "warning", host,
        f"{host}'s block routes differ from the expected map ({sent.get('count')} route(s) in its digest); "
        "which ones was not checked on the node",
        {"kind": "digest", "route_digest": sent, "expected_mode": fleet.mode},
        "Run the audit's route check on this node (the audit role does it for every node whose digest differs: "
        "netdoctor.calico.calico_routes in check mode with the cluster's expected map) to name each route.")


def _route_finding(host, kind, items, fleet, targets):
    fid, severity = _ROUTE_RULES[kind]
    owners = sorted({i["owner"] for i in items if i.get("owner")})
    owner = owners[0] if len(owners) == 1 else None
    haves = [{"dst": i["dst"], **i["have"]} for i in items if i.get("have")]
    wants = [targets.get(i["dst"]) or {"dst": i["dst"], **i["want"]} for i in items if i.get("want")]
    next_hops = sorted({r["gateway"] for r in haves if r.get("gateway")})
    named = {gw: fleet.describe(gw, host) for gw in next_hops if fleet.describe(gw, host)}
    evidence = {"kind": kind, "count": len(items), "routes": limited(route_text(r) for r in haves),
                "expected": limited(route_text({**r, "protocol": None}) for r in wants)}
    if owner:
        node = fleet.nodes.get(owner) or {}
        evidence.update(owner=owner, owner_ip=node.get("ip"), owner_ip_source=node.get("ip_source"))
    elif owners:
        evidence["owners"] = limited(owners)
    if named:
        evidence["next_hops"] = named
    blocks = _plural(len(items), "block") + (f" of {owner}" if owner else "")
    first = items[0]
    if kind in ("wrong_next_hop", "wrong_device"):
        have, want = first["have"], first["want"]
        gw = have.get("gateway")
        if kind == "wrong_next_hop":
            what = f"via {gw}{f' ({named[gw]})' if gw in named else ''} instead of {want['gateway']}"
        else:
            what = (f"via {gw} dev {have.get('dev')}{'' if have.get('onlink') else ' without onlink'} instead of "
                    f"dev {want['dev']} onlink")
        summary = f"{host} routes {blocks} {what}"
        remedy = (f"Fix the cause first: {owner or 'each owner'}'s registered IP must be the address that reaches it "
                  "(AD001, SRC001) and NetworkManager must leave Calico devices alone (NM001). Then replace the "
                  f"route{'' if len(items) == 1 else 's'} on {host} with the protocol of its Calico routes "
                  "(netdoctor.calico.calico_routes does it; its check mode shows the plan): "
                  f"{_commands('replace', wants)}. If BIRD/Felix puts the old route back, the datastore still holds "
                  "the wrong node IP.")
    elif kind == "shadow":
        summary = f"{host} has {_plural(len(items), 'non-Calico route')} inside {blocks}: {route_text(haves[0])}"
        evidence["blocks"] = limited(sorted({i["block"] for i in items}))
        remedy = (f"A more specific route overrides part of {first['block']} on {host}. Remove it if it is not "
                  f"intended ({_commands('del', haves)}) and fix whatever adds it (NetworkManager, a static route "
                  "file); netdoctor never deletes routes Calico does not own.")
    elif kind == "missing":
        summary = f"{host} has no route to {blocks}"
        remedy = (f"BIRD (IPIP/BGP) or Felix (VXLAN) should program these routes: check the BGP session from {host} "
                  f"to {owner or 'the owners'} (BGP001) and calico-node's logs there. To restore traffic now: "
                  f"{_commands('add', wants)} (netdoctor.calico.calico_routes adds them).")
    else:
        summary = (f"{host} keeps {_plural(len(items), 'Calico route')} to blocks nobody owns, via "
                   f"{', '.join(next_hops[:3]) or 'no next hop'}{' ...' if len(next_hops) > 3 else ''}")
        remedy = ("These are left over from a removed node or a moved block (BIRD runs with persist, so its routes "
                  f"outlive it). Delete them on {host}: {_commands('del', haves)} (netdoctor.calico.calico_routes "
                  "deletes them when every node answered the audit), and decommission stale Node resources "
                  "(`calicoctl delete node <name>`).")
    return _catalogue.finding(fid, severity, host, summary, evidence, remedy, peer=owner)


def _lookup_text(peer_ip, lookup):
    via = f" via {lookup['gateway']}" if lookup.get("gateway") else ""
    return f"{peer_ip}{via} dev {lookup.get('dev')} src {lookup.get('prefsrc')}"


def _source_findings(host, fleet):
    """SRC001: the kernel's route towards a peer's Calico IP leaves with another source address
    (IPIP packets from it are dropped by the peer: only registered node IPs are allowed) or by
    another interface than the one holding this node's Calico IP."""
    fact, node = fleet.facts[host], fleet.nodes[host]
    own, lookups = node["ip"], fact.get("peer_routes") or {}
    if not own or not lookups:
        return []
    mode = (fact.get("calico") or {}).get("mode") or fleet.mode
    own_dev = fleet.calico_interface(host)
    groups = {}
    for peer_ip, lookup in sorted(lookups.items()):
        if not isinstance(lookup, dict) or lookup.get("error") or peer_ip == own:
            continue
        src, dev = lookup.get("prefsrc"), lookup.get("dev")
        if src and src != own:
            problem = "source"
        elif own_dev and dev and dev != own_dev:
            problem = "interface"
        else:
            continue
        groups.setdefault((problem, src, dev), []).append(peer_ip)
    out = []
    for (problem, src, dev), peer_ips in sorted(groups.items(), key=str):
        peers = {ip: fleet.by_ip.get(ip) for ip in peer_ips}
        peer = peers[peer_ips[0]] if len(peer_ips) == 1 else None
        if len(peer_ips) > 1:
            towards = f"{len(peer_ips)} peers"
        else:
            towards = f"{peer} ({peer_ips[0]})" if peer else peer_ips[0]
        first = peer_ips[0]
        if problem == "source":
            severity = "critical" if mode == "ipip" else "warning"
            summary = f"{host} reaches {towards} from {src} on {dev}, not from its Calico IP {own}"
            via = f" via {lookups[first]['gateway']}" if lookups[first].get("gateway") else ""
            remedy = (f"Make {host}'s routes towards the other nodes carry src {own}: "
                      f"`ip route replace {first}/32{via} dev {dev} src {own}`, or the same `src` on the route that "
                      f"`ip route get {first}` selects, persisted in the distro's network config (leave the default "
                      "route alone unless you mean to move it). Alternatives: an IP_AUTODETECTION_METHOD that makes "
                      f"both sides agree (AD001), adding {src} to FelixConfiguration externalNodesList, or VXLAN, "
                      f"which pins the outer source. Check: `ip route get {first}` shows src {own}.")
        else:
            severity = "warning"
            summary = f"{host} reaches {towards} by {dev}, not by {own_dev} which holds its Calico IP {own}"
            remedy = (f"Replies from {towards} come back to {own} on {own_dev} while {host} sends by {dev}: with "
                      f"strict rp_filter on either side they are dropped. Route the peers' network via {own_dev} "
                      f"(`ip route replace <peer network> via <gateway on {own_dev}> dev {own_dev} src {own}`, "
                      "persisted in the network config), or set rp_filter to loose (2) on both nodes (SYS001).")
        out.append(_catalogue.finding(
            "SRC001", severity, host, summary,
            {"calico_ip": own, "calico_ip_source": node["ip_source"], "calico_interface": own_dev, "mode": mode,
             "source": src, "device": dev,
             "route_get": limited(_lookup_text(ip, lookups[ip]) for ip in peer_ips),
             "peers": dict(list(peers.items())[:EVIDENCE_LIMIT]), "count": len(peer_ips)},
            remedy, peer=peer,
        ))
    return out


def _mesh_peer_findings(host, fleet):
    """BGP001 (fleet part): a node-to-node mesh peer at an address that is no node's Calico IP.
    Sessions that are not Established are the node-local rule's."""
    out = []
    for peer in (fleet.facts[host].get("bird") or {}).get("peers") or ():
        address = peer.get("address")
        mesh = "mesh" in (peer.get("type") or "") or (peer.get("name") or "").startswith("Mesh_")
        if not mesh or not address or address in fleet.by_ip:
            continue
        held = fleet.holder.get(address)
        holder = held[0] if held and held[0] != host else None
        # With a node missing from the map, an unknown address may be that node's.
        if not (fleet.expected["complete"] or holder):
            continue
        state = " ".join(str(v) for v in (peer.get("state"), peer.get("info")) if v)
        known = f" ({fleet.describe(address, host)}, registered as {fleet.nodes[holder]['ip']})" if holder else ""
        out.append(_catalogue.finding(
            "BGP001", "warning", host,
            f"{host} has a mesh BGP peer {address}{known} that is no node's Calico IP ({state})",
            {"peer": {k: peer.get(k) for k in ("name", "address", "type", "state", "since", "info")},
             "peer_address_holder": fleet.describe(address, host),
             "node_ips": limited(f"{h} {n['ip']}" for h, n in sorted(fleet.nodes.items()) if n["ip"])},
            f"The mesh is built from the registered node IPs, so {address} was registered by a node once: "
            + (f"{holder}'s calico-node now registers another address (AD001/AD002); pin one autodetection "
               "method for the fleet." if holder else
               "decommission the stale Node resource (`calicoctl get nodes -o wide`, `calicoctl delete node "
               "<name>`)."),
            peer=holder,
        ))
    return out


def recommendation(fleet_or_facts, targets):
    """One IP_AUTODETECTION_METHOD for the whole fleet, replayed on every node's links
    (``_autodetect.recommend_method``); ``targets``: host -> the address it must pick."""

    nodes = []
    for host, target in sorted(targets.items()):
        fact = fleet_or_facts[host]
        auto = fact.get("autodetection") or {}
        nodes.append({"host": host, "snapshot": _autodetect.snapshot_from_fact_links(fact.get("links")),
                      "intended": target, "calico_version": auto.get("calico_version")})
    rec = _autodetect.recommend_method(nodes)
    if rec.get("method"):
        rec["operator"] = _autodetect.operator_form(rec["method"])
    return rec


def _autodetect_findings(fleet, local):
    """AD001: the address calico-node registered is not the node's intended IP, or (nothing
    registered known) its method picks another one. AD002: the method now picks another address
    than the registered one, so the node IP moves at the next detection. What the node-local rule
    already reported is kept; every AD finding, node-local or not, gets one method for the fleet."""
    out, targets = [], {}
    for host in sorted(fleet.facts):
        fact, node = fleet.facts[host], fleet.nodes[host]
        if not calico_running(fact):
            continue
        auto = fact.get("autodetection") or {}
        intended = fleet.intended.get(host) or address_text(auto.get("intended"))
        registered = node["ip"] if node["ip_source"] in REGISTERED_SOURCES else None
        if intended or registered:
            targets[host] = intended or registered
        ip_env = calico_node_env(fact).get("IP")
        if address_text(ip_env) or ip_env == "none":
            continue  # IP=<address> or IP=none: calico-node does not autodetect IPv4
        method = auto.get("method_in_use") or ""
        result = next((r for r in auto.get("results") or ()
                       if (r.get("method") or "") == method and r.get("version", 4) == 4), None) or {}
        predicted = address_text(result.get("address"))
        method = method or "first-found"
        picks = f"{method} on {host} picks {result.get('address')} ({result.get('interface')})"
        if registered and intended and registered != intended:
            fid, severity = "AD001", "critical"
            summary = f"{host} is registered with {registered}, not its intended IP {intended}"
        elif predicted and registered and predicted != registered:
            # IP=autodetect re-detects every 60 s: the move is imminent.
            fid, severity = "AD002", "critical" if ip_env == "autodetect" else "warning"
            summary = f"{picks}, but calico-node registered {registered}: the node IP moves at the next detection"
        elif predicted and intended and predicted != intended:
            fid, severity = "AD001", "critical"
            summary = f"{picks}, not its intended IP {intended}"
        else:
            continue
        evidence = {"method_in_use": method, "ip_env": ip_env, "predicted": result.get("address"),
                    "predicted_interface": result.get("interface"), "registered": registered,
                    "registered_source": node["ip_source"] if registered else None, "intended": intended,
                    "candidates": limited(f"{c.get('interface')} {c.get('address')}: "
                                          f"{'taken' if c.get('taken') else c.get('reason')}"
                                          for c in result.get("candidates") or ())}
        out.append(_catalogue.finding(fid, severity, host, summary, evidence, ""))
    pending = out + [f for f in local if f.get("id") in ("AD001", "AD002")]
    if pending:
        rec = recommendation(fleet.facts, targets)
        for finding in pending:
            _recommend(finding, rec, len(targets))
    return out


def _recommend(finding, rec, count):
    """Attach the fleet-wide method to an autodetection finding (in place); a node-local remedy
    (a method checked on that node only) moves to the evidence."""
    per_host = next((e for e in rec.get("evidence") or () if e.get("host") == finding.get("host")), None)
    evidence = {**(finding.get("evidence") or {}), "recommended_method": rec.get("method"),
                "recommendation": {"reason": rec.get("reason"), "on_this_node": per_host, "tried": rec.get("tried")}}
    method = rec.get("method")
    if method:
        if finding.get("remedy"):
            evidence["node_local_remedy"] = finding["remedy"]
        finding["remedy"] = (
            f"Set one method for the whole fleet: IP_AUTODETECTION_METHOD={method} (replayed on all {count} nodes, it "
            "picks each node's intended IP) - `kubectl set env daemonset/calico-node -n kube-system "
            f"IP_AUTODETECTION_METHOD={method}`, or with the operator Installation.spec.calicoNetwork."
            f"nodeAddressAutodetectionV4: {rec['operator']}. calico-node then re-registers the node IP; rerun the "
            "audit to check the routes (RT001) and BGP peers (BGP001).")
    else:
        fix = f"No single IP_AUTODETECTION_METHOD fits the fleet: {rec.get('reason')}."
        finding["remedy"] = f"{finding['remedy']} {fix}" if finding.get("remedy") else fix
    finding["evidence"] = evidence
