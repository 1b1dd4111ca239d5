"""Reports of a fleet audit: JSON schema, Markdown size and escaping, the self-contained HTML page
(counts and colours, folded consequences, matrices per cluster and at fleet scale), JUnit,
jmespath queries and the fail_on threshold. tests/integration/test_report_html.py looks at the
page in Chromium."""

import ipaddress
import json
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet, _report
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import (
    build,
    healthy,
    healthy_specs,
    node,
    refresh,
    seed_case1,
    seed_case2,
)

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
    assert _catalogue.at_or_above(severity, threshold) is fails


def test_fail_on_rejects_unknown_thresholds():
    with pytest.raises(ValueError, match="fail_on"):
        _catalogue.at_or_above("critical", "error")


def test_failing_picks_the_findings_at_or_above():
    findings = both_cases()["findings"]
    assert {f["severity"] for f in _catalogue.failing(findings, "critical")} == {"critical"}
    assert len(_catalogue.failing(findings, "warning")) == len(findings)
    assert _catalogue.failing(findings, "never") == []


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


# --- Markdown escaping (issue 11) --------------------------------------------------------------

@pytest.mark.parametrize(("text", "span"), [
    ("node1", "`node1`"),
    ("no`de1", "``no`de1``"),
    ("a``b`c", "```a``b`c```"),
    ("`lead", "`` `lead ``"),
    ("trail`", "`` trail` ``"),
    (" both ", "`  both  `"),
    ("   ", "`   `"),
    ("two\nlines", "`two lines`"),
])
def test_markdown_code_span_fence_is_longer_than_any_backtick_run(text, span):
    assert _report._md_code_span(text) == span


def test_markdown_code_span_in_a_table_escapes_pipes():
    assert _report._md_code_span("a|b", table=True) == "`a\\|b`"


def test_markdown_remedy_keeps_its_code_spans():
    parts = _report.code_spans("run `ip route` or ``a`b`` and `` ` `` too; a lone ` stays")
    assert parts == [(False, "run "), (True, "ip route"), (False, " or "), (True, "a`b"), (False, " and "),
                     (True, "`"), (False, " too; a lone ` stays")]
    assert _report._md_remedy("run `ip route` *now*") == "run `ip route` \\*now\\*"


def hostile_report():
    """Host names a CommonMark renderer would read as markup."""
    names = ["no`de1", "x``y`z", "`lead", "star*_name_", "pi|pe", "<b>tag</b>", "back\\slash"]
    findings = [{"id": "RT001", "severity": "critical", "host": h, "peer": names[(i + 1) % len(names)],
                 "cluster": "c1", "summary": f"{h} routes badly", "evidence": {"host": h},
                 "remedy": f"Fix it on {h}: `ip route replace 10.0.0.0/26 via 192.0.2.1`"}
                for i, h in enumerate(names)]
    hosts = {h: {"status": "findings", "ip": "192.0.2.1", "mode": "ipip", "blocks": 1, "worst": "critical",
                 "counts": {}, "ids": ["RT001"], "routes": None, "cluster": "c1"} for h in names}
    return _report.build_report({"c1": {"mode": "ipip"}}, findings, hosts, GENERATED), names


def test_markdown_renders_hostile_host_names_literally():
    """Rendered by a CommonMark parser (markdown-it-py, with GFM tables): every host name comes back
    as itself, in its code span and in the node table."""
    markdown_it = pytest.importorskip("markdown_it")
    report, names = hostile_report()
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(_report.render_markdown(report))
    page = parse_page(rendered)
    codes = [c.text() for c in page.find_all("code")]
    cells = [td.text() for td in page.find_all("td")]
    for name in names:
        assert name in codes, name  # "**RT001** `host` → `peer`"
        assert name in cells, name  # the node table's first column
    assert "ip route replace 10.0.0.0/26 via 192.0.2.1" in codes
    assert not page.find_all("b") or all(b.text() != "tag" for b in page.find_all("b"))


