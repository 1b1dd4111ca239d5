#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_node_facts
short_description: Gather what a Calico engineer reads off a node, with a replay of Calico's IP autodetection
version_added: 0.1.0
description:
  - Reads the node's links, addresses, routes, neighbours and rules over netlink (pyroute2), classifies the routes by
    who owns them (BIRD, Felix, workload, other), and infers Calico's networking mode, tunnel device, local blocks and
    workloads.
  - Reads the sysctls Calico depends on, NetworkManager's B(effective) C(unmanaged-devices) (all drop-ins merged in
    NetworkManager's order, C(+=)/C(-=) honoured), systemd-networkd C(.network) files that match Calico devices, BIRD's
    BGP peers through its control socket, the node name files, the CNI config and calico-node's environment.
  - Replays Calico's IP autodetection exactly (reverse ifindex order, unanchored regexes, the exclusion list of the
    given Calico version, no link-state filter) for the method calico-node uses and for any methods given, listing
    every candidate interface and why it was taken or skipped.
  - Reads the host configuration that breaks Calico nodes - systemd-networkd's C(ManageForeignRoutes), udev C(.link)
    MAC policies, netplan, nm-cloud-setup, the iptables backends, the CNI directory, binaries and token - keeping
    counts and hashes, never rules, tokens or the machine id.
  - Runs the node-local rules of the incident catalogue and returns their findings.
  - Returns C(changed=false) and one fact, C(ansible_facts.calico_node).
author:
  - netdoctor.calico contributors (@netdoctor)
