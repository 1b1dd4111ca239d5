"""Host configuration readers (_hostconfig) over temp trees: machine id (hashed), networkd.conf,
.link files, netplan, nm-cloud-setup, iptables backends (fake commands), CNI dir, binaries and the
kubeconfig token (decoded, never kept)."""

import base64
import json
import os

from ansible_collections.netdoctor.calico.plugins.module_utils import _hostconfig as hc

MID = "0123456789abcdef0123456789abcdef"


def tree(root, files):
    for path, content in files.items():
        full = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if isinstance(content, tuple):  # ("link", target)
            os.symlink(content[1], full)
            continue
        with open(full, "w") as f:
            f.write(content)
    return str(root)


def jwt(payload):
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2lnbmF0dXJl"


# --- identity -------------------------------------------------------------------------------

def test_machine_id_is_returned_only_as_a_keyed_hash(tmp_path):
    root = tree(tmp_path, {"/etc/machine-id": MID + "\n"})
    facts = hc.identity_facts(root)
    assert facts["machine_id_state"] == "ok"
    assert facts["machine_id_hash"] == hc.machine_id_hash(MID.upper()) and MID not in json.dumps(facts)
    assert len(facts["machine_id_hash"]) == 32
    assert hc.machine_id_hash("ffffffffffffffffffffffffffffffff") != facts["machine_id_hash"]


def test_machine_id_missing_empty_uninitialized(tmp_path):
    assert hc.identity_facts(str(tmp_path))["machine_id_state"] == "missing"
    root = tree(tmp_path, {"/etc/machine-id": "uninitialized\n"})
    assert hc.identity_facts(root) == {"machine_id_hash": None, "machine_id_state": "empty"}


# --- systemd-networkd -----------------------------------------------------------------------

def test_networkd_foreign_defaults_to_yes_and_dropins_override_in_name_order(tmp_path):
    root = tree(tmp_path, {
        "/etc/systemd/networkd.conf": "[Network]\n#ManageForeignRoutes=yes\n",
        "/usr/lib/systemd/networkd.conf.d/10-vendor.conf": "[Network]\nManageForeignRoutes=no\n",
        "/etc/systemd/networkd.conf.d/20-admin.conf": "[Network]\nManageForeignRoutes=yes\n"
        "ManageForeignRoutingPolicyRules=off\n",
        "/run/systemd/networkd.conf.d/10-vendor.conf": "[Network]\nManageForeignRoutes=no\n",
    })
    files = hc.networkd_conf_files(root)
    assert files == ["/etc/systemd/networkd.conf", "/run/systemd/networkd.conf.d/10-vendor.conf",
                     "/etc/systemd/networkd.conf.d/20-admin.conf"]
    facts = hc.networkd_facts(root, proc=str(tmp_path / "noproc"))
    assert facts["manage_foreign_routes"] is True and facts["manage_foreign_rules"] is False
    assert facts["set_in"]["ManageForeignRoutingPolicyRules"] == "/etc/systemd/networkd.conf.d/20-admin.conf"
    assert facts["running"] is False and facts["enabled"] is False


def test_networkd_dropin_of_the_fix_turns_both_off(tmp_path):
    from ansible_collections.netdoctor.calico.plugins.modules import calico_host_managers as m
    root = tree(tmp_path, {m.NETWORKD_DROPIN: m.NETWORKD_TEXT,
                           "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service":
                               ("link", "/lib/systemd/system/systemd-networkd.service")})
    facts = hc.networkd_facts(root, proc=str(tmp_path / "noproc"))
    assert (facts["manage_foreign_routes"], facts["manage_foreign_rules"], facts["enabled"]) == (False, False, True)


def test_masked_dropin_is_skipped(tmp_path):
    root = tree(tmp_path, {"/usr/lib/systemd/networkd.conf.d/x.conf": "[Network]\nManageForeignRoutes=no\n",
                           "/etc/systemd/networkd.conf.d/x.conf": ("link", "/dev/null")})
    assert hc.networkd_conf_files(root) == []


# --- .link files ----------------------------------------------------------------------------

DEFAULT_LINK = "[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel\nMACAddressPolicy=persistent\n"


