"""calico_audit.prom: the Prometheus text format the audit writes for node_exporter's textfile
collector, checked by promtool (Debian's prometheus package, `make debs`), and the alert rules of
docs/examples checked and unit-tested by promtool too. A missing promtool fails these tests."""

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet, _report
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import (
    build,
    healthy,
    healthy_specs,
    refresh,
    seed_case1,
    seed_case2,
)
from ansible_collections.netdoctor.calico.tests.unit.plugins.action.audit_harness import run_playbook

ROOT = Path(__file__).parents[4]
RULES = ROOT / "docs" / "examples" / "calico-audit-alerts.yml"
GENERATED = "2026-01-02T03:04:05+00:00"
SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool is missing: `make debs` installs it (Debian package prometheus)"
    return path


def check_metrics(text):
    proc = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (
        proc.returncode, proc.stdout, proc.stderr, text)


def report_of(facts, **kwargs):
    maps, findings, hosts = _fleet.audit_fleet(facts, **kwargs)
    return _report.build_report(maps, findings, hosts, GENERATED)


def seed_report():
    facts = seed_case2()
    facts["node3"] = seed_case1()["node3"]
    facts["node5"] = None
    return report_of(facts)


def folded_report():
    """node1 <-> node3's BGP session down: the routes BIRD withdrew are folded under it (info)."""
    facts = build("bgp", healthy_specs())
    for host, address, block in (("node1", "192.0.2.13", "198.18.3.0/26"), ("node3", "192.0.2.11", "198.18.1.0/26")):
        for peer in facts[host]["bird"]["peers"]:
            if peer["address"] == address:
                peer.update(state="start", info="Connect", established=False)
        routes = facts[host]["routes"]
        routes["remote_blocks"] = [r for r in routes["remote_blocks"] if r["dst"] != block]
    return report_of(refresh(facts))


def two_clusters_report():
    facts = {**seed_case1(), **{f"edge{h[-1]}": f for h, f in healthy("vxlan").items()}}
    for host in ("edge1", "edge2", "edge3", "edge4"):
        facts[host]["hostname"] = host
    facts["edge4"] = None
    return report_of(facts, clusters={h: "edge" if h.startswith("edge") else "prod" for h in facts})


