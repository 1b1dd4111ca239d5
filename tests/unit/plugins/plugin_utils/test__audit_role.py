"""_audit_role (plugins/plugin_utils/_audit_role.py): the audit role's decisions - where routes are
checked, which peers each node looks up, which hosts gave nothing and why, the drift, and what a
person reads at the end (audit_route_check, peer_groups, peer_ips, task_failures, drift_by_host,
audit_summary and audit_failure filters)."""

import pytest
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _audit_role

MAP = {"clusters": {"n1": "east", "n2": "east", "n3": "west"}, "drift_needed": ["n2"]}


@pytest.mark.parametrize(("setting", "hosts"), [
    ("digest", ["n2"]),               # only the node whose digest differs: one round trip for the others
    ("node", ["n1", "n2", "n3"]),      # every node the map covers
    ("controller", []),                # the facts carried the full routes
])
def test_route_check_hosts(setting, hosts):
    assert _audit_role.route_check_hosts(setting, MAP, ["n1", "n2", "n3", "gone"]) == hosts


def test_route_check_hosts_without_a_map_and_with_an_unknown_setting():
    assert _audit_role.route_check_hosts("digest", {}, ["n1"]) == []  # the map phase was skipped
    with pytest.raises(ValueError, match="audit_route_check must be one of digest, node, controller, not 'nodes'"):
        _audit_role.route_check_hosts("nodes", MAP, [])


def test_small_fleet_every_node_is_its_own_group():
    ips = {"node1": "192.0.2.11", "node2": "192.0.2.12", "node3": "198.51.100.13"}
    groups = _audit_role.peer_groups(ips, 3)
    assert groups == [["192.0.2.11"], ["192.0.2.12"], ["198.51.100.13"]]
    # each node looks up every other node
    assert _audit_role.peer_ips(groups, "192.0.2.11") == ["192.0.2.12", "198.51.100.13"]


def test_large_fleet_two_per_subnet_one_look_up_per_subnet():
    ips = {f"a{i}": f"192.0.2.{i}" for i in range(1, 6)} | {f"b{i}": f"198.51.100.{i}" for i in range(1, 4)}
    ips |= {"v6a": "2001:db8:0:1::1", "v6b": "2001:db8:0:1::2", "v6c": "2001:db8:0:1::3", "v6d": "2001:db8:0:2::1"}
    groups = _audit_role.peer_groups(ips, 3)
    assert groups == [["192.0.2.1", "192.0.2.2"], ["198.51.100.1", "198.51.100.2"],
                      ["2001:db8:0:1::1", "2001:db8:0:1::2"], ["2001:db8:0:2::1"]]
    # a node in a group looks up the other member of its own subnet, and one per other subnet
    assert _audit_role.peer_ips(groups, "192.0.2.1") == ["192.0.2.2", "198.51.100.1", "2001:db8:0:1::1",
                                                         "2001:db8:0:2::1"]
    # the lone member of a subnet does not look itself up
    assert "2001:db8:0:2::1" not in _audit_role.peer_ips(groups, "2001:db8:0:2::1")
    # a node in no group (a third one of a subnet) still looks up one per subnet
    assert _audit_role.peer_ips(groups, "192.0.2.5") == ["192.0.2.1", "198.51.100.1", "2001:db8:0:1::1",
                                                         "2001:db8:0:2::1"]
    assert _audit_role.peer_groups({}, 100) == [] and _audit_role.peer_ips([], "") == []


def test_task_failures_name_why_a_host_gave_nothing():
    results = {
        "node1": {"changed": False, "ansible_facts": {}},
        "node2": {"unreachable": True, "msg": "Failed to connect to the host via ssh: timed out\n"},
        "node3": {"failed": True, "msg": "pyroute2 is required"},
        "node4": {"failed": True},
        "node5": {"changed": False},
        "node6": None,
    }
    assert _audit_role.task_failures(results, "facts failed", ["node1", "node2", "node3", "node4", "node6"]) == {
        "node2": "unreachable: Failed to connect to the host via ssh: timed out",
        "node3": "facts failed: pyroute2 is required",
        "node4": "facts failed: no message",
        "node5": "failed earlier in this run, not audited again",
    }
    # without the active hosts, only the results count
    assert _audit_role.task_failures(results, "route check failed") == {
        "node2": "unreachable: Failed to connect to the host via ssh: timed out",
        "node3": "route check failed: pyroute2 is required", "node4": "route check failed: no message"}


