"""_preflight_role (plugins/plugin_utils/_preflight_role.py): the preflight role's decisions over a
node's calico_node fact. The rp_filter step lowers exactly the NICs the audit's SYS001 rule flags:
both read the host NICs from _findings.host_interfaces."""

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _findings
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _preflight_role as pre


def link(index, name, *addresses, mtu=1500, family=4):
    return {"index": index, "name": name, "mtu": mtu, "up": True, "kind": None,
            "addresses": [{"family": family, "address": a.split("/")[0], "prefixlen": int(a.split("/")[1]),
                           "scope": "global", "flags": [], "label": name} for a in addresses]}


def fact(links, *, all_rp=0, rp=None, results=(), cni_mtu=None, hostname="node1", resolves=True, hosts=()):
    rp = rp or {}
    return {
        "hostname": hostname,
        "links": links,
        "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": all_rp,
                    "interfaces": {ln["name"]: {"rp_filter": rp.get(ln["name"], 0), "proxy_arp": 0}
                                   for ln in links if ln["name"] != "lo"}},
        "autodetection": {"method_in_use": "first-found", "results": list(results)},
        "identity": {"cni": {"mtu": cni_mtu} if cni_mtu else None, "hosts_resolves_hostname": resolves,
                     "hosts_addresses": list(hosts)},
    }


# A multi-homed node: two NICs, a docker bridge and a libvirt bridge with global addresses, a VLAN, a
# workload veth, Calico's tunnel and lo. Only eth0, eth1 and eth0.100 are host NICs.
LINKS = [link(1, "lo", "127.0.0.1/8"), link(2, "eth0", "192.0.2.11/24"), link(3, "eth1", "198.51.100.11/24"),
         link(4, "docker0", "172.17.0.1/16"), link(5, "virbr0", "192.168.122.1/24"),
         link(6, "eth0.100", "203.0.113.11/24"),
         link(7, "cali1234", "169.254.1.1/32"), link(8, "tunl0", "198.18.1.0/32", mtu=1480),
         link(9, "eth2", "fe80::1/64", family=6)]
STRICT = {"eth0": 1, "eth1": 1, "docker0": 1, "virbr0": 1, "eth0.100": 1, "cali1234": 1, "tunl0": 1}


def test_rp_filter_loose_lowers_exactly_what_the_audit_flags():
    node = fact(LINKS, rp=STRICT)
    plan = pre.rp_filter_plan(node, "loose")
    assert plan == {"nics": ["eth0", "eth1", "eth0.100"], "multihomed": True, "value": "2",
                    "changes": ["net.ipv4.conf.eth0.rp_filter", "net.ipv4.conf.eth1.rp_filter",
                                "net.ipv4.conf.eth0/100.rp_filter"]}
    flagged = _findings.rule_rp_filter(node, "node1")[0]["evidence"]["strict_interfaces"]
    assert sorted(flagged) == sorted(plan["nics"])
    # ... and once they are loose, the audit flags nothing and the step has nothing left to do
    fixed = fact(LINKS, rp={**STRICT, "eth0": 2, "eth1": 2, "eth0.100": 2})
    assert _findings.rule_rp_filter(fixed, "node1") == []
    assert pre.rp_filter_plan(fixed, "loose")["changes"] == []


@pytest.mark.parametrize(("all_rp", "rp", "mode", "changes"), [
    # conf.all strict: every NIC below loose must become 2 (max(all, nic)); loose ones are left alone
    (1, {"eth0": 0, "eth1": 2}, "loose", ["eth0"]),
    # conf.all off: only strict NICs
    (0, {"eth0": 0, "eth1": 1}, "loose", ["eth1"]),
    # conf.all loose: every NIC is at least loose already
    (2, {"eth0": 1, "eth1": 1}, "loose", []),
    # off: NICs at 1 or 2, and conf.all
    (1, {"eth0": 2, "eth1": 0}, "off", ["eth0", "all"]),
    (0, {"eth0": 1, "eth1": 2}, "off", ["eth0", "eth1"]),
    (2, {"eth0": 1, "eth1": 1}, "keep", []),
])
def test_rp_filter_modes_only_ever_lower(all_rp, rp, mode, changes):
    node = fact([link(2, "eth0", "192.0.2.11/24"), link(3, "eth1", "198.51.100.11/24")], all_rp=all_rp, rp=rp)
    plan = pre.rp_filter_plan(node, mode)
    assert plan["changes"] == [f"net.ipv4.conf.{c}.rp_filter" for c in changes]
    assert plan["value"] == ("2" if mode == "loose" else "0")


