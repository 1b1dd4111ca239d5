"""The catalogue and the node-local rules (plugins/module_utils/_findings.py)."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue
from ansible_collections.netdoctor.calico.plugins.module_utils import _findings as fd
from ansible_collections.netdoctor.calico.tests.unit import iptext
from ansible_collections.netdoctor.calico.tests.unit.fixtures import facts, seeds
from ansible_collections.netdoctor.calico.tests.unit.fixtures.nodes import VXLAN_ADDR, VXLAN_ROUTES

NODE4_PEERS = ["192.168.3.110", "192.168.0.111", "192.168.3.112", "192.168.3.114"]


def _node4(fixed=True, **kwargs):
    return facts.make_fact(seeds.node4(fixed), "az3-k8s-14", calico_version="3.16", peers=NODE4_PEERS, **kwargs)


def _ids(findings, minimum="info"):
    rank = _catalogue.SEVERITY_RANK
    return [(f["id"], f["severity"]) for f in findings if rank[f["severity"]] <= rank[minimum]]


# --- healthy nodes give nothing --------------------------------------------------------------

@pytest.mark.parametrize("make", [
    _node4,
    lambda: facts.make_fact(seeds.node3(stale=False), "az3-k8s-13", calico_version="3.16", peers=["192.168.3.113"]),
    lambda: facts.make_fact(seeds.seed004("k8s-w1"), "k8s-w1", calico_version="3.28", peers=["192.168.50.11"]),
    lambda: facts.make_fact(iptext.snapshot(VXLAN_ADDR, VXLAN_ROUTES), "node1",
                            bird={"socket": "/var/run/calico/bird.ctl", "available": False,
                                  "error": "No such file or directory", "peers": []}),
])
def test_healthy_node_has_no_findings(make):
    assert fd.node_findings(make()) == []


# --- the seeds -------------------------------------------------------------------------------

def test_seed001_case1_stale_route():
    fact = facts.make_fact(seeds.node3(stale=True), "az3-k8s-13", calico_version="3.16", peers=["192.168.3.113"])
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"], found["host"]) == ("RT001", "warning", "az3-k8s-13")
    assert found["summary"] == ("1 route(s) on az3-k8s-13 point back into this node: "
                                "10.122.17.64/26 via 10.122.127.128 dev tunl0")
    assert found["evidence"]["routes"][0]["route"] == seeds.NODE3_STALE_ROUTE
    assert "`ip route del 10.122.17.64/26 via 10.122.127.128 dev tunl0`" in found["remedy"]


def test_loose_interface_setting_wins_over_strict_all():
    sysctls = facts.healthy_sysctls(seeds.node4(False))
    sysctls["net.ipv4.conf.all.rp_filter"] = 1  # the kernel uses max(all, interface) = 2 (loose)
    assert fd.node_findings(_node4(False, sysctls=sysctls)) == []


def test_seed001_case2_strict_rp_filter_on_two_nics():
    sysctls = facts.healthy_sysctls(seeds.node4(False))
    # CentOS 7's defaults: all=1 and default=1, which every interface inherits when created.
    sysctls["net.ipv4.conf.all.rp_filter"] = sysctls["net.ipv4.conf.default.rp_filter"] = 1
    for values in sysctls["interfaces"].values():
        values["rp_filter"] = 1
    findings = fd.node_findings(_node4(False, sysctls=sysctls))
    assert _ids(findings) == [("SYS001", "warning")]
    (found,) = findings
    assert sorted(found["evidence"]["strict_interfaces"]) == ["eth0", "eth1"]
    assert found["evidence"]["host_interfaces"] == {"eth1": ["192.168.3.113/24"], "eth0": ["192.168.0.113/24"]}
    assert "net.ipv4.conf.all.rp_filter=2" in found["remedy"]


def test_strict_rp_filter_on_a_single_nic_is_fine():
    sysctls = facts.healthy_sysctls(seeds.seed004("k8s-w1"))
    sysctls["net.ipv4.conf.all.rp_filter"] = 1  # max(all, interface) = 1: strict everywhere
    fact = facts.make_fact(seeds.seed004("k8s-w1"), "k8s-w1", sysctls=sysctls)
    assert fd.node_findings(fact) == []


def test_seed004_added_nic_ad002():
    snap = seeds.seed004("k8s-w2")
    bird = {"available": True, "router_id": "192.168.50.13", "socket": "/var/run/calico/bird.ctl",
            "peers": [{"name": "Mesh_192_168_50_11", "address": "192.168.50.11", "state": "up", "info": "Established"}]}
    findings = fd.node_findings(facts.make_fact(snap, "k8s-w2", calico_version="3.28", bird=bird))
    assert _ids(findings) == [("AD002", "critical")]
    found = findings[0]
    assert found["summary"] == ("first-found on k8s-w2 now picks 10.20.30.13/24 (ens19), but the BIRD router id is "
                                "192.168.50.13: the node IP changes within 60 s (IP=autodetect re-detects)")
    assert found["evidence"]["log"] == "Using autodetected IPv4 address on interface ens19: 10.20.30.13/24"
    assert found["evidence"]["candidates"][0] == ("ens19 10.20.30.13/24: taken: first global unicast IPv4 address "
                                                  "in walk order")
    assert "IP_AUTODETECTION_METHOD=cidr=192.168.50.0/24" in found["remedy"]
    assert "{'cidrs': ['192.168.50.0/24']}" in found["remedy"]
    # With IP unset calico-node keeps its stored address until the Node is re-created.
    quiet = fd.node_findings(facts.make_fact(snap, "k8s-w2", calico_version="3.28", bird=bird, env={"IP": ""}))
    assert _ids(quiet) == [("AD002", "warning")]
    assert quiet[0]["summary"].endswith("when its Node is re-created (IP is empty: calico-node keeps the stored "
                                        "address until then)")
    stopped = fd.node_findings(facts.make_fact(snap, "k8s-w2", bird=bird, identity={"hosts_resolves_hostname": True}))
    assert _ids(stopped) == [("AD002", "warning")]
    assert "at the next detection" in stopped[0]["summary"]
    pinned = fd.node_findings(facts.make_fact(snap, "k8s-w2", bird=bird, env={"IP": "192.168.50.13"}))
    assert pinned == []


VXLAN_ADDED_NIC = """\
9: ens19: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN
    link/ether 52:54:00:aa:02:11 brd ff:ff:ff:ff:ff:ff
    inet 203.0.113.11/24 scope global ens19
