"""fleet_audit's datastore option end to end: a real ansible-playbook run on the controller over seed
001's five hosts (facts set by a tiny test module), with the Kubernetes fixture documents' view
(tests/unit/fixtures/kube, hand-made in kubectl's shape) in which node3 is registered with another
address and node6 is a NotReady node that no host is; and the view of a read that failed
(calico_datastore_info's error view), which is DS000 alone."""

import json
import xml.etree.ElementTree as ET

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _datastore
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import seed_fleet
from ansible_collections.netdoctor.calico.tests.unit.plugins.action.audit_harness import ROOT, run_playbook

KUBE = ROOT / "tests" / "unit" / "fixtures" / "kube"
PLAYBOOK = """
- name: Audit seed 001 against its datastore
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Load this host's facts
      test_calico_facts:
        path: "{{ facts_dir }}/{{ inventory_hostname }}.json"

    - name: Audit with the datastore
      netdoctor.calico.fleet_audit:
        datastore: "{{ lookup('ansible.builtin.file', view_file) | from_json }}"
        report_dir: "{{ out }}/with"
        formats: [json, junit]
        fail_on: never
      run_once: true
      register: with_datastore

    - name: Audit without it
      netdoctor.calico.fleet_audit:
        report_dir: "{{ out }}/without"
        formats: [junit]
        fail_on: never
      run_once: true
      register: without_datastore

    - name: Audit with the view of a read that failed
      netdoctor.calico.fleet_audit:
        datastore: "{{ lookup('ansible.builtin.file', failed_view_file) | from_json }}"
        report_dir: "{{ out }}/failed"
        formats: [json, junit]
      run_once: true
      register: failed_datastore

    - name: A datastore that is no view
      netdoctor.calico.fleet_audit:
        datastore: {nodes: []}
        fail_on: never
      run_once: true
      register: bad_datastore
      ignore_errors: true

    - name: Keep the results for the test
      ansible.builtin.copy:
        content: "{{ {'with': with_datastore, 'without': without_datastore, 'bad': bad_datastore,
                      'failed': failed_datastore} | to_json }}"
        dest: "{{ out }}/results.json"
        mode: "0644"
      run_once: true
      delegate_to: localhost
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet_audit_datastore")
    docs = [json.loads((KUBE / name).read_text(encoding="utf-8"))
            for name in ("nodes.json", "ipamblocks.json", "blockaffinities.json")]
    docs[0]["items"][2]["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = "192.168.0.112/24"
    (out / "view.json").write_text(json.dumps(_datastore.view_from_kubernetes(*docs)), encoding="utf-8")
    failed = _datastore.error_view("kubernetes", "resource_absent", "the API server serves neither "
                                   "crd.projectcalico.org nor projectcalico.org: Calico's CRDs are not installed")
    (out / "failed.json").write_text(json.dumps(failed), encoding="utf-8")
    proc, results = run_playbook(out, PLAYBOOK, seed_fleet(), [f"node{i}" for i in range(1, 6)],
                                 f"view_file={out / 'view.json'} failed_view_file={out / 'failed.json'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, results


def junit_cases(path):
    root = ET.parse(path).getroot()
    return {(s.get("name"), c.get("name")) for s in root.iter("testsuite") for c in s.iter("testcase")}


def test_the_datastore_findings_are_in_the_result_and_the_reports(run):
    out, results = run
    found = {(f["id"], f["severity"], f["host"]) for f in results["with"]["findings"]}
    assert found == {("DS001", "critical", "node3"), ("DS003", "warning", "node6")}
    report = json.loads((out / "with" / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["by_id"] == {"DS001": 1, "DS003": 1}
    assert report["hosts"]["node3"]["ids"] == ["DS001"]
    cases = junit_cases(out / "with" / "junit.xml")
    assert ("node3", "DS001") in cases and ("node1", "DS002") in cases
    assert {c for s, c in cases if s == "node6"} == {"DS003"}


def test_without_a_datastore_no_ds_rule_runs_or_is_reported(run):
    out, results = run
    assert results["without"]["findings"] == []
    assert not {c for _s, c in junit_cases(out / "without" / "junit.xml") if c.startswith("DS")}


def test_a_datastore_that_is_no_view_fails_the_task(run):
    _out, results = run
    assert results["bad"]["failed"]
    assert results["bad"]["msg"].startswith("datastore: not a datastore view")


def test_a_datastore_that_could_not_be_read_is_ds000_at_warning(run):
    out, results = run
    failed = results["failed"]
    assert not failed.get("failed")  # a warning: the default fail_on=critical passes
    assert [(f["id"], f["severity"], f["host"]) for f in failed["findings"]] == [("DS000", "warning", "datastore")]
    assert "Calico's CRDs are not installed" in failed["findings"][0]["summary"]
    cases = junit_cases(out / "failed" / "junit.xml")
    assert {c for s, c in cases if s == "datastore"} == {"DS000"}
    assert not {c for s, c in cases if s != "datastore" and c.startswith("DS")}
