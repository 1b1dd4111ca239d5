"""_hosts (plugins/plugin_utils/_hosts.py): per-host values from hostvars, intended IPs and what is
wrong with them, and whether a host pattern selects any host (the host_values, intended_ips,
intended_ip, intended_ip_problems and host_selection_error filters)."""

import pytest
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _hosts

HOSTVARS = {
    "node1": {"calico_intended_ip": "192.0.2.11", "ansible_host": "10.0.0.1", "calico_cluster": "east",
              "ansible_facts": {"calico_node": {"hostname": "node1"}}},
    "node2": {"calico_intended_ip": "", "ansible_host": "192.0.2.12/24", "calico_cluster": "west"},
    "node3": {"ansible_host": "node3.example.com"},
    "192.0.2.14": {},
    "node5": {"calico_intended_ip": "2001:DB8::5"},
    "node6": {"calico_intended_ip": " 192.0.2.16 "},
}


def test_host_values_one_look_up_per_host_with_a_default():
    assert _hosts.host_values(["node1", "node2", "node3"], HOSTVARS, "calico_cluster") == {
        "node1": "east", "node2": "west", "node3": None}
    assert _hosts.host_values(["node3"], HOSTVARS, "calico_cluster", "default") == {"node3": "default"}
    # a host the inventory does not have is a host without the variable
    assert _hosts.host_values(["nosuch"], HOSTVARS, "calico_cluster", {}) == {"nosuch": {}}


def test_host_values_follows_a_path():
    assert _hosts.host_values(["node1", "node2"], HOSTVARS, ["ansible_facts", "calico_node"]) == {
        "node1": {"hostname": "node1"}, "node2": None}
    assert _hosts.host_values(["node1"], HOSTVARS, ["ansible_facts", "calico_node", "hostname"]) == {"node1": "node1"}
    # a path through something that is no dict stops there
    assert _hosts.host_values(["node1"], HOSTVARS, ["calico_cluster", "x"], "-") == {"node1": "-"}


def test_intended_ips_variable_then_ansible_host_then_name():
    hosts = list(HOSTVARS)
    assert _hosts.intended_ips(hosts, HOSTVARS, "calico_intended_ip") == {
        "node1": "192.0.2.11",          # the variable wins over ansible_host
        "node2": "192.0.2.12",          # an empty variable falls through; the prefix length is dropped
        "192.0.2.14": "192.0.2.14",     # the name, when it is an address
        "node5": "2001:db8::5",         # canonical form
        "node6": "192.0.2.16",          # stripped
    }
    assert _hosts.intended_ips(hosts, HOSTVARS, "calico_intended_ip", 4) == {
        "node1": "192.0.2.11", "node2": "192.0.2.12", "192.0.2.14": "192.0.2.14", "node6": "192.0.2.16"}
    # another variable: ansible_host for everyone
    assert _hosts.intended_ips(["node1", "node2"], HOSTVARS, "other_var") == {"node1": "10.0.0.1",
                                                                              "node2": "192.0.2.12"}


def test_intended_ip_problems_name_the_host_the_variable_and_the_value():
    hostvars = {**HOSTVARS, "node7": {"calico_intended_ip": "not-an-ip"}}
    hosts = list(hostvars)
    assert _hosts.intended_ip_problems(hosts, hostvars, "calico_intended_ip", 4) == [
        "node3: calico_intended_ip is not set and ansible_host is 'node3.example.com', not an IPv4 address",
        "node5: calico_intended_ip is '2001:DB8::5', not an IPv4 address",
        "node7: calico_intended_ip is 'not-an-ip', not an IPv4 address",
    ]
    # Not required (the audit): only a variable that is set and wrong is a problem.
    assert _hosts.intended_ip_problems(hosts, hostvars, "calico_intended_ip", required=False) == [
        "node7: calico_intended_ip is 'not-an-ip', not an IP address"]
    assert _hosts.intended_ip_problems(["nameonly"], {"nameonly": {}}, "calico_intended_ip") == [
        "nameonly: neither calico_intended_ip nor ansible_host is set, and the name is not an IP address"]
    assert _hosts.intended_ip_problems(["node1", "node2"], HOSTVARS, "calico_intended_ip", 4) == []


@pytest.mark.parametrize(("matched", "limited", "message"), [
    (["node1"], None, ""),
    (["node1", "node2"], ["node2", "node9"], ""),
    ([], None, "audit_hosts=nosuchgroup matches no host of the inventory, so nothing would be looked at and the run "
               "would pass. Set audit_hosts to a group or host pattern of the inventory (ansible-inventory --graph "
               "lists them)."),
    (["node1", "node2"], ["node3"], "audit_hosts=nosuchgroup matches 2 host(s), but none of them is within --limit"),
])
def test_host_selection_error(matched, limited, message):
    error = _hosts.host_selection_error(matched, "audit_hosts", "nosuchgroup", limited)
    assert error.startswith(message) and (error == "") == (message == "")
