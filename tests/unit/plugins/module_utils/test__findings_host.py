"""Node rules over host_config (_findings_host): NET001, IPT001, CNI001, REG001, POOL001."""

import copy
import json

from ansible_collections.netdoctor.calico.plugins.module_utils import _findings
from ansible_collections.netdoctor.calico.plugins.module_utils import _findings_host as fh

HEALTHY_HC = {
    "identity": {"machine_id_hash": "a" * 32, "machine_id_state": "ok"},
    "networkd": {"running": False, "pid": None, "enabled": False, "files": [], "manage_foreign_routes": True,
                 "manage_foreign_rules": True, "set_in": {}},
    "links": [],
    "netplan": {"files": [], "generated": []},
    "nm_cloud_setup": {"installed": False, "enabled": False, "masked": False, "links": [], "providers": [],
                       "rules": []},
    "iptables": {"nft_tables": ["ip calico"], "legacy": None, "nft": None, "errors": [], "felix_env": {}},
    "cni": {"dir": "/etc/cni/net.d", "files": [{"file": "/etc/cni/net.d/10-calico.conflist", "valid": True,
                                                "error": None, "name": "k8s-pod-network",
                                                "types": ["calico", "portmap"]}],
            "active": "/etc/cni/net.d/10-calico.conflist", "calico": "/etc/cni/net.d/10-calico.conflist",
            "calico_plugin": {"types": ["calico", "portmap"], "ipam_type": "calico-ipam", "ipam_ranges": [],
                              "datastore_type": "kubernetes", "kubeconfig": None},
            "bin_dirs": ["/opt/cni/bin"], "bin_source": "default",
            "binaries": {"calico": "/opt/cni/bin", "portmap": "/opt/cni/bin", "calico-ipam": "/opt/cni/bin"},
            "kubeconfig": {"file": "/etc/cni/net.d/calico-kubeconfig", "exists": True, "token": "present",
                           "jwt": True, "exp": 2_000_000_000, "iat": 1_999_913_600, "sub": "sa", "expires_in": 80000}},
    "service_cidrs": [],
}


def fact(**hc_changes):
    hc = copy.deepcopy(HEALTHY_HC)
    for key, value in hc_changes.items():
        hc[key] = value
    return {
        "hostname": "node1",
        "links": [{"name": "eth0", "addresses": [{"family": 4, "address": "192.0.2.11", "prefixlen": 24}]},
                  {"name": "cali1", "addresses": []}],
        "routes": {"counts": {"by_protocol": {"bird": 3, "kernel": 2}}},
        "identity": {"calico_node": {"pid": 7, "env": {"IP": "autodetect", "CALICO_IPV4POOL_CIDR": "198.18.0.0/16",
                                                       "CALICO_IPV4POOL_IPIP": "Always"}}},
        "host_config": hc,
    }


def ids(findings):
    return [(f["id"], f["severity"]) for f in findings]


def test_healthy_host_config_gives_nothing_and_old_facts_too():
    assert fh.rule_host(fact(), "node1") == []
    old = fact()
    del old["host_config"]
    assert fh.rule_host(old, "node1") == []


def test_rule_is_registered_in_node_rules():
    assert fh.rule_host in _findings.NODE_RULES


# --- NET001 ---------------------------------------------------------------------------------

def test_networkd_running_with_foreign_management():
    nd = dict(HEALTHY_HC["networkd"], running=True, pid=99)
    (f,) = fh.rule_host(fact(networkd=nd), "node1")
    assert (f["id"], f["severity"]) == ("NET001", "warning")
    assert "ManageForeignRoutes=yes and ManageForeignRoutingPolicyRules=yes" in f["summary"]
    assert f["evidence"]["calico_routes_at_risk"] == {"bird": 3}
    assert fh.NETWORKD_DROPIN in f["remedy"] and "calico_host_managers" in f["remedy"]
    only_enabled = dict(nd, running=False, enabled=True)
    assert ids(fh.rule_host(fact(networkd=only_enabled), "node1")) == [("NET001", "info")]
    fixed = dict(nd, manage_foreign_routes=False, manage_foreign_rules=False)
    assert fh.rule_host(fact(networkd=fixed), "node1") == []


