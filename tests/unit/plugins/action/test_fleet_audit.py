"""fleet_audit end to end: a real ansible-playbook run on the controller over five local hosts
whose calico_node facts are seed 001 case 1 (set by a tiny test module), one host failing before
the audit. Checks the result, the report files, check mode and fail_on."""

import json
from pathlib import Path

import pytest
import yaml
from ansible_collections.netdoctor.calico.plugins.action import fleet_audit as action
from ansible_collections.netdoctor.calico.plugins.modules import fleet_audit as docs
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import seed_case1
from ansible_collections.netdoctor.calico.tests.unit.plugins.action.audit_harness import run_playbook

PLAYBOOK = """
- name: Audit a fleet of test facts
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Load this host's facts
      test_calico_facts:
        path: "{{ facts_dir }}/{{ inventory_hostname }}.json"

    - name: Node5 fails, as an unreachable node would drop out
      ansible.builtin.fail:
        msg: node5 is down
      when: inventory_hostname == 'node5'

    - name: Audit (fails on the critical RT001, after writing the reports)
      netdoctor.calico.fleet_audit:
        report_dir: "{{ out }}/reports"
        query: "findings[?id=='RT001'].[host, peer]"
        intended_ip_var: intended
      run_once: true
      register: audit
      ignore_errors: true

    - name: Audit in check mode, only reporting
      netdoctor.calico.fleet_audit:
        report_dir: "{{ out }}/check"
        formats: [json, junit]
        fail_on: never
      run_once: true
      check_mode: true
      register: audit_check

    - name: The expected map alone (the first half of the audit role)
      netdoctor.calico.fleet_audit:
        map_only: true
        report_dir: "{{ out }}/map_only"
        fail_on: info
        intended_ip_var: intended
      run_once: true
      register: audit_map

    - name: Unreachable hosts with their reasons
      netdoctor.calico.fleet_audit:
        unreachable: {node5: "unreachable: ssh: connect to host node5 port 22: Connection refused"}
        fail_on: never
      run_once: true
      register: audit_reasons

    - name: Keep the results for the test
      ansible.builtin.copy:
        content: "{{ {'audit': audit, 'check': audit_check, 'map': audit_map, 'reasons': audit_reasons} | to_json }}"
        dest: "{{ out }}/results.json"
        mode: "0644"
      run_once: true
      delegate_to: localhost
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet_audit")
    hosts = [f"node{i} intended=192.168.{0 if i == 2 else 3}.{109 + i}" for i in range(1, 6)]
    proc, results = run_playbook(out, PLAYBOOK, seed_case1(), hosts)
    return out, proc, results


def test_the_play_reports_the_failed_host(run):
    _out, proc, _results = run
    assert proc.returncode == 2, proc.stdout  # node5 failed; the audit's failure is ignored
    assert "node5 is down" in proc.stdout


def test_audit_result(run):
    _out, _proc, results = run
    audit = results["audit"]
    assert audit["failed"] is True
    assert "RT001 node3" in audit["msg"]
    assert audit["changed"] is False
    assert audit["query_result"] == [["node3", "node1"]]
    assert audit["summary"]["unreachable"] == ["node5"]
    assert audit["summary"]["hosts"] == 5
    assert {(f["id"], f["host"], f["peer"]) for f in audit["findings"]} == {
        ("RT001", "node3", "node1"), ("UNREACH", "node5", None)}
    assert audit["expected_map"]["blocks"]["10.122.17.64/26"]["next_hop"] == "192.168.3.110"
    assert audit["expected_map"]["complete"] is False
    # intended_ip_var: node5 gave no facts, its inventory address stands in.
    assert audit["expected_map"]["nodes"]["node5"]["ip"] == "192.168.3.114"


def test_reports_are_written_before_failing(run):
    out, _proc, results = run
    paths = results["audit"]["report_paths"]
    assert set(paths) == {"json", "md", "html", "junit"}
    report = json.loads(Path(paths["json"]).read_text(encoding="utf-8"))
    assert report["schema_version"] == 2
    assert report["summary"]["by_id"] == {"RT001": 1, "UNREACH": 1}
    assert "RT001" in Path(paths["md"]).read_text(encoding="utf-8")
    assert Path(paths["html"]).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not [p for p in (out / "reports").iterdir() if p.name.startswith(".fleet_audit.")]


def test_check_mode_still_writes_the_reports(run):
    out, _proc, results = run
    check = results["check"]
    assert not check.get("failed")
    assert set(check["report_paths"]) == {"json", "junit"}
    assert sorted(p.name for p in (out / "check").iterdir()) == ["junit.xml", "report.json"]


def test_map_only_returns_the_map_and_nothing_else(run):
    out, _proc, results = run
    result = results["map"]
    assert not result.get("failed")  # fail_on is not applied: no rule runs
    assert result["expected_map"]["blocks"]["10.122.17.64/26"]["next_hop"] == "192.168.3.110"
    assert result["expected_map"]["nodes"]["node5"]["ip"] == "192.168.3.114"
    assert "findings" not in result and "report_paths" not in result
    assert not (out / "map_only").exists()


def test_unreachable_reasons_are_quoted(run):
    _out, _proc, results = run
    unreach = [f for f in results["reasons"]["findings"] if f["id"] == "UNREACH"]
    assert [f["host"] for f in unreach] == ["node5"]
    assert unreach[0]["evidence"]["reason"] == "unreachable: ssh: connect to host node5 port 22: Connection refused"
    assert "Connection refused" in unreach[0]["summary"]


@pytest.mark.parametrize(("value", "expected"), [
    (["node1", "node2"], {"node1": None, "node2": None}),
    ({"node1": "down", "node2": ""}, {"node1": "down", "node2": None}),
    ("node1, node2", {"node1": None, "node2": None}),
])
def test_unreachable_option_shapes(value, expected):
    assert action._unreachable(value) == expected


def test_documented_options_are_the_accepted_ones():
    """validate-modules cannot see an action plugin's arguments: compare them here."""
    documented = yaml.safe_load(docs.DOCUMENTATION)["options"]
    assert set(documented) == set(action.ARGUMENT_SPEC)
    for name, spec in action.ARGUMENT_SPEC.items():
        doc = documented[name]
        for key in ("type", "elements", "choices", "default"):
            assert doc.get(key) == spec.get(key), (name, key)
