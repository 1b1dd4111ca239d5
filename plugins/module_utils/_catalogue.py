# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The incident catalogue (DESIGN §1) and the finding half of the contract: every finding id with
its title, seed, scope and fix, the constructor that checks a finding against it, and the severity
policy (ranks, ``fail_on``). Both rooms build findings with it (node rules and fleet rules);
docs/findings.md is checked against the table; ``_contract.Finding`` is the shape."""

from __future__ import annotations

# One table for every finding id: docs/findings.md is generated from it. "scope" says where the
# rule runs: node (node_findings, here), fleet (_fleet) or both.
CATALOGUE = {
    "NM001": {
        "title": "NetworkManager (or systemd-networkd) manages Calico's devices",
        "seed": "000", "scope": "node",
        "fix": "Drop-in /etc/NetworkManager/conf.d/calico.conf with `[keyfile] unmanaged-devices+=interface-name:cali*;"
               "interface-name:tunl*;interface-name:vxlan.calico;interface-name:vxlan-v6.calico;interface-name:"
               "wireguard.cali;interface-name:wg-v6.cali`, then `nmcli general reload conf` (reload, never restart "
               "over SSH) and check the devices show `unmanaged`.",
    },
    "AD001": {
        "title": "IP autodetection picks the wrong address (or none, or the method is invalid)",
        "seed": "002, 004", "scope": "both",
        "fix": "One IP_AUTODETECTION_METHOD that picks the intended address on every node (interface=, "
               "skip-interface=, cidr=, can-reach=, kubernetes-internal-ip), replayed on every node, set on the "
               "calico-node DaemonSet env or Installation.spec.calicoNetwork.nodeAddressAutodetectionV4.",
    },
    "AD002": {
        "title": "Autodetection now picks another address than the one calico-node registered",
        "seed": "004", "scope": "both",
        "fix": "As AD001, before the next detection (calico-node restart, or within 60 s with IP=autodetect) "
               "moves the node IP.",
    },
    "RT001": {
        "title": "A remote block route has the wrong next hop",
        "seed": "001 case 1", "scope": "both",
        "fix": "Fix the cause first (AD001, NM001), then replace the route (same protocol) or delete it and let "
               "BIRD/Felix re-add the right one; verify with the fleet audit.",
    },
    "RT002": {
        "title": "A remote block route is missing, orphaned, or a block is claimed twice",
        "seed": "001", "scope": "fleet",
        "fix": "Add the missing route / remove the orphan (only proto bird or 80 routes); decommission stale nodes.",
    },
    "SRC001": {
        "title": "A multi-homed node sends to its peers from a source that is not its Calico IP",
        "seed": "001 case 2", "scope": "fleet",
        "fix": "Routes to the peer networks via the Calico interface with `src <Calico IP>`, or a method that makes "
               "both sides agree, or externalNodesList, or VXLAN.",
    },
    "SYS001": {
        "title": "Kernel prerequisites: ip_forward, rp_filter, proxy_arp on cali*, tunnel MTU",
        "seed": None, "scope": "node",
        "fix": "ansible.posix.sysctl for the sysctls (persisted in /etc/sysctl.d); the tunnel MTU at most the NIC "
               "MTU minus 20 (IPIP) / 50 (VXLAN) / 60 (WireGuard) via FelixConfiguration.",
    },
    "HOST001": {
        "title": "The node cannot resolve its own hostname, or its node names disagree",
        "seed": "002", "scope": "node",
        "fix": "Add `<node IP> <hostname>` to /etc/hosts; make the CNI config's nodename, /var/lib/calico/nodename "
               "and calico-node's NODENAME the same name.",
    },
    "BGP001": {
        "title": "BGP sessions not Established (the node may still report Ready)",
        "seed": "001 case 2", "scope": "both",
        "fix": "Check TCP 179 between the peers (a host firewall that drops it: the repair with "
               "repair_bgp_firewall=true) and that each peers with the other's registered IP; the usual cause is "
               "AD001 or SRC001.",
    },
    "PATH001": {
        "title": "Pod-to-pod path broken at a named step of the 8-step trace",
        "seed": "003", "scope": "fleet",
        "fix": "The trace names the first failing step and its fix.",
    },
    "DUP001": {
        "title": "Two nodes registered with the same Calico IP, tunnel address or node name",
        "seed": None, "scope": "fleet",
        "fix": "Give each node its own address (AD001, or release the duplicate tunnel address from IPAM).",
    },
    "CL001": {
        "title": "A node runs another Calico mode than its cluster, or owns blocks outside the cluster's pools",
        "seed": None, "scope": "fleet",
        "fix": "One encapsulation per pool across the cluster; hosts of another cluster get their own "
               "calico_cluster host variable, so each cluster is audited on its own.",
    },
    "MTU001": {
        "title": "The tunnel MTU differs across nodes",
        "seed": None, "scope": "fleet",
        "fix": "One tunnel MTU for the fleet (FelixConfiguration ipipMTU / vxlanMTU).",
    },
    "NOCAL001": {
        "title": "Calico is not running on the host",
        "seed": None, "scope": "node",
        "fix": "Nothing if the host is not meant to run Calico; before an install, the preflight role (harden).",
    },
    "UNREACH": {
        "title": "A host gave no facts, so it was not audited",
        "seed": None, "scope": "fleet",
        "fix": "Make the host reachable (SSH, Python, become) and rerun the audit.",
    },
    # DS*: the fleet audit's datastore rules (_datastore), when it is given calico_datastore_info's view.
    "DS000": {
        "title": "The datastore view is missing: Calico's datastore could not be read",
        "seed": None, "scope": "fleet",
        "fix": "Fix what the message names (Calico's CRDs not served, credentials, TLS CA, timeout or reachability "
               "from the controller, a missing etcd_ca/etcd_cert/etcd_key/kubeconfig file) and rerun the audit.",
    },
    "DS001": {
        "title": "The datastore registers a node with another address, tunnel address or VTEP MAC than it uses",
        "seed": "001 case 1", "scope": "fleet",
        "fix": "Make both agree: restart calico-node on the node so it registers again, or fix its autodetection "
               "method (AD001/AD002) when the datastore holds the right address.",
    },
    "DS002": {
        "title": "A block the datastore gives a node is not announced by it, or a node announces a block it does "
                 "not own",
        "seed": "001", "scope": "fleet",
        "fix": "Drop the stale blackhole on the node that announces a block it does not own (restart calico-node, "
               "or `ip route del blackhole <block>`); restart calico-node where an affine block is missing.",
    },
    "DS003": {
        "title": "A stale Node in the datastore: no host of the fleet and no sign of life",
        "seed": None, "scope": "fleet",
        "fix": "Decommission it: `calicoctl delete node <name>` (etcd) or `kubectl delete node <name>` (Kubernetes "
               "datastore); the mesh stops peering with it (BGP001).",
    },
    # Host configuration, CNI files and identities (issue 15): node rules in _findings_host over the fact's
    # host_config (_hostconfig), fleet rules in plugin_utils/_identity.
    "DUP002": {
        "title": "Nodes share a machine id, /var/lib/calico/nodename, VTEP MAC or hostname (cloned machines)",
        "seed": None, "scope": "fleet",
        "fix": "Give each clone its own identity: systemd-machine-id-setup after removing /etc/machine-id, remove the "
               "copied /var/lib/calico/nodename, a new VTEP MAC (delete vxlan.calico and its annotation), a unique "
               "hostname; restart calico-node there.",
    },
    "NET001": {
        "title": "A host network manager deletes or rewrites Calico's routes, rules or MACs (systemd-networkd, udev "
                 ".link, netplan, nm-cloud-setup)",
        "seed": None, "scope": "node",
        "fix": "networkd.conf drop-in ManageForeignRoutes=no / ManageForeignRoutingPolicyRules=no; a first .link with "
               "MACAddressPolicy=none for Calico's devices; fix netplan's YAML; disable nm-cloud-setup and remove its "
               "rules (netdoctor.calico.calico_host_managers).",
    },
    "IPT001": {
        "title": "Calico's rules in two iptables/nftables dataplanes, kube-proxy in another one, or foreign rules "
                 "in the tables Felix uses",
        "seed": None, "scope": "node",
        "fix": "Remove Calico's chains from the backend Felix no longer programs (or reboot); one backend for Felix "
               "and kube-proxy (FelixConfiguration iptablesBackend / nftablesMode); foreign nft rules in their own "
               "table.",
    },
    "CNI001": {
        "title": "CNI files: a foreign config sorts before Calico's, another CNI's leftovers, the CNI token expired, "
                 "the plugin binaries missing",
        "seed": None, "scope": "node",
        "fix": "Remove the foreign or leftover config; restart calico-node (it renews the token and install-cni "
               "copies the binaries) and check the runtime's CNI bin dir.",
    },
    "REG001": {
        "title": "A node is registered as /32 while its interface has a subnet",
        "seed": None, "scope": "node",
        "fix": "Register the interface's prefix (IP=<address>/<prefix>, or autodetection) and restart calico-node.",
    },
    "POOL001": {
        "title": "An IP pool overlaps a host network, a bridge or the service CIDR",
        "seed": None, "scope": "node",
        "fix": "Move pods to a new non-overlapping IPPool (disable the old one, recreate the pods), or move the "
               "bridge out of the pool.",
    },
    "BGP002": {
        "title": "BGP configuration: router id clash, a session that imports nothing, a live speaker outside "
                 "the cluster",
        "seed": None, "scope": "fleet",
        "fix": "One router id per node (CALICO_ROUTER_ID); check the peer's export (bird config, BGPFilter); add the "
               "foreign speaker to the inventory or remove its Node from this datastore.",
    },
    # The data plane beyond routes (issue 14): node rules in _findings_dataplane over the fact's dataplane
    # part (_dataplane); the firewall walk is _firewall's, generalised from BGP to every overlay flow.
    "FW001": {
        "title": "The host firewall drops the overlay (VXLAN, IPIP, WireGuard) between Calico nodes",
        "seed": None, "scope": "node",
        "fix": "Accept the overlay from the fleet's Calico IPs in front of the rules that drop it (the repair with "
               "repair_overlay_firewall=true, calico_firewall), or firewall-cmd rich rules under firewalld; persist "
               "it in the firewall's configuration.",
    },
    "OFF001": {
        "title": "VXLAN checksum offload on vxlan.calico where it breaks TCP or throughput (pods ping, TCP stalls)",
        "seed": None, "scope": "node",
        "fix": "`ethtool -K vxlan.calico tx-checksum-ip-generic off` now (repair_vxlan_offload=true); lasting: "
               "FelixConfiguration featureDetectOverride ChecksumOffloadBroken=true.",
    },
    "CT001": {
        "title": "The conntrack table is (nearly) full, or the kernel dropped for want of an entry",
        "seed": None, "scope": "node",
        "fix": "Raise net.netfilter.nf_conntrack_max (persisted in /etc/sysctl.d, and kube-proxy's conntrack "
               "settings) and find what opens the connections.",
    },
    "FLX001": {
        "title": "Felix is not live or not ready, or its health endpoint does not answer while calico-node runs",
        "seed": None, "scope": "node",
        "fix": "Read Felix's reporters (localhost:9099/readiness) and calico-node's log: usually the datastore or API "
               "server is unreachable, RBAC, or config churn.",
    },
    "FLX002": {
        "title": "Felix has not programmed the node: workloads without their chains, its sets missing",
        "seed": None, "scope": "node",
        "fix": "Check Felix's health and log; restart calico-node on the node so it programs it again.",
    },
    "BPF001": {
        "title": "eBPF data plane configured without its prerequisites, or configured but fallen back",
        "seed": None, "scope": "node",
        "fix": "Kernel >= 5.3 with BTF, bpffs at /sys/fs/bpf, cgroup v2; kube-proxy back while Felix is not in BPF "
               "mode.",
    },
    "WG001": {
        "title": "WireGuard: device missing, wrong MTU, peers that never shake hands, keys that do not match",
        "seed": None, "scope": "both",
        "fix": "Load WireGuard, size wireguardMTU to the NIC minus 60 (80 for IPv6), let UDP 51820/51821 through, "
               "restart calico-node where a key is stale.",
    },
    "MTU002": {
        "title": "/var/lib/calico/mtu (the pods' MTU) does not fit the tunnel, or auto-MTU reads the wrong interface",
        "seed": None, "scope": "node",
        "fix": "FelixConfiguration mtuIfacePattern anchored to the NIC that carries the node IP, or an explicit MTU; "
               "re-create the pods.",
    },
    # Issue 12: what the data plane IS beside what it should be (node rules in _findings_path over the fact's
    # path part, VX001 from the route drift, PROBE001 from the probe matrix in _fleet).
    "WL001": {
        "title": "A local workload lost its /32 route (or its veth is down): its pod is unreachable",
        "seed": "003", "scope": "node",
        "fix": "`ip route replace <pod IP>/32 dev <caliX> scope link` as the CNI plugin and Felix program it "
               "(netdoctor.calico.calico_routes restores it from the pod's permanent neighbour entry); find what "
               "deleted it.",
    },
    "VX001": {
        "title": "A VXLAN peer's permanent neighbour or FDB entry on vxlan.calico is missing or wrong",
        "seed": None, "scope": "fleet",
        "fix": "`ip neigh replace <VTEP> lladdr <VTEP MAC> dev vxlan.calico nud permanent` and `bridge fdb replace "
               "<VTEP MAC> dev vxlan.calico dst <node IP> self permanent` (netdoctor.calico.calico_routes).",
    },
    "PBR001": {
        "title": "A policy-routing rule sends a Calico block or a peer through another table than main",
        "seed": None, "scope": "node",
        "fix": "Remove the rule (`ip rule del ...`) or give it a narrower selector; make the table route Calico's "
               "destinations as main does. The repair does not touch rules Calico does not own.",
    },
    "MTU003": {
        "title": "The pods' MTU plus the encapsulation overhead exceeds the underlay MTU: large packets are dropped",
        "seed": None, "scope": "node",
        "fix": "Restore the NIC's MTU, or lower the pods' MTU (FelixConfiguration mtu settings / veth_mtu) to the "
               "underlay MTU minus the overhead and re-create the pods.",
    },
    "BIRD001": {
        "title": "BIRD is not running on a node that needs it (no process, a dead control socket)",
        "seed": None, "scope": "node",
        "fix": "Restart calico-node on the node (BIRD runs inside it) and read its log (confd templates, "
               "bird.cfg errors); its peers' BGP sessions come back with it.",
    },
    "PROBE001": {
        "title": "Packets between two nodes are lost and no finding of the audit explains it",
        "seed": "003", "scope": "fleet",
        "fix": "Trace a pod pair between the two nodes (playbooks/trace.yml) to name the failing step; look at "
               "firewalls and the network between them.",
    },
}


# ---------------------------------------------------------------------------------------------
# Findings and the severity policy

SEVERITIES = ("critical", "warning", "info")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
FAIL_ON = (*SEVERITIES, "never")
EVIDENCE_LIMIT = 10  # list items quoted per finding: one broken node must not blow up a report


def limited(items):
    """At most EVIDENCE_LIMIT items, and how many more there were."""
    items = list(items)
    if len(items) <= EVIDENCE_LIMIT:
        return items
    return [*items[:EVIDENCE_LIMIT], f"... {len(items) - EVIDENCE_LIMIT} more"]


def finding(fid, severity, host, summary, evidence, remedy, *, peer=None):  # noqa: PLR0917 - the finding's fields, in order
    """A finding dict; the id must be in CATALOGUE and the severity one of SEVERITIES."""
    if fid not in CATALOGUE:
        raise ValueError(f"unknown finding id {fid!r}: add it to CATALOGUE first")
    if severity not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {severity!r} (one of {', '.join(SEVERITIES)})")
    return {"id": fid, "severity": severity, "host": host, "peer": peer, "summary": summary,
            "evidence": evidence, "remedy": remedy}


def sort_findings(findings):
    """Worst first, then by id, host and peer."""
    return sorted(findings, key=lambda f: (SEVERITY_RANK.get(f.get("severity"), len(SEVERITIES)), f.get("id") or "",
                                           str(f.get("host") or ""), str(f.get("peer") or "")))


def worst_severity(findings):
    """The most severe severity among findings, or None when there are none."""
    ranks = [SEVERITY_RANK[f["severity"]] for f in findings if f.get("severity") in SEVERITY_RANK]
    return SEVERITIES[min(ranks)] if ranks else None


def severity_rank(severity):
    """0 for critical ... 2 for info; unknown severities sort last."""
    return SEVERITY_RANK.get(severity, len(SEVERITIES))


def at_or_above(severity, threshold):
    """Whether a finding of ``severity`` reaches the ``fail_on`` threshold."""
    if threshold == "never":
        return False
    if threshold not in SEVERITY_RANK:
        raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}, not {threshold!r}")
    return severity_rank(severity) <= SEVERITY_RANK[threshold]


def failing(findings, fail_on):
    """The findings that make an audit fail under ``fail_on``."""
    return [f for f in findings if at_or_above(f.get("severity"), fail_on)]


def as_consequence(finding, cause, why):
    """``finding`` folded under ``cause``: info, naming the cause; its own severity is kept as
    ``severity_alone`` (one fault, one finding)."""
    return {**finding, "severity": "info",
            "summary": f"{finding['summary']} (a consequence of {cause['id']} on {cause['host']})",
            "evidence": {**(finding.get("evidence") or {}), "severity_alone": finding.get("severity"),
                         "caused_by": {"id": cause["id"], "host": cause["host"], "peer": cause.get("peer"),
                                       "summary": cause["summary"], "why": why}},
            "remedy": f"Fix {cause['id']} on {cause['host']} first ({why}); this follows from it. "
                      f"{finding.get('remedy') or ''}".strip()}


def with_consequences(cause, consequences):
    """``cause`` carrying the consequences folded under it (added to any it carried), at the worst
    severity of all of them, so ``fail_on`` gives the same verdict as before the folding."""
    evidence = cause.get("evidence") or {}
    lines = [f"{c['id']} {c['host']}{' -> ' + c['peer'] if c.get('peer') else ''}: {c['summary']}"
             for c in consequences]
    return {**cause, "severity": worst_severity([cause, *consequences]),
            "evidence": {**evidence, "consequence_count": evidence.get("consequence_count", 0) + len(consequences),
                         "consequences": limited([*(evidence.get("consequences") or []), *lines])}}
