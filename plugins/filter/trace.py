# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""trace_steps and pod_ip: the controller side of the pod-to-pod trace (docs in the .yml sidecars)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.netdoctor.calico.plugins.module_utils import _trace
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _trace_judge


def trace_steps(results, src, dst):
    """Every node's calico_trace result, by host -> the eight steps between the two pods' nodes."""
    if not isinstance(results, Mapping):
        raise AnsibleFilterError("trace_steps expects a dict of host -> calico_trace result, "
                                 f"got {type(results).__name__}")
    try:
        return _trace_judge.combine(results, src, dst)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def pod_ip(value, name="address"):
    """The canonical form of an IP address, or an error naming the variable it came from."""
    try:
        return _trace.ip_text(value, name)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"trace_steps": trace_steps, "pod_ip": pod_ip}
