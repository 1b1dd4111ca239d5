# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Fleet audit reports: one versioned JSON document and its renderings (Markdown for a PR
comment, self-contained HTML, JUnit for CI, Prometheus text format for node_exporter's textfile
collector), plus jmespath queries and the ``fail_on`` rule.
Pure: strings in, strings out; the action plugin writes the files."""

from __future__ import annotations

import datetime
import html
import ipaddress
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter

from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import (
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
    # The probe matrix travels in the host lines (_fleet.host_summaries); the report keeps it apart.
    probes = {h: line["probes"] for h, line in hosts.items() if isinstance(line.get("probes"), dict)}
    hosts = {h: {k: v for k, v in line.items() if k != "probes"} for h, line in hosts.items()}
    clusters = {}
    for name, expected in sorted(maps.items()):
        mine = {h: line for h, line in hosts.items() if line.get("cluster") == name}
        clusters[name] = {"summary": summarize([f for f in findings if f.get("cluster") == name], mine,
                                               expected.get("mode")),
                          "expected_map": compact_map(expected)}
    modes = {c["summary"]["mode"] for c in clusters.values()}
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated": generated,
        "summary": {**summarize(findings, hosts, modes.pop() if len(modes) == 1 else None),
                    "clusters": sorted(clusters)},
        "clusters": clusters,
        "hosts": hosts,
        "findings": findings,
    }
    if probes:
        report["probes"] = probes
    return report


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

# Characters that start an inline construct (emphasis, code, link, HTML, entity, strikethrough,
# table cell); a backslash before any ASCII punctuation makes it literal (CommonMark 2.4).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&~|])")
_BACKTICKS = re.compile(r"`+")


def _one_line(text):
    return re.sub(r"\r\n|\r|\n", " ", str(text))


def _md(text):
    """Literal text in one table cell or list line: no newline, every inline construct escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(text))


def _md_code_span(text, table=False):
    """``text`` as one CommonMark code span: a fence one backtick longer than the longest run of
    backticks inside, padded with a space when the text starts or ends with a backtick (or with a
    space at both ends, which the parser would strip). In a table cell a pipe is escaped too (GFM
    splits cells before it parses code spans)."""
    text = _one_line(text)
    if not text:
        return "` `"
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if (text[0] == "`" or text[-1] == "`"
                  or (text[0] == " " and text[-1] == " " and text.strip(" "))) else ""
    if table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_code(value, limit=300):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return _md_code_span(f"{text[:limit]}{'...' if len(text) > limit else ''}")


def code_spans(text):
    """Split markdown-ish text (a remedy) into ``(is_code, text)`` parts as CommonMark reads code
    spans: a run of N backticks opens one that the next run of exactly N backticks closes (line
    ends inside become spaces, one space is stripped from both ends when both have one); a run
    that nothing closes is literal text."""
    text = str(text)
    parts, plain, pos = [], "", 0
    for opening in _BACKTICKS.finditer(text):
        if opening.start() < pos:
            continue  # inside a code span already taken
        closing = next((m for m in _BACKTICKS.finditer(text, opening.end())
                        if len(m.group()) == len(opening.group())), None)
        if closing is None:
            continue  # literal backticks: they stay in the plain text
        plain += text[pos:opening.start()]
        if plain:
            parts.append((False, plain))
        code = _one_line(text[opening.end():closing.start()])
        if len(code) > 1 and code[0] == " " and code[-1] == " " and code.strip(" "):
            code = code[1:-1]
        parts.append((True, code))
        plain, pos = "", closing.end()
    plain += text[pos:]
    if plain:
        parts.append((False, plain))
    return parts


def _md_remedy(text):
    """A remedy in one list line: its code spans kept (each with a fence that fits it), the rest
    literal."""
    return "".join(_md_code_span(t) if is_code else _md(t) for is_code, t in code_spans(text))


def _pair(finding):
    peer = finding.get("peer")
    host = _md_code_span(finding.get("host"))
    return f"{host} → {_md_code_span(peer)}" if peer else host


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
                f"  fix: {_md_remedy(f.get('remedy'))}" for f in group]))
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

# Per cluster, up to this many nodes the matrix has a cell per node pair; above it, one per
# subnet pair (at most SUBNET_LIMIT subnets: the worst, the rest as one), with the nodes that
# have findings listed below it.
MATRIX_LIMIT = 80
SUBNET_LIMIT = 40
NODE_LIST_LIMIT = 1_000
# Findings of one id shown in full before the rest of them fold away; causes shown in "Fix first".
SAME_ID_SHOWN = 3
CONSEQUENCES_SHOWN = 50
FIX_FIRST = 10
LETTER = {"critical": "C", "warning": "W", "info": "I"}
_RANK = {"critical": 0, "warning": 1, "info": 2, "unreachable": 3, "ok": 4}

_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;background:#fff;margin:0 auto;
 padding:1em 1.25em 3em;max-width:1280px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.25em;margin:1.6em 0 .4em;padding-bottom:.2em;
 border-bottom:1px solid #d0d7de}h3{font-size:1.05em;margin:1.2em 0 .4em}h4{font-size:.95em;margin:1em 0 .3em}
p,li,td,th,summary,.sum,.remedy{overflow-wrap:anywhere}
a{color:#0969da}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eff1f3;border-radius:4px;
 padding:.05em .3em;overflow-wrap:anywhere}
pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;overflow-wrap:anywhere;
 margin:.3em 0;background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.5em}
