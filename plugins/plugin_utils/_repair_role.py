# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The repair role's decisions, on the controller: what each per-node step works on (workload
interfaces without proxy_arp, the NetworkManager drop-in's name, the BGP peers), what calico-node
registered after the method changed, the TCP tests of port 179 from ansible.builtin.wait_for,
what changed on a node for the report, and the summary and the one failure at the end. Its
inputs are checked by ``_inputs``. The filters in plugins/filter/repair.py are these
functions. The plan itself is ``_repair.plan`` (the repair_plan action)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.netdoctor.calico.plugins.module_utils._contract import node_identity

# How ansible.builtin.wait_for says it got no connection within its timeout.
_WAIT_FOR_TIMEOUT = "Timeout when waiting for"
BGP_PORT = 179


def _dict(value):
    return value if isinstance(value, Mapping) else {}


def _pick(result, keys):
    result = _dict(result)
    return {k: result[k] for k in keys if k in result}


# ---------------------------------------------------------------------------------------------
# Per-node steps


def proxy_arp_off(fact):
    """The node's Calico workload interfaces (``cali*``, still present) whose proxy_arp is off - the
    ones the audit's SYS001 rule names (``_findings.rule_proxy_arp``); unknown values are left alone."""
    fact = _dict(fact)
    links = {link.get("name") for link in fact.get("links") or ()}
    per_if = _dict(_dict(fact.get("sysctls")).get("interfaces"))
    return [name for name, values in sorted(per_if.items())
            if name.startswith("cali") and name in links and _dict(values).get("proxy_arp") not in (None, 1)]


def nm_target(probe, dropin_path, override_path):
    """Where the NetworkManager drop-in goes, from calico_nm_unmanaged's check-mode result for
    ``dropin_path``: ``dropin_path``, or ``override_path`` (read after them) when files read later
    undo it. ``{path, overrides: [files], ops: "op =, op -=", managed: [devices]}``."""
    probe = _dict(probe)
    found = [o for o in probe.get("overridden_by") or () if isinstance(o, Mapping)]
    managed = list(probe.get("managed_calico_devices") or ())
    overrides = []
    for item in found:
        if item.get("file") not in overrides:
            overrides.append(item.get("file"))
    return {"path": override_path if managed and found else dropin_path, "overrides": overrides,
            "ops": ", ".join(f"op {o.get('op')}" for o in found), "managed": managed}


def registered_ip(fact):
    """The address the node is registered with as the other nodes see it (the audit's reading,
    ``_contract.node_identity``: BIRD's router id, vxlan.calico's local address, calico-node's IP);
    "" when none is known."""
    if not fact:
        return ""
    return node_identity(_dict(fact))["ip"] or ""


def redetection(result, method, intended):
    """Whether calico-node on a node runs with ``method`` and registered ``intended``, from a
    calico_node_facts result: ``{done, method_in_use, registered}``."""
    fact = _dict(_dict(_dict(result).get("ansible_facts")).get("calico_node"))
    in_use = _dict(fact.get("autodetection")).get("method_in_use") if fact else None
    registered = registered_ip(fact)
    return {"done": bool(fact) and in_use == method and registered == str(intended),
            "method_in_use": in_use, "registered": registered}


def bgp_firewall_peers(expected_map, host):
    """The addresses calico_firewall lets TCP/179 through for on ``host``: every other node's
    Calico IP (``peers``) and this node's own (``local``), from the expected map."""
    nodes = _dict(_dict(expected_map).get("nodes"))
    own = _dict(nodes.get(host)).get("ip")
    peers = []
    for name, node in nodes.items():
        ip = _dict(node).get("ip")
        if ip and name != host and ip != own and ip not in peers:
            peers.append(ip)
    return {"peers": peers, "local": [own] if own else []}


def bgp_sessions_up(result, addresses):
    """True when BIRD has an Established session to every address of ``addresses``, from a
    calico_node_facts result."""
    fact = _dict(_dict(_dict(result).get("ansible_facts")).get("calico_node"))
    up = {p.get("address") for p in _dict(fact.get("bird")).get("peers") or () if p.get("established")}
    return set(addresses or ()) <= up


def route_skips(result):
    """One line per route action calico_routes refused (``skipped_actions``): action, route, why."""
    return [f"{s.get('action')} {_dict(s.get('route')).get('dst')} {s.get('reason')}"
            for s in _dict(result).get("skipped_actions") or () if isinstance(s, Mapping)]


def node_changes(results, sysctl_file):
    """What the per-node steps did on one node, for repair_plan's ``changes``: ``results`` maps nm,
    nm_overrides, source_routes, sysctl (``sysctl_changes``), proxy_arp, bgp_firewall, routes and host_managers to
    what those steps registered (missing: the step did not run)."""
    results = _dict(results)
    nm = _dict(results.get("nm"))
    sysctl = dict(_dict(results.get("sysctl")))
    return {
        "nm": _pick(nm, ("changed", "path", "backup_file", "verified_with", "overridden_by")),
        "nm_overrides": list(results.get("nm_overrides") or ()),
        "nm_reloaded": bool(nm.get("reloaded")),
        "source_routes": _pick(results.get("source_routes"), ("changed", "source_routes")),
        "sysctl": sysctl,
        "sysctl_file": sysctl_file if sysctl else "",
        "proxy_arp": list(results.get("proxy_arp") or ()),
        "bgp_firewall": _pick(results.get("bgp_firewall"), ("changed", "actions", "blocking")),
        "routes": _pick(results.get("routes"), ("changed", "actions", "skipped_actions")),
        "host_managers": _pick(results.get("host_managers"), ("changed", "changes", "backup_files",
                                                              "networkd_restart_needed")),
        "overlay_firewall": _pick(results.get("overlay_firewall"), ("changed", "actions", "blocking")),
        "vxlan_offload": [_pick(r, ("changed", "device", "before", "after"))
                          for r in _dict(results.get("vxlan_offload")).get("results") or () if _dict(r).get("changed")],
    }


