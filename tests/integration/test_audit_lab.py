"""The fleet audit (`ansible-playbook netdoctor.calico.audit`) against the namespace lab, over real
SSH: healthy labs in every mode with and without a second NIC report nothing at warning or above;
every lab fault yields its finding on the right node (and peer) and nothing else at warning or
above (several faults at once, on different nodes, one lab per mode); a node whose sshd dies
between the fact gathering and the route check is reported unreachable while the others are
audited; audit_fail_on sets the exit code after the reports are written; audit_query returns
what JMESPath selects; the HTML report renders in a real headless Chromium without any network
request.

One lab at a time (labs share four address slots with other developers' labs on this machine).
"""

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = str(Path(__file__).resolve().parents[2])
VENV_BIN = os.path.join(REPO, ".venv", "bin")
pytestmark = pytest.mark.lab

AT_LEAST_WARNING = ("critical", "warning")
# Fault -> finding id (docs/findings.md). "the peer" of a fault is node1 (labctl: the first other node).
FAULT_IDS = {
    "stale-route": "RT001",
    "missing-route": "RT002",
    "src-asym": "SRC001",
    "rp-filter-strict": "SYS001",
    "no-ip-forward": "SYS001",
    "proxy-arp-off": "SYS001",
    "bgp-peer-down": "BGP001",
    "autodetect-wrong-nic": "AD001",
    "nm-unmanaged-missing": "NM001",
    "nm-unmanaged-overridden": "NM001",
}
# bgp-peer-down needs BIRD (bgp, ipip) and missing-route a Felix-programmed mode (ipip, vxlan):
# `labctl fault` exits 2 elsewhere.
FAULTS = {"bgp": [f for f in FAULT_IDS if f != "missing-route"], "ipip": list(FAULT_IDS),
          "vxlan": [f for f in FAULT_IDS if f != "bgp-peer-down"]}
CHROMIUM = shutil.which("chromium")


def run_audit(lab, out_dir, *extra, env=None, timeout=300):
    """ansible-playbook netdoctor.calico.audit against the lab, reports into out_dir."""
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "netdoctor.calico.audit", "-i", lab.inventory(),
           "-e", f"audit_report_dir={out_dir}", *extra]
    full_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO, timeout=timeout, check=False)


def read_report(out_dir):
    return json.loads((Path(out_dir) / "report.json").read_text())


def serious(report):
    return [f for f in report["findings"] if f["severity"] in AT_LEAST_WARNING]


def triples(findings):
    return sorted((f["id"], f["host"], f["peer"]) for f in findings)


def assert_healthy(report, nodes):
    """Nothing at warning or above, every node audited and its routes checked by calico_routes."""
    assert serious(report) == [], json.dumps(serious(report), indent=1)[:4000]
    assert report["summary"]["unreachable"] == []
    assert sorted(report["hosts"]) == sorted(nodes)
    for host, line in report["hosts"].items():
        assert line["status"] in ("ok", "findings"), (host, line)
        # The route check ran on the node: every other node's block checked, all right.
        assert line["routes"] is not None, (host, line)
        assert line["routes"]["checked"] == len(nodes) - 1 == line["routes"]["ok"], (host, line)


def audit_ok(lab, out_dir, *extra):
    res = run_audit(lab, out_dir, "-e", "audit_fail_on=never", *extra)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return read_report(out_dir)


# ---------------------------------------------------------------------------------------------
# Healthy labs without a second NIC (the faulted labs below have one and are audited healthy first)


@pytest.mark.parametrize("mode", ["bgp", "vxlan", "ipip"])
def test_healthy_lab_without_extra_nic_has_no_findings(lab_factory, tmp_path, mode):
    """The large-fleet flow here (calico_routes in check mode on every node); the labs below
    take the default, which checks a small fleet's routes on the controller."""
    lab = lab_factory(f"ah{mode[0]}", mode=mode, nodes=3)
    try:
        # The Kubernetes datastore as the lab's cluster emulation serves it (tests/lab/kubectl):
        # consistent with the nodes, so its checks (DS001-DS003) run and pass.
        kubeconfig = lab.labctl("kubeconfig", "--name", lab.name).stdout.strip()
        report = audit_ok(lab, tmp_path, "-e", "audit_route_check=node", "-e", "audit_datastore=kubernetes",
                          "-e", f"audit_kubectl={os.path.join(REPO, 'tests', 'lab', 'kubectl')}",
                          "-e", f"audit_kubeconfig={kubeconfig}")
        assert_healthy(report, [n["name"] for n in lab.nodes()])
        assert report["summary"]["mode"] == mode
        assert report["clusters"]["default"]["expected_map"]["complete"] is True
        junit = (Path(tmp_path) / "junit.xml").read_text()
        assert 'name="DS001"' in junit and 'name="DS002"' in junit, junit[:2000]
    finally:
        lab.down()


