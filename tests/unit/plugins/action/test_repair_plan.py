"""repair_plan end to end: a real ansible-playbook run on the controller over three local hosts, from
hand-written audit reports - the plan, repair.json and repair.md written atomically (also in check
mode), and the errors for a missing report and misused options. The rules themselves: test__repair.py.
The recommend_method filter is called from the same play, as a role calls it."""

import json
import re

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible_collections.netdoctor.calico.plugins.action import repair_plan as action
from ansible_collections.netdoctor.calico.plugins.modules import repair_plan as docs
from ansible_collections.netdoctor.calico.tests.unit.plugins.action.audit_harness import run_playbook

HOSTS = ["node1", "node2", "node3"]

PLAYBOOK = """
- name: Plan and report a repair from hand-written audit reports
  hosts: fleet
  gather_facts: false
  vars:
    before: "{{ out }}/before/fixture.json"
  tasks:
    - name: Plan, the firewall step off as in the role's defaults
      netdoctor.calico.repair_plan:
        mode: plan
        report_path: "{{ before }}"
        hosts: "{{ ansible_play_hosts }}"
        steps: {bgp_firewall: false}
        run_tags: "{{ ansible_run_tags }}"
        skip_tags: "{{ ansible_skip_tags }}"
      run_once: true
      register: planned

    - name: Report before -> after
      netdoctor.calico.repair_plan:
        mode: report
        before: "{{ before }}"
        after: "{{ out }}/after/fixture.json"
        plan: "{{ planned.plan }}"
        check_mode: false
        report_dir: "{{ out }}/reports"
        changes: {node3: {sysctl: {net.ipv4.ip_forward: "1"}, sysctl_file: /etc/sysctl.d/90-calico.conf}}
        probes: {node1: [{address: 192.0.2.12, port: 179, result: timeout, timeout: 3.0}]}
      run_once: true
      register: reported

    - name: Report in check mode (the task's check mode), into a directory that does not exist yet
      netdoctor.calico.repair_plan:
        mode: report
        before: "{{ before }}"
        plan: "{{ planned.plan }}"
        report_dir: "{{ out }}/check/nested"
      check_mode: true
      run_once: true
      register: checked

    - name: A before report that is not there
      netdoctor.calico.repair_plan:
        mode: report
        before: "{{ out }}/nowhere/report.json"
        plan: "{{ planned.plan }}"
        report_dir: "{{ out }}/missing"
      run_once: true
      register: missing
      ignore_errors: true

    - name: An option of the other mode
      netdoctor.calico.repair_plan:
        mode: plan
        report_path: "{{ before }}"
        report_dir: "{{ out }}/foreign"
      run_once: true
      register: foreign
      ignore_errors: true

    - name: A step that does not exist
      netdoctor.calico.repair_plan:
        mode: plan
        report_path: "{{ before }}"
        steps: {firewall: true}
      run_once: true
      register: bad_step
      ignore_errors: true

    - name: The report without a plan
      netdoctor.calico.repair_plan:
        mode: report
        before: "{{ before }}"
        report_dir: "{{ out }}/no_plan"
      run_once: true
      register: no_plan
      ignore_errors: true

    - name: The fleet's method, with the filter the preflight role uses
      ansible.builtin.set_fact:
        recommendation: >-
          {{ (lookup('ansible.builtin.file', out ~ '/facts.json') | from_json)
             | netdoctor.calico.recommend_method({'node1': '192.0.2.11', 'node2': '192.0.2.12'}, '3.30') }}
      run_once: true

    - name: Keep the results for the test
      ansible.builtin.copy:
        content: "{{ {'plan': planned, 'report': reported, 'check': checked, 'missing': missing, 'foreign': foreign,
                      'bad_step': bad_step, 'no_plan': no_plan, 'recommendation': recommendation} | to_json }}"
        dest: "{{ out }}/results.json"
        mode: "0644"
      run_once: true
      delegate_to: localhost
"""


def finding(fid, host, evidence, peer=None):
    return {"id": fid, "severity": "critical", "host": host, "peer": peer, "summary": f"{fid} on {host}",
            "evidence": evidence, "remedy": f"fix {fid}"}


def audit(*findings):
    return {"schema_version": 1, "summary": {"mode": "bgp", "critical": len(findings), "warning": 0, "info": 0},
            "hosts": {h: {"status": "ok"} for h in HOSTS}, "findings": list(findings)}


def links(i):
    return [{"index": 2, "name": "eth0", "mtu": 1500, "up": True,
             "addresses": [{"address": f"192.0.2.{10 + i}", "prefixlen": 26, "family": 4, "scope": "global",
                            "flags": [], "label": "eth0"}]}]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("repair_plan")
    sys001 = finding("SYS001", "node3", {"net.ipv4.ip_forward": 0})
    bgp = finding("BGP001", "node1", {"peer": {"address": "192.0.2.12", "name": "Mesh_192_0_2_12"}}, peer="node2")
    for phase, doc in (("before", audit(sys001, bgp)), ("after", audit(bgp))):
        (out / phase).mkdir()
        # Hand-made audit documents (not written by fleet_audit): named apart from real report.json files,
        # which the session checks against the published schema.
        (out / phase / "fixture.json").write_text(json.dumps(doc), encoding="utf-8")
    (out / "facts.json").write_text(json.dumps({f"node{i}": {"links": links(i)} for i in (1, 2)}), encoding="utf-8")
    # A repair.json from an earlier run: it is replaced by a rename, never rewritten in place.
    (out / "reports").mkdir()
    (out / "reports" / "repair.json").write_text("{}\n", encoding="utf-8")
    old_inode = (out / "reports" / "repair.json").stat().st_ino
    hosts = [f"{h} ansible_host=127.0.0.1" for h in HOSTS]
    proc, results = run_playbook(out, PLAYBOOK, {}, hosts)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, results, old_inode