def test_drift_by_host_keeps_what_came_back():
    drift = {"host": "node1", "checked": 2, "ok": 2, "drift": []}
    results = {"node1": {"drift": drift}, "node2": {"failed": True, "drift": {"x": 1}},
               "node3": {"skipped": True}, "node4": None}
    assert _audit_role.drift_by_host(results) == {"node1": drift}


def finding(fid, severity, host, peer=None):
    return {"id": fid, "severity": severity, "host": host, "peer": peer, "summary": f"{fid} on {host}"}


RESULT = {
    "changed": False,
    "summary": {"hosts": 4, "audited": 3, "unreachable": ["node4"], "findings": 4, "critical": 1, "warning": 1,
                "info": 2, "by_id": {"UNREACH": 1, "AD001": 1, "NM001": 2}, "worst": "critical", "mode": "ipip"},
    "findings": [finding("NM001", "info", "node2"), finding("AD001", "critical", "node3"),
                 finding("UNREACH", "warning", "node4"), finding("NM001", "info", "node1", "node2")],
    "report_paths": {"json": "/r/report.json", "md": "/r/report.md"},
}


def test_summary_lines_counts_worst_findings_paths():
    assert _audit_role.summary_lines(RESULT) == [
        "4 finding(s) on 3 of 4 node(s) audited - 1 critical, 1 warning, 2 info; not audited: node4",
        "by id: AD001 1, NM001 2, UNREACH 1",
        "critical AD001 node3: AD001 on node3",
        "warning UNREACH node4: UNREACH on node4",
        "info NM001 node1 -> node2: NM001 on node1",
        "info NM001 node2: NM001 on node2",
        "reports: json /r/report.json, md /r/report.md",
    ]
    # no escaped JSON anywhere: a person reads it
    assert not any('"' in line or "{" in line for line in _audit_role.summary_lines(RESULT))


def test_summary_lines_are_bounded():
    many = {**RESULT, "findings": [finding("NM001", "info", f"node{i}") for i in range(25)]}
    lines = _audit_role.summary_lines(many, limit=10)
    assert len(lines) == 2 + 10 + 1 + 1
    assert lines[-2] == "... and 15 more finding(s) in the reports"


def test_summary_lines_of_a_clean_run_and_of_a_failed_one():
    clean = {"summary": {"hosts": 2, "audited": 2, "unreachable": [], "findings": 0, "critical": 0, "warning": 0,
                         "info": 0, "by_id": {}}, "findings": [], "report_paths": {}}
    assert _audit_role.summary_lines(clean) == [
        "0 finding(s) on 2 of 2 node(s) audited - 0 critical, 0 warning, 0 info",
        "reports: none written (audit_formats or report_dir is empty)"]
    assert _audit_role.summary_lines({"failed": True, "msg": "cannot write the reports"}) == [
        "no audit report: cannot write the reports"]
    assert _audit_role.summary_lines({"skipped": True}) == ["no audit report: it was skipped"]
    assert _audit_role.summary_lines(None) == ["no audit report: the audit did not run"]


def test_failure_is_fleet_audits_message_or_nothing():
    assert _audit_role.failure(RESULT) == ""
    tripped = {**RESULT, "failed": False, "failed_when_result": False,
               "msg": "1 finding(s) at or above fail_on=critical: AD001 node3: AD001 on node3"}
    # registered with failed_when: false, the message is what tells the failure
    assert _audit_role.failure(tripped) == "1 finding(s) at or above fail_on=critical: AD001 node3: AD001 on node3"
    assert _audit_role.failure({"failed": True}) == "the fleet audit failed"
    assert _audit_role.failure({"skipped": True, "msg": "skipped"}) == ""
    assert _audit_role.failure(None) == ""
