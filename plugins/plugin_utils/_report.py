# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Fleet audit reports: one versioned JSON document and its renderings (Markdown for a PR
comment, self-contained HTML, JUnit for CI), plus jmespath queries and the ``fail_on`` rule.
Pure: strings in, strings out; the action plugin writes the files."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections import Counter

from ansible_collections.netdoctor.calico.plugins.module_utils._contract import (
    SEVERITIES,
    failing,
    severity_rank,
    worst_severity,
)

try:
    import jmespath
    from jmespath.exceptions import JMESPathError
except ImportError:  # jmespath runs on the controller only; query() says what is missing
    jmespath = None
    JMESPathError = ValueError

SCHEMA_VERSION = 2  # 2: several clusters (clusters, cluster on findings and hosts)
MARKDOWN_LIMIT = 60_000
# Beyond this many nodes the HTML matrix shows the nodes with findings first, then stops.
MATRIX_LIMIT = 60
HTML_FINDINGS_LIMIT = 2_000


def summarize(findings, hosts, mode=None):
    """Counts by severity and id, the hosts and the unreachable ones."""
    by_severity = Counter(f.get("severity") for f in findings)
    unreachable = sorted(h for h, s in hosts.items() if s.get("status") == "unreachable")
    return {
        "hosts": len(hosts),
        "audited": len(hosts) - len(unreachable),
        "unreachable": unreachable,
        "findings": len(findings),
        **{s: by_severity.get(s, 0) for s in SEVERITIES},
        "by_id": dict(sorted(Counter(f.get("id") for f in findings).items())),
        "worst": worst_severity(findings) or "ok",
        "mode": mode,
    }


def compact_map(expected):
    """The expected map without the per-block next hops (they follow from the owner's entry)."""
    return {
        "mode": expected.get("mode"),
        "modes": expected.get("modes"),
        "cross_subnet": expected.get("cross_subnet"),
        "complete": expected.get("complete"),
        "pools": expected.get("pools"),
        "pools_source": expected.get("pools_source"),
        "block_count": len(expected.get("blocks") or ()),
        "nodes": expected.get("nodes") or {},
        "owners_conflicts": expected.get("owners_conflicts") or {},
    }


def build_report(maps, findings, hosts, generated):
    """The report.json document (docs/report.schema.json). ``maps``: cluster -> expected map,
    ``findings`` and ``hosts`` (per-node summaries, ``_fleet.host_summaries``) each carrying their
    ``cluster`` (``_fleet.audit_fleet``); ``generated``: an ISO 8601 timestamp. The summary is the
    fleet's roll-up; ``clusters`` holds each cluster's own summary and map."""
    clusters = {}
    for name, expected in sorted(maps.items()):
        mine = {h: line for h, line in hosts.items() if line.get("cluster") == name}
        clusters[name] = {"summary": summarize([f for f in findings if f.get("cluster") == name], mine,
                                               expected.get("mode")),
                          "expected_map": compact_map(expected)}
    modes = {c["summary"]["mode"] for c in clusters.values()}
    return {
        "schema_version": SCHEMA_VERSION,
        "generated": generated,
        "summary": {**summarize(findings, hosts, modes.pop() if len(modes) == 1 else None),
                    "clusters": sorted(clusters)},
        "clusters": clusters,
        "hosts": hosts,
        "findings": findings,
    }


def render_json(report):
    """report.json: stable key order, so two runs diff cleanly."""
    return json.dumps(report, indent=1, sort_keys=True, default=str) + "\n"


def query(report, expression):
    """jmespath over the report, e.g. ``findings[?severity=='critical'].host``."""
    if jmespath is None:
        raise RuntimeError("query needs the jmespath Python library on the controller (pip install jmespath)")
    try:
        return jmespath.search(expression, report)
    except JMESPathError as exc:
        raise ValueError(f"invalid query {expression!r}: {exc}") from exc


# --- Markdown ---------------------------------------------------------------------------------

def _md(text):
    """One table cell / list line: no newlines, no pipes breaking the table."""
    return str(text).replace("\n", " ").replace("|", "\\|")


def _md_code(value, limit=300):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = text.replace("`", "'")
    return f"`{text[:limit]}{'...' if len(text) > limit else ''}`"


def _pair(finding):
    peer = finding.get("peer")
    return f"`{finding.get('host')}` → `{peer}`" if peer else f"`{finding.get('host')}`"