# --- HTML -------------------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    """An element of a parsed page: tag, attributes, children (elements and text)."""

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    @property
    def classes(self):
        return set((self.attrs.get("class") or "").split())

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag=None, cls=None):
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)]

    def closest(self, tag=None, cls=None):
        node = self.parent
        while node is not None and not ((tag is None or node.tag == tag) and (cls is None or cls in node.classes)):
            node = node.parent
        return node


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_page(text):
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


def matrix_cells(table):
    """{(row, column): (classes, text)} of a matrix, by the names in its headers."""
    columns = [th.text() for th in table.find_all("th", "col")]
    cells = {}
    for tr in table.find_all("tr"):
        head = [th for th in tr.find_all("th") if th.attrs.get("scope") == "row"]
        if not head:
            continue
        for column, td in zip(columns, tr.find_all("td"), strict=True):
            cells[(head[0].text(), column)] = (td.classes, td.text())
    return cells


def sev_classes(cell):
    """A cell's colour and text, without the classes that only draw the grid (subnet start, diagonal)."""
    classes, text = cell
    return classes - {"g0", "diag"}, text


def severity_of(classes):
    return next((c[4:] for c in classes if c.startswith("sev-")), None)


def check_page(report, text):
    """Counts and colours agree: every count badge says what the report counts, in a severity
    colour only when it is not zero; every colour drawn (matrix cell, finding, badge) is one the
    counts of its cluster use; each cluster draws as many findings of each severity as it counts.
    Returns the parsed page."""
    page = parse_page(text)
    summary = report["summary"]
    sections = {s.attrs["data-cluster"]: s for s in page.find_all("section", "cluster")}
    assert len(sections) == len(report["clusters"])
    scopes = [(page.find_all("header")[0], summary)] + [
        (sections[name], data["summary"]) for name, data in report["clusters"].items()]
    for scope, counts in scopes:
        for badge in scope.find_all("span", "count"):
            sev, n = badge.attrs["data-sev"], int(badge.attrs["data-count"])
            assert n == (len(counts["unreachable"]) if sev == "unreachable" else counts[sev]), (sev, n)
            assert badge.classes == ({"count", f"sev-{sev}"} if n else {"count", "zero"}), badge.classes
    for name, data in report["clusters"].items():
        counts, section = data["summary"], sections[name]
        allowed = {s for s in _catalogue.SEVERITIES if counts[s]} | {"ok"}
        if counts["unreachable"]:
            allowed.add("unreachable")
        for element in section.iter():
            sev = severity_of(element.classes)
            if sev and element.tag in ("td", "article", "li", "span") and "count" not in element.classes:
                assert sev in allowed, (name, element.tag, element.classes, element.text()[:80])
        # Drawn, or counted in a "N more in report.json" line (past the page's limits).
        drawn = {s: len([n for n in section.iter() if n.attrs.get("data-sev") == s and n.tag in ("article", "li")])
                 + sum(int(n.attrs["data-count"]) for n in section.iter() if n.attrs.get("data-more-sev") == s)
                 for s in _catalogue.SEVERITIES}
        assert drawn == {s: counts[s] for s in _catalogue.SEVERITIES}, (name, drawn)
        for table in section.find_all("table", "matrix"):
            for (row, column), (classes, cell_text) in matrix_cells(table).items():
                assert "sev-ok" in classes or cell_text.strip(), (row, column, classes)  # a problem cell says so
    return page


