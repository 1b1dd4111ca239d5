# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight role's decisions as filters, some shared with the repair role (docs in the .yml
sidecars; functions in plugin_utils/_preflight_role)."""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.plugin_utils import _preflight_role as _p
from ansible_collections.netdoctor.calico.plugins.plugin_utils._filters import as_filter


class FilterModule:
    def filters(self):
        return {
            "autodetection_replay": as_filter("autodetection_replay", _p.autodetection_replay),
            "autodetection_misses": as_filter("autodetection_misses", _p.autodetection_misses, _input="dict"),
            "autodetection_failure": as_filter("autodetection_failure", _p.autodetection_failure, _input="list"),
            "mtu_check": as_filter("mtu_check", _p.mtu_check, _input="dict"),
            "rp_filter_plan": as_filter("rp_filter_plan", _p.rp_filter_plan, _input="dict"),
            "sysctl_changes": as_filter("sysctl_changes", _p.sysctl_changes),
            "sysctl_note": as_filter("sysctl_note", _p.sysctl_note, _input="dict"),
            "kernel_module_entries": as_filter("kernel_module_entries", _p.kernel_module_entries, _input="list"),
            "kernel_modules_plan": as_filter("kernel_modules_plan", _p.kernel_modules_plan),
            "kernel_modules_note": as_filter("kernel_modules_note", _p.kernel_modules_note, _input="dict"),
            "nm_note": as_filter("nm_note", _p.nm_note),
            "hosts_entry": as_filter("hosts_entry", _p.hosts_entry),
            "hosts_note": as_filter("hosts_note", _p.hosts_note, _input="dict"),
        }
