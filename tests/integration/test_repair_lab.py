"""The repair (`ansible-playbook netdoctor.calico.repair`, roles/repair) against the namespace lab, over
real SSH.

- Bad input (an invalid autodetection method, a malformed CIDR, an interface no node has) fails before
  anything changes, with a message that names what is wrong.
- A native-BGP lab with several non-interacting faults, one per node: `--check` (also with every opt-in
  on) reports what it would change and leaves every node's `ip -d route`, `ip rule`, NetworkManager and
  sysctl files, sysctls and nftables ruleset byte-identical; by default the repair fixes the sysctl
  faults, refuses the foreign stale route (proto boot on eth0, not Calico's) and leaves the host
  firewall that cuts a BGP session alone, naming the drop with a TCP test of port 179; told to
  (repair_touch_foreign, repair_bgp_firewall) it replaces the route and lets TCP/179 from the fleet's
  Calico IPs through, the sessions come back, the audit after is clean and every pod pings every other;
  a third run changes nothing.
- An IPIP lab: the Calico-owned stale route, a missing route, the asymmetric source (its pods cannot
  reach anyone before, all of them after), NetworkManager without Calico's drop-in and with RKE2's
  overriding file - all repaired in one run, pings 100%, a second run changes nothing.
- A lab whose node autodetects the wrong NIC: the method the audit recommends is set on the calico-node
  DaemonSet through the lab's kubectl, the repair waits until every node re-detected, and the fleet pings.

One lab at a time (labs share four address slots with other developers' labs on this machine).
"""

import json
import os
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.lab

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_KUBECTL = os.path.join(REPO, "tests", "lab", "kubectl")
MANIFEST_FIXTURE = os.path.join(REPO, "tests", "unit", "fixtures", "manifests", "calico.yaml.txt")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
AT_LEAST_WARNING = ("critical", "warning")
SYSCTL_FILE = "/etc/sysctl.d/90-calico.conf"
# What the check-mode run must leave byte-identical on a node (the brief's list, plus the sysctls and the
# firewall; packet counters aside).
SNAPSHOT = r"""
echo '## ip -d route'; ip -d route
echo '## ip rule'; ip rule
echo '## NetworkManager conf.d'
for f in /etc/NetworkManager/conf.d/*; do [ -e "$f" ] || continue; echo "-- $f"; stat -c '%a' "$f"; cat "$f"; done
echo '## sysctl.d'; for f in /etc/sysctl.d/*; do [ -e "$f" ] || continue; echo "-- $f"; cat "$f"; done
echo '## sysctls'; sysctl -a 2>/dev/null | grep -E '^net\.ipv4\.(ip_forward|conf\.[^.]+\.(rp_filter|proxy_arp)) ' | sort
echo '## nftables'; nft list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
"""


class Run:
    """One ansible-playbook netdoctor.calico.repair run: exit code, output, PLAY RECAP, repair.json."""

    def __init__(self, res, out_dir):
        self.rc, self.out = res.returncode, res.stdout + res.stderr
        self.recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
                      for m in RECAP.findall(res.stdout)}
        assert self.recap, f"no PLAY RECAP:\n{self.out[-5000:]}"
        path = os.path.join(out_dir, "repair.json")
        self.report = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                self.report = json.load(fh)
        self.out_dir = out_dir

    def audit(self, phase):
        with open(os.path.join(self.out_dir, phase, "report.json"), encoding="utf-8") as fh:
            return json.load(fh)

    def serious_after(self):
        return sorted((f["id"], f["host"], f["peer"]) for f in self.audit("after")["findings"]
                      if f["severity"] in AT_LEAST_WARNING)

    def row(self, fid, host):
        rows = [r for r in self.report["findings"] if (r["id"], r["host"]) == (fid, host)
                and r["severity"] in AT_LEAST_WARNING]
        assert len(rows) == 1, (fid, host, self.report["findings"])
        return rows[0]

    def changed(self):
        return {h: r["changed"] for h, r in self.recap.items() if r["changed"]}

    def tail(self):
        return self.out[-6000:]