def misregistered_report():
    """node4 registered with its second NIC's address (AD001): its sessions and routes with every
    node break, a dozen findings folded under the AD001; some are warnings on their own."""
    specs = healthy_specs(3) + [node("node4", [("eth0", "192.0.2.14/24"), ("eth1", "198.51.100.14/24")],
                                     "198.51.100.14", "198.18.4.0/26", "198.18.4.0")]
    facts = build("bgp", specs)

    def down(host, address, block):
        for peer in facts[host]["bird"]["peers"]:
            if peer["address"] == address:
                peer.update(state="start", info="Connect", established=False)
        routes = facts[host]["routes"]
        routes["remote_blocks"] = [r for r in routes["remote_blocks"] if r["dst"] != block]
    for i in (1, 2, 3):
        down(f"node{i}", "198.51.100.14", "198.18.4.0/26")
        down("node4", f"192.0.2.1{i}", f"198.18.{i}.0/26")
    facts["node4"]["peer_routes"] = {f"192.0.2.1{i}": {"prefsrc": "192.0.2.14", "dev": "eth0", "gateway": None}
                                     for i in (1, 2, 3)}
    intended = {f"node{i}": f"192.0.2.1{i}" for i in (1, 2, 3, 4)}
    for host, fact in facts.items():
        fact["autodetection"]["intended"] = intended[host]
    return report_of(refresh(facts), intended_ips=intended)


def two_cluster_report():
    facts = {**seed_case1(), **{f"edge{h[-1]}": f for h, f in healthy("vxlan").items()}}
    for host in ("edge1", "edge2", "edge3", "edge4"):
        facts[host]["hostname"] = host
    facts["edge4"] = None
    return report_of(facts, clusters={h: "edge" if h.startswith("edge") else "prod" for h in facts})


def test_html_is_self_contained():
    text = _report.render_html(both_cases())
    page = parse_page(text)
    assert not [n for n in page.iter() for a in ("href", "src", "action", "srcset", "xlink:href")
                if a in n.attrs and not (a == "href" and n.attrs[a].startswith("#"))]
    assert not {n.tag for n in page.iter()} & {"link", "img", "iframe", "object", "embed"}
    scripts = page.find_all("script")
    assert len(scripts) == 1 and not scripts[0].attrs  # one inline script: zoom, filter, print
    assert "http://" not in text and "https://" not in text and "url(" not in text
    assert "@media print" in text


def test_html_matrix_cells_carry_text_and_the_counted_colours():
    report = both_cases()
    page = check_page(report, _report.render_html(report))
    cells = matrix_cells(page.find_all("table", "matrix")[0])
    assert len(cells) == 5 * 5
    assert sev_classes(cells[("node3", "node1")]) == ({"sev-critical"}, "C")  # RT001
    assert sev_classes(cells[("node4", "node2")]) == ({"sev-critical"}, "C")  # SRC001 (IPIP)
    assert cells[("node5", "node5")] == ({"sev-warning", "diag", "g0"}, "W")  # UNREACH
    assert sev_classes(cells[("node1", "node3")]) == ({"sev-ok"}, "")
    assert sev_classes(cells[("node2", "node5")]) == ({"sev-unreachable"}, "?")
    assert "RT001" in page.text() and "ip route replace 10.122.17.64/26 via 192.168.3.110" in page.text()


def test_html_matrix_groups_rows_by_subnet_worst_first():
    page = parse_page(_report.render_html(both_cases()))
    table = page.find_all("table", "matrix")[0]
    groups = [tr.text() for tr in table.find_all("tr", "grp")]
    assert [g.split(" ·")[0] for g in groups] == ["192.168.3.0/24", "no known address", "192.168.0.0/24"]
    rows = [th.text() for th in table.find_all("th") if th.attrs.get("scope") == "row"]
    assert rows == ["node1", "node3", "node4", "node5", "node2"]
    assert [th.text() for th in table.find_all("th", "col")] == rows  # the diagonal stays the diagonal


