# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The repair role's decisions as filters (docs in the .yml sidecars; functions in plugin_utils/_repair_role)."""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.plugin_utils import _repair_role as _r
from ansible_collections.netdoctor.calico.plugins.plugin_utils._filters import as_filter


class FilterModule:
    def filters(self):
        return {
            "proxy_arp_off": as_filter("proxy_arp_off", _r.proxy_arp_off, _input="dict"),
            "nm_target": as_filter("nm_target", _r.nm_target, _input="dict"),
            "redetection": as_filter("redetection", _r.redetection),
            "bgp_firewall_peers": as_filter("bgp_firewall_peers", _r.bgp_firewall_peers, _input="dict"),
            "bgp_sessions_up": as_filter("bgp_sessions_up", _r.bgp_sessions_up),
            "route_skips": as_filter("route_skips", _r.route_skips),
            "repair_node_changes": as_filter("repair_node_changes", _r.node_changes, _input="dict"),
            "repair_needs_map": as_filter("repair_needs_map", _r.needs_expected_map, _input="dict"),
            "down_peers": as_filter("down_peers", _r.down_peers, _input="dict"),
            "tcp_probes": as_filter("tcp_probes", _r.tcp_probes, _input="dict"),
            "repair_autodetection_result": as_filter("repair_autodetection_result", _r.autodetection_result),
            "repair_audit_reports": as_filter("repair_audit_reports", _r.audit_reports),
            "repair_summary": as_filter("repair_summary", _r.summary_lines),
            "repair_failure": as_filter("repair_failure", _r.failure),
        }