def repair(lab, out_dir, *args, extra=None, check=False):
    variables = json.dumps({"repair_report_dir": str(out_dir), **(extra or {})})
    res = lab.ansible_playbook("netdoctor.calico.repair", "-e", variables, *(["--check"] if check else []), *args,
                               check=False)
    return Run(res, str(out_dir))


def snapshot(lab):
    return {node["name"]: lab.sh(node["name"], SNAPSHOT) for node in lab.nodes()}


def assert_same(before, after):
    for node, text in before.items():
        assert after[node] == text, f"{node} changed:\nbefore:\n{text}\nafter:\n{after[node]}"


def lab_kubectl(*args):
    res = subprocess.run([LAB_KUBECTL, *args], capture_output=True, text=True, timeout=120, check=True)
    return res.stdout


def pairs_with(lab, node):
    """Ordered pod pairs with one end on `node`."""
    return lab.pairs_between([node], [n["name"] for n in lab.nodes() if n["name"] != node])


# ---------------------------------------------------------------------------------------------
# Native BGP: bad input, check mode, refused foreign route, BGP001 reported, idempotence, heal

BGP_FAULTS = [("stale-route", "node2"), ("no-ip-forward", "node3"), ("proxy-arp-off", "node4"),
              ("rp-filter-strict", "node5"), ("bgp-peer-down", "node6")]
OPT_IN = {"repair_touch_foreign": True, "repair_bgp_firewall": True}


@pytest.fixture(scope="module")
def bgp_lab(lab_factory, lab_report):
    lab = lab_factory("rpb", mode="bgp", nodes=6, pods_per_node=1, extra_nic=True)
    lab_report(f"repair bgp lab up: {lab.up_seconds:.2f} s")
    yield lab
    lab.down()


@pytest.mark.parametrize(("extra", "message"), [
    ({"repair_autodetection_method": "first-fund"},
     r"repair_autodetection_method='first-fund' is invalid - calico-node would terminate: node\d: "
     r"Invalid IP autodetection method: first-fund"),
    ({"repair_autodetection_method": "cidr=198.51.100.0/33"},
     r'is invalid - calico-node would terminate: node\d: Invalid CIDR "198\.51\.100\.0/33"'),
    ({"repair_pools": ["198.18.0.0/16", "198.18.0.0/33"]},
     r"repair_pools has entries that are not IPv4 CIDRs \(a\.b\.c\.d/0-32\): 198\.18\.0\.0/33"),
    ({"repair_autodetection_method": "interface=^eth9$"},
     r"repair_autodetection_method='interface=\^eth9\$' does not give 6 of 6 node\(s\) their intended address: "
     r"node1 picks no address"),
])
def test_bad_input_fails_before_anything_changes(bgp_lab, tmp_path, extra, message):
    bgp_lab.fault("no-ip-forward", node="node3")      # something the repair would change
    try:
        before = snapshot(bgp_lab)
        run = repair(bgp_lab, tmp_path, extra=extra)
        assert run.rc != 0, run.tail()
        assert re.search(message, run.out), run.tail()
        assert "Nothing was changed" in run.out or "nothing was changed" in run.out, run.tail()
        assert run.changed() == {}, run.recap
        assert run.report is None                     # it stopped before the repair
        assert_same(before, snapshot(bgp_lab))
    finally:
        bgp_lab.heal()