def test_rp_filter_only_on_multihomed_nodes_unless_told():
    single = fact([link(2, "eth0", "192.0.2.11/24"), link(4, "docker0", "172.17.0.1/16")], rp={"eth0": 1})
    assert pre.rp_filter_plan(single, "loose") == {"nics": ["eth0"], "multihomed": False, "changes": [], "value": "2"}
    assert pre.rp_filter_plan(single, "loose", False)["changes"] == ["net.ipv4.conf.eth0.rp_filter"]
    with pytest.raises(ValueError, match="rp_filter must be one of loose, off, keep, not 'strict'"):
        pre.rp_filter_plan(single, "strict")


def test_sysctl_changes_and_note():
    ip_forward = {"changed": True}
    rp = {"results": [{"item": "net.ipv4.conf.eth0.rp_filter", "changed": True,
                       "invocation": {"module_args": {"value": "2"}}},
                      {"item": "net.ipv4.conf.eth1.rp_filter", "changed": False},
                      {"item": "net.ipv4.conf.eth0/100.rp_filter", "changed": True}]}
    changes = pre.sysctl_changes(ip_forward, rp)
    assert changes == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.eth0.rp_filter": "2",
                       "net.ipv4.conf.eth0/100.rp_filter": "2"}
    plan = {"nics": ["eth0", "eth1"], "multihomed": True}
    assert pre.sysctl_note(plan, changes, True, "loose", "/etc/sysctl.d/90-calico.conf") == (
        "SYS001: ip_forward=1, rp_filter loose on eth0,eth1 (multi-homed) - set ip_forward=1 rp_filter[eth0] "
        "rp_filter[eth0/100] in /etc/sysctl.d/90-calico.conf")
    assert pre.sysctl_note(plan, changes, True, "loose", "/f.conf", True).startswith(
        "SYS001: ip_forward=1, rp_filter loose on eth0,eth1 (multi-homed) - would set ")
    assert pre.sysctl_note({"nics": ["eth0"]}, {}, False, "keep", "/f.conf") == (
        "SYS001: ip_forward not managed, rp_filter keep on eth0 - nothing to change")
    assert pre.sysctl_note({}, None, True, "loose", "/f.conf") == (
        "SYS001: ip_forward=1, rp_filter loose (no host NIC) - nothing to change")
    # skipped tasks change nothing
    assert pre.sysctl_changes({"skipped": True, "changed": False}, {"skipped": True}) == {}
    assert pre.sysctl_changes(None, None) == {}


def replay(method, address, interface, *, valid=True, error=None, version=4):
    return {"method": method, "version": version, "valid": valid, "error": error, "address": address,
            "interface": interface, "candidates": []}


def test_autodetection_replay_takes_the_last_replay_of_the_method():
    node = fact(LINKS, results=[replay("first-found", "198.51.100.11/24", "eth1"),
                                replay("cidr=192.0.2.0/24", "192.0.2.11/24", "eth0"),
                                replay("cidr=192.0.2.0/24", "2001:db8::1/64", "eth0", version=6)])
    assert pre.autodetection_replay(node, "cidr=192.0.2.0/24", "192.0.2.11") == {
        "valid": True, "error": None, "address": "192.0.2.11/24", "interface": "eth0", "intended": "192.0.2.11",
        "ok": True, "note": "AD001: cidr=192.0.2.0/24 -> 192.0.2.11/24 (eth0) ok"}
    missed = pre.autodetection_replay(node, "first-found", "192.0.2.11")
    assert missed["ok"] is False and missed["note"] == "AD001: first-found -> 198.51.100.11/24 instead of 192.0.2.11"


def test_autodetection_replay_without_facts_or_replay():
    assert pre.autodetection_replay(None, "first-found", "192.0.2.11") == {
        "valid": False, "error": "no facts from this node", "address": None, "interface": None,
        "intended": "192.0.2.11", "ok": False, "note": "AD001: first-found not replayed (no facts from this node)"}
    assert pre.autodetection_replay(fact(LINKS), "interface=eth0", "x")["error"] == (
        "'interface=eth0' was not replayed on this node")
    invalid = fact(LINKS, results=[replay("eth0-please", None, None, valid=False,
                                          error="Invalid IP autodetection method: eth0-please")])
    assert pre.autodetection_replay(invalid, "eth0-please", "192.0.2.11")["valid"] is False


