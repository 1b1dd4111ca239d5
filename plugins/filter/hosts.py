# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""host_values, intended_ips, intended_ip, intended_ip_problems, host_selection_error: what the roles
and playbooks read from the inventory (docs in the .yml sidecars; functions in plugin_utils/_hosts)."""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.plugin_utils import _hosts
from ansible_collections.netdoctor.calico.plugins.plugin_utils._filters import as_filter


def intended_ip(host, hostvars, var, version=None):
    """One host's intended address, or "" when it has none."""
    return _hosts.intended_ips([host], hostvars, var, version).get(host, "")


class FilterModule:
    def filters(self):
        return {
            "host_values": as_filter("host_values", _hosts.host_values, _input="list", hostvars="dict"),
            "intended_ips": as_filter("intended_ips", _hosts.intended_ips, _input="list", hostvars="dict"),
            "intended_ip": as_filter("intended_ip", intended_ip, hostvars="dict"),
            "intended_ip_problems": as_filter("intended_ip_problems", _hosts.intended_ip_problems, _input="list",
                                              hostvars="dict"),
            "host_selection_error": as_filter("host_selection_error", _hosts.host_selection_error, _input="list"),
        }
