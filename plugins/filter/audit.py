# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The audit role's decisions as filters (docs in the .yml sidecars; functions in plugin_utils/_audit_role)."""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.plugin_utils import _audit_role, _probes
from ansible_collections.netdoctor.calico.plugins.plugin_utils._filters import as_filter


class FilterModule:
    def filters(self):
        return {
            "route_check_hosts": as_filter("route_check_hosts", _audit_role.route_check_hosts),
            "peer_groups": as_filter("peer_groups", _audit_role.peer_groups, _input="dict"),
            "peer_ips": as_filter("peer_ips", _audit_role.peer_ips, _input="list"),
            "task_failures": as_filter("task_failures", _audit_role.task_failures, _input="dict"),
            "drift_by_host": as_filter("drift_by_host", _audit_role.drift_by_host, _input="dict"),
            "audit_summary": as_filter("audit_summary", _audit_role.summary_lines),
            "audit_failure": as_filter("audit_failure", _audit_role.failure),
            "probe_targets": as_filter("probe_targets", _probes.probe_targets, _input="dict"),
        }
