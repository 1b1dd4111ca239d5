"""Issue 15's host-configuration faults against the namespace lab, through the real audit
(`ansible-playbook netdoctor.calico.audit`, real SSH): each fault gives its finding on its node
(cloned identities on both clones) and nothing else at warning or above beyond what the healthy
lab already shows; no token or machine id reaches a report or Ansible's output; the fix module's
check mode changes nothing, its run fixes NET001 and the audit after agrees; IPT001's exact remedy
run on the node clears it; heal returns the lab to its healthy audit."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = str(Path(__file__).resolve().parents[2])
VENV_BIN = os.path.join(REPO, ".venv", "bin")
pytestmark = pytest.mark.lab
SERIOUS = ("critical", "warning")

# fault -> (node, [(id, severity-or-None, host, peer)]) ; node1 is the cloned machine's original.
PLAN = {
    "cloned-identity": "node2",
    "networkd-foreign": "node3",
    "nm-cloud-setup": "node3",
    "link-remac": "node3",
    "iptables-legacy-leftovers": "node4",
    "cni-foreign-first": "node5",
    "cni-token-expired": "node6",
    "cni-bin-missing": "node7",
    "registered-32": "node8",
    "pool-overlap-bridge": "node9",
}
EXPECTED_SERIOUS = sorted([
    ("DUP002", "node1", "node2"), ("DUP002", "node1", "node2"),     # machine id and hostname, both clones
    ("DUP002", "node2", "node1"), ("DUP002", "node2", "node1"),
    ("NET001", "node3", None), ("NET001", "node3", None), ("NET001", "node3", None),
    ("IPT001", "node4", None),
    ("CNI001", "node5", None), ("CNI001", "node6", None), ("CNI001", "node7", None),
    ("POOL001", "node9", None),
], key=str)


def run_audit(lab, out_dir):
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "netdoctor.calico.audit", "-i", lab.inventory(),
           "-e", f"audit_report_dir={out_dir}", "-e", "audit_fail_on=never"]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    report = json.loads((Path(out_dir) / "report.json").read_text())
    return report, res.stdout + res.stderr


def serious(report):
    return sorted(((f["id"], f["host"], f["peer"]) for f in report["findings"] if f["severity"] in SERIOUS), key=str)


def of(report, fid, host):
    return [f for f in report["findings"] if f["id"] == fid and f["host"] == host]


def module(lab, node, *args, check_mode=False):
    extra = ["--check", "--diff"] if check_mode else []
    res = lab.ansible("-m", "netdoctor.calico.calico_host_managers", "-a", " ".join(args), *extra, pattern=node)
    return json.loads(res.stdout.split("=>", 1)[1].split("\n[WARNING]", 1)[0]) if "=>" in res.stdout else res.stdout


def node_state(lab, node):
    return lab.sh(node, "ip rule; ls -a /etc/systemd/network /etc/systemd/networkd.conf.d "
                        "/etc/systemd/system/timers.target.wants 2>&1 | sort")


def test_host_faults_are_named_on_their_nodes_and_repaired(lab_factory, tmp_path):
    lab = lab_factory("hcf", mode="bgp", nodes=10, pods_per_node=1)
    healthy, _log = run_audit(lab, tmp_path / "healthy")
    baseline = serious(healthy)
    # Nothing of this on a healthy lab, at any severity.
    mine = ("DUP002", "NET001", "IPT001", "CNI001", "REG001", "POOL001", "BGP002")
    assert [f for f in healthy["findings"] if f["id"] in mine] == []

    for fault, node in PLAN.items():
        lab.fault(fault, node=node)
    report, log = run_audit(lab, tmp_path / "faults")
    assert serious(report) == sorted(baseline + EXPECTED_SERIOUS, key=str), json.dumps(
        [(f["id"], f["host"], f["peer"], f["severity"], f["summary"][:160]) for f in report["findings"]
         if f["severity"] in SERIOUS], indent=1)

    # The details each fault must show.
    fields = sorted(f["evidence"]["field"] for f in of(report, "DUP002", "node2"))
    assert fields == ["hostname", "machine_id"]
    net = {f["summary"].split(" ")[0]: f for f in of(report, "NET001", "node3")}
    assert set(net) == {"systemd-networkd", "udev's", "NetworkManager's"}
    assert net["NetworkManager's"]["severity"] == "warning"
    assert any("30400: from" in r for r in net["NetworkManager's"]["evidence"]["rules"])
    (ipt,) = of(report, "IPT001", "node4")
    assert ipt["evidence"]["calico_in"] == ["nftables", "iptables-legacy"]
    assert ipt["evidence"]["felix_dataplane"] == "nftables"
    (foreign,) = of(report, "CNI001", "node5")
    assert foreign["severity"] == "critical" and "05-cilium.conflist" in foreign["summary"]
    (token,) = of(report, "CNI001", "node6")
    assert token["severity"] == "critical" and token["evidence"]["token"] == "<redacted>"
    (bins,) = of(report, "CNI001", "node7")
    assert bins["evidence"]["missing"] == ["calico"]
    (reg,) = of(report, "REG001", "node8")
    assert reg["severity"] == "info" and reg["evidence"]["registered"].endswith("/32")
    (pool,) = of(report, "POOL001", "node9")
    assert pool["evidence"]["overlaps"][0]["interface"] == "docker0"

    # Secrets: the token (any of its parts) and the raw machine ids appear nowhere.
    kubeconfig = lab.sh("node6", "cat /etc/cni/net.d/calico-kubeconfig")
    secret = re.search(r"token: (\S+)", kubeconfig).group(1)
    machine_ids = {lab.sh(n, "cat /etc/machine-id").strip() for n in ("node1", "node2", "node3")}
    outputs = [log] + [p.read_text(errors="replace") for p in (tmp_path / "faults").iterdir() if p.is_file()]
    for text in outputs:
        for part in secret.split("."):
            assert part not in text
        for mid in machine_ids:
            assert mid not in text

    # The fix module: check mode changes nothing, the run fixes NET001, a second run changes nothing.
    before = node_state(lab, "node3")
    args = ("networkd_foreign=true", "link_mac_policy=true", "nm_cloud_setup=true")
    planned = module(lab, "node3", *args, check_mode=True)
    assert planned["changed"] is True and "ip rule del priority 30400" in " ".join(planned["changes"])
    assert node_state(lab, "node3") == before
    assert module(lab, "node3", *args)["changed"] is True
    assert module(lab, "node3", *args)["changed"] is False
    # IPT001's exact remedy, run as the finding gives it.
    command = re.search(r"`(iptables-legacy-save \|[^`]+)`", ipt["remedy"]).group(1)
    lab.sh("node4", command)
    after, _log = run_audit(lab, tmp_path / "after")
    assert of(after, "NET001", "node3") == [] and of(after, "IPT001", "node4") == []
    assert serious(after) == sorted(
        [t for t in serious(report) if t[0] not in ("NET001", "IPT001")], key=str)

    lab.heal()
    healed, _log = run_audit(lab, tmp_path / "healed")
    assert [f for f in healed["findings"] if f["id"] in mine] == []
    assert serious(healed) == baseline