# ---------------------------------------------------------------------------------------------
# Verify: the peers still down, their TCP tests, the report's inputs, summary and verdict


def down_peers(plan, report=None):
    """host -> the addresses of the BGP peers it still cannot reach: from the audit after the
    repair (``report``, its report.json document: the BGP001 findings), or - in check mode, where
    nothing changed and there is no audit after - from the plan's ``bgp_probe`` per host."""
    out = {}
    if report is not None:
        for finding in _dict(report).get("findings") or ():
            address = _dict(_dict(finding.get("evidence")).get("peer")).get("address")
            if finding.get("id") == "BGP001" and address:
                have = out.setdefault(finding.get("host"), [])
                if address not in have:
                    have.append(address)
        return out
    for host, host_plan in _dict(_dict(plan).get("hosts")).items():
        addresses = []
        for probe in _dict(host_plan).get("bgp_probe") or ():
            if _dict(probe).get("address") and probe["address"] not in addresses:
                addresses.append(probe["address"])
        if addresses:
            out[host] = addresses
    return out


def tcp_probe(item_result, timeout, port=BGP_PORT):
    """One TCP test from one ansible.builtin.wait_for loop item (``item`` = the peer's address):
    ``{address, port, result, error, timeout, seconds}`` as repair_plan's ``probes`` takes it;
    None for a skipped item. wait_for retries a refused connection until its timeout, so a peer
    that refuses and one whose packets are dropped both end as ``timeout``; any other failure is
    ``unreachable`` with wait_for's message."""
    item_result = _dict(item_result)
    if item_result.get("skipped") or "item" not in item_result:
        return None
    msg = item_result.get("msg")
    if item_result.get("state") == "started" and not msg:
        result, error = "open", None
    elif str(msg or "").startswith(_WAIT_FOR_TIMEOUT) or not msg:
        result, error = "timeout", str(msg) if msg else None
    else:
        result, error = "unreachable", str(msg)
    return {"address": str(item_result["item"]), "port": int(item_result.get("port") or port), "result": result,
            "error": error, "timeout": float(timeout), "seconds": item_result.get("elapsed")}


def tcp_probes(results, timeout, port=BGP_PORT):
    """host -> its TCP tests, from host -> the registered result of the wait_for loop over its down
    peers (hosts where it did not run get an empty list)."""
    out = {}
    for host, registered in (results or {}).items():
        probes = (tcp_probe(r, timeout, port) for r in _dict(registered).get("results") or ())
        out[host] = [p for p in probes if p]
    return out


def autodetection_result(result, manifest, redetected):
    """repair_plan's ``autodetection_result``: what calico_autodetection did (changed, previous,
    method, target, command), the manifest path, and host -> the address each node registered
    after re-detecting (None where it was not waited for)."""
    out = _pick(result, ("changed", "previous", "method", "target", "command"))
    out.update(path=manifest, redetected=dict(redetected or {}))
    return out


def audit_reports(report_dir, phases, check_mode):
    """The audits' report.json paths repair_plan reads: ``before``, ``after_autodetection`` (when
    that audit ran: ``phases`` are the plan phases of the run) and ``after`` (None in check mode,
    where no audit runs after)."""
    return {"before": f"{report_dir}/before/report.json",
            "after_autodetection": (f"{report_dir}/after-autodetection/report.json"
                                    if "after-autodetection" in (phases or ()) else None),
            "after": None if check_mode else f"{report_dir}/after/report.json"}


def summary_lines(result):
    """What a person reads after the repair: repair_plan's own summary lines, then the report paths."""
    result = _dict(result)
    lines = list(result.get("lines") or ["no repair report: " + str(result.get("msg") or "it was not written")])
    paths = _dict(result.get("paths"))
    if paths:
        lines.append("reports: " + ", ".join(f"{fmt} {path}" for fmt, path in paths.items()))
    return lines


def failure(result, fail_on):
    """The one message the repair fails with, or "" when the audit after it is clean enough."""
    result = _dict(result)
    if result.get("failed"):
        return str(result.get("msg") or "writing the repair report failed")
    if result.get("verdict") != "failed":
        return ""
    failing = [f for f in result.get("failing") or () if isinstance(f, Mapping)]
    shown = "; ".join(f"{f.get('id')} {f.get('host')} {f.get('summary')}" for f in failing[:5])
    more = f" (and {len(failing) - 5} more)" if len(failing) > 5 else ""
    md = _dict(result.get("paths")).get("md")
    return (f"{len(failing)} finding(s) at or above repair_fail_on={fail_on} remain after the repair: {shown}{more}."
            + (f" See {md}." if md else ""))


def needs_expected_map(plan):
    """True when a per-node step of the plan works against the expected route map (routes, source
    routes, the BGP firewall's peer addresses) on some host."""
    return any(_dict(host_plan).get(step) for host_plan in _dict(_dict(plan).get("hosts")).values()
               for step in ("routes", "source_routes", "bgp_firewall"))
