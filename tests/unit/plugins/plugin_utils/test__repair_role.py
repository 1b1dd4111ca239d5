"""_repair_role (plugins/plugin_utils/_repair_role.py): the repair role's decisions - what each
per-node step works on, re-detection, the TCP tests from ansible.builtin.wait_for in the shape
repair_plan's probes take, what changed on a node, the summary and the one failure."""

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _findings
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _repair_role as rep


def test_proxy_arp_off_is_what_the_audit_flags():
    fact = {"links": [{"name": n} for n in ("eth0", "cali1", "cali2", "cali3", "cali5")],
            "sysctls": {"interfaces": {"eth0": {"proxy_arp": 0}, "cali1": {"proxy_arp": 1}, "cali2": {"proxy_arp": 0},
                                       "cali3": {"proxy_arp": None}, "cali4": {"proxy_arp": 0},  # cali4: gone
                                       "cali5": {"proxy_arp": 0}}}}
    assert rep.proxy_arp_off(fact) == ["cali2", "cali5"]
    flagged = _findings.rule_proxy_arp(fact, "node1")[0]["evidence"]["proxy_arp"]
    assert sorted(flagged) == rep.proxy_arp_off(fact)
    assert rep.proxy_arp_off({}) == []


def test_nm_target_keeps_the_dropin_unless_a_later_file_undoes_it():
    dropin, late = "/etc/NetworkManager/conf.d/calico.conf", "/etc/NetworkManager/conf.d/zz-calico.conf"
    assert rep.nm_target({"overridden_by": [], "managed_calico_devices": []}, dropin, late) == {
        "path": dropin, "overrides": [], "ops": "", "managed": []}
    probe = {"failed": False, "managed_calico_devices": ["cali*", "tunl*"],
             "overridden_by": [{"file": "/etc/NetworkManager/conf.d/rke2-canal.conf", "op": "="},
                               {"file": "/etc/NetworkManager/conf.d/rke2-canal.conf", "op": "-="}]}
    assert rep.nm_target(probe, dropin, late) == {
        "path": late, "overrides": ["/etc/NetworkManager/conf.d/rke2-canal.conf"], "ops": "op =, op -=",
        "managed": ["cali*", "tunl*"]}
    # a later file that still lists Calico's devices changes nothing: the effective configuration counts
    assert rep.nm_target({**probe, "managed_calico_devices": []}, dropin, late)["path"] == dropin


def facts_result(method, router_id=None, mode="bgp", vxlan_local=None, env_ip=None):
    return {"ansible_facts": {"calico_node": {
        "autodetection": {"method_in_use": method},
        "bird": {"router_id": router_id},
        "calico": {"mode": mode, "vxlan": {"local": vxlan_local} if vxlan_local else None},
        "identity": {"calico_node": {"env": {"IP": env_ip}} if env_ip else None}}}}


def test_redetection_reads_the_registered_ip_as_the_audit_does():
    done = rep.redetection(facts_result("cidr=192.0.2.0/24", "192.0.2.13"), "cidr=192.0.2.0/24", "192.0.2.13")
    assert done == {"done": True, "method_in_use": "cidr=192.0.2.0/24", "registered": "192.0.2.13"}
    # VXLAN: vxlan.calico's local address is what the others route to, before BIRD's router id
    vxlan = facts_result("m", "198.51.100.13", mode="vxlan", vxlan_local="192.0.2.13/24")
    assert rep.redetection(vxlan, "m", "192.0.2.13")["registered"] == "192.0.2.13"
    assert rep.redetection(facts_result("m", None, env_ip="192.0.2.13"), "m", "192.0.2.13")["done"] is True
    # still the old method, or the old address
    assert rep.redetection(facts_result("first-found", "192.0.2.13"), "m", "192.0.2.13")["done"] is False
    assert rep.redetection(facts_result("m", "198.51.100.13"), "m", "192.0.2.13")["done"] is False
    # the facts module failed (calico-node restarting): not done, nothing known
    assert rep.redetection({"failed": True, "msg": "x"}, "m", "192.0.2.13") == {
        "done": False, "method_in_use": None, "registered": ""}
    assert rep.registered_ip(None) == ""


def test_bgp_firewall_peers_and_sessions():
    expected = {"nodes": {"node1": {"ip": "192.0.2.11"}, "node2": {"ip": "192.0.2.12"}, "node3": {"ip": None},
                          "node4": {"ip": "192.0.2.12"}}}
    assert rep.bgp_firewall_peers(expected, "node1") == {"peers": ["192.0.2.12"], "local": ["192.0.2.11"]}
    assert rep.bgp_firewall_peers(expected, "node3") == {"peers": ["192.0.2.11", "192.0.2.12"], "local": []}
    sessions = {"ansible_facts": {"calico_node": {"bird": {"peers": [
        {"address": "192.0.2.12", "established": True}, {"address": "192.0.2.13", "established": False}]}}}}
    assert rep.bgp_sessions_up(sessions, ["192.0.2.12"]) is True
    assert rep.bgp_sessions_up(sessions, ["192.0.2.12", "192.0.2.13"]) is False
    assert rep.bgp_sessions_up({}, []) is True


