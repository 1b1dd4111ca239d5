#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin of the same name (plugins/action/repair_plan.py) on the
# controller; this file only documents it, as ansible.builtin does for its action-only modules.

from __future__ import annotations

DOCUMENTATION = r"""
module: repair_plan
short_description: Plan a Calico repair from an audit report, and write its before/after report
version_added: 0.1.0
description:
  - Runs on the controller, once for the play, and opens no connection. It is the decision half of the
    C(netdoctor.calico.repair) role; the role's tasks do the changes.
  - With O(mode=plan), reads an audit's C(report.json) (written by M(netdoctor.calico.fleet_audit)) and returns
    RV(plan) - for every finding at or above O(min_severity), the step of the repair that fixes it on its node, or
    why none does (a step switched off in O(steps) or by the run's tags, a finding the repair never changes, a
    consequence that follows its cause); per host, what each step has to do there; and the one
    C(IP_AUTODETECTION_METHOD) for the fleet - O(method), checked against every node's O(replay), or the one the
    audit recommends. What stops the repair before any change is in the C(errors) of RV(plan).
  - With O(mode=report), reads the audit reports O(before) and O(after), puts every finding before the repair side
    by side with what became of it, with every change the repair made (O(changes)) and the evidence for what
    remains (O(probes)), writes C(repair.json) and C(repair.md) into O(report_dir), each file atomically, and
    returns the verdict.
  - The task never fails on findings; the role decides what to do with the C(errors) of RV(plan) and
    RV(verdict).
  - The collection's C(docs/repair.md) describes the repair, its order and both reports.
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
      - The task never changes a managed node, so it runs unchanged in check mode.
      - With O(mode=report) it still writes C(repair.json) and C(repair.md) on the controller in check mode - a repair
        run with C(--check) reports what it would do (O(check_mode)). They are not reported as a change.
  diff_mode:
    support: N/A
    details: Nothing on the managed nodes changes.
  idempotent:
    support: full
    details: It reads reports and writes reports; it never changes a node.
  bypass_host_loop:
    details: Use C(run_once=true) - one plan and one report cover every host of the play.
options:
  mode:
    description:
      - V(plan) - the plan from the audit report O(report_path); options O(report_path), O(hosts), O(min_severity),
        O(steps), O(run_tags), O(skip_tags), O(method), O(replay).
      - V(report) - C(repair.json) and C(repair.md); options O(before), O(after_autodetection), O(after), O(plan),
        O(check_mode), O(fail_on), O(report_dir), O(changes), O(probes), O(autodetection_result).
      - An option of the other mode fails the task.
    type: str
    required: true
    choices: [plan, report]
  report_path:
    description:
      - The audit's C(report.json) to plan from (on the controller). Required with O(mode=plan).
    type: path
  hosts:
    description:
      - The hosts the per-node steps may run on, usually C(ansible_play_hosts); a finding on another host is not
        repaired. Defaults to the hosts of the audit report.
    type: list
    elements: str
  min_severity:
    description: Act on findings of this severity or worse; milder ones are reported only.
    type: str
    choices: [critical, warning, info]
    default: warning
  steps:
    description:
      - Which steps of the repair are switched on (the role's C(repair_<step>) variables). A finding whose step is
        off is reported with the reason.
    type: dict
    suboptions:
      nm:
        description: The NetworkManager drop-in (NM001).
        type: bool
        default: true
      autodetection:
        description: The fleet's C(IP_AUTODETECTION_METHOD) (AD001, AD002).
        type: bool
        default: true
      source_routes:
        description: Source routes towards the peers (SRC001).
        type: bool
        default: true
      sysctl:
        description: C(ip_forward), C(rp_filter) and C(proxy_arp) (SYS001).
        type: bool
        default: true
      bgp_firewall:
        description: TCP/179 from the fleet's Calico IPs through the host firewall (BGP001).
        type: bool
        default: true
      overlay_firewall:
        description: The overlay (VXLAN, IPIP, WireGuard) from the fleet's Calico IPs through the host firewall (FW001).
        type: bool
        default: true
      vxlan_offload:
        description: The VXLAN device's tx checksum offload turned off now (OFF001).
        type: bool
        default: true
      routes:
        description: Block routes against the expected map (RT001, RT002).
        type: bool
        default: true
  run_tags:
    description:
      - The tags of the run (C(ansible_run_tags)); a step whose tag C(repair_<step>) is not selected is reported as
        such.
    type: list
    elements: str
    default: [all]
  skip_tags:
    description: The skipped tags of the run (C(ansible_skip_tags)).
    type: list
    elements: str
    default: []
  method:
    description:
      - The C(IP_AUTODETECTION_METHOD) to set for the fleet. Empty - the one the audit recommends; without one, a
        plan that needs it has an error.
    type: str
    default: ""
  replay:
    description:
      - With O(method), host to what the method picks on that node - C(valid), C(error), C(address), C(interface)
        (a replay result of M(netdoctor.calico.calico_node_facts)) and C(intended), the node's intended address. A
        method that is invalid or misses an intended address is an error of the plan.
    type: dict
    default: {}
  before:
    description: The audit's C(report.json) before the repair (on the controller). Required with O(mode=report).
    type: path
  after_autodetection:
    description: The audit's C(report.json) after the autodetection method changed; only listed in the report.
    type: path
  after:
    description:
      - The audit's C(report.json) after the repair. Without it (check mode, or no audit after) the verdict is
        V(check) or V(unverified) and every finding says what would become of it.
    type: path
  plan:
    description: RV(plan) of the audit before the repair (O(mode=plan) with that report). Required with O(mode=report).
    type: dict
  check_mode:
    description:
      - The repair ran in check mode, so nothing changed - the report is the plan (verdict V(check)). Defaults to
        whether this task runs in check mode.
    type: bool
  fail_on:
    description: The severity from which a finding of the audit after the repair makes the verdict V(failed).
    type: str
    choices: [critical, warning, info, never]
    default: warning
  report_dir:
    description:
      - Directory (on the controller) to write C(repair.json) and C(repair.md) to; created if missing. Required with
        O(mode=report).
    type: path
  changes:
    description:
      - Host to what the repair's tasks returned there - C(nm), C(nm_reloaded), C(nm_overrides), C(source_routes),
        C(sysctl), C(sysctl_file), C(proxy_arp), C(bgp_firewall), C(routes) - from which the report says what
        changed on that node.
    type: dict
    default: {}
  probes:
    description:
      - Host to the TCP tests of port 179 run there towards the BGP peers still down - a list of C(address),
        C(port), C(result) (open, refused, timeout, unreachable), C(error), C(timeout), C(seconds).
    type: dict
    default: {}
  autodetection_result:
    description:
      - What changed the fleet's C(IP_AUTODETECTION_METHOD) - C(changed), C(previous), C(method), C(target),
        C(command) (the result of M(netdoctor.calico.calico_autodetection)), C(path) (the manifest) and
        C(redetected) (host to the address calico-node registered with the new method).
    type: dict
notes:
  - Use it with C(run_once=true); the C(netdoctor.calico.repair) role runs it after each audit (O(mode=plan)) and once
    at the end (O(mode=report)).
seealso:
  - module: netdoctor.calico.fleet_audit
"""

