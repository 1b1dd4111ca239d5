# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The repair's decisions and its before/after report (pure: data in, data out).

``plan(data)``: from the audit's report.json document, what each step of the repair fixes on which
node, what it leaves alone and why, and the one IP_AUTODETECTION_METHOD for the fleet.
``document(before, after, plan, ...)``: repair.json - every finding before -> after, every change on
every node, what remains with its evidence; ``markdown(doc)`` renders repair.md, ``summary_lines(doc)``
the console summary. The repair_plan action plugin reads the audit reports and writes the files.
"""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.module_utils._calico_view import route_text
from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import at_or_above, failing
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _probes, _report

# The audit reports repair.json names, in the order repair.md lists them.
REPORTS = ("before", "after_autodetection", "after")
STEPS = ("nm", "autodetection", "source_routes", "sysctl", "bgp_firewall", "overlay_firewall", "vxlan_offload",
         "routes")
# What each step is called in the report and the variable / tag that switch it off.
STEP_TEXT = {
    "nm": "NetworkManager drop-in (calico_nm_unmanaged)",
    "autodetection": "IP autodetection method (calico_autodetection)",
    "source_routes": "source routes towards the peers (calico_routes source_routes)",
    "sysctl": "sysctls (ansible.posix.sysctl / sysctl -w)",
    "bgp_firewall": "TCP/179 from the fleet's Calico IPs accepted by the host firewall (calico_firewall)",
    "overlay_firewall": ("the overlay (VXLAN, IPIP, WireGuard) from the fleet's Calico IPs accepted by the host "
                         "firewall (calico_firewall)"),
    "vxlan_offload": "VXLAN tx checksum offload turned off now (calico_vxlan_offload)",
    "routes": "block routes against the expected map (calico_routes)",
}
# What a step left off by default says about itself.
STEP_OFF_HINT = {
    "bgp_firewall": (": the host firewall is left alone, the session is tested on TCP 179 (set it to true to let "
                     "TCP/179 from the fleet's Calico IPs through)"),
    "overlay_firewall": (": the host firewall is left alone (set it to true to let the overlay from the fleet's "
                         "Calico IPs through)"),
    "vxlan_offload": (": the offload is left as it is; the lasting fix is FelixConfiguration featureDetectOverride "
                      "ChecksumOffloadBroken=true (set it to true to turn it off now as well)"),
}
# Finding ids the repair never changes anything for, and why.
NOT_REPAIRED = {
    "HOST001": "node names and /etc/hosts are reported only (the preflight role fixes /etc/hosts on request)",
    "DUP001": "two nodes with one address need a decision about which one keeps it",
    "MTU001": "the tunnel MTU is FelixConfiguration's (ipipMTU / vxlanMTU); changing it restarts the data plane",
    "PATH001": "a path trace names a step; its own finding is repaired",
    "UNREACH": "the node gave no facts, so nothing on it is known or changed",
    "DS001": "the datastore is not changed by the repair",
    "DS002": "the datastore is not changed by the repair",
    "DS003": "the datastore is not changed by the repair",
    "PBR001": ("a policy-routing rule and its table are not Calico's: the repair does not delete rules another tool "
               "owns (a VPN, a cloud agent) - remove or narrow it by hand"),
    "MTU003": ("the underlay NIC's MTU is the host's network configuration and the pods' MTU is Felix's: the repair "
               "changes neither (restore the NIC's MTU, or lower the pods' and re-create them)"),
    "BIRD001": "BIRD runs inside calico-node: the repair does not restart Calico (restart calico-node on the node)",
    "PROBE001": "no finding names what drops these packets, so there is nothing the repair could change",
    "CT001": "the conntrack limit is the kernel's (net.netfilter.nf_conntrack_max): raise it in the host's sysctl "
             "configuration, sized for its memory",
    "FLX001": "Felix runs inside calico-node: the repair does not restart Calico (restart calico-node there)",
    "FLX002": "Felix programs its chains and sets: the repair does not restart Calico (restart calico-node there)",
    "BPF001": "the eBPF prerequisites are the kernel's and the host's mounts",
    "WG001": "WireGuard keys and MTU are Felix's (FelixConfiguration); restart calico-node once they are right",
    "MTU002": "the MTU file and mtuIfacePattern are Felix's (FelixConfiguration mtuIfacePattern)",
    "DUP002": "two machines with one identity need a decision about which one keeps it (regenerate machine-id, rename)",
    "NET001": ("host network managers are changed only with repair_networkd_foreign, repair_link_mac_policy or "
               "repair_nm_cloud_setup (calico_host_managers)"),
    "IPT001": "two iptables backends: run the cleanup command the finding names, after checking nothing else uses them",
    "CNI001": "the CNI files are the installer's: re-run Calico's install (the operator, or its init container)",
    "REG001": "the registered address is calico-node's IP setting: fix the method or the pinned IP",
    "POOL001": "IP pools are the datastore's (calicoctl / the operator's Installation)",
    "BGP002": "BGP configuration is the datastore's (BGPConfiguration, BGPPeer, Node resources)",
}


def sys001_kind(finding):
    """ip_forward, rp_filter, proxy_arp or mtu: which SYS001 rule produced the finding."""
    evidence = finding.get("evidence") or {}
    if "net.ipv4.ip_forward" in evidence:
        return "ip_forward"
    if "strict_interfaces" in evidence:
        return "rp_filter"
    if "proxy_arp" in evidence:
        return "proxy_arp"
    if "tunnel" in evidence:
        return "mtu"
    return "other"


def kind_of(finding):
    """A sub-kind that tells two findings of one id on one host apart, stable across runs."""
    fid, evidence = finding.get("id"), finding.get("evidence") or {}
    if fid == "SYS001":
        return sys001_kind(finding)
    if fid in ("RT001", "RT002"):
        return evidence.get("kind") or "local"
    if fid == "SRC001":
        source, own = evidence.get("source"), evidence.get("calico_ip")
        return "source" if source and source != own else "interface"
    if fid == "NM001":
        return "networkd" if "matching_calico" in evidence else "networkmanager"
    return ""


def key_of(finding):
    return "|".join(str(v or "") for v in (finding.get("id"), finding.get("host"), finding.get("peer"),
                                           kind_of(finding)))


BIRD_MISSING = ("in native BGP mode BIRD programs the block routes and deletes a proto bird route it does not export "
                "itself at once, so a route added by hand does not last: BIRD's own configuration (its export "
                "filter) or the session to the owner drops it - check `birdcl show route for <block> all` on the "
                "node and calico-node's BIRD templates")


def step_of(finding, mode=None):
    """(step, None) when a step of the repair fixes the finding, else (None, why not)."""
    fid, kind = finding.get("id"), kind_of(finding)
    if fid == "NM001":
        if kind == "networkd":
            return None, ("systemd-networkd matches Calico's devices: narrow the .network file's [Match] (restarting "
                          "networkd drops pod connections, so the repair leaves it to a maintenance window)")
        return "nm", None
    if fid in ("AD001", "AD002"):
        return "autodetection", None
    if fid == "SRC001":
        return "source_routes", None
    if fid == "BGP001":
        return "bgp_firewall", None
    if fid == "FW001":
        if (finding.get("evidence") or {}).get("firewalld_commands"):
            return None, ("firewalld owns the chain: run the firewall-cmd rich rules the finding names (the repair "
                          "never edits firewalld's table)")
        return "overlay_firewall", None
    if fid == "OFF001":
        return "vxlan_offload", None
    if fid == "SYS001":
        if kind in ("ip_forward", "rp_filter", "proxy_arp"):
            return "sysctl", None
        if kind == "mtu":
            return None, NOT_REPAIRED["MTU001"]
        return None, "not a sysctl the repair sets"
    if fid in ("WL001", "VX001"):
        return "routes", None
    if fid in ("RT001", "RT002"):
        if kind == "shadow":
            return None, "a non-Calico route inside a block is reported, never deleted"
        if kind == "double_owned":
            return None, "two nodes claim one block: drop the stale claim (calicoctl ipam check)"
        if kind == "missing" and mode == "bgp":
            return None, BIRD_MISSING
        return "routes", None
    return None, NOT_REPAIRED.get(fid, "no step of the repair fixes this finding")


def step_enabled(step, steps, run_tags, skip_tags):
    """(enabled, why not): the repair_<step> variable and the tags of the run."""
    tag = f"repair_{step}"
    if not steps.get(step, True):
        return False, f"repair_{step} is false" + STEP_OFF_HINT.get(step, "")
    if tag in (skip_tags or ()):
        return False, f"skipped with --skip-tags {tag}"
    run_tags = list(run_tags or ("all",))
    if "all" not in run_tags and tag not in run_tags:
        return False, f"not selected by --tags {','.join(run_tags)}"
    return True, None


def _bgp_peer(finding):
    peer = (finding.get("evidence") or {}).get("peer")
    if isinstance(peer, dict) and peer.get("address"):
        return {"peer": finding.get("peer"), "address": peer["address"], "session": peer.get("name")}
    return None


def plan(data):  # noqa: C901, PLR0912 - one pass over the findings, one branch per catalogue entry
    report = data["report"]
    hosts = list(data.get("hosts") or report.get("hosts") or ())
    min_severity = data.get("min_severity") or "warning"
    steps = data.get("steps") or {}
    enabled = {s: step_enabled(s, steps, data.get("run_tags"), data.get("skip_tags")) for s in STEPS}
    findings = report.get("findings") or []
    mode = (report.get("summary") or {}).get("mode")
    by_key = {}
    for f in findings:
        by_key.setdefault((f.get("id"), f.get("host")), f)

    per_host = {h: {"nm": False, "source_routes": False, "ip_forward": False, "rp_filter": False, "proxy_arp": False,
                    "bgp_firewall": False, "overlay_firewall": [], "vxlan_offload": [], "routes": False,
                    "add_missing": True, "bgp_probe": [], "findings": []}
                for h in hosts}
    items, errors, ad_findings = [], [], []
    for f in findings:
        host = f.get("host")
        item = {"key": key_of(f), "id": f.get("id"), "severity": f.get("severity"), "host": host,
                "peer": f.get("peer"), "kind": kind_of(f), "summary": f.get("summary"), "remedy": f.get("remedy"),
                "action": None, "step": None, "why": None}
        items.append(item)
        cause = (f.get("evidence") or {}).get("caused_by")
        step, why_not = step_of(f, mode)
        if host in per_host:
            per_host[host]["findings"].append(item["key"])
        if f.get("id") == "BGP001" and host in per_host and not cause:
            probe = _bgp_peer(f)
            if probe and probe not in per_host[host]["bgp_probe"]:
                per_host[host]["bgp_probe"].append(probe)
        if cause:
            cause_finding = by_key.get((cause.get("id"), cause.get("host"))) or cause
            cause_step, _why = step_of(cause_finding, mode)
            item["step"] = step
            if cause_step and enabled[cause_step][0]:
                item.update(action="follows", why=f"follows {cause['id']} on {cause['host']}, which the repair fixes")
            else:
                item.update(action="not_repaired",
                            why=f"follows {cause['id']} on {cause['host']}, which the repair does not fix")
            if step == "routes" and item["kind"] == "missing" and host in per_host and (
                    item["action"] == "not_repaired" or cause.get("id") == "BGP001"):
                # BIRD withdrew the route with the session and learns it again once the session is back;
                # adding it by hand would hide the cause.
                per_host[host]["add_missing"] = False
            if step == "routes" and host in per_host and action_ok(item):
                per_host[host]["routes"] = True
            continue
        if not at_or_above(f.get("severity"), min_severity):
            item.update(action="below_threshold", step=step,
                        why=f"{f.get('severity')}: reported only (repair_min_severity={min_severity})")
            continue
        if step is None:
            item.update(action="not_repaired", why=why_not)
            continue
        ok, why = enabled[step]
        item["step"] = step
        if not ok:
            item.update(action="not_repaired", why=why)
            continue
        if host not in per_host and step != "autodetection":
            item.update(action="not_repaired", why=f"{host} is not a host of this play")
            continue
        item["action"] = "repair"
        if step == "autodetection":
            ad_findings.append(f)
        elif step == "sysctl":
            per_host[host][item["kind"]] = True
        elif step in ("overlay_firewall", "vxlan_offload"):
            # The flows (vxlan, ipip, wireguard) or the devices the step acts on.
            value = (f.get("evidence") or {}).get("flow" if step == "overlay_firewall" else "device")
            if value and value not in per_host[host][step]:
                per_host[host][step].append(value)
        else:
            per_host[host][step] = True

    autodetection = _autodetection(data, ad_findings, errors)
    if autodetection["needed"]:
        for item in items:
            if item["step"] == "autodetection" and item["action"] == "repair":
                item["why"] = f"IP_AUTODETECTION_METHOD={autodetection['method']} ({autodetection['source']})"
    lines = [f"{i['id']} {i['host']}{' -> ' + str(i['peer']) if i['peer'] else ''} [{i['severity']}]: "
             + (f"repair - {STEP_TEXT[i['step']]}" if i["action"] == "repair" else f"{i['action']} - {i['why']}")
             for i in items if i["action"] != "below_threshold"]
    return {"errors": errors, "autodetection": autodetection, "hosts": per_host, "items": items, "lines": lines,
            "steps": {s: {"enabled": ok, "why": why} for s, (ok, why) in enabled.items()},
            "min_severity": min_severity}


def action_ok(item):
    return item["action"] == "follows"


def _autodetection(data, ad_findings, errors):
    """One method for the fleet: the given one, checked on every node, or the audit's recommendation."""
    given = (data.get("method") or "").strip()
    out = {"needed": bool(ad_findings), "method": None, "source": None, "reason": None,
           "hosts": sorted({f.get("host") for f in ad_findings})}
    if given:
        replay = data.get("replay") or {}
        bad = [f"{h}: {r.get('error') or 'invalid'}" for h, r in sorted(replay.items()) if not r.get("valid")]
        if bad:
            errors.append(f"repair_autodetection_method={given!r} is invalid - calico-node would terminate: "
                          f"{bad[0]}. Valid methods: first-found, interface=REGEX[,REGEX], "
                          "skip-interface=REGEX[,REGEX], cidr=CIDR[,CIDR], can-reach=DESTINATION, "
                          "kubernetes-internal-ip. Nothing was changed.")
        else:
            misses = []
            for host, r in sorted(replay.items()):
                picked = (r.get("address") or "").split("/", 1)[0]
                if not picked:
                    misses.append(f"{host} picks no address ({r.get('error') or 'no interface matches'})")
                elif r.get("intended") and picked != r["intended"]:
                    misses.append(f"{host} picks {picked} ({r.get('interface')}) instead of {r['intended']}")
            if misses:
                errors.append(f"repair_autodetection_method={given!r} does not give {len(misses)} of {len(replay)} "
                              f"node(s) their intended address: {'; '.join(misses[:5])}"
                              f"{' ...' if len(misses) > 5 else ''}. Nothing was changed.")
        out.update(method=given, source="repair_autodetection_method")
        return out
    if not ad_findings:
        return out
    for f in ad_findings:
        evidence = f.get("evidence") or {}
        if evidence.get("recommended_method"):
            out.update(method=evidence["recommended_method"], source="recommended by the audit",
                       reason=(evidence.get("recommendation") or {}).get("reason"))
            return out
    reasons = {str(((f.get("evidence") or {}).get("recommendation") or {}).get("reason")) for f in ad_findings}
    errors.append(f"{', '.join(sorted({f['id'] for f in ad_findings}))} on {', '.join(out['hosts'])}: no single "
                  f"IP_AUTODETECTION_METHOD fits the fleet ({'; '.join(sorted(reasons))}). Set "
                  "repair_autodetection_method, pin IP=<address> on the odd node, or set repair_autodetection=false "
                  "to repair the rest. Nothing was changed.")
    return out


