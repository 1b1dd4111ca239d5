#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_host_managers
short_description: Keep host network managers besides NetworkManager's device list off Calico's routes, rules and MACs
version_added: 0.1.0
description:
  - The fixes for the catalogue's NET001, each opt-in (all default to V(false)); nothing is changed unless asked.
  - O(networkd_foreign) writes C(/etc/systemd/networkd.conf.d/calico.conf) with C(ManageForeignRoutes=no) and
    C(ManageForeignRoutingPolicyRules=no), so systemd-networkd stops deleting the routes and rules BIRD and Felix own
    when it restarts or reloads (networkd.conf(5)). networkd reads the file when it starts; the module does not restart
    it (a restart can drop connections) - restart it in a maintenance window, or let the next boot apply it.
  - O(link_mac_policy) writes C(/etc/systemd/network/00-calico.link), which sorts before every other C(.link) file
    (udev applies only the first that matches) and leaves the MAC of C(cali*), C(tunl*), C(vxlan.calico),
    C(vxlan-v6.calico), C(wireguard.cali) and C(wg-v6.cali) alone (C(MACAddressPolicy=none)).
  - O(nm_cloud_setup) disables NetworkManager's nm-cloud-setup (C(systemctl disable --now nm-cloud-setup.service
    nm-cloud-setup.timer) where systemd runs, else the C(.wants) links those units are enabled by are removed) and
    deletes the policy rules it installed (priorities 30200-30349, 30350, 30400-30549) and the routes of its tables.
  - Files are written atomically, mode C(0644), with a timestamped backup of a file they replace (O(backup)).
author:
  - netdoctor.calico contributors (@netdoctor)
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
attributes:
  check_mode:
    support: full
    details: Reports every file, unit link and rule it would change, with the diff; changes nothing.
  diff_mode:
    support: full
    details: The files' text before and after; for nm-cloud-setup the links and rules before and after.
  idempotent:
    support: full
options:
  networkd_foreign:
    description: Write the systemd-networkd drop-in that keeps foreign routes and policy rules.
    type: bool
    default: false
  link_mac_policy:
    description: Write the udev C(.link) file that keeps udev from setting the MAC of Calico's devices.
    type: bool
    default: false
  nm_cloud_setup:
    description: Disable nm-cloud-setup and delete its policy rules.
    type: bool
    default: false
  backup:
    description: Keep a timestamped copy (name ending in C(~)) of a file before replacing it.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: See what would change (check mode shows the diff)
  netdoctor.calico.calico_host_managers:
    networkd_foreign: true
    link_mac_policy: true
    nm_cloud_setup: true
  check_mode: true
  diff: true

- name: Keep systemd-networkd off Calico's routes and rules
  netdoctor.calico.calico_host_managers:
    networkd_foreign: true
"""

RETURN = r"""
changes:
  description: What changed (or would change in check mode), one line each.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/systemd/networkd.conf.d/calico.conf", "ip rule del priority 30400 from 192.0.2.11 table 30400"]
files:
  description: Path -> C(unchanged), C(created) or C(updated) for every file the options manage.
  returned: always
  type: dict
backup_files:
  description: The backups made of replaced files.
  returned: always
  type: list
  elements: str
networkd_restart_needed:
  description: The networkd drop-in changed while systemd-networkd runs - it applies at its next start.
  returned: always
  type: bool
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import _hostconfig, _netlink, _node_files

MODE = 0o644
NETWORKD_DROPIN = "/etc/systemd/networkd.conf.d/calico.conf"
NETWORKD_TEXT = ("# Written by netdoctor.calico: systemd-networkd must not delete the routes and policy rules\n"
                 "# BIRD and Felix (Calico) own. Read when systemd-networkd starts.\n"
                 "[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n")
CALICO_LINK = "/etc/systemd/network/00-calico.link"
CALICO_LINK_TEXT = ("# Written by netdoctor.calico: udev applies the first .link file that matches, and must leave\n"
                    "# the MAC of Calico's devices alone (Calico sets the VTEP's and the veths' own).\n"
                    "[Match]\nOriginalName=cali* tunl* vxlan.calico vxlan-v6.calico wireguard.cali wg-v6.cali\n\n"
                    "[Link]\nMACAddressPolicy=none\n")
CLOUD_UNITS = ("nm-cloud-setup.service", "nm-cloud-setup.timer")


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None


def rule_command(rule):
    """The `ip rule del` of an nm-cloud-setup rule (its priority, source and table pin it down)."""
    src = f" from {rule['src']}" if rule.get("src") else ""
    return f"ip rule del priority {rule['priority']}{src} table {rule['table']}"


