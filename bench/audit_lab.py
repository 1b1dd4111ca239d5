"""Fleet audit speed on VXLAN labs of 50 and 20 nodes (tests/lab/labctl), as root: the curve, not a point.

On each lab, in one run and alternated ROUNDS times (SSH connections warmed up first, medians
compared): `ansible -m ansible.builtin.ping` (the transport's own floor), `ansible -m
ansible.builtin.setup -a gather_subset=network`, and `ansible-playbook netdoctor.calico.audit`
with its defaults (route digests: a healthy node is audited in one round trip). Also the
controller's peak memory per node during the audit (ru_maxrss of the ansible-playbook children).
Prints one line per size, `audit-N: ping X s, setup Y s, audit Z s, ratio-ping R, ...`, and ends
with the 20-node line. Target: the audit <= 1.2x ping at every size, no second round trip on a
healthy lab (every node's routes judged by their digest) and nothing at warning or above; a miss
exits 1. The lab's addressing (one /26 underlay per lab) caps a lab at 50 nodes: the 100-node
point is not measured here (docs/scaling.md extrapolates from these figures). Downs each lab.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABCTL = os.path.join(ROOT, "tests", "lab", "labctl")
BIN = os.path.join(ROOT, ".venv", "bin")
LAB = "baud"
SIZES = (50, 20)  # the 20-node line comes last
ROUNDS = 3
TARGET_RATIO_PING = 1.2


def labctl(*args):
    res = subprocess.run([LABCTL, *args], capture_output=True, text=True, check=False, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"labctl {' '.join(args)} exited {res.returncode}: {res.stderr.strip()[-2000:]}")
    return res


def timed(cmd):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    start = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=900)
    seconds = time.monotonic() - start
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return seconds


def measure(nodes):
    labctl("down", "--name", LAB)
    try:
        labctl("up", "--name", LAB, "--nodes", str(nodes), "--mode", "vxlan", "--pods-per-node", "1")
        inventory = labctl("inventory", "--name", LAB).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="audit-bench.") as out:
            ping = [os.path.join(BIN, "ansible"), "calico_nodes", "-i", inventory, "-m", "ansible.builtin.ping"]
            setup = [os.path.join(BIN, "ansible"), "calico_nodes", "-i", inventory, "-m", "ansible.builtin.setup",
                     "-a", "gather_subset=network"]
            audit = [os.path.join(BIN, "ansible-playbook"), "netdoctor.calico.audit", "-i", inventory,
                     "-e", f"audit_report_dir={out}", "-e", "audit_fail_on=warning"]
            timed(ping)
            pings, setups, audits = [], [], []
            for _round in range(ROUNDS):
                pings.append(timed(ping))
                setups.append(timed(setup))
                audits.append(timed(audit))
            with open(os.path.join(out, "report.json"), encoding="utf-8") as handle:
                report = json.load(handle)
    finally:
        labctl("down", "--name", LAB)
    return pings, setups, audits, report


def main():
    if os.geteuid() != 0:
        print("audit-20: skipped, the lab needs root")
        return 0
    ok, lines = True, []
    for nodes in SIZES:
        pings, setups, audits, report = measure(nodes)
        p, s, a = (statistics.median(x) for x in (pings, setups, audits))
        # ru_maxrss of the largest child (ansible-playbook and its forks) so far, in MB.
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        by = sorted({(line.get("routes") or {}).get("by") or "none" for line in report["hosts"].values()})
        serious = [f for f in report["findings"] if f["severity"] in ("critical", "warning")]
        print(f"audit-{nodes} runs: ping {' '.join(f'{x:.2f}' for x in pings)} s; setup "
              f"{' '.join(f'{x:.2f}' for x in setups)} s; audit {' '.join(f'{x:.2f}' for x in audits)} s; "
              f"routes judged by {by}; {report['summary']['audited']}/{report['summary']['hosts']} audited")
        lines.append(f"audit-{nodes}: ping {p:.2f} s, setup {s:.2f} s, audit {a:.2f} s, ratio-ping {a / p:.2f}, "
                     f"ratio-setup {a / s:.2f}, controller peak {peak:.0f} MB ({peak / nodes:.1f} MB per node)")
        ok = ok and a / p <= TARGET_RATIO_PING and by == ["digest"] and not serious
        ok = ok and report["summary"]["audited"] == nodes
    for line in lines:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