def test_check_mode_reports_and_changes_nothing(bgp_lab, tmp_path):
    for fault, node in BGP_FAULTS:
        bgp_lab.fault(fault, node=node)
    before = snapshot(bgp_lab)
    run = repair(bgp_lab, tmp_path / "default", check=True)
    assert run.rc == 0, run.tail()
    assert_same(before, snapshot(bgp_lab))
    assert not os.path.exists(tmp_path / "default" / "after")    # no audit after a run that changed nothing

    report = run.report
    assert report["check_mode"] is True and report["verdict"] == "check"
    # The changes it would make, where it would make them (PLAY RECAP and the report agree).
    assert set(run.changed()) == {"node3", "node4", "node5"}, run.recap
    assert any("net.ipv4.ip_forward=1" in c for c in report["changes"]["node3"])
    assert any("proxy_arp=1" in c for c in report["changes"]["node4"])
    assert any("rp_filter=2" in c for c in report["changes"]["node5"])
    for fid, host in (("SYS001", "node3"), ("SYS001", "node4"), ("SYS001", "node5")):
        assert run.row(fid, host)["after"] == "would be repaired"
    stale = run.row("RT001", "node2")
    assert stale["after"] == "would be refused" and "touch_foreign" in stale["why"], stale
    for host in ("node6", "node1"):
        assert run.row("BGP001", host)["action"] == "not_repaired"
        assert "repair_bgp_firewall is false" in run.row("BGP001", host)["why"]
    assert "check mode: nothing was changed" in run.out

    # Every opt-in on: more it would change, still nothing changed.
    opted = repair(bgp_lab, tmp_path / "opt-in", extra=OPT_IN, check=True)
    assert opted.rc == 0, opted.tail()
    assert_same(before, snapshot(bgp_lab))
    assert set(opted.changed()) == {"node2", "node3", "node4", "node5", "node6"}, opted.recap
    assert any("host firewall" in c and "inet filter input" in c for c in opted.report["changes"]["node6"]), \
        opted.report["changes"]
    assert opted.row("BGP001", "node6")["after"] == "would be repaired"


def test_bgp_faults_refused_by_default_repaired_when_told_to(bgp_lab, tmp_path):
    for fault, node in BGP_FAULTS:
        if not any(f["fault"] == fault and f["node"] == node for f in bgp_lab.show()["faults"]):
            bgp_lab.fault(fault, node=node)
    broken = bgp_lab.ping()
    for node in ("node2", "node3", "node4", "node6"):
        assert broken.failures & pairs_with(bgp_lab, node), node
    firewall = bgp_lab.sh("node6", "nft list table inet filter")

    # Default: the foreign route is refused and the host firewall is left alone, the drop named by a TCP test.
    first = repair(bgp_lab, tmp_path / "first")
    assert first.rc != 0, first.tail()
    assert first.serious_after() == [("BGP001", "node1", "node6"), ("BGP001", "node6", "node1"),
                                     ("RT001", "node2", "node1")], first.serious_after()
    for fid, host in (("SYS001", "node3"), ("SYS001", "node4"), ("SYS001", "node5")):
        assert first.row(fid, host)["after"] == "fixed"
    stale = first.row("RT001", "node2")
    assert stale["after"] == "remains" and "repair_touch_foreign=true" in stale["why"], stale
    assert any(c.startswith("REFUSED replace 198.18.") and "proto boot on eth0" in c
               for c in first.report["changes"]["node2"]), first.report["changes"]
    assert "repair_bgp_firewall" in first.row("BGP001", "node6")["why"]
    for remaining in first.report["remaining"]:
        if remaining["id"] == "BGP001":
            # The evidence: a bounded TCP connect to the peer's port 179 from the node timed out (dropped).
            assert remaining["probe"]["result"] == "timeout", remaining
            assert "repair_bgp_firewall=true" in remaining["remedy"], remaining["remedy"]
    assert "timed out after 3.0 s" in first.out and "dropped" in first.out
    assert bgp_lab.sh("node6", "nft list table inet filter") == firewall
    assert bgp_lab.sh("node3", f"cat {SYSCTL_FILE}").strip() == "net.ipv4.ip_forward=1"
    assert bgp_lab.sysctl("node4", f"net.ipv4.conf.{bgp_lab.node('node4')['pods'][0]['interface']}.proxy_arp") == "1"
    assert "proxy_arp" not in bgp_lab.sh("node4", "cat /etc/sysctl.d/*.conf 2>/dev/null || true")

    # Told to: the foreign route is replaced, TCP/179 from the fleet's Calico IPs goes through, and the fleet is clean.
    second = repair(bgp_lab, tmp_path / "second", extra=OPT_IN)
    assert second.rc == 0, second.tail()
    assert second.serious_after() == []
    assert second.report["verdict"] == "ok"
    for fid, host in (("RT001", "node2"), ("BGP001", "node6"), ("BGP001", "node1")):
        assert second.row(fid, host)["after"] == "fixed", second.row(fid, host)
    assert set(second.changed()) == {"node2", "node6"}, second.recap
    rules = bgp_lab.sh("node6", "nft list chain inet filter input")
    peers = sorted(n["calico_ip"] for n in bgp_lab.nodes() if n["name"] != "node6")
    accept = rules.index("tcp dport 179 accept")
    assert accept < rules.index("tcp dport 179 drop"), rules
    assert all(p in rules[:accept] for p in peers), rules
    assert "not persistent" in " ".join(second.report["changes"]["node6"])
    assert bgp_lab.ping().failed == 0

    # Idempotent: nothing left to change.
    third = repair(bgp_lab, tmp_path / "third", extra=OPT_IN)
    assert third.rc == 0, third.tail()
    assert third.changed() == {}, third.recap
    assert third.serious_after() == []


