#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin of the same name (plugins/action/fleet_audit.py) on the
# controller; this file only documents it, as ansible.builtin does for its action-only modules.

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_audit
short_description: Cross-check the Calico facts of every node of a fleet and write the audit reports
version_added: 0.1.0
description:
  - Runs on the controller, once for the play, and opens no connection. It reads the
    C(ansible_facts.calico_node) fact (from M(netdoctor.calico.calico_node_facts)) of every host of the play.
  - Builds the expected route map - for every IPAM block, its owner (the node with the block's blackhole route) and
    the next hop every other node must use (IPIP - the owner's registered IP C(dev tunl0 onlink); VXLAN - the
    owner's VXLAN tunnel address C(dev vxlan.calico onlink); native BGP - the owner's registered IP on the underlay).
  - Runs the cross-node rules of the incident catalogue (the collection's C(docs/findings.md)) - wrong next hops
    (RT001), missing, orphan and doubly-owned block routes (RT002), source address towards peers (SRC001), IP
    autodetection with one recommended C(IP_AUTODETECTION_METHOD) for the whole fleet (AD001, AD002), BGP peers
    (BGP001), duplicate node IPs (DUP001), tunnel MTU mismatches (MTU001), and hosts that failed or were unreachable
    (UNREACH) - and merges every node's own findings.
  - With O(datastore) (what M(netdoctor.calico.calico_datastore_info) read from etcd or the Kubernetes API), also
    compares Calico's datastore with the nodes - a node registered with another address, tunnel address or VTEP MAC
    than it uses (DS001), blocks given to a node that it does not announce or announced by a node that does not own
    them (DS002), and stale Node resources that are no host of the fleet (DS003).
  - Route checks use the per-node drift results of O(drift) when given (the node compared its full table with the
    map, so only the drift travelled); for a host without one whose fact carries the full remote block routes
    (O(netdoctor.calico.calico_node_facts#module:full_routes=true)), the comparison runs here.
  - Writes C(report.json) (versioned schema), C(report.md) (fits a pull request comment), C(report.html)
    (self-contained - causes first with their consequences folded under them, and a route health matrix per
    cluster, node by node or subnet by subnet at fleet scale), C(junit.xml) and, when asked for, C(calico_audit.prom)
    (Prometheus text format for node_exporter's textfile collector) into O(report_dir), each file atomically.
  - Several Calico clusters in one inventory - each host may carry a cluster name (the host variable named by
    O(cluster_var), or O(clusters)); each cluster is judged on its own facts alone (its own map, mode, pools and
    datastore), and the reports show each cluster's section under the fleet's roll-up. Findings and hosts are
    always named by their inventory name; the hostname a node reports is evidence.
  - Fails after the reports are written when a finding reaches O(fail_on), so the task's result is the CI verdict.
    It also fails when no host was given, or when no host could be audited (unless O(fail_on=never)).
author:
  - netdoctor.calico contributors (@netdoctor)
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
  - netdoctor.calico._attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - The audit never changes a managed node, so it runs unchanged in check mode.
      - It still writes the report files on the controller in check mode - producing them is the point of an audit
        run with C(--check). They are not reported as a change.
  diff_mode:
    support: N/A
    details: Nothing on the managed nodes changes.
  idempotent:
    support: full
    details: It reads facts and writes reports; it never changes a node, and the same input gives the same report.
  bypass_host_loop:
    details: Use C(run_once=true) - the audit covers every host of the play from one task.
options:
  hosts:
    description:
      - The hosts of the fleet. Defaults to C(ansible_play_hosts_all), every host the play started with.
    type: list
    elements: str
  unreachable:
    description:
      - Hosts that failed or were unreachable - a list of hosts, or a dict host to the reason (for example the
        C(msg) of the task that could not reach it), which the report quotes. Defaults to C(ansible_play_hosts_all)
        minus C(ansible_play_hosts).
      - Each is reported (UNREACH) and the audit of the others goes on; its facts, if any, are not used. A host of
        O(hosts) without facts is treated the same way.
    type: raw
  intended_ips:
    description:
      - Host to the address the node should be registered with (the inventory address, the kubelet InternalIP).
        The autodetection rules and the recommended method use it; it overrides O(intended_ip_var).
    type: dict
    default: {}
  intended_ip_var:
    description:
      - Name of a host variable holding each host's intended address, for example C(ansible_host).
    type: str
  cluster_var:
    description:
      - Name of the host variable holding the name of the Calico cluster the host belongs to. Hosts without it
        form the cluster C(default).
    type: str
    default: calico_cluster
  clusters:
    description:
      - Host to cluster name; overrides O(cluster_var) for the hosts it names.
    type: dict
    default: {}
  drift:
    description:
      - Host to the route drift result that node computed against RV(expected_map) (the C(drift) result of the
        collection's route check), so the full route tables never leave the nodes.
    type: dict
    default: {}
  pools:
    description:
      - Calico IPPool CIDRs, for every cluster. A Calico route off the tunnel devices to a block nobody owns is an
        orphan only inside a pool; without this option the pools are guessed as the /16 around the known blocks.
        Given, a block outside them is a finding (CL001).
    type: list
    elements: str
    default: []
  cross_subnet:
    description:
      - The pools use C(CrossSubnet) encapsulation, so a same-subnet owner is reached via its node IP on the underlay
        instead of the tunnel; such routes are then correct.
    type: bool
    default: false
  report_dir:
    description:
      - Directory (on the controller) to write the reports to; created if missing. Without it no file is written.
    type: path
  formats:
    description:
      - Which reports to write into O(report_dir) - C(json) (C(report.json)), C(md) (C(report.md)), C(html)
        (C(report.html)), C(junit) (C(junit.xml)), C(prometheus) (C(calico_audit.prom)).
      - C(prometheus) writes gauges for node_exporter's textfile collector (point O(report_dir) at its
        C(--collector.textfile.directory)) - one C(netdoctor_calico_finding) series per finding labelled with its
        C(id), C(severity), C(node), C(peer) and C(cluster), the counts per cluster and severity
        (C(netdoctor_calico_findings)), the nodes per cluster and status (C(netdoctor_calico_nodes)) and
        C(netdoctor_calico_audit_timestamp_seconds); see the collection's C(docs/audit.md) for a timer and alert
        rules.
    type: list
    elements: str
    choices: [json, md, html, junit, prometheus]
    default: [json, md, html, junit]
  query:
    description:
      - A JMESPath expression evaluated on the report document (the content of C(report.json)); the value is returned
        as RV(query_result). Needs the C(jmespath) Python library on the controller.
    type: str
  fail_on:
    description:
      - Fail the task, after the reports are written, when a finding has this severity or a worse one. V(never)
        only reports.
    type: str
    choices: [critical, warning, info, never]
    default: critical
  junit_fail_on:
    description:
      - Severity from which a finding turns its JUnit testcase into a failure; milder findings are listed in the
        testcase's C(system-out).
    type: str
    choices: [critical, warning, info, never]
    default: warning
  map_only:
    description:
      - Only build and return RV(expected_maps) - the first half of an audit, whose map each node then checks its own
        routes against (M(netdoctor.calico.calico_routes) in check mode) before the second, full call takes their
        O(drift). No rule runs, no report is written and the task never fails on findings; O(report_dir),
        O(formats), O(query), O(fail_on) and O(drift) are ignored.
    type: bool
    default: false
  datastore:
    description:
      - Calico's datastore as M(netdoctor.calico.calico_datastore_info) returns it (its
        RV(netdoctor.calico.calico_datastore_info#module:datastore)), for the DS rules. Without it they do not run.
      - With several clusters, a dict of cluster name to such a view.
      - A datastore node is matched to a host by name (inventory name, hostname, C(/var/lib/calico/nodename), the CNI
        config's C(nodename), calico-node's C(NODENAME)), then by its registered address.
      - The view of a read that failed (its C(error) set) gives the warning DS000, filed under the host C(datastore),
        and no other DS rule runs. When the nodes run Calico over host-local IPAM (calico-node's C(USE_POD_CIDR), or
        a C(host-local) IPAM in their Calico CNI config), a Kubernetes view's blocks are the Nodes' pod CIDRs and their
        IPIP tunnel addresses come from them, as Calico reads that datastore.
    type: dict
notes:
  - Use it in a play over the Calico nodes after M(netdoctor.calico.calico_node_facts), with C(run_once=true).
  - Each node's facts are small (its own blocks, addresses and findings, never its full route table), so the analysis
    scales to thousands of nodes - the collection's C(bench/fleet_scale.py) audits a 5,000-node fleet.
seealso:
  - module: netdoctor.calico.calico_node_facts
  - module: netdoctor.calico.calico_datastore_info
"""

EXAMPLES = r"""
- name: Gather the facts of every node, with the peers to look routes up for
  netdoctor.calico.calico_node_facts:
    intended_ip: "{{ ansible_host }}"
    peer_ips: "{{ ansible_play_hosts_all | map('extract', hostvars, 'ansible_host') | list }}"

- name: Audit the fleet and write the reports (fails the play on a critical finding)
  netdoctor.calico.fleet_audit:
    intended_ip_var: ansible_host
    report_dir: "{{ playbook_dir }}/reports"
  run_once: true

- name: The expected map alone, for the route check on every node
  netdoctor.calico.fleet_audit:
    map_only: true
    intended_ip_var: ansible_host
  run_once: true
  register: fleet_map

- name: Read Calico's datastore once, from the controller
  netdoctor.calico.calico_datastore_info:
    backend: kubernetes
  delegate_to: localhost
  run_once: true
  register: calico_datastore

- name: Audit the nodes against the datastore too (DS001-DS003)
  netdoctor.calico.fleet_audit:
    intended_ip_var: ansible_host
    datastore: "{{ calico_datastore.datastore }}"
    report_dir: "{{ playbook_dir }}/reports"
  run_once: true

- name: Only report, and list the hosts with a wrong next hop
  netdoctor.calico.fleet_audit:
    report_dir: /tmp/calico-audit
    formats: [json, html]
    fail_on: never
    query: "findings[?id=='RT001'].{host: host, owner: peer}"
  run_once: true
  register: audit

- name: Show them
  ansible.builtin.debug:
    var: audit.query_result
  run_once: true
"""

RETURN = r"""
expected_maps:
  description:
    - Cluster name to its expected route map (see RV(expected_map)).
  returned: always
  type: dict
clusters:
  description:
    - Host to its cluster name, to pick each host's map out of RV(expected_maps).
  returned: when O(map_only)
  type: dict
  sample: {node1: prod, node2: prod, edge1: edge}
drift_needed:
  description:
    - The hosts whose routes must be checked on the node (M(netdoctor.calico.calico_routes) in check mode against
      their cluster's map) - their route digest differs from what the map predicts, or they sent none. A healthy
      fleet gives an empty list, so its audit is one round trip.
  returned: when O(map_only)
  type: list
  elements: str
expected_map:
  description:
    - The expected route map - what the route check on each node compares its kernel table with.
    - C(mode), C(blocks) (CIDR to C(owner), C(next_hop), C(device), C(onlink)), C(nodes) (host to C(ip), C(ip_source),
      C(tunnel_address), C(vxlan_mac), C(blocks)), C(owners_conflicts) (CIDR to the hosts claiming it), C(pools),
      C(complete) (every host gave facts).
  returned: when the hosts form one cluster
  type: dict
  sample:
    mode: ipip
    complete: true
    blocks:
      10.122.17.64/26: {owner: node1, next_hop: 192.168.3.110, device: tunl0, onlink: true}
    nodes:
      node1: {ip: 192.168.3.110, ip_source: bird_router_id, tunnel_address: 10.122.17.64, vxlan_mac: null,
              blocks: [10.122.17.64/26]}
    owners_conflicts: {}
findings:
  description:
    - Every finding, worst first - C(id), C(severity) (critical, warning, info), C(host) (the inventory name),
      C(peer) (when it concerns a pair of nodes), C(cluster), C(summary), C(evidence), C(remedy).
  returned: unless O(map_only)
  type: list
  elements: dict
  sample:
    - id: RT001
      severity: critical
      host: node3
      peer: node1
      summary: node3 routes 1 block of node1 via 10.122.127.128 (its own tunnel address) instead of 192.168.3.110
      evidence: {routes: ["10.122.17.64/26 via 10.122.127.128 dev tunl0"],
                 expected: ["10.122.17.64/26 via 192.168.3.110 dev tunl0 onlink"]}
      remedy: Fix the cause first ... `ip route replace 10.122.17.64/26 via 192.168.3.110 dev tunl0 proto bird onlink`
summary:
  description:
    - The fleet's roll-up - counts by severity and id, the number of hosts, the unreachable ones, the worst severity,
      the mode (when every cluster has the same) and the cluster names.
  returned: unless O(map_only)
  type: dict
  sample: {hosts: 5, audited: 5, unreachable: [], findings: 1, critical: 1, warning: 0, info: 0,
           by_id: {RT001: 1}, worst: critical, mode: ipip, clusters: [default]}
report_paths:
  description: Format to the path of each report written.
  returned: unless O(map_only)
  type: dict
  sample: {json: /srv/audit/report.json, md: /srv/audit/report.md, html: /srv/audit/report.html,
           junit: /srv/audit/junit.xml}
query_result:
  description: The value of O(query) on the report document.
  returned: when O(query) is set
  type: raw
"""