def test_plan_mode_returns_the_plan(run):
    _out, results, _inode = run
    result = results["plan"]
    assert result["changed"] is False and not result.get("failed")
    the_plan = result["plan"]
    assert set(the_plan) == {"errors", "autodetection", "hosts", "items", "lines", "steps", "min_severity"}
    assert the_plan["errors"] == [] and the_plan["min_severity"] == "warning"
    assert the_plan["hosts"]["node3"]["ip_forward"] is True
    assert the_plan["hosts"]["node1"]["bgp_probe"] == [{"peer": "node2", "address": "192.0.2.12",
                                                        "session": "Mesh_192_0_2_12"}]
    assert the_plan["steps"]["bgp_firewall"]["enabled"] is False
    assert the_plan["steps"]["sysctl"] == {"enabled": True, "why": None}
    assert the_plan["lines"] == [
        "SYS001 node3 [critical]: repair - sysctls (ansible.posix.sysctl / sysctl -w)",
        "BGP001 node1 -> node2 [critical]: not_repaired - repair_bgp_firewall is false: the host firewall is left "
        "alone, the session is tested on TCP 179 (set it to true to let TCP/179 from the fleet's Calico IPs through)"]


def test_report_mode_writes_both_files_atomically_and_returns_the_verdict(run):
    out, results, old_inode = run
    result = results["report"]
    assert result["changed"] is False and not result.get("failed")
    assert result["verdict"] == "failed" and result["fixed"] == 1
    assert result["paths"] == {"json": str(out / "reports" / "repair.json"), "md": str(out / "reports" / "repair.md")}
    assert [f["id"] for f in result["failing"]] == ["BGP001"]
    assert result["failing"][0]["probe"]["result"] == "timeout"
    assert "node3: sysctl net.ipv4.ip_forward=1 persisted in /etc/sysctl.d/90-calico.conf" in result["lines"]
    assert any("timed out after 3.0 s" in line and "dropped" in line for line in result["lines"])
    doc = json.loads((out / "reports" / "repair.json").read_text(encoding="utf-8"))
    assert doc["verdict"] == "failed" and doc["check_mode"] is False
    assert doc["reports"] == {phase: str(out / phase / "fixture.json") for phase in ("before", "after")}
    assert {(r["id"], r["after"]) for r in doc["findings"]} == {("SYS001", "fixed"), ("BGP001", "remains")}
    assert (out / "reports" / "repair.json").stat().st_ino != old_inode
    text = (out / "reports" / "repair.md").read_text(encoding="utf-8")
    assert text.startswith("# Calico repair\n\n**not clean** - 1 finding(s) at or above `warning` remain")
    assert sorted(p.name for p in (out / "reports").iterdir()) == ["repair.json", "repair.md"]


def test_report_mode_writes_in_check_mode_too(run):
    out, results, _inode = run
    result = results["check"]
    assert result["changed"] is False and result["verdict"] == "check"
    assert result["lines"][0] == "check mode: nothing was changed; this is what the repair would do"
    assert sorted(p.name for p in (out / "check" / "nested").iterdir()) == ["repair.json", "repair.md"]
    doc = json.loads((out / "check" / "nested" / "repair.json").read_text(encoding="utf-8"))
    assert doc["check_mode"] is True and doc["findings"][0]["after"] == "would be repaired"


def test_a_missing_before_report_is_named(run):
    out, results, _inode = run
    result = results["missing"]
    assert result["failed"] is True
    assert result["msg"] == (f"before: the audit report before the repair, {out}/nowhere/report.json, does not exist "
                             "- the audit (the netdoctor.calico.audit role, or fleet_audit with report_dir) writes "
                             "it; did it run into this directory?")
    assert not (out / "missing").exists()


def test_misused_options_fail_with_what_is_wrong(run):
    _out, results, _inode = run
    assert results["foreign"]["failed"] is True
    assert results["foreign"]["msg"].startswith("report_dir: not an option of mode=plan (the options of mode=plan "
                                                "are report_path, hosts, ")
    assert results["bad_step"]["failed"] is True and "firewall" in results["bad_step"]["msg"]
    assert results["no_plan"]["failed"] is True
    assert "mode is report but all of the following are missing: plan" in results["no_plan"]["msg"]


def test_the_filter_runs_in_a_play(run):
    _out, results, _inode = run
    assert results["recommendation"]["method"] == "cidr=192.0.2.0/26"


@pytest.mark.parametrize(("text", "message"), [
    (None, "does not exist"),
    ("{not json", "cannot read the audit report after the repair"),
    ('{"summary": {}}', "is not an audit report.json (no list of findings)"),
])
def test_read_report_errors(tmp_path, text, message):
    path = tmp_path / "broken-report.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(AnsibleActionFail, match=re.escape(message)):
        action.read_report(str(path), "after")


def test_documented_options_are_the_accepted_ones():
    """validate-modules cannot see an action plugin's arguments: compare them here."""
    documented = yaml.safe_load(docs.DOCUMENTATION)["options"]
    assert set(documented) == set(action.ARGUMENT_SPEC) == {"mode", *action.PLAN_OPTIONS, *action.REPORT_OPTIONS}
    for name, spec in action.ARGUMENT_SPEC.items():
        doc = documented[name]
        for key in ("type", "elements", "choices", "default", "required"):
            assert doc.get(key) == spec.get(key), (name, key)
        assert set(doc.get("suboptions") or ()) == set(spec.get("options") or ()), name
        for sub, sub_spec in (spec.get("options") or {}).items():
            for key in ("type", "default"):
                assert doc["suboptions"][sub].get(key) == sub_spec.get(key), (name, sub, key)
