"""Bad input fails before anything changes, with a message that names it - every playbook, every
role entry point (issue 11, items 3 and 6).

No lab: each run is ansible-playbook against an inventory of fake nodes whose Python is a guard
script - it records that something ran on the node and fails. A run that stops before the first
change never runs anything on a node, so the guard file must not exist afterwards, and no report
directory may exist either (the audit never started). A control run with good input proves the
guard works. All runs go at once; the file takes a few seconds.
"""

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
GUARD = """#!/bin/sh
# Stands in for the node's Python: anything Ansible runs on a node lands here.
echo "$0 $*" >> "{guard}"
exit 1
"""


@dataclass
class Case:
    playbook: str
    extra: dict
    message: str                 # a regex the output must match
    host_vars: dict = None       # host -> {var: value}
    args: tuple = ()


SRC_DST = {"src": "198.18.1.2", "dst": "198.18.2.2"}
CASES = {
    # issue 11.3: a group that matches no host must not pass a CI gate
    "audit-no-such-group": Case("audit", {"audit_hosts": "nosuchgroup", "audit_fail_on": "info"},
                                r"audit_hosts=nosuchgroup matches no host of the inventory, so nothing would be "
                                r"looked at"),
    "audit-limit-excludes-all": Case("audit", {}, r"audit_hosts=calico_nodes matches 2 host\(s\), but none of them is "
                                     r"within --limit", args=("--limit", "bystander")),
    "audit-fail-on": Case("audit", {"audit_fail_on": "bogus"},
                          r"value of audit_fail_on must be one of: critical, warning, info, never, got: bogus"),
    "audit-intended-ip": Case("audit", {}, r"node2: calico_intended_ip is 'not-an-ip', not an IP address",
                              host_vars={"node2": {"calico_intended_ip": "not-an-ip"}}),
    "repair-no-such-group": Case("repair", {"repair_hosts": "nosuchgroup"},
                                 r"repair_hosts=nosuchgroup matches no host of the inventory"),
    # issue 11.6: every entry point validates every input before the first change
    "repair-fail-on": Case("repair", {"repair_fail_on": "bogus"},
                           r"value of repair_fail_on must be one of: critical, warning, info, never, got: bogus"),
    "repair-touch-foreign": Case("repair", {"repair_touch_foreign": "maybe"},
                                 r"argument 'repair_touch_foreign' is of type str and we were unable to convert to "
                                 r"bool"),
    "repair-intended-ip": Case("repair", {}, r"nothing was changed: node2: calico_intended_ip is 'not-an-ip', not an "
                               r"IPv4 address", host_vars={"node2": {"calico_intended_ip": "not-an-ip"}}),
    "repair-method-newline": Case("repair", {"repair_autodetection_method": "interface=eth0\nskip-interface=eth1"},
                                  r"repair_autodetection_method='interface=eth0\\\\nskip-interface=eth1' contains a "
                                  r"control character"),
    "repair-pools": Case("repair", {"repair_pools": ["198.18.0.0/16", "198.18.0.0/33"]},
                         r"repair_pools has entries that are not IPv4 CIDRs \(a.b.c.d/0-32\): 198.18.0.0/33"),
    "harden-no-such-group": Case("harden", {"preflight_hosts": "nosuchgroup"},
                                 r"preflight_hosts=nosuchgroup matches no host of the inventory"),
    "harden-rp-filter": Case("harden", {"preflight_rp_filter": "bogus"},
                             r"value of preflight_rp_filter must be one of: loose, off, keep, got: bogus"),
    "harden-intended-ip": Case("harden", {}, r"node1: calico_intended_ip is '192.0.2.300', not an IPv4 address",
                               host_vars={"node1": {"calico_intended_ip": "192.0.2.300"}}),
    "harden-tunnel-mtu": Case("harden", {"preflight_tunnel_mtu": 500},
                              r"preflight_tunnel_mtu must be 0 \(Calico's automatic value\) or at least 576, not 500"),
    "trace-limit-excludes-all": Case("trace", SRC_DST, r"trace_hosts=calico_nodes matches 2 host\(s\), but none of "
                                     r"them is within --limit", args=("--limit", "bystander")),
    "trace-no-such-group": Case("trace", {**SRC_DST, "trace_hosts": "nosuchgroup"},
                                r"trace_hosts=nosuchgroup matches no host of the inventory"),
    "node-local-rp-filter": Case("node_local", {"calico_intended_ip": "192.0.2.11", "preflight_rp_filter": "strict"},
                                 r"value of preflight_rp_filter must be one of: loose, off, keep, got: strict"),
}
# Good input: the run reaches the nodes (and fails there, on the guard) - the guard works.
CONTROL = Case("audit", {"audit_fail_on": "never"}, r"")


@dataclass
class Run:
    rc: int
    out: str
    guard: Path
    report_dirs: list


def run_case(tmp, name, case):
    work = tmp / name
    work.mkdir()
    guard = work / "GUARD"
    python = work / "python"
    python.write_text(GUARD.format(guard=guard))
    python.chmod(0o755)
    host_vars = case.host_vars or {}
    lines = ["[calico_nodes]"]
    for host, address in (("node1", "192.0.2.11"), ("node2", "192.0.2.12")):
        extra = " ".join(f"{k}={v}" for k, v in host_vars.get(host, {}).items())
        lines.append(f"{host} ansible_host={address} {extra}".strip())
    lines += ["[others]", "bystander ansible_host=192.0.2.99",
              "[all:vars]", "ansible_connection=local", f"ansible_python_interpreter={python}"]
    (work / "inventory.ini").write_text("\n".join(lines) + "\n")
    reports = {"audit_report_dir": str(work / "audit"), "repair_report_dir": str(work / "repair")}
    extra = {**reports, **case.extra}
    if case.playbook == "node_local":
        extra["ansible_python_interpreter"] = str(python)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(work / "tmp")}
    res = subprocess.run([PLAYBOOK, f"netdoctor.calico.{case.playbook}", "-i", str(work / "inventory.ini"),
                          "-e", json.dumps(extra), *case.args],
                         cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False)
    return Run(res.returncode, res.stdout + res.stderr, guard, [d for d in reports.values() if os.path.exists(d)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validation")
    cases = {**CASES, "control": CONTROL}
    with ThreadPoolExecutor(max_workers=min(12, os.cpu_count() or 4)) as pool:
        futures = {name: pool.submit(run_case, tmp, name, case) for name, case in cases.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_before_anything_changes(runs, name):
    run = runs[name]
    tail = run.out[-4000:]
    assert run.rc != 0, tail
    assert re.search(CASES[name].message, run.out), tail
    assert not run.guard.exists(), f"something ran on a node: {run.guard.read_text()}\n{tail}"
    assert run.report_dirs == [], f"a report directory was created: {run.report_dirs}"


def test_one_failure_message_per_bad_input(runs):
    """The input checks fail once for the play, not once per node."""
    for name in ("repair-intended-ip", "repair-method-newline", "harden-tunnel-mtu", "audit-intended-ip"):
        assert len(re.findall(CASES[name].message, runs[name].out.split("PLAY RECAP")[0])) <= 2, runs[name].out[-3000:]


def test_the_guard_sees_a_run_that_reaches_the_nodes(runs):
    run = runs["control"]
    assert run.guard.exists(), run.out[-4000:]
    # the facts failed on both nodes (the guard is no Python), so the audit reports them and writes its reports
    assert os.path.exists(os.path.join(run.report_dirs[0], "report.json")), run.out[-4000:]