def test_route_skips_and_node_changes():
    routes = {"changed": True, "actions": {"replace": [1]}, "diff": "x",
              "skipped_actions": [{"action": "replace", "route": {"dst": "198.18.2.0/26"}, "reason": "not Calico's"}]}
    assert rep.route_skips(routes) == ["replace 198.18.2.0/26 not Calico's"]
    assert rep.route_skips({"skipped": True}) == []
    results = {"nm": {"changed": True, "path": "/p.conf", "reloaded": True, "content": "x", "backup_file": None},
               "nm_overrides": ["/rke2.conf"], "source_routes": {"changed": False, "source_routes": [], "x": 1},
               "sysctl": {"net.ipv4.ip_forward": "1"}, "proxy_arp": ["cali1"],
               "bgp_firewall": {"skipped": True, "changed": False}, "routes": routes,
               "host_managers": {"changed": True, "changes": ["write /etc/systemd/networkd.conf.d/calico.conf"],
                                 "files": {}, "backup_files": [], "networkd_restart_needed": True},
               "overlay_firewall": {"changed": True, "actions": ["insert"], "blocking": [], "diff": "x"},
               "vxlan_offload": {"results": [{"changed": True, "device": "vxlan.calico", "before": ["on"],
                                              "after": ["off"], "item": "vxlan.calico"}, {"changed": False}]}}
    assert rep.node_changes(results, "/etc/sysctl.d/90-calico.conf") == {
        "nm": {"changed": True, "path": "/p.conf", "backup_file": None}, "nm_overrides": ["/rke2.conf"],
        "nm_reloaded": True, "source_routes": {"changed": False, "source_routes": []},
        "sysctl": {"net.ipv4.ip_forward": "1"}, "sysctl_file": "/etc/sysctl.d/90-calico.conf", "proxy_arp": ["cali1"],
        "bgp_firewall": {"changed": False},
        "routes": {"changed": True, "actions": {"replace": [1]}, "skipped_actions": routes["skipped_actions"]},
        "host_managers": {"changed": True, "changes": ["write /etc/systemd/networkd.conf.d/calico.conf"],
                          "backup_files": [], "networkd_restart_needed": True},
        "overlay_firewall": {"changed": True, "actions": ["insert"], "blocking": []},
        "vxlan_offload": [{"changed": True, "device": "vxlan.calico", "before": ["on"], "after": ["off"]}]}
    nothing = rep.node_changes({}, "/f.conf")
    assert nothing["sysctl_file"] == "" and nothing["nm_reloaded"] is False and nothing["nm"] == {}


def test_needs_expected_map():
    assert rep.needs_expected_map({"hosts": {"node1": {"routes": False, "nm": True}}}) is False
    assert rep.needs_expected_map({"hosts": {"node1": {}, "node2": {"source_routes": True}}}) is True
    assert rep.needs_expected_map({"hosts": {"node1": {"bgp_firewall": True}}}) is True
    assert rep.needs_expected_map({}) is False


PLAN = {"hosts": {"node1": {"bgp_probe": [{"peer": "node6", "address": "192.0.2.16", "session": "Mesh_1"},
                                          {"peer": "node6", "address": "192.0.2.16", "session": "Mesh_2"}]},
                  "node2": {"bgp_probe": []}, "node6": {"bgp_probe": [{"peer": "node1", "address": "192.0.2.11"}]}}}


def test_down_peers_from_the_plan_or_the_audit_after():
    assert rep.down_peers(PLAN) == {"node1": ["192.0.2.16"], "node6": ["192.0.2.11"]}
    report = {"findings": [
        {"id": "BGP001", "host": "node1", "evidence": {"peer": {"address": "192.0.2.16"}}},
        {"id": "BGP001", "host": "node1", "evidence": {"peer": {"address": "192.0.2.16", "name": "Mesh_2"}}},
        {"id": "BGP001", "host": "node3", "evidence": {"peer": {"name": "x"}}},
        {"id": "RT001", "host": "node2", "evidence": {"peer": {"address": "192.0.2.11"}}}]}
    assert rep.down_peers(PLAN, report) == {"node1": ["192.0.2.16"]}
    # the audit after is clean: nothing to test, whatever the plan said
    assert rep.down_peers(PLAN, {"findings": []}) == {}


