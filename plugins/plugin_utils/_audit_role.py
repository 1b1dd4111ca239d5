# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The audit role's decisions, on the controller: where the routes are checked, which peers each
node looks its routes up for, which hosts gave no facts (and why), the drift the nodes sent back,
and what a person reads at the end - a compact summary and one failure message. The filters in
plugins/filter/audit.py are these functions."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import SEVERITIES, sort_findings

ROUTE_CHECKS = ("digest", "node", "controller")
# Findings the summary names one per line; report.md has them all.
SUMMARY_FINDINGS = 10


def route_check_hosts(setting, map_result, hosts):
    """The hosts whose routes are checked on the node (calico_routes in check mode, a second round
    trip): with ``digest`` only those whose route digest differs from what the map predicts (none
    in a healthy fleet), with ``node`` every host the map covers, with ``controller`` none (the
    facts carry the full routes). ``map_result``: fleet_audit's map_only result."""
    if setting not in ROUTE_CHECKS:
        raise ValueError(f"audit_route_check must be one of {', '.join(ROUTE_CHECKS)}, not {setting!r}")
    if setting == "controller" or not isinstance(map_result, Mapping) or "clusters" not in map_result:
        return []
    wanted = set(map_result.get("drift_needed") or ()) if setting == "digest" else set(map_result["clusters"])
    return [h for h in hosts if h in wanted]


def _subnet(address):
    ip = ipaddress.ip_address(address)
    return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False))


def peer_groups(intended_ips, limit):
    """The peers the nodes look their routes up for (SRC001), in groups: up to ``limit`` nodes every
    node is its own group (each node looks every other one up); above it the first two nodes of each
    /24 (IPv4) or /64 (IPv6), so a node looks up one peer per subnet - SRC001's failure is a route
    per subnet - and what each node sends back stays O(node). ``intended_ips``: host -> address."""
    ips = [str(ip) for ip in (intended_ips or {}).values()]
    small = len(ips) <= int(limit)
    groups = {}
    for ip in ips:
        group = groups.setdefault(ip if small else _subnet(ip), [])
        if len(group) < 2:
            group.append(ip)
    return list(groups.values())


def peer_ips(groups, own_ip):
    """One node's look-ups: the first address of every peer group that is not its own."""
    out = []
    for group in groups or ():
        others = [ip for ip in group if ip != own_ip]
        if others:
            out.append(others[0])
    return out


def task_failures(results, what, active_hosts=None):
    """host -> why a task gave nothing there, from host -> that task's registered result:
    ``unreachable: <msg>`` or ``<what>: <msg>`` (``what`` says which task, e.g. "facts failed").
    With ``active_hosts`` (the play's hosts still running), a host not among them failed in an
    earlier play of the run (e.g. the repair's per-node play): its old results are not this audit's."""
    active = None if active_hosts is None else set(active_hosts)
    out = {}
    for host, registered in (results or {}).items():
        if active is not None and host not in active:
            out[host] = "failed earlier in this run, not audited again"
            continue
        result = registered if isinstance(registered, Mapping) else {}
        if result.get("unreachable") or result.get("failed"):
            kind = "unreachable" if result.get("unreachable") else what
            out[host] = f"{kind}: {str(result.get('msg') or 'no message').strip()}"
    return out


def drift_by_host(results):
    """host -> the drift its calico_routes check sent back (hosts that failed or were skipped left out)."""
    return {host: result["drift"] for host, result in (results or {}).items()
            if isinstance(result, Mapping) and result.get("drift") is not None and not result.get("failed")}


def _finding_line(finding):
    peer = f" -> {finding['peer']}" if finding.get("peer") else ""
    return f"{finding.get('severity')} {finding.get('id')} {finding.get('host')}{peer}: {finding.get('summary')}"


def _paths_line(paths):
    return "reports: " + ", ".join(f"{fmt} {path}" for fmt, path in paths.items())


def summary_lines(result, limit=SUMMARY_FINDINGS):
    """What a person reads after fleet_audit: counts by severity and by id, the worst findings one
    per line (at most ``limit``), the report paths. ``result`` is fleet_audit's registered result."""
    result = result if isinstance(result, Mapping) else {}
    summary = result.get("summary")
    if not isinstance(summary, Mapping):
        why = "it was skipped" if result.get("skipped") else (result.get("msg") or "the audit did not run")
        return [f"no audit report: {why}"]
    audited = summary.get("audited", summary.get("hosts", 0))
    unreachable = list(summary.get("unreachable") or ())
    lines = [f"{summary.get('findings', 0)} finding(s) on {audited} of {summary.get('hosts', 0)} node(s) audited - "
             + ", ".join(f"{summary.get(s, 0)} {s}" for s in SEVERITIES)
             + (f"; not audited: {', '.join(unreachable)}" if unreachable else "")]
    by_id = summary.get("by_id") or {}
    if by_id:
        lines.append("by id: " + ", ".join(f"{fid} {count}" for fid, count in sorted(by_id.items())))
    findings = sort_findings(list(result.get("findings") or ()))
    lines.extend(_finding_line(f) for f in findings[:int(limit)])
    if len(findings) > int(limit):
        lines.append(f"... and {len(findings) - int(limit)} more finding(s) in the reports")
    paths = result.get("report_paths") or {}
    lines.append(_paths_line(paths) if paths else "reports: none written (audit_formats or report_dir is empty)")
    return lines


def failure(result):
    """The one message the audit fails with, or "" when it passed. fleet_audit's result carries a
    ``msg`` only when it failed (a finding at or above fail_on, no node audited, an error) - the role
    registers it with ``failed_when: false`` so the summary is printed first and the play fails once."""
    result = result if isinstance(result, Mapping) else {}
    if result.get("skipped"):
        return ""
    if result.get("failed") or result.get("msg"):
        return str(result.get("msg") or "the fleet audit failed")
    return ""
