"""Node identity files, calico-node's environment, networkd files and sysctls (temp trees)."""

import json
import os

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _node_files as nf

CALICO_CONFLIST = {
    "name": "k8s-pod-network",
    "cniVersion": "0.3.1",
    "plugins": [
        {
            "type": "calico",
            "log_level": "info",
            "log_file_path": "/var/log/calico/cni/cni.log",
            "datastore_type": "kubernetes",
            "nodename": "node1",
            "mtu": 0,
            "ipam": {"type": "calico-ipam"},
            "policy": {"type": "k8s"},
            "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"},
        },
        {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}},
    ],
}


def tree(root, files):
    for path, content in files.items():
        full = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(full, mode) as f:
            f.write(content)
    return str(root)


# --- nodename, CNI, hosts ------------------------------------------------------------------


def test_nodename(tmp_path):
    assert nf.read_nodename(str(tmp_path)) is None
    tree(tmp_path, {"/var/lib/calico/nodename": "node1\n"})
    assert nf.read_nodename(str(tmp_path)) == "node1"
    tree(tmp_path, {"/var/lib/calico/nodename": "\n"})
    assert nf.read_nodename(str(tmp_path)) is None


def test_parse_cni_conflist_and_conf():
    assert nf.parse_cni_config(json.dumps(CALICO_CONFLIST)) == {
        "type": "calico", "nodename": "node1", "ipam_type": "calico-ipam", "log_level": "info", "mtu": 0,
        "datastore_type": "kubernetes"}
    single = {"cniVersion": "0.3.1", "name": "calico", "type": "calico", "etcd_endpoints": "https://192.0.2.1:2379",
              "mtu": "1440", "ipam": {"type": "host-local", "subnet": "usePodCidr"}}
    assert nf.parse_cni_config(json.dumps(single)) == {
        "type": "calico", "nodename": None, "ipam_type": "host-local", "log_level": None, "mtu": 1440,
        "datastore_type": None}
    assert nf.parse_cni_config(json.dumps({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]})) is None
    with pytest.raises(ValueError):
        nf.parse_cni_config("[1, 2]")


def test_read_cni_config_picks_the_calico_file_and_whether_runtimes_use_it(tmp_path):
    root = tree(tmp_path, {
        "/etc/cni/net.d/10-calico.conflist": json.dumps(CALICO_CONFLIST),
        "/etc/cni/net.d/calico-kubeconfig": "apiVersion: v1\n",
        "/etc/cni/net.d/99-loopback.conf": json.dumps({"cniVersion": "0.3.1", "type": "loopback"}),
    })
    cni = nf.read_cni_config(root)
    assert cni == {"file": "/etc/cni/net.d/10-calico.conflist", "type": "calico", "nodename": "node1",
                   "ipam_type": "calico-ipam", "log_level": "info", "mtu": 0, "datastore_type": "kubernetes",
                   "active": True, "error": None}
    # another CNI config sorting first is what the runtime uses
    cilium = {"name": "cilium", "plugins": [{"type": "cilium"}]}
    tree(tmp_path, {"/etc/cni/net.d/05-cilium.conflist": json.dumps(cilium)})
    assert nf.read_cni_config(root)["active"] is False
    # Canal ships the calico plugin in 10-canal.conflist
    canal = tree(tmp_path / "canal", {"/etc/cni/net.d/10-canal.conflist": json.dumps(CALICO_CONFLIST)})
    assert nf.read_cni_config(canal)["file"] == "/etc/cni/net.d/10-canal.conflist"


def test_read_cni_config_reports_a_broken_calico_file(tmp_path):
    root = tree(tmp_path, {"/etc/cni/net.d/10-calico.conflist": "{ not json"})
    cni = nf.read_cni_config(root)
    assert cni["file"] == "/etc/cni/net.d/10-calico.conflist"
    assert cni["error"].startswith("invalid CNI config")
    assert nf.read_cni_config(str(tmp_path / "none")) is None


def test_hosts_resolution():
    text = ("127.0.0.1\tlocalhost\n127.0.1.1 Node1.example.com node1  # debian\n"
            "# 192.0.2.99 node1\n192.0.2.11 node1-eth0\nbogus node1\nfe80::1%eth0 node1\n")
    assert nf.parse_hosts(text)[1] == ("127.0.1.1", ["Node1.example.com", "node1"])
    assert nf.hosts_addresses(text, "NODE1") == ["127.0.1.1", "fe80::1"]
    assert nf.hosts_addresses(text, "node1.example.com") == ["127.0.1.1"]
    assert nf.hosts_addresses(text, "node2") == []