def test_autodetection_misses_and_the_failure_message():
    replays = {"node1": {"ok": True}, "node2": {"ok": False, "address": "198.51.100.12/24", "interface": "eth1",
                                                "intended": "192.0.2.12"},
               "node3": {"ok": False, "address": None, "error": "no valid host interfaces found",
                         "intended": "192.0.2.13"}}
    misses = pre.autodetection_misses(replays)
    assert misses == ["node2 picks 198.51.100.12/24 (eth1) instead of 192.0.2.12",
                      "node3 picks nothing (no valid host interfaces found) instead of 192.0.2.13"]
    rec = {"method": "cidr=192.0.2.0/24", "reason": "every intended address is in 192.0.2.0/24",
           "operator": {"cidrs": ["192.0.2.0/24"]}}
    assert pre.autodetection_failure(misses, "first-found", "calico_intended_ip", 3, rec) == (
        "IP_AUTODETECTION_METHOD=first-found does not give 2 of 3 node(s) their intended address (calico_intended_ip): "
        "node2 picks 198.51.100.12/24 (eth1) instead of 192.0.2.12; node3 picks nothing (no valid host interfaces "
        "found) instead of 192.0.2.13. Recommended for the whole fleet: "
        "preflight_autodetection_method=cidr=192.0.2.0/24 "
        "(every intended address is in 192.0.2.0/24; operator: nodeAddressAutodetectionV4: "
        '{"cidrs": ["192.0.2.0/24"]}).')
    assert pre.autodetection_failure(misses, "m", "v", 3, {"method": None, "reason": "node3 has no such address"}) \
        .endswith("No single method fits the fleet: node3 has no such address.")
    assert pre.autodetection_failure(misses, "m", "v", 3).endswith(
        "No single method fits the fleet: no recommendation.")
    assert pre.autodetection_failure([], "m", "v", 3) == ""


def test_mtu_fits():
    node = fact([link(2, "eth0", "192.0.2.11/24", mtu=1500), link(8, "tunl0", "198.18.1.0/32", mtu=1480)], cni_mtu=1440)
    check = pre.mtu_check(node, "ipip", 0, "192.0.2.11")
    assert check == {"nic": "eth0", "nic_mtu": 1500, "overhead": 20, "limit": 1480, "tunnel_mtu": None,
                     "device": "tunl0", "device_mtu": 1480, "cni_mtu": 1440, "too_big": [], "ok": True,
                     "note": "MTU: eth0 1500 - ipip 20 = 1480 >= tunnel automatic, tunl0 1480, CNI 1440 ok"}


def test_mtu_too_big_names_each_value():
    node = fact([link(2, "eth0", "192.0.2.11/24", mtu=1500)], cni_mtu=1500)
    check = pre.mtu_check(node, "vxlan", "1480", "192.0.2.11")
    assert check["ok"] is False and check["limit"] == 1450
    assert check["too_big"] == ["preflight_tunnel_mtu = 1480", "the CNI config mtu = 1500"]
    tunnel = fact([link(2, "eth0", "192.0.2.11/24", mtu=1450), link(5, "vxlan.calico", "198.18.1.0/32", mtu=1450)])
    assert pre.mtu_check(tunnel, "vxlan", 0, "192.0.2.11")["too_big"] == [
        "vxlan.calico (MTU of the existing device) = 1450"]
    # native routing adds nothing and has no device
    assert pre.mtu_check(node, "none", 0, "192.0.2.11")["too_big"] == []


def test_mtu_not_checked_without_the_intended_address():
    check = pre.mtu_check(fact(LINKS), "ipip", 0, "203.0.113.99")
    assert check["ok"] is True and check["limit"] is None
    assert check["note"] == "MTU: not checked (the intended address is on no interface)"
    with pytest.raises(ValueError, match="encapsulation must be one of ipip, vxlan, wireguard, none, not 'gre'"):
        pre.mtu_check(fact(LINKS), "gre", 0, "192.0.2.11")


def test_kernel_module_entries_add_the_encapsulations_module():
    base = [{"names": ["ip_set"], "config": "CONFIG_IP_SET"}]
    assert pre.kernel_module_entries(base, "vxlan") == base + [{"names": ["vxlan"], "config": "CONFIG_VXLAN"}]
    assert pre.kernel_module_entries(base, "none") == base
    # the constant is not handed out for the caller to change
    pre.kernel_module_entries([], "ipip")[0]["names"].append("x")
    assert pre.ENCAPSULATIONS["ipip"]["modules"] == [{"names": ["ipip"], "config": "CONFIG_NET_IPIP"}]


