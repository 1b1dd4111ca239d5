"""The audit on inventories and nodes the lab does not make by default (issue 11), over real SSH:
inventory names that are not hostnames (FQDN-style aliases, and one node whose hostname is another
node's), two clusters of different modes in one inventory, a host group that matches nothing, a
fleet where no node answers, three audits at once while a node runs `NetworkManager --version` in
a loop, and nodes whose Python has Debian 12's pyroute2 0.7.2.
"""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_audit_lab import read_report, run_audit, serious  # noqa: E402 - the audit helpers

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
NODE_PYTHON = REPO / ".venv-pyroute2-0.7.2" / "bin" / "python"
pytestmark = pytest.mark.lab


@pytest.fixture
def labs(lab_factory):
    """lab_factory whose labs are downed when the test ends: the machine has three lab slots."""
    made = []

    def make(name, **kwargs):
        made.append(lab_factory(name, **kwargs))
        return made[-1]

    yield make
    for lab in made:
        lab.down()


def lab_hosts(lab, rename, **extra):
    """The lab's hosts under new inventory names, each with the lab's group vars as host vars."""
    inv = yaml.safe_load(Path(lab.inventory()).read_text())
    group = inv["all"]["children"]["calico_nodes"]
    return {rename(name): {**group["vars"], **hostvars, **extra} for name, hostvars in group["hosts"].items()}


def write_inventory(path, hosts):
    path.write_text(yaml.safe_dump({"all": {"children": {"calico_nodes": {"hosts": hosts}}}}))
    return str(path)


def playbook(name, inventory, out_dir, *extra, timeout=600):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), f"netdoctor.calico.{name}", "-i", inventory,
                           "-e", f"{name}_report_dir={out_dir}", *extra],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout, check=False)


def junit_suites(out_dir):
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    root = ET.fromstring((Path(out_dir) / "junit.xml").read_text())
    return {s.get("name") for s in root.iter("testsuite")}


def test_inventory_aliases_are_the_identity_everywhere(labs, tmp_path):
    lab = labs("rfal", mode="ipip", nodes=3)
    hosts = lab_hosts(lab, lambda n: f"{n}.example.com")
    inventory = write_inventory(tmp_path / "aliases.yml", hosts)
    lab.fault("no-ip-forward", node="node2")
    res = playbook("audit", inventory, tmp_path / "before", "-e", "audit_fail_on=never")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    report = read_report(tmp_path / "before")
    assert sorted(report["hosts"]) == sorted(hosts)
    assert {f["host"] for f in report["findings"]} <= set(hosts)
    found = [(f["id"], f["host"]) for f in serious(report)]
    assert found == [("SYS001", "node2.example.com")], found
    assert report["hosts"]["node2.example.com"]["hostname"] == "node2"
    assert junit_suites(tmp_path / "before") == set(hosts)

    res = playbook("repair", inventory, tmp_path / "repair")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert lab.sysctl("node2", "net.ipv4.ip_forward") == "1"
    res = playbook("audit", inventory, tmp_path / "after", "-e", "audit_fail_on=warning")
    assert res.returncode == 0, res.stdout[-3000:]
    assert serious(read_report(tmp_path / "after")) == []

    # node3 now reports node2's hostname: a clash named on both inventory names, never a new identity.
    lab.exec("node3", "hostname", "node2")
    res = playbook("audit", inventory, tmp_path / "clash", "-e", "audit_fail_on=never")
    assert res.returncode == 0, res.stdout[-3000:]
    report = read_report(tmp_path / "clash")
    assert {f["host"] for f in report["findings"]} <= set(hosts)
    assert sorted(report["hosts"]) == sorted(hosts) and report["hosts"]["node3.example.com"]["hostname"] == "node2"
    clash = sorted((f["id"], f["host"]) for f in serious(report))
    # The clash on both inventory names, and node3's /etc/hosts no longer resolves its new hostname.
    assert clash == [("DUP002", "node2.example.com"), ("DUP002", "node3.example.com"),
                     ("HOST001", "node3.example.com")], clash
    # The node's own HOST001 (its hostname does not resolve) stands for the fleet's "alias names another
    # machine" one: one finding per id and host.
    host001 = sorted((f["host"], f["severity"]) for f in report["findings"] if f["id"] == "HOST001")
    assert host001 == [("node3.example.com", "warning")], host001
    assert junit_suites(tmp_path / "clash") == set(hosts)