def test_first_matching_link_file_wins_per_device(tmp_path):
    root = tree(tmp_path, {
        "/usr/lib/systemd/network/99-default.link": DEFAULT_LINK,
        "/usr/lib/systemd/network/73-usb-net-by-mac.link": "[Match]\nPath=*-usb-*\n[Link]\nMACAddressPolicy=none\n",
        "/etc/systemd/network/50-vxlan.link": "[Match]\nOriginalName=vxlan*\n[Link]\nMACAddressPolicy=random\n",
    })
    matches = hc.link_calico_matches(hc.discover_link_files(root))
    vx = [m for m in matches if m["device"] == "vxlan.calico"]
    assert [(m["file"], m["certain"]) for m in vx] == [
        ("/etc/systemd/network/50-vxlan.link", True)]  # 73-usb sorts after 50; 99-default never reached
    cali = [m for m in matches if m["device"] == "cali*"]
    assert cali[-1]["file"] == "/usr/lib/systemd/network/99-default.link" and cali[-1]["catch_all"]
    assert cali[0]["certain"] is False  # Path= is not known from the name
    assert not hc._sets_mac(cali[-1]) and hc._sets_mac(vx[0])


def test_the_fix_link_file_sorts_first_and_sets_no_mac(tmp_path):
    from ansible_collections.netdoctor.calico.plugins.modules import calico_host_managers as m
    root = tree(tmp_path, {"/usr/lib/systemd/network/99-default.link": DEFAULT_LINK,
                           "/etc/systemd/network/50-vxlan.link": "[Match]\nOriginalName=vxlan*\n"
                                                                 "[Link]\nMACAddress=02:00:00:00:00:01\n",
                           m.CALICO_LINK: m.CALICO_LINK_TEXT})
    matches = hc.link_calico_matches(hc.discover_link_files(root))
    assert {x["file"] for x in matches} == {m.CALICO_LINK}
    assert not any(hc._sets_mac(x) for x in matches)


def test_link_match_kind_and_negation():
    sample = {"name": "vxlan.calico", "Kind": ("vxlan",), "Type": ("vxlan", "ether"), "Driver": ("vxlan",)}
    assert hc.link_matches(hc.parse_link_file("[Match]\nKind=vxlan\n")["match"], sample) is True
    assert hc.link_matches(hc.parse_link_file("[Match]\nOriginalName=!vxlan*\n")["match"], sample) is False
    assert hc.link_matches(hc.parse_link_file("[Match]\nMACAddress=02:00:00:00:00:01\n")["match"], sample) is None
    parsed = hc.parse_link_file("[Link]\nMACAddressPolicy=\nMACAddress=02:AA:00:00:00:01\n")
    assert (parsed["mac_address_policy"], parsed["mac_address"]) == ("none", "02:aa:00:00:00:01")


# --- netplan, nm-cloud-setup ----------------------------------------------------------------

def test_netplan_files_and_generated(tmp_path):
    root = tree(tmp_path, {"/etc/netplan/50-cloud-init.yaml": "network: {}\n",
                           "/run/systemd/network/10-netplan-all.network": "[Match]\nName=*\n"})
    assert hc.netplan_facts(root) == {"files": ["/etc/netplan/50-cloud-init.yaml"],
                                      "generated": ["/run/systemd/network/10-netplan-all.network"]}


CLOUD_RULES = [
    {"family": 4, "priority": 0, "table": 255, "src": None},
    {"family": 4, "priority": 30200, "table": 30200, "src": "10.0.10.5/32"},
    {"family": 4, "priority": 30350, "table": 254, "src": None},
    {"family": 4, "priority": 30400, "table": 30400, "src": "10.0.10.5/32"},
    {"family": 4, "priority": 32766, "table": 254, "src": None},
    {"family": 6, "priority": 30400, "table": 30400, "src": "2001:db8::1/128"},
]


def test_cloud_setup_rules_are_recognised():
    rules = hc.cloud_setup_rules(CLOUD_RULES)
    assert [(r["priority"], r["kind"]) for r in rules] == [(30200, "subnet"), (30350, "suppress_main"),
                                                           (30400, "default_route")]


def test_nm_cloud_setup_enabled_with_a_provider(tmp_path):
    root = tree(tmp_path, {
        "/usr/lib/systemd/system/nm-cloud-setup.service": "[Service]\n#Environment=NM_CLOUD_SETUP_EC2=yes\n",
        "/etc/systemd/system/NetworkManager.service.wants/nm-cloud-setup.service":
            ("link", "/usr/lib/systemd/system/nm-cloud-setup.service"),
        "/etc/systemd/system/nm-cloud-setup.service.d/10-ec2.conf": "[Service]\nEnvironment=NM_CLOUD_SETUP_EC2=yes\n",
    })
    facts = hc.nm_cloud_setup_facts(CLOUD_RULES, root)
    assert facts["installed"] and facts["enabled"] and facts["providers"] == ["NM_CLOUD_SETUP_EC2"]
    assert len(facts["rules"]) == 3
    masked = tree(tmp_path / "m", {"/etc/systemd/system/nm-cloud-setup.service": ("link", "/dev/null"),
                                   "/etc/systemd/system/NetworkManager.service.wants/nm-cloud-setup.service":
                                       ("link", "/usr/lib/systemd/system/nm-cloud-setup.service")})
    assert hc.nm_cloud_setup_facts([], masked)["enabled"] is False


