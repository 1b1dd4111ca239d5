"""The trace filters (plugins/filter/trace.py): errors surface as AnsibleFilterError with the
core's message; the combining itself is tested with _trace (test__trace.py) and, through the
playbook, in the lab (tests/integration/test_trace_lab.py)."""

from types import MappingProxyType

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.netdoctor.calico.plugins.filter import trace


def test_filters_are_registered():
    assert set(trace.FilterModule().filters()) == {"trace_steps", "pod_ip"}


def test_pod_ip_normalises_and_names_the_variable():
    assert trace.pod_ip("2001:DB8::7", "src") == "2001:db8::7"
    with pytest.raises(AnsibleFilterError, match=r"^dst: 'node1' is not an IP address$"):
        trace.pod_ip("node1", "dst")


def test_trace_steps_reports_what_is_missing():
    results = MappingProxyType({"node1": {"changed": False, "trace": {"schema_version": 1, "host": "node1",
                                                                      "owns": []}}})
    with pytest.raises(AnsibleFilterError, match=r"^no node owns src 198\.18\.1\.2: none of the 1 node\(s\)"):
        trace.trace_steps(results, "198.18.1.2", "198.18.2.2")
    with pytest.raises(AnsibleFilterError, match="expects a dict of host -> calico_trace result, got list"):
        trace.trace_steps([], "198.18.1.2", "198.18.2.2")
