"""_inputs (plugins/plugin_utils/_inputs.py): what the roles' argument specs cannot check, each
problem named (the preflight_input_problems and repair_input_problems filters)."""

import pytest
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _inputs

REPAIR_OK = {
    "repair_pools": ["198.18.0.0/16"], "repair_source_route_gateway": "",
    "repair_sysctl_file": "/etc/sysctl.d/90-calico.conf",
    "repair_nm_dropin_path": "/etc/NetworkManager/conf.d/calico.conf",
    "repair_nm_override_path": "/etc/NetworkManager/conf.d/zz-calico.conf", "repair_autodetection_timeout": 300,
    "repair_autodetection_poll": "5", "repair_bgp_probe_timeout": 3, "repair_bgp_wait_timeout": 180,
    "repair_bgp_wait_poll": 2, "repair_max_deletes": 0, "repair_autodetection_target": "daemonset",
    "repair_autodetection_manifest": "", "repair_autodetection_method": "cidr=192.0.2.0/24",
}
PREFLIGHT_OK = {
    "preflight_tunnel_mtu": 0, "preflight_sysctl_file": "/etc/sysctl.d/90-calico.conf",
    "preflight_nm_dropin_path": "/etc/NetworkManager/conf.d/calico.conf",
    "preflight_kernel_modules": [{"names": ["ip_set"], "config": "CONFIG_IP_SET"}],
    "preflight_autodetection_manifest": "", "preflight_autodetection_check": True,
    "preflight_autodetection_method": "first-found",
}


def test_good_inputs_have_no_problem():
    assert _inputs.repair_problems(REPAIR_OK) == []
    assert _inputs.preflight_problems(PREFLIGHT_OK) == []
    assert _inputs.preflight_problems({**PREFLIGHT_OK, "preflight_tunnel_mtu": "1440"}) == []


@pytest.mark.parametrize(("change", "problem"), [
    ({"repair_pools": ["198.18.0.0/16", "198.18.0.0/33", "2001:db8::/64", "198.18.0.1"]},
     "repair_pools has entries that are not IPv4 CIDRs (a.b.c.d/0-32): 198.18.0.0/33, 2001:db8::/64, 198.18.0.1"),
    ({"repair_source_route_gateway": "gw.example"}, "repair_source_route_gateway=gw.example is not an IPv4 address"),
    ({"repair_sysctl_file": "/etc/sysctl.d/calico"},
     "repair_sysctl_file=/etc/sysctl.d/calico must be an absolute path"),
    ({"repair_nm_dropin_path": "/etc/NetworkManager/calico.conf"},
     "repair_nm_dropin_path=/etc/NetworkManager/calico.conf must be a NAME.conf file directly in a NetworkManager"),
    ({"repair_nm_override_path": "/tmp/zz.conf"}, "repair_nm_override_path=/tmp/zz.conf must be a NAME.conf"),
    ({"repair_autodetection_poll": 0}, "repair_autodetection_poll=0 must be a positive number of seconds"),
    ({"repair_bgp_probe_timeout": "x"}, "repair_bgp_probe_timeout=x must be a positive number of seconds"),
    ({"repair_max_deletes": -1}, "repair_max_deletes=-1 must be 0 or more"),
    ({"repair_autodetection_target": "manifest"},
     "repair_autodetection_target=manifest needs repair_autodetection_manifest"),
    ({"repair_autodetection_method": "interface=eth0\nskip-interface=eth1"},
     r"repair_autodetection_method='interface=eth0\nskip-interface=eth1' contains a control character "
     r"('\n' at position "
     "14); an autodetection method is one line"),
    ({"repair_autodetection_method": "cidr=192.0.2.0/24\r"}, "contains a control character ('\\r' at position 17)"),
])
def test_each_repair_problem_is_named(change, problem):
    problems = _inputs.repair_problems({**REPAIR_OK, **change})
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize(("change", "problem"), [
    ({"preflight_tunnel_mtu": 500},
     "preflight_tunnel_mtu must be 0 (Calico's automatic value) or at least 576, not 500"),
    ({"preflight_tunnel_mtu": -1}, "or at least 576, not -1"),
    ({"preflight_sysctl_file": "90-calico.conf"}, "preflight_sysctl_file=90-calico.conf must be an absolute path"),
    ({"preflight_nm_dropin_path": "/etc/NetworkManager/conf.d/sub/calico.conf"}, "preflight_nm_dropin_path="),
    ({"preflight_kernel_modules": [{"names": ["ip_set;reboot"], "config": "CONFIG_IP_SET"}]},
     "preflight_kernel_modules: entry 1: module name 'ip_set;reboot' is not letters, digits, _ and -"),
    ({"preflight_kernel_modules": [{"names": ["ip_set"]}]}, "preflight_kernel_modules: entry 1: config None"),
    ({"preflight_autodetection_manifest": "/tmp/calico.yaml", "preflight_autodetection_check": False},
     "preflight_autodetection_manifest is set but preflight_autodetection_check is false"),
    ({"preflight_autodetection_method": "first-found\n"}, "preflight_autodetection_method='first-found\\n' contains"),
])
def test_each_preflight_problem_is_named(change, problem):
    problems = _inputs.preflight_problems({**PREFLIGHT_OK, **change})
    assert len(problems) == 1 and problem in problems[0], problems


def test_every_problem_at_once_and_no_input_at_all():
    bad = {**REPAIR_OK, "repair_pools": ["x"], "repair_max_deletes": -1, "repair_autodetection_method": "a\tb"}
    assert len(_inputs.repair_problems(bad)) == 3
    # variables that are not given are not checked (each role passes all of its own)
    assert _inputs.repair_problems({}) == [] and _inputs.preflight_problems({}) == []
    assert _inputs.method_problem("m", None) == ""