def link(device, **kw):
    base = {"device": device, "file": "/etc/systemd/network/50-x.link", "certain": True, "match": "OriginalName=*",
            "mac_address_policy": None, "mac_address": None, "vendor": False, "catch_all": False}
    return dict(base, **kw)


def test_link_file_setting_the_vteps_mac():
    found = fh.rule_host(fact(links=[link("vxlan.calico", mac_address="02:00:00:00:00:01"),
                                     link("cali*", mac_address="02:00:00:00:00:01")]), "node1")
    assert ids(found) == [("NET001", "critical")]
    assert found[0]["evidence"]["devices"] == ["vxlan.calico", "cali*"]
    assert fh.CALICO_LINK_FILE in found[0]["remedy"]
    policy = fh.rule_host(fact(links=[link("vxlan.calico", mac_address_policy="random")]), "node1")
    assert ids(policy) == [("NET001", "warning")]
    possible = fh.rule_host(fact(links=[link("vxlan.calico", mac_address_policy="random", certain=False)]), "node1")
    assert ids(possible) == [("NET001", "info")]
    tunl = fh.rule_host(fact(links=[link("tunl*", mac_address="02:00:00:00:00:01")]), "node1")
    assert tunl == []


def test_netplan_generated_file_points_at_the_yaml():
    f = fact(netplan={"files": ["/etc/netplan/50-cloud-init.yaml"],
                      "generated": ["/run/systemd/network/10-netplan-all.network"]})
    f["networkd"] = {"matching_calico": [{"file": "/run/systemd/network/10-netplan-all.network", "match": "Name=*",
                                          "devices": ["cali*"], "possible": [], "unmanaged": False}]}
    (found,) = fh.rule_host(f, "node1")
    assert (found["id"], found["severity"]) == ("NET001", "info") and "interface id all" in found["summary"]
    assert "netplan generate" in found["remedy"]


def cloud(rules, enabled=True, providers=("NM_CLOUD_SETUP_EC2",)):
    return {"installed": True, "enabled": enabled, "masked": False, "links": ["/etc/x"], "providers": list(providers),
            "rules": rules}


SUBNET = {"priority": 30200, "src": "192.0.2.11/32", "table": 30200, "kind": "subnet"}
SUPPRESS = {"priority": 30350, "src": None, "table": 254, "kind": "suppress_main"}
DEFAULT = {"priority": 30400, "src": "192.0.2.11/32", "table": 30400, "kind": "default_route"}


def test_nm_cloud_setup_rules():
    old = fh.rule_host(fact(nm_cloud_setup=cloud([SUBNET, DEFAULT])), "node1")
    assert ids(old) == [("NET001", "critical")] and "ip rule del priority 30400" in old[0]["remedy"]
    new = fh.rule_host(fact(nm_cloud_setup=cloud([SUBNET, SUPPRESS, DEFAULT])), "node1")
    assert ids(new) == [("NET001", "warning")]
    assert "30350: from all lookup 254 suppress_prefixlength 0" in new[0]["evidence"]["rules"]
    leftovers = fh.rule_host(fact(nm_cloud_setup=cloud([SUBNET, SUPPRESS, DEFAULT], enabled=False)), "node1")
    assert ids(leftovers) == [("NET001", "warning")]
    pending = fh.rule_host(fact(nm_cloud_setup=cloud([])), "node1")
    assert ids(pending) == [("NET001", "info")]
    assert fh.rule_host(fact(nm_cloud_setup=cloud([], providers=())), "node1") == []


# --- IPT001 ---------------------------------------------------------------------------------

def save(calico=0, kube=0, other=0, hint=False, **kw):
    return {"binary": "x", "rc": 0, "error": None, "tables": ["filter"], "incompatible": [],
            "chains": {"calico": calico, "kube": kube, "other": 0}, "rules": {"calico": calico, "kube": kube,
                                                                              "other": other},
            "kube_hint": hint, **kw}


def ipt(nft_tables=("ip calico",), legacy=None, nft=None, env=None):
    return {"nft_tables": list(nft_tables), "legacy": legacy, "nft": nft, "errors": [], "felix_env": env or {}}