# What ansible.builtin.wait_for registers per loop item with failed_when: false (ansible-core 2.19, seen).
OPEN = {"ansible_loop_var": "item", "changed": False, "elapsed": 0, "failed": False, "failed_when_result": False,
        "item": "192.0.2.12", "match_groupdict": {}, "match_groups": [], "path": None, "port": 179,
        "search_regex": None, "state": "started"}
TIMEOUT = {"ansible_loop_var": "item", "changed": False, "elapsed": 3, "failed": False, "failed_when_result": False,
           "failed_when_suppressed_exception": "(traceback unavailable)", "item": "192.0.2.16",
           "msg": "Timeout when waiting for 192.0.2.16:179"}


def test_tcp_probes_in_the_shape_repair_plan_takes():
    registered = {"node1": {"changed": False, "msg": "All items completed", "results": [OPEN, TIMEOUT]},
                  "node2": {"skipped": True, "skipped_reason": "No items in the list", "results": []},
                  "node3": {}}
    assert rep.tcp_probes(registered, 3) == {
        "node1": [{"address": "192.0.2.12", "port": 179, "result": "open", "error": None, "timeout": 3.0, "seconds": 0},
                  {"address": "192.0.2.16", "port": 179, "result": "timeout",
                   "error": "Timeout when waiting for 192.0.2.16:179", "timeout": 3.0, "seconds": 3}],
        "node2": [], "node3": []}


def test_tcp_probe_other_failures_and_skips():
    odd = {**TIMEOUT, "msg": "unknown active_connection_state"}
    assert rep.tcp_probe(odd, "3")["result"] == "unreachable"
    assert rep.tcp_probe({"skipped": True, "item": "x"}, 3) is None
    assert rep.tcp_probe({"item": "192.0.2.9", "failed": True}, 2)["result"] == "timeout"


def test_autodetection_result_and_audit_reports():
    result = {"changed": True, "previous": "first-found", "method": "cidr=192.0.2.0/24", "target": "daemonset",
              "command": ["kubectl", "set", "env"], "diff": {}, "invocation": {}}
    assert rep.autodetection_result(result, "", {"node1": "192.0.2.11", "node2": None}) == {
        "changed": True, "previous": "first-found", "method": "cidr=192.0.2.0/24", "target": "daemonset",
        "command": ["kubectl", "set", "env"], "path": "", "redetected": {"node1": "192.0.2.11", "node2": None}}
    assert rep.autodetection_result({}, "/m.yaml", {}) == {"path": "/m.yaml", "redetected": {}}
    assert rep.audit_reports("/r", {"before": {}}, False) == {
        "before": "/r/before/report.json", "after_autodetection": None, "after": "/r/after/report.json"}
    assert rep.audit_reports("/r", {"before": {}, "after-autodetection": {}}, True) == {
        "before": "/r/before/report.json", "after_autodetection": "/r/after-autodetection/report.json", "after": None}


REPORT = {"changed": False, "verdict": "failed", "fixed": 3,
          "lines": ["5 finding(s) to act on before the repair, 3 fixed, 2 at or above warning after it"],
          "paths": {"json": "/r/repair.json", "md": "/r/repair.md"},
          "failing": [{"id": "BGP001", "host": "node1", "summary": "session to node6 down"},
                      {"id": "RT001", "host": "node2", "summary": "wrong next hop"}]}


def test_summary_lines_and_failure():
    assert rep.summary_lines(REPORT) == [
        "5 finding(s) to act on before the repair, 3 fixed, 2 at or above warning after it",
        "reports: json /r/repair.json, md /r/repair.md"]
    assert rep.failure(REPORT, "warning") == (
        "2 finding(s) at or above repair_fail_on=warning remain after the repair: BGP001 node1 session to node6 down; "
        "RT001 node2 wrong next hop. See /r/repair.md.")
    assert rep.failure({**REPORT, "verdict": "ok"}, "warning") == ""
    assert rep.failure({**REPORT, "verdict": "check"}, "warning") == ""
    many = {**REPORT, "failing": REPORT["failing"] * 4}
    assert "(and 3 more)" in rep.failure(many, "info")
    assert rep.summary_lines({"failed": True, "msg": "cannot write"}) == ["no repair report: cannot write"]
    assert rep.failure({"failed": True, "msg": "cannot write"}, "warning") == "cannot write"


@pytest.mark.parametrize("value", [None, "x", []])
def test_odd_values_give_empty_answers(value):
    assert rep.down_peers(value) == {}
    assert rep.tcp_probes({}, 3) == {}
    assert rep.route_skips(value) == []
    assert rep.proxy_arp_off(value) == []