# --- iptables -------------------------------------------------------------------------------

LEGACY_SAVE = """# Generated by iptables-save v1.8.9
*mangle
:PREROUTING ACCEPT [0:0]
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:cali-INPUT - [0:0]
:cali-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
:DOCKER - [0:0]
-A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT
-A INPUT -j KUBE-SERVICES
-A INPUT -p tcp --dport 22 -j ACCEPT
-A cali-INPUT -j ACCEPT
-A KUBE-SERVICES -j RETURN
COMMIT
"""


def test_parse_iptables_save_counts_only():
    got = hc.parse_iptables_save(LEGACY_SAVE)
    assert got == {"tables": ["mangle", "filter"], "chains": {"calico": 2, "kube": 3, "other": 1},
                   "rules": {"calico": 2, "kube": 2, "other": 1}, "kube_hint": True}


def test_iptables_facts_reads_legacy_only_when_the_kernel_holds_its_tables(tmp_path):
    calls = []

    def run(argv):
        calls.append(argv[0].rsplit("/", 1)[-1])
        if argv[0].endswith("nft"):
            return 0, "table ip calico\ntable inet filter\ntable ip filter\n", ""
        if argv[0].endswith("iptables-nft-save"):
            return 1, "", "iptables-nft-save v1.8.9: table `filter' is incompatible, use 'nft' tool.\n"
        return 0, LEGACY_SAVE, ""

    def which(name):
        return f"/usr/sbin/{name}"

    proc_net = tmp_path / "net"
    proc_net.mkdir()
    (proc_net / "ip_tables_names").write_text("")
    facts = hc.iptables_facts(str(proc_net), run=run, which=which)
    assert calls == ["nft", "iptables-nft-save"] and facts["legacy"] is None
    assert facts["nft_tables"] == ["ip calico", "inet filter", "ip filter"]
    assert facts["nft"]["incompatible"] == ["filter"] and facts["nft"]["rc"] == 1
    (proc_net / "ip_tables_names").write_text("filter\nmangle\n")
    calls.clear()
    facts = hc.iptables_facts(str(proc_net), run=run, which=which)
    assert calls == ["nft", "iptables-legacy-save", "iptables-nft-save"]
    assert facts["legacy"]["chains"]["calico"] == 2 and "rules" in facts["legacy"]
    assert "-A INPUT" not in json.dumps(facts)  # counts, never rules


def test_iptables_facts_without_binaries(tmp_path):
    facts = hc.iptables_facts(str(tmp_path), run=lambda argv: (0, "", ""), which=lambda name: None)
    assert facts == {"nft_tables": None, "legacy": None, "nft": None, "errors": []}


def test_felix_dataplane_env_is_an_allow_list(tmp_path):
    pid = tmp_path / "42"
    pid.mkdir()
    (pid / "environ").write_bytes(b"FELIX_IPTABLESBACKEND=NFT\0Felix_NFTablesMode=Enabled\0ETCD_KEY=secret\0")
    assert hc.felix_dataplane_env(42, str(tmp_path)) == {"FELIX_IPTABLESBACKEND": "NFT",
                                                         "FELIX_NFTABLESMODE": "Enabled"}
    assert hc.felix_dataplane_env(None, str(tmp_path)) == {}


# --- CNI ------------------------------------------------------------------------------------

CALICO = {"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [
    {"type": "calico", "datastore_type": "kubernetes", "ipam": {"type": "calico-ipam"},
     "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}},
    {"type": "portmap"}, {"type": "bandwidth"}]}
CILIUM = {"cniVersion": "0.3.1", "name": "cilium", "plugins": [{"type": "cilium-cni"}]}


def test_cni_dir_order_active_and_calico(tmp_path):
    root = tree(tmp_path, {"/etc/cni/net.d/05-cilium.conflist": json.dumps(CILIUM),
                           "/etc/cni/net.d/10-calico.conflist": json.dumps(CALICO),
                           "/etc/cni/net.d/00-broken.conf": "{not json",
                           "/etc/cni/net.d/calico-kubeconfig": "apiVersion: v1\n"})
    facts = hc.cni_dir_facts(root)
    assert [f["file"].rsplit("/", 1)[1] for f in facts["files"]] == ["00-broken.conf", "05-cilium.conflist",
                                                                     "10-calico.conflist"]
    assert facts["active"] == "/etc/cni/net.d/05-cilium.conflist"
    assert facts["calico"] == "/etc/cni/net.d/10-calico.conflist"
    assert facts["calico_plugin"]["types"] == ["calico", "portmap", "bandwidth"]
    assert facts["files"][0]["valid"] is False