"""
NO_BIRD = {"socket": "/var/run/calico/bird.ctl", "available": False, "error": "No such file or directory", "peers": []}


def test_seed004_in_vxlan_mode_the_vtep_local_address_is_the_registered_ip():
    # No BIRD in VXLAN mode: Felix gives vxlan.calico the node's registered IP as its local address.
    snap = iptext.snapshot(VXLAN_ADDR + VXLAN_ADDED_NIC, VXLAN_ROUTES)
    findings = fd.node_findings(facts.make_fact(snap, "node1", bird=NO_BIRD, intended="192.0.2.11"))
    assert _ids(findings) == [("AD002", "critical")]
    assert findings[0]["summary"] == ("first-found on node1 now picks 203.0.113.11/24 (ens19), but the VXLAN tunnel "
                                      "local address is 192.0.2.11: the node IP changes within 60 s (IP=autodetect "
                                      "re-detects)")
    assert findings[0]["evidence"]["registered_source"] == "vxlan_local"
    assert "IP_AUTODETECTION_METHOD=cidr=192.0.2.0/24" in findings[0]["remedy"]
    anchored = facts.make_fact(snap, "node1", bird=NO_BIRD, method="interface=^eth0$", intended="192.0.2.11")
    assert fd.node_findings(anchored) == []


def test_seed004_after_the_flip_ad001_against_the_intended_ip():
    fact = facts.make_fact(seeds.seed004("k8s-w2"), "k8s-w2", calico_version="3.28", intended="192.168.50.13")
    assert fact["bird"]["router_id"] == "10.20.30.13"  # calico-node already re-registered
    findings = fd.node_findings(fact)
    assert _ids(findings) == [("AD001", "critical")]
    assert findings[0]["summary"] == ("first-found on k8s-w2 picks 10.20.30.13/24 (ens19), not its intended IP "
                                      "192.168.50.13")


def test_seed002_old_version_picks_the_docker_user_bridge():
    fact = facts.make_fact(seeds.seed002(), "node1", calico_version="3.24", intended="10.0.0.21")
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["evidence"]["predicted"]) == ("AD001", "172.18.0.1/16")
    assert "IP_AUTODETECTION_METHOD=cidr=10.0.0.0/24" in found["remedy"]
    assert fd.node_findings(facts.make_fact(seeds.seed002(), "node1", calico_version="3.25",
                                            intended="10.0.0.21")) == []


def test_invalid_method_and_failed_replay_are_critical():
    fact = _node4(method="eth1")  # projectcalico/calico#2965: the prefix is missing
    fact["bird"]["router_id"] = "192.168.3.113"
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"]) == ("AD001", "critical")
    assert found["summary"] == ("calico-node on az3-k8s-14 rejects IP_AUTODETECTION_METHOD='eth1': "
                                "Invalid IP autodetection method: eth1")
    assert "IP_AUTODETECTION_METHOD=cidr=192.168.3.0/24" in found["remedy"]
    fact = _node4(method="interface=ib0")
    fact["bird"]["router_id"] = "192.168.3.113"
    (found,) = fd.node_findings(fact)
    assert found["summary"] == ("interface=ib0 finds no IPv4 address on az3-k8s-14: no valid host interfaces found")


# --- NM001 -----------------------------------------------------------------------------------

def _nm(fact, **changes):
    fact["network_manager"].update(changes)
    return fd.node_findings(fact)


def test_nm001_running_and_managing_present_devices():
    fact = _node4()
    findings = _nm(fact, managed_calico_devices=["cali*", "vxlan.calico"], managed_examples={"cali*": "cali0"},
                   calico_devices={"cali*": False, "vxlan.calico": False},
                   history=[{"file": "/etc/NetworkManager/conf.d/99-unmanaged-devices.conf", "op": "=",
                             "value": ["interface-name:eth2"]}])
    (found,) = findings
    assert (found["id"], found["severity"]) == ("NM001", "critical")
    assert found["evidence"]["present_links"] == seeds._CALI_NODE4
    assert found["evidence"]["last_replacing_file"] == "/etc/NetworkManager/conf.d/99-unmanaged-devices.conf"
    assert ("unmanaged-devices+=interface-name:cali*;interface-name:tunl*;interface-name:vxlan.calico;"
            "interface-name:vxlan-v6.calico;interface-name:wireguard.cali;interface-name:wg-v6.cali") in found["remedy"]
    assert "nmcli general reload conf" in found["remedy"]
    assert "99-unmanaged-devices.conf sets `unmanaged-devices=`" in found["remedy"]


def test_nm001_latent_live_and_not_running():
    assert _ids(_nm(_node4(), managed_calico_devices=["wireguard.cali"])) == [("NM001", "warning")]
    live = _node4()
    live["network_manager"]["devices"][5]["state"] = "connecting (getting IP configuration)"
    assert _ids(fd.node_findings(live)) == [("NM001", "critical")]
    assert _ids(_nm(_node4(), running=False, managed_calico_devices=["cali*"], devices=None)) == [("NM001", "info")]
    assert _nm(_node4(), installed=False, managed_calico_devices=["cali*"]) == []
    # Whether a pattern is managed hinges on a MAC/driver spec: the live states decide.
    assert _nm(_node4(), managed_calico_devices=["cali*"], undetermined=["cali*"]) == []


def test_nm001_networkd():
    fact = _node4()
    fact["networkd"]["matching_calico"] = [{"file": "/etc/systemd/network/99-default.network", "match": "Name=*",
                                            "devices": ["cali19f6ea143e3"]}]
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"]) == ("NM001", "warning")
    assert "99-default.network" in found["summary"]


def test_nm001_networkd_protecting_and_uncertain_files():
    fact = _node4()
    fact["networkd"]["matching_calico"] = [
        # [Link] Unmanaged=yes is the fix: never a finding.
        {"file": "/etc/systemd/network/10-calico.network", "match": "Name=cali*", "devices": ["cali*"],
         "possible": [], "unmanaged": True},
        # Matches only on a property the name does not tell (Type/Driver): worded as uncertain.
        {"file": "/etc/systemd/network/50-tun.network", "match": "Type=ipip", "devices": [],
         "possible": ["tunl0"], "unmanaged": False},
    ]
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"]) == ("NM001", "info")
    assert "may match" in found["summary"] and "50-tun.network" in found["summary"]
    assert "10-calico.network" not in found["summary"]


# --- SYS001 ----------------------------------------------------------------------------------

def test_ip_forward_off():
    fact = _node4()
    fact["sysctls"]["net.ipv4.ip_forward"] = 0
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"]) == ("SYS001", "critical")
    assert "name=net.ipv4.ip_forward value=1" in found["remedy"]


def test_proxy_arp_off_on_a_workload_interface():
    fact = _node4()
    fact["sysctls"]["interfaces"]["cali55a5ff1a4aa"]["proxy_arp"] = 0
    fact["sysctls"]["interfaces"]["cali-gone"] = {"proxy_arp": 0}  # not a link any more: ignored
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"]) == ("SYS001", "critical")
    assert found["evidence"] == {"proxy_arp": {"cali55a5ff1a4aa": 0}, "count": 1}
    assert "`sysctl -w net.ipv4.conf.cali55a5ff1a4aa.proxy_arp=1`" in found["remedy"]


def test_tunnel_mtu_above_nic_mtu_minus_overhead():
    fact = _node4()
    fact["calico"]["tunnel"]["mtu"] = 1500
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"]) == ("SYS001", "warning")
    assert found["evidence"] == {"tunnel": fact["calico"]["tunnel"], "nic": "eth1", "nic_mtu": 1500, "overhead": 20}
    assert '"ipipMTU":1480' in found["remedy"]
    vxlan = facts.make_fact(iptext.snapshot(VXLAN_ADDR.replace("mtu 1450", "mtu 1460"), VXLAN_ROUTES), "node1",
                            bird={"available": False})
    (found,) = fd.node_findings(vxlan)
    assert found["evidence"]["nic"] == "eth0" and found["evidence"]["overhead"] == 50


# --- HOST001 ---------------------------------------------------------------------------------

def test_hostname_not_resolvable():
    fact = _node4()
    fact["identity"]["hosts_resolves_hostname"] = False
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"]) == ("HOST001", "warning")
    assert "`192.168.3.113 az3-k8s-14`" in found["remedy"]


def test_node_names_disagree():
    fact = _node4()
    fact["identity"]["cni"]["nodename"] = "az3-k8s-14.example.com"
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"]) == ("HOST001", "critical")
    assert found["evidence"]["names"] == {"CNI config nodename": "az3-k8s-14.example.com",
                                          "/var/lib/calico/nodename": "az3-k8s-14",
                                          "calico-node NODENAME": "az3-k8s-14"}
    assert '"nodename": "az3-k8s-14" in /etc/cni/net.d/10-calico.conflist' in found["remedy"]


# --- BGP001 ----------------------------------------------------------------------------------

def test_bgp_peers_not_established():
    fact = _node4()
    fact["bird"]["peers"][1].update(state="start", info="Connect       Socket: Connection refused")
    (found,) = fd.node_findings(fact)
    assert (found["id"], found["severity"], found["peer"]) == ("BGP001", "warning", "192.168.0.111")
    assert found["summary"] == ("BGP session Mesh_192_168_0_111 from az3-k8s-14 to 192.168.0.111 is not Established "
                                "(start Connect       Socket: Connection refused)")
    for peer in fact["bird"]["peers"]:
        peer.update(state="start", info="Active")
    findings = fd.node_findings(fact)
    assert _ids(findings) == [("BGP001", "critical")] * 4
    assert findings[0]["summary"].endswith("no peer is Established, so calico-node is not Ready")


def test_bgp_down_names_the_firewall_rule_that_drops_it():
    fact = _node4()
    fact["bird"]["peers"][1].update(state="start", info="Active        Socket: Connection timed out")
    drop = {"family": "inet", "table": "filter", "chain": "input", "base_chain": "input", "hook": "input",
            "handle": 7, "rule": "ip saddr 192.168.0.111 tcp dport 179 drop", "certain": True,
            "packets": ["from 192.168.0.111 to port 179"]}
    fact["firewall"] = {"checked": True, "reason": None, "peers": ["192.168.0.111"],
                        "blocking": {"192.168.0.111": [drop]}}
    (found,) = fd.node_findings(fact)
    assert found["summary"].endswith("az3-k8s-14's firewall drops it")
    assert found["evidence"]["firewall"] == {"checked": True, "drops": [drop]}
    assert "inet filter input: `ip saddr 192.168.0.111 tcp dport 179 drop`" in found["remedy"]
    assert "repair_bgp_firewall=true" in found["remedy"]
    # Checked and nothing drops it here: the remedy points at the peer and the network.
    fact["firewall"]["blocking"] = {"192.168.0.111": []}
    (found,) = fd.node_findings(fact)
    assert found["evidence"]["firewall"] == {"checked": True, "drops": []}
    assert "this node's nftables ruleset lets it through" in found["remedy"]
    # Not checked (no nft): no firewall evidence at all.
    fact["firewall"] = {"checked": False, "reason": "nft not found", "peers": ["192.168.0.111"], "blocking": {}}
    (found,) = fd.node_findings(fact)
    assert "firewall" not in found["evidence"] and "ruleset lets it through" not in found["remedy"]


def test_bird_socket_unreadable_in_ipip_mode():
    fact = _node4()
    fact["bird"] = {"socket": "/var/run/calico/bird.ctl", "available": False, "error": "Connection refused"}
    # Nothing listens: BIRD is dead, the node's own critical finding (issue 12).
    assert _ids(fd.node_findings(fact)) == [("BIRD001", "critical")]
    # Unreadable for another reason (a timeout): only the info that the sessions were not checked.
    fact["bird"]["error"] = "TimeoutError: timed out"
    assert _ids(fd.node_findings(fact)) == [("BGP001", "info")]


# --- the catalogue and the helpers -----------------------------------------------------------

def test_finding_validates_id_and_severity():
    assert _catalogue.finding("RT001", "info", "n1", "s", {}, "r", peer="n2") == {
        "id": "RT001", "severity": "info", "host": "n1", "peer": "n2", "summary": "s", "evidence": {}, "remedy": "r"}
    with pytest.raises(ValueError, match="unknown finding id"):
        _catalogue.finding("XX999", "info", "n1", "s", {}, "r")
    with pytest.raises(ValueError, match="unknown severity"):
        _catalogue.finding("RT001", "error", "n1", "s", {}, "r")


def test_sort_and_worst():
    new = _catalogue.finding
    found = [new("SYS001", "info", "b", "", {}, ""), new("NM001", "critical", "b", "", {}, ""),
             new("AD001", "critical", "a", "", {}, ""), new("BGP001", "warning", "a", "", {}, "")]
    assert [(f["id"], f["host"]) for f in _catalogue.sort_findings(found)] == [
        ("AD001", "a"), ("NM001", "b"), ("BGP001", "a"), ("SYS001", "b")]
    assert _catalogue.worst_severity(found) == "critical"
    assert _catalogue.worst_severity(found[:1]) == "info" and _catalogue.worst_severity([]) is None


def test_catalogue_documents_every_id():
    for fid, entry in _catalogue.CATALOGUE.items():
        assert set(entry) == {"title", "seed", "scope", "fix"}, fid
        assert entry["title"] and entry["fix"] and entry["scope"] in ("node", "fleet", "both")
    for fid in ("NM001", "AD001", "AD002", "RT001", "RT002", "SRC001", "SYS001", "HOST001", "BGP001", "PATH001"):
        assert fid in _catalogue.CATALOGUE


def test_rules_do_not_mutate_the_fact():
    fact = _node4(False)
    fact["sysctls"]["net.ipv4.ip_forward"] = 0
    before = copy.deepcopy(fact)
    fd.node_findings(fact)
    assert fact == before
