"""calico_firewall (flows planned one after the other, firewalld's commands) and calico_vxlan_offload (which bits
change, what check mode expects) - their pure parts; the lab test runs both for real."""

import json
import os

from ansible_collections.netdoctor.calico.plugins.module_utils import _firewall as fw
from ansible_collections.netdoctor.calico.plugins.modules import calico_firewall, calico_vxlan_offload

HERE = os.path.dirname(os.path.dirname(__file__))
with open(os.path.join(HERE, "module_utils", "fixtures", "dataplane", "recorded.json"), encoding="utf-8") as _f:
    RULESET = json.load(_f)["nftables"]["nft_json"]


def test_flows_are_planned_one_after_the_other():
    rs = fw.parse(RULESET)
    peers, local = fw.check_params(["192.0.2.12", "192.0.2.13"], 1, ["192.0.2.11"])
    specs = [fw.flow("vxlan"), fw.flow("wireguard")]
    blocking, changes, actions, after = calico_firewall.plan_flows(rs, specs, peers, local, "present")
    assert {r["flow"] for r in blocking} == {"vxlan", "wireguard"}
    # only the host firewall's chain changes; firewalld's table is judged, never changed
    assert {(c["table"], c["chain"]) for c in changes} == {("filter", "input")}
    # the host firewall drops only VXLAN (from .12); WireGuard only firewalld drops
    assert actions == [
        'insert rule inet filter input ip saddr { 192.0.2.12, 192.0.2.13 } udp dport 4789 accept comment '
        '"netdoctor.calico: VXLAN with Calico peers"']
    assert fw.render_rule(after["chains"][("inet", "filter", "input")]["rules"][0]) == actions[0].split(" input ", 1)[1]
    commands = calico_firewall.firewalld_commands(blocking, specs, peers)
    assert commands[-1] == "firewall-cmd --reload" and len(commands) == 5
    assert all("--zone=public" in c for c in commands[:-1])


def test_absent_removes_only_the_given_flows():
    rs = fw.parse(RULESET)
    peers, local = fw.check_params(["192.0.2.12"], 1, ["192.0.2.11"])
    _b, changes, _a, after = calico_firewall.plan_flows(rs, [fw.flow("vxlan"), fw.flow("bgp")], peers, local,
                                                        "present")
    for chain in after["chains"].values():
        for i, rule in enumerate(chain["rules"]):
            rule["handle"] = rule["handle"] or 900 + i
    _b, changes, actions, gone = calico_firewall.plan_flows(after, [fw.flow("vxlan")], [], [], "absent")
    assert actions and all(a.startswith("delete rule inet filter input handle 9") for a in actions)
    left = {r["comment"] for c in gone["chains"].values() for r in c["rules"] if fw.is_ours(r)}
    assert left == set()   # BGP passes here (firewalld allows 179): only VXLAN had rules


def bits(**on):
    names = ("tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "tx-tcp-segmentation",
             "tx-tcp6-segmentation", "tx-scatter-gather")
    return {n: {"on": on.get(n.replace("-", "_"), False), "fixed": n in ("tx-checksum-ipv4", "tx-checksum-ipv6"),
                "requested": None} for n in names}


def test_offload_bits_to_change_and_what_check_mode_expects():
    on = bits(tx_checksum_ip_generic=True, tx_tcp_segmentation=True, tx_scatter_gather=True)
    wanted = calico_vxlan_offload.wanted_bits(on, "off")
    assert wanted == {"tx-checksum-ip-generic": False}
    after = calico_vxlan_offload.expected(on, wanted)
    assert after["tx-checksum-ip-generic"]["on"] is False
    # the kernel drops TSO without a checksum offload and keeps it requested
    assert after["tx-tcp-segmentation"] == {"on": False, "fixed": False, "requested": True}
    assert after["tx-scatter-gather"]["on"] is True
    assert calico_vxlan_offload.wanted_bits(after, "off") == {}
    assert calico_vxlan_offload.wanted_bits(after, "on") == {"tx-checksum-ip-generic": True}
    assert "ChecksumOffloadBroken=true" in calico_vxlan_offload.REMEDY