def test_cni_binaries_from_containerd_bin_dir(tmp_path):
    files = {"/etc/cni/net.d/10-calico.conflist": json.dumps(CALICO),
             "/etc/containerd/config.toml": 'version = 2\n[plugins."io.containerd.grpc.v1.cri".cni]\n'
                                            '  bin_dir = "/var/lib/cni/bin"\n'}
    root = tree(tmp_path, files)
    os.makedirs(os.path.join(root, "var/lib/cni/bin"))
    for name in ("calico-ipam", "portmap"):
        path = os.path.join(root, "var/lib/cni/bin", name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(path, 0o755)
    facts = hc.cni_facts(root, now=1_000_000)
    assert facts["bin_dirs"] == ["/var/lib/cni/bin"] and facts["bin_source"] == "/etc/containerd/config.toml"
    assert facts["binaries"] == {"calico": None, "portmap": "/var/lib/cni/bin", "bandwidth": None,
                                 "calico-ipam": "/var/lib/cni/bin"}


def test_cni_binaries_not_judged_without_a_runtime(tmp_path):
    root = tree(tmp_path, {"/etc/cni/net.d/10-calico.conflist": json.dumps(CALICO)})
    facts = hc.cni_facts(root, now=0)
    assert facts["bin_source"] is None and facts["binaries"] is None
    assert facts["kubeconfig"] == {"file": "/etc/cni/net.d/calico-kubeconfig", "exists": False}


def test_containerd2_bin_dirs_and_crio_plugin_dirs(tmp_path):
    root = tree(tmp_path, {"/etc/containerd/config.toml": 'bin_dirs = ["/opt/cni/bin", "/usr/libexec/cni"]\n'})
    assert hc.cni_bin_dirs(root) == (["/opt/cni/bin", "/usr/libexec/cni"], "/etc/containerd/config.toml")
    root = tree(tmp_path / "c", {"/etc/crio/crio.conf.d/10-crio.conf":
                                 '[crio.network]\nplugin_dirs = ["/usr/libexec/cni"]\n'})
    assert hc.cni_bin_dirs(root) == (["/usr/libexec/cni"], "/etc/crio/crio.conf.d/10-crio.conf")


def test_kubeconfig_token_is_decoded_never_kept(tmp_path):
    token = jwt({"exp": 1000, "iat": 900, "sub": "system:serviceaccount:kube-system:calico-cni-plugin",
                 "kubernetes.io": {"secret": "x"}})
    root = tree(tmp_path, {"/etc/cni/net.d/10-calico.conflist": json.dumps(CALICO),
                           "/etc/cni/net.d/calico-kubeconfig":
                               f"users:\n- name: calico\n  user:\n    token: {token}\n"})
    facts = hc.cni_facts(root, now=1600)
    kc = facts["kubeconfig"]
    assert kc == {"file": "/etc/cni/net.d/calico-kubeconfig", "exists": True, "token": "present", "jwt": True,
                  "exp": 1000, "iat": 900, "sub": "system:serviceaccount:kube-system:calico-cni-plugin",
                  "expires_in": -600}
    dumped = json.dumps(facts)
    assert token not in dumped and token.split(".")[1] not in dumped and token.split(".")[2] not in dumped


def test_opaque_token_and_no_token():
    assert hc.kubeconfig_token_facts("token: abcdef0123", 0)["jwt"] is False
    assert hc.kubeconfig_token_facts("tokenFile: /var/run/x\n", 0)["token"] == "absent"
    assert hc.jwt_claims("a.!!!.c") is None and hc.jwt_claims("only-one-part") is None


def test_service_cidrs_from_the_apiserver_manifest(tmp_path):
    root = tree(tmp_path, {hc.APISERVER_MANIFEST: "spec:\n  containers:\n  - command:\n    - kube-apiserver\n"
                                                  "    - --service-cluster-ip-range=10.96.0.0/12,fd00::/108\n"})
    assert hc.service_cidrs(root) == ["10.96.0.0/12", "fd00::/108"]
    assert hc.service_cidrs(str(tmp_path / "none")) == []


def test_host_config_facts_shape(tmp_path):
    root = tree(tmp_path, {"/etc/machine-id": MID})
    facts = hc.host_config_facts({"rules": CLOUD_RULES}, {"calico_node": None}, root=root,
                                 proc=str(tmp_path / "proc"), run=lambda argv: (1, "", "no"), which=lambda n: None,
                                 now=0)
    assert set(facts) == {"identity", "networkd", "links", "netplan", "nm_cloud_setup", "iptables", "cni",
                          "service_cidrs"}
    assert len(facts["nm_cloud_setup"]["rules"]) == 3