# --- the report ---------------------------------------------------------------------------------

def outcome(item, after_keys, check_mode, after_available, not_audited=None):
    """What became of one finding of the audit before the repair."""
    if check_mode or not after_available:
        return {"repair": "would be repaired", "follows": "would follow its cause's repair"}.get(
            item["action"], "would stay")
    if item.get("host") in (not_audited or {}):
        return "unknown: not audited after the repair"
    if item["key"] in after_keys:
        after = after_keys[item["key"]]
        return "remains" if at_or_above(after["severity"], "warning") else f"remains ({after['severity']})"
    return "fixed" if item["action"] in ("repair", "follows") else "gone"


def probe_text(probe):
    result, address = probe.get("result"), f"{probe.get('address')}:{probe.get('port', 179)}"
    seconds = probe.get("timeout")
    if result == "open":
        return (f"TCP connect to {address} succeeded: port 179 is reachable, look at BIRD's session "
                "(`birdcl show protocols all`)")
    if result == "timeout":
        return (f"TCP connect to {address} timed out after {seconds} s: packets to TCP 179 are dropped on the way "
                "(a firewall rule on the node or the peer, or a network ACL)")
    if result == "refused":
        return f"TCP connect to {address} was refused: nothing listens on 179 there (BIRD down on the peer?)"
    return f"TCP connect to {address} failed: {probe.get('error') or result}"


