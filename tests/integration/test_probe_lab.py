"""Path faults broken by hand (issue 12) against the namespace lab, over real SSH: each fault makes
`labctl ping` fail; the audit names the fault's finding on the right node and its probe matrix
(report.json `probes`) fails where labctl ping fails; the repair either fixes it (WL001, VX001: pings
100%, exit 0) or refuses it (PBR001, BIRD001) and then never reports ok: it exits non-zero, its
repair.json verdict is not "ok" and its message names the pairs whose probes still fail.

Small labs (3 nodes, 1 pod per node), one at a time.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = str(Path(__file__).resolve().parents[2])
VENV_BIN = os.path.join(REPO, ".venv", "bin")
AT_LEAST_WARNING = ("critical", "warning")


def playbook(lab, name, out_dir, **extra):
    variables = json.dumps({f"{name.rsplit('.', 1)[1]}_report_dir": str(out_dir), **extra})
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), name, "-i", lab.inventory(), "-e", variables]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False)


def audit(lab, out_dir):
    res = playbook(lab, "netdoctor.calico.audit", out_dir, audit_fail_on="never")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return json.loads((Path(out_dir) / "report.json").read_text())


def node_of(lab):
    """pod name -> node name."""
    return {p["name"]: n["name"] for n in lab.nodes() for p in n["pods"]}


def failing_probe_pairs(report):
    return {(src, dst) for src, row in (report.get("probes") or {}).items() for dst, cell in row.items()
            if not (cell.get("ok") and cell.get("df_ok") is not False)}


def overlay_probe(cell):
    """A probe sent from a pod or the tunnel address crosses the pod path; one sent from the node
    itself (native BGP without a pod the facts can enter: the lab's pods run no process) only the
    underlay (plugins/module_utils/_probe.py)."""
    return any(not v.startswith("node ") for v in cell.get("via") or ())


def check_probes_match_ping(lab, report, ping):
    """Every failing probe pair is a node pair labctl ping fails (in one direction or the other: a
    probe crosses both), and two nodes whose overlay probes pass both ways have no failing pod pair
    between them (the matrix judges a pair from both ends: a node whose own VXLAN state lost the
    peer probes the peer's node IP, which its broken entry does not carry). Returns the failing
    probe pairs."""
    pods = node_of(lab)
    probes = report.get("probes") or {}
    assert probes, "the audit ran no probes"
    failing = failing_probe_pairs(report)
    ping_nodes = {(pods[a], pods[b]) for a, b in ping.failures}
    for src, dst in failing:
        assert (src, dst) in ping_nodes or (dst, src) in ping_nodes, (src, dst, sorted(ping_nodes))
    for src, row in probes.items():
        for dst, cell in row.items():
            back = (probes.get(dst) or {}).get(src)
            if back is None or not (overlay_probe(cell) and overlay_probe(back)):
                continue
            if (src, dst) not in failing and (dst, src) not in failing:
                assert (src, dst) not in ping_nodes, (src, dst, cell, back, sorted(ping_nodes))
    return failing


def findings(report, fid):
    return [f for f in report["findings"] if f["id"] == fid and f["severity"] in AT_LEAST_WARNING]


def repair(lab, out_dir):
    res = playbook(lab, "netdoctor.calico.repair", out_dir)
    path = Path(out_dir) / "repair.json"
    return res, (json.loads(path.read_text()) if path.exists() else None)


def broken(lab, fault, node):
    lab.fault(fault, node=node)
    ping = lab.ping()
    assert ping.failed, f"{fault} on {node}: labctl ping still 100%"
    return ping


def check_refused(lab, tmp_path, fault, node, fid, *, overlay=True):
    """The most important property: while labctl ping fails, the repair never says ok. `overlay`:
    the probes cross the pod path (ipip, vxlan), so they must fail too and the repair name them."""
    ping = broken(lab, fault, node)
    report = audit(lab, tmp_path / "audit")
    assert any(f["host"] == node for f in findings(report, fid)), json.dumps(report["findings"], indent=1)[:4000]
    failing = check_probes_match_ping(lab, report, ping)
    assert failing or not overlay, json.dumps(report.get("probes"), indent=1)[:3000]
    res, doc = repair(lab, tmp_path / "repair")
    out = res.stdout + res.stderr
    after = lab.ping()
    assert after.failed, "the refused fault healed itself"
    assert res.returncode != 0, out[-4000:]
    assert doc is not None and doc["verdict"] != "ok", ((doc or {}).get("verdict"), out[-6000:])
    after_report = json.loads((tmp_path / "repair" / "after" / "report.json").read_text())
    pairs = check_probes_match_ping(lab, after_report, after)
    assert pairs or not overlay
    for src, dst in pairs:
        assert f"{src} -> {dst}" in out, (src, dst, out[-4000:])


def check_repaired(lab, tmp_path, fault, node, fid):
    ping = broken(lab, fault, node)
    report = audit(lab, tmp_path / "audit")
    assert any(f["host"] == node for f in findings(report, fid)), json.dumps(report["findings"], indent=1)[:4000]
    assert check_probes_match_ping(lab, report, ping) or lab.mode == "bgp"
    res, doc = repair(lab, tmp_path / "repair")
    after = lab.ping()
    assert after.failed == 0, after.output
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert doc is not None and doc["verdict"] == "ok", doc and doc["verdict"]


def test_policy_rule_divert_is_refused_and_never_ok(lab_factory, tmp_path):
    # vxlan: the probes leave from the tunnel address, inside the diverted pod path.
    lab = lab_factory("tpbr", mode="vxlan", nodes=3, pods_per_node=1)
    try:
        check_refused(lab, tmp_path, "policy-rule-divert", "node3", "PBR001")
        lab.heal()
        assert lab.ping().failed == 0
    finally:
        lab.down()


def test_bird_dead_is_refused_and_never_ok(lab_factory, tmp_path):
    lab = lab_factory("tbird", mode="bgp", nodes=3, pods_per_node=1)
    try:
        # Native BGP: the probes leave from the node (underlay), which a dead BIRD does not cut.
        check_refused(lab, tmp_path, "bird-dead", "node3", "BIRD001", overlay=False)
        lab.heal()
        assert lab.ping().failed == 0
    finally:
        lab.down()


def test_workload_route_deleted_is_repaired(lab_factory, tmp_path):
    lab = lab_factory("twl", mode="bgp", nodes=3, pods_per_node=1)
    try:
        # Faults of other modes do not apply here.
        for fault in ("vxlan-fdb-deleted", "vxlan-neigh-deleted"):
            assert lab.fault(fault, node="node3", check=False).returncode == 2
        check_repaired(lab, tmp_path, "workload-route-deleted", "node3", "WL001")
        lab.heal()
    finally:
        lab.down()


@pytest.mark.parametrize("fault", ["vxlan-fdb-deleted", "vxlan-neigh-deleted"])
def test_vxlan_l2_entry_deleted_is_repaired(lab_factory, tmp_path, fault):
    lab = lab_factory("tvx", mode="vxlan", nodes=3, pods_per_node=1)
    try:
        assert lab.fault("bird-dead", node="node3", check=False).returncode == 2
        check_repaired(lab, tmp_path, fault, "node3", "VX001")
        lab.heal()
    finally:
        lab.down()