def kmod_entry(names, status, name=None, optional=False, evidence="e"):
    return {"names": names, "config": "CONFIG_X", "optional": optional, "status": status, "name": name or names[0],
            "evidence": evidence}


SCAN = {"release": "6.1.0", "modules_supported": True, "sources": [], "modules": {},
        "entries": [kmod_entry(["ip_set"], "present"), kmod_entry(["ip_tables"], "builtin"),
                    kmod_entry(["ipt_REJECT", "xt_REJECT"], "loadable", "xt_REJECT"),
                    kmod_entry(["xt_bpf"], "missing", optional=True), kmod_entry(["xt_u32"], "unknown"),
                    kmod_entry(["xt_set", "ipt_set"], "missing", evidence="/boot/config-6.1.0: CONFIG_X not set")]}


def test_kernel_modules_plan_and_note():
    plan = pre.kernel_modules_plan(SCAN)
    assert [e["name"] for e in plan["load"]] == ["xt_REJECT", "xt_u32"]
    assert [e["names"] for e in plan["missing"]] == [["xt_set", "ipt_set"]]
    assert plan["missing_text"] == "xt_set/ipt_set (/boot/config-6.1.0: CONFIG_X not set)"
    assert (plan["present"], plan["total"], plan["supported"]) == (2, 6, True)
    assert pre.kernel_modules_note(plan) == (
        "modules: 2/6 in the kernel, loadable: xt_REJECT, missing: xt_set/ipt_set, missing (optional): xt_bpf, "
        "unknown: xt_u32 (preflight_load_modules: true loads them)")
    loaded = {"results": [{"item": {"name": "xt_REJECT"}, "changed": True},
                          {"item": {"name": "xt_u32"}, "changed": False},
                          {"skipped": True}]}
    assert pre.kernel_modules_note(plan, loaded, True, True).endswith(", would load: xt_REJECT")
    assert pre.kernel_modules_note(plan, loaded, True).endswith(", loaded: xt_REJECT")
    cannot = pre.kernel_modules_plan({**SCAN, "modules_supported": False})
    assert pre.kernel_modules_note(cannot, None, True).endswith(
        " (not loaded: this kernel has no loadable module support)")
    assert pre.kernel_modules_note(pre.kernel_modules_plan(None)) == "modules: 0/0 in the kernel"


def test_nm_note():
    result = {"changed": True, "verified_with": "NetworkManager --print-config", "reloaded": True}
    assert pre.nm_note(result, "/etc/NetworkManager/conf.d/calico.conf", True) == (
        "NM001: /etc/NetworkManager/conf.d/calico.conf written, Calico devices unmanaged per NetworkManager "
        "--print-config, NetworkManager reloaded")
    assert pre.nm_note({**result, "reloaded": False}, "/p.conf", True, True) == (
        "NM001: /p.conf written (check mode), Calico devices unmanaged per NetworkManager --print-config")
    assert pre.nm_note({"changed": False, "verified_with": "model"}, "/p.conf", True) == (
        "NM001: /p.conf in place, Calico devices unmanaged per model")
    assert pre.nm_note(None, "/p.conf", False) == "NM001: NetworkManager not installed"
    assert pre.nm_note({"skipped": True}, "/p.conf", True) == "NM001: skipped"


def test_hosts_entry_and_note():
    assert pre.hosts_entry("192.0.2.11", "node1.example.com") == "192.0.2.11 node1.example.com node1"
    assert pre.hosts_entry("192.0.2.11", "node1") == "192.0.2.11 node1"
    resolving = fact(LINKS, hosts=["127.0.1.1"])
    assert pre.hosts_note(resolving, "192.0.2.11") == (
        "HOST001: node1 resolves via /etc/hosts to 127.0.1.1 (not the intended 192.0.2.11)")
    assert pre.hosts_note(fact(LINKS, hosts=["192.0.2.11"]), "192.0.2.11") == (
        "HOST001: node1 resolves via /etc/hosts to 192.0.2.11")
    missing = fact(LINKS, resolves=False)
    assert pre.hosts_note(missing, "192.0.2.11", {"changed": True}, True) == (
        "HOST001: node1 added to /etc/hosts (check mode)")
    assert pre.hosts_note(missing, "192.0.2.11", {"skipped": True}) == (
        "HOST001: node1 does NOT resolve via /etc/hosts (preflight_fix_hosts: true adds it)")