# --- calico-node's environment ----------------------------------------------------------------


@pytest.mark.parametrize(("argv", "rank"), [
    (["calico-node", "-felix"], 0),
    (["/bin/calico-node", "-confd"], 1),
    (["calico", "component", "felix"], 0),
    (["/usr/bin/calico", "component", "confd"], 1),
    (["calico-felix"], 0),
    (["calico", "node", "status"], None),
    (["bash", "-c", "calico-node -felix"], None),
    ([], None),
])
def test_calico_node_rank(argv, rank):
    assert nf.calico_node_rank(argv) == rank


def fake_proc(root, processes):
    files = {}
    for pid, (argv, env) in processes.items():
        files[f"/{pid}/cmdline"] = b"\0".join(a.encode() for a in argv) + b"\0"
        if env is not None:
            files[f"/{pid}/environ"] = b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0"
    files["/self/cmdline"] = b"pytest\0"
    return tree(root, files)


def test_read_calico_node_prefers_felix_and_keeps_only_allowed_keys(tmp_path):
    env = {"NODENAME": "node1", "IP": "autodetect", "IP_AUTODETECTION_METHOD": "interface=eth0",
           "CALICO_NETWORKING_BACKEND": "bird", "CALICO_IPV4POOL_CIDR": "198.18.0.0/16", "felix_ipinipmtu": "1480",
           "FELIX_DEVICEROUTEPROTOCOL": "80", "ETCD_KEY_FILE": "/calico-secrets/etcd-key",
           "KUBERNETES_SERVICE_HOST": "192.0.2.1", "FELIX_TYPHAK8SSERVICENAME": "calico-typha", "PATH": "/bin"}
    proc = fake_proc(tmp_path, {
        1: (["/sbin/init"], {}),
        40: (["runsv", "felix"], {}),
        41: (["calico-node", "-confd"], {"NODENAME": "node1"}),
        57: (["calico-node", "-felix"], env),
        60: (["calico-node", "-allocate-tunnel-addrs"], {}),
    })
    assert nf.read_calico_node(proc) == {"pid": 57, "env": {
        "NODENAME": "node1", "IP": "autodetect", "IP_AUTODETECTION_METHOD": "interface=eth0",
        "CALICO_NETWORKING_BACKEND": "bird", "CALICO_IPV4POOL_CIDR": "198.18.0.0/16", "FELIX_IPINIPMTU": "1480",
        "FELIX_DEVICEROUTEPROTOCOL": "80"}, "error": None}


def test_read_calico_node_absent_or_unreadable(tmp_path):
    assert nf.read_calico_node(fake_proc(tmp_path / "a", {1: (["/sbin/init"], {})})) is None
    proc = fake_proc(tmp_path / "b", {7: (["calico-node", "-confd"], None)})
    got = nf.read_calico_node(proc)
    assert (got["pid"], got["env"]) == (7, None)
    assert got["error"].startswith("FileNotFoundError")
    assert nf.read_calico_node(str(tmp_path / "no-proc")) is None


def test_processes_of_other_network_namespaces_are_not_this_nodes(tmp_path):
    # calico-node and NetworkManager run in the host network namespace; a process in another
    # one (a container, another lab node sharing the PID namespace) must not be taken as ours.
    proc = fake_proc(tmp_path, {
        1: (["/sbin/init"], {}),
        20: (["calico-node", "-felix"], {"NODENAME": "other"}),
        30: (["/usr/sbin/NetworkManager", "--no-daemon"], {}),
        40: (["calico-node", "-felix"], {"NODENAME": "mine"}),
    })
    os.makedirs(os.path.join(proc, "self", "ns"))
    ours, theirs = os.path.join(proc, "ns-ours"), os.path.join(proc, "ns-theirs")
    for path in (ours, theirs):
        open(path, "w").close()
    for pid, target in (("self", ours), (1, ours), (20, theirs), (30, theirs), (40, ours)):
        os.makedirs(os.path.join(proc, str(pid), "ns"), exist_ok=True)
        os.link(target, os.path.join(proc, str(pid), "ns", "net"))  # same inode = same namespace
    assert nf.read_calico_node(proc)["env"] == {"NODENAME": "mine"}
    assert [pid for pid, _argv in nf.host_processes(proc)] == [1, 40]
    os.unlink(os.path.join(proc, "30", "ns", "net"))
    os.link(ours, os.path.join(proc, "30", "ns", "net"))
    assert [pid for pid, _argv in nf.host_processes(proc)] == [1, 30, 40]