# ---------------------------------------------------------------------------------------------
# Every fault, one lab per mode: healthy first (with --extra-nic), then all faults at once


def fault_plan(mode):
    """(fault, node): each fault on its own node, node1 (every fault's "peer") left alone."""
    return [(fault, f"node{i}") for i, fault in enumerate(FAULTS[mode], start=2)]


def expected_serious(plan):
    """(id, host, peer) of every finding at warning or above the faults must give, and no other."""
    out = []
    for fault, node in plan:
        fid = FAULT_IDS[fault]
        if fault in ("stale-route", "missing-route"):
            out.append((fid, node, "node1"))          # the route to the peer's block, owner named
        elif fault == "bgp-peer-down":
            out += [(fid, node, "node1"), (fid, "node1", node)]   # both ends of the session
        else:
            out.append((fid, node, None))
    return sorted(out)


@pytest.mark.parametrize("mode", ["bgp", "vxlan", "ipip"])
def test_every_fault_gives_its_finding_on_its_node_and_nothing_else(lab_factory, tmp_path, mode):
    plan = fault_plan(mode)
    lab = lab_factory(f"af{mode[0]}", mode=mode, nodes=len(plan) + 1, extra_nic=True)
    try:
        names = [n["name"] for n in lab.nodes()]
        assert_healthy(audit_ok(lab, tmp_path / "healthy"), names)

        for fault, node in plan:
            lab.fault(fault, node=node)
        report = audit_ok(lab, tmp_path / "faults")
        found = serious(report)
        assert triples(found) == expected_serious(plan), json.dumps(
            [(f["id"], f["host"], f["peer"], f["severity"], f["summary"]) for f in found], indent=1)
        check_fault_details(report, plan, lab)
        # The large-fleet flow (route check on the nodes, only the drift comes back) agrees.
        on_nodes = audit_ok(lab, tmp_path / "faults-node", "-e", "audit_route_check=node")
        assert triples(serious(on_nodes)) == triples(found)
        # The same judgement, whichever way it was reached (the default flow judges healthy nodes by their digest).
        assert {h: {k: v for k, v in line["routes"].items() if k != "by"} for h, line in on_nodes["hosts"].items()} == {
            h: {k: v for k, v in line["routes"].items() if k != "by"} for h, line in report["hosts"].items()}
        assert {line["routes"]["by"] for line in on_nodes["hosts"].values()} == {"node"}
        if mode == "bgp":
            check_fail_on_and_query(lab, tmp_path, report)
            check_html_in_chromium(tmp_path / "faults", report, tmp_path)
    finally:
        lab.down()


def one(report, fid, host, peer=None):
    hits = [f for f in serious(report) if (f["id"], f["host"], f["peer"]) == (fid, host, peer)]
    assert len(hits) == 1, (fid, host, peer, triples(serious(report)))
    return hits[0]


