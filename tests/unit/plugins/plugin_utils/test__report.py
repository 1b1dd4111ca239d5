"""Reports of a fleet audit: JSON schema, Markdown size, self-contained HTML matrix, JUnit,
jmespath queries and the fail_on threshold."""

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _contract
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet, _report
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import healthy, seed_case1, seed_case2

GENERATED = "2026-01-02T03:04:05+00:00"


def report_of(facts, **kwargs):
    maps, findings, hosts = _fleet.audit_fleet(facts, **kwargs)
    return _report.build_report(maps, findings, hosts, GENERATED)


def both_cases():
    """Seed 001 case 1 and case 2 in one fleet, node5 unreachable."""
    facts = seed_case2()
    facts["node3"] = seed_case1()["node3"]
    facts["node5"] = None
    return report_of(facts)


def big_report(nodes=400, per_node=8):
    findings = [{"id": "RT001", "severity": "critical" if n % 2 else "warning", "host": f"node{h:04d}", "cluster": "c1",
                 "peer": f"node{(h + n + 1) % nodes:04d}", "summary": "x" * 120, "evidence": {"routes": ["y" * 80]},
                 "remedy": "z" * 200} for h in range(nodes) for n in range(per_node)]
    hosts = {f"node{h:04d}": {"status": "findings", "ip": "192.0.2.1", "mode": "ipip", "blocks": 1,
                              "worst": "critical", "counts": {}, "ids": ["RT001"], "routes": None, "cluster": "c1"}
             for h in range(nodes)}
    return _report.build_report({"c1": {"mode": "ipip", "blocks": {}, "nodes": {}}}, findings, hosts, GENERATED)


# --- JSON -------------------------------------------------------------------------------------

def test_json_report_is_versioned_and_summarised():
    report = both_cases()
    doc = json.loads(_report.render_json(report))
    assert doc["schema_version"] == 2
    assert doc["generated"] == GENERATED
    assert set(doc) == {"schema_version", "generated", "summary", "clusters", "hosts", "findings"}
    summary = doc["summary"]
    assert (summary["hosts"], summary["audited"], summary["unreachable"]) == (5, 4, ["node5"])
    assert summary["critical"] == sum(1 for f in doc["findings"] if f["severity"] == "critical")
    assert summary["by_id"]["RT001"] == 1
    assert summary["worst"] == "critical"
    assert summary["clusters"] == ["default"]
    assert doc["clusters"]["default"]["summary"]["findings"] == summary["findings"]
    assert doc["clusters"]["default"]["expected_map"]["block_count"] == 4
    assert "blocks" not in doc["clusters"]["default"]["expected_map"]  # compact: next hops follow from nodes
    assert doc["hosts"]["node5"]["status"] == "unreachable"


def test_a_healthy_fleet_reports_ok():
    summary = report_of(healthy("vxlan"))["summary"]
    assert (summary["findings"], summary["worst"], summary["mode"]) == (0, "ok", "vxlan")


# --- fail_on ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("severity", "threshold", "fails"), [
    ("critical", "critical", True), ("warning", "critical", False), ("info", "critical", False),
    ("critical", "warning", True), ("warning", "warning", True), ("info", "warning", False),
    ("info", "info", True), ("critical", "never", False),
])
def test_fail_on_threshold(severity, threshold, fails):
    assert _contract.at_or_above(severity, threshold) is fails


def test_fail_on_rejects_unknown_thresholds():
    with pytest.raises(ValueError, match="fail_on"):
        _contract.at_or_above("critical", "error")


def test_failing_picks_the_findings_at_or_above():
    findings = both_cases()["findings"]
    assert {f["severity"] for f in _contract.failing(findings, "critical")} == {"critical"}
    assert len(_contract.failing(findings, "warning")) == len(findings)
    assert _contract.failing(findings, "never") == []


# --- query ------------------------------------------------------------------------------------

def test_jmespath_queries():
    report = both_cases()
    assert report["summary"]["critical"] > 0
    critical_hosts = _report.query(report, "findings[?severity=='critical'].host")
    assert "node3" in critical_hosts and "node4" in critical_hosts
    assert _report.query(report, "findings[?id=='RT001'].[host, peer]") == [["node3", "node1"]]
    assert _report.query(report, "summary.unreachable") == ["node5"]
    assert _report.query(report, "hosts.node2.ip") == "192.168.0.111"


def test_an_invalid_query_says_so():
    with pytest.raises(ValueError, match="invalid query"):
        _report.query(both_cases(), "findings[?severity==")


# --- Markdown ---------------------------------------------------------------------------------