def document(before, after, the_plan, *, generated, changes=None, probes=None, check_mode=False, fail_on="warning",
             autodetection_result=None, reports=None):
    """repair.json: ``before`` / ``after`` the audit's report.json documents (``after`` None: no audit
    after the repair - check mode, or not run), ``the_plan`` the plan of the audit before, ``changes``
    host -> what the repair's tasks returned there, ``probes`` host -> the TCP tests of port 179,
    ``reports`` name -> path of the audit reports (before, after_autodetection, after), ``generated``
    an ISO 8601 timestamp."""
    check_mode = bool(check_mode)
    fail_on = fail_on or "warning"
    raw_changes = changes or {}
    probes = probes or {}
    after_keys = {key_of(f): f for f in (after or {}).get("findings") or ()}
    planned = {i["key"]: i for i in the_plan.get("items") or ()}
    not_audited = {h: line.get("status") for h, line in ((after or {}).get("hosts") or {}).items()
                   if line.get("status") == "unreachable"}
    changes = {host: describe(raw, check_mode) for host, raw in sorted(raw_changes.items())}

    rows = []
    for f in (before or {}).get("findings") or ():
        key = key_of(f)
        item = planned.get(key) or {"key": key, "action": "not_repaired", "step": None,
                                    "why": "not in the plan (found by a later audit)"}
        rows.append({"id": f["id"], "severity": f["severity"], "host": f.get("host"), "peer": f.get("peer"),
                     "kind": kind_of(f), "summary": f.get("summary"), "action": item["action"], "step": item["step"],
                     "why": item["why"],
                     "after": outcome({**item, "host": f.get("host")}, after_keys, check_mode, after is not None,
                                      not_audited),
                     "after_severity": (after_keys.get(key) or {}).get("severity")})
    before_keys = {r["id"] + "|" + str(r["host"] or "") + "|" + str(r["peer"] or "") + "|" + r["kind"] for r in rows}
    new = [f for k, f in after_keys.items() if k not in before_keys]

    remaining = failing((after or {}).get("findings") or (), fail_on)
    # Verdicts rest on packets (issue 12): ok only when the probe matrix after the repair is clean.
    matrix = (after or {}).get("probes")
    probe_failures = _probes.failing_pairs(matrix) if isinstance(matrix, dict) else []
    if check_mode:
        verdict = "check"
    elif after is None:
        verdict = "unverified"
    else:
        verdict = "failed" if remaining or probe_failures else "ok"
    for row in rows:
        refused = [r for r in ((raw_changes.get(row["host"]) or {}).get("routes") or {}).get("skipped_actions") or ()
                   if "touch_foreign" in str(r.get("reason"))]
        if row["step"] == "routes" and row["action"] == "repair" and refused:
            row["why"] = (f"refused: {refused[0].get('reason')} - the route is left alone unless "
                          "repair_touch_foreign=true")
            if check_mode:
                row["after"] = "would be refused"
            continue
        # The step changed something on the node and the finding is still there: BIRD, Felix or whatever
        # caused it put it back - the cause is elsewhere.
        if row["after"].startswith("remains") and row["action"] == "repair" and changes.get(row["host"]):
            row["why"] = ("the repair changed this node, but the audit after it still finds this: something "
                          "re-asserts it (BIRD, Felix or the datastore) - see the remedy")
    if autodetection_result:
        changes.setdefault("(fleet)", []).extend(describe_autodetection(autodetection_result, check_mode))
    changes = {host: lines for host, lines in changes.items() if lines}
    return {
        "schema_version": 1,
        "generated": generated,
        "check_mode": check_mode,
        "verdict": verdict,
        "fail_on": fail_on,
        "reports": {k: (reports or {}).get(k) for k in REPORTS if (reports or {}).get(k)},
        "summary": {
            "before": (before or {}).get("summary"),
            "after": (after or {}).get("summary"),
            "fixed": sum(1 for r in rows if r["after"] == "fixed"),
            "remaining": len(remaining),
            "changed_hosts": sorted(h for h, c in changes.items() if c),
        },
        "autodetection": the_plan.get("autodetection"),
        "steps": the_plan.get("steps"),
        "findings": rows,
        "new_findings": [{"id": f["id"], "severity": f["severity"], "host": f.get("host"), "peer": f.get("peer"),
                          "summary": f.get("summary")} for f in new],
        "remaining": [{"id": f["id"], "severity": f["severity"], "host": f.get("host"), "peer": f.get("peer"),
                       "summary": f.get("summary"), "remedy": f.get("remedy"), "probe": _probe_of(f, probes)}
                      for f in remaining],
        "changes": changes,
        "probes": probes,
        "probe_matrix": {"measured": isinstance(matrix, dict) and bool(matrix),
                         "pairs": sum(len(row) for row in (matrix or {}).values()) if isinstance(matrix, dict) else 0,
                         "failing": [{"src": src, "dst": dst, **_probe_cell(matrix[src][dst])}
                                     for src, dst in probe_failures]},
    }


