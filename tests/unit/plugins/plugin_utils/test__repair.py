"""_repair: which step repairs which finding, what is refused and why, the autodetection method
(given and checked, or recommended), and the before/after report (repair.json, repair.md, the console
summary). The action plugin that reads and writes the files: tests/unit/plugins/action/test_repair_plan.py."""

import copy
import json

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils._calico_view import route_text
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _repair as rp

HOSTS = ["node1", "node2", "node3"]


def finding(fid, host, severity="critical", peer=None, evidence=None, **more):
    return {"id": fid, "severity": severity, "host": host, "peer": peer, "summary": f"{fid} on {host}",
            "evidence": {**(evidence or {}), **more}, "remedy": f"fix {fid}"}


def report(*findings, mode="ipip"):
    return {"summary": {"mode": mode}, "hosts": {h: {"status": "ok"} for h in HOSTS}, "findings": list(findings)}


def plan(*findings, mode="ipip", **kwargs):
    return rp.plan({"report": report(*findings, mode=mode), "hosts": HOSTS, **kwargs})


def item(result, fid, host):
    return next(i for i in result["items"] if (i["id"], i["host"]) == (fid, host))


def test_each_finding_goes_to_its_step_on_its_node():
    result = plan(finding("NM001", "node1", running=True),
                  finding("SRC001", "node2", source="192.0.2.99", calico_ip="192.0.2.12"),
                  finding("SYS001", "node3", **{"net.ipv4.ip_forward": 0}),
                  finding("SYS001", "node3", "warning", strict_interfaces={"eth0": {}}),
                  finding("SYS001", "node2", proxy_arp={"cali1": 0}, count=1),
                  finding("RT001", "node1", peer="node2", kind="wrong_next_hop"),
                  finding("RT002", "node3", peer="node1", kind="missing"))
    hosts = result["hosts"]
    assert hosts["node1"]["nm"] and hosts["node1"]["routes"] and not hosts["node1"]["source_routes"]
    assert hosts["node2"]["source_routes"] and hosts["node2"]["proxy_arp"] and not hosts["node2"]["routes"]
    assert hosts["node3"]["ip_forward"] and hosts["node3"]["rp_filter"] and hosts["node3"]["routes"]
    assert {i["action"] for i in result["items"]} == {"repair"}
    assert result["errors"] == [] and result["autodetection"]["needed"] is False


def test_what_the_repair_never_changes_is_reported_with_the_reason():
    result = plan(finding("BGP001", "node2", peer="node1",
                          evidence={"peer": {"address": "192.0.2.11", "name": "Mesh_192_0_2_11"}}),
                  finding("SYS001", "node1", "warning", tunnel={"device": "tunl0"}),
                  finding("RT001", "node3", "warning", peer="node1", kind="shadow"),
                  finding("NM001", "node1", "warning", matching_calico=[{"file": "x.network"}]),
                  finding("HOST001", "node2", "warning"),
                  steps={"bgp_firewall": False})
    assert all(i["action"] == "not_repaired" for i in result["items"])
    assert "host firewall is left alone" in item(result, "BGP001", "node2")["why"]
    assert "repair_bgp_firewall is false" in item(result, "BGP001", "node2")["why"]
    assert not result["hosts"]["node2"]["bgp_firewall"]
    assert "FelixConfiguration" in item(result, "SYS001", "node1")["why"]
    assert "never deleted" in item(result, "RT001", "node3")["why"]
    assert "networkd" in item(result, "NM001", "node1")["why"]
    # The down session is probed from the node, towards the peer's address.
    assert result["hosts"]["node2"]["bgp_probe"] == [{"peer": "node1", "address": "192.0.2.11",
                                                      "session": "Mesh_192_0_2_11"}]
    assert not any(h["routes"] or h["nm"] or h["rp_filter"] for h in result["hosts"].values())


def test_bgp_session_cut_by_a_firewall_is_the_firewall_steps_when_told_to():
    down = finding("BGP001", "node2", peer="node1", evidence={"peer": {"address": "192.0.2.11"}})
    result = plan(down, steps={"bgp_firewall": True})
    assert item(result, "BGP001", "node2")["action"] == "repair"
    assert result["hosts"]["node2"]["bgp_firewall"] and not result["hosts"]["node1"]["bgp_firewall"]
    assert result["hosts"]["node2"]["bgp_probe"][0]["address"] == "192.0.2.11"
    skipped = plan(down, steps={"bgp_firewall": True}, skip_tags=["repair_bgp_firewall"])
    assert not skipped["hosts"]["node2"]["bgp_firewall"]
    assert "--skip-tags repair_bgp_firewall" in item(skipped, "BGP001", "node2")["why"]


