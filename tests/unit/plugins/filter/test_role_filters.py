"""The filters the roles call (plugins/filter/hosts.py, inputs.py, audit.py, preflight.py, repair.py):
each is registered under its documented name, is the tested plain function (plugins/plugin_utils),
reads Ansible's hostvars (a Mapping, not a dict) and turns bad input into an AnsibleFilterError
that names the filter."""

from collections.abc import Mapping

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.netdoctor.calico.plugins.filter import audit, hosts, inputs, preflight, repair
from ansible_collections.netdoctor.calico.plugins.plugin_utils import (
    _audit_role,
    _hosts,
    _inputs,
    _preflight_role,
    _probes,
    _repair_role,
)

FILTERS = {}
for _module in (hosts, inputs, audit, preflight, repair):
    FILTERS.update(_module.FilterModule().filters())


class HostVars(Mapping):
    """Like ansible.vars.hostvars.HostVars: a Mapping whose values are Mappings, not dicts."""

    def __init__(self, data):
        self._data = data

    def __getitem__(self, key):
        return HostVars(self._data[key]) if isinstance(self._data[key], dict) else self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


HOSTVARS = HostVars({"node1": {"calico_intended_ip": "192.0.2.11", "calico_cluster": "east"},
                     "node2": {"ansible_host": "192.0.2.12"}, "node3": {"calico_intended_ip": "bad"}})

EXPECTED = {
    "host_values": _hosts.host_values, "intended_ips": _hosts.intended_ips,
    "intended_ip_problems": _hosts.intended_ip_problems, "host_selection_error": _hosts.host_selection_error,
    "preflight_input_problems": _inputs.preflight_problems, "repair_input_problems": _inputs.repair_problems,
    "route_check_hosts": _audit_role.route_check_hosts, "peer_groups": _audit_role.peer_groups,
    "peer_ips": _audit_role.peer_ips, "task_failures": _audit_role.task_failures,
    "drift_by_host": _audit_role.drift_by_host, "audit_summary": _audit_role.summary_lines,
    "audit_failure": _audit_role.failure,
    "probe_targets": _probes.probe_targets,
    "autodetection_replay": _preflight_role.autodetection_replay,
    "autodetection_misses": _preflight_role.autodetection_misses,
    "autodetection_failure": _preflight_role.autodetection_failure, "mtu_check": _preflight_role.mtu_check,
    "rp_filter_plan": _preflight_role.rp_filter_plan, "sysctl_changes": _preflight_role.sysctl_changes,
    "sysctl_note": _preflight_role.sysctl_note, "kernel_module_entries": _preflight_role.kernel_module_entries,
    "kernel_modules_plan": _preflight_role.kernel_modules_plan,
    "kernel_modules_note": _preflight_role.kernel_modules_note, "nm_note": _preflight_role.nm_note,
    "hosts_entry": _preflight_role.hosts_entry, "hosts_note": _preflight_role.hosts_note,
    "proxy_arp_off": _repair_role.proxy_arp_off, "nm_target": _repair_role.nm_target,
    "redetection": _repair_role.redetection, "bgp_firewall_peers": _repair_role.bgp_firewall_peers,
    "bgp_sessions_up": _repair_role.bgp_sessions_up, "route_skips": _repair_role.route_skips,
    "repair_node_changes": _repair_role.node_changes, "repair_needs_map": _repair_role.needs_expected_map,
    "down_peers": _repair_role.down_peers, "tcp_probes": _repair_role.tcp_probes,
    "repair_autodetection_result": _repair_role.autodetection_result,
    "repair_audit_reports": _repair_role.audit_reports, "repair_summary": _repair_role.summary_lines,
    "repair_failure": _repair_role.failure,
}


def test_every_filter_is_registered_over_its_function():
    assert sorted(FILTERS) == sorted([*EXPECTED, "intended_ip"])
    for name, func in EXPECTED.items():
        assert FILTERS[name].__wrapped__ is func, name


def test_hostvars_as_ansible_passes_them():
    hosts_ = ["node1", "node2", "node3"]
    assert FILTERS["host_values"](hosts_, HOSTVARS, "calico_cluster") == {"node1": "east", "node2": None, "node3": None}
    assert FILTERS["intended_ips"](hosts_, HOSTVARS, "calico_intended_ip") == {"node1": "192.0.2.11",
                                                                               "node2": "192.0.2.12"}
    assert FILTERS["intended_ip"]("node2", HOSTVARS, "calico_intended_ip", 4) == "192.0.2.12"
    assert FILTERS["intended_ip"]("node3", HOSTVARS, "calico_intended_ip", 4) == ""
    assert FILTERS["intended_ip_problems"](hosts_, HOSTVARS, "calico_intended_ip", required=False) == [
        "node3: calico_intended_ip is 'bad', not an IP address"]


@pytest.mark.parametrize(("name", "args", "message"), [
    ("host_values", ("node1", HOSTVARS, "x"), r"^host_values: _input must be a list, got str$"),
    ("intended_ips", (["node1"], ["not", "hostvars"], "x"), r"^intended_ips: hostvars must be a dict, got list$"),
    ("peer_groups", (["192.0.2.1"], 100), r"^peer_groups: _input must be a dict, got list$"),
    ("peer_groups", ({"a": "not-an-ip"}, 0),
     r"^peer_groups: 'not-an-ip' does not appear to be an IPv4 or IPv6 address$"),
    ("route_check_hosts", ("sometimes", {}, []), r"^route_check_hosts: audit_route_check must be one of"),
    ("rp_filter_plan", ({}, "strict"), r"^rp_filter_plan: rp_filter must be one of loose, off, keep, not 'strict'$"),
    ("mtu_check", ({}, "gre", 0, "192.0.2.1"), r"^mtu_check: encapsulation must be one of"),
    ("kernel_module_entries", ([], "gre"), r"^kernel_module_entries: encapsulation must be one of"),
    ("repair_input_problems", (None,), r"^repair_input_problems: _input must be a dict, got NoneType$"),
    ("tcp_probes", ({"node1": {"results": [{"item": "192.0.2.1", "msg": "Timeout"}]}}, "three"),
     r"^tcp_probes: could not convert string to float: 'three'$"),
])
def test_bad_input_is_an_ansible_error_naming_the_filter(name, args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        FILTERS[name](*args)