requirements:
  - pyroute2 >= 0.7.2 on the managed node (the distribution's python3-pyroute2 is enough)
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.facts
  - netdoctor.calico._attributes.actiongroup_calico
options:
  autodetection_methods:
    description:
      - Extra C(IP_AUTODETECTION_METHOD) values to replay besides the one calico-node uses on this node (first-found
        when it is not set).
      - Each is validated the way calico-node validates it; an invalid one is reported in its result, not a failure.
    type: list
    elements: str
    default: []
  calico_version:
    description:
      - Calico release whose autodetection the replay follows, to the patch (V(3.24.5) or V(v3.24.5); V(3.24) means
        3.24.0) - the default interface exclusion list (anchored from v3.23.4/v3.24.3, VXLAN/WireGuard devices from
        v3.23.5/v3.24.4, C(nodelocaldns) from v3.24.6, C(podman) and C(br-) from v3.25), how addresses are read (an
        address with a peer is a /32 from v3.32) and the Go regexp syntax its build accepts. See docs/autodetection.md.
    type: str
    default: "3.30"
  kubernetes_internal_ip:
    description:
      - The node's Kubernetes InternalIP, for replaying the C(kubernetes-internal-ip) method.
    type: str
  intended_ip:
    description:
      - The address this node should be registered with (for example the inventory address). Used by the node-local
        autodetection rule; the fleet audit compares it across nodes.
    type: str
  peer_ips:
    description:
      - Calico IPs of the other nodes. For each the kernel's route lookup is recorded in
        RV(ansible_facts.calico_node.peer_routes) (outgoing device and source address), which the fleet audit needs
        for the source-address check.
    type: list
    elements: str
    default: []
  full_routes:
    description:
      - Return every remote block route. By default they are summarised (counts by device and owner), which keeps the
        fact small on nodes of large clusters; RV(ansible_facts.calico_node.route_digest) lets the controller check
        them all the same.
    type: bool
    default: false
  probe_targets:
    description:
      - The peers this node probes (the probe matrix, docs/audit.md) - at most k of them, chosen on the controller
        (the audit's C(netdoctor.calico.probe_targets) filter). Empty (the default) probes nothing.
      - From up to O(probe_options.max_pods) local pods (their network namespaces), else the tunnel address, else
        the node; to C(overlay) when given, else the peer's VTEP address this node's VXLAN state resolves C(ip) to,
        else C(ip).
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: The peer's inventory name (the matrix's column).
        type: str
        required: true
      ip:
        description: The peer's node IP.
        type: str
        required: true
      overlay:
        description: An address of the peer inside the pools (its tunnel address or a pod) to probe instead.
        type: str
  probe_options:
    description:
      - Bounds of the probes; an option left out takes its default.
    type: dict
    default: {}
    suboptions:
      count:
        description: ICMP echoes per peer and source (default 3).
        type: int
      interval:
        description: Seconds between the echoes (default 0.05).
        type: float
      timeout:
        description: Seconds to wait after the last echo (default 1).
        type: float
      deadline:
        description: Seconds for all the probes of the node together (default 3).
        type: float
      tcp_port:
        description: The port of the TCP connect (default 10250); a refused connection proves the path too.
        type: int
      max_pods:
        description: Local pods probed from (their network namespaces; default 2).
        type: int
      df_size:
        description: Size of the DF packet (default the pods' MTU).
        type: int
  pools:
    description:
      - The cluster's Calico IPPool CIDRs. A route inside them that is not Calico's (one that shadows a block) then
        counts in RV(ansible_facts.calico_node.route_digest); without them the supernets of Calico's default pool
        sizes around this node's own blocks are used.
    type: list
    elements: str
    default: []
  bird_socket:
    description:
      - BIRD's control socket, as calico-node creates it. A missing socket is reported in the fact, not an error.
    type: path
    default: /var/run/calico/bird.ctl
  kernel_modules:
    description:
      - Kernel modules to look up in the running kernel, the way C(calicoctl node checksystem) does - C(/sys/module),
        C(/proc/modules), C(modules.builtin), C(modules.dep), then the kernel's C(.config) (also C(/proc/config.gz)).
        The result is RV(ansible_facts.calico_node.kernel_modules).
      - Empty (the default) - nothing is looked up and the fact's C(kernel_modules) is null.
    type: list
    elements: dict
    default: []
    suboptions:
      names:
        description: Module names (letters, digits, C(_) and C(-)); any one of them satisfies the entry.
        type: list
        elements: str
        required: true
      config:
        description: The kernel config option that builds the module (C(CONFIG_...)).
        type: str
        required: true
      optional:
        description: Carried into the result, for the caller to report a missing module without failing on it.
        type: bool
        default: false
notes:
  - Route protocol numbers are Calico's owners - 12 (bird) is BIRD, 80 is Felix (blackholes, no-encap, IPIP from
    v3.33), 3 (boot) is Felix's workload and VXLAN routes; iproute2 hides proto boot unless C(ip -d route) is used.
  - The finding ids are documented in the collection's C(docs/findings.md).
"""

EXAMPLES = r"""
- name: Gather Calico facts
  netdoctor.calico.calico_node_facts:

- name: Replay two candidate methods as well, for a multi-NIC node
  netdoctor.calico.calico_node_facts:
    autodetection_methods:
      - interface=^eth0$
      - cidr=192.0.2.0/24
    intended_ip: "{{ ansible_host }}"

- name: Fail the play when the node has a critical finding
  ansible.builtin.assert:
    that: ansible_facts['calico_node']['findings'] | selectattr('severity', 'equalto', 'critical') | list | length == 0
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: complex
  contains:
    calico_node:
      description: What was read off the node. See the collection's docs/development.md for the full data model.
      returned: always
      type: complex
      contains:
        schema_version:
          description: Version of this fact's layout.
          type: int
          sample: 1
        hostname:
          description: The node's hostname.
          type: str
          sample: node1
        links:
          description:
            - Every link in ascending ifindex order, with its addresses in kernel order.
            - Keys are C(index), C(name), C(kind) (veth, vxlan, bridge, ipip, dummy, ... or null), C(up) (admin state),
              C(operstate), C(mtu), C(mac), C(master) (ifindex), C(link) (parent ifindex), C(vxlan) (vni, port, local,
              link; vxlan links only) and C(addresses) (family, address, prefixlen, scope, flags, label).
          type: list
          elements: dict
        routes:
          description:
            - Main-table routes, classified. Each route has C(family), C(dst), C(type), C(protocol) (the number -
              12 bird, 80 felix, 3 boot, ...), C(scope), C(gateway), C(oif), C(dev), C(metric), C(prefsrc),
              C(onlink), C(multipath).
            - C(counts) has C(total), C(by_class), C(by_protocol) and C(by_device); C(local_blocks) (blackholes),
              C(workloads) (/32 dev cali*), C(tunnel) and C(other) are lists; C(remote_blocks) is a list with
              O(full_routes), else a summary (C(count), C(by_device), C(by_protocol)); C(suspect) lists the routes
              that look wrong on this node alone (C(route), C(text), C(reasons)).
          type: dict
        calico:
          description:
            - C(mode) (bgp, ipip, vxlan, wireguard or none) inferred from devices and routes, C(tunnel) (device,
              address, mtu, up), C(local_blocks), C(workloads) (interface, ip, up, proxy_arp) and C(vxlan) (device,
              vni, port, local, parent, mac and the neighbours and FDB entries on vxlan.calico).
          type: dict
        sysctls:
          description:
            - C(net.ipv4.ip_forward), rp_filter for all/default, and per interface rp_filter, proxy_arp and forwarding.
          type: dict
        network_manager:
          description:
            - C(installed), C(running), C(files) in NetworkManager's parse order, the effective C(unmanaged_devices),
              C(history) (which file set, appended or removed what), C(calico_devices) (pattern -> unmanaged?),
              C(managed_calico_devices) and, when NetworkManager runs, its live C(devices).
          type: dict
        networkd:
          description: systemd-networkd C(.network) files whose C([Match]) catches Calico devices.
          type: dict
        bird:
          description:
            - BIRD read through its control socket - C(available), C(error), C(version), C(router_id), C(peers)
              (name, address, type, state, since, info - the data of C(calicoctl node status)) and C(protocols).
          type: dict
        firewall:
          description:
            - Read only while BIRD has a BGP session that is not Established (a healthy node pays nothing) - what the
              host's nftables ruleset (iptables-nft included, Felix's own tables excepted) does with that session's
              packets. C(checked), C(reason) (why not checked), C(peers) (the down peers' addresses) and C(blocking)
              (peer address -> the rules or policies that drop its TCP/179 - family, table, chain, base_chain, hook,
              handle, rule, certain, packets; empty when the ruleset lets it through).
          type: dict
        dataplane:
          description:
            - The data plane beyond routes (the rules FW001, OFF001, CT001, FLX001, FLX002, BPF001, WG001 and MTU002
              read it). Cheap on a healthy node - C(/proc) and C(/sys) files and netlink (nf_tables, ip_set, and ethtool
              for C(vxlan.calico) when it exists); C(nft -j list ruleset) runs only when a host firewall is in front
              of an overlay with peers, C(wg show) only when a WireGuard device exists.
            - C(kernel) (release, version), C(felix_env) (Felix's allow-listed C(FELIX_*) settings of calico-node,
              without the prefix), C(conntrack) (count, max, buckets, ratio, stats - the per-CPU drop, early_drop,
              insert_failed, invalid, search_restart, clashres counters summed), C(vxlan) (per VXLAN device its
              C(features) as C(ethtool -k) shows them - on, fixed, requested - mtu, parent, parent_driver,
              parent_mtu, error), C(felix_health) (host, port, enabled, probed, and per C(readiness)/C(liveness) the
              HTTP status, ok, the reporters' table as components, error), C(felix_programming) (backend - nftables,
              iptables-nft or null - workloads and those missing their C(cali-tw-)/C(cali-fw-) chains, the sets the
              encapsulation needs and those missing), C(bpf) (bpffs, cgroup2, btf, kernel_supported, maps pinned; with
              BPF configured also kube_proxy_running, kube_proxy_rules), C(wireguard) (module_loaded and per device
              mtu, up, the parsed C(wg show DEV dump) - its own public key, listen port, peers with endpoint,
              allowed ips, latest handshake, rx, tx; never the private key), C(mtu_file) (/var/lib/calico/mtu),
              C(overlay_firewall) (checked, reason, host_firewall - the nf_tables base chains that make one - and per
              flow - vxlan, ipip, wireguard - the device, port, peers and C(blocking), peer -> the rules that drop it)
              and C(errors).
          type: dict
        identity:
          description:
            - C(nodename_file) (/var/lib/calico/nodename), C(cni) (file, nodename, ipam_type, log_level, mtu,
              datastore_type, active, error), C(hosts_resolves_hostname), C(hosts_addresses) and C(calico_node) (pid
              and the environment keys that matter) when calico-node runs on the node.
          type: dict
        host_config:
          description:
            - Host configuration that breaks Calico without touching its files (the catalogue's NET001, IPT001, CNI001,
              REG001, POOL001 and, across nodes, DUP002) - file reads, one C(nft list tables), and an
              C(iptables-legacy-save) / C(iptables-nft-save) only where the kernel holds tables of that backend.
            - C(identity) (C(machine_id_hash) - a keyed hash, never the id - and C(machine_id_state)), C(networkd)
              (C(running), C(enabled), C(manage_foreign_routes), C(manage_foreign_rules), C(set_in), C(files)),
              C(links) (udev C(.link) files that set the MAC of a Calico device - device, file, certain, match,
              mac_address_policy, mac_address), C(netplan) (C(files), C(generated)), C(nm_cloud_setup) (C(enabled),
              C(providers), C(links), C(rules) it installed), C(iptables) (C(nft_tables), per backend C(legacy) /
              C(nft) the chain and rule counts of Calico, kube-proxy and others - never rules -, C(felix_env)),
              C(cni) (the directory's C(files) in order with their plugin C(types), the C(active) one, C(calico),
              C(bin_dirs), C(binaries), C(kubeconfig) - the token's C(exp), C(iat), C(sub), C(expires_in), never the
              token) and C(service_cidrs).
          type: dict
        peer_routes:
          description: For each of O(peer_ips), the kernel's route lookup - C(prefsrc), C(dev), C(gateway).
          type: dict
        autodetection:
          description:
            - C(method_in_use), C(method6_in_use), C(calico_version), C(intended) (O(intended_ip)), C(registered)
              (calico-node's C(IP) when it is an address) and C(results) - one per replayed method with C(method),
              C(version), C(calico_version), C(valid), C(error), C(address) (CIDR), C(interface), C(log) (the line
              calico-node would print) and C(candidates) (interface, index, address, taken, reason) in the order
              Calico walks them; a C(can-reach=) result also has C(reach) - C(dest), C(resolved) (the address dialled;
              a hostname is resolved on the node), C(addresses) (all it resolved to), C(source) (the kernel's source
              address towards it) and C(error).
          type: dict
        kernel_modules:
          description:
            - Null unless O(kernel_modules) was given. C(release) (C(uname -r)), C(modules_supported) (the kernel can
              load modules - C(/proc/modules) exists), C(sources) (what could be read), C(modules) (name -> C(status),
              C(evidence)) and C(entries) - per O(kernel_modules) entry its C(names), C(config), C(optional), the best
              C(status) of its names and the C(name) and C(evidence) that gave it.
            - A status is V(present) (in the running kernel - C(/sys/module) or C(/proc/modules)), V(builtin),
              V(loadable), V(missing) or V(unknown) (no source could tell).
          type: dict
        path:
          description:
            - The state of the path packets take, from this node's view (C(_pathstate)) - C(workloads) (each local
              workload's C(/32) route, its veth and proxy_arp, the pod IP from its permanent neighbour entry),
              C(policy) (the routing rules in front of main and the table a lookup of each remote block or peer
              answered from, only when rules beyond the kernel's three exist) and C(mtu) (pod, tunnel and underlay
              MTU with the mode's overhead, Calico's C(/var/lib/calico/mtu)).
          type: dict
        probes:
          description:
            - Null unless O(probe_targets) was given. This node's row of the probe matrix - C(peers) (peer host to
              C(ok), C(loss) from 0 to 1, C(rtt_ms), C(icmp), C(tcp), C(df), C(df_ok), C(dst), C(via)), the sources
              probed from and the time it took.
          type: dict
        route_digest:
          description:
            - The node's remote block routes in a few bytes, for the controller to check against the fleet's expected
              map without the table - C(mode), C(pools) (as given), C(count) and C(hash) (an order-independent sum of
              SHA-256 prefixes of each route's canonical destination, type, next hops and, in IPIP/VXLAN, device
              class and onlink). Covered are unicast routes Calico owns, and any route inside the pools.
          type: dict
        findings:
          description:
            - Node-local findings - C(id), C(severity) (critical, warning, info), C(host), C(summary), C(evidence),
              C(remedy).
          type: list
          elements: dict
"""

import ipaddress
import json
import socket
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import (
    _autodetect,
    _bird,
    _calico_view,
    _contract,
    _dataplane,
    _findings,
    _firewall,
    _hostconfig,
    _kmod,
    _netlink,
    _nm_config,
    _node_files,
    _pathstate,
    _probe,
)

SCHEMA_VERSION = 1
NM_BINARY = "NetworkManager"


def _reach(nl, dest, version):
    """What calico-node's net.Dial("udp4"|"udp6", dest:80) gets on this node: a hostname resolved by the
    node's resolver (getaddrinfo, in its order), then the first address the kernel has a route to (Go's
    dialSerial tries them in order) and the kernel's source address towards it."""
    kind, value = _autodetect.reach_target(dest, version)
    if kind == "error":
        return {"resolved": None, "addresses": [], "source": None, "error": value}
    addresses = [value]
    if kind == "hostname":
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        try:
            infos = socket.getaddrinfo(dest, 80, family, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            return {"resolved": None, "addresses": [], "source": None,
                    "error": f"dial udp{version}: lookup {dest}: {getattr(exc, 'strerror', None) or exc}"}
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
    error = None
    for address in addresses:
        try:
            source = (nl.route_get(address) or {}).get("prefsrc")
        except (OSError, ValueError) as exc:
            source, error = None, error or f"dial udp{version} {address}: {exc}"
        if source:
            return {"resolved": address, "addresses": addresses, "source": source, "error": None}
        port = f"[{address}]:80" if ":" in address else f"{address}:80"
        error = error or f"dial udp{version} {port}: connect: network is unreachable"
    return {"resolved": addresses[0] if addresses else None, "addresses": addresses, "source": None,
            "error": error or f"dial udp{version}: lookup {dest}: no such host"}


def _can_reach_sources(nl, methods):
    """{dest: {version: reach record}} for the can-reach= methods among (method, IP version) pairs;
    dest is the method's text after the prefix, exactly as calico-node takes it."""
    out = {}
    for method, version in methods:
        if method and method.startswith(_autodetect.CAN_REACH):
            dest = method[len(_autodetect.CAN_REACH):]
            out.setdefault(dest, {})[version] = _reach(nl, dest, version)
    return out


def _route_summary(route):
    return None if route is None else {"prefsrc": route.get("prefsrc"), "dev": route.get("dev"),
                                       "gateway": route.get("gateway")}


def _network_manager(module, links):
    nm_bin = module.get_bin_path(NM_BINARY, opt_dirs=["/usr/sbin", "/sbin"])
    nmcli = module.get_bin_path("nmcli")
    running = _nm_config.running(module.run_command, nmcli, module.get_bin_path("busctl"),
                                 module.get_bin_path("dbus-send"))
    version = devices = None
    if nm_bin:
        rc, out, _err = module.run_command([nm_bin, "--version"])
        version = out.strip() if rc == 0 else None
    if running and nmcli:
        rc, out, _err = module.run_command([nmcli, "-t", "-f", "DEVICE,TYPE,STATE", "device"])
        devices = _nm_config.parse_nmcli_devices(out) if rc == 0 else None
    return _nm_config.network_manager_facts(_nm_config.discover("/"), installed=bool(nm_bin), running=running,
                                            devices=devices, nm_version=version)


def _bgp_firewall(module, bird):
    """What the host firewall does with the BGP sessions BIRD has down; nothing is run while all are up."""
    down = sorted({p["address"] for p in bird.get("peers") or () if p.get("address") and not p.get("established")})
    out = {"checked": False, "reason": None, "peers": down, "blocking": {}}
    if not down:
        return {**out, "reason": "no BGP session is down"}
    nft = module.get_bin_path("nft", opt_dirs=["/usr/sbin", "/sbin"])
    if not nft:
        return {**out, "reason": "nft not found"}
    rc, stdout, stderr = module.run_command([nft, "-j", "list", "ruleset"])
    if rc != 0:
        return {**out, "reason": f"nft -j list ruleset exited {rc}: {(stderr or stdout).strip()[:200]}"}
    local = [bird["router_id"]] if bird.get("router_id") else []
    try:
        blocking = _firewall.blocking_by_peer(json.loads(stdout), down, local=local)
    except (ValueError, KeyError, TypeError) as exc:
        return {**out, "reason": f"cannot judge the ruleset: {exc}"}
    return {**out, "checked": True, "blocking": blocking}


def _kernel_modules(module):
    """The kernel_modules option's lookup; None when it is empty (nothing is read)."""
    if not module.params["kernel_modules"]:
        return None
    try:
        return _kmod.scan(module.params["kernel_modules"])
    except ValueError as exc:
        module.fail_json(msg=f"kernel_modules: {exc}")


def _probe_peers(params, snap, fact, node_ip):
    """The probe matrix's row of this node (_probe): its k peers, from its pods, tunnel or itself."""
    options = {**_probe.DEFAULTS, **{k: v for k, v in (params["probe_options"] or {}).items() if v is not None}}
    workloads = [w for w in (fact["calico"].get("workloads") or ()) if w.get("ip") and ":" not in w["ip"]]
    netns_of = _probe.find_pod_netns([w["ip"] for w in workloads], int(options["max_pods"]))
    sources = _probe.sources_for(fact["calico"], workloads, netns_of, node_ip)
    mtu = fact["path"]["mtu"]
    df_size = options.get("df_size") or mtu.get("pod_mtu") or mtu.get("tunnel_mtu") or mtu.get("underlay_mtu")
    targets = _probe.destinations(params["probe_targets"], _contract.vxlan_l2(snap["neighbours"], snap["fdb"]))
    started = time.monotonic()
    results = _probe.run(sources, targets, count=int(options["count"]), interval=float(options["interval"]),
                         timeout=float(options["timeout"]), deadline=float(options["deadline"]),
                         tcp_port=int(options["tcp_port"]), df_size=int(df_size) if df_size else None)
    return {"sources": [s["label"] for s in sources], "df_size": df_size, "tcp_port": int(options["tcp_port"]),
            "seconds": round(time.monotonic() - started, 3), "peers": results}


def gather(module):
    params = module.params
    hostname = socket.gethostname()
    identity = _node_files.identity_facts(hostname)
    env = (identity.get("calico_node") or {}).get("env") or {}
    method_in_use = env.get("IP_AUTODETECTION_METHOD", "")
    method6 = env.get("IP6_AUTODETECTION_METHOD", "") if env.get("IP6") == "autodetect" else None
    bird = _bird.bird_facts(params["bird_socket"])

    with _netlink.Netlink() as nl:
        snap = nl.snapshot()
        # can-reach is the kernel's own route lookup: resolve it now, on this node, while the socket is open.
        route_source = _can_reach_sources(
            nl, [(method_in_use, 4), (method6, 6), *((m, 4) for m in params["autodetection_methods"])])
        peer_routes = {}
        for peer in params["peer_ips"]:
            try:
                peer_routes[peer] = _route_summary(nl.route_get(peer))
            except (OSError, ValueError) as exc:
                module.fail_json(msg=f"peer_ips: cannot look up a route to {peer!r}: {exc}")
        # Routing policy (issue 12): only with rules beyond the kernel's three, a few route look-ups.
        policy = _pathstate.policy_facts(snap, nl.route_get, [*params["peer_ips"], *(
            t.get("ip") for t in params["probe_targets"])])

    names = [link["name"] for link in snap["links"] if link["name"] != "lo"]
    sysctls = _node_files.read_sysctls(names)
    routes = _calico_view.classify_routes(snap, full=params["full_routes"])
    ip_env = env.get("IP")
    registered = ip_env if ip_env not in (None, "", "autodetect", "none") else None
    fact = {
        "schema_version": SCHEMA_VERSION,
        "hostname": hostname,
        "links": _netlink.links_with_addresses(snap),
        "routes": routes,
        "calico": _calico_view.calico_view(snap, sysctls, routes=routes),
        "sysctls": sysctls,
        "network_manager": _network_manager(module, snap["links"]),
        "networkd": _node_files.networkd_facts(),
        "bird": bird,
        "firewall": _bgp_firewall(module, bird),
        "identity": identity,
        "host_config": _hostconfig.host_config_facts(snap, identity),
        "peer_routes": peer_routes,
        "kernel_modules": _kernel_modules(module),
        "autodetection": _autodetect.autodetection_fact(
            snap, method_in_use, calico_version=params["calico_version"], route_source=route_source,
            internal_ips=[params["kubernetes_internal_ip"]] if params["kubernetes_internal_ip"] else None,
            method6_in_use=method6, also=params["autodetection_methods"], intended=params["intended_ip"],
            registered=registered),
    }
    fact["dataplane"] = _dataplane.dataplane_facts(
        snap, fact["calico"], identity, run=module.run_command, local_addresses=[
            a for a in (bird.get("router_id"), params["intended_ip"]) if a],
        which=lambda name: module.get_bin_path(name, opt_dirs=["/usr/sbin", "/sbin"]))
    fact["route_digest"] = _contract.route_digest(snap["routes"], fact["calico"].get("mode"),
                                                  fact["calico"].get("local_blocks") or (), params["pools"],
                                                  neighbours=snap["neighbours"], fdb=snap["fdb"])
    node_ip = _contract.node_identity(fact, params["intended_ip"]).get("ip")
    fact["path"] = _pathstate.path_facts(snap, fact["links"], fact["calico"], node_ip=node_ip, policy=policy,
                                         mtu_file=((fact.get("dataplane") or {}).get("mtu_file") or {}).get("value"))
    fact["probes"] = _probe_peers(params, snap, fact, node_ip) if params["probe_targets"] else None
    fact["findings"] = _findings.node_findings(fact)
    return fact


ARGUMENT_SPEC = {
    "autodetection_methods": {"type": "list", "elements": "str", "default": []},
    "calico_version": {"type": "str", "default": "3.30"},
    "kubernetes_internal_ip": {"type": "str"},
    "intended_ip": {"type": "str"},
    "peer_ips": {"type": "list", "elements": "str", "default": []},
    "full_routes": {"type": "bool", "default": False},
    "pools": {"type": "list", "elements": "str", "default": []},
    "probe_targets": {"type": "list", "elements": "dict", "default": [], "options": {
        "host": {"type": "str", "required": True},
        "ip": {"type": "str", "required": True},
        "overlay": {"type": "str"}}},
    "probe_options": {"type": "dict", "default": {}, "options": {
        "count": {"type": "int"}, "interval": {"type": "float"}, "timeout": {"type": "float"},
        "deadline": {"type": "float"}, "tcp_port": {"type": "int"}, "max_pods": {"type": "int"},
        "df_size": {"type": "int"}}},
    "bird_socket": {"type": "path", "default": _bird.DEFAULT_SOCKET},
    "kernel_modules": {"type": "list", "elements": "dict", "default": [], "options": {
        "names": {"type": "list", "elements": "str", "required": True},
        "config": {"type": "str", "required": True},
        "optional": {"type": "bool", "default": False}}},
}


def build_module():
    return AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)


def main():
    module = build_module()
    if not _netlink.HAS_PYROUTE2:
        module.fail_json(msg=_netlink.missing_pyroute2(), exception=_netlink.PYROUTE2_IMPORT_ERROR)
    try:
        _autodetect.parse_calico_version(module.params["calico_version"])
    except ValueError as exc:
        module.fail_json(msg=f"calico_version: {exc}")
    for pool in module.params["pools"]:
        try:
            ipaddress.ip_network(pool)
        except ValueError as exc:
            module.fail_json(msg=f"pools: {pool!r} is not a CIDR: {exc}")
    try:
        fact = gather(module)
    except OSError as exc:
        module.fail_json(msg=f"cannot read the node's network state: {exc}", exception=traceback.format_exc())
    module.exit_json(changed=False, ansible_facts={"calico_node": fact})


if __name__ == "__main__":
    main()
