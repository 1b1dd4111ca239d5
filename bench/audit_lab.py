"""Fleet audit speed on a 20-node BGP lab (tests/lab/labctl), as root.

Times `ansible-playbook netdoctor.calico.audit` with its defaults (a 20-node fleet is checked in
one round trip: the facts carry the routes, the controller compares them with the map) against
`ansible -m ansible.builtin.setup -a gather_subset=network` on the same lab in the same run, and
also the audit with `audit_route_check=node` (the large-fleet flow: calico_routes in check mode
on every node, a second round trip). Wall-clock of each command, SSH connections warmed up first
(one untimed `ansible.builtin.ping`), the three alternated ROUNDS times, medians compared.
Prints `audit-20-node: ...`, then ends with `audit-20: audit X s, setup Y s, ratio Z`.
Target: ratio <= 1.0 (the default audit costs no more than Ansible's own network fact
gathering); a missed target, a failed run or a healthy lab with findings at warning or above
(audit_fail_on=warning) exits 1. Downs the lab at the end.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABCTL = os.path.join(ROOT, "tests", "lab", "labctl")
BIN = os.path.join(ROOT, ".venv", "bin")
LAB = "baud"
NODES = 20
ROUNDS = 3
TARGET_RATIO = 1.0


def labctl(*args):
    res = subprocess.run([LABCTL, *args], capture_output=True, text=True, check=False, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"labctl {' '.join(args)} exited {res.returncode}: {res.stderr.strip()[-2000:]}")
    return res


def timed(cmd):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    start = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=600)
    seconds = time.monotonic() - start
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return seconds


def main():
    if os.geteuid() != 0:
        print("audit-20: skipped, the lab needs root")
        return 0
    labctl("down", "--name", LAB)
    try:
        labctl("up", "--name", LAB, "--nodes", str(NODES), "--mode", "bgp")
        inventory = labctl("inventory", "--name", LAB).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="audit-bench.") as out:
            audit = [os.path.join(BIN, "ansible-playbook"), "netdoctor.calico.audit", "-i", inventory,
                     "-e", f"audit_report_dir={out}", "-e", "audit_fail_on=warning"]
            setup = [os.path.join(BIN, "ansible"), "calico_nodes", "-i", inventory, "-m", "ansible.builtin.setup",
                     "-a", "gather_subset=network"]
            node_flow = [*audit, "-e", "audit_route_check=node"]
            timed([os.path.join(BIN, "ansible"), "calico_nodes", "-i", inventory, "-m", "ansible.builtin.ping"])
            audits, setups, nodes = [], [], []
            for _round in range(ROUNDS):
                audits.append(timed(audit))
                setups.append(timed(setup))
                nodes.append(timed(node_flow))
            with open(os.path.join(out, "report.json"), encoding="utf-8") as handle:
                summary = json.load(handle)["summary"]
    finally:
        labctl("down", "--name", LAB)
    a, s, n = statistics.median(audits), statistics.median(setups), statistics.median(nodes)
    ratio = a / s

    def runs(values):
        return " ".join(f"{x:.2f}" for x in values)

    print(f"audit-20 runs: audit {runs(audits)} s; setup {runs(setups)} s; audit_route_check=node {runs(nodes)} s;"
          f" {summary['audited']}/{summary['hosts']} nodes audited")
    print(f"audit-20-node: audit {n:.2f} s, setup {s:.2f} s, ratio {n / s:.2f}")
    print(f"audit-20: audit {a:.2f} s, setup {s:.2f} s, ratio {ratio:.2f}")
    return 0 if ratio <= TARGET_RATIO and summary["audited"] == NODES else 1


if __name__ == "__main__":
    sys.exit(main())