def _probe_cell(cell):
    return {"loss": cell.get("loss"), "tcp": cell.get("tcp"), "df_ok": cell.get("df_ok"),
            "dst_address": cell.get("dst"), "failed_via": cell.get("failed_via") or []}


def _probe_pair_text(pair):
    what = "no reply" if pair.get("loss") == 1 or pair.get("failed_via") else "the DF packet at the MTU was lost"
    return f"{pair['src']} -> {pair['dst']} ({pair.get('dst_address')}): {what}"


def _probe_of(finding, probes):
    """The TCP test towards a BGP001 finding's peer, from the node that has the finding."""
    if finding.get("id") != "BGP001":
        return None
    address = ((finding.get("evidence") or {}).get("peer") or {}).get("address")
    return next((p for p in probes.get(finding.get("host")) or () if p.get("address") == address), None)


def report_result(doc, paths):
    """What the repair_plan action returns in report mode: the verdict, the findings that fail it,
    the files written, the console summary and how many findings the repair fixed."""
    pairs = (doc.get("probe_matrix") or {}).get("failing") or []
    probe_rows = [{"id": "PROBES", "severity": "critical", "host": p["src"], "peer": p["dst"],
                   "summary": f"packets still do not flow: {_probe_pair_text(p)}"} for p in pairs]
    out = {"verdict": doc["verdict"], "failing": doc["remaining"] + probe_rows, "paths": paths,
           "lines": summary_lines(doc), "fixed": doc["summary"]["fixed"]}
    if pairs:
        out["probe_failures"] = [[p["src"], p["dst"]] for p in pairs]
    return out