# ---------------------------------------------------------------------------------------------
# IPIP: Calico-owned stale route, missing route, asymmetric source, NetworkManager (both faults)

IPIP_FAULTS = [("stale-route", "node2"), ("src-asym", "node3"), ("missing-route", "node4"),
               ("nm-unmanaged-overridden", "node5"), ("nm-unmanaged-missing", "node1")]


def test_ipip_faults_repaired_in_one_run(lab_factory, lab_report, tmp_path):
    lab = lab_factory("rpi", mode="ipip", nodes=5, pods_per_node=1, extra_nic=True)
    try:
        for fault, node in IPIP_FAULTS:
            lab.fault(fault, node=node)
        rke2 = lab.sh("node5", "cat /etc/NetworkManager/conf.d/rke2-canal.conf")
        broken = lab.ping()
        # src-asym in IPIP: the peers drop node3's encapsulated packets, so its pods reach nobody.
        assert pairs_with(lab, "node3") <= broken.failures
        assert broken.failures & pairs_with(lab, "node2") and broken.failures & pairs_with(lab, "node4")

        start = time.monotonic()
        run = repair(lab, tmp_path / "first")
        lab_report(f"repair of {len(IPIP_FAULTS)} ipip faults: {time.monotonic() - start:.1f} s")
        assert run.rc == 0, run.tail()
        assert run.serious_after() == []
        assert run.report["verdict"] == "ok"
        for fid, host in (("RT001", "node2"), ("SRC001", "node3"), ("RT002", "node4"), ("NM001", "node5"),
                          ("NM001", "node1")):
            assert run.row(fid, host)["after"] == "fixed", run.row(fid, host)
        assert set(run.changed()) == {"node1", "node2", "node3", "node4", "node5"}, run.recap
        assert lab.ping().failed == 0

        # SRC001: the kernel now picks the Calico IP towards the peers.
        node3, node1 = lab.node("node3"), lab.node("node1")
        assert f"src {node3['intended_ip']}" in lab.sh("node3", f"ip route get {node1['intended_ip']}")
        # NM001: calico.conf where nothing overrides it; after rke2-canal.conf where it does, which is kept as is.
        assert "interface-name:tunl*" in lab.sh("node1", "cat /etc/NetworkManager/conf.d/calico.conf")
        assert "interface-name:tunl*" in lab.sh("node5", "cat /etc/NetworkManager/conf.d/zz-calico.conf")
        assert lab.sh("node5", "cat /etc/NetworkManager/conf.d/rke2-canal.conf") == rke2
        assert any("zz-calico.conf" in c and "rke2-canal.conf" in c for c in run.report["changes"]["node5"])

        again = repair(lab, tmp_path / "second")
        assert again.rc == 0, again.tail()
        assert again.changed() == {}, again.recap
    finally:
        lab.down()


def test_nm_override_fail_refuses_before_changing(lab_factory, tmp_path):
    """repair_nm_override=fail: the overridden node is left as it is and the message names the file."""
    lab = lab_factory("rpn", mode="vxlan", nodes=2, pods_per_node=1)
    try:
        lab.fault("nm-unmanaged-overridden", node="node2")
        before = snapshot(lab)
        run = repair(lab, tmp_path, extra={"repair_nm_override": "fail"})
        assert run.rc != 0
        assert re.search(r"node2: /etc/NetworkManager/conf.d/rke2-canal.conf undoes "
                         r"/etc/NetworkManager/conf.d/calico.conf", run.out), run.tail()
        assert_same(before, snapshot(lab))
    finally:
        lab.down()


