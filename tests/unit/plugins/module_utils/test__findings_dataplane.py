"""The data plane rules (plugins/module_utils/_findings_dataplane.py) over facts with a ``dataplane`` part:
FW001, OFF001, CT001, FLX001, FLX002, BPF001, WG001, MTU002, and the two fleet helpers."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue, _findings
from ansible_collections.netdoctor.calico.plugins.module_utils import _dataplane as dp
from ansible_collections.netdoctor.calico.plugins.module_utils import _findings_dataplane as fdp
from ansible_collections.netdoctor.calico.tests.unit import iptext
from ansible_collections.netdoctor.calico.tests.unit.fixtures import facts
from ansible_collections.netdoctor.calico.tests.unit.fixtures.nodes import VXLAN_ADDR, VXLAN_ROUTES

OFF = {"on": False, "fixed": False, "requested": None}
ON = {"on": True, "fixed": False, "requested": None}
FIXED = {"on": False, "fixed": True, "requested": None}
READY_TABLE = [{"component": "InternalDataplaneMainLoop", "timeout": "1m30s", "liveness": "reporting live",
                "readiness": "reporting ready", "detail": ""}]


def healthy_dataplane():
    """What _dataplane reads off a healthy VXLAN node (kernel 6.8, offload off as with the override)."""
    return {
        "kernel": {"release": "6.8.0-45-generic", "version": [6, 8, 0]},
        "felix_env": {"HEALTHENABLED": "true"},
        "conntrack": {"count": 1200, "max": 262144, "buckets": 262144, "ratio": 0.0046,
                      "stats": {"drop": 0, "early_drop": 0, "insert_failed": 0, "invalid": 3}},
        "vxlan": {"vxlan.calico": {"features": {"tx-checksum-ip-generic": OFF, "tx-checksum-ipv4": FIXED,
                                                "tx-checksum-ipv6": FIXED, "tx-scatter-gather": ON},
                                   "error": None, "mtu": 1450, "parent": "eth0", "parent_driver": "virtio_net",
                                   "parent_mtu": 1500}},
        "felix_health": {"host": "localhost", "port": 9099, "enabled": True, "probed": True,
                         "readiness": {"status": 200, "ok": True, "components": READY_TABLE, "error": None},
                         "liveness": {"status": 200, "ok": True, "components": READY_TABLE, "error": None}},
        "felix_programming": {"backend": "iptables-nft", "checked": True, "reason": None, "workloads": 1,
                              "workloads_missing_chains": [], "workloads_missing_count": 0,
                              "sets_wanted": ["cali40all-vxlan-net"], "sets_missing": [], "ipsets": 6},
        "bpf": {"bpffs": True, "bpffs_mounts": ["/sys/fs/bpf"], "cgroup2": ["/sys/fs/cgroup"], "btf": True,
                "kernel_supported": True, "maps": 0, "map_examples": []},
        "wireguard": {"module_loaded": True, "devices": {}},
        "mtu_file": {"path": "/var/lib/calico/mtu", "value": 1450, "raw": "1450", "exists": True},
        "overlay_firewall": {"checked": False, "reason": "no host firewall in front of the overlay",
                             "flows": {"vxlan": {"device": "vxlan.calico", "port": 4789, "peers": ["192.0.2.12"],
                                                 "peer_count": 1, "blocking": {}}}, "host_firewall": []},
        "errors": {},
    }


def vxlan_fact(**changes):
    snap = iptext.snapshot(VXLAN_ADDR, VXLAN_ROUTES)
    fact = facts.make_fact(snap, "node1", bird={"socket": "/var/run/calico/bird.ctl", "available": False,
                                                "error": "No such file or directory", "peers": []})
    fact["dataplane"] = healthy_dataplane()
    for key, value in changes.items():
        fact["dataplane"][key] = value
    return fact


def ids(found, minimum="info"):
    rank = _catalogue.SEVERITY_RANK
    return [(f["id"], f["severity"]) for f in found if rank[f["severity"]] <= rank[minimum]]


def test_a_healthy_node_gives_nothing():
    fact = vxlan_fact()
    assert fdp.dataplane_findings(fact) == []
    assert _findings.node_findings(fact) == []
    before = copy.deepcopy(fact)
    fdp.dataplane_findings(fact)
    assert fact == before


def test_a_fact_without_a_dataplane_part_gives_nothing():
    fact = vxlan_fact()
    del fact["dataplane"]
    assert fdp.dataplane_findings(fact) == []


def test_every_id_is_in_the_catalogue():
    assert {"FW001", "OFF001", "CT001", "FLX001", "FLX002", "BPF001", "WG001", "MTU002"} <= set(_catalogue.CATALOGUE)


# --- FW001 ----------------------------------------------------------------------------------------

def drop(peer, table="filter", chain="input", certain=True, zone=None):
    record = {"family": "inet", "table": table, "chain": chain, "base_chain": chain, "hook": "input", "handle": 7,
              "rule": f"ip saddr {peer} udp dport 4789 drop", "certain": certain,
              "packets": [f"VXLAN from {peer} to port 4789"]}
    if zone is not None:
        record["firewalld_zone"] = zone
    return record


def walked(blocking, flow="vxlan", port=4789):
    return {"checked": True, "reason": None, "host_firewall": [{"table": "filter"}],
            "flows": {flow: {"device": "vxlan.calico", "port": port, "peers": ["192.0.2.12", "192.0.2.13"],
                             "peer_count": 2, "blocking": blocking}}}


def test_fw001_names_the_dropping_rule_and_the_single_peer():
    [f] = fdp.rule_fw001(vxlan_fact(overlay_firewall=walked({"192.0.2.12": [drop("192.0.2.12")]})), "node1")
    assert (f["id"], f["severity"], f["peer"]) == ("FW001", "critical", "192.0.2.12")
    assert "VXLAN (UDP 4789)" in f["summary"] and "whatever BGP says" in f["summary"]
    assert f["evidence"]["drops"][0]["rule"] == "ip saddr 192.0.2.12 udp dport 4789 drop"
    assert "repair_overlay_firewall=true" in f["remedy"] and "calico_firewall flows=[vxlan]" in f["remedy"]


def test_fw001_uncertain_drops_are_a_warning_and_several_peers_no_peer():
    walk = walked({p: [drop(p, certain=False)] for p in ("192.0.2.13", "192.0.2.12")}, flow="ipip", port=None)
    [f] = fdp.rule_fw001(vxlan_fact(overlay_firewall=walk), "node1")
    assert (f["severity"], f["peer"], f["evidence"]["peers_blocked"]) == (
        "warning", None, ["192.0.2.12", "192.0.2.13"])
    assert "IPIP (IP protocol 4)" in f["summary"]


def test_fw001_firewalld_gets_firewall_cmd_not_the_repair():
    walk = walked({"192.0.2.12": [drop("192.0.2.12", table="firewalld", chain="filter_IN_public", zone="public")]})
    [f] = fdp.rule_fw001(vxlan_fact(overlay_firewall=walk), "node1")
    assert "firewalld zone public" in f["summary"]
    assert f["evidence"]["firewalld_commands"] == [
        "firewall-cmd --permanent --zone=public --add-rich-rule='rule family=\"ipv4\" source address=\"192.0.2.12\" "
        "port port=\"4789\" protocol=\"udp\" accept'", "firewall-cmd --reload"]
    assert "firewall-cmd" in f["remedy"] and "repair_overlay_firewall" not in f["remedy"]


def test_fw001_not_checked_gives_nothing():
    assert fdp.rule_fw001(vxlan_fact(overlay_firewall=dict(walked({}), checked=False)), "node1") == []


# --- OFF001 ---------------------------------------------------------------------------------------

def offload(on=True, kernel=(6, 8, 0), driver="virtio_net", override=None):
    fact = vxlan_fact()
    dataplane = fact["dataplane"]
    dataplane["vxlan"]["vxlan.calico"]["features"]["tx-checksum-ip-generic"] = ON if on else OFF
    dataplane["vxlan"]["vxlan.calico"]["parent_driver"] = driver
    dataplane["kernel"] = {"release": ".".join(map(str, kernel)), "version": list(kernel)}
    if override:
        dataplane["felix_env"]["FEATUREDETECTOVERRIDE"] = override
    return fdp.rule_off001(fact, "node1")


@pytest.mark.parametrize(("kwargs", "severity", "why"), [
    ({}, "info", None),
    ({"on": False}, None, None),
    ({"kernel": (6, 12, 0)}, "warning", "calico#11435"),
    ({"kernel": (5, 4, 0)}, "warning", "ChecksumOffloadBroken=false is set"),
    ({"kernel": (5, 8, 0)}, "info", None),
    ({"driver": "vmxnet3"}, "warning", "vmxnet3 NIC"),
    ({"override": "ChecksumOffloadBroken=true"}, "warning", "Felix has not applied it"),
    ({"on": False, "driver": "vmxnet3"}, None, None),
])
def test_off001(kwargs, severity, why):
    found = offload(**kwargs)
    assert [f["severity"] for f in found] == ([severity] if severity else [])
    if found:
        f = found[0]
        assert "tx-checksum-ip-generic: on" in f["evidence"]["ethtool_k"]
        assert "ChecksumOffloadBroken=true" in f["remedy"] and "ethtool -K vxlan.calico" in f["remedy"]
        if why:
            assert why in f["summary"] and "TCP stalls" in f["summary"]


# --- CT001 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "maximum", "drops", "severity"), [
    (1200, 262144, 0, None), (182, 200, 0, "warning"), (200, 200, 0, "critical"), (100, 200, 7, "info"),
    (100, 200, 0, None)])
def test_ct001(count, maximum, drops, severity):
    ct = {"count": count, "max": maximum, "buckets": 1024, "ratio": count / maximum,
          "stats": {"drop": drops, "early_drop": 0, "insert_failed": 2}}
    found = fdp.rule_ct001(vxlan_fact(conntrack=ct), "node1")
    assert [f["severity"] for f in found] == ([severity] if severity else [])
    if found:
        assert found[0]["evidence"]["nf_conntrack_max"] == maximum
        assert "nf_conntrack_max=262144" in found[0]["remedy"]
    assert fdp.rule_ct001(vxlan_fact(conntrack=None), "node1") == []


# --- FLX001 ---------------------------------------------------------------------------------------

def health(ready=(200, True, None), live=(200, True, None), enabled=True, components=None):
    def answer(status, ok, error):
        return {"status": status, "ok": ok, "error": error, "components": components or READY_TABLE}
    return {"host": "localhost", "port": 9099, "enabled": enabled, "probed": True, "readiness": answer(*ready),
            "liveness": answer(*live)}


NOT_READY = [{"component": "InternalDataplaneMainLoop", "timeout": "1m30s", "liveness": "reporting live",
              "readiness": "reporting non-ready", "detail": ""},
             {"component": "felix-startup", "timeout": "0s", "liveness": "reporting live", "readiness": "-",
              "detail": ""}]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, []),
    ({"ready": (503, False, None), "components": NOT_READY}, [("FLX001", "warning")]),
    ({"live": (503, False, None), "ready": (503, False, None)}, [("FLX001", "critical")]),
    ({"ready": (None, None, "connection refused"), "live": (None, None, "connection refused")},
     [("FLX001", "warning")]),
    ({"ready": (None, None, "connection refused"), "live": (None, None, "connection refused"), "enabled": None},
     [("FLX001", "info")]),
    ({"ready": (None, None, "connection refused"), "live": (None, None, "connection refused"), "enabled": False}, []),
    ({"ready": (None, None, "timed out"), "live": (None, None, "timed out"), "enabled": None},
     [("FLX001", "warning")]),
])
def test_flx001(kwargs, expected):
    found = fdp.rule_flx001(vxlan_fact(felix_health=health(**kwargs)), "node1")
    assert ids(found) == expected
    if kwargs.get("components") == NOT_READY:
        assert "InternalDataplaneMainLoop" in found[0]["summary"] and "felix-startup" not in found[0]["summary"]
    assert fdp.rule_flx001(vxlan_fact(felix_health={"probed": False}), "node1") == []


# --- FLX002 ---------------------------------------------------------------------------------------

def test_flx002_workloads_without_chains_and_missing_sets():
    prog = dict(healthy_dataplane()["felix_programming"], workloads=3, workloads_missing_count=2,
                workloads_missing_chains=[{"interface": "cali1", "ip": "198.18.1.3", "missing": ["cali-tw-cali1"]},
                                          {"interface": "cali2", "ip": "198.18.1.4",
                                           "missing": ["cali-tw-cali2", "cali-fw-cali2"]}],
                sets_missing=["cali40all-vxlan-net"])
    found = fdp.rule_flx002(vxlan_fact(felix_programming=prog), "node1")
    assert ids(found) == [("FLX002", "warning"), ("FLX002", "warning")]
    assert "2 of 3 workloads" in found[0]["summary"] and "cali1, cali2" in found[0]["summary"]
    assert "cali40all-vxlan-net" in found[1]["summary"]
    unchecked = {"backend": None, "checked": False, "reason": "no Felix chains in nf_tables"}
    assert fdp.rule_flx002(vxlan_fact(felix_programming=unchecked), "node1") == []


# --- BPF001 ---------------------------------------------------------------------------------------

def bpf_fact(env=None, **bpf):
    fact = vxlan_fact()
    fact["dataplane"]["felix_env"].update(env or {})
    fact["dataplane"]["bpf"].update(bpf)
    return fact


@pytest.mark.parametrize(("env", "bpf", "severity", "first"), [
    ({}, {}, None, None),
    ({}, {"maps": 12, "bpffs": False}, "warning", "no BPF filesystem"),
    ({"BPFENABLED": "true"}, {"maps": 40}, None, None),
    ({"BPFENABLED": "true"}, {"maps": 0, "kube_proxy_running": True, "kube_proxy_rules": True}, "warning",
     "kube-proxy still serves Services"),
    ({"BPFENABLED": "true"}, {"maps": 0, "kube_proxy_running": False, "kube_proxy_rules": False}, "critical",
     "Services have no data plane"),
    ({"BPFENABLED": "true"}, {"maps": 0, "kernel_supported": False, "kube_proxy_running": True}, "critical",
     "older than Felix's minimum"),
    ({"BPFENABLED": "true"}, {"maps": 30, "btf": False, "cgroup2": []}, "warning", "BTF"),
])
def test_bpf001(env, bpf, severity, first):
    found = fdp.rule_bpf001(bpf_fact(env, **bpf), "node1")
    assert [f["severity"] for f in found] == ([severity] if severity else [])
    if first:
        assert first in " ".join(found[0]["evidence"]["problems"])


# --- WG001 ----------------------------------------------------------------------------------------

def wg_fact(devices, env=None, module_loaded=True, mode_links=None):
    fact = vxlan_fact(wireguard={"module_loaded": module_loaded, "devices": devices})
    fact["dataplane"]["felix_env"].update(env or {})
    return fact


def wg_device(mtu=1440, peers=(), now=1700000300):
    return {"mtu": mtu, "up": True, "error": None, "read_at": now,
            "dump": {"public_key": "PUB=", "listen_port": 51820, "fwmark": "0x100000", "peers": list(peers)}}


def peer(ip, handshake, tx=1000, rx=1000, key=None):
    return {"public_key": key or f"KEY{ip}=", "preshared_key": False, "endpoint": f"{ip}:51820", "endpoint_ip": ip,
            "allowed_ips": [], "latest_handshake": handshake, "rx": rx, "tx": tx, "keepalive": None}


def test_wg001_enabled_without_its_device():
    [f] = fdp.rule_wg001(wg_fact({}, env={"WIREGUARDENABLED": "true"}, module_loaded=False), "node1")
    assert (f["severity"], "no wireguard module" in f["summary"]) == ("warning", True)


def test_wg001_handshakes_and_mtu():
    healthy = wg_device(peers=[peer("192.0.2.12", 1700000250)])
    assert fdp.rule_wg001(wg_fact({"wireguard.cali": healthy}), "node1") == []
    never = wg_device(peers=[peer("192.0.2.12", 0, tx=1480, rx=0), peer("192.0.2.13", 1700000250)])
    [f] = fdp.rule_wg001(wg_fact({"wireguard.cali": never}), "node1")
    assert (f["severity"], f["peer"]) == ("warning", "192.0.2.12") and "never completed a handshake" in f["summary"]
    idle = wg_device(peers=[peer("192.0.2.12", 1700000000)])
    assert ids(fdp.rule_wg001(wg_fact({"wireguard.cali": idle}), "node1")) == [("WG001", "info")]
    big = fdp.rule_wg001(wg_fact({"wireguard.cali": wg_device(mtu=1500)}), "node1")
    assert ids(big) == [("WG001", "warning")] and big[0]["evidence"]["expected"] == 1440
    small = fdp.rule_wg001(wg_fact({"wireguard.cali": wg_device(mtu=1380)}), "node1")
    assert ids(small) == [("WG001", "info")] and "calico#4606" in small[0]["summary"]


def test_wireguard_keys_across_the_fleet():
    def node(ip, own, peers):
        snap = iptext.snapshot(VXLAN_ADDR.replace("192.0.2.11", ip), VXLAN_ROUTES)
        fact = facts.make_fact(snap, "n" + ip[-2:], bird={"available": False, "peers": []})
        fact["dataplane"] = healthy_dataplane()
        fact["dataplane"]["wireguard"]["devices"]["wireguard.cali"] = dict(
            wg_device(), dump={"public_key": own, "listen_port": 51820, "fwmark": None, "peers": peers})
        return fact
    fleet = {"node1": node("192.0.2.11", "K1=", [peer("192.0.2.12", 1, key="K2=")]),
             "node2": node("192.0.2.12", "K2=", [peer("192.0.2.11", 1, key="OLD=")])}
    found = fdp.wireguard_fleet_findings(fleet, {"node1": "K1=", "node2": "K2-REGISTERED="})
    assert sorted(((f["id"], f["severity"], f["host"], f["peer"]) for f in found), key=str) == [
        ("WG001", "critical", "node2", "node1"), ("WG001", "critical", "node2", None)]
    assert fdp.wireguard_fleet_findings({"node1": fleet["node1"], "node3": None}) == []


# --- MTU002 ---------------------------------------------------------------------------------------

def test_mtu002_file_above_the_tunnel_and_the_wrong_interface():
    fact = vxlan_fact(mtu_file={"path": "/var/lib/calico/mtu", "value": 8950, "raw": "8950", "exists": True})
    [f] = fdp.rule_mtu002(fact, "node1")
    assert (f["severity"], f["evidence"]["tunnels"]) == ("warning", {"vxlan.calico": 1450})
    assert "above vxlan.calico's MTU 1450" in f["summary"]
    fact = vxlan_fact(mtu_file={"path": "/var/lib/calico/mtu", "value": 1400, "raw": "1400", "exists": True})
    assert ids(fdp.rule_mtu002(fact, "node1")) == [("MTU002", "info")]
    # the pattern selects a jumbo interface instead of eth0: the next Felix start writes too much
    fact = vxlan_fact()
    fact["links"] = [dict(lk, name="bond0") if lk["name"] == "eth0" else lk for lk in fact["links"]]
    fact["links"].append({"index": 9, "name": "ens5", "mtu": 9001, "operstate": "UP", "addresses": []})
    [f] = fdp.rule_mtu002(fact, "node1")
    assert f["severity"] == "warning" and "mtuIfacePattern" in f["summary"]
    assert '"mtuIfacePattern":"^bond0$"' in f["remedy"]
    assert fdp.rule_mtu002(vxlan_fact(mtu_file={"exists": False, "value": None}), "node1") == []


# --- the probe matrix ---------------------------------------------------------------------------------

def test_probe_agreement():
    fw = _catalogue.finding("FW001", "critical", "node2", "drops", {}, "fix", peer="node1")
    probes = {"node1": {"node2": {"ok": False, "loss": 1.0}, "node3": {"ok": False, "loss": 1.0}},
              "node2": {"node1": {"ok": False, "loss": 1.0}}, "node3": {"node1": {"ok": False, "loss": 1.0}}}
    findings, added = fdp.probe_agreement([fw], probes)
    assert findings[0]["evidence"]["probes"] == {"from_peer": {"ok": False, "loss": 1.0},
                                                 "to_peer": {"ok": False, "loss": 1.0}}
    assert [(f["id"], f["severity"], f["host"], f["peer"]) for f in added] == [("FW001", "info", "node3", "node1")]
    passing = {"node1": {"node2": {"ok": True}}, "node2": {"node1": {"ok": True}}}
    findings, added = fdp.probe_agreement([copy.deepcopy(fw)], passing)
    assert "probes_disagree" in findings[0]["evidence"] and added == []
    assert fdp.probe_agreement([fw], None) == ([fw], [])


def test_a_broken_dataplane_part_never_raises():
    fact = vxlan_fact()
    fact["dataplane"] = {"vxlan": {"vxlan.calico": {"features": None, "error": "EPERM"}},
                         "felix_health": {"probed": True}, "conntrack": {"count": None, "max": 0}}
    assert fdp.dataplane_findings(fact) == []
    assert dp.parse_bool(None) is None