def check_fault_details(report, plan, lab):
    nodes = {n["name"]: n for n in lab.nodes()}
    at = dict(plan)

    stale = one(report, "RT001", at["stale-route"], "node1")
    assert stale["severity"] == "critical"
    assert stale["evidence"]["owner"] == "node1"
    assert nodes["node1"]["blocks"][0] in " ".join(stale["evidence"]["routes"])

    if "missing-route" in at:
        missing = one(report, "RT002", at["missing-route"], "node1")
        assert missing["evidence"]["kind"] == "missing"
        assert nodes["node1"]["blocks"][0] in " ".join(missing["evidence"]["expected"])

    src = one(report, "SRC001", at["src-asym"])
    assert src["evidence"]["calico_ip"] == nodes[at["src-asym"]]["intended_ip"]
    assert src["evidence"]["source"] != src["evidence"]["calico_ip"]

    assert "rp_filter" in one(report, "SYS001", at["rp-filter-strict"])["summary"]
    assert "ip_forward=0" in one(report, "SYS001", at["no-ip-forward"])["summary"]
    assert "proxy_arp" in one(report, "SYS001", at["proxy-arp-off"])["summary"]
    for fault in ("nm-unmanaged-missing", "nm-unmanaged-overridden"):
        assert one(report, "NM001", at[fault])["severity"] in AT_LEAST_WARNING

    node = at["autodetect-wrong-nic"]
    ad = one(report, "AD001", node)
    method = ad["evidence"]["recommended_method"]
    assert method and f"IP_AUTODETECTION_METHOD={method}" in ad["remedy"], ad["remedy"]
    assert ad["evidence"]["recommendation"]["on_this_node"]["ok"] is True
    assert ad["evidence"]["intended"] == nodes[node]["intended_ip"]
    # What the wrong address breaks elsewhere is kept, as info, naming its cause.
    for f in report["findings"]:
        if f["id"] != "AD001" and node in (f["host"], f["peer"]) and f["id"] in ("BGP001", "RT002", "SRC001"):
            assert f["severity"] == "info", f
            assert (f["evidence"]["caused_by"]["id"], f["evidence"]["caused_by"]["host"]) == ("AD001", node)

    if "bgp-peer-down" in at:
        down = at["bgp-peer-down"]
        for host, peer in ((down, "node1"), ("node1", down)):
            bgp = one(report, "BGP001", host, peer)
            assert nodes[peer]["calico_ip"] in bgp["summary"], bgp["summary"]
        # The faulted node's own firewall is named with the rules that drop the session.
        drops = one(report, "BGP001", down, "node1")["evidence"]["firewall"]["drops"]
        assert f"ip saddr {nodes['node1']['calico_ip']} tcp dport 179 drop" in [d["rule"] for d in drops]


# ---------------------------------------------------------------------------------------------
# audit_fail_on and audit_query (on the faulted bgp lab; the healthy labs have info findings only)