# ---------------------------------------------------------------------------------------------
# AD001: the fleet's method, set through the lab's kubectl (calico-node DaemonSet), then re-detection


def test_autodetect_wrong_nic_repaired_through_the_daemonset(lab_factory, lab_report, tmp_path):
    lab = lab_factory("rpa", mode="vxlan", nodes=3, pods_per_node=1, extra_nic=True)
    try:
        kubeconfig = lab.labctl("kubeconfig", "--name", lab.name).stdout.strip()
        lab.fault("autodetect-wrong-nic", node="node3")
        lab.fault("proxy-arp-off", node="node2")       # a per-node fault in the same run
        assert pairs_with(lab, "node3") <= lab.ping().failures

        kube = {"repair_autodetection_target": "daemonset", "repair_kubectl": LAB_KUBECTL,
                "repair_kubeconfig": kubeconfig}
        daemonset = ["get", "daemonset", "calico-node", "-n", "kube-system", "-o", "json", "--kubeconfig", kubeconfig]

        # Check mode: the method is sent as a server-side dry run; the DaemonSet and the nodes stay as they are.
        ds_before, before = lab_kubectl(*daemonset), snapshot(lab)
        check = repair(lab, tmp_path / "check", extra=kube, check=True)
        assert check.rc == 0, check.tail()
        assert lab_kubectl(*daemonset) == ds_before
        assert_same(before, snapshot(lab))
        method = check.report["autodetection"]["method"]
        assert any(f"-> {method} on the daemonset" in c and "--dry-run=server" in c
                   for c in check.report["changes"]["(fleet)"]), check.report["changes"]

        # target=manifest, only this step (--tags): only the file changes (with a backup); calico-node reads it
        # once it is applied, so the node keeps its wrong address and the verdict says so.
        manifest = tmp_path / "calico.yaml"
        with open(MANIFEST_FIXTURE, "rb") as fixture:
            manifest.write_bytes(fixture.read())
        to_manifest = {"repair_autodetection_target": "manifest", "repair_autodetection_manifest": str(manifest)}
        written = repair(lab, tmp_path / "manifest", "--tags", "repair_autodetection", extra=to_manifest)
        assert written.rc != 0, written.tail()
        assert written.row("SYS001", "node2")["why"] == "not selected by --tags repair_autodetection"
        assert f'value: "{method}"' in manifest.read_text() or f"value: {method}" in manifest.read_text()
        assert list(tmp_path.glob("calico.yaml.*~")), "no backup of the manifest"
        assert any("only once the manifest is applied" in c for c in written.report["changes"]["(fleet)"])
        assert ("AD001", "node3", None) in written.serious_after()
        assert lab_kubectl(*daemonset) == ds_before
        assert_same(before, snapshot(lab))

        start = time.monotonic()
        run = repair(lab, tmp_path, extra=kube)
        lab_report(f"repair of autodetect-wrong-nic: {time.monotonic() - start:.1f} s")
        assert run.rc == 0, run.tail()
        assert run.serious_after() == []
        ad = run.report["autodetection"]
        assert ad["needed"] and ad["source"] == "recommended by the audit" and ad["hosts"] == ["node3"], ad
        assert ad["method"] == method
        assert run.row("AD001", "node3")["after"] == "fixed"
        containers = json.loads(lab_kubectl(*daemonset))["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for c in containers if c["name"] == "calico-node" for e in c["env"]}
        assert env["IP_AUTODETECTION_METHOD"] == method
        assert any("each registered with its intended IP" in c for c in run.report["changes"]["(fleet)"])
        assert run.row("SYS001", "node2")["after"] == "fixed"
        assert os.path.exists(tmp_path / "after-autodetection" / "report.json")
        assert lab.node("node3")["calico_ip"] == lab.node("node3")["intended_ip"]
        assert lab.ping().failed == 0

        again = repair(lab, tmp_path / "again", extra={"repair_kubectl": LAB_KUBECTL, "repair_kubeconfig": kubeconfig})
        assert again.rc == 0, again.tail()
        assert again.changed() == {}, again.recap
    finally:
        lab.down()