def test_missing_route_in_native_bgp_is_birds():
    result = plan(finding("RT002", "node3", peer="node1", kind="missing"), mode="bgp")
    assert item(result, "RT002", "node3")["action"] == "not_repaired"
    assert "BIRD" in item(result, "RT002", "node3")["why"]
    assert not result["hosts"]["node3"]["routes"]
    assert plan(finding("RT002", "node3", peer="node1", kind="missing"))["hosts"]["node3"]["routes"]


def test_consequences_follow_their_cause():
    bgp = finding("BGP001", "node2", peer="node1", evidence={"peer": {"address": "192.0.2.11"}})
    missing = finding("RT002", "node2", "info", peer="node1", kind="missing",
                      caused_by={"id": "BGP001", "host": "node2", "peer": "node1"})
    result = plan(bgp, missing, steps={"bgp_firewall": False})
    # BIRD withdrew the route with the session: adding it by hand would hide the cause.
    assert item(result, "RT002", "node2")["action"] == "not_repaired"
    assert result["hosts"]["node2"]["add_missing"] is False and not result["hosts"]["node2"]["routes"]
    # With the firewall step on, the route follows the session - BIRD brings it back, never a route by hand.
    result = plan(bgp, missing, steps={"bgp_firewall": True})
    assert item(result, "RT002", "node2")["action"] == "follows"
    assert result["hosts"]["node2"]["add_missing"] is False

    ad = finding("AD001", "node3", recommended_method="cidr=192.0.2.0/24")
    wrong = finding("RT001", "node1", "info", peer="node3", kind="wrong_next_hop",
                    caused_by={"id": "AD001", "host": "node3"})
    result = plan(ad, wrong)
    assert item(result, "RT001", "node1")["action"] == "follows"
    assert result["hosts"]["node1"]["routes"] is True


def test_severity_threshold_switches_and_tags():
    info = finding("NM001", "node1", "info", running=False)
    assert item(plan(info), "NM001", "node1")["action"] == "below_threshold"
    assert plan(info, min_severity="info")["hosts"]["node1"]["nm"] is True

    sys = finding("SYS001", "node2", **{"net.ipv4.ip_forward": 0})
    off = plan(sys, steps={"sysctl": False})
    assert item(off, "SYS001", "node2")["why"] == "repair_sysctl is false" and not off["hosts"]["node2"]["ip_forward"]
    skipped = plan(sys, skip_tags=["repair_sysctl"])
    assert item(skipped, "SYS001", "node2")["why"] == "skipped with --skip-tags repair_sysctl"
    other = plan(sys, run_tags=["repair_nm"])
    assert item(other, "SYS001", "node2")["why"] == "not selected by --tags repair_nm"
    assert plan(sys, run_tags=["repair_sysctl"])["hosts"]["node2"]["ip_forward"] is True


def test_autodetection_uses_the_recommended_method():
    result = plan(finding("AD001", "node3", recommended_method="interface=^eth0$",
                          recommendation={"reason": "the NIC every node's address is on"}),
                  finding("AD002", "node2", recommended_method="interface=^eth0$"))
    ad = result["autodetection"]
    assert ad == {"needed": True, "method": "interface=^eth0$", "source": "recommended by the audit",
                  "reason": "the NIC every node's address is on", "hosts": ["node2", "node3"]}
    assert result["errors"] == []


def test_autodetection_without_a_method_stops_before_any_change():
    result = plan(finding("AD001", "node3", recommended_method=None,
                          recommendation={"reason": "node3's intended address is on no interface"}))
    assert len(result["errors"]) == 1
    assert "no single IP_AUTODETECTION_METHOD fits" in result["errors"][0]
    assert "intended address is on no interface" in result["errors"][0]
    assert "Nothing was changed" in result["errors"][0]
    # Switched off, the rest can still be repaired.
    assert plan(finding("AD001", "node3"), steps={"autodetection": False})["errors"] == []