def test_html_folds_consequences_under_their_cause_in_its_colour():
    """The issue's page: a column painted yellow while the counts say 0 warnings, ten consequence
    rows burying the cause. Now the consequences sit under the AD001 and paint its colour."""
    report = misregistered_report()
    summary = report["summary"]
    assert summary["warning"] == 0 and summary["info"] > 10
    assert {f["evidence"].get("severity_alone") for f in report["findings"]} >= {"warning"}
    page = check_page(report, _report.render_html(report))
    assert not [n for n in page.iter() if "sev-warning" in n.classes]
    cause = next(a for a in page.find_all("article") if "AD001" in a.text())
    folded = cause.find_all("details", "conseq")[0].find_all("li")
    assert len(folded) == summary["info"]
    assert {li.attrs["data-sev"] for li in folded} == {"info"}
    # Top level: only the cause (the consequences are not findings of their own on the page).
    assert [a.find_all("b")[0].text() for a in page.find_all("article")] == ["AD001"]
    cells = matrix_cells(page.find_all("table", "matrix")[0])
    assert sev_classes(cells[("node1", "node4")]) == ({"sev-critical", "conseq"}, "↳")
    assert cells[("node4", "node4")][0] >= {"sev-critical", "diag"} and cells[("node4", "node4")][1] == "C"
    fix = page.find_all("ol", "fix")[0].text()
    assert "AD001" in fix and f"+{summary['info']} consequences" in fix


def test_html_zero_counts_are_neutral_and_a_healthy_fleet_says_so():
    report = report_of(healthy("ipip"))
    page = check_page(report, _report.render_html(report))
    badges = page.find_all("span", "count")
    assert badges and all(b.classes == {"count", "zero"} for b in badges)
    assert "Nothing to fix" in page.text()
    cells = matrix_cells(page.find_all("table", "matrix")[0])
    assert {frozenset(c) - {"diag", "g0"} for c, _t in cells.values()} == {frozenset({"sev-ok"})}


def test_html_renders_remedies_and_escapes_what_it_quotes():
    report = both_cases()
    report["findings"][0]["summary"] = "<script>alert(1)</script>"
    report["findings"][0]["remedy"] = "Run `ip route replace <dst> via <gw>` then <b>check</b> with ``a`b``."
    text = _report.render_html(report)
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = parse_page(text)
    remedy = page.find_all("div", "remedy")[0]
    assert [c.text() for c in remedy.find_all("code")] == ["ip route replace <dst> via <gw>", "a`b"]
    assert "`" not in "".join(c for c in remedy.children if isinstance(c, str))
    assert not remedy.find_all("b") and "<b>check</b>" in remedy.text()
    assert all("`" not in r.text().replace("a`b", "") for r in page.find_all("div", "remedy"))


def test_html_has_a_section_per_cluster():
    report = two_cluster_report()
    page = check_page(report, _report.render_html(report))
    sections = page.find_all("section", "cluster")
    assert [s.attrs["data-cluster"] for s in sections] == ["edge", "prod"]
    assert [len(s.find_all("table", "matrix")) for s in sections] == [1, 1]
    edge = matrix_cells(sections[0].find_all("table", "matrix")[0])
    assert {r for r, _c in edge} == {"edge1", "edge2", "edge3", "edge4"}
    assert [a.attrs["href"] for a in page.find_all("nav")[0].find_all("a")] == ["#cluster-0", "#cluster-1"]


def fleet_scale_report(nodes=5000, per_subnet=50, ip=None):
    """A synthetic fleet of ``nodes`` in /24s of ``per_subnet`` (or at ``ip(i)``): a wrong next hop
    on every 97th node, towards a node of the next subnet; every 250th unreachable."""
    def name(i):
        return f"n{i:05d}"

    def rack_ip(i):
        return f"10.{i // per_subnet // 250}.{i // per_subnet % 250}.{10 + i % per_subnet}"
    ip = ip or rack_ip
    findings = [{"id": "RT001", "severity": "critical", "host": name(i), "peer": name((i + per_subnet) % nodes),
                 "cluster": "big", "summary": "wrong next hop", "evidence": {}, "remedy": "`ip route replace`"}
                for i in range(0, nodes, 97)]
    findings += [{"id": "UNREACH", "severity": "warning", "host": name(i), "peer": None, "cluster": "big",
                  "summary": "gave no facts", "evidence": {}, "remedy": "reach it"} for i in range(5, nodes, 250)]
    bad = {f["host"]: f["severity"] for f in reversed(findings)}
    hosts = {name(i): {"status": "unreachable" if (i - 5) % 250 == 0 else ("findings" if name(i) in bad else "ok"),
                       "ip": ip(i), "mode": "ipip", "blocks": 1, "worst": bad.get(name(i)),
                       "counts": {}, "ids": [], "routes": None, "cluster": "big"} for i in range(nodes)}
    return _report.build_report({"big": {"mode": "ipip"}}, findings, hosts, GENERATED)