def render_markdown(report, limit=MARKDOWN_LIMIT):
    """A PR comment: summary table, findings by severity, one line per node. Stops before
    ``limit`` bytes and says how much it left out (report.json has everything)."""
    summary = report["summary"]
    head = [
        "## Calico fleet audit",
        "",
        f"Generated {report.get('generated')} · mode **{summary.get('mode')}** · "
        f"{summary['audited']}/{summary['hosts']} nodes audited · worst: **{summary['worst']}**",
        "",
        "| | count |",
        "|---|---|",
        *(f"| {s} | {summary[s]} |" for s in SEVERITIES),
        f"| nodes | {summary['hosts']} |",
        f"| unreachable | {len(summary['unreachable'])}"
        + (f" ({_md(', '.join(summary['unreachable'][:10]))}{' ...' if len(summary['unreachable']) > 10 else ''})"
           if summary["unreachable"] else "") + " |",
        "",
    ]
    if summary["by_id"]:
        head += ["Findings by id: " + ", ".join(f"{i} {n}" for i, n in summary["by_id"].items()), ""]
    sections = []
    for severity in SEVERITIES:
        group = [f for f in report["findings"] if f.get("severity") == severity]
        if group:
            sections.append((f"### {severity.capitalize()} ({len(group)})", [
                f"- **{f.get('id')}** {_pair(f)}: {_md(f.get('summary'))}  \n"
                f"  evidence: {_md_code(f.get('evidence'))}  \n"
                f"  fix: {_md(f.get('remedy'))}" for f in group]))
    hosts = report["hosts"]
    order = sorted(hosts, key=lambda h: (severity_rank(hosts[h].get("worst")) if hosts[h].get("worst") else 9, h))
    nodes = ["| node | status | IP | mode | blocks | routes | findings |", "|---|---|---|---|---|---|---|"]
    for host in order:
        s = hosts[host]
        routes = s.get("routes") or {}
        route_text = f"{routes.get('ok')}/{routes.get('checked')} ok" if routes else "-"
        ids = ", ".join(s.get("ids") or ()) or "-"
        nodes.append(f"| {_md(host)} | {s.get('status')} | {s.get('ip') or '-'} | {s.get('mode') or '-'} | "
                     f"{s.get('blocks', '-')} | {route_text} | {_md(ids)} |")
    return _fit(head, sections, nodes, limit)