@pytest.mark.parametrize(("replay", "message"), [
    ({"node1": {"valid": False, "error": "Invalid IP autodetection method: first-fund"}},
     "is invalid - calico-node would terminate: node1: Invalid IP autodetection method: first-fund"),
    ({"node1": {"valid": True, "address": None, "error": "no interface matches ^eth9$", "intended": "192.0.2.11"},
      "node2": {"valid": True, "address": "192.0.2.12/24", "interface": "eth0", "intended": "192.0.2.12"}},
     "does not give 1 of 2 node(s) their intended address: node1 picks no address (no interface matches ^eth9$)"),
    ({"node1": {"valid": True, "address": "198.51.100.11/24", "interface": "eth1", "intended": "192.0.2.11"}},
     "node1 picks 198.51.100.11 (eth1) instead of 192.0.2.11"),
])
def test_a_given_method_is_checked_on_every_node(replay, message):
    result = plan(method="bad", replay=replay)
    assert len(result["errors"]) == 1 and message in result["errors"][0], result["errors"]


def test_a_given_method_that_fits_is_used():
    replay = {"node1": {"valid": True, "address": "192.0.2.11/24", "interface": "eth0", "intended": "192.0.2.11"}}
    result = plan(finding("AD001", "node1", recommended_method="cidr=192.0.2.0/24"), method="interface=^eth0$",
                  replay=replay)
    assert result["errors"] == []
    assert result["autodetection"]["method"] == "interface=^eth0$"
    assert result["autodetection"]["source"] == "repair_autodetection_method"


GENERATED = "2026-11-21T10:00:00+00:00"


def build(before, after, **kwargs):
    """repair.json as the action writes it (through JSON), with the action's result."""
    kwargs.setdefault("reports", {"before": "/r/before/report.json", "after": after and "/r/after/report.json"})
    doc = json.loads(json.dumps(rp.document(before, after, rp.plan({"report": before, "hosts": HOSTS}),
                                            generated=GENERATED, **kwargs)))
    return doc, rp.report_result(doc, {"json": "/r/repair.json", "md": "/r/repair.md"})


def test_report_before_after_changes_and_probe():
    sys = finding("SYS001", "node3", **{"net.ipv4.ip_forward": 0})
    stale = finding("RT001", "node2", peer="node1", kind="wrong_next_hop")
    bgp = finding("BGP001", "node1", peer="node2", evidence={"peer": {"address": "192.0.2.12"}})
    before = report(sys, stale, bgp, mode="bgp")
    after = report(stale, bgp, mode="bgp")
    refused = {"action": "replace", "route": {"dst": "198.18.65.0/26", "gateway": "192.0.2.11", "protocol": 12},
               "reason": "the route there is not Calico's (proto boot on eth0); touch_foreign is false"}
    changes = {"node3": {"sysctl": {"net.ipv4.ip_forward": "1"}, "sysctl_file": "/etc/sysctl.d/90-calico.conf"},
               "node2": {"routes": {"changed": False, "actions": {}, "skipped_actions": [refused]}}}
    doc, result = build(
        before, after, check_mode=False, fail_on="warning", changes=changes,
        probes={"node1": [{"address": "192.0.2.12", "port": 179, "result": "timeout", "timeout": 3.0}]})
    assert result["verdict"] == "failed" and result["fixed"] == 1
    rows = {(r["id"], r["host"]): r for r in doc["findings"]}
    assert rows[("SYS001", "node3")]["after"] == "fixed"
    assert rows[("RT001", "node2")]["after"] == "remains"
    assert "repair_touch_foreign=true" in rows[("RT001", "node2")]["why"]
    assert doc["changes"]["node3"] == ["sysctl net.ipv4.ip_forward=1 persisted in /etc/sysctl.d/90-calico.conf"]
    assert doc["changes"]["node2"][0].startswith("REFUSED replace 198.18.65.0/26 via 192.0.2.11 proto bird")
    assert "proto boot on eth0" in doc["changes"]["node2"][0]
    probe = next(r for r in doc["remaining"] if r["id"] == "BGP001")["probe"]
    assert probe["result"] == "timeout"
    text = rp.markdown(doc)
    assert "timed out after 3.0 s" in text and "**not clean**" in text
    assert any(line.startswith("REMAINS BGP001 node1") and "dropped" in line for line in result["lines"])