def test_parse_environ():
    assert nf.parse_environ(b"A=1\0B=x=y\0junk\0=nokey\0A=2\0") == {"A": "2", "B": "x=y"}


def test_identity_facts(tmp_path):
    root = tree(tmp_path / "root", {
        "/var/lib/calico/nodename": "node1",
        "/etc/hosts": "127.0.0.1 localhost\n",
        "/etc/cni/net.d/10-calico.conflist": json.dumps(CALICO_CONFLIST),
    })
    proc = fake_proc(tmp_path / "proc", {9: (["calico-node", "-felix"], {"NODENAME": "node-1"})})
    facts = nf.identity_facts("node1", root=root, proc=proc)
    assert facts["nodename_file"] == "node1"
    assert facts["cni"]["nodename"] == "node1"
    assert facts["hosts_resolves_hostname"] is False
    assert facts["hosts_addresses"] == []
    assert facts["calico_node"] == {"pid": 9, "env": {"NODENAME": "node-1"}, "error": None}


# --- systemd-networkd -------------------------------------------------------------------------


def test_parse_network_file():
    net = nf.parse_network_file(
        "# comment\n[Match]\nName=en* \\\n  eth*\nName=cali*\nType=!wlan\nMACAddress=\nMACAddress=aa:bb:cc:dd:ee:ff\n"
        "; another\n[Link]\nUnmanaged=yes\n[Network]\nDHCP=yes\n")
    assert net == {"match": {"Name": (False, ["en*", "eth*", "cali*"]), "Type": (True, ["wlan"]),
                             "MACAddress": (False, ["aa:bb:cc:dd:ee:ff"])}, "unmanaged": True}
    assert nf.parse_network_file("[Match]\nName=eth0\nName=\n")["match"] == {}


@pytest.mark.parametrize(("match", "expected"), [
    ("", True),                       # no conditions: every link (networkd warns)
    ("Name=*", True),
    ("Name=cali*", True),
    ("Name=eth* en*", False),
    ("Name=!eth* en*", True),
    ("Kind=veth", True),
    ("Kind=!veth", False),
    ("Type=ether", True),
    ("Driver=vmxnet3", False),        # projectcalico/calico#2471's fix
    ("Name=* \nMACAddress=aa:bb:cc:dd:ee:ff", None),
    ("Name=eth0\nMACAddress=aa:bb:cc:dd:ee:ff", False),
    ("Name=cali[0-9a-f]*", True),
])
def test_network_matches_a_cali_veth(match, expected):
    link = dict(nf.CALICO_LINKS[0], name="cali0a1b2c3d4e5")
    assert nf.network_matches(nf.parse_network_file("[Match]\n" + match + "\n")["match"], link) is expected


@pytest.mark.parametrize(("match", "expected"), [
    ("Type=wlan", False),
    ("Type=ether", None),        # vxlan: DEVTYPE "vxlan" or, where the kernel sets none, ARPHRD "ether"
    ("Type=vxlan ether", True),
    ("Kind=vxlan", True),
    ("Driver=!vxlan", False),
])
def test_network_matches_vxlan_calico(match, expected):
    link = dict(nf.CALICO_LINKS[2], name="vxlan.calico")
    assert nf.network_matches(nf.parse_network_file("[Match]\n" + match + "\n")["match"], link) is expected


def test_networkd_reads_a_symlinked_lib_dir_once(tmp_path):
    root = tree(tmp_path, {"/usr/lib/systemd/network/80-vm-vt.network": "[Match]\nName=vt-*\n"})
    os.symlink("usr/lib", os.path.join(root, "lib"))
    facts = nf.networkd_facts(root)
    assert facts["files"] == ["/usr/lib/systemd/network/80-vm-vt.network"]
    assert facts["overridden"] == []