def test_html_matrix_at_fleet_scale_is_subnet_by_subnet():
    """5,000 nodes in 100 /24s: too many for one cell per node pair, and too many /24s: /22s."""
    report = fleet_scale_report()
    text = _report.render_html(report)
    assert len(text) < 1_000_000
    page = check_page(report, text)
    tables = page.find_all("table", "matrix")
    assert len(tables) == 1 and "agg" in tables[0].classes
    cells = matrix_cells(tables[0])
    subnets = {f"10.0.{4 * i}.0/22" for i in range(25)}
    assert {r.split(" ")[0] for r, _c in cells} == subnets and {c for _r, c in cells} == subnets
    # Each cell counts the node pairs with findings between its two subnets.
    expected = Counter()
    for pair in {(f["host"], f.get("peer") or f["host"]) for f in report["findings"]}:
        a, b = (ipaddress.ip_network(f"{report['hosts'][h]['ip']}/22", strict=False) for h in pair)
        expected[(str(a), str(b))] += 1
    got = {(r.split(" ")[0], c): int(t) for (r, c), (_cls, t) in cells.items() if t}
    assert got == expected
    # The node table lists the nodes with critical or warning findings; the healthy ones are named, folded.
    listed = [tr.find_all("td")[0].text() for tr in page.find_all("table", "nodes")[0].find_all("tr")[1:]]
    assert sorted(listed) == sorted({f["host"] for f in report["findings"]})
    assert f"{5000 - len(listed)} nodes without findings" in page.text()


def test_html_matrix_lumps_subnets_past_its_limit():
    """Addresses spread over more /8s than the grid has rows: the worst subnets, and one for the rest."""
    report = fleet_scale_report(nodes=1000, ip=lambda i: f"{1 + i % 100}.0.0.{1 + i // 100}")
    page = check_page(report, _report.render_html(report))
    table = page.find_all("table", "matrix")[0]
    rows = [th.text() for th in table.find_all("th") if th.attrs.get("scope") == "row"]
    assert len(rows) == _report.SUBNET_LIMIT and len(matrix_cells(table)) == _report.SUBNET_LIMIT ** 2
    assert rows[-1].startswith(f"{100 - _report.SUBNET_LIMIT + 1} more subnets")
    assert all(r.split(" ")[0].endswith(".0.0.0/8") for r in rows[:-1])


def test_html_findings_are_bounded_and_say_what_they_left_out():
    report = big_report(nodes=400, per_node=8)  # 3,200 findings
    text = _report.render_html(report)
    page = check_page(report, text)  # drawn + "N more in report.json" = the counts
    assert len(page.find_all("article")) == _report.HTML_FINDINGS_LIMIT
    assert "more RT001 findings are in report.json" in page.text()
    assert len(text) < 3_000_000


def test_html_matrix_of_a_mid_sized_cluster_is_node_by_node():
    report = fleet_scale_report(nodes=_report.MATRIX_LIMIT, per_subnet=20)
    page = check_page(report, _report.render_html(report))
    table = page.find_all("table", "matrix")[0]
    assert "agg" not in table.classes and len(matrix_cells(table)) == _report.MATRIX_LIMIT ** 2
    assert len(table.find_all("tr", "grp")) == 4


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
