"""The data plane classes (issue 14) against the namespace lab, over real SSH: each lab fault gives its
finding on its node (and peer) and nothing else at warning or above, in the fleet audit
(`ansible-playbook netdoctor.calico.audit`); the fixes that exist (calico_firewall for FW001,
calico_vxlan_offload for OFF001) change nothing in check mode, then fix it for real, proven with
pings and the audit after; the report-only ones say why. The lab's faults: vxlan-firewall,
vxlan-offload, conntrack-full, felix-unready, mtu-file-wrong (tests/lab/README.md).

calico_firewall's refusal of firewalld's table runs in a throwaway network namespace (no firewalld
in the lab): a firewalld-shaped ruleset, the module fails naming firewall-cmd and changes nothing.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.netdoctor.calico.tests.integration.module_run import run_module

REPO = str(Path(__file__).resolve().parents[2])
VENV_BIN = os.path.join(REPO, ".venv", "bin")
pytestmark = pytest.mark.lab
SERIOUS = ("critical", "warning")

# fault -> (finding id, severity, the peer: node1 for a fault on a pair)
VXLAN_PLAN = {"vxlan-firewall": ("FW001", "critical", "node1"), "vxlan-offload": ("OFF001", "warning", None),
              "conntrack-full": ("CT001", "warning", None), "felix-unready": ("FLX001", "warning", None),
              "mtu-file-wrong": ("MTU002", "warning", None)}
BGP_PLAN = {f: VXLAN_PLAN[f] for f in ("conntrack-full", "felix-unready", "mtu-file-wrong")}


def run_audit(lab, out_dir, *extra):
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "netdoctor.calico.audit", "-i", lab.inventory(),
           "-e", f"audit_report_dir={out_dir}", "-e", "audit_fail_on=never", *extra]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return json.loads((Path(out_dir) / "report.json").read_text())


def serious(report):
    return sorted((f["id"], f["host"], f["peer"], f["severity"]) for f in report["findings"]
                  if f["severity"] in SERIOUS)


def one(report, fid, host):
    hits = [f for f in report["findings"] if (f["id"], f["host"]) == (fid, host)]
    assert len(hits) == 1, (fid, host, serious(report))
    return hits[0]


def placed(plan):
    """fault -> node: each fault on its own node, node1 (the peer) left alone."""
    return {fault: f"node{i}" for i, fault in enumerate(plan, start=2)}


def node_module(lab, node, module, args=None, *, check=False, diff=False):
    """One module on one lab node over SSH; the task's result."""
    cmd = ["-m", f"netdoctor.calico.{module}", *(["-a", json.dumps(args)] if args else []),
           *(["--check"] if check else []), *(["--diff"] if diff else [])]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    res = subprocess.run([os.path.join(VENV_BIN, "ansible"), node, "-i", lab.inventory(), *cmd], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=300, check=False)
    return json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"][node]


@pytest.fixture
def vxlan_lab(lab_factory):
    lab = lab_factory("dpx", mode="vxlan", nodes=len(VXLAN_PLAN) + 1)
    yield lab
    lab.down()