def _fit(head, sections, nodes, limit):
    """Join the parts within ``limit`` bytes: findings get three quarters, shared fairly between
    the severities (what one leaves unused goes to the next), nodes the rest; every cut is
    counted (report.json has everything)."""
    out, size = list(head), sum(len(line.encode()) + 1 for line in head)

    def take(lines, budget):
        used = 0
        for count, line in enumerate(lines):
            cost = len(line.encode()) + 1
            if used + cost > budget:
                return count, used
            out.append(line)
            used += cost
        return len(lines), used

    note = 120  # room for one "not shown" line
    remaining = max(limit * 3 // 4 - size, 0)
    for index, (title, lines) in enumerate(sections):
        out += [title, ""]
        taken, used = take(lines, remaining // (len(sections) - index) - note)
        if taken < len(lines):
            out.append(f"_... {len(lines) - taken} more not shown (report.json has them all)._")
        out.append("")
        remaining -= used + note
    size = sum(len(line.encode()) + 1 for line in out)
    out += ["### Nodes", ""]
    taken, _used = take(nodes, limit - size - 2 * note)
    if taken < len(nodes):
        out += ["", f"_... {len(nodes) - taken} of {len(nodes) - 2} nodes not shown._"]
    return "\n".join(out) + "\n"


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #d0d7de;padding:.25em .5em;font-size:.85em;vertical-align:top;text-align:left}
table.matrix td{width:1.1em;height:1.1em;padding:0}
table.matrix th{font-weight:normal;white-space:nowrap}
table.matrix th.col{writing-mode:vertical-rl;transform:rotate(180deg)}
.sev-critical{background:#d1242f;color:#fff}.sev-warning{background:#d4a72c}.sev-info{background:#54aeff}
.sev-ok{background:#2da44e;color:#fff}.sev-unreachable{background:#8c959f;color:#fff}.sev-none{background:#f6f8fa}
pre{white-space:pre-wrap;margin:0;font-size:.9em}
.legend span{display:inline-block;padding:.1em .6em;margin-right:.4em}
"""


def _pairs(finding):
    """The (host, peer) cells a finding colours: its peer, or the peers named in its evidence."""
    host = finding.get("host")
    evidence = finding.get("evidence") or {}
    peers = {finding.get("peer")} if finding.get("peer") else set()
    named = evidence.get("peers")
    if isinstance(named, dict):
        peers.update(p for p in named.values() if p)
    owners = evidence.get("owners")
    if isinstance(owners, list):
        peers.update(o for o in owners if isinstance(o, str) and not o.startswith("..."))
    return [(host, p) for p in peers] or [(host, host)]


def matrix(report, limit=MATRIX_LIMIT):
    """Rows/columns (nodes, by name) and ``{(host, peer): (worst severity, [ids])}`` for the
    picture; the diagonal holds a node's own findings. Past ``limit`` nodes, those with the worst
    findings are the ones shown."""
    hosts = report["hosts"]
    cells = {}
    for f in report["findings"]:
        # A consequence folded into its cause (info in the list) still breaks its pair: the
        # matrix shows the health of the path, so it keeps the severity it has on its own.
        severity = (f.get("evidence") or {}).get("severity_alone") or f.get("severity")
        for pair in _pairs(f):
            sev, ids = cells.get(pair, (None, []))
            if sev is None or severity_rank(severity) < severity_rank(sev):
                sev = severity
            cells[pair] = (sev, sorted({*ids, f.get("id")}))
    order = sorted(hosts, key=lambda h: (severity_rank(hosts[h].get("worst")) if hosts[h].get("worst") else 9, h))
    return sorted(order[:limit]), cells


def _cell_class(host, peer, cells, hosts):
    sev, ids = cells.get((host, peer), (None, []))
    if sev:
        return sev, " ".join(ids)
    if "unreachable" in (hosts.get(host, {}).get("status"), hosts.get(peer, {}).get("status")):
        return "unreachable", "unreachable"
    return "ok", "ok"


def render_html(report):
    """One self-contained page: summary, node x node matrix, findings by severity, nodes.
    No scripts, no external stylesheet, image or link."""
    e = html.escape
    summary, hosts = report["summary"], report["hosts"]
    order, cells = matrix(report)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>Calico fleet audit</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>Calico fleet audit</h1>",
           f"<p>Generated {e(str(report.get('generated')))} &middot; mode <b>{e(str(summary.get('mode')))}</b> "
           f"&middot; {summary['audited']}/{summary['hosts']} nodes audited &middot; worst: "
           f"<b>{e(summary['worst'])}</b></p>",
           "<table><tr>" + "".join(f"<th>{s}</th>" for s in (*SEVERITIES, "unreachable")) + "</tr><tr>"
           + "".join(f'<td class="sev-{s}">{summary[s]}</td>' for s in SEVERITIES)
           + f'<td class="sev-unreachable">{len(summary["unreachable"])}</td></tr></table>']
    out.append("<h2>Route health matrix</h2>")
    out.append('<p class="legend">' + "".join(f'<span class="sev-{k}">{k}</span>' for k in
                                              (*SEVERITIES, "ok", "unreachable")) + "</p>")
    first = ", those with findings first" if len(order) < len(hosts) else ""
    out.append("<p>Row: the node with the finding; column: the peer it concerns (route owner, BGP peer, "
               "source-address peer); the diagonal holds a node's own findings. "
               f"{len(order)} of {len(hosts)} nodes shown{first}.</p>")
    out.append('<table class="matrix" id="matrix"><tr><th></th>'
               + "".join(f'<th class="col">{e(h)}</th>' for h in order) + "</tr>")
    for host in order:
        row = [f"<tr><th>{e(host)}</th>"]
        for peer in order:
            cls, title = _cell_class(host, peer, cells, hosts)
            row.append(f'<td class="sev-{cls}" title="{e(host)} &rarr; {e(peer)}: {e(title)}"></td>')
        out.append("".join(row) + "</tr>")
    out.append("</table>")
    findings = sorted(report["findings"], key=lambda f: severity_rank(f.get("severity")))
    out.append(f"<h2>Findings ({len(findings)})</h2>")
    shown = findings[:HTML_FINDINGS_LIMIT]
    for severity in SEVERITIES:
        group = [f for f in shown if f.get("severity") == severity]
        if not group:
            continue
        out.append(f'<h3 class="sev-{severity}">{severity} ({summary[severity]})</h3>')
        out.append("<table><tr><th>id</th><th>host</th><th>peer</th><th>summary</th><th>evidence</th>"
                   "<th>remedy</th></tr>")
        for f in group:
            evidence = json.dumps(f.get("evidence"), indent=1, sort_keys=True, default=str)
            out.append(f"<tr><td>{e(str(f.get('id')))}</td><td>{e(str(f.get('host')))}</td>"
                       f"<td>{e(str(f.get('peer') or ''))}</td><td>{e(str(f.get('summary')))}</td>"
                       f"<td><details><summary>evidence</summary><pre>{e(evidence)}</pre></details></td>"
                       f"<td>{e(str(f.get('remedy')))}</td></tr>")
        out.append("</table>")
    if len(findings) > len(shown):
        out.append(f"<p>{len(findings) - len(shown)} more findings are in report.json.</p>")
    out.append("<h2>Nodes</h2><table><tr><th>node</th><th>status</th><th>IP</th><th>IP source</th><th>mode</th>"
               "<th>blocks</th><th>routes ok/checked</th><th>findings</th></tr>")
    for host in sorted(hosts):
        s = hosts[host]
        routes = s.get("routes") or {}
        route_cell = f"{routes.get('ok')}/{routes.get('checked')}" if routes else "-"
        cls = s.get("worst") or ("unreachable" if s.get("status") == "unreachable" else "ok")
        out.append(f'<tr><td class="sev-{cls}">{e(host)}</td><td>{e(str(s.get("status")))}</td>'
                   f"<td>{e(str(s.get('ip') or ''))}</td><td>{e(str(s.get('ip_source') or ''))}</td>"
                   f"<td>{e(str(s.get('mode') or ''))}</td><td>{e(str(s.get('blocks', '')))}</td>"
                   f"<td>{e(route_cell)}</td><td>{e(', '.join(s.get('ids') or ()))}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"


# --- JUnit ------------------------------------------------------------------------------------

def render_junit(report, checks, fail_on="warning"):
    """One testcase per check per host (``checks``: the catalogue ids); a check fails when the
    host has a finding of that id at or above ``fail_on``; findings below it go to system-out.
    An unreachable host fails UNREACH (per ``fail_on``) and skips the other checks."""
    by_host_id = {}
    for f in report["findings"]:
        by_host_id.setdefault((f.get("host"), f.get("id")), []).append(f)
    checks = sorted(set(checks) | {f.get("id") for f in report["findings"]})
    root = ET.Element("testsuites", name="netdoctor.calico fleet audit")
    totals = Counter()
    hosts = report["hosts"]
    # A finding about a node that is no host of the audit (DS003: a stale Node in the datastore) gets
    # a suite with only its own checks: nothing else was audited there.
    others = sorted({f["host"] for f in report["findings"] if f.get("host") and f["host"] not in hosts})
    for host in sorted(hosts) + others:
        unreachable = host in hosts and hosts[host].get("status") == "unreachable"
        suite = ET.SubElement(root, "testsuite", name=host)
        counts = Counter()
        for check in checks:
            found = by_host_id.get((host, check), [])
            if host not in hosts and not found:
                continue
            case = ET.SubElement(suite, "testcase", classname=f"calico.{host}", name=check)
            counts["tests"] += 1
            if unreachable and check != "UNREACH" and not found:
                ET.SubElement(case, "skipped", message=f"{host} gave no facts")
                counts["skipped"] += 1
                continue
            bad = failing(found, fail_on)
            if bad:
                first = bad[0]
                failure = ET.SubElement(case, "failure", type=str(first.get("severity")),
                                        message=str(first.get("summary")))
                failure.text = "\n\n".join(
                    f"[{f.get('severity')}] {f.get('summary')}\nevidence: "
                    f"{json.dumps(f.get('evidence'), sort_keys=True, default=str)}\nremedy: {f.get('remedy')}"
                    for f in bad)
                counts["failures"] += 1
            if len(found) > len(bad):
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join(f"[{f.get('severity')}] {f.get('summary')}" for f in found if f not in bad)
        for key in ("tests", "failures", "skipped"):
            suite.set(key, str(counts[key]))
        totals.update(counts)
    for key in ("tests", "failures", "skipped"):
        root.set(key, str(totals[key]))
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
