# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""recommend_method: the fleet's IP_AUTODETECTION_METHOD, computed on the controller (docs in the .yml sidecar)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _fleet


def recommend_method(facts, targets, calico_version=None):
    """Host -> calico_node fact, host -> intended address: one method replayed on every node's links
    (``_fleet.recommendation``, the function fleet_audit uses)."""
    if not isinstance(facts, Mapping):
        raise AnsibleFilterError("recommend_method expects a dict of host -> calico_node fact, "
                                 f"got {type(facts).__name__}")
    if not isinstance(targets, Mapping):
        raise AnsibleFilterError("recommend_method: targets must be a dict of host -> intended address, "
                                 f"got {type(targets).__name__}")
    missing = sorted(str(h) for h in targets if not isinstance(facts.get(h), Mapping))
    if missing:
        raise AnsibleFilterError(f"recommend_method: no calico_node fact for {', '.join(missing)} "
                                 "(netdoctor.calico.calico_node_facts gathers it)")
    fleet = {}
    for host in targets:
        fact = facts[host]
        version = calico_version or (fact.get("autodetection") or {}).get("calico_version")
        fleet[host] = {"links": fact.get("links"), "autodetection": {"calico_version": version}}
    return _fleet.recommendation(fleet, {host: str(ip) for host, ip in targets.items()})


class FilterModule:
    def filters(self):
        return {"recommend_method": recommend_method}