def check_fail_on_and_query(lab, tmp_path, faulted):
    # Critical findings exist: fail_on=critical fails the play, after writing every report.
    out = tmp_path / "fail"
    res = run_audit(lab, out, "-e", "audit_fail_on=critical")
    assert res.returncode != 0, res.stdout[-3000:]
    assert "at or above fail_on=critical" in res.stdout
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "report.html", "junit.xml"}
    assert read_report(out)["summary"]["critical"] > 0

    # The query is JMESPath over report.json; the json callback gives its exact value.
    query = "findings[?id=='RT001'].{host: host, owner: peer}"
    res = run_audit(lab, tmp_path / "query", "-e", "audit_fail_on=never", "-e", json.dumps({"audit_query": query}),
                    env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    assert res.returncode == 0, res.stdout[-3000:]
    results = [h["audit_query_result"] for play in json.loads(res.stdout)["plays"] for task in play["tasks"]
               for h in task["hosts"].values() if "audit_query_result" in h]
    expected = [{"host": f["host"], "owner": f["peer"]} for f in read_report(tmp_path / "query")["findings"]
                if f["id"] == "RT001"]
    assert results == [expected] and expected, results


def test_fail_on_threshold_is_exact(lab_factory, tmp_path):
    """A lab whose worst finding is info (NetworkManager installed, not running) passes at warning
    and fails at info, after writing the reports; a warning-only lab passes at critical and fails
    at warning."""
    lab = lab_factory("afo", mode="bgp", nodes=3, extra_nic=True)
    try:
        report = audit_ok(lab, tmp_path / "never")
        assert report["summary"]["worst"] == "info", report["summary"]
        assert run_audit(lab, tmp_path / "w", "-e", "audit_fail_on=warning").returncode == 0
        res = run_audit(lab, tmp_path / "i", "-e", "audit_fail_on=info")
        assert res.returncode != 0 and "at or above fail_on=info" in res.stdout, res.stdout[-3000:]
        assert read_report(tmp_path / "i")["summary"]["info"] > 0

        lab.fault("rp-filter-strict", node="node2")        # SYS001, a warning
        assert audit_ok(lab, tmp_path / "never2")["summary"]["worst"] == "warning"
        assert run_audit(lab, tmp_path / "c", "-e", "audit_fail_on=critical").returncode == 0
        res = run_audit(lab, tmp_path / "w2", "-e", "audit_fail_on=warning")
        assert res.returncode != 0 and "SYS001 node2" in res.stdout, res.stdout[-3000:]
        assert (tmp_path / "w2" / "junit.xml").exists()
    finally:
        lab.down()


# ---------------------------------------------------------------------------------------------
# A node's sshd killed between the fact gathering and the route check


PROMPT = re.compile(r"Perform task: TASK: (.+?) \(N\)o/\(y\)es/\(c\)ontinue: ")


def kill_sshd(node):
    """Kill the node's sshd listener and its sessions (Ansible's persistent connection among
    them) by pid; wait until they are gone."""
    sshd = node["processes"]["sshd"]
    pids = [sshd] + [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == sshd]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while not all(process_gone(p) for p in pids):
        assert time.monotonic() < deadline, f"sshd pids {pids} still alive"
        time.sleep(0.05)


def process_gone(pid):
    """True when pid no longer runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def test_node_whose_sshd_dies_mid_run_is_reported_unreachable(lab_factory, tmp_path):
    """--step holds the play before each task: the facts come over SSH from all three nodes, then,
    before the route check, node3's sshd is killed; the audit completes for node1 and node2."""
    lab = lab_factory("aus", mode="vxlan", nodes=3)
    try:
        node3 = lab.node("node3")
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "netdoctor.calico.audit", "-i", lab.inventory(),
               "-e", f"audit_report_dir={tmp_path}", "-e", "audit_fail_on=never", "-e", "audit_route_check=node",
               "--step"]
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=REPO, env=env)
        output, answered, killed = b"", [], False
        deadline = time.monotonic() + 240
        try:
            while proc.poll() is None:
                assert time.monotonic() < deadline, output.decode(errors="replace")[-3000:]
                ready, _writable, _errors = select.select([proc.stdout], [], [], 1)
                if ready:
                    output += os.read(proc.stdout.fileno(), 65536)
                prompts = [m.group(1) for m in PROMPT.finditer(output.decode(errors="replace"))]
                # Each prompt is printed twice (before and after the answer): answer each new one once.
                distinct = [p for i, p in enumerate(prompts) if i == 0 or p != prompts[i - 1]]
                for name in distinct[len(answered):]:
                    if "Drift |" in name and not killed:
                        assert "Gather | Calico facts" in " ".join(answered)
                        kill_sshd(node3)
                        killed = True
                    proc.stdin.write(b"y\n")
                    proc.stdin.flush()
                    answered.append(name)
            output += proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = output.decode(errors="replace")
        assert killed, text[-3000:]
        assert proc.returncode == 0, text[-3000:]
        report = read_report(tmp_path)
        assert report["summary"]["unreachable"] == ["node3"]
        assert report["hosts"]["node3"]["status"] == "unreachable"
        unreach = [f for f in report["findings"] if f["id"] == "UNREACH"]
        assert [f["host"] for f in unreach] == ["node3"]
        assert "unreachable" in unreach[0]["evidence"]["reason"]
        for host in ("node1", "node2"):
            assert report["hosts"][host]["status"] in ("ok", "findings")
            assert report["hosts"][host]["routes"]["checked"] == 2
        # The rest of the fleet is audited as usual: nothing else at warning or above.
        assert triples(serious(report)) == [("UNREACH", "node3", None)]
    finally:
        lab.down()


# ---------------------------------------------------------------------------------------------
# report.html in a real headless Chromium


class _Dom(HTMLParser):
    """What a page links to and the text it shows (the report's layout is test_report_html.py's)."""

    def __init__(self):
        super().__init__()
        self.urls, self.text = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href", "action", "poster", "data"):
            if attrs.get(key):
                self.urls.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def check_html_in_chromium(report_dir, report, tmp_path):
    assert CHROMIUM, "chromium is not installed (Debian package chromium)"
    page = (report_dir / "report.html").resolve()
    source = page.read_text()
    # Self-contained: nothing that would make a browser fetch anything (its one inline script loads nothing).
    for needle in ("http://", "https://", "<script src", "<link", "<img", "<iframe", "url(", "@import"):
        assert needle not in source.lower(), needle
    assert source.lower().count("<script") <= 1
    profile = tmp_path / "chromium-profile"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            # Any name lookup fails: a page that needed the network would show it.
            "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1400,1000"]
    res = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    dom = _Dom()
    dom.feed(res.stdout)
    assert [u for u in dom.urls if not u.startswith("#")] == [], dom.urls  # links within the page only
    text = "".join(dom.text)
    for f in serious(report):
        assert f["summary"] in text, f["summary"]
    shot = tmp_path / "report.png"
    res = subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0 and shot.stat().st_size > 10_000, res.stderr[-2000:]