def test_two_clusters_in_one_inventory_are_audited_apart(labs, tmp_path):
    one = labs("rfc1", mode="ipip", nodes=3)
    two = labs("rfc2", mode="vxlan", nodes=3)
    hosts = {**lab_hosts(one, lambda n: f"east-{n}", calico_cluster="east"),
             **lab_hosts(two, lambda n: f"west-{n}", calico_cluster="west")}
    inventory = write_inventory(tmp_path / "two.yml", hosts)
    res = playbook("audit", inventory, tmp_path / "healthy", "-e", "audit_fail_on=warning")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    report = read_report(tmp_path / "healthy")
    assert serious(report) == []
    assert report["summary"]["clusters"] == ["east", "west"]
    assert {c: s["summary"]["mode"] for c, s in report["clusters"].items()} == {"east": "ipip", "west": "vxlan"}
    assert all(line["routes"]["checked"] == 2 == line["routes"]["ok"] for line in report["hosts"].values())

    two.fault("stale-route", node="node2")
    res = playbook("audit", inventory, tmp_path / "fault", "-e", "audit_fail_on=never")
    assert res.returncode == 0, res.stdout[-3000:]
    found = serious(read_report(tmp_path / "fault"))
    assert found and {(f["host"], f["cluster"]) for f in found} == {("west-node2", "west")}


def test_a_group_that_matches_nothing_fails_the_gate(tmp_path):
    inventory = write_inventory(tmp_path / "empty.yml", {"somehost": {"ansible_host": "192.0.2.250"}})
    for name, var in (("audit", "audit_hosts"), ("repair", "repair_hosts")):
        res = playbook(name, inventory, tmp_path / name, "-e", f"{var}=nosuchgroup", "-e", f"{name}_fail_on=info",
                       timeout=120)
        assert res.returncode != 0, (name, res.stdout[-2000:])
        assert "nosuchgroup" in res.stdout + res.stderr, (name, res.stdout[-2000:])


def test_a_fleet_where_no_node_answers_fails(tmp_path):
    # Port 1 on loopback refuses at once: every host is unreachable.
    hosts = {f"ghost{i}": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "root"} for i in (1, 2)}
    inventory = write_inventory(tmp_path / "ghosts.yml", hosts)
    res = playbook("audit", inventory, tmp_path / "out", timeout=180)
    assert res.returncode != 0
    assert "no node was audited" in res.stdout + res.stderr, res.stdout[-3000:]
    report = read_report(tmp_path / "out")
    assert report["summary"]["audited"] == 0 and sorted(report["summary"]["unreachable"]) == ["ghost1", "ghost2"]


def test_three_audits_at_once_while_networkmanager_version_runs(labs, tmp_path):
    lab = labs("rfcc", mode="bgp", nodes=3, nm=True)
    stop = tmp_path / "stop"
    # A busy loop of transient `NetworkManager --version` processes on node2, bounded in time.
    looper = subprocess.Popen(
        [str(REPO / "tests" / "lab" / "labctl"), "exec", "--name", lab.name, "node2", "--", "sh", "-c",
         f"end=$(($(date +%s) + 240)); while [ ! -e {stop} ] && [ $(date +%s) -lt $end ]; do "
         "NetworkManager --version >/dev/null; done"])
    results = {}
    try:
        def one(i):
            results[i] = run_audit(lab, tmp_path / f"run{i}", "-e", "audit_fail_on=warning")
        threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    finally:
        stop.touch()
        looper.wait(timeout=30)
    for i in range(3):
        assert results[i].returncode == 0, results[i].stdout[-3000:]
        report = read_report(tmp_path / f"run{i}")
        assert serious(report) == []
        assert not [f for f in report["findings"] if f["id"] == "NM001"]


def test_nodes_with_debian_pyroute2_0_7_2(labs, tmp_path):
    assert NODE_PYTHON.exists(), "make install creates .venv-pyroute2-0.7.2"
    version = subprocess.run([str(NODE_PYTHON), "-c", "from importlib.metadata import version; "
                              "print(version('pyroute2'))"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "0.7.2"
    lab = labs("rfpy", mode="vxlan", nodes=3)
    res = run_audit(lab, tmp_path / "out", "-e", "audit_fail_on=warning",
                    "-e", f"ansible_python_interpreter={NODE_PYTHON}")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    report = read_report(tmp_path / "out")
    assert serious(report) == [] and report["summary"]["audited"] == 3