def test_vxlan_faults_findings_and_repairs(vxlan_lab, tmp_path):
    lab, at = vxlan_lab, placed(VXLAN_PLAN)
    nodes = {n["name"]: n for n in lab.nodes()}
    healthy = run_audit(lab, tmp_path / "healthy")
    assert serious(healthy) == [], serious(healthy)
    for fault, node in at.items():
        lab.fault(fault, node=node)

    report = run_audit(lab, tmp_path / "faults")
    assert serious(report) == sorted((fid, at[fault], peer, severity)
                                     for fault, (fid, severity, peer) in VXLAN_PLAN.items())
    # what each finding quotes, from the node as the kernel shows it
    fw = one(report, "FW001", at["vxlan-firewall"])
    assert fw["evidence"]["drops"][0]["rule"] == f"ip saddr {nodes['node1']['calico_ip']} udp dport 4789 drop"
    assert fw["evidence"]["peer_address"] == nodes["node1"]["calico_ip"]
    off = one(report, "OFF001", at["vxlan-offload"])
    assert "tx-checksum-ip-generic: on" in off["evidence"]["ethtool_k"]
    printed = lab.exec(at["vxlan-offload"], "ethtool", "-k", "vxlan.calico").stdout if shutil.which("ethtool") else ""
    if printed:   # ethtool is not a lab tool; when it is there, it says the same
        assert "tx-checksum-ip-generic: on" in printed
    ct = one(report, "CT001", at["conntrack-full"])["evidence"]
    assert ct["nf_conntrack_max"] == 400 and 0.9 <= ct["ratio"] < 1
    flx = one(report, "FLX001", at["felix-unready"])
    assert flx["evidence"]["readiness"]["status"] == 503 and "InternalDataplaneMainLoop" in flx["summary"]
    mtu = one(report, "MTU002", at["mtu-file-wrong"])
    assert (mtu["evidence"]["mtu_file"], mtu["evidence"]["tunnels"]) == (8950, {"vxlan.calico": 1450})
    # report-only classes say what to change
    assert "nf_conntrack_max" in one(report, "CT001", at["conntrack-full"])["remedy"]
    assert "mtuIfacePattern" in mtu["remedy"] and "ChecksumOffloadBroken=true" in off["remedy"]

    # the VXLAN drop is real: the faulted node's pods and node1's do not reach each other
    blocked = lab.pairs_between([at["vxlan-firewall"]], ["node1"])
    assert blocked <= lab.ping().failures

    # FW001: check mode changes nothing, then the rule goes in and the pods reach each other
    node = at["vxlan-firewall"]
    peers = [n["calico_ip"] for name, n in nodes.items() if name != node]
    args = {"flows": ["vxlan"], "peers": peers, "local_addresses": [nodes[node]["calico_ip"]]}
    ruleset = lab.exec(node, "nft", "list", "ruleset").stdout
    check = node_module(lab, node, "calico_firewall", args, check=True, diff=True)
    assert check["changed"] and not check["verified"] and check["actions"][0].startswith(
        "insert rule inet filter input ip saddr {")
    assert lab.exec(node, "nft", "list", "ruleset").stdout == ruleset
    done = node_module(lab, node, "calico_firewall", args)
    assert done["changed"] and done["verified"], done.get("msg")
    assert not node_module(lab, node, "calico_firewall", args)["changed"]

    # OFF001: check mode changes nothing; then the offload goes off
    node = at["vxlan-offload"]
    check = node_module(lab, node, "calico_vxlan_offload", check=True)
    assert check["changed"] and check["wanted"] == {"tx-checksum-ip-generic": False}
    assert node_module(lab, node, "calico_vxlan_offload", check=True)["changed"]      # still on
    done = node_module(lab, node, "calico_vxlan_offload")
    assert done["changed"] and "tx-checksum-ip-generic: off" in done["after"] and done["after"] == check["after"]
    assert not node_module(lab, node, "calico_vxlan_offload")["changed"]

    assert lab.ping().failures == set()
    after = run_audit(lab, tmp_path / "after")
    left = {(fid, host) for fid, host, _peer, _sev in serious(after)}
    assert left == {("CT001", at["conntrack-full"]), ("FLX001", at["felix-unready"]),
                    ("MTU002", at["mtu-file-wrong"])}, serious(after)

    lab.heal()
    assert serious(run_audit(lab, tmp_path / "healed")) == []


@pytest.fixture
def bgp_lab(lab_factory):
    lab = lab_factory("dpb", mode="bgp", nodes=len(BGP_PLAN) + 1)
    yield lab
    lab.down()


def test_mode_independent_faults_in_bgp(bgp_lab, tmp_path):
    lab, at = bgp_lab, placed(BGP_PLAN)
    for fault, node in at.items():
        lab.fault(fault, node=node)
    report = run_audit(lab, tmp_path / "faults")
    assert serious(report) == sorted((fid, at[fault], peer, severity)
                                     for fault, (fid, severity, peer) in BGP_PLAN.items())
    mtu = one(report, "MTU002", at["mtu-file-wrong"])["evidence"]
    assert (mtu["mtu_file"], mtu["tunnels"], mtu["underlay"], mtu["underlay_mtu"]) == (8950, {}, "eth0", 1500)
    assert lab.fault("vxlan-firewall", node="node2", check=False).returncode == 2   # no VXLAN in bgp
    lab.heal()
    assert serious(run_audit(lab, tmp_path / "healed")) == []


# --- firewalld's table is refused, in a throwaway namespace ------------------------------------------

FIREWALLD = """table inet firewalld {
    chain filter_INPUT {
        type filter hook input priority filter + 10; policy accept;
        ct state { established, related } accept
        iifname "lo" accept
        jump filter_IN_public
        reject with icmpx admin-prohibited
    }
    chain filter_IN_public {
        jump filter_IN_public_allow
        reject with icmpx admin-prohibited
    }
    chain filter_IN_public_allow {
        tcp dport 22 accept
    }
}
"""


@pytest.fixture
def firewalld_ns(request):
    ns = f"nddpfw{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    request.addfinalizer(lambda: subprocess.run(["ip", "netns", "del", ns], check=False))
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=FIREWALLD, text=True, check=True)
    return ns


def test_firewalld_chains_are_refused_with_firewall_cmd(firewalld_ns):
    before = subprocess.run(["ip", "netns", "exec", firewalld_ns, "nft", "list", "ruleset"], capture_output=True,
                            text=True, check=True).stdout
    result = run_module("calico_firewall", {"flows": ["vxlan", "ipip"], "peers": ["192.0.2.12"]},
                        prefix=("ip", "netns", "exec", firewalld_ns))
    assert result["failed"] and "firewall-cmd" in result["msg"] and result["actions"] == []
    assert result["firewalld_commands"] == [
        "firewall-cmd --permanent --zone=public --add-rich-rule='rule family=\"ipv4\" source address=\"192.0.2.12\" "
        "port port=\"4789\" protocol=\"udp\" accept'",
        "firewall-cmd --permanent --zone=public --add-rich-rule='rule family=\"ipv4\" source address=\"192.0.2.12\" "
        "protocol value=\"4\" accept'", "firewall-cmd --reload"]
    assert subprocess.run(["ip", "netns", "exec", firewalld_ns, "nft", "list", "ruleset"], capture_output=True,
                          text=True, check=True).stdout == before