def test_networkd_order_override_mask_dropins_and_first_match(tmp_path):
    root = tree(tmp_path, {
        "/usr/lib/systemd/network/99-default.network": "[Match]\nName=*\n[Network]\nDHCP=yes\n",
        "/usr/lib/systemd/network/80-container.network": "[Match]\nName=ve-*\n",
        "/usr/lib/systemd/network/10-masked.network": "[Match]\nName=*\n",
        "/etc/systemd/network/10-masked.network": "",
        "/run/systemd/network/50-vxlan.network": "[Match]\nKind=vxlan\n",
        "/etc/systemd/network/50-vxlan.network": "[Match]\nKind=vxlan\nName=vxlan.calico\n[Link]\nUnmanaged=yes\n",
        "/etc/systemd/network/20-mac.network": "[Match]\nMACAddress=aa:bb:cc:dd:ee:ff\n",
        "/etc/systemd/network/30-eth.network": "[Match]\nName=eth0\n",
        "/etc/systemd/network/30-eth.network.d/wider.conf": "[Match]\nName=tunl*\n",
        "/etc/systemd/network/README": "not a network file",
    })
    os.symlink("/dev/null", os.path.join(root, "run/systemd/network/15-null.network"))
    facts = nf.networkd_facts(root)
    assert facts["files"] == ["/etc/systemd/network/20-mac.network", "/etc/systemd/network/30-eth.network",
                              "/etc/systemd/network/50-vxlan.network", "/usr/lib/systemd/network/80-container.network",
                              "/usr/lib/systemd/network/99-default.network"]
    assert facts["masked"] == ["/etc/systemd/network/10-masked.network", "/run/systemd/network/15-null.network"]
    assert facts["overridden"] == ["/run/systemd/network/50-vxlan.network",
                                   "/usr/lib/systemd/network/10-masked.network"]
    everything = ["cali*", "tunl*", "vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali"]
    assert facts["matching_calico"] == [
        {"file": "/etc/systemd/network/20-mac.network", "match": "MACAddress=aa:bb:cc:dd:ee:ff", "devices": [],
         "possible": everything, "unmanaged": False},
        {"file": "/etc/systemd/network/30-eth.network", "match": "Name=eth0 tunl*", "devices": ["tunl*"],
         "possible": [], "unmanaged": False},
        {"file": "/etc/systemd/network/50-vxlan.network", "match": "Kind=vxlan Name=vxlan.calico",
         "devices": ["vxlan.calico"], "possible": [], "unmanaged": True},
        {"file": "/usr/lib/systemd/network/99-default.network", "match": "Name=*",
         "devices": ["cali*", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali"], "possible": [], "unmanaged": False},
    ]


def test_networkd_nothing_there(tmp_path):
    assert nf.networkd_facts(str(tmp_path)) == {"files": [], "masked": [], "overridden": [], "matching_calico": []}


# --- sysctls ----------------------------------------------------------------------------------


def test_read_sysctls(tmp_path):
    root = tree(tmp_path, {
        "/net/ipv4/ip_forward": "1\n",
        "/net/ipv4/conf/all/rp_filter": "0\n",
        "/net/ipv4/conf/default/rp_filter": "1\n",
        "/net/ipv4/conf/eth0/rp_filter": "1\n",
        "/net/ipv4/conf/eth0/proxy_arp": "0\n",
        "/net/ipv4/conf/eth0/forwarding": "1\n",
        "/net/ipv4/conf/cali0a1b2c3d4e5/rp_filter": "1\n",
        "/net/ipv4/conf/cali0a1b2c3d4e5/proxy_arp": "1\n",
        "/net/ipv4/conf/cali0a1b2c3d4e5/forwarding": "1\n",
        "/net/ipv4/conf/vxlan.calico/rp_filter": "2\n",
    })
    assert nf.read_sysctls(["eth0", "cali0a1b2c3d4e5", "vxlan.calico", "gone0", "../../x", ""], root=root) == {
        "net.ipv4.ip_forward": 1,
        "net.ipv4.conf.all.rp_filter": 0,
        "net.ipv4.conf.default.rp_filter": 1,
        "interfaces": {
            "eth0": {"rp_filter": 1, "proxy_arp": 0, "forwarding": 1},
            "cali0a1b2c3d4e5": {"rp_filter": 1, "proxy_arp": 1, "forwarding": 1},
            "vxlan.calico": {"rp_filter": 2, "proxy_arp": None, "forwarding": None},
            "gone0": {"rp_filter": None, "proxy_arp": None, "forwarding": None},
        },
    }


def test_read_sysctls_on_this_host_has_the_globals():
    if not os.path.exists("/proc/sys/net/ipv4/ip_forward"):
        pytest.skip("no /proc/sys")
    got = nf.read_sysctls(["lo"])
    assert got["net.ipv4.ip_forward"] in (0, 1)
    assert set(got["interfaces"]["lo"]) == {"rp_filter", "proxy_arp", "forwarding"}