def describe(raw, check_mode):
    """Lines saying what changed on one host, from the results of the repair's tasks."""
    lines = []
    nm = raw.get("nm") or {}
    if nm.get("changed"):
        text = f"NetworkManager drop-in {nm.get('path')} written (Calico devices unmanaged"
        text += f", verified with {nm.get('verified_with')})" if not check_mode else ")"
        if raw.get("nm_overrides"):
            text += (f"; named to sort after {', '.join(raw['nm_overrides'])}, which replaces "
                     "unmanaged-devices (the durable fix is in that file: = becomes +=)")
        if nm.get("backup_file"):
            text += f"; backup {nm['backup_file']}"
        lines.append(text)
    if raw.get("nm_reloaded"):
        lines.append("NetworkManager asked to reload its configuration (a reload, never a restart)")
    src = raw.get("source_routes") or {}
    for net in ((src.get("source_routes") or {}).get("networks") or ()):
        verbs = {"add": "added", "prepend": "put in front", "replace": "replaced"}
        verb = verbs.get(net.get("action"), net.get("action"))
        text = f"source route {route_text(net.get('route') or {})} {verb} (SRC001: {net.get('peer_count')} peer(s)"
        if net.get("after"):
            text += f", now {net['after'][0]}"
        lines.append(text + "; not persistent - add it to the network configuration)")
    for key, value in (raw.get("sysctl") or {}).items():
        where = f" persisted in {raw['sysctl_file']}" if raw.get("sysctl_file") else ""
        lines.append(f"sysctl {key}={value}{where}")
    if raw.get("proxy_arp"):
        names = raw["proxy_arp"]
        lines.append(f"proxy_arp=1 on {len(names)} workload interface(s) ({', '.join(names[:5])}"
                     f"{' ...' if len(names) > 5 else ''}), runtime only (Felix owns them)")
    firewall = raw.get("bgp_firewall") or {}
    if firewall.get("changed"):
        chains = sorted({f"{b.get('family')} {b.get('table')} {b.get('base_chain') or b.get('chain')}"
                         for b in firewall.get("blocking") or ()})
        drops = sorted({b.get("rule") for b in firewall.get("blocking") or () if b.get("rule")})
        lines.append(f"host firewall: TCP/179 with the fleet's Calico IPs accepted in front of {', '.join(chains)} "
                     f"(BGP001; it dropped it: {'; '.join(drops[:3]) or 'the chain policy'}); not persistent - make "
                     "it permanent in the firewall's own configuration")
    overlay = raw.get("overlay_firewall") or {}
    if overlay.get("changed"):
        chains = sorted({f"{b.get('family')} {b.get('table')} {b.get('base_chain') or b.get('chain')}"
                         for b in overlay.get("blocking") or ()})
        lines.append(f"host firewall: the overlay from the fleet's Calico IPs accepted in front of "
                     f"{', '.join(chains) or 'the chains that dropped it'} (FW001); not persistent - make it permanent "
                     "in the firewall's own configuration")
    for device in raw.get("vxlan_offload") or ():
        lines.append(f"{device.get('device')}: tx checksum offload turned off now (OFF001); the lasting fix is "
                     "FelixConfiguration featureDetectOverride ChecksumOffloadBroken=true")
    managers = raw.get("host_managers") or {}
    if managers.get("changed"):
        lines += [f"host network managers (NET001): {change}" for change in managers.get("changes") or ()]
        if managers.get("networkd_restart_needed"):
            lines.append("systemd-networkd reads its new drop-in at its next start (not restarted here)")
    routes = raw.get("routes") or {}
    actions = routes.get("actions") or {}
    for verb, word in (("replace", "replaced"), ("add", "added"), ("delete", "deleted")):
        for route in actions.get(verb) or ():
            lines.append(f"route {route_text(route)} {word}")
    for skipped in routes.get("skipped_actions") or ():
        hint = " (set repair_touch_foreign=true to change it)" if "touch_foreign" in str(skipped.get("reason")) else ""
        lines.append(f"REFUSED {skipped.get('action')} {route_text(skipped.get('route') or {})}: "
                     f"{skipped.get('reason')}{hint}")
    return lines