def test_report_in_check_mode_is_the_plan():
    sys = finding("SYS001", "node3", **{"net.ipv4.ip_forward": 0})
    before = report(sys)
    doc, result = build(before, None, check_mode=True, changes={"node3": {"sysctl": {"net.ipv4.ip_forward": "1"}}})
    assert result["verdict"] == "check" and result["failing"] == []
    assert result["lines"][0].startswith("check mode: nothing was changed")
    assert "node3: (would) sysctl net.ipv4.ip_forward=1" in result["lines"]
    assert doc["findings"][0]["after"] == "would be repaired"
    assert rp.markdown(doc).startswith("# Calico repair\n\n**check mode** - nothing was changed")


def test_a_host_not_audited_after_is_not_called_fixed():
    sys = finding("SYS001", "node3", **{"net.ipv4.ip_forward": 0})
    before = report(sys)
    after = report(finding("UNREACH", "node3", "warning"))
    after["hosts"]["node3"]["status"] = "unreachable"
    doc, _result = build(before, after)
    assert doc["findings"][0]["after"] == "unknown: not audited after the repair"
    assert doc["verdict"] == "failed"


def test_route_text_is_ip_route_syntax():
    # The collection's one route printer (_calico_view.route_text), as `ip route` prints: Felix's 80 has no name
    # in iproute2's rt_protos, so it is "proto 80".
    assert route_text({"dst": "198.18.65.0/26", "gateway": "192.0.2.75", "dev": "tunl0", "protocol": 80,
                       "onlink": True}) == "198.18.65.0/26 via 192.0.2.75 dev tunl0 proto 80 onlink"
    assert route_text({"dst": "192.0.2.64/26", "dev": "eth0", "protocol": 4,
                       "prefsrc": "192.0.2.77"}) == "192.0.2.64/26 dev eth0 proto static src 192.0.2.77"
    # ... and the report's route lines are written with it.
    raw = {"routes": {"actions": {"replace": [{"dst": "198.18.65.0/26", "gateway": "192.0.2.75", "dev": "tunl0",
                                               "protocol": 80, "onlink": True}]}},
           "source_routes": {"source_routes": {"networks": [
               {"action": "prepend", "peer_count": 2, "after": ["192.0.2.64/26 dev eth0 src 192.0.2.77"],
                "route": {"dst": "192.0.2.64/26", "dev": "eth0", "protocol": 4, "prefsrc": "192.0.2.77"}}]}}}
    assert rp.describe(raw, check_mode=False) == [
        "source route 192.0.2.64/26 dev eth0 proto static src 192.0.2.77 put in front (SRC001: 2 peer(s), now "
        "192.0.2.64/26 dev eth0 src 192.0.2.77; not persistent - add it to the network configuration)",
        "route 198.18.65.0/26 via 192.0.2.75 dev tunl0 proto 80 onlink replaced"]


def test_firewall_change_names_the_chains_and_the_drop():
    raw = {"bgp_firewall": {"changed": True, "actions": ["insert rule inet filter input ..."], "blocking": [
        {"family": "inet", "table": "filter", "chain": "input", "base_chain": "input", "handle": 7,
         "rule": "ip saddr 192.0.2.11 tcp dport 179 drop"},
        {"family": "inet", "table": "filter", "chain": "output", "base_chain": "output", "handle": 9,
         "rule": "ip daddr 192.0.2.11 tcp dport 179 drop"}]}}
    (line,) = rp.describe(raw, check_mode=False)
    assert line.startswith("host firewall: TCP/179 with the fleet's Calico IPs accepted in front of ")
    assert "inet filter input, inet filter output" in line
    assert "ip saddr 192.0.2.11 tcp dport 179 drop" in line and "not persistent" in line
    assert rp.describe({"bgp_firewall": {"changed": False, "blocking": raw["bgp_firewall"]["blocking"]}}, False) == []


def test_a_step_left_out_by_the_tags_says_so():
    sys = finding("SYS001", "node2", **{"net.ipv4.ip_forward": 0})
    result = plan(sys, run_tags=["repair_autodetection"])
    assert item(result, "SYS001", "node2")["why"] == "not selected by --tags repair_autodetection"
    assert result["steps"]["sysctl"] == {"enabled": False, "why": "not selected by --tags repair_autodetection"}
    assert result["lines"] == ["SYS001 node2 [critical]: not_repaired - not selected by --tags repair_autodetection"]