def test_markdown_has_the_summary_findings_and_nodes():
    text = _report.render_markdown(both_cases())
    assert "| critical |" in text
    assert "### Critical" in text
    assert "**RT001** `node3` → `node1`" in text
    assert "**SRC001** `node4` → `node2`" in text
    assert "| node5 | unreachable |" in text
    assert "not shown" not in text


def test_markdown_fits_a_pr_comment_and_counts_what_it_left_out():
    report = big_report()
    text = _report.render_markdown(report)
    assert len(text.encode()) <= _report.MARKDOWN_LIMIT
    assert "### Critical (1600)" in text and "### Warning (1600)" in text
    assert text.index("### Critical") < text.index("### Warning")
    assert text.count("more not shown (report.json has them all)") == 2
    assert "nodes not shown" in text


# --- HTML -------------------------------------------------------------------------------------

class Page(HTMLParser):
    """Collects the matrix cells and every URL-bearing attribute or tag."""

    def __init__(self):
        super().__init__()
        self.cells, self.rows, self.urls, self.tags = {}, [], [], set()
        self._row = None
        self._in_matrix = False
        self._header = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for name in ("href", "src", "action", "srcset", "xlink:href"):
            if name in attrs:
                self.urls.append(attrs[name])
        if tag == "table" and attrs.get("id") == "matrix":
            self._in_matrix = True
        elif self._in_matrix and tag == "tr":
            self._row = []
            self.rows.append(self._row)
        elif self._in_matrix and tag == "td":
            title = attrs["title"]
            pair = tuple(title.split(":")[0].split(" → "))
            self.cells[pair] = attrs["class"]

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_matrix = False


def test_html_is_self_contained_with_a_node_matrix():
    report = both_cases()
    text = _report.render_html(report)
    page = Page()
    page.feed(text)
    assert page.urls == []
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert "http://" not in text and "https://" not in text and "url(" not in text
    assert len(page.rows) == 1 + 5  # header + one row per node
    assert page.cells[("node3", "node1")] == "sev-critical"  # RT001
    assert page.cells[("node4", "node2")] == "sev-critical"  # SRC001 (IPIP)
    assert page.cells[("node1", "node3")] == "sev-ok"
    assert page.cells[("node2", "node5")] == "sev-unreachable"
    assert "RT001" in text and "ip route replace 10.122.17.64/26 via 192.168.3.110" in text


def test_html_escapes_what_it_quotes():
    report = both_cases()
    report["findings"][0]["summary"] = "<script>alert(1)</script>"
    text = _report.render_html(report)
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_html_matrix_is_bounded_for_big_fleets():
    page = Page()
    page.feed(_report.render_html(big_report(nodes=400, per_node=2)))
    assert len(page.rows) == 1 + _report.MATRIX_LIMIT


# --- JUnit ------------------------------------------------------------------------------------

CHECKS = ("RT001", "RT002", "SRC001", "UNREACH")


def cases(xml_text):
    root = ET.fromstring(xml_text)
    return root, {(c.get("classname").split(".", 1)[1], c.get("name")): c for c in root.iter("testcase")}


def test_junit_one_testcase_per_check_per_host():
    root, by = cases(_report.render_junit(both_cases(), CHECKS, "warning"))
    assert root.tag == "testsuites"
    assert len(by) == 5 * len(CHECKS)
    assert int(root.get("tests")) == 5 * len(CHECKS)
    failure = by[("node3", "RT001")].find("failure")
    assert failure is not None and failure.get("type") == "critical"
    assert "10.122.17.64/26 via 10.122.127.128 dev tunl0" in failure.text
    assert by[("node1", "RT001")].find("failure") is None
    assert by[("node4", "SRC001")].find("failure") is not None
    # node5 gave no facts: its UNREACH check fails (a warning), the others are skipped.
    assert by[("node5", "UNREACH")].find("failure") is not None
    assert by[("node5", "RT001")].find("skipped") is not None
    assert int(root.get("failures")) == sum(1 for c in by.values() if c.find("failure") is not None)


def test_junit_threshold_moves_milder_findings_to_system_out():
    root, by = cases(_report.render_junit(both_cases(), CHECKS, "critical"))
    unreach = by[("node5", "UNREACH")]
    assert unreach.find("failure") is None
    assert "gave no facts" in unreach.find("system-out").text
    assert by[("node3", "RT001")].find("failure") is not None
    root, by = cases(_report.render_junit(both_cases(), CHECKS, "never"))
    assert root.get("failures") == "0"


def test_junit_adds_ids_outside_the_check_list():
    report = both_cases()
    report["findings"].append({"id": "ZZZ001", "severity": "warning", "host": "node1", "summary": "s",
                               "evidence": {}, "remedy": "r"})
    _root, by = cases(_report.render_junit(report, CHECKS, "warning"))
    assert by[("node1", "ZZZ001")].find("failure") is not None