def describe_autodetection(result, check_mode):
    if not result.get("changed"):
        return []
    text = (f"IP_AUTODETECTION_METHOD {result.get('previous') or '(unset: first-found)'} -> {result.get('method')} "
            f"on the {result.get('target')}" + (f" ({' '.join(result['command'])})" if result.get("command") else ""))
    if result.get("target") == "manifest":
        text += (f" - {result.get('path')}; calico-node reads it only once the manifest is applied "
                 "(kubectl apply -f), so the nodes keep their addresses until then")
    redetected = {h: ip for h, ip in (result.get("redetected") or {}).items() if ip}
    if redetected and not check_mode:
        text += ("; calico-node re-detected with it on every node, each registered with its intended IP: "
                 + ", ".join(f"{h} {ip}" for h, ip in sorted(redetected.items())))
    return [text]


def _md(text):
    return _report._md(text if text is not None else "")


def summary_lines(doc):
    """The console summary: the changes, what became of every finding the repair looked at, what remains."""
    check = doc["check_mode"]
    lines = ["check mode: nothing was changed; this is what the repair would do"] if check else []
    rows = [r for r in doc["findings"] if r["action"] in ("repair", "not_repaired")]
    lines.append(f"{len(rows)} finding(s) to act on before the repair"
                 + ("" if check else f", {sum(1 for r in rows if r['after'] == 'fixed')} fixed, "
                                     f"{len(doc['remaining'])} at or above {doc['fail_on']} after it"))
    for host in sorted(doc["changes"]):
        for change in doc["changes"][host]:
            lines.append(f"{host}: {'(would) ' if check else ''}{change}")
    for row in rows:
        explain = row["why"] and (row["action"] != "repair"
                                  or not row["after"].startswith(("fixed", "would be repaired")))
        lines.append(f"{row['id']} {row['host']}{' -> ' + str(row['peer']) if row['peer'] else ''} "
                     f"[{row['severity']}]: {row['after']}" + (f" - {row['why']}" if explain else ""))
    for f in doc["remaining"]:
        text = f"REMAINS {f['id']} {f['host']} [{f['severity']}]: {f['summary']}"
        if f.get("probe"):
            text += f" - {probe_text(f['probe'])}"
        lines.append(text)
    matrix = doc.get("probe_matrix") or {}
    for pair in matrix.get("failing") or ():
        lines.append(f"PROBES FAIL {_probe_pair_text(pair)}")
    if not check and matrix.get("measured") and not matrix.get("failing"):
        lines.append(f"probe matrix after the repair: all {matrix.get('pairs')} probed pair(s) pass")
    return lines


