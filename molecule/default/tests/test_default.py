"""What the preflight role left on the lab's nodes (testinfra over the lab's Ansible inventory).

molecule runs this with --hosts=ansible://calico_nodes; prepare.yml made node2's rp_filter strict
(labctl fault rp-filter-strict) and removed node1's own line from /etc/hosts.
"""

import re

CALICO_SPECS = ("interface-name:cali*", "interface-name:tunl*", "interface-name:vxlan.calico",
                "interface-name:vxlan-v6.calico", "interface-name:wireguard.cali", "interface-name:wg-v6.cali")
DROPIN = "/etc/NetworkManager/conf.d/calico.conf"
SYSCTL_FILE = "/etc/sysctl.d/90-calico.conf"


def effective_unmanaged(host):
    """[keyfile] unmanaged-devices as NetworkManager's own parser merges the drop-ins."""
    out = host.check_output("NetworkManager --print-config")
    section = None
    for raw in out.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[keyfile]" and line.startswith("unmanaged-devices="):
            # --print-config joins the list with "," (the files may use ";")
            return [s for s in re.split(r"[;,]", line.split("=", 1)[1]) if s]
    return []


def test_dropin(host):
    dropin = host.file(DROPIN)
    assert dropin.is_file
    assert dropin.mode == 0o644
    assert "unmanaged-devices+=" + ";".join(CALICO_SPECS) in dropin.content_string


def test_networkmanager_leaves_calico_devices_unmanaged(host):
    unmanaged = effective_unmanaged(host)
    assert set(CALICO_SPECS) <= set(unmanaged), unmanaged


def test_ip_forward(host):
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert "net.ipv4.ip_forward=1" in host.file(SYSCTL_FILE).content_string.splitlines()


def test_rp_filter_loosened_on_the_multihomed_strict_node(host):
    name = host.ansible.get_variables()["inventory_hostname"]
    persisted = host.file(SYSCTL_FILE).content_string
    if name == "node2":
        # strict everywhere before: the NICs become loose, conf.all and Calico's devices are left alone
        for nic in ("eth0", "eth1"):
            assert host.sysctl(f"net.ipv4.conf.{nic}.rp_filter") == 2
            assert f"net.ipv4.conf.{nic}.rp_filter=2" in persisted.splitlines()
        assert host.sysctl("net.ipv4.conf.all.rp_filter") == 1
    else:
        # the lab's default is rp_filter=0 (off): never raised
        assert host.sysctl("net.ipv4.conf.eth0.rp_filter") == 0
        assert "rp_filter" not in persisted


def test_hostname_resolves(host):
    variables = host.ansible.get_variables()
    hostname = host.check_output("hostname")
    lines = host.file("/etc/hosts").content_string.splitlines()
    assert any(re.match(rf"^{re.escape(variables['calico_intended_ip'])}\s+{re.escape(hostname)}(\s|$)", line)
               for line in lines), lines