EXAMPLES = r"""
- name: Plan the repair from the audit's findings
  netdoctor.calico.repair_plan:
    mode: plan
    report_path: /srv/calico-repair/before/report.json
    hosts: "{{ ansible_play_hosts }}"
    steps: {bgp_firewall: false}
    run_tags: "{{ ansible_run_tags }}"
    skip_tags: "{{ ansible_skip_tags }}"
  run_once: true
  register: repair

- name: Show it
  ansible.builtin.debug:
    msg: "{{ repair.plan.lines }}"
  run_once: true

- name: Write repair.json and repair.md
  netdoctor.calico.repair_plan:
    mode: report
    before: /srv/calico-repair/before/report.json
    after: /srv/calico-repair/after/report.json
    plan: "{{ repair.plan }}"
    report_dir: /srv/calico-repair
  run_once: true
  register: repair_report
"""

RETURN = r"""
plan:
  description:
    - C(errors) (what stops the repair before any change), C(autodetection) (C(needed), C(method), C(source),
      C(reason), C(hosts)), C(hosts) (host to what each step does there - C(nm), C(source_routes), C(ip_forward),
      C(rp_filter), C(proxy_arp), C(bgp_firewall), C(routes), C(add_missing), C(bgp_probe), C(findings)), C(items)
      (one per finding - C(key), C(id), C(severity), C(host), C(peer), C(kind), C(summary), C(remedy), C(action)
      (repair, follows, not_repaired, below_threshold), C(step), C(why)), C(lines) (the plan as text), C(steps)
      (step to C(enabled) and C(why)) and C(min_severity).
  returned: O(mode=plan)
  type: dict
  sample:
    errors: []
    autodetection: {needed: false, method: null, source: null, reason: null, hosts: []}
    hosts:
      node3: {nm: false, source_routes: false, ip_forward: true, rp_filter: false, proxy_arp: false,
              bgp_firewall: false, routes: false, add_missing: true, bgp_probe: [],
              findings: ["SYS001|node3||ip_forward"]}
    lines: ["SYS001 node3 [critical]: repair - sysctls (ansible.posix.sysctl / sysctl -w)"]
verdict:
  description:
    - V(ok) (the audit after the repair has nothing at or above O(fail_on)), V(failed), V(check) (check mode - the
      report is the plan) or V(unverified) (no audit after the repair).
  returned: O(mode=report)
  type: str
  sample: ok
failing:
  description:
    - The findings of the audit after the repair at or above O(fail_on) - C(id), C(severity), C(host), C(peer),
      C(summary), C(remedy), C(probe) (the TCP test of port 179 towards a BGP001 finding's peer, or null).
  returned: O(mode=report)
  type: list
  elements: dict
paths:
  description: The files written - C(json) (C(repair.json)) and C(md) (C(repair.md)).
  returned: O(mode=report)
  type: dict
  sample: {json: /srv/calico-repair/repair.json, md: /srv/calico-repair/repair.md}
lines:
  description: The console summary - the changes, what became of every finding the repair acted on, what remains.
  returned: O(mode=report)
  type: list
  elements: str
  sample: ["1 finding(s) to act on before the repair, 1 fixed, 0 at or above warning after it",
           "node3: sysctl net.ipv4.ip_forward=1 persisted in /etc/sysctl.d/90-calico.conf",
           "SYS001 node3 [critical]: fixed"]
fixed:
  description: How many findings of the audit before the repair are gone after it.
  returned: O(mode=report)
  type: int
  sample: 1
"""