def markdown(doc):
    out = ["# Calico repair", ""]
    failing_pairs = (doc.get("probe_matrix") or {}).get("failing") or []
    verdict = {"ok": "**verified** - the audit after the repair finds nothing at or above "
                     f"`{doc['fail_on']}`" + (" and every probed pair passes"
                                              if (doc.get("probe_matrix") or {}).get("measured") else ""),
               "failed": f"**not clean** - {len(doc['remaining'])} finding(s) at or above `{doc['fail_on']}` remain"
                         + (f", {len(failing_pairs)} probed pair(s) still fail: "
                            + "; ".join(_probe_pair_text(p) for p in failing_pairs[:5]) if failing_pairs else ""),
               "check": "**check mode** - nothing was changed; below is what the repair would do",
               "unverified": "**unverified** - the audit after the repair did not run"}[doc["verdict"]]
    out += [verdict, ""]
    before, after = doc["summary"]["before"] or {}, doc["summary"]["after"] or {}
    out += ["| | critical | warning | info |", "|---|---|---|---|",
            f"| before | {before.get('critical', 0)} | {before.get('warning', 0)} | {before.get('info', 0)} |"]
    if after:
        out.append(f"| after | {after.get('critical', 0)} | {after.get('warning', 0)} | {after.get('info', 0)} |")
    out.append("")
    ad = doc.get("autodetection") or {}
    if ad.get("needed") or ad.get("method"):
        out += ["## IP autodetection", "",
                f"Method: `{ad.get('method')}` ({ad.get('source')}); nodes with AD001/AD002: "
                f"{', '.join(ad.get('hosts') or []) or 'none'}.", ""]
    out += ["## Changes" + (" (predicted)" if doc["check_mode"] else ""), ""]
    if not any(doc["changes"].values()):
        out += ["None.", ""]
    for host in sorted(doc["changes"]):
        for change in doc["changes"][host]:
            out.append(f"- **{_md(host)}**: {_md(change)}")
    out += ["", "## Findings, before -> after", "", "| id | severity | node | peer | after | how / why |",
            "|---|---|---|---|---|---|"]
    for row in doc["findings"]:
        how = STEP_TEXT.get(row["step"], "") if row["action"] == "repair" else row["why"]
        out.append(f"| {row['id']} | {row['severity']} | {_md(row['host'])} | {_md(row['peer'] or '')} | "
                   f"{_md(row['after'])} | {_md(how)} |")
    if doc["new_findings"]:
        out += ["", "## New after the repair", ""]
        out += [f"- {f['id']} {_md(f['host'])} [{f['severity']}]: {_md(f['summary'])}" for f in doc["new_findings"]]
    if doc["remaining"]:
        out += ["", "## Not fixed", ""]
        for f in doc["remaining"]:
            out.append(f"- **{f['id']} {_md(f['host'])}** [{f['severity']}]: {_md(f['summary'])}")
            if f.get("probe"):
                out.append(f"  - evidence: {_md(probe_text(f['probe']))}")
            if f.get("remedy"):
                out.append(f"  - remedy: {_md(f['remedy'])}")
    out += ["", "Reports: " + ", ".join(f"{k}: `{v}`" for k, v in doc["reports"].items()), ""]
    return "\n".join(out)