def test_a_refused_foreign_route_in_check_mode_would_be_refused():
    stale = finding("RT001", "node2", peer="node1", kind="wrong_next_hop")
    refused = {"action": "replace", "route": {"dst": "198.18.65.0/26", "gateway": "192.0.2.11", "dev": "tunl0",
                                              "onlink": True, "protocol": 12},
               "reason": "the route there is not Calico's (proto boot on eth0); touch_foreign is false"}
    doc, result = build(report(stale, mode="bgp"), None, check_mode=True,
                        changes={"node2": {"routes": {"changed": False, "actions": {}, "skipped_actions": [refused]}}})
    row = doc["findings"][0]
    assert row["after"] == "would be refused"
    assert row["why"] == ("refused: the route there is not Calico's (proto boot on eth0); touch_foreign is false - "
                          "the route is left alone unless repair_touch_foreign=true")
    assert doc["changes"]["node2"] == [
        "REFUSED replace 198.18.65.0/26 via 192.0.2.11 dev tunl0 proto bird onlink: the route there is not Calico's "
        "(proto boot on eth0); touch_foreign is false (set repair_touch_foreign=true to change it)"]
    assert "RT001 node2 -> node1 [critical]: would be refused - refused: the route there" in "\n".join(result["lines"])


def test_what_the_autodetection_step_changed():
    daemonset = {"changed": True, "previous": None, "method": "cidr=192.0.2.0/24", "target": "daemonset",
                 "command": ["kubectl", "set", "env", "daemonset/calico-node", "-n", "kube-system",
                             "IP_AUTODETECTION_METHOD=cidr=192.0.2.0/24", "--dry-run=server"],
                 "redetected": {"node1": "192.0.2.11", "node2": None}}
    (line,) = rp.describe_autodetection(daemonset, check_mode=True)
    assert line == ("IP_AUTODETECTION_METHOD (unset: first-found) -> cidr=192.0.2.0/24 on the daemonset (kubectl set "
                    "env daemonset/calico-node -n kube-system IP_AUTODETECTION_METHOD=cidr=192.0.2.0/24 "
                    "--dry-run=server)")
    (line,) = rp.describe_autodetection({**daemonset, "command": None}, check_mode=False)
    assert line.endswith("-> cidr=192.0.2.0/24 on the daemonset; calico-node re-detected with it on every node, "
                         "each registered with its intended IP: node1 192.0.2.11")
    (line,) = rp.describe_autodetection({**daemonset, "target": "manifest", "command": None, "redetected": {},
                                         "path": "/srv/calico.yaml"}, check_mode=False)
    assert "on the manifest - /srv/calico.yaml; calico-node reads it only once the manifest is applied" in line
    assert rp.describe_autodetection({**daemonset, "changed": False}, check_mode=False) == []
    # In the report, it is the fleet's change.
    ad = finding("AD001", "node3", recommended_method="cidr=192.0.2.0/24")
    doc, result = build(report(ad), None, check_mode=True, autodetection_result=daemonset)
    assert doc["changes"] == {"(fleet)": [rp.describe_autodetection(daemonset, True)[0]]}
    assert f"(fleet): (would) {doc['changes']['(fleet)'][0]}" in result["lines"]


def test_the_document_names_its_reports_and_leaves_its_inputs_alone():
    bgp = finding("BGP001", "node1", peer="node2", evidence={"peer": {"address": "192.0.2.12"}})
    before, after = report(bgp), report(bgp)
    the_plan = rp.plan({"report": before, "hosts": HOSTS})
    probes = {"node1": [{"address": "192.0.2.12", "port": 179, "result": "refused", "error": "[Errno 111]"}]}
    kept = copy.deepcopy((before, after, the_plan, probes))
    doc = rp.document(before, after, the_plan, probes=probes, generated=GENERATED,
                      reports={"after": "/r/after/report.json", "after_autodetection": None,
                               "before": "/r/before/report.json"})
    assert (before, after, the_plan, probes) == kept
    assert doc["generated"] == GENERATED and doc["schema_version"] == 1 and doc["fail_on"] == "warning"
    assert doc["remaining"][0]["probe"] == probes["node1"][0]
    assert list(doc["reports"]) == ["before", "after"]
    text = rp.markdown(doc)
    assert text.endswith("Reports: before: `/r/before/report.json`, after: `/r/after/report.json`\n")
    assert "was refused: nothing listens on 179 there" in text
    assert rp.report_result(doc, {"json": "j", "md": "m"}) == {
        "verdict": "failed", "failing": doc["remaining"], "paths": {"json": "j", "md": "m"},
        "lines": rp.summary_lines(doc), "fixed": 0}