def test_calico_in_nftables_and_legacy_leftovers():
    found = fh.rule_host(fact(iptables=ipt(legacy=save(calico=3), env={"FELIX_NFTABLESMODE": "Enabled"})), "node1")
    assert ids(found) == [("IPT001", "warning")]
    f = found[0]
    assert f["evidence"]["calico_in"] == ["nftables", "iptables-legacy"]
    assert f["evidence"]["felix_dataplane"] == "nftables"
    assert "iptables-legacy-save | grep -v" in f["remedy"] and "iptables-legacy-restore" in f["remedy"]


def test_backend_detection_replays_felix():
    legacy, nft = save(calico=2, kube=5), save(kube=1, hint=True)
    assert fh.felix_expected(ipt(legacy=legacy, nft=nft), ["iptables-legacy", "iptables-nft"])[0] == "iptables-nft"
    assert fh.felix_expected(ipt(legacy=save(calico=1), nft=save(calico=1)), [])[0] == "iptables-legacy"
    assert fh.felix_expected(ipt(nft=save(calico=3)), [])[0] == "iptables-nft"
    assert fh.felix_expected(ipt(env={"FELIX_IPTABLESBACKEND": "NFT"}), [])[0] == "iptables-nft"
    assert fh.felix_expected(ipt(nft_tables=["ip kube-proxy"]), ["nftables"])[0] == "nftables"
    assert fh.felix_expected(ipt(nft_tables=["ip kube-proxy"], env={"FELIX_NFTABLESMODE": "Disabled"}),
                             ["nftables"])[0] == "iptables-legacy"


def test_kube_proxy_in_the_other_backend():
    found = fh.rule_host(fact(iptables=ipt(nft_tables=["ip filter", "ip nat"], legacy=save(kube=40, hint=True),
                                           nft=save(calico=12))), "node1")
    assert ids(found) == [("IPT001", "warning")]
    assert "kube-proxy's rules on node1 are in iptables-legacy, Felix's in iptables-nft" in found[0]["summary"]
    assert "FELIX_IPTABLESBACKEND=Legacy" in found[0]["remedy"]


def test_configured_backend_not_applied():
    found = fh.rule_host(fact(iptables=ipt(nft_tables=[], legacy=save(calico=5),
                                           env={"FELIX_IPTABLESBACKEND": "NFT"})), "node1")
    assert ids(found) == [("IPT001", "warning")] and "did not apply" in found[0]["summary"]


def test_incompatible_table_crash_loops_felix_on_iptables_nft():
    nft = save(calico=4, rc=1, incompatible=["filter"], error="table `filter' is incompatible")
    found = fh.rule_host(fact(iptables=ipt(nft_tables=["ip filter"], nft=nft)), "node1")
    assert ids(found) == [("IPT001", "critical")] and "calico#13263" in found[0]["summary"]


def test_healthy_single_dataplanes_give_nothing():
    for state in (ipt(), ipt(nft_tables=["ip filter"], nft=save(calico=9, kube=30, hint=True)),
                  ipt(nft_tables=[], legacy=save(calico=9, kube=30, hint=True)),
                  ipt(nft_tables=["ip calico", "ip kube-proxy"])):
        assert fh.rule_host(fact(iptables=state), "node1") == [], state


# --- CNI001 ---------------------------------------------------------------------------------

def cni(**changes):
    c = copy.deepcopy(HEALTHY_HC["cni"])
    c.update(changes)
    return c


def test_foreign_config_sorts_first():
    files = [{"file": "/etc/cni/net.d/05-cilium.conflist", "valid": True, "types": ["cilium-cni"]},
             *HEALTHY_HC["cni"]["files"]]
    found = fh.rule_host(fact(cni=cni(files=files, active="/etc/cni/net.d/05-cilium.conflist")), "node1")
    assert ids(found) == [("CNI001", "critical")] and "05-cilium.conflist (cilium-cni)" in found[0]["summary"]
    multus = [{"file": "/etc/cni/net.d/00-multus.conf", "valid": True, "types": ["multus"]},
              *HEALTHY_HC["cni"]["files"]]
    assert fh.rule_host(fact(cni=cni(files=multus, active="/etc/cni/net.d/00-multus.conf")), "node1") == []


def test_leftovers_of_another_cni():
    files = [*HEALTHY_HC["cni"]["files"], {"file": "/etc/cni/net.d/10-flannel.conflist", "valid": True,
                                           "types": ["flannel", "portmap"]}]
    assert ids(fh.rule_host(fact(cni=cni(files=files)), "node1")) == [("CNI001", "warning")]
    podman = [*HEALTHY_HC["cni"]["files"], {"file": "/etc/cni/net.d/87-podman-bridge.conflist", "valid": True,
                                            "types": ["bridge"]}]
    assert ids(fh.rule_host(fact(cni=cni(files=podman)), "node1")) == [("CNI001", "info")]