def samples(text):
    """[(name, {label: value (unescaped)}, value)] of the sample lines."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = {k: re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)
                  for k, v in LABEL.findall(match["labels"] or "")}
        out.append((match["name"], labels, float(match["value"])))
    return out


@pytest.mark.parametrize("make", [seed_report, folded_report, two_clusters_report, lambda: report_of(healthy("ipip"))],
                         ids=["seed", "folded", "two-clusters", "healthy"])
def test_promtool_accepts_the_metrics(make):
    check_metrics(_report.render_prometheus(make()))


def test_one_series_per_finding_named_by_node():
    report = seed_report()
    got = [(labels, value) for name, labels, value in samples(_report.render_prometheus(report))
           if name == "netdoctor_calico_finding"]
    assert len(got) == len(report["findings"])
    assert ({"cluster": "default", "id": "RT001", "node": "node3", "peer": "node1", "severity": "critical"}, 1.0) in got
    assert ({"cluster": "default", "id": "UNREACH", "node": "node5", "peer": "", "severity": "warning"}, 1.0) in got


def test_folded_consequences_are_info_series():
    """An alert on critical or warning series sees the cause only, never its consequences."""
    report = folded_report()
    got = {(labels["id"], labels["node"], labels["peer"]): labels["severity"]
           for name, labels, _v in samples(_report.render_prometheus(report)) if name == "netdoctor_calico_finding"}
    assert got[("BGP001", "node1", "node3")] == "critical"
    assert got[("RT002", "node1", "node3")] == "info"


def test_counts_per_cluster_and_severity_and_nodes_per_status():
    text = _report.render_prometheus(two_clusters_report())
    findings = {(labels["cluster"], labels["severity"]): value for name, labels, value in samples(text)
                if name == "netdoctor_calico_findings"}
    nodes = {(labels["cluster"], labels["status"]): value for name, labels, value in samples(text)
             if name == "netdoctor_calico_nodes"}
    # Every cluster and severity is there, zero included, so an alert resolves when a count drops to 0.
    assert set(findings) == {(c, s) for c in ("edge", "prod") for s in ("critical", "warning", "info")}
    assert findings[("prod", "critical")] == 1 and findings[("prod", "warning")] == 0
    assert findings[("edge", "warning")] == 1  # UNREACH edge4
    assert nodes == {("edge", "ok"): 3, ("edge", "findings"): 0, ("edge", "unreachable"): 1,
                     ("prod", "ok"): 4, ("prod", "findings"): 1, ("prod", "unreachable"): 0}
    stamp = [value for name, _labels, value in samples(text) if name == "netdoctor_calico_audit_timestamp_seconds"]
    assert stamp == [1767323045.0]


def test_help_and_type_for_every_family_and_no_timestamps():
    text = _report.render_prometheus(seed_report())
    names = {name for name, _labels, _value in samples(text)}
    for name in names:
        assert f"# HELP {name} " in text and f"# TYPE {name} gauge" in text
    # node_exporter's textfile collector refuses samples with timestamps: samples() takes one value a line.
    assert len(samples(text)) == len([line for line in text.splitlines() if not line.startswith("#")])


def hostile_report():
    """Names that need escaping in label values, and two findings with the same labels."""
    weird = 'no"de\\1\nx'
    findings = [{"id": "RT002", "severity": "critical", "host": weird, "peer": "pe`er", "cluster": 'c"1',
                 "summary": "s", "evidence": {}, "remedy": "r"} for _copy in range(2)]
    findings.append({"id": "MTU001", "severity": "warning", "host": "n2", "peer": None, "cluster": 'c"1',
                     "summary": "s", "evidence": {}, "remedy": "r"})
    hosts = {weird: {"status": "findings", "cluster": 'c"1', "worst": "critical"},
             "n2": {"status": "findings", "cluster": 'c"1', "worst": "warning"}}
    return _report.build_report({'c"1': {"mode": "ipip"}}, findings, hosts, GENERATED), weird


def test_label_values_are_escaped_and_identical_findings_add_up():
    report, weird = hostile_report()
    text = _report.render_prometheus(report)
    check_metrics(text)
    assert 'node="no\\"de\\\\1\\nx"' in text
    got = [(labels, value) for name, labels, value in samples(text) if name == "netdoctor_calico_finding"]
    assert ({"cluster": 'c"1', "id": "RT002", "node": weird, "peer": "pe`er", "severity": "critical"}, 2.0) in got
    # A series appears once: node_exporter rejects a textfile with duplicates (promtool does not check it).
    keys = [(name, tuple(sorted(labels.items()))) for name, labels, _v in samples(text)]
    assert len(keys) == len(set(keys))


def test_the_file_is_stable():
    report = seed_report()
    text = _report.render_prometheus(report)
    report["findings"].reverse()
    report["hosts"] = dict(reversed(report["hosts"].items()))
    assert _report.render_prometheus(report) == text


def test_probe_pairs_only_when_the_report_has_probes():
    report = seed_report()
    assert "probe" not in _report.render_prometheus(report)
    report["probes"] = {"node1": {"node2": {"loss": 0.0, "rtt_ms": 0.42, "ok": True},
                                  "node3": {"loss": 1.0, "rtt_ms": None, "ok": False}},
                        "node3": {"node1": {"loss": 0.25, "rtt_ms": 12.5, "ok": True}}}
    text = _report.render_prometheus(report)
    check_metrics(text)
    got = {(name, labels["node"], labels["peer"]): value for name, labels, value in samples(text)
           if name.startswith("netdoctor_calico_probe_")}
    assert got == pytest.approx({
        ("netdoctor_calico_probe_ok", "node1", "node2"): 1, ("netdoctor_calico_probe_ok", "node1", "node3"): 0,
        ("netdoctor_calico_probe_ok", "node3", "node1"): 1,
        ("netdoctor_calico_probe_loss_ratio", "node1", "node2"): 0.0,
        ("netdoctor_calico_probe_loss_ratio", "node1", "node3"): 1.0,
        ("netdoctor_calico_probe_loss_ratio", "node3", "node1"): 0.25,
        # no reply, no round-trip time: no series rather than a made-up value
        ("netdoctor_calico_probe_rtt_seconds", "node1", "node2"): 0.00042,
        ("netdoctor_calico_probe_rtt_seconds", "node3", "node1"): 0.0125,
    })
    assert all(labels["cluster"] == "default" for name, labels, _v in samples(text) if "probe" in name)


PLAYBOOK = """
- name: Audit a fleet of test facts and write the textfile
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Load this host's facts
      test_calico_facts:
        path: "{{ facts_dir }}/{{ inventory_hostname }}.json"

    - name: Audit, as a timer does it
      netdoctor.calico.fleet_audit:
        report_dir: "{{ out }}/textfile"
        formats: [prometheus, json]
        fail_on: never
      run_once: true
      register: audit

    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ {'audit': audit} | to_json }}"
        dest: "{{ out }}/results.json"
        mode: "0644"
      run_once: true
      delegate_to: localhost