.meta{color:#57606a;margin:.2em 0 .6em}
.counts{display:flex;flex-wrap:wrap;gap:.4em;margin:.4em 0}
.count{display:inline-block;border-radius:2em;padding:.15em .8em;border:1px solid transparent;white-space:nowrap}
.count b{font-size:1.1em}
.sev-critical{background:#cf222e;color:#fff}
.sev-warning{background:#d4a72c;color:#1f2328}
.sev-info{background:#54aeff;color:#0b1f33}
.sev-unreachable{background:#8c959f;color:#fff}
.sev-ok{background:#dafbe1;color:#1a7f37}
.count.zero{background:#f6f8fa;color:#57606a;border-color:#d0d7de}
.badge{display:inline-block;border-radius:4px;padding:0 .45em;font-size:.85em;font-weight:600;white-space:nowrap}
nav.clusters{display:flex;flex-wrap:wrap;gap:.4em;margin:.6em 0}
nav.clusters a{text-decoration:none;border:1px solid #d0d7de;border-radius:6px;padding:.2em .6em;color:#1f2328}
ol.fix{padding-left:1.6em}ol.fix li{margin:.35em 0}
.finding{border:1px solid #d0d7de;border-left:6px solid #8c959f;border-radius:6px;padding:.5em .8em;margin:.5em 0}
.finding.sev-critical{border-left-color:#cf222e}.finding.sev-warning{border-left-color:#d4a72c}
.finding.sev-info{border-left-color:#54aeff}
.finding.sev-critical,.finding.sev-warning,.finding.sev-info{background:#fff;color:#1f2328}
.finding .head{display:flex;flex-wrap:wrap;gap:.5em;align-items:baseline}
.finding .who{color:#57606a}
.finding .sum{margin:.3em 0}
.remedy{white-space:pre-line;margin:.3em 0}
.remedy .lbl{font-weight:600;margin-right:.4em}
details{margin:.3em 0}summary{cursor:pointer;color:#57606a}
ul.conseq{margin:.3em 0;padding-left:1.2em}ul.conseq li{margin:.25em 0}
ul.conseq li.sev-info{background:none;color:#1f2328}
.alone{color:#57606a;font-size:.85em}
.note{color:#57606a}
.scroll{overflow-x:auto;max-width:100%;margin:.4em 0;border:1px solid #eaeef2;border-radius:6px}
table{border-collapse:collapse}
table.nodes td,table.nodes th{border-bottom:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top;
 font-size:.92em}
table.nodes th{background:#f6f8fa}
table.nodes td,table.nodes th{white-space:nowrap;overflow-wrap:normal}
table.nodes td.ids{white-space:normal;min-width:12em}
table.matrix{--cell:20px;margin:.3em}
table.matrix td{width:var(--cell);min-width:var(--cell);height:var(--cell);padding:0;text-align:center;
 font:600 calc(var(--cell)*.55)/1 ui-monospace,monospace;border:1px solid #fff}
table.matrix th{font-weight:normal;font-size:12px;white-space:nowrap;padding:0 .4em;text-align:left}
table.matrix thead th.col{writing-mode:vertical-rl;transform:rotate(180deg);max-height:9em;overflow:hidden;
 text-overflow:ellipsis;padding:.3em 0;vertical-align:bottom;text-align:left;width:var(--cell)}
table.matrix tr.grp th{font-weight:600;background:#f6f8fa;padding:.2em .4em;position:sticky;left:0}
table.matrix tbody th[scope=row]{position:sticky;left:0;background:#fff}
table.matrix td.none{background:#f6f8fa}
table.matrix td.diag{outline:1px solid #8c959f;outline-offset:-1px}
table.matrix .g0{border-left:3px solid #57606a}
table.matrix td.conseq{background-image:repeating-linear-gradient(135deg,rgba(255,255,255,.55) 0 3px,
 transparent 3px 6px)}
table.matrix.agg td{min-width:calc(var(--cell)*1.6);font-size:calc(var(--cell)*.5)}
table.matrix.only-bad tr.clean{display:none}
.legend{display:flex;flex-wrap:wrap;gap:.3em .8em;font-size:.9em;align-items:center;margin:.3em 0}
.legend .sw{display:inline-block;min-width:1.6em;text-align:center;font:600 12px/1.6 ui-monospace,monospace;
 border:1px solid #d0d7de;margin-right:.3em}
.legend .sw.conseq{background-image:repeating-linear-gradient(135deg,rgba(255,255,255,.55) 0 3px,transparent 3px 6px)}
.mtools{display:none;gap:.4em;align-items:center;margin:.3em 0;font-size:.9em}
.js .mtools{display:flex;flex-wrap:wrap}
.mtools button{font:inherit;padding:.1em .6em;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa;
 cursor:pointer}
@media print{
 body{max-width:none;padding:0;font-size:10pt}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 .mtools,nav.clusters{display:none!important}
 .scroll{overflow:visible;border:0}
 table.matrix{--cell:8px!important}
 table.matrix th{font-size:7pt}
 table.nodes td,table.nodes th{white-space:normal;font-size:8pt;padding:.1em .3em}
 .finding,ol.fix li,table.nodes tr{break-inside:avoid}
 h2,h3,h4{break-after:avoid}
 details::details-content{content-visibility:visible;display:contents}
 summary{color:#1f2328}
 a{color:inherit;text-decoration:none}
}
"""

# Zoom and row filter for the matrices, and every <details> opened for printing. The page reads
# the same without it: the buttons only show when it runs.
_JS = """
document.documentElement.classList.add('js');
document.addEventListener('click',function(e){var b=e.target.closest('button[data-for]');if(!b)return;
var t=document.getElementById(b.dataset.for);if(!t)return;
if(b.dataset.zoom){var c=parseFloat(getComputedStyle(t).getPropertyValue('--cell'))||20;
c=Math.max(6,Math.min(48,c*parseFloat(b.dataset.zoom)));t.style.setProperty('--cell',c+'px');}
else{t.classList.toggle('only-bad');
b.textContent=t.classList.contains('only-bad')?'show all rows':'only rows with findings';}});
window.addEventListener('beforeprint',function(){
document.querySelectorAll('details').forEach(function(d){d.open=true;});});
"""


def _natural(text):
    """node2 before node10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


def _rank(severity):
    return _RANK.get(severity, len(_RANK))


def _worst(*severities):
    present = [s for s in severities if s]
    return min(present, key=_rank) if present else None


# Subnet sizes to group nodes by, (IPv4, IPv6) prefix lengths, finest first: a /24 (/64) is a rack
# or L2 segment; when a cluster has more of them than a matrix can show, coarser ones.
PREFIXES = ((24, 64), (22, 60), (20, 56), (16, 48), (12, 40), (8, 32))


def _subnet(ip, prefix=PREFIXES[0]):
    """The subnet a node's address is in, ``prefix`` being the (IPv4, IPv6) prefix lengths."""
    try:
        addr = ipaddress.ip_address(str(ip))
    except ValueError:
        return None
    return str(ipaddress.ip_network(f"{addr}/{prefix[0] if addr.version == 4 else prefix[1]}", strict=False))


def _grouping(names, hosts, limit):
    """The finest prefix that puts ``names`` in at most ``limit`` subnets (the coarsest otherwise)."""
    addrs = set()
    for h in names:
        try:
            addrs.add(ipaddress.ip_address(str((hosts.get(h) or {}).get("ip"))))
        except ValueError:
            addrs.add(None)
    for prefix in PREFIXES:
        nets = {(a.version, int(a) >> (a.max_prefixlen - prefix[a.version == 6])) if a else None for a in addrs}
        if len(nets) <= limit:
            return prefix
    return PREFIXES[-1]


def _key(finding):
    """A finding's identity, as ``caused_by`` names a cause: (id, host, peer)."""
    return finding.get("id"), finding.get("host"), finding.get("peer")


def _caused_by(finding):
    cause = (finding.get("evidence") or {}).get("caused_by")
    return cause if isinstance(cause, dict) else None


def _fold(findings):
    """(causes and stand-alone findings, cause key -> its consequences, consequences whose cause is
    not among ``findings``). A cause is found by (id, host, peer), as ``caused_by`` names it."""
    tops = [f for f in findings if not _caused_by(f)]
    known = {_key(f) for f in tops}
    by_host_id = {(f.get("id"), f.get("host")): _key(f) for f in reversed(tops)}
    folded, orphans = {}, []
    for f in findings:
        cause = _caused_by(f)
        if not cause:
            continue
        ck = (cause.get("id"), cause.get("host"), cause.get("peer"))
        ck = ck if ck in known else by_host_id.get(ck[:2])
        if ck is None:
            orphans.append(f)
        else:
            folded.setdefault(ck, []).append(f)
    return tops, folded, orphans


def _paint(findings):
    """``(host, peer) -> {sev, own, conseq, ids, causes}`` for a matrix: ``own`` is the worst
    severity the pair's findings are counted with; a folded consequence (counted as info) paints
    its pair with its cause's severity (``conseq``: the fault is counted once, at the cause), so
    every colour on the page is one the counts use. ``sev`` is the worse of the two."""
    by_key = {(f.get("id"), f.get("host"), f.get("peer")): f for f in findings if not _caused_by(f)}
    by_host_id = {(f.get("id"), f.get("host")): f for f in reversed(list(by_key.values()))}
    cells = {}
    for f in findings:
        cause = _caused_by(f)
        root = None
        if cause:
            root = by_key.get((cause.get("id"), cause.get("host"), cause.get("peer"))) or by_host_id.get(
                (cause.get("id"), cause.get("host")))
        for pair in _pairs(f):
            cell = cells.setdefault(pair, {"own": None, "conseq": None, "ids": set(), "causes": set()})
            cell["ids"].add(f.get("id"))
            if root is not None:
                cell["conseq"] = _worst(cell["conseq"], root.get("severity"))
                cell["causes"].add(f"{root.get('id')} on {root.get('host')}")
            else:
                cell["own"] = _worst(cell["own"], f.get("severity"))
    for cell in cells.values():
        cell["sev"] = _worst(cell["own"], cell["conseq"])
    return cells


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
    """Nodes (by name; past ``limit``, those with the worst findings) and ``{(host, peer): (severity,
    [ids])}``: the diagonal holds a node's own findings. A folded consequence colours its pair
    with its cause's severity (the one it is counted at), not with the one it has on its own."""
    hosts = report["hosts"]
    cells = {pair: (cell["sev"], sorted(cell["ids"])) for pair, cell in _paint(report["findings"]).items()}
    order = sorted(hosts, key=lambda h: (severity_rank(hosts[h].get("worst")) if hosts[h].get("worst") else 9, h))
    return sorted(order[:limit]), cells


def _remedy_html(text):
    """A remedy's markdown-ish text: code spans become <code>, everything else is escaped."""
    return "".join(f"<code>{html.escape(t)}</code>" if is_code else html.escape(t) for is_code, t in code_spans(text))


def _counts_html(counts, unreachable=None, folded=0):
    """Count badges: a severity's colour only when its count is not zero."""
    out = []
    for sev in SEVERITIES:
        n = counts.get(sev, 0)
        cls = f"sev-{sev}" if n else "zero"
        extra = f" <small>({folded} folded under their causes)</small>" if sev == "info" and folded else ""
        out.append(f'<span class="count {cls}" data-sev="{sev}" data-count="{n}"><b>{n}</b> {sev}{extra}</span>')
    if unreachable is not None:
        n = len(unreachable)
        out.append(f'<span class="count {"sev-unreachable" if n else "zero"}" data-sev="unreachable" '
                   f'data-count="{n}"><b>{n}</b> unreachable</span>')
    return '<div class="counts">' + "".join(out) + "</div>"


class _Budget:
    """How many more findings the page may draw (HTML_FINDINGS_LIMIT); each place that stops early
    says how many it left to report.json."""

    def __init__(self, limit):
        self.left = limit

    def take(self, count):
        granted = max(min(count, self.left), 0)
        self.left -= granted
        return granted


def _who(f, e):
    peer = f.get("peer")
    return f"{e(str(f.get('host')))}" + (f" &rarr; {e(str(peer))}" if peer else "")


def _consequence_html(c, e):
    cause = _caused_by(c) or {}
    summary = str(c.get("summary") or "")
    suffix = f" (a consequence of {cause.get('id')} on {cause.get('host')})"
    summary = summary[:-len(suffix)] if summary.endswith(suffix) else summary
    alone = (c.get("evidence") or {}).get("severity_alone")
    return (f'<li class="sev-{e(str(c.get("severity")))}" data-sev="{e(str(c.get("severity")))}">'
            f"<b>{e(str(c.get('id')))}</b> {_who(c, e)}: {e(summary)}"
            + (f' <span class="alone">({e(str(alone))} on its own)</span>' if alone else "") + "</li>")


def _finding_html(f, anchor, consequences, budget, e):
    sev = str(f.get("severity"))
    evidence = {k: v for k, v in (f.get("evidence") or {}).items() if k != "consequences"}
    out = [f'<article class="finding sev-{e(sev)}" id="{anchor}" data-sev="{e(sev)}">',
           f'<div class="head"><span class="badge sev-{e(sev)}">{e(sev)}</span> <b>{e(str(f.get("id")))}</b> '
           f'<span class="who">{_who(f, e)}</span></div>',
           f'<p class="sum">{e(str(f.get("summary")))}</p>']
    cause = _caused_by(f)
    if cause:
        out.append(f'<p class="note">&#8627; a consequence of {e(str(cause.get("id")))} on '
                   f'{e(str(cause.get("host")))}: {e(str(cause.get("why") or ""))}</p>')
    if f.get("remedy"):
        out.append(f'<div class="remedy"><span class="lbl">Fix:</span>{_remedy_html(f["remedy"])}</div>')
    out.append("<details><summary>evidence</summary><pre>"
               + e(json.dumps(evidence, indent=1, sort_keys=True, default=str)) + "</pre></details>")
    if consequences:
        shown = budget.take(min(len(consequences), CONSEQUENCES_SHOWN))
        alone = worst_severity([{"severity": (c.get("evidence") or {}).get("severity_alone")}
                                for c in consequences])
        out.append(f'<details class="conseq"><summary>&#8627; {len(consequences)} consequence'
                   f'{"s" if len(consequences) != 1 else ""} folded here (counted as info'
                   + (f"; {alone} on their own" if alone else "") + ')</summary><ul class="conseq">'
                   + "".join(_consequence_html(c, e) for c in consequences[:shown])
                   + (f'<li class="more" data-more-sev="info" data-count="{len(consequences) - shown}">'
                      f"{len(consequences) - shown} more in report.json</li>" if shown < len(consequences)
                      else "") + "</ul></details>")
    out.append("</article>")
    return "".join(out)


def _findings_html(findings, summary, anchors, budget, e):
    """Causes first, by severity, their consequences folded under them; many findings of one id
    show the first few and fold the rest."""
    tops, folded, orphans = _fold(findings)
    out = [] if findings else ['<p class="note">No findings.</p>']
    n_folded = sum(len(v) for v in folded.values())
    for sev in SEVERITIES:
        group = [f for f in tops + orphans if f.get("severity") == sev]
        title = f"{sev.capitalize()} &middot; {summary.get(sev, len(group))}"
        if sev == "info" and n_folded:
            title += f" ({n_folded} of them folded under their causes)"
        if not group:
            continue  # the count badges above say 0; folded ones are under their causes
        out.append(f'<h4 class="sevhead">{title}</h4>')
        by_id = {}
        for f in group:
            by_id.setdefault(f.get("id"), []).append(f)
        for fid, same in by_id.items():
            shown = budget.take(len(same))
            items = [_finding_html(f, anchors[id(f)], folded.get(_key(f)), budget, e) for f in same[:shown]]
            if len(items) > SAME_ID_SHOWN:
                out += items[:SAME_ID_SHOWN]
                rest = items[SAME_ID_SHOWN:]
                out.append(f"<details><summary>{len(rest)} more {e(str(fid))} ({sev})</summary>"
                           + "".join(rest) + "</details>")
            else:
                out += items
            if shown < len(same):
                out.append(f'<p class="note" data-more-sev="{e(sev)}" data-count="{len(same) - shown}">'
                           f"{len(same) - shown} more {e(str(fid))} findings are in report.json.</p>")
    return "\n".join(out)


def _styled_as_consequence(cell):
    """A cell drawn as a consequence: no finding of its own, or its cause is worse than them."""
    return cell["own"] is None or _rank(cell["conseq"]) < _rank(cell["own"])


def _legend(aggregate, cells, unreachable):
    """The key to the colours this matrix uses (and no other: a colour on the page is a count)."""
    used = {cell["sev"] for cell in cells.values()}
    swatches = [(f"sev-{s}", LETTER[s], f"{s} finding") for s in SEVERITIES if s in used]
    conseq = _worst(*(cell["conseq"] for cell in cells.values() if _styled_as_consequence(cell)))
    if conseq:
        swatches.append((f"sev-{conseq} conseq", "&#8627;",
                         "consequence of a finding elsewhere, in its cause's colour"))
    if unreachable:
        swatches.append(("sev-unreachable", "?", "unknown: a node gave no facts"))
    swatches.append(("sev-ok", "", "ok"))
    text = ("Row: subnet of the node with the finding; column: subnet of the peer it concerns; the number: node "
            "pairs with findings, coloured by the worst." if aggregate else
            "Row: the node with the finding; column: the peer it concerns (route owner, BGP peer, source-address "
            "peer); the diagonal: the node's own findings. Rows grouped by subnet, worst first.")
    return ('<div class="legend">' + "".join(f'<span><span class="sw {c}">{t}</span>{d}</span>' for c, t, d in swatches)
            + f'</div><p class="note">{text}</p>')


def _counted(host, hosts):
    """A node's worst severity as the counts have it (its own findings; a consequence is info)."""
    line = hosts.get(host) or {}
    return line.get("worst") or ("unreachable" if line.get("status") == "unreachable" else "ok")


def _row_keys(names, hosts, cells):
    """host -> sort key, worst first: its counted worst, then the worst its row is painted with."""
    painted = {}
    for (a, _b), cell in cells.items():
        painted[a] = _worst(painted.get(a), cell["sev"])
    return {h: (_rank(_counted(h, hosts)), _rank(painted.get(h) or "ok"), _natural(h)) for h in names}


def _groups(names, hosts, keys, prefix):
    """[(subnet, [hosts])]: the subnet with the worst node first, then by address; in each, worst
    node first."""
    groups = {}
    for h in names:
        groups.setdefault(_subnet((hosts.get(h) or {}).get("ip"), prefix), []).append(h)
    for members in groups.values():
        members.sort(key=keys.get)

    def order(item):
        net, members = item
        addr = ipaddress.ip_network(net) if net else None
        return (keys[members[0]][:2], addr is None, addr.version if addr else 0,
                int(addr.network_address) if addr else 0)
    return sorted(groups.items(), key=order)


def _tools(table_id):
    return (f'<div class="mtools"><span>zoom</span><button type="button" data-for="{table_id}" data-zoom="0.8">'
            f'&minus;</button><button type="button" data-for="{table_id}" data-zoom="1.25">+</button>'
            f'<button type="button" data-for="{table_id}">only rows with findings</button></div>')


def _node_matrix(names, hosts, cells, table_id, e, *, prefix):
    unreachable = {h for h in names if (hosts.get(h) or {}).get("status") == "unreachable"}
    groups = _groups(names, hosts, _row_keys(names, hosts, cells), prefix)
    bad_rows = {a for (a, _b) in cells} | unreachable
    cols = [h for _net, members in groups for h in members]
    starts = {members[0] for _net, members in groups}
    out = [_tools(table_id), f'<div class="scroll"><table class="matrix" id="{table_id}"><thead><tr>'
           '<th scope="col">node &darr; &nbsp; peer &rarr;</th>'
           + "".join(f'<th class="col{" g0" if h in starts else ""}" scope="col" title="{e(h)}">{e(h)}</th>'
                     for h in cols) + "</tr></thead>"]
    for net, members in groups:
        bad = sum(1 for h in members if h in bad_rows)
        out.append(f'<tbody><tr class="grp"><th colspan="{len(cols) + 1}">{e(net or "no known address")} &middot; '
                   f"{len(members)} node{'s' if len(members) != 1 else ''}"
                   + (f" &middot; {bad} with findings" if bad else "") + "</th></tr>")
        for h in members:
            row = [f'<tr class="{"bad" if h in bad_rows else "clean"}"><th scope="row" title="{e(h)}">{e(h)}</th>']
            for p in cols:
                cell = cells.get((h, p))
                g0 = " g0" if p in starts else ""
                diag = " diag" if p == h else ""
                if cell:
                    cons = _styled_as_consequence(cell)
                    text = "&#8627;" if cons else LETTER.get(cell["sev"], "?")
                    why = ", ".join(sorted(cell["ids"]))
                    if cell["causes"]:
                        why += " (consequence of " + ", ".join(sorted(cell["causes"])) + ")"
                    row.append(f'<td class="sev-{cell["sev"]}{" conseq" if cons else ""}{g0}{diag}" '
                               f'title="{e(h)} &rarr; {e(p)}: {e(why)}">{text}</td>')
                elif h in unreachable or p in unreachable:
                    row.append(f'<td class="sev-unreachable{g0}{diag}" title="{e(h)} &rarr; {e(p)}: unknown '
                               f'({e(h if h in unreachable else p)} gave no facts)">?</td>')
                else:
                    row.append(f'<td class="sev-ok{g0}{diag}" title="{e(h)} &rarr; {e(p)}: ok"></td>')
            out.append("".join(row) + "</tr>")
        out.append("</tbody>")
    out.append("</table></div>")
    return "\n".join(out)


def _subnet_matrix(names, hosts, cells, table_id, e, *, prefix):
    """One cell per subnet pair: the worst colour of its node pairs and how many have findings."""
    unreachable = {h for h in names if (hosts.get(h) or {}).get("status") == "unreachable"}
    members = set(names)
    groups = _groups(names, hosts, _row_keys(names, hosts, cells), prefix)
    if len(groups) > SUBNET_LIMIT:
        keep, rest = groups[:SUBNET_LIMIT - 1], groups[SUBNET_LIMIT - 1:]
        groups = [*keep, (f"{len(rest)} more subnets", [h for _n, m in rest for h in m])]
    label = {h: i for i, (_net, m) in enumerate(groups) for h in m}
    agg = {}
    for (a, b), c in cells.items():
        if a not in members or b not in members:
            continue
        cell = agg.setdefault((label[a], label[b]), {"sev": None, "pairs": 0, "conseq_only": True})
        cell["sev"] = _worst(cell["sev"], c["sev"])
        cell["pairs"] += 1
        if c["own"] is not None and _rank(c["own"]) <= _rank(c["sev"]):
            cell["conseq_only"] = False
    out = [_tools(table_id), f'<div class="scroll"><table class="matrix agg" id="{table_id}"><thead><tr>'
           '<th scope="col">subnet &darr; &nbsp; peer subnet &rarr;</th>'
           + "".join(f'<th class="col" scope="col" title="{e(net or "no known address")}">{e(net or "no address")}'
                     "</th>" for net, _m in groups) + "</tr></thead><tbody>"]
    for i, (net, group) in enumerate(groups):
        down = sum(1 for h in group if h in unreachable)
        row_cells = [agg.get((i, j)) for j in range(len(groups))]
        bad = any(row_cells)
        row = [f'<tr class="{"bad" if bad else "clean"}"><th scope="row" title="{e(net or "no known address")}">'
               f"{e(net or 'no known address')} ({len(group)} node{'s' if len(group) != 1 else ''}"
               + (f", {down} unreachable" if down else "") + ")</th>"]
        for j, cell in enumerate(row_cells):
            diag = " diag" if i == j else ""
            if cell:
                row.append(f'<td class="sev-{cell["sev"]}{" conseq" if cell["conseq_only"] else ""}{diag}" '
                           f'title="{e(net or "no address")} &rarr; {e(groups[j][0] or "no address")}: '
                           f'{cell["pairs"]} node pair(s) with findings, worst {cell["sev"]}">{cell["pairs"]}</td>')
            else:
                row.append(f'<td class="sev-ok{diag}" title="{e(net or "no address")} &rarr; '
                           f'{e(groups[j][0] or "no address")}: ok"></td>')
        out.append("".join(row) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _name_list(names, e):
    shown = names[:NODE_LIST_LIMIT]
    return e(", ".join(shown)) + (f" ... and {len(names) - len(shown)} more" if len(names) > len(shown) else "")


def _nodes_html(names, hosts, e, only_bad, prefix):
    """The node table, worst first. At fleet scale (``only_bad``) it lists the nodes with a critical
    or warning finding (or unreachable); those with only info findings and those without any are
    named in folded lists."""
    order = sorted(names, key=lambda h: (_rank(_counted(h, hosts)), _natural(h)))
    listed = [h for h in order if _rank(_counted(h, hosts)) < _rank("info")
              or (hosts.get(h) or {}).get("status") == "unreachable"] if only_bad else order
    shown = listed[:NODE_LIST_LIMIT]
    out = ['<div class="scroll"><table class="nodes"><thead><tr><th>node</th><th>worst</th><th>status</th>'
           "<th>IP</th><th>subnet</th><th>mode</th><th>routes ok/checked</th><th>BGP up</th><th>findings</th>"
           "</tr></thead><tbody>"]
    for h in shown:
        s = hosts.get(h) or {}
        w = _counted(h, hosts)
        counts = s.get("counts") or {}
        count_text = " ".join(f"{counts[c]}{LETTER[c]}" for c in SEVERITIES if counts.get(c))
        routes = s.get("routes") or {}
        route_text = f"{routes.get('ok')}/{routes.get('checked')}" if routes else "-"
        bgp = s.get("bgp") or {}
        bgp_text = f"{bgp.get('established')}/{bgp.get('peers')}" if bgp.get("peers") else "-"
        out.append(f'<tr><td>{e(h)}</td><td><span class="badge sev-{w}">{w}</span></td>'
                   f"<td>{e(str(s.get('status')))}</td><td>{e(str(s.get('ip') or ''))}</td>"
                   f"<td>{e(_subnet(s.get('ip'), prefix) or '')}</td><td>{e(str(s.get('mode') or ''))}</td>"
                   f"<td>{e(route_text)}</td><td>{e(bgp_text)}</td>"
                   f'<td class="ids">{e(count_text)} {e(", ".join(s.get("ids") or ()))}</td></tr>')
    out.append("</tbody></table></div>")
    if len(listed) > len(shown):
        out.append(f'<p class="note">{len(listed) - len(shown)} more such nodes are in report.json.</p>')
    if only_bad:
        rest = [h for h in order if h not in set(listed)]
        for label, group in (("with only info findings (folded consequences included)",
                              [h for h in rest if _counted(h, hosts) == "info"]),
                             ("without findings", [h for h in rest if _counted(h, hosts) == "ok"])):
            if group:
                out.append(f"<details><summary>{len(group)} nodes {label}</summary><p>{_name_list(group, e)}</p>"
                           "</details>")
    return "\n".join(out)


def _fix_first(tops, folded, anchors, show_cluster, e):
    """The critical and warning causes, worst first and those that explain most first; one line per
    id and severity, naming its nodes, so many findings of one id do not hide the others."""
    groups = {}
    for f in tops:
        if f.get("severity") in ("critical", "warning"):
            groups.setdefault((f.get("severity"), f.get("id")), []).append(f)
    if not groups:
        return '<p class="note">Nothing to fix: no critical or warning finding.</p>'
    ranked = sorted(groups.values(), key=lambda g: (severity_rank(g[0].get("severity")),
                                                    -sum(len(folded.get(_key(f), ())) for f in g), -len(g),
                                                    _natural(g[0].get("id"))))
    items = []
    for group in ranked[:FIX_FIRST]:
        first, sev = group[0], str(group[0].get("severity"))
        n = sum(len(folded.get(_key(f), ())) for f in group)
        where = f" <small>[{e(str(first.get('cluster')))}]</small>" if show_cluster else ""
        cons = f" <small>(+{n} consequence{'s' if n != 1 else ''})</small>" if n else ""
        if len(group) == 1:
            items.append(f'<li><span class="badge sev-{e(sev)}">{e(sev)}</span> <a href="#{anchors[id(first)]}">'
                         f"<b>{e(str(first.get('id')))}</b> {_who(first, e)}</a>: {e(str(first.get('summary')))}"
                         f"{cons}{where}</li>")
            continue
        nodes = sorted({str(f.get("host")) for f in group}, key=_natural)
        clusters = sorted({str(f.get("cluster")) for f in group})
        where = f" <small>[{e(', '.join(clusters))}]</small>" if show_cluster else ""
        named = ", ".join(nodes[:6]) + (f" and {len(nodes) - 6} more" if len(nodes) > 6 else "")
        items.append(f'<li><span class="badge sev-{e(sev)}">{e(sev)}</span> <a href="#{anchors[id(first)]}">'
                     f"<b>{e(str(first.get('id')))}</b> &times; {len(group)}</a> on {len(nodes)} "
                     f"node{'s' if len(nodes) != 1 else ''} ({e(named)}), e.g. {e(str(first.get('summary')))}"
                     f"{cons}{where}</li>")
    more = sum(len(g) for g in ranked[FIX_FIRST:])
    return ('<ol class="fix">' + "".join(items) + "</ol>"
            + (f'<p class="note">{more} more critical or warning findings below.</p>' if more else ""))


def render_html(report):
    """One self-contained page for the engineer on call: the counts, what to fix first, then per
    cluster its findings (causes first, their consequences folded under them, remedies rendered),
    its route health matrix (node x node grouped by subnet, worst rows first; past MATRIX_LIMIT
    nodes, subnet x subnet) and its nodes. Nothing is fetched; the small inline script only adds
    zoom and a row filter to the matrices and opens every <details> for printing."""
    e = html.escape
    summary, hosts, findings = report["summary"], report["hosts"], report["findings"]
    clusters = dict(report.get("clusters") or {})
    for name in sorted({str(h.get("cluster")) for h in hosts.values() if h.get("cluster") is not None}
                       | {str(f.get("cluster")) for f in findings if f.get("cluster") is not None}):
        clusters.setdefault(name, {})
    if not clusters or any(h.get("cluster") is None for h in hosts.values()) or any(
            f.get("cluster") is None for f in findings):
        clusters.setdefault(None, {})
    section_ids = {name: f"cluster-{i}" for i, name in enumerate(clusters)}
    anchors = {id(f): f"f{i}" for i, f in enumerate(findings)}
    tops, folded, _orphans = _fold(findings)
    n_folded = sum(len(v) for v in folded.values())

    worst = summary.get("worst") or "ok"
    counted = ", ".join(f"{summary[s]} {s}" for s in SEVERITIES if summary.get(s)) or "no findings"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Calico fleet audit: {e(worst)} ({e(counted)})</title>", f"<style>{_CSS}</style></head><body>",
           "<header><h1>Calico fleet audit</h1>",
           f'<p class="meta">Generated {e(str(report.get("generated")))} &middot; '
           f"{summary['audited']}/{summary['hosts']} nodes audited &middot; {len(clusters)} "
           f"cluster{'s' if len(clusters) != 1 else ''}"
           + (f" &middot; mode {e(str(summary.get('mode')))}" if summary.get("mode") else "") + "</p>",
           _counts_html(summary, summary.get("unreachable") or [], n_folded)]
    if len(clusters) > 1:
        links = []
        for name, data in clusters.items():
            cs = data.get("summary") or {}
            w = cs.get("worst") or "ok"
            links.append(f'<a href="#{section_ids[name]}"><span class="badge sev-{e(w)}">{e(w)}</span> '
                         f"{e(name if name is not None else 'no cluster')}</a>")
        out.append('<nav class="clusters">' + "".join(links) + "</nav>")
    out.append("</header>")

    out.append("<section><h2>Fix first</h2>" + _fix_first(tops, folded, anchors, len(clusters) > 1, e)
               + "</section>")

    budget = _Budget(HTML_FINDINGS_LIMIT)
    for index, (name, data) in enumerate(clusters.items()):
        mine = [h for h in hosts if hosts[h].get("cluster") == name]
        theirs = [f for f in findings if f.get("cluster") == name]
        cs = data.get("summary") or summarize(theirs, {h: hosts[h] for h in mine})
        c_folded = sum(1 for f in theirs if _caused_by(f))
        title = e(name) if name is not None else "no cluster"
        w = cs.get("worst") or "ok"
        out.append(f'<section class="cluster" id="{section_ids[name]}" data-cluster="{title}">'
                   f'<h2>Cluster {title} <span class="badge sev-{e(w)}">{e(w)}</span></h2>'
                   f'<p class="meta">{cs.get("audited", len(mine))}/{cs.get("hosts", len(mine))} nodes audited'
                   + (f" &middot; mode {e(str(cs.get('mode')))}" if cs.get("mode") else "") + "</p>"
                   + (_counts_html(cs, cs.get("unreachable") or [], c_folded) if len(clusters) > 1 else ""))
        out.append("<h3>Findings</h3>")
        out.append(_findings_html(theirs, cs, anchors, budget, e))
        cells = _paint(theirs)
        scale = len(mine) > MATRIX_LIMIT
        out.append("<h3>Route health matrix</h3>" + _legend(scale, cells, cs.get("unreachable")))
        prefix = _grouping(mine, hosts, SUBNET_LIMIT if scale else max(4, len(mine) // 4))
        grouped = f"/{prefix[0]} (IPv6 /{prefix[1]})" if prefix != PREFIXES[0] else "/24 (IPv6 /64)"
        if not mine:
            out.append('<p class="note">No node of this cluster was audited.</p>')
        elif scale:
            out.append(f'<p class="note">{len(mine)} nodes: one cell per subnet pair (more than {MATRIX_LIMIT} '
                       f"nodes), subnets of {grouped}; the nodes with findings are listed below.</p>")
            out.append(_subnet_matrix(mine, hosts, cells, f"m{index}", e, prefix=prefix))
        else:
            out.append(f'<p class="note">Subnets of {grouped}.</p>')
            out.append(_node_matrix(mine, hosts, cells, f"m{index}", e, prefix=prefix))
        out.append(f"<h3>Nodes ({len(mine)})</h3>" + _nodes_html(mine, hosts, e, scale, prefix))
        out.append("</section>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"


# --- JUnit ------------------------------------------------------------------------------------

def render_junit(report, checks, fail_on="warning"):
    """One testcase per check per host (``checks``: the catalogue ids); a check fails when the
    host has a finding of that id at or above ``fail_on``; findings below it go to system-out.
    An unreachable host fails UNREACH (per ``fail_on``) and skips the other checks."""
    by_host_id = {}
    for f in report["findings"]:
        by_host_id.setdefault((f.get("host"), f.get("id")), []).append(f)
    hosts = report["hosts"]
    # A finding filed under no host of the audit (DS000's "datastore") adds no check to the hosts.
    host_checks = set(checks) | {f.get("id") for f in report["findings"] if f.get("host") in hosts}
    checks = sorted(set(checks) | {f.get("id") for f in report["findings"]})
    root = ET.Element("testsuites", name="netdoctor.calico fleet audit")
    totals = Counter()
    # A finding about a node that is no host of the audit (DS003: a stale Node in the datastore) gets
    # a suite with only its own checks: nothing else was audited there.
    others = sorted({f["host"] for f in report["findings"] if f.get("host") and f["host"] not in hosts})
    for host in sorted(hosts) + others:
        unreachable = host in hosts and hosts[host].get("status") == "unreachable"
        suite = ET.SubElement(root, "testsuite", name=host)
        counts = Counter()
        for check in checks:
            found = by_host_id.get((host, check), [])
            if (host not in hosts and not found) or (host in hosts and check not in host_checks):
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


# --- Prometheus -------------------------------------------------------------------------------

PROM_PREFIX = "netdoctor_calico_"
NODE_STATUSES = ("ok", "findings", "unreachable")


def _prom_label(value):
    """A label value in the text exposition format: backslash, double quote and line feed escaped."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _prom_help(text):
    return str(text).replace("\\", "\\\\").replace("\n", "\\n")


def _prom_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _prom_family(name, help_text, samples):
    """One gauge family: HELP, TYPE, then its samples sorted by their labels (a stable file)."""
    lines = [f"# HELP {PROM_PREFIX}{name} {_prom_help(help_text)}", f"# TYPE {PROM_PREFIX}{name} gauge"]
    for labels, value in sorted(samples, key=lambda s: tuple(_natural(v) for _k, v in s[0])):
        text = ",".join(f'{k}="{_prom_label(v)}"' for k, v in labels)
        lines.append(f"{PROM_PREFIX}{name}{{{text}}} {_prom_value(value)}" if text
                     else f"{PROM_PREFIX}{name} {_prom_value(value)}")
    return lines


def _generated_seconds(generated):
    try:
        stamp = datetime.datetime.fromisoformat(str(generated).replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


def render_prometheus(report):
    """calico_audit.prom for node_exporter's textfile collector: gauges without timestamps (the
    collector refuses them), one series per finding (``node`` is the inventory name of the node it
    is about; the same labels twice add up, as a series may appear only once), the counts per
    cluster and severity, the nodes per cluster and status, when the audit ran, and, when the
    report has ``probes`` (``{src: {dst: {loss, rtt_ms, ok}}}``, loss a fraction 0..1), one series
    per probed pair and measure."""
    hosts, findings = report["hosts"], report["findings"]
    cluster_of = {h: line.get("cluster") for h, line in hosts.items()}
    names = set(report.get("clusters") or ()) | {c for c in cluster_of.values() if c is not None} | {
        f.get("cluster") for f in findings if f.get("cluster") is not None}
    if not names or any(c is None for c in cluster_of.values()):
        names.add(None)
    clusters = sorted(names, key=lambda c: (c is not None, str(c)))
    out = []
    stamp = _generated_seconds(report.get("generated"))
    if stamp is not None:
        out += _prom_family("audit_timestamp_seconds", "When the netdoctor.calico fleet audit ran (Unix time).",
                            [((), stamp)])
    by_cluster_status = Counter((line.get("cluster"), line.get("status")) for line in hosts.values())
    out += _prom_family("nodes", "Nodes of the audit by cluster and status (ok, findings, unreachable).",
                        [((("cluster", c), ("status", s)), by_cluster_status.get((c, s), 0))
                         for c in clusters for s in NODE_STATUSES])
    by_cluster_severity = Counter((f.get("cluster"), f.get("severity")) for f in findings)
    out += _prom_family("findings", "Findings of the audit by cluster and severity (a folded consequence counts "
                                    "as info).",
                        [((("cluster", c), ("severity", s)), by_cluster_severity.get((c, s), 0))
                         for c in clusters for s in SEVERITIES])
    series = Counter((("cluster", f.get("cluster")), ("id", f.get("id")), ("node", f.get("host")),
                      ("peer", f.get("peer")), ("severity", f.get("severity"))) for f in findings)
    out += _prom_family("finding", "One series per finding: its catalogue id and severity, the node it is about "
                                   "(inventory name) and the peer node; the value counts identical findings.",
                        list(series.items()))
    probes = report.get("probes")
    if isinstance(probes, dict) and probes:
        measures = {"probe_ok": ("1 when the probe from node to peer succeeded, else 0.", "ok", 1),
                    "probe_loss_ratio": ("Share of the probes from node to peer that were lost (0 to 1).", "loss", 1),
                    "probe_rtt_seconds": ("Round-trip time of the probes from node to peer.", "rtt_ms", 1000)}
        for name, (help_text, field, per_unit) in measures.items():
            samples = []
            for src, row in sorted(probes.items()):
                for dst, probe in sorted((row if isinstance(row, dict) else {}).items()):
                    value = probe.get(field) if isinstance(probe, dict) else None
                    if isinstance(value, bool):
                        value = int(value)
                    if not isinstance(value, (int, float)):
                        continue  # not measured (no reply: no round-trip time)
                    labels = (("cluster", cluster_of.get(src)), ("node", src), ("peer", dst))
                    samples.append((labels, value / per_unit if per_unit != 1 else value))
            out += _prom_family(name, help_text, samples)
    return "\n".join(out) + "\n"