def test_missing_binaries():
    found = fh.rule_host(fact(cni=cni(binaries={"calico": None, "portmap": "/opt/cni/bin",
                                                "calico-ipam": None})), "node1")
    assert ids(found) == [("CNI001", "critical")] and found[0]["evidence"]["missing"] == ["calico", "calico-ipam"]


def test_token_expired_and_expiring_never_quote_the_token():
    kc = dict(HEALTHY_HC["cni"]["kubeconfig"], expires_in=-7200, exp=1_000_000)
    found = fh.rule_host(fact(cni=cni(kubeconfig=kc)), "node1")
    assert ids(found) == [("CNI001", "critical")] and "expired 2 h 0 min ago" in found[0]["summary"]
    assert found[0]["evidence"]["token"] == "<redacted>" and found[0]["evidence"]["expires"] == "1970-01-12T13:46:40Z"
    soon = dict(kc, expires_in=1800)
    assert ids(fh.rule_host(fact(cni=cni(kubeconfig=soon)), "node1")) == [("CNI001", "warning")]
    missing = {"file": "/etc/cni/net.d/calico-kubeconfig", "exists": False}
    assert fh.rule_host(fact(cni=cni(kubeconfig=missing)), "node1") == []


def test_no_calico_config_while_calico_node_runs():
    found = fh.rule_host(fact(cni=cni(files=[], active=None, calico=None, calico_plugin=None)), "node1")
    assert ids(found) == [("CNI001", "critical")]


# --- REG001, POOL001 ------------------------------------------------------------------------

def test_registered_as_32_while_the_interface_has_a_subnet():
    f = fact()
    f["identity"]["calico_node"]["env"]["IP"] = "192.0.2.11/32"
    (found,) = fh.rule_host(f, "node1")
    assert (found["id"], found["severity"]) == ("REG001", "info")
    assert found["evidence"]["interface_address"] == "192.0.2.11/24" and "192.0.2.11/24" in found["remedy"]
    f["identity"]["calico_node"]["env"]["CALICO_IPV4POOL_IPIP"] = "CrossSubnet"
    assert ids(fh.rule_host(f, "node1")) == [("REG001", "warning")]
    f["identity"]["calico_node"]["env"]["IP"] = "192.0.2.11/24"
    assert fh.rule_host(f, "node1") == []
    g = fact()
    g["autodetection"] = {"registered": "192.0.2.11/32"}
    assert ids(fh.rule_host(g, "node1")) == [("REG001", "info")]


def test_pool_overlaps_a_bridge_a_host_network_and_the_service_cidr():
    f = fact()
    f["links"].append({"name": "docker0", "addresses": [{"family": 4, "address": "198.18.0.1", "prefixlen": 24}]})
    (found,) = fh.rule_host(f, "node1")
    assert (found["id"], found["severity"]) == ("POOL001", "warning")
    assert found["evidence"]["overlaps"][0] == {
        "pool": "198.18.0.0/16", "pool_from": "calico-node CALICO_IPV4POOL_CIDR", "interface": "docker0",
        "network": "198.18.0.1/24", "kind": "bridge"}
    f["links"].append({"name": "eth1", "addresses": [{"family": 4, "address": "198.18.200.5", "prefixlen": 24}]})
    assert ids(fh.rule_host(f, "node1")) == [("POOL001", "critical")]
    svc = fact(service_cidrs=["198.18.128.0/17"])
    assert ids(fh.rule_host(svc, "node1")) == [("POOL001", "critical")]
    tunnel = fact()
    tunnel["links"].append({"name": "vxlan.calico", "addresses": [{"family": 4, "address": "198.18.1.0",
                                                                   "prefixlen": 32}]})
    assert fh.rule_host(tunnel, "node1") == []


def test_rules_never_mutate_the_fact():
    f = fact(networkd=dict(HEALTHY_HC["networkd"], running=True))
    before = json.dumps(f, sort_keys=True)
    fh.rule_host(f, "node1")
    assert json.dumps(f, sort_keys=True) == before