"""


def test_promtool_accepts_the_textfile_the_audit_writes(tmp_path):
    proc, results = run_playbook(tmp_path, PLAYBOOK, seed_case1(), [f"node{i}" for i in range(1, 6)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = Path(results["audit"]["report_paths"]["prometheus"])
    assert path == tmp_path / "textfile" / "calico_audit.prom"
    assert sorted(p.name for p in path.parent.iterdir()) == ["calico_audit.prom", "report.json"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    text = path.read_text(encoding="utf-8")
    check_metrics(text)
    assert 'netdoctor_calico_finding{cluster="default",id="RT001",node="node3",peer="node1",severity="critical"} 1' \
        in text


# --- the alert rules of docs/examples ---------------------------------------------------------

def test_the_alert_rules_pass_promtool():
    proc = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def node_alert(severity, cluster, node, count):
    """An alert as promtool expects it: labels and the annotations that name the node."""
    if severity == "critical":
        annotations = {
            "summary": f"Calico networking is broken on {node} (cluster {cluster})",
            "description": f"The netdoctor.calico audit has found {count} critical finding(s) on {node} for 30 "
                           f'minutes. Query netdoctor_calico_finding{{node="{node}"}} for their ids and peers; '
                           "report.html of the audit has the evidence and the fix."}
    else:
        annotations = {
            "summary": f"Calico networking warning on {node} (cluster {cluster})",
            "description": f"{count} warning finding(s) from the netdoctor.calico audit on {node} for 2 hours."}
    return {"exp_labels": {"severity": severity, "cluster": cluster, "node": node}, "exp_annotations": annotations}


def test_the_alert_rules_page_once_per_node_without_storming(tmp_path):
    """node3 has two critical findings (two peers), node4 one, node1 only a folded consequence
    (info): two node alerts, each once, after 30 minutes; nothing for node1. A cluster where most
    nodes are critical gets its cluster alert."""
    scrape = 'instance="controller:9100",job="node"'
    series = [
        ("prod", "node3", "node1", "RT001", "critical"), ("prod", "node3", "node2", "RT001", "critical"),
        ("prod", "node4", "", "AD001", "critical"), ("prod", "node1", "node4", "BGP001", "info"),
        ("prod", "node2", "", "MTU001", "warning"),
        *(("edge", f"edge{i}", "", "NM001", "critical") for i in range(1, 6)),
    ]
    lines = [f'netdoctor_calico_finding{{cluster="{c}",node="{n}",peer="{p}",id="{i}",severity="{s}",{scrape}}}'
             for c, n, p, i, s in series]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "5m",
            "input_series": [{"series": line, "values": "1x24"} for line in lines] + [
                {"series": f'netdoctor_calico_nodes{{cluster="prod",status="findings",{scrape}}}', "values": "4x24"},
                {"series": f'netdoctor_calico_nodes{{cluster="prod",status="ok",{scrape}}}', "values": "16x24"},
                {"series": f'netdoctor_calico_nodes{{cluster="edge",status="findings",{scrape}}}', "values": "5x24"},
                {"series": f'netdoctor_calico_audit_timestamp_seconds{{{scrape}}}',
                 "values": "0+300x24"}],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "CalicoNodeNetworkingCritical", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "CalicoNodeNetworkingCritical", "exp_alerts": [
                    node_alert("critical", "prod", "node3", 2), node_alert("critical", "prod", "node4", 1),
                    *(node_alert("critical", "edge", f"edge{i}", 1) for i in range(1, 6))]},
                {"eval_time": "40m", "alertname": "CalicoNodeNetworkingWarning", "exp_alerts": []},
                {"eval_time": "110m", "alertname": "CalicoNodeNetworkingWarning", "exp_alerts": []},
                {"eval_time": "121m", "alertname": "CalicoNodeNetworkingWarning", "exp_alerts": [
                    node_alert("warning", "prod", "node2", 1)]},
                {"eval_time": "40m", "alertname": "CalicoClusterNetworkingCritical", "exp_alerts": [
                    {"exp_labels": {"severity": "critical", "cluster": "edge"}, "exp_annotations": {
                        "summary": "Calico networking is broken on 5 nodes of cluster edge",
                        "description": "More than a fifth of the nodes of edge have critical netdoctor.calico "
                                       'findings; look for one cause in the audit\'s "Fix first" list.'}}]},
                {"eval_time": "40m", "alertname": "CalicoAuditStale", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "CalicoAuditMissing", "exp_alerts": []},
            ],
        }],
    }
    import yaml  # noqa: PLC0415 - ansible-core's dependency, only this test needs it

    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr + textwrap.indent(path.read_text(), "  ")


def test_the_docs_show_the_rule_file_as_it_is():
    docs = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    rules = RULES.read_text(encoding="utf-8")
    body = rules[rules.index("groups:"):]
    assert body in docs, "docs/audit.md must quote docs/examples/calico-audit-alerts.yml from `groups:` on"