def cloud_plan(links, rules):
    """What disabling nm-cloud-setup does: the unit links to remove and the rules and tables to drop."""
    tables = sorted({r["table"] for r in rules if r.get("table") != _hostconfig.RT_TABLE_MAIN})
    return {"links": list(links), "rules": [rule_command(r) for r in rules],
            "tables": [f"ip route flush table {t}" for t in tables]}


class HostManagers:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {"changed": False, "changes": [], "files": {}, "backup_files": [],
                       "networkd_restart_needed": False}
        self.diffs = []

    def file(self, path, want):
        before = _read(path)
        if before == want:
            self.result["files"][path] = "unchanged"
            return False
        self.result["files"][path] = "created" if before is None else "updated"
        self.result["changes"].append(f"write {path}")
        self.diffs.append({"before": before or "", "after": want, "before_header": path, "after_header": path})
        if not self.module.check_mode:
            if before is not None and self.params["backup"]:
                self.result["backup_files"].append(self.module.backup_local(path))
            self.module.atomic_move(_node_files.staged(path, want, MODE), path)
            os.chmod(path, MODE)
        return True

    def nm_cloud_setup(self):
        state = _hostconfig.nm_cloud_setup_facts(self._rules(), "/")
        plan = cloud_plan(state["links"], state["rules"])
        if not (plan["links"] or plan["rules"]):
            return
        self.result["changes"] += [f"disable {', '.join(CLOUD_UNITS)}"] if plan["links"] else []
        self.result["changes"] += plan["rules"] + (plan["tables"] if plan["rules"] else [])
        self.diffs.append({"before": "\n".join(plan["links"] + plan["rules"]) + "\n", "after": "",
                           "before_header": "nm-cloud-setup (unit links, policy rules)",
                           "after_header": "nm-cloud-setup (disabled, rules deleted)"})
        if self.module.check_mode:
            return
        systemctl = self.module.get_bin_path("systemctl")
        if plan["links"] and systemctl and os.path.isdir("/run/systemd/system"):
            rc, _out, err = self.module.run_command([systemctl, "disable", "--now", *CLOUD_UNITS])
            if rc != 0:
                self.module.warn(f"systemctl disable nm-cloud-setup: {err.strip()}; removing its links instead")
        for link in plan["links"]:
            if os.path.lexists(link):
                os.unlink(link)
        ip = self.module.get_bin_path("ip", required=True, opt_dirs=["/usr/sbin", "/sbin"])
        for command in plan["rules"] + (plan["tables"] if plan["rules"] else []):
            rc, _out, err = self.module.run_command([ip, *command.split()[1:]])
            if rc != 0 and "No such file" not in err:
                self.module.fail_json(msg=f"`{command}` failed: {err.strip()}", **self.result)

    def _rules(self):
        with _netlink.Netlink() as nl:
            return nl.snapshot().get("rules") or []

    def run(self):
        if self.params["networkd_foreign"]:
            changed = self.file(NETWORKD_DROPIN, NETWORKD_TEXT)
            running = _hostconfig.networkd_facts("/")["running"]
            self.result["networkd_restart_needed"] = bool(changed and running)
            if changed and running and not self.module.check_mode:
                self.module.warn("systemd-networkd reads networkd.conf when it starts: restart it in a maintenance "
                                 "window (`systemctl restart systemd-networkd`) for the drop-in to apply")
        if self.params["link_mac_policy"]:
            self.file(CALICO_LINK, CALICO_LINK_TEXT)
        if self.params["nm_cloud_setup"]:
            self.nm_cloud_setup()
        self.result["changed"] = bool(self.result["changes"])
        if self.module._diff and self.diffs:
            self.result["diff"] = self.diffs
        self.module.exit_json(**self.result)


def build_module():
    return AnsibleModule(
        argument_spec={
            "networkd_foreign": {"type": "bool", "default": False},
            "link_mac_policy": {"type": "bool", "default": False},
            "nm_cloud_setup": {"type": "bool", "default": False},
            "backup": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )


def main():
    module = build_module()
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    if module.params["nm_cloud_setup"] and not _netlink.HAS_PYROUTE2:
        module.fail_json(msg=_netlink.missing_pyroute2(), exception=_netlink.PYROUTE2_IMPORT_ERROR)
    try:
        HostManagers(module).run()
    except OSError as exc:
        module.fail_json(msg=f"cannot change the host's configuration: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
